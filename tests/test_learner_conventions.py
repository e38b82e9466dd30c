"""The learner's conventions as options: penalty scale, free intercept, standardization, warm start, R glm's IRLS, and
separation reported instead of called converged."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression

from reciprocal_gym import selection_context
from reciprocal_gym.envs.pool import SeparationWarning
from reciprocal_gym.learners import fit_ridge_logistic
from reciprocal_gym.learners.irls import fit_irls_logistic


def _vec(**kwargs):
    return gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=kwargs.pop("num_envs", 2),
                        vectorization_mode="vector_entry_point", **kwargs)


def _training_arrays(env, b):
    """The labeled set of learner b as raw arrays (at reset the training set is the labeled set)."""
    ctx = selection_context(env)
    rows = ctx.labeled_rows[b]
    return ctx.X[rows].numpy(), ctx.labeled_y[b].numpy(), ctx


@pytest.mark.parametrize("dataset", ["breast_cancer", "wine"])
@pytest.mark.parametrize("standardize", ["none", "non_test"])
def test_sum_penalty_with_free_intercept_is_scikit_learns_logistic_regression(dataset, standardize):
    C = 0.5
    env = _vec(dataset=dataset, n_labeled=40, lam=1.0 / C, penalty="sum", penalize_intercept=False,
               standardize=standardize, tol=1e-11)
    env.reset(seed=4)
    for b in range(2):
        X, y, ctx = _training_arrays(env, b)
        Z = (X - ctx.mean[b].numpy()) / ctx.scale[b].numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sk = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(Z, y)
        pool = ctx.pool_Z[b].numpy()
        ours = ctx.logits[b].numpy()
        theirs = sk.decision_function(pool)
        if ours.ndim == 2:  # multinomial logits are defined up to a shift shared by the classes
            ours, theirs = ours - ours.mean(1, keepdims=True), theirs - theirs.mean(1, keepdims=True)
        scale = 1.0 + np.abs(theirs).max()
        np.testing.assert_allclose(ours, theirs, atol=1e-7 * scale)


def test_mean_and_sum_penalties_differ_by_the_training_mass():
    """lam on the mean loss equals lam * (training mass) on the summed loss: the same fit."""
    mean = _vec(lam=0.05, tol=1e-12)
    mean.reset(seed=1)
    n = mean.unwrapped.sizes.n_labeled
    total = _vec(lam=0.05 * n, penalty="sum", tol=1e-12)
    total.reset(seed=1)
    torch.testing.assert_close(mean.unwrapped.state.theta, total.unwrapped.state.theta, rtol=0, atol=1e-9)
    other = _vec(lam=0.05, penalty="sum", tol=1e-12)
    other.reset(seed=1)
    assert (mean.unwrapped.state.theta - other.unwrapped.state.theta).abs().max() > 1e-3


def test_free_intercept_leaves_the_intercept_out_of_the_penalty():
    X = torch.tensor(np.random.default_rng(0).normal(size=(1, 50, 2)))
    X = torch.cat([X, torch.ones(1, 50, 1, dtype=X.dtype)], -1)
    y = torch.zeros(1, 50, dtype=torch.float64)
    y[0, :45] = 1.0  # imbalanced: a large intercept
    Q = torch.stack([1 - y, y], -1)
    w = torch.ones(1, 50, dtype=torch.float64)
    free = fit_ridge_logistic(X, w, Q, 10.0, free_intercept=True).theta[0]
    tied = fit_ridge_logistic(X, w, Q, 10.0).theta[0]
    # with a huge ridge the slopes vanish; the free intercept is then the log-odds of the labels, the penalized one ~0
    assert abs(float(free[-1]) - np.log(45 / 5)) < 0.05
    assert abs(float(tied[-1])) < 0.1


def _plain_irls(X, y, w, epsilon=1e-8, maxit=25):
    """R glm.fit for the binomial family with the logit link, one learner, written from R's documented algorithm."""
    eps = np.finfo(float).eps
    mu = (w * y + 0.5) / (w + 1)
    eta = np.log(mu / (1 - mu))

    def deviance(mu):
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(y > 0, y * np.log(y / mu), 0.0) + np.where(y < 1, (1 - y) * np.log((1 - y) / (1 - mu)),
                                                                         0.0)
        return 2 * np.sum(w * terms)

    dev, converged, it = deviance(mu), False, 0
    for it in range(1, maxit + 1):  # noqa: B007
        mu_eta = np.maximum(np.exp(-np.abs(eta)) / (1 + np.exp(-np.abs(eta))) ** 2, eps)
        z = eta + (y - mu) / mu_eta
        W = w * mu_eta**2 / (mu * (1 - mu))
        beta = np.linalg.solve(X.T @ (X * W[:, None]), X.T @ (W * z))
        eta = X @ beta
        mu = np.where(eta < -30, eps, np.where(eta > 30, 1 - eps, 1 / (1 + np.exp(-eta))))
        new = deviance(mu)
        if abs(new - dev) / (abs(new) + 0.1) < epsilon:
            converged = True
            break
        dev = new
    return beta, it, converged


def test_irls_is_r_glms_algorithm():
    rng = np.random.default_rng(5)
    B, n, p = 6, 70, 4
    X = np.concatenate([rng.normal(size=(B, n, p - 1)), np.ones((B, n, 1))], 2)
    truth = rng.normal(size=p)
    y = (rng.random((B, n)) < 1 / (1 + np.exp(-X @ truth))).astype(float)
    y[:, :5] = rng.random((B, 5))  # soft responses, as glm accepts them
    w = rng.integers(1, 4, size=(B, n)).astype(float)
    w[:, -6:] = 0.0  # padding: no weight, no say
    fit = fit_irls_logistic(torch.tensor(X), torch.tensor(w), torch.tensor(y))
    for b in range(B):
        keep = w[b] > 0
        beta, iterations, converged = _plain_irls(X[b][keep], y[b][keep], w[b][keep])
        np.testing.assert_allclose(fit.theta[b].numpy(), beta, rtol=0, atol=1e-8)
        assert int(fit.iterations[b]) == iterations and bool(fit.converged[b]) == converged


