"""Batched IRLS for binary logistic regression with R ``glm``'s rules, and the detection of separated fits.

:func:`fit_irls_logistic` fits B learners by iteratively reweighted least squares as R's
``glm(y ~ x, family = binomial, weights = w)`` does (``glm.fit`` with ``glm.control()``): start from
``mu = (w y + 1/2) / (w + 1)``, then per iteration the working response ``z = eta + (y - mu) / (mu (1 - mu))`` and
working weights ``W = w mu (1 - mu)`` (with R's guards: ``mu`` is ``eps`` / ``1 - eps`` beyond |eta| = 30 and
``d mu / d eta >= eps``), ``beta = (X' W X + lam_sum Pen)^-1 X' W z``; stop when the deviance changes
by less than ``epsilon = 1e-8`` relative, ``|dev - dev_old| / (|dev| + 0.1) < epsilon``, or after ``maxit = 25``
iterations. The deviance is ``2 sum_i w_i [y_i log(y_i / mu_i) + (1 - y_i) log((1 - y_i) / (1 - mu_i))]`` (plus
``lam_sum |beta_pen|^2`` when a ridge is given, which R's ``glm`` has not). Weights are prior weights on the sum
scale, as in R (not normalized); an atom of weight 0 does not count. Soft labels ``y`` in [0, 1] are allowed (R
warns "non-integer #successes" and fits the same).

Separation. Without a penalty the maximum-likelihood fit does not exist when the classes are (quasi-)separated by
a hyperplane: the likelihood keeps rising as |theta| grows, every solver stops somewhere set by its own tolerance, and
a gradient test can pass at a point that is not a minimiser. :func:`separated` flags such fits.
"""

from __future__ import annotations

import torch
from torch import Tensor

from reciprocal_gym.learners.logistic import FitResult, _cholesky_jittered, _cholesky_solve

GLM_EPSILON = 1e-8
"""R ``glm.control()``'s relative deviance tolerance."""
GLM_MAXIT = 25
"""R ``glm.control()``'s iteration cap."""
SATURATED = 10 * torch.finfo(torch.float64).eps
"""R's threshold for "fitted probabilities numerically 0 or 1 occurred" (``10 * .Machine$double.eps``)."""


def _deviance(y: Tensor, mu: Tensor, w: Tensor) -> Tensor:
    """(B,) binomial deviance ``2 sum w [y log(y / mu) + (1 - y) log((1 - y) / (1 - mu))]`` (0 log 0 = 0)."""
    terms = torch.special.xlogy(y, y) - torch.special.xlogy(y, mu)
    terms = terms + torch.special.xlogy(1 - y, 1 - y) - torch.special.xlogy(1 - y, 1 - mu)
    return 2.0 * (w * terms).sum(1)


def fit_irls_logistic(
    X: Tensor,
    weights: Tensor,
    y: Tensor,
    lam_sum: float | Tensor = 0.0,
    free_intercept: bool = True,
    epsilon: float = GLM_EPSILON,
    max_iter: int = GLM_MAXIT,
) -> FitResult:
    """Fit B binary logistic regressions by IRLS with R ``glm``'s start, deviance test and iteration cap.

    Args:
        X: (B, n, p) atoms (include the intercept column, last, if wanted).
        weights: (B, n) prior weights (sum scale, as R's ``weights``); zero-weight atoms do not count.
        y: (B, n) responses in [0, 1] (the class-1 share of each atom's label).
        lam_sum: ridge on the sum scale (0: R's unpenalized ``glm``), shared or (B,); the objective is
            ``-loglik + lam_sum / 2 |beta_pen|^2``.
        free_intercept: leave the last column (the intercept) out of the ridge.
        epsilon, max_iter: R's ``glm.control(epsilon, maxit)``.

    Returns a :class:`~reciprocal_gym.learners.FitResult`: ``iterations`` as R's ``iter``, ``converged`` as R's
    ``converged`` (the deviance test passed), ``grad_norm`` the norm of the mean-scale gradient at exit (the
    gradient of the sum-scale objective divided by the total weight), ``gamma`` None.
    """
    B, n, p = X.shape
    w = weights.to(X.dtype)
    lam = lam_sum if not isinstance(lam_sum, Tensor) else lam_sum.to(X.dtype).view(B, 1)
    pen = torch.ones(p, dtype=X.dtype, device=X.device)
    if free_intercept:
        pen[-1] = 0.0
    mu = (w * y + 0.5) / (w + 1.0)
    eta = torch.log(mu / (1.0 - mu))
    eps = torch.finfo(torch.float64).eps  # R's DBL_EPSILON in binomial()'s linkinv and mu.eta
    beta = torch.zeros(B, p, dtype=X.dtype, device=X.device)
    dev = _deviance(y, mu, w)
    iterations = torch.zeros(B, dtype=torch.int64, device=X.device)
    converged = torch.zeros(B, dtype=torch.bool, device=X.device)
    for _ in range(max_iter):
        active = ~converged
        if not bool(active.any()):
            break
        mu_eta = (torch.sigmoid(eta) * torch.sigmoid(-eta)).clamp_min(eps)
        z = eta + (y - mu) / mu_eta
        W = w * mu_eta * mu_eta / (mu * (1.0 - mu))
        H = torch.bmm(X.transpose(1, 2), X * W.unsqueeze(-1))
        H.diagonal(dim1=-2, dim2=-1).add_(lam * pen)
        rhs = torch.bmm((W * z).unsqueeze(1), X).squeeze(1)
        new_beta = _cholesky_solve(_cholesky_jittered(H), rhs)
        new_eta = torch.bmm(X, new_beta.unsqueeze(-1)).squeeze(-1)
        new_mu = torch.where(new_eta < -30, eps, torch.where(new_eta > 30, 1.0 - eps, torch.sigmoid(new_eta)))
        new_dev = _deviance(y, new_mu, w) + lam_sum_times(lam, pen, new_beta)
        done = (new_dev - dev).abs() / (new_dev.abs() + 0.1) < epsilon
        keep = active.unsqueeze(1)
        beta = torch.where(keep, new_beta, beta)
        eta, mu = torch.where(keep, new_eta, eta), torch.where(keep, new_mu, mu)
        dev = torch.where(active, new_dev, dev)
        iterations = iterations + active.to(torch.int64)
        converged = converged | (active & done)
    total = w.sum(1).clamp_min(torch.finfo(X.dtype).tiny)
    gradient = torch.bmm((w * (mu - y)).unsqueeze(1), X).squeeze(1) + lam * pen * beta
    return FitResult(theta=beta, iterations=iterations, grad_norm=gradient.norm(dim=1) / total, converged=converged,
                     gamma=None)


