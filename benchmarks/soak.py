"""Soak: step every environment for at least a million learner-steps and watch the process memory.

Each env runs as a vector env (autoreset next-step, short episodes so resets happen throughout) with random valid
actions; the resident set size (VmRSS) is sampled at intervals. Memory should stay flat after warm-up. Writes a
JSON report with the samples if ``--out`` is given.

    python benchmarks/soak.py --learner-steps 1000000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import torch

import reciprocal_gym

SETUPS = {
    "Reciprocal-SelfTrain-v0": (1024, dict(dataset="breast_cancer", n_pool=200, max_steps=25)),
    "Reciprocal-ActiveLearn-v0": (1024, dict(dataset="breast_cancer", n_pool=200, max_steps=25, budget=30)),
    "Reciprocal-Bandit-v0": (8192, dict(n_arms=10, max_steps=100, history="window", window=20)),
    "Reciprocal-ContextualBandit-v0": (2048, dict(dataset="wine", max_steps=100, history="window", window=30)),
    "Reciprocal-SolverRelax-v0": (1024, dict(grid=6, max_steps=20)),
}


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learner-steps", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = {}
    for env_id in reciprocal_gym.ENV_IDS:
        B, kwargs = SETUPS[env_id]
        env = gym.make_vec(env_id, num_envs=B, vectorization_mode="vector_entry_point", **kwargs)
        obs, _ = env.reset(seed=0)
        gen = torch.Generator().manual_seed(0)
        steps = -(-args.learner_steps // B)
        every = max(1, steps // args.samples)
        samples, start = [], time.perf_counter()
        for t in range(steps):
            if "action_mask" in obs:
                action = torch.multinomial(obs["action_mask"].double() + 1e-12, 1, generator=gen).squeeze(1)
            else:
                action = torch.randint(0, env.single_action_space.n, (B,), generator=gen)
            obs, reward, *_ = env.step(action)
            if t % every == 0 or t == steps - 1:
                samples.append((t * B, round(rss_mib(), 1)))
        warm = samples[1][1] if len(samples) > 1 else samples[0][1]
        report[env_id] = {"learner_steps": steps * B, "seconds": round(time.perf_counter() - start, 1),
                          "rss_mib": samples, "after_warmup_mib": warm, "end_mib": samples[-1][1]}
        print(f"{env_id:<32} {steps * B:>9,} learner-steps in {report[env_id]['seconds']:6.1f} s; RSS after "
              f"warm-up {warm:7.1f} MiB, at the end {samples[-1][1]:7.1f} MiB (samples: "
              f"{[s[1] for s in samples]})", flush=True)
        del env
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
