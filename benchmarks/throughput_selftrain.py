"""Throughput of the batched SelfTrain env against a plain scikit-learn loop, side by side in one process.

Both sides do the same self-training steps on breast_cancer with a 400-point pool: each learner (its own seeded
split) takes the pool points in a pre-generated random order, one per step, pseudo-labels each with its current
model's hard prediction, refits ridge-logistic regression on labeled + pseudo-labeled points, and scores the
validation set. (a) is ``Reciprocal-SelfTrain-v0`` through ``gym.make_vec`` (all B learners in one batch);
(b) is one scikit-learn ``LogisticRegression`` refit per learner and step (the same penalty: C = 1 / (lam * n),
no separate intercept, the intercept column penalized like the env; warm-started). Before any figure is
printed, the validation accuracy of every learner after every step must agree within 1e-3.

    python benchmarks/throughput_selftrain.py --batch 1 64 1024 --steps 10 [--breakdown]

The machine's speed drifts over minutes on shared hosts, so the two sides alternate: the env runs ``--rounds`` times
(8), each run followed by the scikit-learn loop on the next 1/rounds of the learners, and each side's rate is its
total work over its total time.

``--breakdown`` then runs the largest batch once more under the torch profiler and splits an env step into the
ERM's LAPACK calls (Cholesky factorizations and triangular solves, one call per learner matrix), the rest of the
ERM, and the rest of the step, with the ratio each part alone would allow against the scikit-learn rate.

The baseline's solver is scikit-learn's ``newton-cholesky`` by default: like the env it reaches the gradient tolerance
(its solution agrees with the env's to about 1e-11). ``--sklearn-solver lbfgs`` is the scikit-learn default; it
stops on its relative-decrease test first (parameters off by about 1e-7), which is enough to break near-ties
between candidates differently.

For a fair numpy baseline on machines that set OPENBLAS_CORETYPE, run with it (and OPENBLAS_L2_SIZE) unset.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from interleave import interleaved
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from step_breakdown import breakdown

import reciprocal_gym  # noqa: F401
from reciprocal_gym.data import load_dataset, make_split, resolve_sizes

DATASET, N_LABELED, N_POOL, LAM = "breast_cancer", 20, 400, 0.01


def pool_orders(batch: int, steps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(N_POOL)[:steps] for _ in range(batch)])


def run_env(batch: int, steps: int, seed: int, orders: np.ndarray, device: str, dtype: torch.dtype):
    envs = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=batch, vectorization_mode="vector_entry_point",
                        dataset=DATASET, n_labeled=N_LABELED, n_pool=N_POOL, label_mode="hard", adaptation="add",
                        lam=LAM, max_steps=steps + 1, device=device, dtype=dtype, autoreset_mode="disabled")
    envs.reset(seed=seed)
    actions = torch.as_tensor(orders, device=device)
    accuracy = np.zeros((steps, batch))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for t in range(steps):
        _, _, _, _, info = envs.step(actions[:, t])
        accuracy[t] = info["val_accuracy"].cpu().numpy()  # the copy synchronizes, as a consumer would
    elapsed = time.perf_counter() - start
    return elapsed, accuracy


def run_sklearn(learners: np.ndarray, steps: int, seed: int, orders: np.ndarray, solver: str = "newton-cholesky"):
    """The loop for learners ``learners`` (indices into the batch); returns seconds and (steps, len) accuracies."""
    dataset = load_dataset(DATASET)
    sizes = resolve_sizes(dataset.n_samples, N_LABELED, N_POOL)
    splits = [make_split(dataset, sizes, np.random.default_rng([seed + int(i), 0])) for i in learners]
    orders = orders[learners]
    models, train_X, train_y = [], [], []
    features = [{part: s.features(dataset.X, part) for part in ("labeled", "pool", "val")} for s in splits]
    for s, f in zip(splits, features, strict=True):
        model = LogisticRegression(C=1.0 / (LAM * N_LABELED), fit_intercept=False, tol=1e-8, max_iter=1000,
                                   warm_start=True, solver=solver)
        models.append(model.fit(f["labeled"], s.y["labeled"]))
        train_X.append(f["labeled"])
        train_y.append(s.y["labeled"])
    accuracy = np.zeros((steps, len(learners)))
    start = time.perf_counter()
    for t in range(steps):
        for i, (s, f, model) in enumerate(zip(splits, features, models, strict=True)):
            j = orders[i, t]
            x = f["pool"][j : j + 1]
            train_X[i] = np.vstack([train_X[i], x])
            train_y[i] = np.append(train_y[i], model.predict(x))
            model.C = 1.0 / (LAM * len(train_y[i]))
            model.fit(train_X[i], train_y[i])
            accuracy[t, i] = model.score(f["val"], s.y["val"])
    return time.perf_counter() - start, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sklearn-solver", default="newton-cholesky", choices=("newton-cholesky", "lbfgs"),
                        help="the baseline's solver (default: newton-cholesky, which reaches the same tolerance)")
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    parser.add_argument("--rounds", type=int, default=8,
                        help="env runs, each followed by the scikit-learn loop on the next 1/rounds of the learners")
    parser.add_argument("--breakdown", action="store_true",
                        help="split the largest batch's env step into LAPACK calls, rest of the ERM and the rest")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    warnings.simplefilter("ignore", ConvergenceWarning)
    print(f"SelfTrain throughput: {DATASET}, pool {N_POOL}, {args.steps} steps, device {args.device}, "
          f"{args.dtype}, torch {torch.__version__} ({torch.get_num_threads()} threads), {platform.processor()}")
    header = f"{'B':>6}{'env learner-steps/s':>22}{'sklearn learner-steps/s':>26}{'ratio':>9}{'max |dacc|':>12}"
    print(header)
    rows = []
    for batch in args.batch:
        orders = pool_orders(batch, args.steps, args.seed)
        run_env(min(batch, 8), 2, args.seed, orders[:8], args.device, dtype)  # warm-up
        env_time, sk_time, env_acc, sk_acc = interleaved(
            batch, args.rounds, lambda b=batch, o=orders: run_env(b, args.steps, args.seed, o, args.device, dtype),
            lambda learners, o=orders: run_sklearn(learners, args.steps, args.seed, o, args.sklearn_solver))
        gap = float(np.abs(env_acc - sk_acc).max())
        if gap > 1e-3:
            raise SystemExit(f"B={batch}: validation accuracies differ by {gap:.4f} (> 1e-3); no figures reported")
        env_rate = batch * args.steps / env_time
        sk_rate = batch * args.steps / sk_time
        rows.append(dict(batch=batch, env_rate=env_rate, sklearn_rate=sk_rate, ratio=env_rate / sk_rate,
                         max_accuracy_gap=gap))
        print(f"{batch:>6}{env_rate:>22.0f}{sk_rate:>26.0f}{env_rate / sk_rate:>9.1f}{gap:>12.1e}", flush=True)
    split = None
    if args.breakdown:
        batch = max(args.batch)
        orders = pool_orders(batch, args.steps, args.seed)
        split = breakdown(lambda: run_env(batch, args.steps, args.seed, orders, args.device, dtype)[0], batch,
                          args.steps, next(r["sklearn_rate"] for r in rows if r["batch"] == batch))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                        "breakdown_ms_per_step": split}, indent=1))


if __name__ == "__main__":
    main()
