"""The selection context: what a criterion may use, through the public API only, and the look-ahead criteria computed
from it against a per-candidate refit loop."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

import reciprocal_gym
from agents import SelectionAgent
from agents.lookahead import likelihood, ppp, predictive_variance, probability_score
from reciprocal_gym import selection_context
from reciprocal_gym.learners import fit_ridge_logistic


def _vec(env_id="Reciprocal-SelfTrain-v0", num_envs=3, **kwargs):
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)


@pytest.mark.parametrize("dataset", ["breast_cancer", "wine"])
def test_context_agrees_with_the_observation_and_the_dataset(dataset):
    env = _vec(dataset=dataset)
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(torch.tensor([0, 1, 2]))
    ctx = selection_context(env)
    B, N = obs["action_mask"].shape
    assert ctx.num_learners == B and ctx.pool_rows.shape == (B, N)
    torch.testing.assert_close(ctx.log_probs, obs["log_probs"], rtol=0, atol=1e-12)
    assert torch.equal(ctx.selectable, obs["action_mask"].bool())
    torch.testing.assert_close(ctx.pool_X, ctx.X[ctx.pool_rows])
    torch.testing.assert_close(ctx.pool_Z, (ctx.pool_X - ctx.mean[:, None]) / ctx.scale[:, None])
    # theta in raw units gives the same logits on raw features as theta on standardized ones
    if ctx.n_classes == 2:
        raw = torch.einsum("bnd,bd->bn", ctx.pool_X, ctx.coef) + ctx.intercept[:, None]
        std = torch.einsum("bnp,bp->bn", ctx.features(ctx.pool_rows), ctx.theta)
    else:
        raw = torch.einsum("bnd,bcd->bnc", ctx.pool_X, ctx.coef) + ctx.intercept[:, None]
        std = torch.einsum("bnp,bcp->bnc", ctx.features(ctx.pool_rows), ctx.theta.view(B, ctx.n_classes, -1))
    torch.testing.assert_close(raw, ctx.logits, rtol=0, atol=1e-9)
    torch.testing.assert_close(std, ctx.logits, rtol=0, atol=1e-9)
    torch.testing.assert_close(ctx.theta.float(), obs["theta"])
    # the training set: labeled rows, then the pool atoms with their masses (1 for the point each learner added)
    assert torch.equal(ctx.train_rows[:, : ctx.labeled_rows.shape[1]], ctx.labeled_rows)
    pool_mass = ctx.train_mass[:, ctx.labeled_rows.shape[1]:]
    assert torch.equal(pool_mass > 0, ctx.in_use) and torch.equal(ctx.in_use.nonzero()[:, 1], torch.arange(3))
    torch.testing.assert_close(ctx.y[ctx.labeled_rows], ctx.labeled_y)


def test_an_explicit_split_keeps_its_row_order():
    rng = np.random.default_rng(0)
    parts = {key: (rng.normal(size=(n, 3)), rng.integers(0, 2, n)) for key, n in
             (("labeled", 10), ("pool", 15), ("val", 6), ("test", 7))}
    parts["labeled"][1][:2] = [0, 1]
    env = _vec(split=parts, num_envs=2)
    env.reset(seed=1)
    ctx = selection_context(env)
    for b in range(2):
        np.testing.assert_array_equal(ctx.pool_X[b].numpy(), parts["pool"][0])
        np.testing.assert_array_equal(ctx.X[ctx.labeled_rows[b]].numpy(), parts["labeled"][0])


def test_context_through_wrappers_and_the_single_env():
    single = gym.make("Reciprocal-SelfTrain-v0", n_labeled=10)  # TimeLimit / OrderEnforcing / PassiveEnvChecker
    obs, _ = single.reset(seed=0)
    ctx = selection_context(single)
    assert ctx.num_learners == 1
    np.testing.assert_allclose(ctx.log_probs[0].numpy(), obs["log_probs"], atol=1e-12)
    wrapped = gym.wrappers.vector.RecordEpisodeStatistics(_vec(num_envs=2))
    wrapped.reset(seed=0)
    assert selection_context(wrapped).num_learners == 2
    with pytest.raises(TypeError, match="pool envs"):
        selection_context(gym.make("Reciprocal-Bandit-v0"))


def _far_from_the_boundary_in_raw_units(obs, context):
    """A user's criterion: distance of each candidate to the decision boundary in the data's own units, minus a
    penalty on dataset row ids already used by any learner (a toy use of the row ids)."""
    norm = context.coef.norm(dim=-1, keepdim=True)
    distance = (context.logits.abs() / norm)
    used = torch.isin(context.pool_rows, context.train_rows[context.train_mass > 0])
    return distance - 1e3 * used


def test_a_custom_criterion_with_features_row_ids_and_raw_theta_needs_no_private_attribute():
    env = _vec(num_envs=2)
    agent = SelectionAgent(_far_from_the_boundary_in_raw_units, "greedy")
    assert agent.needs_context
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        ctx = selection_context(env)
        expected = _far_from_the_boundary_in_raw_units(obs, ctx)
        expected = torch.where(ctx.selectable, expected, -torch.inf).argmax(1)
        action = agent.act(obs, context=ctx)
        assert torch.equal(action, expected)
        assert torch.equal(agent.act_in(env, obs), action)
        obs, *_ = env.step(action)
    with pytest.raises(ValueError, match="selection context"):
        agent.act(obs)
    single = gym.make("Reciprocal-SelfTrain-v0")
    obs, _ = single.reset(seed=0)
    pick = agent.act_single(obs, context=selection_context(single))
    assert isinstance(pick, int) and obs["action_mask"][pick] == 1


def _loop_reference(ctx, b, c):
    """The refit of learner b's training set plus candidate c (hard pseudo-label), one fit at a time."""
    keep = ctx.train_mass[b] > 0
    Z = ctx.features(ctx.train_rows)[b, keep]
    w, y = ctx.train_mass[b, keep], ctx.train_labels[b, keep, 1]
    zc = ctx.features(ctx.pool_rows)[b, c : c + 1]
    yc = (ctx.logits[b, c : c + 1] > 0).double()
    Zx, wx, yx = torch.cat([Z, zc]), torch.cat([w, torch.ones(1, dtype=w.dtype)]), torch.cat([y, yc])
    lam_sum = float(ctx.lam_sum(1.0)[b])
    pen = ctx.penalty_mask()
    fit = fit_ridge_logistic(Zx[None], wx[None], torch.stack([1 - yx, yx], -1)[None], lam_sum / float(wx.sum()),
                             free_intercept=not ctx.penalize_intercept, tol=1e-13, max_iter=200, backend="torch")
    theta = fit.theta[0]
    z = Zx @ theta
    loglik = -float((wx * (torch.nn.functional.softplus(z) - yx * z)).sum())
    s = torch.sigmoid(z)
    H = (Zx * (wx * s * (1 - s))[:, None]).T @ Zx + torch.diag(lam_sum * pen)
    log_prior = 0.0
    if lam_sum > 0:
        log_prior = -0.5 * lam_sum * float((pen * theta * theta).sum()) + 0.5 * float(pen.sum()) * math.log(
            lam_sum / (2 * math.pi))
    P = len(theta)
    evidence = loglik + log_prior + 0.5 * P * math.log(2 * math.pi) - 0.5 * float(torch.logdet(H))
    # predictive variance at the current fit, without the candidate
    s0 = torch.sigmoid(Z @ ctx.theta[b])
    H0 = (Z * (w * s0 * (1 - s0))[:, None]).T @ Z + torch.diag(float(ctx.lam_sum()[b]) * pen)
    variance = float(zc[0] @ torch.linalg.solve(H0, zc[0]))
    return loglik, evidence, variance


