"""Throughput of the batched ActiveLearn env against a plain scikit-learn active-learning loop, side by side.

Both sides run pool-based uncertainty sampling on breast_cancer with a 400-point pool: each learner (its own
seeded split) queries, at every step, the pool point with the smallest margin |p(1|x) - p(0|x)| among the points
not yet queried (computed from the float32 probabilities, ties to the lowest index), gets its true label
(no noise), refits ridge-logistic regression and scores the test set. (a) is ``Reciprocal-ActiveLearn-v0`` through
``gym.make_vec`` with the reference ``SelectionAgent`` (greedy rule on that criterion) choosing for all B learners
at once; (b) is one scikit-learn ``LogisticRegression`` per learner (the same penalty: C = 1 / (lam * n), no
separate intercept, the intercept column penalized like the env; warm-started, tol 1e-8) in a Python loop.
Before any figure is printed, every learner's learning curve (test accuracy after each query) must give the same
area under the curve (mean test accuracy over the queries) within 0.005.

    python benchmarks/throughput_activelearn.py --batch 1 64 1024 --steps 20 [--breakdown]

The machine's speed drifts over minutes on shared hosts, so the two sides alternate: the env runs ``--rounds`` times
(8), each run followed by the scikit-learn loop on the next 1/rounds of the learners, and each side's rate is its
total work over its total time.

``--breakdown`` then splits the largest batch's env step into the ERM's LAPACK calls, the rest of the ERM and the
rest of the step (see ``step_breakdown.py``).

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
from agents import SelectionAgent
from reciprocal_gym.data import load_dataset, make_split, resolve_sizes

DATASET, N_LABELED, N_POOL, LAM = "breast_cancer", 20, 400, 0.01


def smallest_margin(obs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Uncertainty score: minus the margin |p1 - p0| of the float32 probabilities (the observation's margin column,
    which the env computes in float32 from those probabilities, as the scikit-learn loop below does)."""
    return -obs["candidates"][..., -3]


def run_env(batch: int, steps: int, seed: int, device: str):
    envs = gym.make_vec("Reciprocal-ActiveLearn-v0", num_envs=batch, vectorization_mode="vector_entry_point",
                        dataset=DATASET, n_labeled=N_LABELED, n_pool=N_POOL, lam=LAM, budget=steps + 1,
                        max_steps=steps + 1, device=device, dtype=torch.float64, autoreset_mode="disabled")
    agent = SelectionAgent(criterion=smallest_margin, rule="greedy", seed=seed)
    obs, _ = envs.reset(seed=seed)
    curve = np.zeros((steps, batch))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for t in range(steps):
        obs, _, _, _, info = envs.step(agent.act(obs))
        curve[t] = info["test_accuracy"].cpu().numpy()  # the copy synchronizes, as a consumer would
    return time.perf_counter() - start, curve


def run_sklearn(learners: np.ndarray, steps: int, seed: int, solver: str = "newton-cholesky"):
    """The loop for learners ``learners`` (indices into the batch); returns seconds and (steps, len) test accuracies."""
    dataset = load_dataset(DATASET)
    sizes = resolve_sizes(dataset.n_samples, N_LABELED, N_POOL)
    splits = [make_split(dataset, sizes, np.random.default_rng([seed + int(i), 0])) for i in learners]
    state = []
    for s in splits:
        f = {part: s.features(dataset.X, part) for part in ("labeled", "pool", "test")}
        model = LogisticRegression(C=1.0 / (LAM * N_LABELED), fit_intercept=False, tol=1e-8, max_iter=1000,
                                   warm_start=True, solver=solver)
        model.fit(f["labeled"], s.y["labeled"])
        state.append(dict(f=f, y=s.y, model=model, X=f["labeled"], t=s.y["labeled"],
                             queried=np.zeros(N_POOL, dtype=bool)))
    curve = np.zeros((steps, len(learners)))
    start = time.perf_counter()
    for t in range(steps):
        for i, L in enumerate(state):
            probs = L["model"].predict_proba(L["f"]["pool"]).astype(np.float32)
            score = -np.abs(probs[:, 1] - probs[:, 0])
            j = int(np.argmax(np.where(L["queried"], -np.inf, score)))
            L["queried"][j] = True
            L["X"] = np.vstack([L["X"], L["f"]["pool"][j : j + 1]])
            L["t"] = np.append(L["t"], L["y"]["pool"][j])
            L["model"].C = 1.0 / (LAM * len(L["t"]))
            L["model"].fit(L["X"], L["t"])
            curve[t, i] = L["model"].score(L["f"]["test"], L["y"]["test"])
    return time.perf_counter() - start, curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sklearn-solver", default="newton-cholesky", choices=("newton-cholesky", "lbfgs"),
                        help="the baseline's solver (default: newton-cholesky, which reaches the same tolerance)")
    parser.add_argument("--rounds", type=int, default=8,
                        help="env runs, each followed by the scikit-learn loop on the next 1/rounds of the learners")
    parser.add_argument("--breakdown", action="store_true",
                        help="split the largest batch's env step into LAPACK calls, rest of the ERM and the rest")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    print(f"ActiveLearn throughput: {DATASET}, pool {N_POOL}, {args.steps} queries, device {args.device}, float64, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), {platform.processor()}")
    print(f"{'B':>6}{'env learner-steps/s':>22}{'sklearn learner-steps/s':>26}{'ratio':>9}{'max |dAUC|':>12}"
          f"{'curves equal':>14}")
    rows = []
    for batch in args.batch:
        run_env(min(batch, 8), 2, args.seed, args.device)  # warm-up
        env_time, sk_time, env_curve, sk_curve = interleaved(
            batch, args.rounds, lambda b=batch: run_env(b, args.steps, args.seed, args.device),
            lambda learners: run_sklearn(learners, args.steps, args.seed, args.sklearn_solver))
        gap = float(np.abs(env_curve.mean(0) - sk_curve.mean(0)).max())
        same = float((np.abs(env_curve - sk_curve) < 1e-9).all(0).mean())
        if gap > 0.005:
            raise SystemExit(f"B={batch}: learning-curve AUCs differ by {gap:.4f} (> 0.005); no figures reported")
        env_rate, sk_rate = batch * args.steps / env_time, batch * args.steps / sk_time
        rows.append(dict(batch=batch, env_rate=env_rate, sklearn_rate=sk_rate, ratio=env_rate / sk_rate,
                         max_auc_gap=gap, identical_curves=same))
        print(f"{batch:>6}{env_rate:>22.0f}{sk_rate:>26.0f}{env_rate / sk_rate:>9.1f}{gap:>12.1e}{same:>14.1%}",
              flush=True)
    split = None
    if args.breakdown:
        batch = max(args.batch)
        split = breakdown(lambda: run_env(batch, args.steps, args.seed, args.device)[0], batch, args.steps,
                          next(r["sklearn_rate"] for r in rows if r["batch"] == batch))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                        "breakdown_ms_per_step": split}, indent=1))


if __name__ == "__main__":
    main()
