import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from lockstep import run_lockstep
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import reciprocal_gym  # noqa: F401
from reciprocal_gym.envs import ActiveLearnEnv, ActiveLearnVectorEnv

ENV_ID = "Reciprocal-ActiveLearn-v0"
STREAM_ID = "Reciprocal-StreamActiveLearn-v0"
SMALL = dict(dataset="wine", n_labeled=9, n_pool=60)
CASES = [
    (ENV_ID, {}),
    (STREAM_ID, dict(SMALL, max_steps=80, label_noise=0.2)),
    (STREAM_ID, dict(SMALL, adaptation="swap", buffer_size=3, max_steps=30, query_cost=0.1)),
    (ENV_ID, dict(SMALL, adaptation="swap", buffer_size=4, evict="chosen", k=2)),
    (ENV_ID, dict(SMALL, adaptation="swap", buffer_size=3, k=1, query_cost=0.02)),
    (ENV_ID, dict(SMALL, adaptation="expected", k=3, label_noise=0.1)),
    (ENV_ID, dict(SMALL, k=2, budget=6, label_noise=0.3)),
]


def _vec(num_envs=3, **kwargs):
    return gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)


def test_registered_with_both_entry_points():
    spec = gym.spec(ENV_ID)
    assert spec.entry_point.endswith(":ActiveLearnEnv")
    assert isinstance(gym.make(ENV_ID).unwrapped, ActiveLearnEnv)
    assert isinstance(_vec().unwrapped, ActiveLearnVectorEnv)


@pytest.mark.parametrize(("env_id", "kwargs"), CASES)
def test_check_env(env_id, kwargs):
    check_env(gym.make(env_id, **kwargs).unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(env_id, **kwargs).unwrapped, warn=False)


def _choose(rng, obs, env):
    space = env.action_space
    if isinstance(space, gym.spaces.Box):
        allowed = np.flatnonzero(obs["action_mask"])
        law = np.zeros(space.shape, np.float32)
        law[allowed] = rng.random(len(allowed))
        return law / law.sum()
    if isinstance(space, gym.spaces.Discrete) and space.n == 2:
        return int(rng.integers(2))
    mask = env.unwrapped.action_masks()
    if isinstance(space, gym.spaces.Discrete):
        return int(rng.choice(np.flatnonzero(mask)))
    n = obs["action_mask"].shape[0]
    k = len(space.nvec)
    if getattr(env.unwrapped.config, "evict", None) == "chosen":
        k //= 2
        add = rng.choice(np.flatnonzero(mask[:n]), size=k, replace=False)
        leave_allowed = np.flatnonzero(mask[k * n : k * n + n])
        leave = rng.choice(leave_allowed, size=k, replace=False)
        return np.concatenate([add, leave]).astype(np.int64)
    return rng.choice(np.flatnonzero(mask[:n]), size=k, replace=False).astype(np.int64)


@pytest.mark.parametrize(("env_id", "kwargs"), CASES)
def test_vector_equals_single_envs_seeded_seed_plus_i(env_id, kwargs, device):
    run_lockstep(env_id, dict(kwargs, max_steps=kwargs.get("max_steps", 8)), num_envs=4, steps=10, choose=_choose,
                 info_keys=("test_accuracy", "labels_spent", "queried", "pseudo_label_error", "theta_change"),
                 device=device, atol=1e-6)


def test_oracle_labels_true_or_flipped_at_the_noise_rate_and_fixed_per_point():
    vec = _vec(200, dataset="breast_cancer", n_pool=300, label_noise=0.25)
    vec.reset(seed=0)
    env = vec.unwrapped
    answers = env.state.oracle.answers
    flipped = (answers != env.state.labels["pool"]).double().mean().item()
    assert flipped == pytest.approx(0.25, abs=0.01)
    again = env.parts.labels._noisy_labels(env, env.state, env.state.oracle.keys, torch.arange(200))
    assert torch.equal(again, answers)
    clean = _vec(2, **SMALL)
    clean.reset(seed=0)
    assert torch.equal(clean.unwrapped.state.oracle.answers, clean.unwrapped.state.labels["pool"])


def test_queried_points_carry_the_oracle_label_and_noise_shows_in_the_label_error():
    env = gym.make(ENV_ID, dataset="breast_cancer", n_pool=200, label_noise=0.4, budget=30)
    env.reset(seed=1)
    vec = env.unwrapped.vector_env
    for j in range(20):
        _, _, _, _, info = env.step(j)
    oracle = vec.state.oracle.answers[0, :20]
    assert torch.equal(vec.state.label[0, :20].argmax(-1), oracle)
    wrong = (oracle != vec.state.labels["pool"][0, :20]).double().mean().item()
    assert info["pseudo_label_error"] == pytest.approx(wrong)


def test_budget_cost_and_termination():
    env = gym.make(ENV_ID, **SMALL, k=2, budget=5, query_cost=0.1, reward="val_accuracy")
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs["labels"], [0, 5])
    obs, r, term, trunc, info = env.step(np.array([0, 1]))
    assert info["labels_spent"] == 2 and info["queried"] == 2 and not term
    obs, r, term, trunc, info = env.step(np.array([2, 3]))
    assert info["labels_spent"] == 4 and term and not trunc  # 4 + 2 > 5: no further query affordable
    np.testing.assert_array_equal(obs["labels"], [4, 1])


