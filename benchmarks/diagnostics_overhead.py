"""Overhead of the ConvergenceDiagnostics wrapper on the SelfTrain vector env, side by side in one process.

B = 256 learners, a 200-point pool (breast_cancer), a softmax selection agent; the bare env and the wrapped env
(exact and sliced W1) step the same actions in alternating timed blocks. Reported as ratios to the bare step time:
over the whole run, for the first block (the transient, where the training sets move the most) and per block. In
expected mode the loop settles within a few dozen steps and the diagnostics get cheaper as the changes shrink, so
the later blocks are cheaper than the first. The script also reports the sliced distance's error against the
exact W1 on this case (the documented case of the wrapper's docstring).

    python benchmarks/diagnostics_overhead.py --adaptation add --steps 10 --rounds 3
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

import reciprocal_gym  # noqa: F401
from agents import SelectionAgent
from reciprocal_gym.wrappers import ConvergenceDiagnostics, sliced_w1


def make(adaptation: str, batch: int, distance: str | None):
    k = 1 if adaptation == "add" else 5
    envs = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=batch, vectorization_mode="vector_entry_point",
                        dataset="breast_cancer", n_pool=200, adaptation=adaptation, k=k, label_mode="soft",
                        max_steps=10_000, autoreset_mode="disabled")
    if distance is not None:
        envs = ConvergenceDiagnostics(envs, distance=distance)
    agent = SelectionAgent(criterion="confidence", rule="softmax", tau=0.1, k=k, law=adaptation == "expected",
                           seed=0)
    obs, _ = envs.reset(seed=0)
    return envs, agent, obs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adaptation", default="add", choices=("add", "amend", "swap", "expected"))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed block")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sides = {name: make(args.adaptation, args.batch, distance)
             for name, distance in (("bare", None), ("exact", "exact"), ("sliced", "sliced"))}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, (envs, agent, obs) in sides.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                obs, _, _, _, info = envs.step(agent.act(obs))
            times[name].append((time.perf_counter() - start) / args.steps)
            sides[name] = (envs, agent, obs)
    print(f"ConvergenceDiagnostics overhead: SelfTrain {args.adaptation}, B = {args.batch}, pool 200, torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads)")
    # the whole run (every block: a loop that settles makes later steps cheaper to diagnose) and the first block
    # (the transient, where the training sets still move the most)
    bare = float(np.mean(times["bare"]))
    for name in sides:
        t = float(np.mean(times[name]))
        blocks = [a / b for a, b in zip(times[name], times["bare"], strict=True)]
        print(f"  {name:>6}: {t * 1e3:8.1f} ms per step, {t / bare:5.2f} x bare over the run; first block "
              f"{blocks[0]:5.2f} x; per block {' '.join(f'{r:.2f}' for r in blocks)}")
    # the sliced distance against the exact W1 on the same successive training sets
    envs, agent, obs = make(args.adaptation, args.batch, "exact")
    base = envs.unwrapped
    ratios = []
    for _ in range(5):
        x, y0, m0 = base.training_measure()
        obs, _, _, _, info = envs.step(agent.act(obs))
        _, y1, m1 = base.training_measure()
        sliced = sliced_w1(x, y0, m0, y1, m1, envs.tracker.directions)
        ratios.append((sliced / info["w1"]).cpu().numpy())
    r = np.concatenate(ratios)
    print(f"  sliced / exact W1 over {len(r)} learner-steps: median {np.median(r):.3f}, "
          f"5-95 % range [{np.quantile(r, 0.05):.3f}, {np.quantile(r, 0.95):.3f}]")


if __name__ == "__main__":
    main()
