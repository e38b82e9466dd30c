"""What each compiled kernel buys: step time of the envs with torch ops against compiled kernels, part by part.

Pool envs (SelfTrain on breast_cancer, pool 400, hard labels, float64: the throughput benchmarks' workload): all
torch; then the compiled Newton fit alone; + the compiled prediction pass; + the compiled training-set gather (=
``backend="auto"``). Bandit (float32 Bernoulli): torch step against the compiled step. The configurations
alternate in rounds (the same stretch of a drifting machine) and the medians are reported, with the speed-up of each
part over the configuration without it. Run from the repository root::

    python benchmarks/backends.py [--batch 64 1024] [--rounds 5] [--out backends.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import reciprocal_gym  # noqa: F401
from reciprocal_gym.envs.backend import Backend

POOL_PARTS = {
    "torch": Backend("torch"),
    "fit": Backend("compiled", fit="compiled"),
    "fit+predict": Backend("compiled", fit="compiled", predict=True),
    "fit+predict+gather": Backend("compiled", fit="compiled", predict=True, gather=True),
}


def _time_pool(batch: int, backend: Backend, steps: int) -> float:
    env = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=batch, vectorization_mode="vector_entry_point",
                       dataset="breast_cancer", n_labeled=20, n_pool=400, label_mode="hard", lam=0.01,
                       max_steps=10**6, backend="compiled").unwrapped  # the throughput benchmarks' workload
    env.backend = dataclasses.replace(backend)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = []
    for _ in range(steps + 2):
        a = env.sample_actions(rng)
        actions.append(a)
        env.step(a)
    return _timed(env, actions, steps)


def _timed(env, actions, steps: int) -> float:
    """Seconds per step over ``actions[2:]`` after a reset and two warm-up steps."""
    env.reset(seed=0)
    env.step(actions[0])
    env.step(actions[1])
    start = time.perf_counter()
    for a in actions[2:]:
        env.step(a)
    return (time.perf_counter() - start) / steps


def _time_bandit(batch: int, backend: str, steps: int) -> float:
    env = gym.make_vec("Reciprocal-Bandit-v0", num_envs=batch, vectorization_mode="vector_entry_point",
                       max_steps=10**6, backend=backend)
    actions = torch.randint(0, 10, (steps + 2, batch), generator=torch.Generator().manual_seed(0))
    return _timed(env, actions, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--bandit-batch", type=int, nargs="+", default=[16, 4096])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of {args.rounds} rounds")
    results = {}
    for batch in args.batch:
        steps = 100 if batch == 1 else 20 if batch <= 256 else 6
        times = {name: [] for name in POOL_PARTS}
        for _ in range(args.rounds):
            for name, backend in POOL_PARTS.items():
                times[name].append(_time_pool(batch, backend, steps))
        med = {name: float(np.median(t)) for name, t in times.items()}
        names = list(POOL_PARTS)
        row = {name: {"ms_per_step": 1e3 * med[name],
                      "speedup_of_this_part": med[names[i - 1]] / med[name] if i else None,
                      "speedup_over_torch": med["torch"] / med[name]} for i, name in enumerate(names)}
        results[f"selftrain_B{batch}"] = row
        print(f"SelfTrain B={batch}: " + ", ".join(
            f"{n} {r['ms_per_step']:.2f} ms" + (f" (part x{r['speedup_of_this_part']:.2f})" if r["speedup_of_this_part"]
                                               else "") for n, r in row.items()), flush=True)
    for batch in args.bandit_batch:
        steps = 2000 if batch <= 256 else 300
        times = {"torch": [], "compiled": []}
        for _ in range(args.rounds):
            for name in times:
                times[name].append(_time_bandit(batch, name, steps))
        med = {name: float(np.median(t)) for name, t in times.items()}
        results[f"bandit_B{batch}"] = {"torch_us": 1e6 * med["torch"], "compiled_us": 1e6 * med["compiled"],
                                       "speedup": med["torch"] / med["compiled"]}
        print(f"Bandit B={batch}: torch {1e6 * med['torch']:.1f} us, compiled {1e6 * med['compiled']:.1f} us, "
              f"x{med['torch'] / med['compiled']:.2f}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
