import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from lockstep import run_lockstep
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import reciprocal_gym  # noqa: F401
from reciprocal_gym.data import load_dataset
from reciprocal_gym.envs import ContextualBanditEnv, ContextualBanditVectorEnv

ENV_ID = "Reciprocal-ContextualBandit-v0"
CASES = [
    {},
    dict(dataset="iris", history="window", window=4),
    dict(source="linear", n_arms=3, dim=2, noise_std=0.5),
    dict(source="linear", history="window", window=3, lam=0.3, dtype=torch.float32),
]


def test_registered_with_both_entry_points():
    spec = gym.spec(ENV_ID)
    assert spec.entry_point.endswith(":ContextualBanditEnv")
    assert isinstance(gym.make(ENV_ID).unwrapped, ContextualBanditEnv)
    vec = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point")
    assert isinstance(vec.unwrapped, ContextualBanditVectorEnv)


@pytest.mark.parametrize("kwargs", CASES)
def test_check_env(kwargs):
    check_env(gym.make(ENV_ID, **kwargs).unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(ENV_ID, **kwargs).unwrapped, warn=False)


@pytest.mark.parametrize("kwargs", CASES)
def test_vector_equals_single_envs_seeded_seed_plus_i(kwargs, device):
    run_lockstep(ENV_ID, dict(kwargs, max_steps=9), num_envs=4, steps=12,
                 choose=lambda rng, obs, env: int(rng.integers(env.action_space.n)),
                 info_keys=("regret", "cumulative_regret", "arm", "best_arm"), device=device, atol=1e-5)


def _play(env, arms):
    obs, _ = env.reset(seed=3)
    history = []
    for arm in arms:
        x = obs["context"].astype(np.float64)
        obs, r, _, _, info = env.step(arm)
        history.append((x, arm, r, info))
    return obs, history


def test_dataset_rewards_and_regret_are_the_supervised_conversion():
    env = gym.make(ENV_ID, dataset="wine")
    data = load_dataset("wine")
    z = (data.X - data.X.mean(0)) / data.X.std(0)
    obs, history = _play(env, [0, 1, 2, 0, 1, 2, 2, 1])
    total = 0.0
    for x, arm, r, info in history:
        row = int(np.argmin(np.abs(z - x[:-1]).sum(1)))  # the dataset row this context is
        assert np.allclose(z[row], x[:-1], atol=1e-5)
        label = int(data.y[row])
        assert r == float(arm == label) and info["best_arm"] == label
        total += 1.0 - float(arm == label)
        assert info["regret"] == 1.0 - float(arm == label)
        assert info["cumulative_regret"] == pytest.approx(total)


@pytest.mark.parametrize("history, window", [("full", 100), ("window", 3)])
def test_theta_is_per_arm_ridge_regression_on_the_history(history, window):
    lam = 0.7
    env = gym.make(ENV_ID, source="linear", n_arms=2, dim=3, history=history, window=window, lam=lam)
    obs, played = _play(env, [0, 1, 1, 0, 0, 1, 0])
    kept = played[-window:]
    for arm in range(2):
        X = np.array([x for x, a, _, _ in kept if a == arm])
        r = np.array([rr for _, a, rr, _ in kept if a == arm])
        A = lam * np.eye(4) + X.T @ X
        np.testing.assert_allclose(obs["theta"][arm], np.linalg.solve(A, X.T @ r), atol=1e-5)
        assert obs["counts"][arm] == len(r)
        x = obs["context"].astype(np.float64)
        assert obs["widths"][arm] == pytest.approx(np.sqrt(x @ np.linalg.solve(A, x)), rel=1e-5)


def test_linear_regret_uses_the_true_weights():
    env = gym.make(ENV_ID, source="linear", n_arms=3, dim=2, noise_std=0.0)
    obs, _ = env.reset(seed=0)
    w = env.unwrapped.vector_env.state.true_weights[0].numpy()
    x = obs["context"].astype(np.float64)
    means = w @ x
    _, r, _, _, info = env.step(0)
    assert r == pytest.approx(means[0], abs=1e-6)
    assert info["regret"] == pytest.approx(means.max() - means[0], abs=1e-6)
    assert info["best_arm"] == int(means.argmax())


def test_linear_contexts_are_standard_normal():
    vec = gym.make_vec(ENV_ID, num_envs=3000, vectorization_mode="vector_entry_point", source="linear", dim=2)
    obs, _ = vec.reset(seed=0)
    x = obs["context"][:, :2]
    assert x.mean().abs() < 0.05 and (x.std() - 1).abs() < 0.05
    assert torch.all(obs["context"][:, 2] == 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(source="bandit"), "source"),
        (dict(dataset="mnist"), "dataset"),
        (dict(history="recent"), "history"),
        (dict(lam=0.0), "lam"),
        (dict(lam=1e-300), "lam"),
        (dict(window=0), "window"),
        (dict(source="linear", dim=0), "dim"),
        (dict(source="linear", n_arms=1), "n_arms"),
        (dict(X=np.zeros((3, 2))), "X and y"),
        (dict(noise_std=-1.0), "noise_std"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make(ENV_ID, **kwargs)


def test_bad_actions():
    vec = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point")
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"arm in \[0, 3\)"):
        vec.step(torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="shape"):
        vec.step(torch.tensor([[0, 1]]))
