import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from lockstep import run_lockstep
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import reciprocal_gym  # noqa: F401
from reciprocal_gym.core import random as crandom
from reciprocal_gym.envs import BanditEnv, BanditVectorEnv

ENV_ID = "Reciprocal-Bandit-v0"
CASES = [
    {},
    dict(reward_dist="gaussian", history="window", window=5, lam=0.5),
    dict(adaptation="expected", history="window", window=8),
    dict(adaptation="expected", reward_dist="gaussian", lam=0.0),
    dict(n_arms=3, means=[0.1, 0.5, 0.9], max_steps=7, dtype=torch.float64),
]


def _vec(num_envs=4, **kwargs):
    return gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)


def test_registered_with_both_entry_points():
    spec = gym.spec(ENV_ID)
    assert spec.entry_point.endswith(":BanditEnv") and spec.vector_entry_point.endswith(":BanditVectorEnv")
    assert isinstance(gym.make(ENV_ID).unwrapped, BanditEnv)
    assert isinstance(_vec().unwrapped, BanditVectorEnv)


@pytest.mark.parametrize("kwargs", CASES)
def test_check_env(kwargs):
    check_env(gym.make(ENV_ID, **kwargs).unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(ENV_ID, **kwargs).unwrapped, warn=False)


def _choose(rng, obs, env):
    if isinstance(env.action_space, gym.spaces.Discrete):
        return int(rng.integers(env.action_space.n))
    law = rng.random(env.action_space.shape).astype(np.float32)
    return law / law.sum()


@pytest.mark.parametrize("kwargs", CASES)
def test_vector_equals_single_envs_seeded_seed_plus_i(kwargs, device):
    run_lockstep(ENV_ID, dict(kwargs, max_steps=kwargs.get("max_steps", 12)), num_envs=5, steps=15,
                 choose=_choose, info_keys=("regret", "cumulative_regret", "arm", "best_arm"), device=device)


def test_pseudo_regret_is_exact_on_a_fixed_sequence():
    means = [0.2, 0.7, 0.4]
    env = gym.make(ENV_ID, n_arms=3, means=means, dtype=torch.float64)
    env.reset(seed=0)
    arms = [0, 1, 2, 2, 0, 1, 1]
    total = 0.0
    for arm in arms:
        _, _, _, _, info = env.step(arm)
        expected = max(means) - means[arm]  # 0.5, 0, 0.3, 0.3, 0.5, 0, 0 by hand
        total += expected
        assert info["regret"] == pytest.approx(expected, abs=1e-12)
        assert info["cumulative_regret"] == pytest.approx(total, abs=1e-12)
        assert info["best_arm"] == 1
    assert total == pytest.approx(1.6, abs=1e-12)


def test_ridge_means_counts_and_window_by_hand():
    env = gym.make(ENV_ID, n_arms=2, means=[0.3, 0.8], reward_dist="gaussian", noise_std=0.5, history="window",
                   window=3, lam=2.0, dtype=torch.float64)
    env.reset(seed=1)
    arms = [0, 1, 1, 0, 0, 1]
    rewards = []
    for t, arm in enumerate(arms):
        obs, r, _, _, _ = env.step(arm)
        rewards.append((arm, r))
        window = rewards[-3:]
        for k in range(2):
            got = [rr for a, rr in window if a == k]
            assert obs["counts"][k] == len(got)
            assert obs["theta"][k] == pytest.approx(sum(got) / (len(got) + 2.0), abs=1e-6)
            assert obs["pulls"][k] == sum(1 for a, _ in rewards if a == k)
        assert obs["step"][0] == t + 1


def test_rewards_follow_the_arm_distributions():
    vec = _vec(4000, n_arms=2, means=[0.25, 0.6], max_steps=50)
    vec.reset(seed=0)
    total = torch.zeros(2)
    for t in range(10):
        _, r, _, _, _ = vec.step(torch.full((4000,), t % 2))
        total[t % 2] += r.mean()
    assert total[0] / 5 == pytest.approx(0.25, abs=0.01)
    assert total[1] / 5 == pytest.approx(0.6, abs=0.01)
    g = _vec(4000, n_arms=2, means=[1.0, -1.0], reward_dist="gaussian", noise_std=2.0)
    g.reset(seed=0)
    _, r, _, _, _ = g.step(torch.zeros(4000, dtype=torch.int64))
    assert r.mean().item() == pytest.approx(1.0, abs=0.1) and r.std().item() == pytest.approx(2.0, abs=0.1)


def test_means_drawn_per_reset_from_the_prior_and_reproducible():
    a, b = _vec(3), _vec(3)
    a.reset(seed=5)
    b.reset(seed=5)
    assert torch.equal(a.unwrapped.state.means, b.unwrapped.state.means)
    first = a.unwrapped.state.means.clone()
    a.reset()
    assert not torch.equal(first, a.unwrapped.state.means)
    assert ((first >= 0) & (first <= 1)).all()


def test_expected_mode_is_deterministic_mean_field():
    env = gym.make(ENV_ID, n_arms=2, means=[0.2, 0.6], adaptation="expected", history="window", window=4, lam=1.0,
                   dtype=torch.float64)
    env.reset(seed=0)
    n = np.zeros(2)
    for _ in range(30):
        obs, r, _, _, info = env.step(np.array([0.25, 0.75], np.float32))
        n = 0.75 * n + np.array([0.25, 0.75])
        assert r == pytest.approx(0.25 * 0.2 + 0.75 * 0.6)
        assert info["regret"] == pytest.approx(0.6 - r)
    np.testing.assert_allclose(obs["counts"], n, rtol=1e-6)
    np.testing.assert_allclose(obs["theta"], n * np.array([0.2, 0.6]) / (n + 1.0), rtol=1e-6)


