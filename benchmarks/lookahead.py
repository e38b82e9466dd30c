"""Cost of the look-ahead criteria: the batched PPP (one refit per learner and candidate, all in one solve) against a
per-candidate scikit-learn loop computing the same quantity, side by side in one process.

Workload: SelfTrain on breast_cancer (30 features), 20 labeled rows plus 5 pseudo-labeled ones, a pool of 200,
scikit-learn's conventions (``penalty="sum", lam=1 / C`` with C = 1, a free intercept, standardized features) so that
both sides fit the same objective. The loop refits ``LogisticRegression(C, solver="newton-cholesky", tol=1e-10)``
on the training set plus each candidate (hard pseudo-label) and evaluates the Laplace evidence with numpy; the env
side is ``agents.lookahead.ppp`` on the selection context. Both sides' values are compared (max |difference|). The
loop is timed on a subset of learners and scaled (it is linear in the learners). Run from the repository root::

    python benchmarks/lookahead.py [--batch 1 16 64] [--pool 200] [--out lookahead.json]
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from agents.lookahead import ppp
from reciprocal_gym import selection_context

C = 1.0


def make_env(batch: int, pool: int):
    env = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=batch, vectorization_mode="vector_entry_point",
                       dataset="breast_cancer", n_labeled=20, n_pool=pool, label_mode="hard", lam=1.0 / C,
                       penalty="sum", penalize_intercept=False, max_steps=10**6)
    obs, _ = env.reset(seed=0)
    for step in range(5):
        obs, *_ = env.step(torch.full((batch,), step))
    return env, obs


def sklearn_loop(context, learners: list[int]) -> np.ndarray:
    """PPP for the given learners, one scikit-learn refit per candidate."""
    out = np.empty((len(learners), context.pool_rows.shape[1]))
    train = context.features(context.train_rows).numpy()
    mass, labels = context.train_mass.numpy(), context.train_labels[..., 1].numpy()
    pool = context.features(context.pool_rows).numpy()
    pseudo = (context.logits > 0).numpy().astype(float)
    for i, b in enumerate(learners):
        keep = mass[b] > 0
        Z, w, y = train[b, keep], mass[b, keep], labels[b, keep]
        for c in range(pool.shape[1]):
            Zx = np.vstack([Z, pool[b, c]])
            yx, wx = np.append(y, pseudo[b, c]), np.append(w, 1.0)
            model = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-10, max_iter=1000)
            model.fit(Zx[:, :-1], yx.astype(int), sample_weight=wx)
            theta = np.append(model.coef_[0], model.intercept_[0])
            z = Zx @ theta
            loglik = -np.sum(wx * (np.logaddexp(0.0, z) - yx * z))
            s = 1.0 / (1.0 + np.exp(-z))
            H = (Zx * (wx * s * (1 - s))[:, None]).T @ Zx
            H[np.arange(len(theta) - 1), np.arange(len(theta) - 1)] += 1.0 / C
            P = len(theta)
            log_prior = -0.5 / C * np.sum(theta[:-1] ** 2) + 0.5 * (P - 1) * math.log(1.0 / C / (2 * math.pi))
            out[i, c] = loglik + log_prior + 0.5 * P * math.log(2 * math.pi) - 0.5 * np.linalg.slogdet(H)[1]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--pool", type=int, default=200)
    parser.add_argument("--loop-learners", type=int, default=2, help="learners the loop is timed on")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    print(f"{'B':>5}{'refits':>9}{'batched s':>11}{'loop s (scaled)':>17}{'ratio':>9}{'max |dPPP|':>12}")
    for batch in args.batch:
        env, obs = make_env(batch, args.pool)
        context = selection_context(env)
        ppp(obs, context)  # warm-up
        start = time.perf_counter()
        batched = ppp(obs, context).numpy()
        env_seconds = time.perf_counter() - start
        learners = list(range(min(batch, args.loop_learners)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            looped = sklearn_loop(context, learners)
            loop_seconds = (time.perf_counter() - start) * batch / len(learners)
        diff = float(np.abs(batched[learners] - looped).max())
        refits = batch * args.pool
        rows.append(dict(batch=batch, refits=refits, batched_seconds=env_seconds, loop_seconds=loop_seconds,
                         ratio=loop_seconds / env_seconds, max_abs_difference=diff))
        print(f"{batch:>5}{refits:>9}{env_seconds:>11.3f}{loop_seconds:>17.2f}{loop_seconds / env_seconds:>9.1f}"
              f"{diff:>12.2e}")
    if args.out is not None:
        args.out.write_text(json.dumps({"pool": args.pool, "torch_threads": torch.get_num_threads(), "rows": rows},
                                       indent=2))


if __name__ == "__main__":
    main()
