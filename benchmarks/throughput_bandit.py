"""Throughput of the batched Bandit env against Gymnasium's SyncVectorEnv over a plain Python bandit env.

Both sides play the same K-armed Bernoulli bandit with a full history and ridge arm means, with the same
observation (theta, counts, pulls, step) and pre-generated random actions, side by side in one process:
(a) ``Reciprocal-Bandit-v0`` through ``gym.make_vec(..., vectorization_mode="vector_entry_point")``;
(b) ``gymnasium.vector.SyncVectorEnv`` over ``num_envs`` copies of :class:`PlainBandit`, a single-instance numpy
env written here the way one would write it by hand.

    python benchmarks/throughput_bandit.py --num-envs 16 256 4096 65536 --steps 200 --rounds 5

The machine's speed drifts over minutes on shared hosts, so the two sides alternate: ``--rounds`` blocks of
``--steps`` steps each (fewer steps per block from 4096 envs up), and the median rate of each side is reported.
``--sync-max`` caps the sizes run through SyncVectorEnv (building 65536 Python envs takes a while); larger sizes
are then compared with the largest measured SyncVectorEnv figure.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

import reciprocal_gym  # noqa: F401

K, LAM = 10, 1.0


class PlainBandit(gym.Env):
    """A K-armed Bernoulli bandit with ridge arm means, one instance, numpy only."""

    def __init__(self, n_arms: int = K, lam: float = LAM, max_steps: int = 1000) -> None:
        self.n_arms, self.lam, self.max_steps = n_arms, lam, max_steps
        self.observation_space = spaces.Dict(
            {
                "theta": spaces.Box(0.0, 1.0, (n_arms,), np.float32),
                "counts": spaces.Box(0.0, max_steps, (n_arms,), np.float32),
                "pulls": spaces.Box(0.0, max_steps, (n_arms,), np.float32),
                "step": spaces.Box(0.0, max_steps, (1,), np.float32),
            }
        )
        self.action_space = spaces.Discrete(n_arms)

    def _obs(self) -> dict:
        theta = (self.sums / (self.counts + self.lam)).astype(np.float32)
        counts = self.counts.astype(np.float32)
        return {"theta": theta, "counts": counts, "pulls": counts.copy(),
                "step": np.array([self.t], dtype=np.float32)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.means = self.np_random.random(self.n_arms)
        self.best = self.means.max()
        self.counts = np.zeros(self.n_arms)
        self.sums = np.zeros(self.n_arms)
        self.t, self.cumulative_regret = 0, 0.0
        return self._obs(), {}

    def step(self, action):
        mu = self.means[action]
        reward = float(self.np_random.random() < mu)
        self.counts[action] += 1
        self.sums[action] += reward
        self.t += 1
        regret = self.best - mu
        self.cumulative_regret += regret
        info = {"regret": regret, "cumulative_regret": self.cumulative_regret}
        return self._obs(), reward, False, self.t >= self.max_steps, info


class Timed:
    """An env stepped in short timed blocks, so that the two sides can alternate (machine speed drifts)."""

    def __init__(self, envs: gym.vector.VectorEnv, actions, device: str = "cpu") -> None:
        self.envs, self.actions, self.device, self.t = envs, actions, device, 0
        envs.reset(seed=0)
        self.block(1)  # warm-up

    def block(self, steps: int) -> float:
        """Steps per second over the next ``steps`` steps."""
        sync = self.device.startswith("cuda")
        if sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            self.envs.step(self.actions[self.t % len(self.actions)])
            self.t += 1
        if sync:
            torch.cuda.synchronize()
        return steps / (time.perf_counter() - start)


def measure(num_envs: int, steps: int, rounds: int, device: str, with_sync: bool) -> tuple[float, float | None]:
    """Median env-steps per second of both sides over ``rounds`` alternating blocks of ``steps`` steps."""
    rng = np.random.default_rng(num_envs)
    actions = rng.integers(0, K, size=(steps * rounds, num_envs))
    batched = Timed(gym.make_vec("Reciprocal-Bandit-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                                 n_arms=K, lam=LAM, device=device), torch.as_tensor(actions, device=device), device)
    plain = Timed(gym.vector.SyncVectorEnv([PlainBandit for _ in range(num_envs)]), actions) if with_sync else None
    rates_b, rates_s = [], []
    for _ in range(rounds):
        rates_b.append(batched.block(steps) * num_envs)
        if plain is not None:
            rates_s.append(plain.block(steps) * num_envs)
    return float(np.median(rates_b)), (float(np.median(rates_s)) if rates_s else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[16, 256, 4096, 65536])
    parser.add_argument("--steps", type=int, default=200, help="steps per timed block")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timed blocks per side (median)")
    parser.add_argument("--sync-max", type=int, default=65536, help="largest num_envs run through SyncVectorEnv")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    print(f"Bandit throughput: {K} Bernoulli arms, {args.rounds} x {args.steps} steps, device {args.device}, torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads), {platform.processor()}")
    print(f"{'num_envs':>9}{'batched steps/s':>18}{'SyncVectorEnv steps/s':>24}{'ratio':>9}")
    rows, sync_rate = [], None
    for n in args.num_envs:
        measured = n <= args.sync_max
        steps = max(2, args.steps // args.rounds) if n >= 4096 else args.steps
        batched, sync = measure(n, steps, args.rounds, args.device, measured)
        if measured:
            sync_rate = sync
        note = "" if measured else f"  (SyncVectorEnv figure from {args.sync_max} envs)"
        rows.append(dict(num_envs=n, batched=batched, sync=sync_rate, sync_measured=measured,
                         ratio=batched / sync_rate))
        print(f"{n:>9}{batched:>18,.0f}{sync_rate:>24,.0f}{batched / sync_rate:>9.1f}{note}", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()}, "rows": rows},
                                       indent=1))


if __name__ == "__main__":
    main()