def test_truncation_and_autoreset():
    vec = _vec(2, max_steps=3)
    vec.reset(seed=0)
    for _ in range(2):
        _, _, term, trunc, _ = vec.step(torch.tensor([0, 1]))
        assert not trunc.any()
    obs, _, term, trunc, _ = vec.step(torch.tensor([0, 1]))
    assert trunc.all() and not term.any()
    obs, r, term, trunc, info = vec.step(torch.tensor([0, 1]))  # ignored: both restart
    assert torch.all(obs["step"] == 0) and torch.all(r == 0) and torch.all(info["cumulative_regret"] == 0)


def test_partial_reset_keeps_the_others():
    vec = _vec(3)
    vec.reset(seed=0)
    vec.step(torch.tensor([0, 1, 2]))
    obs, _ = vec.reset(options={"reset_mask": torch.tensor([True, False, False])})
    assert obs["step"][:, 0].tolist() == [0, 1, 1]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_arms=1), "n_arms"),
        (dict(reward_dist="poisson"), "reward_dist"),
        (dict(history="recent"), "history"),
        (dict(window=0), "window"),
        (dict(lam=-1.0), "lam"),
        (dict(noise_std=0.0), "noise_std"),
        (dict(means=[0.1, 0.2]), "means"),
        (dict(n_arms=2, means=[0.1, 1.5]), "Bernoulli"),
        (dict(n_arms=2, means=[0.1, float("nan")], reward_dist="gaussian"), "finite"),
        (dict(adaptation="greedy"), "adaptation"),
        (dict(max_steps=0), "max_steps"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make(ENV_ID, **kwargs)


def test_bad_actions():
    vec = _vec(2)
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"arm in \[0, 10\)"):
        vec.step(torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="arm in"):
        vec.step(torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match="shape"):
        vec.step(torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="integer"):
        vec.step(torch.tensor([0.0, 1.0]))
    ex = _vec(2, adaptation="expected")
    ex.reset(seed=0)
    with pytest.raises(ValueError, match="positive sum"):
        ex.step(torch.zeros(2, 10))
    with pytest.raises(ValueError, match="finite"):
        ex.step(torch.full((2, 10), float("nan")))
    single = gym.make(ENV_ID)
    single.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        single.step(np.array([1, 2]))


def test_counter_hash_matches_unsigned_reference(device):
    words = np.random.default_rng(0).integers(0, 2**32, 10000, dtype=np.uint64).astype(np.uint32)
    ref = words.copy()
    ref ^= ref >> np.uint32(16)
    ref *= np.uint32(0x7FEB352D)
    ref ^= ref >> np.uint32(15)
    ref *= np.uint32(0x846CA68B)
    ref ^= ref >> np.uint32(16)
    got = crandom.hash32(crandom.as_word(words.astype(np.int64)).to(device)).cpu().long() & 0xFFFFFFFF
    np.testing.assert_array_equal(got.numpy(), ref.astype(np.int64))


def test_blocked_uniforms_equal_one_at_a_time():
    key = crandom.stream_key(crandom.as_word(torch.arange(7) * 977), 3)
    blocks = crandom.UniformBlocks(block=4)
    steps = torch.arange(7) * 5
    for t in range(10):
        assert torch.equal(blocks.next(key, steps + t, torch.float32), crandom.uniform(key, steps + t))
    u = crandom.uniform(key.unsqueeze(1), torch.arange(100000))
    assert 0 < u.min() and u.max() < 1 and abs(u.mean().item() - 0.5) < 0.01


def test_deep_copied_env_steps_like_the_original():
    """The fast path keeps numpy views of its tensors. A deep copy of the env steps exactly like an env that was
    never copied, also after a partial reset of the copy (which writes new arm means in place)."""
    import copy

    original, reference = _vec(32, max_steps=100), _vec(32, max_steps=100)
    original.reset(seed=3)
    reference.reset(seed=3)
    actions = torch.randint(0, 10, (12, 32), generator=torch.Generator().manual_seed(1))
    for t in range(5):
        original.step(actions[t])
        reference.step(actions[t])
    twin = copy.deepcopy(original)
    mask = torch.zeros(32, dtype=torch.bool)
    mask[:4] = True
    for env in (twin, reference):
        env.reset(seed=[50 + i for i in range(32)], options={"reset_mask": mask})
    for t in range(5, 12):
        out_t, out_r = twin.step(actions[t]), reference.step(actions[t])
        assert torch.equal(out_t[1], out_r[1])
        assert torch.equal(out_t[4]["regret"], out_r[4]["regret"])
        for key in out_t[0]:
            assert torch.equal(out_t[0][key], out_r[0][key]), key


def test_compiled_uniform_has_the_torch_hash_bits():
    """The bandit's compiled fast path draws its own uniforms: the same values as the torch counter-based hash,
    for negative keys and counters past 2**31 too."""
    g = torch.Generator().manual_seed(5)
    keys = torch.randint(-(2**31), 2**31, (3000,), generator=g).to(torch.int32)
    counters = torch.randint(0, 2**40, (3000,), generator=g)
    reference = crandom.uniform(keys, counters.to(torch.int32))
    compiled = torch.tensor([crandom.uniform_one(int(k), int(c)) for k, c in zip(keys, counters, strict=True)])
    assert torch.equal(compiled, reference)