@pytest.mark.parametrize("conventions", [
    dict(lam=0.05),
    dict(lam=1.0, penalty="sum", penalize_intercept=False, standardize="none"),
    dict(lam=0.2, label_mode="hard", adaptation="amend"),
])
def test_lookahead_criteria_equal_a_per_candidate_refit_loop(conventions):
    env = _vec(num_envs=2, n_labeled=25, n_pool=12, **conventions)
    obs, _ = env.reset(seed=5)
    obs, *_ = env.step(torch.tensor([0, 3]))
    ctx = selection_context(env)
    scores = {"likelihood": likelihood(obs, ctx), "ppp": ppp(obs, ctx), "variance": predictive_variance(obs, ctx)}
    for b in range(2):
        for c in range(ctx.pool_rows.shape[1]):
            loglik, evidence, variance = _loop_reference(ctx, b, c)
            assert abs(float(scores["likelihood"][b, c]) - loglik) < 1e-8
            assert abs(float(scores["ppp"][b, c]) - evidence) < 1e-8
            assert abs(float(scores["variance"][b, c]) + math.sqrt(variance)) < 1e-8
    torch.testing.assert_close(probability_score(obs, ctx), obs["log_probs"].max(-1).values, rtol=0, atol=1e-12)


def test_lookahead_criteria_drive_agents_and_refuse_multiclass():
    env = _vec(num_envs=2, n_labeled=20, n_pool=15, label_mode="hard")
    obs, _ = env.reset(seed=0)
    for name in ("ppp", "likelihood", "predictive_variance", "probability_score"):
        agent = SelectionAgent(name, "greedy")
        assert agent.needs_context
        action = agent.act_in(env, obs)
        assert bool(obs["action_mask"].gather(1, action[:, None]).all())
    wine = _vec(dataset="wine", num_envs=2)
    obs, _ = wine.reset(seed=0)
    with pytest.raises(ValueError, match="binary labels; the env has 3 classes"):
        SelectionAgent("ppp", "greedy").act_in(wine, obs)


