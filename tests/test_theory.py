"""The theory's predictions as tests that can fail (small versions; examples/theory_reproduction.py runs them big)."""

import numpy as np
import pytest

from reciprocal_gym import theory


def test_soft_labels_softmax_non_greedy_contracts_geometrically():
    run = theory.self_training("soft", "softmax", "confidence", k=10, lam=0.1, tau=0.1, steps=60, learners=8)
    assert run.median_ratio(first=20) < 0.9
    assert (run.d[:, -1] < 1e-8).all()
    assert set(run.verdicts) == {"converged"}


def test_different_starts_reach_one_fixed_point():
    run = theory.self_training("soft", "softmax", "confidence", k=10, lam=0.1, tau=0.1, steps=60, learners=6,
                               same_split=True, random_start=3)
    spread = np.abs(run.theta - run.theta[0]).max()
    assert spread < 1e-6


def test_hard_labels_with_uncertainty_do_not_settle_but_soft_labels_do():
    hard = theory.self_training("hard", "greedy", "uncertainty", k=5, lam=0.01, steps=50, learners=20)
    soft = theory.self_training("soft", "greedy", "uncertainty", k=5, lam=0.01, steps=50, learners=20)
    assert (~hard.settled()).mean() >= 0.8
    assert (~soft.settled()).mean() <= 0.05


def test_greedy_add_only_does_not_contract_geometrically():
    run = theory.self_training("hard", "greedy", "confidence", k=1, lam=0.1, steps=50, learners=10,
                               adaptation="add")
    assert run.median_ratio() > 0.95


def test_contraction_slows_as_tau_falls():
    rates = [theory.self_training("soft", "softmax", "confidence", k=10, lam=0.1, tau=tau, steps=12,
                                  learners=6).median_ratio() for tau in (1.0, 0.1, 0.02)]
    assert rates[0] < rates[1] < rates[2]


def test_bandit_window_boltzmann_reaches_the_direct_fixed_point():
    means = np.array([0.2, 0.4, 0.5, 0.6, 0.65])
    run = theory.bandit_boltzmann(means, window=10, lam=1.0, tau=0.3, steps=1200)
    direct = theory.bandit_fixed_point(means, window=10, lam=1.0, tau=0.3)
    # the agent reads float32 observations, so the env's fixed point is the exact one up to float32 rounding
    assert np.abs(run["final"] - direct).max() < 1e-7
    assert run["changes"][:, -100:].max() == 0.0  # and it is stationary


def test_bandit_greedy_window_locks_on_the_arm_its_first_estimate_favours():
    # mean-field window: after the random start law pi0 the estimates are theta_k = pi0_k mu_k / (pi0_k + lam);
    # argmax then feeds its arm alone while the others' statistics decay, so it keeps that arm, best or not
    means = np.array([0.2, 0.4, 0.5, 0.6, 0.65])
    learners, lam, seed = 16, 1.0, 0
    run = theory.bandit_boltzmann(means, rule="greedy", steps=200, learners=learners, lam=lam, seed=seed)
    start = np.random.default_rng(seed).dirichlet(np.ones(len(means)), learners)
    predicted = (start * means / (start + lam)).argmax(1)
    last = run["top_arm"][:, -50:]
    assert (last == predicted[:, None]).all()
    assert (predicted != means.argmax()).any()  # and some runs lock on a poor arm


@pytest.mark.parametrize("rule, expected_settled", [("softmax", True), ("greedy", False)])
def test_active_learning_softmax_uncertainty_settles_argmax_does_not(rule, expected_settled):
    run = theory.self_training(rule=rule, criterion="uncertainty", k=5, lam=0.01, tau=0.1, steps=50, learners=10,
                               env_id="Reciprocal-ActiveLearn-v0", budget=10_000)
    share = run.settled().mean()
    assert (share >= 0.8) if expected_settled else (share <= 0.5)


def test_argmax_with_a_swap_buffer_ends_in_exact_cycles_and_sampling_is_stationary():
    # argmax selection with a swap buffer is deterministic on finitely many training sets: it ends in a cycle. Every
    # cycle the diagnostics name must be real: continued for its period, theta returns exactly, and not sooner.
    import gymnasium as gym
    import torch

    from agents import SelectionAgent
    from reciprocal_gym.wrappers import VERDICTS, ConvergenceDiagnostics

    envs = ConvergenceDiagnostics(gym.make_vec(
        "Reciprocal-ActiveLearn-v0", num_envs=20, vectorization_mode="vector_entry_point", dataset="blobs",
        dataset_kwargs=theory.BLOBS, n_labeled=20, n_pool=100, adaptation="swap", buffer_size=5, k=1, lam=0.01,
        budget=100_000, max_steps=400, tol=theory.SOLVER_TOL), window=40, max_period=20)
    agent = SelectionAgent(criterion="uncertainty", rule="greedy")
    obs, _ = envs.reset(seed=0)
    for _ in range(200):
        obs, _, _, _, info = envs.step(agent.act(obs))
    verdicts = [VERDICTS[v] for v in info["verdict"].tolist()]
    periods = info["period"].tolist()
    cycling = [b for b, v in enumerate(verdicts) if v == "oscillating"]
    assert len(cycling) >= 3, verdicts  # 7 of 20 here
    start = envs.unwrapped.parameters().clone()
    later = []
    for _ in range(max(periods)):
        obs, *_ = envs.step(agent.act(obs))
        later.append(envs.unwrapped.parameters().clone())
    later = torch.stack(later, 1)
    for b in cycling:
        gaps = (later[b] - start[b]).norm(dim=1)
        p = periods[b]
        assert gaps[p - 1] <= 1e-9 * (1 + start[b].norm()), (b, p, gaps[p - 1])
        assert (gaps[: p - 1] > 1e-6).all(), (b, p)  # the smallest period
    sampled = theory.self_training(rule="softmax", criterion="uncertainty", k=1, lam=0.01, tau=0.1, steps=200,
                                   learners=20, env_id="Reciprocal-ActiveLearn-v0", adaptation="swap",
                                   buffer_size=5, budget=100_000, window=40, max_period=20)
    assert sampled.verdicts.count("stationary") >= 16 and "oscillating" not in sampled.verdicts
    assert np.isfinite(sampled.time_average).all()
