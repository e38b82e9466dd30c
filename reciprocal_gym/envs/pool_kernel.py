"""The compiled CPU pass of the pool envs for binary learners: logits into predictions, observation features and
metrics.

After a refit, every learner's logits on its pool, validation and test rows become: pool probabilities, the
observation's candidate features (probabilities, margin, entropy, in-use flag, in float32), the validation
log-likelihood and accuracy, and the test accuracy. In torch that is about twenty passes over (B, n_pool)-sized
tensors, each through memory; here one pass per learner does it all with the learner's rows in cache (the
transcendental functions in the vectorizable forms of :mod:`reciprocal_gym.utils.vector_math`), learners spread over
threads. Before a refit, each learner's training set (labeled rows, then the pool atoms in use) is gathered in one
pass instead of a dozen indexing and concatenation ops.

Binary float64 learners on the CPU only (the env's ``backend``, :mod:`reciprocal_gym.envs.backend`); the torch path
serves the rest, and ``tests/test_backends.py`` checks that both agree.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from torch import Tensor

from reciprocal_gym.utils.threads import kernel_threads, run_chunks
from reciprocal_gym.utils.vector_math import exp_neg_abs, log1p_unit


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _binary_pass(table, weights, bias, rows, n_pool, n_val, y_val, y_test, in_use, probs, logp, cand, metrics):
    """Learner b's logit on dataset row r is weights[b] . table[r] + bias[b]; see :func:`binary_pool_pass`."""
    B, n_rows = rows.shape
    N, d = table.shape
    # this chunk's learners on every dataset row, (N, B): a product whose inner loop runs over the learners
    # (contiguous, vectorized) and whose result stays in cache; no BLAS call, whose own threads would compete
    weights_t = np.ascontiguousarray(weights.T)
    logits = np.zeros((N, B))
    for r in range(N):
        for j in range(d):
            x = table[r, j]
            for b in range(B):
                logits[r, b] += x * weights_t[j, b]
    n_test = n_rows - n_pool - n_val
    z = np.empty(n_rows)
    e = np.empty(n_rows)
    log1p_e = np.empty(n_rows)
    work = np.empty(n_rows)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for b in range(B):
        for i in range(n_rows):  # the learner's rows, gathered
            z[i] = logits[rows[b, i], b] + bias[b]
        exp_neg_abs(z, e, work)
        log1p_unit(e, log1p_e)
        for i in range(n_pool):
            big = 1.0 / (1.0 + e[i])  # sigmoid(|z|)
            small = e[i] * big  # sigmoid(-|z|)
            p1 = big if z[i] >= 0.0 else small
            p0 = 1.0 - p1
            probs[b, i, 0] = p0
            probs[b, i, 1] = p1
            logp[b, i, 0] = min(-z[i], 0.0) - log1p_e[i]  # log sigmoid(-z), exact in the tails
            logp[b, i, 1] = min(z[i], 0.0) - log1p_e[i]
            f0, f1 = np.float32(p0), np.float32(p1)
            cand[b, i, 0] = f0
            cand[b, i, 1] = f1
            cand[b, i, 2] = abs(f1 - f0)
            # entropy -p0 log p0 - p1 log p1 = log1p(e) + |z| sigmoid(-|z|): two positive terms, accurate in the tails
            cand[b, i, 3] = np.float32(log1p_e[i] + abs(z[i]) * small)
            cand[b, i, 4] = one if in_use[b, i] else zero
        loglik, hits = 0.0, 0
        for i in range(n_val):
            zi = z[n_pool + i]
            x = zi if y_val[b, i] == 1 else -zi
            loglik += min(x, 0.0) - log1p_e[n_pool + i]  # log sigmoid(x), as |x| = |z|
            hits += (zi > 0.0) == (y_val[b, i] == 1)
        metrics[0, b] = loglik / max(n_val, 1)  # no validation rows: 0
        metrics[1, b] = hits / max(n_val, 1)
        hits = 0
        for i in range(n_test):
            hits += (z[n_pool + n_val + i] > 0.0) == (y_test[b, i] == 1)
        metrics[2, b] = hits / n_test


