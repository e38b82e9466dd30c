"""Compiled Newton solver for binary ridge-logistic regression on the CPU, one learner at a time.

The torch solver in :mod:`reciprocal_gym.learners.logistic` batches B learners into (B, P, P) tensors. On the GPU
that is the fast way; on the CPU each learner's Cholesky factorization and triangular solves become one LAPACK call
per matrix (a few microseconds each for P = 31), and the batched tensors of the Hessian product stream through memory
op by op. Here each learner's whole fit (objective, gradient, Hessian, Cholesky, solves, line search) runs in one
numba-compiled loop whose working set (a P x P matrix and a few vectors) stays in the first-level cache, with the
learners spread over threads. It is the same algorithm as the torch solver's ``"newton"`` (same start, same Armijo
rule, same stopping and stalling tests), so both give the same iterations and agree to rounding; a test checks that.

Used by :func:`~reciprocal_gym.learners.fit_ridge_logistic` for binary problems on the CPU. Atoms come as a (B, n, p)
tensor, an (n, p) tensor shared by all learners, or :class:`~reciprocal_gym.learners.atoms.RowAtoms` (standardized rows
of a dataset, each learner's built in a small buffer as it is fitted).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from torch import Tensor

from reciprocal_gym.learners.atoms import RowAtoms
from reciprocal_gym.utils.threads import kernel_threads, run_chunks
from reciprocal_gym.utils.vector_math import exp_neg_abs, log1p_unit

# Reassociation lets the compiler vectorize the inner products; NaN and inf keep their IEEE meaning (the line search
# tests for a finite objective).
_FAST = {"reassoc", "contract"}

STATUS_OK, STATUS_NOT_PD = 0, 1
"""Per-learner outcome codes of :func:`fit_binary_newton`: fitted, or a Hessian that Cholesky rejected (only
possible with lam = 0), which the caller hands to the torch solver's jittered factorization."""


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _value_and_gradient(X, a, q, theta, lam, z, s, g, e, log1p_e, work):
    """Objective at theta, and its gradient into g (logits into z, probabilities into s), in one pass over the
    atoms; returns (objective, gradient norm). Zero-weight atoms (padding) add nothing. ``z``, ``e``, ``log1p_e``
    and ``work`` are float64 buffers (the exponentials are computed for all atoms at once, in vectorized form)."""
    n, p = X.shape
    f = 0.0
    for j in range(p):
        g[j] = lam * theta[j]
    for i in range(n):
        acc = 0.0
        for j in range(p):
            acc += X[i, j] * theta[j]
        z[i] = acc
    exp_neg_abs(z, e, work)  # one exponential per atom for both the probability and the softplus
    log1p_unit(e, log1p_e)
    for i in range(n):
        zi, ei = z[i], e[i]
        si = 1.0 / (1.0 + ei) if zi >= 0.0 else ei / (1.0 + ei)
        s[i] = si
        if a[i] != 0.0:
            # softplus(z) = max(z, 0) + log1p(exp(-|z|)); z itself above torch's softplus threshold of 20
            softplus = zi if zi > 20.0 else max(zi, 0.0) + log1p_e[i]
            f += a[i] * (softplus - q[i] * zi)
            c = a[i] * (si - q[i])
            for j in range(p):
                g[j] += c * X[i, j]
    norm2, gnorm2 = 0.0, 0.0
    for j in range(p):
        norm2 += theta[j] * theta[j]
        gnorm2 += g[j] * g[j]
    return f + 0.5 * lam * norm2, math.sqrt(gnorm2)


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _cholesky_solve(M, m, rhs, out):
    """Factor the leading m x m block of M = L L^T in place (L in the lower triangle, left-looking) and solve
    M out = rhs. Returns False, leaving ``out`` unset, if M is not numerically positive definite."""
    for j in range(m):
        acc = M[j, j]
        for k in range(j):
            acc -= M[j, k] * M[j, k]
        if not acc > 0.0:
            return False
        diag = math.sqrt(acc)
        M[j, j] = diag
        for i in range(j + 1, m):
            acc = M[i, j]
            for k in range(j):
                acc -= M[i, k] * M[j, k]
            M[i, j] = acc / diag
    for j in range(m):  # L y = rhs
        acc = rhs[j]
        for k in range(j):
            acc -= M[j, k] * out[k]
        out[j] = acc / M[j, j]
    for j in range(m - 1, -1, -1):  # L^T out = y, by columns of L^T (rows of L, contiguous)
        oj = out[j] / M[j, j]
        out[j] = oj
        for k in range(j):
            out[k] -= M[j, k] * oj
    return True


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _newton_direction(X, a, s, g, lam, H, d, Y, minus_g):
    """d = -H^{-1} g with H = X^T diag(a s (1 - s)) X + lam I (p x p), by Cholesky.

    The Hessian is Y^T Y with Y (n, p) = diag(sqrt(a s (1 - s))) X, one BLAS matrix product (at n = 41, p = 31
    about 1.5x faster than compiled dot products). Returns False if H is not numerically positive definite."""
    n, p = X.shape
    for i in range(n):
        c = math.sqrt(a[i] * s[i] * (1.0 - s[i]))
        for j in range(p):
            Y[i, j] = c * X[i, j]
    np.dot(Y.T, Y, H)
    for j in range(p):
        H[j, j] += lam
        minus_g[j] = -g[j]
    return _cholesky_solve(H, p, minus_g, d)


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _atom_gram(X, a, used, Xu, K):
    """The atoms with a non-zero weight: their indices into ``used``, their rows into ``Xu`` (contiguous), and
    their Gram matrix K[i, j] = Xu[i] . Xu[j] (lower triangle). Returns their count m."""
    n, p = X.shape
    m = 0
    for i in range(n):
        if a[i] != 0.0:
            used[m] = i
            Xu[m, :] = X[i, :]
            m += 1
    for i in range(m):
        for j in range(i + 1):
            acc = 0.0
            for k in range(p):
                acc += Xu[i, k] * Xu[j, k]
            K[i, j] = acc
    return m


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _newton_direction_dual(Xu, a, s, g, lam, used, m, K, M, c, u, v, d):
    """The same direction through the m x m system of the m atoms in use (Woodbury), for m up to about p:
    with Y = diag(c) Xu, c = sqrt(a s (1 - s)) on those atoms, H = lam I + Y^T Y and

        H^{-1} g = (g - Y^T (lam I + Y Y^T)^{-1} Y g) / lam,

    where Y Y^T = diag(c) K diag(c) comes from the Gram matrix K of the atoms, fixed during a fit. Per iteration
    this costs O(m^3 / 6 + m p) against O(n p^2 / 2 + p^3 / 6) for forming and factoring H. Needs lam > 0."""
    p = Xu.shape[1]
    for i in range(m):
        r = used[i]
        c[i] = math.sqrt(a[r] * s[r] * (1.0 - s[r]))
        acc = 0.0
        for k in range(p):
            acc += Xu[i, k] * g[k]
        u[i] = c[i] * acc
    for i in range(m):
        for j in range(i + 1):
            M[i, j] = c[i] * c[j] * K[i, j]
        M[i, i] += lam
    if not _cholesky_solve(M, m, u, v):
        return False
    for k in range(p):
        d[k] = -g[k]
    for i in range(m):
        w = c[i] * v[i]
        for k in range(p):
            d[k] += w * Xu[i, k]
    for k in range(p):
        d[k] /= lam
    return True


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _fit_one(X, a, q, th, lam, tol, max_iter, eps, dual_atoms, buffers):
    """Fit one learner with atoms X (n, p) from the warm start th (p,), overwritten with the result; returns
    (iterations, gradient norm, status). ``buffers`` are the work arrays of :func:`_buffers`."""
    z, s, z_new, s_new, g, g_new, d, trial, H, Y, used, Xu, K, M, c, u, v, e, log1p_e, work = buffers
    p = X.shape[1]
    f, gnorm = _value_and_gradient(X, a, q, th, lam, z, s, g, e, log1p_e, work)
    # at most ``dual_atoms`` atoms in use (and a ridge): Newton directions through the atoms' m x m system
    m = _atom_gram(X, a, used, Xu, K) if lam > 0.0 and gnorm > tol and _count_used(a) <= dual_atoms else -1
    used_iterations = 0
    while gnorm > tol and used_iterations < max_iter:
        if m >= 0:
            ok = _newton_direction_dual(Xu, a, s, g, lam, used, m, K, M, c, u, v, d)
        else:
            ok = _newton_direction(X, a, s, g, lam, H, d, Y, trial)
        if not ok:
            return used_iterations, gnorm, STATUS_NOT_PD
        slope = 0.0
        for j in range(p):
            slope += g[j] * d[j]
        slack = 10.0 * eps * max(abs(f), 1.0)
        # Armijo backtracking: the full step, then up to 40 halvings
        step, accepted, f_new, gnorm_new = 1.0, False, f, gnorm
        for _ in range(41):
            for j in range(p):
                trial[j] = th[j] + step * d[j]
            f_new, gnorm_new = _value_and_gradient(X, a, q, trial, lam, z_new, s_new, g_new, e, log1p_e, work)
            if f_new <= f + 1e-4 * step * slope + slack and math.isfinite(f_new):
                accepted = True
                break
            step *= 0.5
        used_iterations += 1
        if not accepted:  # no decrease at rounding level: the learner has stalled
            break
        th[:] = trial
        z[:] = z_new
        s[:] = s_new
        g[:] = g_new
        f, gnorm = f_new, gnorm_new
    return used_iterations, gnorm, STATUS_OK


