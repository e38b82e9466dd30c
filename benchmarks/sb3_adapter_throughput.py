"""PPO rollout collection through SB3VecEnv against SB3's DummyVecEnv over single envs, side by side.

Both sides hold B = 64 self-training learners (breast_cancer, pool 200) and collect PPO rollouts (``n_steps``
steps per learner, policy forward passes included) with the same PPO settings; the timed part is
``collect_rollouts`` only. The sides alternate over ``--rounds`` rounds; medians are reported.

    python benchmarks/sb3_adapter_throughput.py --num-envs 64 --n-steps 16 --rounds 3
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv

import reciprocal_gym  # noqa: F401
from reciprocal_gym.wrappers.sb3 import make_sb3_vec_env

KWARGS = dict(dataset="breast_cancer", n_pool=200, max_steps=30)


class _Nothing(BaseCallback):
    def _on_step(self) -> bool:
        return True


def timed_rollouts(model: PPO, rounds: int) -> float:
    """Median learner-steps per second of ``collect_rollouts``."""
    callback = _Nothing()
    callback.init_callback(model)
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
        rates.append(model.n_steps * model.env.num_envs / (time.perf_counter() - start))
    return float(np.median(rates))


def build(venv, n_steps: int) -> PPO:
    model = PPO("MultiInputPolicy", venv, n_steps=n_steps, batch_size=64, seed=0, device="cpu")
    model.set_logger(configure(None, []))
    model._setup_learn(total_timesteps=10**9)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--n-steps", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    adapter = build(make_sb3_vec_env("Reciprocal-SelfTrain-v0", args.num_envs, **KWARGS), args.n_steps)
    dummy = build(DummyVecEnv([lambda: gym.make("Reciprocal-SelfTrain-v0", **KWARGS)
                               for _ in range(args.num_envs)]), args.n_steps)
    rates: dict[str, list[float]] = {"adapter": [], "dummy": []}
    for _ in range(args.rounds):
        rates["adapter"].append(timed_rollouts(adapter, 1))
        rates["dummy"].append(timed_rollouts(dummy, 1))
    a, d = float(np.median(rates["adapter"])), float(np.median(rates["dummy"]))
    print(f"PPO rollout collection, SelfTrain breast_cancer pool 200, B = {args.num_envs}, n_steps = {args.n_steps}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print(f"  SB3VecEnv (batched):        {a:10.0f} learner-steps/s")
    print(f"  DummyVecEnv (single envs):  {d:10.0f} learner-steps/s")
    print(f"  ratio: {a / d:.1f}x")


if __name__ == "__main__":
    main()