def binary_pool_pass(
    table: Tensor, weights: Tensor, bias: Tensor, rows: Tensor, n_pool: int, y_val: Tensor, y_test: Tensor,
    in_use: Tensor,
) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
    """Predictions, candidate features and metrics of B binary learners, on the CPU.

    Args:
        table: (N, d) float64 raw dataset rows. weights, bias: (B, d), (B,) each learner's parameters folded onto raw
            features (:func:`~reciprocal_gym.learners.logistic.folded_parameters`): its logit on row r is
            ``weights[b] . table[r] + bias[b]``. rows: (B, n_pool + n_val + n_test) each learner's pool, validation
            and test rows, in that order. y_val, y_test: (B, n_val), (B, n_test) labels in {0, 1}. in_use:
            (B, n_pool) bool.

    Returns:
        pool probabilities (B, n_pool, 2) float64; their logarithms (B, n_pool, 2) float64; candidate features
        (B, n_pool, 5) float32 (p0, p1, |p1 - p0|, entropy, in-use flag); and ``val_log_likelihood``,
        ``val_accuracy``, ``test_accuracy`` (B,) float64 each.
    """
    B = rows.shape[0]
    probs = torch.empty(B, n_pool, 2, dtype=torch.float64)
    logp = torch.empty(B, n_pool, 2, dtype=torch.float64)
    cand = torch.empty(B, n_pool, 5, dtype=torch.float32)
    metrics = torch.empty(3, B, dtype=torch.float64)
    X, W, c, R, YV, YT, U, P, L, F, M = (t.numpy() for t in (
        table.contiguous(), weights.contiguous(), bias.contiguous(), rows.contiguous(), y_val.contiguous(),
        y_test.contiguous(), in_use.contiguous(), probs, logp, cand, metrics))
    n_val = YV.shape[1]

    def work(lo: int, hi: int) -> None:
        _binary_pass(X, W[lo:hi], c[lo:hi], R[lo:hi], n_pool, n_val, YV[lo:hi], YT[lo:hi], U[lo:hi], P[lo:hi],
                     L[lo:hi], F[lo:hi], M[:, lo:hi])

    run_chunks(B, work, kernel_threads())
    return probs, logp, cand, dict(zip(("val_log_likelihood", "val_accuracy", "test_accuracy"), metrics, strict=True))


@numba.njit(cache=True, nogil=True)
def _most_in_use(in_use):
    most = 0
    for b in range(in_use.shape[0]):
        count = 0
        for i in range(in_use.shape[1]):
            count += np.int64(in_use[b, i])
        most = max(most, count)
    return most


@numba.njit(cache=True, nogil=True)
def _gather_in_use(in_use, weight, label, y_pool, pool_rows, labeled_rows, labeled_q, rows, w, q, stats):
    """Per learner: the labeled rows (weight 1), then the pool atoms in use in pool order, then zero-weight padding
    (pool atom 0, as the torch path pads); and the pool mass in use with its mislabeled part."""
    B, n_pool = in_use.shape
    n_labeled, n = labeled_rows.shape[1], rows.shape[1]
    chosen = np.empty(n_pool + 1, np.int64)
    for b in range(B):
        for i in range(n_labeled):
            rows[b, i] = labeled_rows[b, i]
            w[b, i] = 1.0
            q[b, i, 0] = labeled_q[b, i, 0]
            q[b, i, 1] = labeled_q[b, i, 1]
        m = 0
        for i in range(n_pool):  # the indices of the atoms in use, without a branch per atom
            chosen[m] = i
            m += np.int64(in_use[b, i])
        mass, wrong = 0.0, 0.0
        for j in range(n - n_labeled):
            i = chosen[j] if j < m else 0
            k = n_labeled + j
            rows[b, k] = pool_rows[b, i]
            w[b, k] = weight[b, i] if j < m else 0.0
            q[b, k, 0] = label[b, i, 0]
            q[b, k, 1] = label[b, i, 1]
            if j < m:
                mass += weight[b, i]
                wrong += weight[b, i] * (1.0 - label[b, i, y_pool[b, i]])
        stats[0, b] = mass
        stats[1, b] = wrong


def gather_training_atoms(
    in_use: Tensor, weight: Tensor, label: Tensor, y_pool: Tensor, pool_rows: Tensor, labeled_rows: Tensor,
    labeled_q: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The binary training sets of B learners as dataset rows, weights and labels, on the CPU in one pass: each
    learner's labeled rows (weight 1, labels ``labeled_q``), then its pool atoms in use (in pool order), padded with
    zero-weight atoms to the largest count. Pool atoms not in use must have weight 0 (as in the index modes).

    Returns rows (B, n) int64, weights (B, n), labels (B, n, 2), and per learner the pool mass in use,
    sum_i w_i, and its mislabeled part, sum_i w_i (1 - q_i[y_i]) (y_pool the hidden true classes)."""
    B = in_use.shape[0]
    in_use = in_use.contiguous()
    n = labeled_rows.shape[1] + _most_in_use(in_use.numpy())
    rows = torch.empty(B, n, dtype=torch.int64)
    w = torch.empty(B, n, dtype=weight.dtype)
    q = torch.empty(B, n, 2, dtype=weight.dtype)
    stats = torch.empty(2, B, dtype=weight.dtype)
    _gather_in_use(*(t.numpy() for t in (in_use, weight.contiguous(), label.contiguous(),
                                         y_pool.contiguous(), pool_rows.contiguous(), labeled_rows.contiguous(),
                                         labeled_q.contiguous(), rows, w, q, stats)))
    return rows, w, q, stats[0], stats[1]
