"""Finite Box bounds, the flat observation layout, and the checkers without warnings on every id."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import reciprocal_gym

SMALL = {"Reciprocal-SelfTrain-v0": dict(dataset="wine", n_labeled=9, n_pool=30),
         "Reciprocal-ActiveLearn-v0": dict(dataset="wine", n_labeled=9, n_pool=30),
         "Reciprocal-StreamActiveLearn-v0": dict(dataset="wine", n_labeled=9, n_pool=30)}


def _boxes(space):
    if isinstance(space, gym.spaces.Box):
        yield space
    elif isinstance(space, gym.spaces.Dict):
        for sub in space.spaces.values():
            yield from _boxes(sub)


@pytest.mark.parametrize("env_id", reciprocal_gym.ENV_IDS)
@pytest.mark.parametrize("layout", ["dict", "flat"])
def test_gymnasium_checker_passes_without_warnings_and_every_box_is_finite(env_id, layout):
    env = gym.make(env_id, observation_layout=layout, **SMALL.get(env_id, {}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning of the checker fails the test
        check_env(env.unwrapped, skip_render_check=True)
    for box in _boxes(env.observation_space):
        assert np.isfinite(box.low).all() and np.isfinite(box.high).all(), box


@pytest.mark.parametrize("env_id", reciprocal_gym.ENV_IDS)
def test_sb3_checker_passes_without_warnings_on_the_flat_layout(env_id):
    env = gym.make(env_id, observation_layout="flat", **SMALL.get(env_id, {}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(env, warn=True)


@pytest.mark.parametrize("env_id", reciprocal_gym.ENV_IDS)
def test_the_flat_observation_is_gymnasiums_flattening_of_the_dict_one(env_id):
    kwargs = SMALL.get(env_id, {})
    nested = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", **kwargs)
    flat = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", observation_layout="flat",
                        **kwargs)
    space = nested.unwrapped.single_observation_space
    assert flat.unwrapped.single_observation_space == gym.spaces.flatten_space(space)
    assert flat.unwrapped.dict_observation_space == space
    obs_n, _ = nested.reset(seed=7)
    obs_f, _ = flat.reset(seed=7)
    rng = np.random.default_rng(0)
    for _ in range(3):
        for b in range(3):
            expected = gym.spaces.flatten(space, {k: v[b].cpu().numpy() for k, v in obs_n.items()})
            np.testing.assert_array_equal(obs_f[b].cpu().numpy(), expected)
            assert flat.unwrapped.single_observation_space.contains(obs_f[b].cpu().numpy())
        actions = nested.unwrapped.sample_actions(rng) if hasattr(nested.unwrapped, "sample_actions") else \
            torch.as_tensor(nested.action_space.sample())
        obs_n, *_ = nested.step(actions)
        obs_f, *_ = flat.step(actions)
    from reciprocal_gym.utils import check_vector_env

    check_vector_env(flat)
    single = gym.make(env_id, observation_layout="flat", **kwargs)
    obs, _ = single.reset(seed=7)
    assert isinstance(obs, np.ndarray) and obs.shape == single.observation_space.shape


def test_a_bad_layout_is_refused_by_name():
    with pytest.raises(ValueError, match="observation_layout"):
        gym.make("Reciprocal-Bandit-v0", observation_layout="nested")


def test_sb3_mlp_policy_trains_on_the_flat_layout():
    from stable_baselines3 import PPO

    env = gym.make("Reciprocal-SelfTrain-v0", observation_layout="flat", **SMALL["Reciprocal-SelfTrain-v0"])
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.learn(64)
    action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert env.action_space.contains(action)


@pytest.mark.parametrize("env_id", reciprocal_gym.ENV_IDS)
def test_numpy_arrays_carry_the_same_values_as_the_torch_env(env_id):
    kwargs = SMALL.get(env_id, {})
    tensors = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", **kwargs)
    arrays = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", arrays="numpy",
                          observation_layout="flat", **kwargs)
    flat_tensors = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point",
                                observation_layout="flat", **kwargs)
    obs_a, info_a = arrays.reset(seed=1)
    obs_t, _ = flat_tensors.reset(seed=1)
    tensors.reset(seed=1)
    assert isinstance(obs_a, np.ndarray) and all(isinstance(v, np.ndarray) for v in info_a.values())
    np.testing.assert_array_equal(obs_a, obs_t.numpy())
    rng = np.random.default_rng(3)
    for _ in range(3):
        actions = tensors.unwrapped.sample_actions(rng) if hasattr(tensors.unwrapped, "sample_actions") else \
            torch.as_tensor(tensors.action_space.sample())
        out_a = arrays.step(actions.numpy())  # numpy actions in, numpy out
        out_t = flat_tensors.step(actions)
        for a, t in zip(out_a[:4], out_t[:4], strict=True):
            assert isinstance(a, np.ndarray)
            np.testing.assert_array_equal(a, t.numpy())
    with pytest.raises(ValueError, match="arrays"):
        gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", arrays="jax", **kwargs)
    with pytest.raises(ValueError, match="arrays"):
        gym.make(env_id, arrays="numpy", **kwargs)
