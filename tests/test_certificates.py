"""The convergence certificate (rigorous bound) and the contraction estimate (prediction) against observed runs.

Small versions of the figures ``examples/theory_reproduction.py`` reports over its full sweep."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import reciprocal_gym  # noqa: F401
from agents import SelectionAgent
from reciprocal_gym import certificate, contraction_estimate, theory
from reciprocal_gym.wrappers import ConvergenceDiagnostics


def _pool(env_id="Reciprocal-SelfTrain-v0", learners=8, **kwargs):
    settings = dict(dataset="blobs", dataset_kwargs=theory.BLOBS, n_labeled=20, n_pool=100, adaptation="expected",
                    max_steps=200, tol=theory.SOLVER_TOL)
    if env_id == "Reciprocal-ActiveLearn-v0":
        settings["budget"] = 100_000
    settings.update(kwargs)
    return gym.make_vec(env_id, num_envs=learners, vectorization_mode="vector_entry_point", **settings)


@pytest.mark.parametrize("env_id, criterion, k, lam, tau", theory.CERTIFIED)
def test_where_the_certificate_holds_every_run_converges_no_slower_than_it_says(env_id, criterion, k, lam, tau):
    envs = ConvergenceDiagnostics(_pool(env_id, k=k, lam=lam))
    agent = SelectionAgent(criterion=criterion, rule="softmax", tau=tau, k=k, law=True)
    obs, _ = envs.reset(seed=3)
    cert = certificate(envs, agent)
    assert cert.reason is None and cert.holds.all(), cert.summary(0)
    c = 0.05  # the weighted metric |d theta| + c W1 (at rate 1 every small c works; the bound is factor(c))
    bound_c = cert.factor(c)
    assert (bound_c < 1).all()
    d, dc = [], []
    for _ in range(40):
        obs, _, _, _, info = envs.step(agent.act_in(envs, obs))
        d.append(info["d"].numpy())
        dc.append((info["theta_step"] + c * info["w1"]).numpy())
    d, dc = np.stack(d, 1), np.stack(dc, 1)
    assert all(reason.startswith("converged") for reason in envs.reasons()), envs.reasons()
    above = d[:, :-1] > 1e-9  # ratios while the steps are well above the refit's accuracy
    for b in range(d.shape[0]):
        ratios = dc[b, 1:][above[b]] / dc[b, :-1][above[b]]
        assert (ratios <= bound_c[b]).all(), (b, ratios.max(), bound_c[b])
        if cert.kappa[b] < 1:  # the theorem's own metric d
            assert (d[b, 1:][above[b]] <= cert.kappa[b] * d[b, :-1][above[b]]).all()


@pytest.mark.parametrize("label_mode, criterion, lam, tau, rate", [
    ("soft", "confidence", 0.1, 0.1, 1.0), ("soft", "uncertainty", 0.01, 0.03, 1.0),
    ("soft", "margin", 1.0, 1.0, 0.5), ("soft", "entropy", 0.003, 0.3, 1.0)])
def test_the_certificates_factors_bound_the_measured_gains(label_mode, criterion, lam, tau, rate):
    # the certificate bounds L (W1 moved per unit of theta) and beta / gamma (theta moved per unit of W1) over every
    # state; the estimate measures them at the fixed point along the leading direction: bound >= measurement
    envs = _pool(k=10, lam=lam, label_mode=label_mode, expected_rate=rate)
    agent = SelectionAgent(criterion=criterion, rule="softmax", tau=tau, k=10, law=True)
    envs.reset(seed=5)
    cert, est = certificate(envs, agent), contraction_estimate(envs, agent)
    assert est.found.all()
    assert (cert.L_theta / rate >= est.adaptation_gain).all()
    assert (cert.erm >= est.erm_gain).all()
    assert (cert.kappa_best >= est.rate).all()  # a bound on the step factor also bounds the asymptotic rate


def test_the_certificate_says_why_it_does_not_apply():
    hard = _pool(label_mode="hard", k=5)
    assert "hard labels" in certificate(hard, SelectionAgent(rule="softmax", law=True)).reason
    greedy = certificate(_pool(k=5), SelectionAgent(rule="greedy", law=True))
    assert "argmax" in greedy.reason and np.isinf(greedy.kappa).all() and not greedy.holds.any()
    free = certificate(_pool(k=5, penalize_intercept=False), SelectionAgent(rule="softmax", law=True))
    assert "intercept" in free.reason
    sampled = _pool(k=5, adaptation="amend")
    assert "adaptation='amend'" in certificate(sampled, SelectionAgent(rule="softmax", k=5)).reason


@pytest.mark.parametrize("settings", theory.RATE_SETTINGS)
def test_the_estimated_rate_matches_the_observed_geometric_rate(settings):
    run = theory.self_training(rule="softmax", steps=120, learners=8, estimate=True, **settings)
    reached = np.abs(run.theta - run.estimate.theta).max(1) < 1e-6  # the loop ended at the estimate's fixed point
    assert reached.sum() >= 4  # (hard labels have several fixed points: 6 of 8 end at the one found from the start)
    observed = run.observed_rates()[reached]
    predicted = run.estimate.rate[reached]
    assert np.all(np.abs(predicted - observed) <= 0.05 * observed), (predicted, observed)


def test_the_estimates_call_agrees_with_the_observed_verdicts_over_a_sweep():
    grid = {"label_mode": ("hard", "soft"), "k": (5, 20), "tau": (0.01, 0.03, 0.1, 1.0), "lam": (0.01, 0.1),
            "rate": (1.0, 0.5)}
    records = theory.sweep(grid, seeds=2, steps=200)
    assert len(records) == 128
    settled = np.mean([r["settled"] for r in records])
    assert 0.1 < settled < 0.95  # both outcomes occur: the agreement is not a majority vote
    assert theory.agreement(records) >= 0.95
    # the transition is in tau for hard labels: tau = 0.01 mostly does not settle, tau = 1 always does
    hard = [r for r in records if r["label_mode"] == "hard" and r["rate"] == 1.0]
    assert np.mean([r["settled"] for r in hard if r["tau"] == 0.01]) <= 0.5
    assert all(r["settled"] for r in hard if r["tau"] == 1.0)


def test_the_contraction_estimate_leaves_the_env_as_it_was_and_refuses_what_it_cannot_estimate():
    envs = _pool(learners=3, k=5, dataset="wine", dataset_kwargs=None, n_labeled=9, n_pool=30)
    agent = SelectionAgent(rule="softmax", tau=0.3, k=5, law=True)
    obs, _ = envs.reset(seed=0)
    envs.step(agent.act(obs))
    before = envs.unwrapped.get_state()
    est = contraction_estimate(envs, agent)
    after = envs.unwrapped.get_state()
    assert before["header"]["checksum"] == after["header"]["checksum"]  # every field of the state, bit for bit
    assert est.eigenvalues.shape == (3, envs.unwrapped.n_params) and est.found.all()
    assert "contracts" in est.summary(0)
    with pytest.raises(ValueError, match="pool environment"):
        contraction_estimate(gym.make_vec("Reciprocal-Bandit-v0", num_envs=2,
                                          vectorization_mode="vector_entry_point"), agent)
    with pytest.raises(ValueError, match="adaptation='expected'"):
        contraction_estimate(_pool(k=5, adaptation="amend"), SelectionAgent(k=5))
    with pytest.raises(ValueError, match="law=True"):
        contraction_estimate(envs, SelectionAgent(rule="softmax", k=5))
    for bad in (dict(h=0.0), dict(max_newton=-1), dict(fixed_tol=float("nan")), dict(scales=()),
                dict(scales=(0.1, 2.0)), dict(damped_steps=1.5)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            contraction_estimate(envs, agent, **bad)


def test_greedy_law_in_expected_mode_is_the_top_k():
    envs = _pool(learners=2, k=3)
    agent = SelectionAgent(criterion="confidence", rule="greedy", k=3, law=True)
    obs, _ = envs.reset(seed=0)
    law = agent.act(obs)
    top = torch.topk(obs["log_probs"].max(-1).values.double(), 3).indices
    expected = torch.zeros_like(law).scatter_(1, top, 1.0 / 3)
    assert torch.equal(law, expected)
    envs.step(law)
    weight = envs.unwrapped.state.weight
    assert torch.equal(weight > 0, expected > 0)
    assert torch.allclose(weight[weight > 0], torch.ones(6, dtype=weight.dtype))
    epsilon = SelectionAgent(criterion="confidence", rule="epsilon", epsilon=0.1, k=3, law=True).act(obs)
    assert torch.allclose(epsilon.sum(1), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(epsilon.gather(1, top), torch.full((2, 3), 0.9 / 3 + 0.1 / 100, dtype=torch.float64))


def test_per_learner_temperatures_act_like_separate_agents():
    envs = _pool(learners=3, k=4)
    obs, _ = envs.reset(seed=2)
    taus = [0.05, 0.5, 5.0]
    together = SelectionAgent(rule="softmax", tau=taus, k=4, law=True).act(obs)
    for b, tau in enumerate(taus):
        alone = SelectionAgent(rule="softmax", tau=tau, k=4, law=True).act(obs)
        torch.testing.assert_close(together[b], alone[b], rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="tau has 2 entries"):
        SelectionAgent(rule="softmax", tau=[0.1, 0.2], law=True).act(obs)
    with pytest.raises(ValueError, match=r"tau\[1\]"):
        SelectionAgent(rule="softmax", tau=[0.1, -1.0])


def test_single_env_estimate_and_certificate_are_the_batched_engines_with_one_learner():
    kwargs = dict(dataset="moons", adaptation="expected", k=5, lam=0.1, tol=theory.SOLVER_TOL)
    single = gym.make("Reciprocal-SelfTrain-v0", **kwargs)
    vector = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=1, vectorization_mode="vector_entry_point", **kwargs)
    single.reset(seed=4)
    vector.reset(seed=4)
    agent = SelectionAgent(rule="softmax", tau=0.3, k=5, law=True)
    one, batched = contraction_estimate(single, agent), contraction_estimate(vector, agent)
    np.testing.assert_allclose(one.rate, batched.rate, rtol=1e-9)
    np.testing.assert_allclose(certificate(single, agent).kappa, certificate(vector, agent).kappa, rtol=1e-12)
