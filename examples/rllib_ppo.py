"""Train RLlib's PPO on the suite's environments: a single env (RLlib vectorizes it) and the batched env (its own
vector entry point), with no glue code.

    pip install -e ".[rllib]"          # ray[rllib]; it pins gymnasium 1.2.2, which the suite supports
    python examples/rllib_ppo.py [--env Reciprocal-Bandit-v0] [--iterations 3] [--batched]

The one-line option is the ``env_config``: ``observation_layout="flat"`` gives one flat Box observation (RLlib's
default encoders take no Dict), and for the batched env ``arrays="numpy"`` makes it return numpy arrays as RLlib's
env runner expects. The id is given as ``"reciprocal_gym:<id>"`` so that Ray's worker processes import the package
before Gymnasium looks the id up.
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

import gymnasium as gym


def ppo_config(env_id: str, batched: bool, envs_per_runner: int = 4, **env_kwargs: Any) -> Any:
    """An RLlib PPO config for one of the suite's ids: a single env vectorized by RLlib, or the batched env."""
    from ray.rllib.algorithms.ppo import PPOConfig

    env_config = {"observation_layout": "flat", **env_kwargs}
    runners: dict[str, Any] = {"num_env_runners": 0, "num_envs_per_env_runner": envs_per_runner}
    if batched:
        env_config["arrays"] = "numpy"
        runners["gym_env_vectorize_mode"] = gym.VectorizeMode.VECTOR_ENTRY_POINT
    return (PPOConfig()
            .environment(f"reciprocal_gym:{env_id}", env_config=env_config)
            .env_runners(**runners)
            .training(train_batch_size_per_learner=128, minibatch_size=64, num_epochs=2)
            .debugging(seed=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Reciprocal-Bandit-v0")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--batched", action="store_true", help="the batched env (gym.make_vec's vector entry point)")
    args = parser.parse_args()
    import ray

    with tempfile.TemporaryDirectory() as temp:
        ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False)
        kwargs = dict(dataset="wine", n_labeled=9, n_pool=30, max_steps=10) if "Bandit" not in args.env else \
            dict(max_steps=20)
        algo = ppo_config(args.env, args.batched, **kwargs).build_algo()
        for i in range(args.iterations):
            result = algo.train()["env_runners"]
            print(f"iteration {i + 1}: {int(result['num_env_steps_sampled_lifetime'])} env steps, mean episode "
                  f"return {result.get('episode_return_mean', float('nan')):.3f}")
        algo.stop()
        ray.shutdown()


if __name__ == "__main__":
    main()