@numba.njit(cache=True, nogil=True)
def _count_used(a):
    m = 0
    for i in range(a.shape[0]):
        m += a[i] != 0.0
    return m


@numba.njit(cache=True, nogil=True)
def _buffers(n, p, dtype):
    # the logits (first and third) in float64 whatever the dtype: they are accumulated in float64
    return (np.empty(n), np.empty(n, dtype), np.empty(n), np.empty(n, dtype), np.empty(p, dtype),
            np.empty(p, dtype), np.empty(p, dtype), np.empty(p, dtype), np.empty((p, p), dtype),
            np.empty((n, p), dtype), np.empty(n, np.int64), np.empty((n, p), dtype), np.empty((n, n), dtype),
            np.empty((n, n), dtype), np.empty(n, dtype), np.empty(n, dtype), np.empty(n, dtype), np.empty(n),
            np.empty(n), np.empty(n))


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _fit_rows(X, a, q, theta, lam, tol, max_iter, eps, dual_atoms, iterations, grad_norm, status):
    """Fit learners 0..B-1 one after another; X is (B, n, p), or (1, n, p) for atoms shared by every learner."""
    B, n, p = a.shape[0], X.shape[1], X.shape[2]
    buffers = _buffers(n, p, X.dtype)
    for b in range(B):
        Xb = X[0] if X.shape[0] == 1 else X[b]
        iterations[b], grad_norm[b], status[b] = _fit_one(Xb, a[b], q[b], theta[b], lam[b], tol, max_iter, eps,
                                                          dual_atoms, buffers)


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _fit_gathered(table, rows, mean, scale, a, q, theta, lam, tol, max_iter, eps, dual_atoms, iterations, grad_norm,
                  status):
    """Like :func:`_fit_rows` for atoms ``((table[rows[b, i]] - mean[b]) / scale[b], 1)``, each learner's built in a
    small buffer (the same arithmetic as :meth:`RowAtoms.materialize`)."""
    B, n = rows.shape
    dim = table.shape[1]
    p = dim + 1
    Xb = np.empty((n, p), table.dtype)
    buffers = _buffers(n, p, table.dtype)
    for b in range(B):
        for i in range(n):
            r = rows[b, i]
            for j in range(dim):
                Xb[i, j] = (table[r, j] - mean[b, j]) / scale[b, j]
            Xb[i, dim] = 1.0
        iterations[b], grad_norm[b], status[b] = _fit_one(Xb, a[b], q[b], theta[b], lam[b], tol, max_iter, eps,
                                                          dual_atoms, buffers)