def test_reward_is_metric_change_minus_cost():
    kwargs = dict(SMALL, query_cost=0.05, reward="val_accuracy")
    env, free = gym.make(ENV_ID, **kwargs), gym.make(ENV_ID, **dict(kwargs, query_cost=0.0))
    env.reset(seed=4)
    free.reset(seed=4)
    for j in (3, 7, 11):
        _, r, _, _, _ = env.step(j)
        _, r0, _, _, _ = free.step(j)
        assert r == pytest.approx(r0 - 0.05)


def test_invalid_query_spends_nothing():
    env = gym.make(ENV_ID, **SMALL)
    env.reset(seed=0)
    env.step(5)
    _, r, _, _, info = env.step(5)
    assert info["invalid_action"] and r == -1.0 and info["labels_spent"] == 1


def test_stream_env_delivers_the_pool_once_and_skips_are_free():
    env = gym.make(STREAM_ID, **SMALL, max_steps=100, budget=60, query_cost=0.5)
    obs, _ = env.reset(seed=2)
    vec = env.unwrapped.vector_env
    order = vec.state.stream_order[0].clone()
    assert sorted(order.tolist()) == list(range(60))
    steps = 0
    while True:
        arriving = int(order[steps])
        expected = vec._candidate_features(vec.view.pool_probs[0, arriving], vec.state.in_use[0, arriving])
        np.testing.assert_allclose(obs["candidate"], expected.numpy())
        action = steps % 3 == 0
        obs, r, term, trunc, info = env.step(int(action))
        steps += 1
        assert bool(vec.state.in_use[0, arriving]) == action
        if not action:
            assert r == 0.0 and info["queried"] == 0
        else:
            assert info["queried"] == 1
        if term or trunc:
            break
    assert steps == 60 and term and info["labels_spent"] == 20


def test_buffer_oldest_leaves_and_chosen_eviction():
    env = gym.make(ENV_ID, **SMALL, adaptation="swap", buffer_size=2)
    env.reset(seed=0)
    for j in (4, 5, 6):
        env.step(j)
    in_use = env.unwrapped.vector_env.state.in_use[0]
    assert torch.nonzero(in_use).squeeze(1).tolist() == [5, 6]
    chosen = gym.make(ENV_ID, **SMALL, adaptation="swap", buffer_size=2, evict="chosen")
    chosen.reset(seed=0)
    chosen.step(np.array([4, 0]))  # buffer not full: the second entry is ignored
    chosen.step(np.array([5, 0]))
    _, _, _, _, info = chosen.step(np.array([6, 4]))
    in_use = chosen.unwrapped.vector_env.state.in_use[0]
    assert torch.nonzero(in_use).squeeze(1).tolist() == [5, 6] and not info["invalid_action"]
    _, r, _, _, info = chosen.step(np.array([7, 9]))  # 9 is not in the buffer
    assert info["invalid_action"] and r == -1.0
    assert torch.nonzero(chosen.unwrapped.vector_env.state.in_use[0]).squeeze(1).tolist() == [5, 6]
    mask = chosen.unwrapped.action_masks()
    assert mask.shape == (120,) and mask[60:].sum() == 2


def test_expected_mode_uses_the_oracle_label_distribution():
    env = gym.make(ENV_ID, dataset="iris", n_labeled=6, n_pool=30, adaptation="expected", k=2, label_noise=0.3)
    env.reset(seed=0)
    law = np.zeros(30, np.float32)
    law[:2] = 0.5
    env.step(law)
    vec = env.unwrapped.vector_env
    y = vec.state.labels["pool"][0, :2]
    labels = vec.state.label[0, :2]
    for i in range(2):
        assert labels[i, y[i]].item() == pytest.approx(0.7)
        assert labels[i].sum().item() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mode="stream"), "Reciprocal-StreamActiveLearn-v0"),
        (dict(label_noise=1.0), "label_noise"),
        (dict(label_noise=-0.1), "label_noise"),
        (dict(query_cost=-1.0), "query_cost"),
        (dict(budget=0), "budget"),
        (dict(budget=2, k=3), "budget"),
        (dict(evict="chosen"), "evict"),
        (dict(evict="newest"), "evict"),
        (dict(adaptation="amend"), "adaptation"),
        (dict(dataset="nope"), "dataset"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make(ENV_ID, **kwargs)


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(k=2), "one arriving point"), (dict(adaptation="expected"), "adaptation"), (dict(evict="chosen"), "evict"),
])
def test_bad_stream_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        gym.make(STREAM_ID, **kwargs)


def test_bad_actions():
    stream = gym.make_vec(STREAM_ID, num_envs=2, vectorization_mode="vector_entry_point", **SMALL)
    stream.reset(seed=0)
    with pytest.raises(ValueError, match="0 \\(skip\\) or 1"):
        stream.step(torch.tensor([0, 2]))
    chosen = _vec(2, **SMALL, adaptation="swap", buffer_size=3, evict="chosen")
    chosen.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        chosen.step(torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="in \\[0, 60\\)"):
        chosen.step(torch.tensor([[0, 60], [1, 2]]))