def glm_working_weights(eta: Tensor, weights: Tensor) -> Tensor:
    """R glm's working weights ``w (d mu / d eta)^2 / (mu (1 - mu))`` at linear predictors ``eta``, with its guards
    (``mu`` is ``eps`` / ``1 - eps`` beyond |eta| = 30, ``d mu / d eta >= eps``): the observed information's weights,
    positive also where the fit saturates."""
    eps = torch.finfo(torch.float64).eps
    mu = torch.where(eta < -30, eps, torch.where(eta > 30, 1.0 - eps, torch.sigmoid(eta)))
    mu_eta = (torch.sigmoid(eta) * torch.sigmoid(-eta)).clamp_min(eps)
    return weights * mu_eta * mu_eta / (mu * (1.0 - mu))


def lam_sum_times(lam: float | Tensor, pen: Tensor, beta: Tensor) -> Tensor:
    """The ridge's contribution to the penalized deviance, ``lam_sum |beta_pen|^2`` (B,)."""
    square = (pen * beta * beta).sum(1)
    return (lam * square.unsqueeze(1)).squeeze(1) if isinstance(lam, Tensor) else lam * square


def separated(X: Tensor, weights: Tensor, targets: Tensor, theta: Tensor) -> Tensor:
    """(B,) True where an unpenalized binary or multinomial fit ``theta`` shows (quasi-)separation: some atom in use
    has a fitted probability of its label class numerically 0 or 1 (R's test, ``10 * eps``), or the loss still falls
    along theta (the loss at ``2 theta`` is below the loss at ``theta``; at a finite maximum-likelihood fit it
    rises). Only meaningful for fits without a penalty (lam = 0): with one, the fit always exists."""
    B = theta.shape[0]
    C = targets.shape[-1]
    used = weights > 0

    def loss(th: Tensor) -> tuple[Tensor, Tensor]:
        if C == 2:
            z = torch.bmm(X, th.unsqueeze(-1)).squeeze(-1) if X.dim() == 3 else th @ X.T
            ce = torch.nn.functional.softplus(z) - targets[..., 1] * z
            prob = torch.sigmoid(z)
            extreme = (prob < SATURATED) | (prob > 1 - SATURATED)
        else:
            W = th.view(B, C, -1)
            z = torch.bmm(X, W.transpose(1, 2)) if X.dim() == 3 else torch.einsum("np,bcp->bnc", X, W)
            logp = torch.log_softmax(z, -1)
            ce = -(targets * logp).sum(-1)
            prob = logp.exp()
            extreme = ((prob < SATURATED) | (prob > 1 - SATURATED)).any(-1)
        return (weights * ce).sum(1), extreme & used

    at, extreme = loss(theta)
    doubled, _ = loss(2.0 * theta)
    falling = (doubled < at) & (theta.abs().amax(1) > 0) & (at > 0)
    return falling | extreme.any(1)
