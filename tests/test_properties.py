"""Property-based tests (hypothesis): valid input never yields NaN; invalid input gets a clear error and leaves the
state untouched; plus the numerical guards (unpenalized fits, iteration caps, singular Hessians)."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import reciprocal_gym  # noqa: F401

# derandomize: CI sees the same examples every run (the examples found by random search are pinned below)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def _finite(tree):
    if isinstance(tree, dict):
        return all(_finite(v) for v in tree.values())
    if isinstance(tree, torch.Tensor) and tree.is_floating_point():
        return bool(torch.isfinite(tree).all())
    return True


def _state_equal(a, b):
    if isinstance(a, dict):
        return set(a) == set(b) and all(_state_equal(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if hasattr(a, "__dataclass_fields__"):
        return all(_state_equal(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return True


@SETTINGS
@given(
    n_arms=st.integers(2, 12),
    reward_dist=st.sampled_from(["bernoulli", "gaussian"]),
    history=st.sampled_from(["full", "window"]),
    window=st.integers(1, 6),
    lam=st.floats(0.0, 5.0),
    max_steps=st.integers(1, 8),
    actions=st.lists(st.integers(-2, 14), min_size=1, max_size=12),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
@example(n_arms=2, reward_dist="bernoulli", history="full", window=1, lam=1.3378998008102556e-259, max_steps=1,
         actions=[0], dtype=torch.float32)  # found by hypothesis: a lam that is 0 in float32 gave 0 / 0
def test_bandit_any_valid_run_is_finite_and_invalid_actions_change_nothing(n_arms, reward_dist, history, window,
                                                                           lam, max_steps, actions, dtype):
    env = gym.make_vec("Reciprocal-Bandit-v0", num_envs=2, vectorization_mode="vector_entry_point", n_arms=n_arms,
                       reward_dist=reward_dist, history=history, window=window, lam=lam, max_steps=max_steps,
                       dtype=dtype)
    obs, _ = env.reset(seed=0)
    for a in actions:
        batch = torch.tensor([a, min(max(a, 0), n_arms - 1)])
        if 0 <= a < n_arms:
            obs, reward, _, _, info = env.step(batch)
            assert _finite(obs) and _finite(reward) and _finite(info)
        else:
            before = env.unwrapped.get_state()
            with pytest.raises(ValueError, match="action"):
                env.step(batch)
            assert _state_equal(before, env.unwrapped.get_state())


@SETTINGS
@given(
    dataset=st.sampled_from(["iris", "wine", "moons", "breast_cancer"]),
    n_labeled=st.integers(3, 12),
    n_pool=st.integers(8, 40),
    k=st.integers(1, 3),
    adaptation=st.sampled_from(["add", "amend", "swap", "expected"]),
    label_mode=st.sampled_from(["soft", "hard"]),
    lam=st.sampled_from([0.0, 1e-3, 0.1, 2.0]),
    picks=st.lists(st.integers(-3, 45), min_size=1, max_size=6),
)
def test_selftrain_any_valid_run_is_finite_and_bad_actions_are_refused(dataset, n_labeled, n_pool, k, adaptation,
                                                                     label_mode, lam, picks):
    kwargs = dict(dataset=dataset, n_labeled=n_labeled, n_pool=n_pool, k=k, adaptation=adaptation,
                  label_mode=label_mode, lam=lam, max_steps=10)
    if adaptation == "swap":
        kwargs["buffer_size"] = max(k, min(n_pool - k, 4))
    try:
        env = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=2, vectorization_mode="vector_entry_point", **kwargs)
    except ValueError as exc:  # e.g. more labeled rows than one class can give: a clear, named error
        assert any(name in str(exc) for name in ("n_labeled", "n_pool", "k", "buffer_size", "n_val", "n_test"))
        return
    obs, _ = env.reset(seed=1)
    for p in picks:
        if adaptation == "expected":
            law = torch.rand(2, n_pool, generator=torch.Generator().manual_seed(p + 3))
            obs, reward, _, _, info = env.step(law)
            assert _finite(obs) and _finite(reward) and _finite(info)
            continue
        index = torch.tensor([(p + j) for j in range(k)] * 2).view(2, k)
        action = index[:, 0] if k == 1 else index
        if bool(((index < 0) | (index >= n_pool)).any()):
            before = env.unwrapped.get_state()
            with pytest.raises(ValueError, match="action"):
                env.step(action)
            assert _state_equal(before, env.unwrapped.get_state())
        else:
            obs, reward, _, _, info = env.step(action)  # masked-out picks get the documented penalty
            assert _finite(obs) and _finite(reward) and _finite(info)


@SETTINGS
@given(
    name=st.sampled_from(["lam", "n_labeled", "n_pool", "k", "max_steps", "expected_rate", "tol", "label_mode",
                          "adaptation", "reward", "dataset", "solver"]),
    value=st.sampled_from([-1, 0, -0.5, float("nan"), float("inf"), "bogus", 1e9]),
)
def test_bad_arguments_get_an_error_that_names_them(name, value):
    try:
        gym.make("Reciprocal-SelfTrain-v0", **{name: value})
    except ValueError as exc:
        assert name in str(exc), str(exc)
    except TypeError:
        pytest.fail(f"{name}={value!r} raised a TypeError instead of a clear ValueError")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dataset, kwargs", [("blobs", dict(dataset_kwargs=dict(separation=8.0))), ("moons", {}),
                                             ("breast_cancer", {})])
def test_unpenalized_hard_label_self_training_never_produces_nan(dataset, kwargs, dtype):
    from agents import SelectionAgent

    env = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=6, vectorization_mode="vector_entry_point",
                       dataset=dataset, lam=0.0, label_mode="hard", max_steps=60, dtype=dtype, **kwargs)
    agent = SelectionAgent(rule="greedy")
    obs, _ = env.reset(seed=0)
    for _ in range(40):
        obs, reward, _, _, info = env.step(agent.act(obs))
        assert _finite(obs) and _finite(reward) and _finite(info)
        assert {"fit_iterations", "fit_grad_norm", "fit_converged"} <= set(info)


def test_iteration_cap_and_singular_hessians_are_reported_not_nan():
    capped = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=4, vectorization_mode="vector_entry_point",
                          dataset="breast_cancer", max_iter=1, tol=1e-14, lam=1e-4)
    obs, info = capped.reset(seed=0)
    assert (info["fit_iterations"] == 1).all() and not info["fit_converged"].any()
    assert (info["fit_grad_norm"] > 1e-14).all() and _finite(obs)
    X = np.random.default_rng(0).standard_normal((80, 3))
    X = np.hstack([X, X[:, :1]])  # a duplicated column: the unpenalized Hessian is singular
    y = (X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)
    singular = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=3, vectorization_mode="vector_entry_point", X=X,
                            y=y, lam=0.0, n_labeled=10, n_pool=40)
    obs, _ = singular.reset(seed=0)
    for j in range(5):
        obs, reward, _, _, info = singular.step(torch.tensor([j, j, j]))
        assert _finite(obs) and _finite(reward) and _finite(info)
