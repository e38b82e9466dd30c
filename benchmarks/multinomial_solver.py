"""Multinomial ERM on digits (10 classes x 65 parameters): full Newton against Newton-CG, side by side.

Full Newton builds a (650 x 650) Hessian per learner (O(n C^2 p^2)) and factors it (O((C p)^3)); Newton-CG solves
each Newton system by conjugate gradients with Hessian-vector products (O(n C p) each) and a class-block
preconditioner. Both run to the same gradient-norm tolerance from the same start; the script checks that they
reach it and agree on the solution, then prints times and the ratio.

    python benchmarks/multinomial_solver.py --batch 1 8 32 --n-train 300
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from reciprocal_gym.data import load_dataset, make_split, resolve_sizes
from reciprocal_gym.learners import fit_ridge_logistic


def problem(batch: int, n_train: int, seed: int, dtype: torch.dtype):
    ds = load_dataset("digits")
    sizes = resolve_sizes(ds.n_samples, n_labeled=n_train, n_pool=100)
    X, Q = [], []
    for i in range(batch):
        split = make_split(ds, sizes, np.random.default_rng([seed + i, 0]))
        X.append(split.features(ds.X, "labeled"))
        Q.append(np.eye(ds.n_classes)[split.y["labeled"]])
    return (torch.tensor(np.stack(X), dtype=dtype), torch.ones(batch, n_train, dtype=dtype),
            torch.tensor(np.stack(Q), dtype=dtype))


def timed(solver: str, X, w, Q, lam: float, tol: float):
    start = time.perf_counter()
    fit = fit_ridge_logistic(X, w, Q, lam, tol=tol, solver=solver, max_iter=100, compute_gamma=False)
    return time.perf_counter() - start, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--n-train", type=int, default=300)
    parser.add_argument("--lam", type=float, default=0.01)
    parser.add_argument("--tol", type=float, default=1e-8)
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    print(f"digits multinomial ERM, {args.n_train} rows per learner, lam={args.lam}, tol={args.tol}, {args.dtype}")
    print(f"{'B':>5}{'newton s':>11}{'iters':>7}{'newton-cg s':>13}{'iters':>7}{'speed-up':>10}{'max |dtheta|':>14}")
    for batch in args.batch:
        X, w, Q = problem(batch, args.n_train, 0, dtype)
        timed("newton-cg", X[:1], w[:1], Q[:1], args.lam, args.tol)  # warm-up
        t_full, full = timed("newton", X, w, Q, args.lam, args.tol)
        t_cg, cg = timed("newton-cg", X, w, Q, args.lam, args.tol)
        if not (bool(full.converged.all()) and bool(cg.converged.all())):
            raise SystemExit("a solver did not reach the tolerance")
        gap = float((full.theta - cg.theta).abs().max())
        print(f"{batch:>5}{t_full:>11.3f}{int(full.iterations.max()):>7}{t_cg:>13.3f}{int(cg.iterations.max()):>7}"
              f"{t_full / t_cg:>10.1f}{gap:>14.1e}", flush=True)


if __name__ == "__main__":
    main()
