"""Step cost of this checkout against another one (e.g. the previous commit), side by side.

The two checkouts run the same workloads in alternating subprocesses (``rounds`` times each, interleaved so both
sample the same stretch of a drifting machine, the side that goes first alternating too); the medians and their
ratio are printed. For a run under competing load, start busy processes first (e.g. two ``python -c "while True:
pass"``). Make the other checkout
with ``git worktree add /tmp/before <commit>``, then::

    python benchmarks/revision_compare.py --other /tmp/before [--rounds 5] [--out compare.json]

A ratio above 1 means this checkout is slower.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

WORKLOADS = {
    # name: (env id, num_envs, steps, env kwargs)
    "selftrain_B1": ("Reciprocal-SelfTrain-v0", 1, 200, {"dataset": "breast_cancer", "max_steps": 1000}),
    "selftrain_B64": ("Reciprocal-SelfTrain-v0", 64, 40, {"dataset": "breast_cancer", "max_steps": 1000}),
    "selftrain_B1024": ("Reciprocal-SelfTrain-v0", 1024, 10, {"dataset": "breast_cancer", "max_steps": 1000}),
    "selftrain_digits_B64": ("Reciprocal-SelfTrain-v0", 64, 4, {"dataset": "digits", "max_steps": 1000}),
    "activelearn_B1024": ("Reciprocal-ActiveLearn-v0", 1024, 10, {"dataset": "breast_cancer", "budget": 1000,
                                                                   "max_steps": 1000}),
    "bandit_B16": ("Reciprocal-Bandit-v0", 16, 2000, {"max_steps": 100000}),
    "bandit_B4096": ("Reciprocal-Bandit-v0", 4096, 500, {"max_steps": 100000}),
    "contextual_B256": ("Reciprocal-ContextualBandit-v0", 256, 200, {"max_steps": 100000}),
    "solver_relax_B64": ("Reciprocal-SolverRelax-v0", 64, 50, {"max_steps": 100000}),
}

CHILD = r"""
import json, sys, time
import numpy as np, torch, gymnasium as gym
import reciprocal_gym
env_id, B, steps, kwargs = json.loads(sys.argv[1])
envs = gym.make_vec(env_id, num_envs=B, vectorization_mode="vector_entry_point", **kwargs)
obs, _ = envs.reset(seed=0)
rng = np.random.default_rng(0)
def act(obs):
    if "action_mask" in obs:  # pool envs: the first selectable point of a random order
        mask = obs["action_mask"].bool()
        scores = torch.as_tensor(rng.random(mask.shape)).masked_fill(~mask, -1.0)
        return scores.argmax(1)
    return torch.as_tensor(rng.integers(0, envs.single_action_space.n, B))
for _ in range(3):
    obs, *_ = envs.step(act(obs))
start = time.perf_counter()
for _ in range(steps):
    obs, *_ = envs.step(act(obs))
print(json.dumps((time.perf_counter() - start) / steps))
"""


def measure(checkout: Path, workload: tuple) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(workload)], env=env, capture_output=True,
                         text=True, check=True, cwd=checkout)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--other", type=Path, required=True, help="the other checkout (its repository root)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=None, help="workload names (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    here = Path(__file__).resolve().parents[1]
    names = args.only or list(WORKLOADS)
    results = {}
    print(f"{'workload':24s} {'this ms/step':>13s} {'other ms/step':>14s} {'this/other':>11s}")
    for name in names:
        mine, theirs = [], []
        for r in range(args.rounds):  # ABBA: which side goes first alternates (the first one of a pair can be
            # favoured or hurt by the machine's state, e.g. under competing load)
            if r % 2 == 0:
                mine.append(measure(here, WORKLOADS[name]))
                theirs.append(measure(args.other, WORKLOADS[name]))
            else:
                theirs.append(measure(args.other, WORKLOADS[name]))
                mine.append(measure(here, WORKLOADS[name]))
        a, b = float(np.median(mine)), float(np.median(theirs))
        results[name] = {"this_s": a, "other_s": b, "ratio": a / b}
        print(f"{name:24s} {a * 1e3:13.3f} {b * 1e3:14.3f} {a / b:11.3f}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