def test_ppp_differs_from_confidence_on_the_papers_setting():
    """On the seed paper's glm setting (raw features, no penalty, free intercept, hard labels) PPP is not a
    relabelling of the confidence ranking: its top pick differs for some learner."""
    env = _vec(num_envs=8, dataset="breast_cancer", n_labeled=12, n_pool=40, lam=0.01, penalty="sum",
               penalize_intercept=False, label_mode="hard", standardize="non_test")
    obs, _ = env.reset(seed=0)
    ctx = selection_context(env)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_ppp = torch.where(ctx.selectable, ppp(obs, ctx), -torch.inf).argmax(1)
    by_confidence = SelectionAgent("confidence", "greedy").act(obs)
    assert bool((by_ppp != by_confidence).any())


def test_public_names():
    assert reciprocal_gym.SelectionContext is type(selection_context(_vec(num_envs=1)))


def test_lookahead_refits_follow_the_envs_glm_irls():
    """With solver='irls' the look-ahead refits are R glm's fits of each extended training set (its start, deviance
    test and iteration cap), and the Laplace term uses glm's observed information."""
    from reciprocal_gym.learners.irls import fit_irls_logistic, glm_working_weights

    env = _vec(num_envs=2, dataset="moons", dataset_kwargs={"noise": 0.4}, n_labeled=30, n_pool=10, lam=0.0,
               solver="irls", penalize_intercept=False, standardize="none", label_mode="hard")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # overlapping classes: every fit exists
        obs, _ = env.reset(seed=0)
        ctx = selection_context(env)
        scores, evidence = likelihood(obs, ctx), ppp(obs, ctx)
    for b in range(2):
        keep = ctx.train_mass[b] > 0
        Z = ctx.features(ctx.train_rows)[b, keep]
        w, y = ctx.train_mass[b, keep], ctx.train_labels[b, keep, 1]
        for c in range(ctx.pool_rows.shape[1]):
            zc = ctx.features(ctx.pool_rows)[b, c : c + 1]
            yc = (ctx.logits[b, c : c + 1] > 0).double()
            Zx, wx, yx = torch.cat([Z, zc]), torch.cat([w, torch.ones(1, dtype=w.dtype)]), torch.cat([y, yc])
            theta = fit_irls_logistic(Zx[None], wx[None], yx[None]).theta[0]
            z = Zx @ theta
            loglik = -float((wx * (torch.nn.functional.softplus(z) - yx * z)).sum())
            H = (Zx * glm_working_weights(z, wx)[:, None]).T @ Zx
            laplace = loglik + 0.5 * len(theta) * math.log(2 * math.pi) - 0.5 * float(torch.linalg.slogdet(H)[1])
            assert abs(float(scores[b, c]) - loglik) < 1e-8
            assert abs(float(evidence[b, c]) - laplace) < 1e-8
    # on the seed paper's data the classes are often separated: glm's stopping point keeps every score finite
    paper = _vec(num_envs=4, dataset="swiss_banknote", dataset_kwargs={"features": ("Diagonal", "Bottom", "Length")},
                 n_labeled=10, n_pool=40, lam=0.0, solver="irls", penalize_intercept=False, standardize="none",
                 label_mode="hard")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs, info = paper.reset(seed=0)
        ctx = selection_context(paper)
        for criterion in (ppp, likelihood, predictive_variance):
            assert bool(torch.isfinite(criterion(obs, ctx)).all())
    assert bool(info["fit_separated"].any())
