"""Pseudo-labels that matter: sharpened soft labels, the selection-invariance of plain soft labels in amend mode,
and self-training's measured effect against the labeled-only fit."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reciprocal_gym  # noqa: F401
from agents import SelectionAgent
from reciprocal_gym.core.adaptation import pseudo_labels, sharpen
from reciprocal_gym.learners import fit_ridge_logistic


def test_sharpening_spans_soft_to_hard():
    probs = torch.tensor([[0.45, 0.55], [0.9, 0.1], [0.2, 0.8]], dtype=torch.float64)
    assert torch.equal(sharpen(probs, 1.0), probs)
    hard = pseudo_labels(probs, "hard")
    assert float((sharpen(probs, 0.01) - hard).abs().max()) < 1e-6  # the T -> 0 limit is the hard label
    assert float((sharpen(probs, 100.0) - 0.5).abs().max()) < 0.01  # T -> inf flattens to uniform
    p = sharpen(probs, 0.5)
    torch.testing.assert_close(p, probs**2 / (probs**2).sum(-1, keepdim=True))  # p^(1/T) renormalized
    # sharper for smaller T: the top label's probability never decreases as T falls
    tops = [float(sharpen(probs, t)[0, 1]) for t in (2.0, 1.0, 0.5, 0.2, 0.05)]
    assert tops == sorted(tops)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(t=st.floats(0.01, 10.0), seed=st.integers(0, 1000), classes=st.integers(2, 5))
def test_sharpened_labels_are_lipschitz_in_the_logits_with_constant_one_over_2t(t, seed, classes):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(64, classes, generator=g, dtype=torch.float64) * 3
    z2 = z1 + torch.randn(64, classes, generator=g, dtype=torch.float64) * 0.01
    a, b = sharpen(torch.softmax(z1, -1), t), sharpen(torch.softmax(z2, -1), t)
    assert bool(((a - b).norm(dim=-1) <= (z1 - z2).norm(dim=-1) / (2 * t) + 1e-12).all())


def _run(rule, temperature, criterion="confidence", steps=40, adaptation="amend", **kwargs):
    env = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=4, vectorization_mode="vector_entry_point",
                       dataset="breast_cancer", n_labeled=20, n_pool=150, adaptation=adaptation, k=10, lam=0.05,
                       label_temperature=temperature, max_steps=steps + 1, **kwargs)
    agent = SelectionAgent(criterion=criterion, rule=rule, k=10, seed=0)
    obs, info = env.reset(seed=0)
    for _ in range(steps):
        obs, _, _, _, info = env.step(agent.act(obs))
    return env.unwrapped, info


def test_plain_soft_labels_in_amend_mode_reach_the_labeled_only_fit_whatever_is_selected():
    """T = 1: a pseudo-label equal to the model's prediction adds no gradient at its fixed point, so greedy and
    random selection end at the labeled-only fit with ridge lam (n_labeled + k) / n_labeled."""
    greedy, _ = _run("greedy", 1.0)
    random, _ = _run("random", 1.0)
    torch.testing.assert_close(greedy.state.theta, random.state.theta, atol=1e-5, rtol=0)
    X = greedy.view.labeled_X
    Q = torch.nn.functional.one_hot(greedy.state.labels["labeled"], 2).double()
    reference = fit_ridge_logistic(X, torch.ones(X.shape[:2], dtype=X.dtype), Q, 0.05 * (20 + 10) / 20).theta
    torch.testing.assert_close(greedy.state.theta, reference, atol=1e-5, rtol=0)


def test_sharpened_labels_make_the_selection_matter():
    confident, _ = _run("greedy", 0.3)
    uncertain, _ = _run("greedy", 0.3, criterion="uncertainty")
    random, _ = _run("random", 0.3)
    gap = (confident.state.theta - uncertain.state.theta).norm(dim=1)
    assert bool((gap > 1e-2).all()), gap
    assert bool(((confident.state.theta - random.state.theta).norm(dim=1) > 1e-2).all())
    plain_c, _ = _run("greedy", 1.0, steps=100)
    plain_u, _ = _run("greedy", 1.0, criterion="uncertainty", steps=100)  # the slower contraction of the two
    torch.testing.assert_close(plain_c.state.theta, plain_u.state.theta, atol=1e-5, rtol=0)


@pytest.mark.parametrize("adaptation", ["add", "amend", "swap", "expected"])
def test_every_adaptation_mode_attaches_sharpened_labels(adaptation):
    kwargs = dict(buffer_size=20) if adaptation == "swap" else {}
    env = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=2, vectorization_mode="vector_entry_point",
                       dataset="wine", n_labeled=9, n_pool=40, adaptation=adaptation, k=3, label_temperature=0.25,
                       **kwargs)
    obs, _ = env.reset(seed=0)
    base = env.unwrapped
    probs = base.view.pool_probs.clone()
    agent = SelectionAgent(rule="greedy", k=1 if adaptation == "expected" else 3, law=adaptation == "expected")
    env.step(agent.act(obs))
    used = base.state.in_use if adaptation != "expected" else base.state.weight > 0
    expected = sharpen(probs, 0.25)
    torch.testing.assert_close(base.state.label[used], expected[used])


def test_gains_over_the_labeled_only_fit_are_reported():
    env = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=3, vectorization_mode="vector_entry_point",
                       dataset="wine", n_labeled=9, n_pool=40, label_temperature=0.5)
    obs, info = env.reset(seed=0)
    assert float(info["test_accuracy_gain"].abs().max()) == 0 and float(info["theta_from_labeled_only"].max()) == 0
    start = info["test_accuracy"].clone()
    theta0 = env.unwrapped.state.theta.clone()
    agent = SelectionAgent(rule="greedy")
    for _ in range(5):
        obs, _, _, _, info = env.step(agent.act(obs))
    torch.testing.assert_close(info["test_accuracy_gain"], info["test_accuracy"] - start)
    torch.testing.assert_close(info["theta_from_labeled_only"], (env.unwrapped.state.theta - theta0).norm(dim=1))
    single = gym.make("Reciprocal-SelfTrain-v0", dataset="wine", n_labeled=9, n_pool=40)
    assert {"test_accuracy_gain", "val_accuracy_gain", "theta_from_labeled_only"} <= set(single.reset(seed=0)[1])


def test_a_temperature_with_hard_labels_is_refused():
    with pytest.raises(ValueError, match="label_temperature=0.5 would be ignored"):
        gym.make("Reciprocal-SelfTrain-v0", label_mode="hard", label_temperature=0.5)


def _threshold_env(adaptation, k, threshold, num_envs=2, **kwargs):
    return gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                        dataset="breast_cancer", n_labeled=10, n_pool=120, label_mode="hard", adaptation=adaptation,
                        k=k, label_threshold=threshold, **kwargs)


@pytest.mark.parametrize("adaptation, k", [("add", 4), ("amend", 10), ("swap", 4)])
def test_a_confidence_threshold_keeps_unsure_points_out(adaptation, k):
    threshold = 0.97
    env = _threshold_env(adaptation, k, threshold, buffer_size=12 if adaptation == "swap" else None)
    obs, _ = env.reset(seed=0)
    agent = SelectionAgent("confidence", "random", k=k, seed=3)
    for _ in range(4):
        confident = obs["log_probs"].max(-1).values >= torch.log(torch.tensor(threshold, dtype=torch.float64))
        action = agent.act(obs)
        obs, _, _, _, info = env.step(action)
        chosen_confident = confident.gather(1, action)
        assert torch.equal(info["below_threshold"], (~chosen_confident).sum(1))
        in_use = env.unwrapped.state.in_use
        assert not bool(in_use.gather(1, action)[~chosen_confident].any())  # the unsure picks did not join
        if adaptation == "amend":  # the pseudo-labeled part is exactly the confident picks
            assert torch.equal(in_use.sum(1), chosen_confident.sum(1))
    assert int(info["below_threshold"].sum()) > 0  # the case was exercised


def test_threshold_zero_changes_nothing_and_thresholds_sweep_per_learner():
    zero = _threshold_env("amend", 10, 0.0)
    plain = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=2, vectorization_mode="vector_entry_point",
                         dataset="breast_cancer", n_labeled=10, n_pool=120, label_mode="hard", adaptation="amend", k=10)
    sweep = _threshold_env("amend", 10, [0.9, 0.99])
    alone = [_threshold_env("amend", 10, t, num_envs=1) for t in (0.9, 0.99)]
    envs = [plain, zero, sweep, *alone]
    for env in (plain, zero, sweep):
        env.reset(seed=0)
    for b, env in enumerate(alone):
        env.reset(seed=b)  # learner b of the sweep is seeded 0 + b
    for step in range(3):
        action = torch.arange(10).repeat(2, 1) + 7 * step
        for env in envs:
            env.step(action if env.num_envs == 2 else action[:1])
        assert torch.equal(plain.unwrapped.state.theta, zero.unwrapped.state.theta)
        for b in range(2):
            torch.testing.assert_close(sweep.unwrapped.state.theta[b], alone[b].unwrapped.state.theta[0], rtol=0,
                                       atol=1e-12)
    assert "below_threshold" not in plain.step(torch.arange(10).repeat(2, 1))[4]


def test_a_threshold_drops_the_laws_mass_on_unsure_points_in_expected_mode():
    env = _threshold_env("expected", 10, 0.99, num_envs=1)
    obs, _ = env.reset(seed=0)
    law = torch.full((1, 120), 1.0 / 120, dtype=torch.float64)
    sure = obs["log_probs"].max(-1).values >= torch.log(torch.tensor(0.99, dtype=torch.float64))
    _, _, _, _, info = env.step(law)
    weight = env.unwrapped.state.weight
    assert bool((weight[~sure] == 0).all()) and bool((weight[sure] > 0).all())
    assert int(info["below_threshold"][0]) == int((~sure).sum())
