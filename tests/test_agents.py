import gymnasium as gym
import numpy as np
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


def test_sparsemax_is_the_simplex_projection():
    from agents import sparsemax

    z = torch.tensor([[2.0, 1.0, 0.1, -1.0], [0.3, 0.3, 0.3, 0.3], [5.0, 0.0, 4.5, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True, True], [True, True, False, True], [False, True, True, True]])
    law = sparsemax(z, mask)
    # by hand: row 0 keeps only the first entry (2 - 1 >= 1); row 1 is uniform over its 3 allowed entries;
    # row 2 (first entry masked) keeps only entry 2
    torch.testing.assert_close(law[0], torch.tensor([1.0, 0, 0, 0], dtype=torch.float64))
    torch.testing.assert_close(law[1], torch.tensor([1 / 3, 1 / 3, 0, 1 / 3], dtype=torch.float64))
    torch.testing.assert_close(law[2], torch.tensor([0, 0, 1.0, 0], dtype=torch.float64))
    mixed = sparsemax(torch.tensor([[0.6, 0.5, -3.0]], dtype=torch.float64), torch.ones(1, 3, dtype=torch.bool))
    torch.testing.assert_close(mixed, torch.tensor([[0.55, 0.45, 0.0]], dtype=torch.float64))
    # the projection: no other point of the simplex is closer (checked against random simplex points)
    rng = torch.Generator().manual_seed(0)
    z = torch.randn(50, 6, generator=rng, dtype=torch.float64)
    law = sparsemax(z, torch.ones_like(z, dtype=torch.bool))
    others = torch.distributions.Dirichlet(torch.ones(6, dtype=torch.float64)).sample((50,))
    assert ((law - z).norm(dim=1) <= (others - z).norm(dim=1) + 1e-12).all()
    assert torch.allclose(law.sum(1), torch.ones(50, dtype=torch.float64))


def test_sparsemax_rule_on_the_pool_env():
    envs = _envs(k=2, invalid_action="raise")
    agent = SelectionAgent(rule="sparsemax", tau=0.05, k=2, seed=0)
    obs, _ = envs.reset(seed=0)
    for _ in range(4):
        obs, *_ = envs.step(agent.act(obs))
    assert agent.conditions["regularized"] and agent.conditions["randomized"]
    assert SelectionAgent(rule="greedy").conditions["lipschitz"] == "no"


