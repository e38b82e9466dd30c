"""RLlib PPO on the SelfTrain and Bandit ids, single and batched, through the documented env_config (the optional
``rllib`` extra; skipped without it)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray.rllib", reason="RLlib is the optional 'rllib' extra")

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("rllib_ppo", ROOT / "examples" / "rllib_ppo.py")
rllib_ppo = importlib.util.module_from_spec(spec)
sys.modules["rllib_ppo"] = rllib_ppo
spec.loader.exec_module(rllib_ppo)


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    import ray

    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(tmp_path_factory.mktemp("ray")),
             log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.parametrize("env_id, kwargs", [
    ("Reciprocal-SelfTrain-v0", dict(dataset="wine", n_labeled=9, n_pool=30, max_steps=8)),
    ("Reciprocal-Bandit-v0", dict(max_steps=16)),
])
@pytest.mark.parametrize("batched", [False, True])
def test_ppo_trains_one_iteration(ray_session, env_id, kwargs, batched):
    algo = rllib_ppo.ppo_config(env_id, batched, **kwargs).build_algo()
    result = algo.train()["env_runners"]
    algo.stop()
    assert result["num_env_steps_sampled_lifetime"] >= 128
    assert np.isfinite(result["episode_return_mean"])