def test_env_with_irls_fits_like_glm():
    env = _vec(dataset="breast_cancer", n_labeled=60, lam=0.0, solver="irls", penalize_intercept=False,
               standardize="none", dataset_kwargs=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeparationWarning)
        _, info = env.reset(seed=2)
    for b in range(2):
        X, y, ctx = _training_arrays(env, b)
        beta, iterations, _ = _plain_irls(np.hstack([X, np.ones((len(X), 1))]), y.astype(float), np.ones(len(y)))
        np.testing.assert_allclose(ctx.theta[b].numpy(), beta, rtol=1e-6, atol=1e-6)
        assert int(info["fit_iterations"][b]) == iterations


def test_separated_unpenalized_fits_are_reported_not_converged():
    X = np.random.default_rng(0).normal(size=(120, 2))
    y = (X[:, 0] > 0).astype(int)  # separable by the first feature
    for solver in ("newton", "irls"):
        env = _vec(X=X, y=y, n_labeled=20, lam=0.0, solver=solver, penalize_intercept=solver != "irls")
        with pytest.warns(SeparationWarning, match="separated"):
            _, info = env.reset(seed=0)
        assert bool(info["fit_separated"].all()) and not bool(info["fit_converged"].any())
    env = _vec(X=X, y=y, n_labeled=20, lam=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SeparationWarning)
        _, info = env.reset(seed=0)
    assert not bool(info["fit_separated"].any()) and bool(info["fit_converged"].all())
    overlapping = np.random.default_rng(1).random(120) < 0.5
    env = _vec(X=X, y=overlapping.astype(int), n_labeled=40, lam=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SeparationWarning)
        _, info = env.reset(seed=0)
    assert not bool(info["fit_separated"].any()) and bool(info["fit_converged"].all())


@pytest.mark.parametrize("standardize", ["none", "labeled", "non_test"])
def test_standardization_statistics_come_from_the_rows_named(standardize):
    env = _vec(standardize=standardize)
    env.reset(seed=3)
    ctx = selection_context(env)
    X = ctx.X
    for b in range(2):
        if standardize == "none":
            rows = None
        elif standardize == "labeled":
            rows = ctx.labeled_rows[b]
        else:
            state = env.unwrapped.state
            rows = torch.cat([state.rows[part][b] for part in ("labeled", "pool", "val")])
        if rows is None:
            assert bool((ctx.mean[b] == 0).all()) and bool((ctx.scale[b] == 1).all())
        else:
            torch.testing.assert_close(ctx.mean[b], X[rows].mean(0))
            std = X[rows].std(0, unbiased=False)
            torch.testing.assert_close(ctx.scale[b], torch.where(std > 1e-12, std, 1.0))


def test_warm_start_off_refits_from_scratch_to_the_same_minimiser():
    kwargs = dict(lam=0.05, label_mode="hard", tol=1e-12)
    warm, cold = _vec(**kwargs), _vec(warm_start=False, **kwargs)
    warm.reset(seed=0)
    cold.reset(seed=0)
    iterations = []
    for step in range(4):
        action = torch.tensor([step, step + 1])
        _, _, _, _, info_w = warm.step(action)
        _, _, _, _, info_c = cold.step(action)
        iterations.append((int(info_w["fit_iterations"].sum()), int(info_c["fit_iterations"].sum())))
        torch.testing.assert_close(warm.unwrapped.state.theta, cold.unwrapped.state.theta, rtol=0, atol=1e-9)
    assert all(w < c for w, c in iterations)  # the same fits, reached from theta = 0 each time


def test_convention_options_refuse_what_cannot_work():
    with pytest.raises(ValueError, match="irls.*binary.*3 classes"):
        _vec(dataset="wine", solver="irls")
    with pytest.raises(ValueError, match="warm_start=True is not allowed with solver='irls'"):
        _vec(solver="irls", warm_start=True)
    with pytest.raises(ValueError, match="penalty"):
        _vec(penalty="l1")
    with pytest.raises(ValueError, match="standardize"):
        _vec(standardize="train")
    env = _vec(penalize_intercept=False)
    assert env.unwrapped.backend.fit == "torch"  # the compiled solver penalizes every coordinate


def test_multinomial_free_intercepts_give_scikit_learns_probabilities_under_newton_cg():
    X, y = load_wine(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    Xt = torch.tensor(np.hstack([X, np.ones((len(X), 1))]))[None]
    Q = torch.nn.functional.one_hot(torch.tensor(y), 3).double()[None]
    w = torch.ones(1, len(y), dtype=torch.float64)
    fit = fit_ridge_logistic(Xt, w, Q, 1.0 / len(y), solver="newton-cg", free_intercept=True, tol=1e-12,
                             max_iter=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X, y)
    probs = torch.softmax(Xt[0] @ fit.theta[0].view(3, -1).T, -1).numpy()
    np.testing.assert_allclose(probs, sk.predict_proba(X), atol=1e-8)
    assert bool(fit.converged[0])


def test_conventions_are_documented_with_their_equivalents():
    """The env docstring states the objective and its scikit-learn and R equivalents."""
    doc = gym.make("Reciprocal-SelfTrain-v0").unwrapped.__doc__
    for phrase in ("penalty", "LogisticRegression(C=1 / lam)", "glm(", "penalize_intercept", "standardize",
                   "warm_start", "fit_separated"):
        assert phrase in doc, phrase
