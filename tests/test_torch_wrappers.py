"""The torch vector wrappers: flattening as Gymnasium flattens, episode statistics that add up, reward
normalization equal to Gymnasium's on the same stream; and the CleanRL-style example runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers.vector import ArrayConversion
from gymnasium.wrappers.vector import NormalizeReward as GymNormalizeReward

import reciprocal_gym  # noqa: F401
from reciprocal_gym.wrappers.torch_vector import FlattenObservation, NormalizeReward, RecordEpisodeStatistics

ROOT = Path(__file__).resolve().parents[1]


def _vec(env_id, **kwargs):
    return gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", **kwargs)


@pytest.mark.parametrize("env_id", ["Reciprocal-SelfTrain-v0", "Reciprocal-Bandit-v0",
                                    "Reciprocal-StreamActiveLearn-v0"])
def test_flattened_observations_are_gymnasiums_flattening(env_id):
    env = _vec(env_id)
    flat = FlattenObservation(env)
    obs, _ = flat.reset(seed=0)
    raw = env.unwrapped._observe()
    assert isinstance(obs, torch.Tensor) and obs.shape == flat.observation_space.shape
    assert obs.dtype == (torch.float64 if flat.single_observation_space.dtype == np.float64 else torch.float32)
    for i in range(3):
        one = {k: v[i].numpy() for k, v in raw.items()}
        np.testing.assert_array_equal(obs[i].numpy(), gym.spaces.flatten(env.single_observation_space, one))
        assert flat.single_observation_space.contains(obs[i].numpy())


@pytest.mark.parametrize("mode", ["next_step", "same_step"])
def test_episode_statistics_add_up_the_rewards(mode):
    env = RecordEpisodeStatistics(_vec("Reciprocal-Bandit-v0", max_steps=4, autoreset_mode=mode))
    env.reset(seed=1)
    running = torch.zeros(3, dtype=torch.float64)
    reset_step = torch.zeros(3, dtype=torch.bool)
    episodes = 0
    for t in range(14):
        _, reward, term, trunc, info = env.step(torch.tensor([t % 10, 3, 7]))
        running = torch.where(reset_step, 0.0, running + reward.double())
        done = term | trunc
        if "episode" in info:
            assert torch.equal(info["_episode"], done)
            torch.testing.assert_close(info["episode"]["r"][done], running[done])
            assert bool((info["episode"]["l"][done] == 4).all())
            episodes += int(done.sum())
        reset_step = done if mode == "next_step" else torch.zeros_like(done)
        running = torch.where(done, 0.0, running) if mode == "same_step" else running
    assert episodes == 9 if mode == "next_step" else episodes == 9


@pytest.mark.parametrize("mode", ["next_step", "same_step"])
def test_reward_normalization_equals_gymnasiums_on_the_same_stream(mode):
    if tuple(int(part) for part in gym.__version__.split(".")[:2]) < (1, 4):
        pytest.skip("before Gymnasium 1.4 its vector NormalizeReward ignored the autoreset mode (it resets the "
                    "return on terminated only); ours follows 1.4's handling (CI's RLlib environment has 1.2.2)")
    kwargs = {"reward_dist": "gaussian", "max_steps": 7, "autoreset_mode": mode}
    ours = NormalizeReward(_vec("Reciprocal-Bandit-v0", **kwargs), gamma=0.9)
    theirs = GymNormalizeReward(ArrayConversion(_vec("Reciprocal-Bandit-v0", **kwargs), env_xp=torch, target_xp=np),
                                gamma=0.9)
    ours.reset(seed=2)
    theirs.reset(seed=2)
    for t in range(20):
        action = np.array([t % 10, 2, 5])
        _, r_ours, *_ = ours.step(torch.as_tensor(action))
        _, r_theirs, *_ = theirs.step(action)
        np.testing.assert_allclose(r_ours.numpy(), r_theirs, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="gamma"):
        NormalizeReward(_vec("Reciprocal-Bandit-v0"), gamma=1.5)


def test_the_cleanrl_style_example_runs():
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "torch_ppo_bandit.py"), "--learners", "8",
                          "--updates", "3", "--rollout", "8", "--horizon", "8"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "mean episode return" in run.stdout and "uniform random policy" in run.stdout
