import gymnasium as gym
import pytest
import torch

import reciprocal_gym  # noqa: F401
from agents import RULES, SelectionAgent


def _envs(**kwargs):
    return gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=8, vectorization_mode="vector_entry_point",
                        dataset="wine", n_labeled=9, n_pool=40, **kwargs)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("k", [1, 3])
def test_rules_respect_the_mask_and_pick_distinct_points(rule, k):
    envs = _envs(k=k, invalid_action="raise")
    agent = SelectionAgent(rule=rule, k=k, seed=0)
    obs, _ = envs.reset(seed=0)
    for _ in range(8):  # raises if any chosen point is masked or repeated
        obs, *_ = envs.step(agent.act(obs))


def test_greedy_takes_the_most_confident_point():
    envs = _envs()
    obs, _ = envs.reset(seed=1)
    action = SelectionAgent(rule="greedy").act(obs)
    conf = obs["candidates"][..., :3].max(-1).values
    assert torch.equal(action, conf.argmax(-1))


def test_seeded_agents_repeat_and_differ_by_seed():
    envs = _envs()
    obs, _ = envs.reset(seed=0)
    a = SelectionAgent(rule="softmax", tau=1.0, seed=3).act(obs)
    b = SelectionAgent(rule="softmax", tau=1.0, seed=3).act(obs)
    c = SelectionAgent(rule="softmax", tau=1.0, seed=4).act(obs)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_softmax_law_matches_the_formula_and_user_criterion():
    envs = _envs()
    obs, _ = envs.reset(seed=0)
    agent = SelectionAgent(criterion=lambda o: -o["candidates"][..., 0], rule="softmax", tau=0.5)
    law = agent.selection_law(obs)
    torch.testing.assert_close(law, torch.softmax(-obs["candidates"][..., 0].double() / 0.5, -1))
    expected_envs = _envs(adaptation="expected", k=5)
    obs, _ = expected_envs.reset(seed=0)
    obs, r, *_ = expected_envs.step(SelectionAgent(law=True).act(obs))
    assert torch.isfinite(r).all()


@pytest.mark.parametrize("kwargs, match", [(dict(rule="best"), "rule"), (dict(criterion="luck"), "criterion"),
                                           (dict(tau=0.0), "tau"), (dict(epsilon=2.0), "epsilon"),
                                           (dict(k=0), "k")])
def test_bad_agent_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SelectionAgent(**kwargs)