def fit_binary_newton(
    X: Tensor | RowAtoms, a: Tensor, q: Tensor, lam: float | Tensor, theta: Tensor, tol: float, max_iter: int,
    dual_atoms: int | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Fit B binary learners on the CPU, writing nothing into the inputs.

    Args:
        X: (B, n, p) atoms per learner, (n, p) atoms shared by all, or :class:`RowAtoms`; a: (B, n) normalized
            weights (zero for padding); q: (B, n) probability of class 1 per atom; theta: (B, p) warm start. All of
            one floating dtype, on the CPU. lam: the ridge strength, shared or (B,) one per learner.
        dual_atoms: a learner with at most this many atoms in use (and lam > 0) takes its Newton directions from
            the atoms' m x m system (:func:`_newton_direction_dual`); default p, about where that stops being the
            cheaper of the two here. 0 turns it off. The choice changes rounding only.

    Returns:
        theta (B, p), iterations (B,), gradient norms (B,) and status codes (B,) (:data:`STATUS_OK` or
        :data:`STATUS_NOT_PD`).
    """
    an = np.ascontiguousarray(a.numpy())
    qn = np.ascontiguousarray(q.numpy())
    out = theta.detach().clone().contiguous()
    thn = out.numpy()
    B = an.shape[0]
    iterations = np.zeros(B, dtype=np.int64)
    grad_norm = np.zeros(B, dtype=an.dtype)
    status = np.zeros(B, dtype=np.int8)
    p = theta.shape[1]
    dual = p if dual_atoms is None else int(dual_atoms)
    # the ridge per learner, in float64 (the arithmetic a Python float gets in the kernels)
    lams = (np.full(B, float(lam)) if not isinstance(lam, Tensor)
            else np.ascontiguousarray(lam.detach().cpu().double().numpy()))
    args = (float(tol), int(max_iter), float(torch.finfo(theta.dtype).eps), dual)
    if isinstance(X, RowAtoms):
        table = np.ascontiguousarray(X.table.numpy())
        rows, mean, scale = (np.ascontiguousarray(t.numpy()) for t in (X.rows, X.mean, X.scale))

        def work(lo: int, hi: int) -> None:
            _fit_gathered(table, rows[lo:hi], mean[lo:hi], scale[lo:hi], an[lo:hi], qn[lo:hi], thn[lo:hi],
                          lams[lo:hi], *args, iterations[lo:hi], grad_norm[lo:hi], status[lo:hi])
    else:
        Xn = np.ascontiguousarray((X if X.dim() == 3 else X.unsqueeze(0)).numpy())
        per_learner = X.dim() == 3

        def work(lo: int, hi: int) -> None:
            _fit_rows(Xn[lo:hi] if per_learner else Xn, an[lo:hi], qn[lo:hi], thn[lo:hi], lams[lo:hi], *args,
                      iterations[lo:hi], grad_norm[lo:hi], status[lo:hi])

    run_chunks(B, work, kernel_threads())
    return out, torch.from_numpy(iterations), torch.from_numpy(grad_norm), torch.from_numpy(status)