def _bandit(num_envs=200, **kwargs):
    return gym.make_vec("Reciprocal-Bandit-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                        **kwargs)


def _regret(agent, steps=300, **kwargs):
    envs = _bandit(n_arms=5, max_steps=steps + 5, **kwargs)
    obs, _ = envs.reset(seed=0)
    for _ in range(steps):
        obs, _, _, _, info = envs.step(agent.act(obs))
    return info["cumulative_regret"].mean().item()


def test_ucb1_tries_every_arm_first_then_follows_the_index():
    from agents import UCB1Agent

    envs = _bandit(num_envs=3, n_arms=4)
    obs, _ = envs.reset(seed=0)
    agent = UCB1Agent()
    pulled = []
    for _ in range(4):
        action = agent.act(obs)
        pulled.append(action)
        obs, *_ = envs.step(action)
    assert (torch.stack(pulled).sort(0).values == torch.arange(4).unsqueeze(1)).all()
    index = obs["theta"] + torch.sqrt(2 * torch.log(obs["step"]) / obs["counts"])
    assert torch.equal(agent.act(obs), index.argmax(1))


def test_bandit_classics_beat_random_play():
    from agents import ThompsonAgent, UCB1Agent

    random_regret = _regret(SelectionAgent(criterion="mean", rule="random", seed=0))
    assert _regret(UCB1Agent()) < 0.6 * random_regret
    assert _regret(ThompsonAgent("beta", lam=1.0, seed=0)) < 0.5 * random_regret
    gaussian_random = _regret(SelectionAgent(criterion="mean", rule="random", seed=0), reward_dist="gaussian")
    assert _regret(ThompsonAgent("gaussian", lam=1.0, seed=0), reward_dist="gaussian") < 0.6 * gaussian_random
    assert _regret(SelectionAgent(criterion="ucb", rule="softmax", tau=0.05, seed=0)) < 0.8 * random_regret


def test_thompson_is_seeded_and_uses_the_posterior():
    from agents import ThompsonAgent

    obs = {"theta": torch.tensor([[0.5, 0.25]]), "counts": torch.tensor([[3.0, 7.0]]), "step": torch.tensor([[10.0]])}
    a = ThompsonAgent(seed=1).sample_means(obs)
    b = ThompsonAgent(seed=1).sample_means(obs)
    assert torch.equal(a, b)
    many = {key: value.expand(20000, -1) for key, value in obs.items()}
    draws = ThompsonAgent(seed=2).sample_means(many)
    # S = theta (n + 1): arm 0 has S = 2 of 3 -> Beta(3, 2), mean 0.6; arm 1 has S = 2 of 7 -> Beta(3, 6), mean 1/3
    assert draws[:, 0].mean().item() == pytest.approx(0.6, abs=0.01)
    assert draws[:, 1].mean().item() == pytest.approx(1 / 3, abs=0.01)
    with pytest.raises(ValueError, match="kind"):
        ThompsonAgent(kind="poisson")


def test_linucb_scores_and_regret_on_the_contextual_bandit():
    from agents import LinUCBAgent

    envs = gym.make_vec("Reciprocal-ContextualBandit-v0", num_envs=50, vectorization_mode="vector_entry_point",
                        dataset="wine", max_steps=400)
    obs, _ = envs.reset(seed=0)
    agent = LinUCBAgent(alpha=0.5)
    expected = torch.einsum("bkp,bp->bk", obs["theta"], obs["context"]) + 0.5 * obs["widths"]
    assert torch.equal(agent.act(obs), expected.argmax(1))
    for _ in range(300):
        obs, _, _, _, info = envs.step(agent.act(obs))
    # random play on 3 classes: regret about 2/3 per step; LinUCB learns the classes
    assert info["cumulative_regret"].mean().item() < 0.25 * 300


@pytest.mark.parametrize(("env_id", "make_agent"), [
    ("Reciprocal-SelfTrain-v0", lambda: SelectionAgent(rule="greedy", criterion="confidence")),
    ("Reciprocal-ActiveLearn-v0", lambda: SelectionAgent(rule="softmax", criterion="uncertainty", tau=0.1, seed=0)),
    ("Reciprocal-Bandit-v0", lambda: __import__("agents").UCB1Agent(seed=0)),
    ("Reciprocal-Bandit-v0", lambda: __import__("agents").ThompsonAgent(seed=0)),
    ("Reciprocal-ContextualBandit-v0", lambda: __import__("agents").LinUCBAgent()),
])
def test_a_single_envs_observation_goes_through_act_single_and_act_says_so(env_id, make_agent):
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    agent = make_agent()
    action = agent.act_single(obs)
    assert env.action_space.contains(action)
    env.step(action)
    with pytest.raises(TypeError, match="act_single"):
        agent.act(obs)


@pytest.mark.parametrize("tau", [0.05, 0.3, 2.0])
def test_the_stated_lipschitz_constants_of_the_selection_laws_hold_and_are_attained(tau):
    """softmax: 1 / tau from max norm to l1 and 1 / (2 tau) in l2; sparsemax: 1 / tau in l2 and |S| / tau from max
    norm to l1; checked by finite differences on random scores and attained (to 2 %) at two equal top scores."""
    rng = np.random.default_rng(0)
    n, eps = 12, 1e-7
    mask = torch.ones(1, n, dtype=torch.bool)
    for rule in ("softmax", "sparsemax"):
        agent = SelectionAgent(rule=rule, tau=tau)
        c = agent.conditions
        def law(z, agent=agent):
            return agent.law_from_scores(z, mask)

        for _ in range(200):
            z = torch.as_tensor(rng.normal(scale=tau * 3, size=(1, n)))
            v = torch.as_tensor(rng.choice([-1.0, 1.0], size=(1, n)) * rng.random((1, n)))
            d = law(z + eps * v) - law(z)
            support = int((law(z) > 0).sum())
            bound_l1 = c["lipschitz_max_to_l1"] if rule == "softmax" else support / tau
            ratio_l1 = float(d.abs().sum()) / (eps * float(v.abs().max()))
            ratio_l2 = float(d.norm()) / (eps * float(v.norm()))
            assert ratio_l1 <= bound_l1 * (1 + 1e-4) and ratio_l2 <= c["lipschitz_l2"] * (1 + 1e-4)
        z = torch.full((1, n), -50.0 * tau, dtype=torch.float64)
        z[0, :2] = 0.0  # two equal top scores, the rest far below
        v = torch.zeros(1, n, dtype=torch.float64)
        v[0, 0], v[0, 1] = 1.0, -1.0
        d = law(z + eps * v) - law(z)
        bound_l1 = c["lipschitz_max_to_l1"] if rule == "softmax" else 2 / tau
        assert float(d.abs().sum()) / eps == pytest.approx(bound_l1, rel=0.02)
        if rule == "softmax":
            assert float(d.norm()) / (eps * float(v.norm())) == pytest.approx(c["lipschitz_l2"], rel=0.02)
    assert SelectionAgent(rule="greedy").conditions["lipschitz_max_to_l1"] is None
