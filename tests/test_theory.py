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


def test_bandit_greedy_window_locks_on():
    means = np.array([0.2, 0.4, 0.5, 0.6, 0.65])
    run = theory.bandit_boltzmann(means, rule="greedy", steps=200)
    last = run["top_arm"][:, -50:]
    assert (last == last[:, :1]).all()  # the argmax never changes again: locked on one arm


@pytest.mark.parametrize("rule, expected_settled", [("softmax", True), ("greedy", False)])
def test_active_learning_softmax_uncertainty_settles_argmax_does_not(rule, expected_settled):
    run = theory.self_training(rule=rule, criterion="uncertainty", k=5, lam=0.01, tau=0.1, steps=50, learners=10,
                               env_id="Reciprocal-ActiveLearn-v0", budget=10_000)
    share = run.settled().mean()
    assert (share >= 0.8) if expected_settled else (share <= 0.5)


def test_active_learning_argmax_with_swap_cycles_more_often_than_softmax():
    runs = {rule: theory.self_training(rule=rule, criterion="uncertainty", k=1, lam=0.01, tau=0.1, steps=120,
                                       learners=20, env_id="Reciprocal-ActiveLearn-v0", adaptation="swap",
                                       buffer_size=5, budget=100_000, window=40, max_period=20)
            for rule in ("greedy", "softmax")}
    cycles = {rule: run.verdicts.count("oscillating") for rule, run in runs.items()}
    assert cycles["greedy"] > cycles["softmax"]
