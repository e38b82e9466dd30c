"""Self-training with reference selection rules: which data-selection policy helps, and does the loop settle?

Runs ``Reciprocal-SelfTrain-v0`` as a batched vector env (one learner per seed) with four reference agents (random,
greedy, epsilon-greedy and softmax selection over the model's confidence) and prints a short report: test accuracy
before and after self-training, pseudo-label error, and the size of the last parameter change.

    python examples/self_training_quickstart.py --dataset breast_cancer --learners 32 --steps 40
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import gymnasium as gym
import torch

import reciprocal_gym  # noqa: F401  (registers the environments)
from agents import SelectionAgent
from reciprocal_gym.data import DATASETS

AGENTS = {
    "random": dict(rule="random"),
    "greedy": dict(rule="greedy"),
    "epsilon-greedy": dict(rule="epsilon", epsilon=0.2),
    "softmax(tau=0.05)": dict(rule="softmax", tau=0.05),
}


def run_agent(name: str, settings: dict, args: argparse.Namespace) -> dict[str, list[float]]:
    envs = gym.make_vec(
        "Reciprocal-SelfTrain-v0",
        num_envs=args.learners,
        vectorization_mode="vector_entry_point",
        dataset=args.dataset,
        n_labeled=args.labeled,
        label_mode=args.label_mode,
        adaptation="add",
        max_steps=args.steps,
        device=args.device,
        autoreset_mode="disabled",
    )
    agent = SelectionAgent(criterion="confidence", seed=args.seed, **settings)
    obs, info = envs.reset(seed=args.seed)
    start_acc = info["test_accuracy"].clone()
    for _ in range(args.steps):
        obs, reward, terminated, truncated, info = envs.step(agent.act(obs))
        if bool((terminated | truncated).all()):
            break
    envs.close()
    return {
        "test_accuracy_start": start_acc.tolist(),
        "test_accuracy_end": info["test_accuracy"].tolist(),
        "pseudo_label_error": info["pseudo_label_error"].tolist(),
        "last_theta_change": info["theta_change"].tolist(),
    }


def mean_ci(values: list[float]) -> str:
    t = torch.tensor(values, dtype=torch.float64)
    half = 1.96 * t.std().item() / math.sqrt(len(t)) if len(t) > 1 else 0.0
    return f"{t.mean().item():.4f} ± {half:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="breast_cancer", choices=DATASETS)
    parser.add_argument("--learners", type=int, default=32, help="learners (seeds) per agent, stepped as one batch")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--labeled", type=int, default=10)
    parser.add_argument("--label-mode", default="hard", choices=("soft", "hard"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="write the per-learner results as JSON here")
    args = parser.parse_args()

    print(f"Self-training on {args.dataset}: {args.learners} learners per agent, {args.steps} steps, "
          f"{args.labeled} labeled points, {args.label_mode} pseudo-labels, greedy add-only adaptation\n")
    results = {}
    header = f"{'agent':<20}{'test acc. start':>20}{'test acc. end':>20}{'pseudo-label err.':>20}{'|dtheta| last':>16}"
    print(header)
    print("-" * len(header))
    started = time.perf_counter()
    for name, settings in AGENTS.items():
        res = run_agent(name, settings, args)
        results[name] = res
        print(f"{name:<20}{mean_ci(res['test_accuracy_start']):>20}{mean_ci(res['test_accuracy_end']):>20}"
              f"{mean_ci(res['pseudo_label_error']):>20}{mean_ci(res['last_theta_change']):>16}")
    print(f"\n(mean ± 95% normal interval over learners; {time.perf_counter() - started:.1f} s)")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"settings": vars(args) | {"out": str(args.out)}, "results": results}, indent=1))
        print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
