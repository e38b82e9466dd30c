"""Look-ahead refits: for B learners and each of N candidates, the binary logistic fit of the training set plus that
candidate, all B x N fits in one batched Newton solve.

Each fit minimises the summed objective ``F(theta) = sum_i w_i CE(y_i, theta) + w_c CE(y_c, theta) +
lam / 2 |theta_pen|^2`` (``CE(y, theta) = softplus(z) - y z`` with ``z = x . theta``, ``y`` in [0, 1]), starting
from the current fit, by Newton steps with Armijo backtracking until the gradient norm divided by the total weight is
at most ``tol``. The training set is shared by the N fits of a learner, so the (B, N, p, p) Hessians are built from
the training atoms' features without copying them per candidate; candidates are processed in chunks that bound the
memory. This is where a batched engine beats a loop: the seed paper's pseudo-posterior predictive criterion needs one
refit per candidate and step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

_ELEMENTS = 2**22
"""Chunk size: at most this many (learner, candidate, atom, feature) elements in one intermediate."""


@dataclass(frozen=True)
class LookAhead:
    """The refit with each candidate added (leading dimensions (B, N))."""

    theta: Tensor
    """(B, N, p) the refitted parameters."""
    log_likelihood: Tensor
    """(B, N) the summed log-likelihood (weighted) of the training set plus the candidate at the refit."""
    log_det_hessian: Tensor
    """(B, N) log det of the summed objective's Hessian at the refit (the observed information plus the ridge)."""
    converged: Tensor
    """(B, N) bool: the gradient test passed."""


def _objective_parts(Z: Tensor, w: Tensor, y: Tensor, Zc: Tensor, yc: Tensor, wc: float, th: Tensor
                     ) -> tuple[Tensor, Tensor, Tensor]:
    """Logits of the training atoms (B, K, n) and of the candidates (B, K), and their summed cross-entropy (B, K)."""
    z = torch.einsum("bnp,bkp->bkn", Z, th)
    zc = (Zc * th).sum(-1)
    loss = (w.unsqueeze(1) * (torch.nn.functional.softplus(z) - y.unsqueeze(1) * z)).sum(-1)
    loss = loss + wc * (torch.nn.functional.softplus(zc) - yc * zc)
    return z, zc, loss


def _hessian(ZZ: Tensor, w: Tensor, z: Tensor, Zc: Tensor, zc: Tensor, wc: float, ridge: Tensor) -> Tensor:
    """(B, K, p, p) Hessians of the summed objective; ``ZZ`` (B, n, p * p) the training atoms' outer products, so the
    training part of all K Hessians of a learner is one matrix product (K, n) x (n, p * p)."""
    B, K, p = Zc.shape
    s = torch.sigmoid(z)
    v = w.unsqueeze(1) * s * (1.0 - s)  # (B, K, n)
    H = torch.bmm(v, ZZ).view(B * K, p, p)
    sc = torch.sigmoid(zc)
    scaled = (wc * sc * (1.0 - sc)).unsqueeze(-1) * Zc  # the candidate's rank-one term, added in place
    H.baddbmm_(scaled.reshape(B * K, p, 1), Zc.reshape(B * K, 1, p))
    H = H.view(B, K, p, p)
    H.diagonal(dim1=-2, dim2=-1).add_(ridge.unsqueeze(1))
    return H


def refit_each_candidate(Z: Tensor, w: Tensor, y: Tensor, Zc: Tensor, yc: Tensor, lam_sum: Tensor, pen: Tensor,
                         theta0: Tensor, wc: float = 1.0, tol: float = 1e-10, max_iter: int = 50,
                         solver: str = "newton") -> LookAhead:
    """Refit B binary logistic learners once per candidate, the candidate added with weight ``wc`` and label ``yc``.

    Args:
        Z: (B, n, p) the training atoms' model inputs (standardized features and intercept). w: (B, n) their weights
            (0 for padding). y: (B, n) their labels' class-1 share.
        Zc: (B, N, p) the candidates' inputs. yc: (B, N) their labels' class-1 share.
        lam_sum: (B,) the ridge on the summed loss. pen: (p,) which coordinates it acts on (1) or not (0).
        theta0: (B, p) the start (the current fit).
        tol: stop when ``|gradient| / total weight <= tol``. max_iter: Newton iterations at most.
        solver: ``"newton"`` (the above), or ``"irls"``: each refit by
            :func:`~reciprocal_gym.learners.irls.fit_irls_logistic` (R glm's start, deviance test with ``tol`` as its
            epsilon, ``max_iter`` iterations), the B x N extended training sets stacked as learners of one batched
            call; the Hessian is then glm's (R's clamped working weights), finite also for separated data.
    """
    B, N, p = Zc.shape
    n = Z.shape[1]
    chunk = max(1, min(N, _ELEMENTS // max(1, B * max(n, p) * p)))
    refit = _irls_chunk if solver == "irls" else _refit_chunk
    parts = [refit(Z, w, y, Zc[:, lo:lo + chunk], yc[:, lo:lo + chunk], lam_sum, pen, theta0, wc, tol, max_iter)
             for lo in range(0, N, chunk)]
    return LookAhead(*(torch.cat([getattr(part, field) for part in parts], 1)
                       for field in ("theta", "log_likelihood", "log_det_hessian", "converged")))


def _irls_chunk(Z: Tensor, w: Tensor, y: Tensor, Zc: Tensor, yc: Tensor, lam_sum: Tensor, pen: Tensor,
                theta0: Tensor, wc: float, tol: float, max_iter: int) -> LookAhead:
    """The chunk's refits by R glm's IRLS: the extended training sets as B * K learners of one batched fit."""
    from reciprocal_gym.learners.irls import fit_irls_logistic, glm_working_weights

    B, K, p = Zc.shape
    n = Z.shape[1]
    X = torch.cat([Z.unsqueeze(1).expand(B, K, n, p), Zc.unsqueeze(2)], 2).reshape(B * K, n + 1, p)
    weights = torch.cat([w.unsqueeze(1).expand(B, K, n), torch.full((B, K, 1), wc, dtype=w.dtype,
                                                                        device=w.device)], 2).reshape(B * K, -1)
    labels = torch.cat([y.unsqueeze(1).expand(B, K, n), yc.unsqueeze(2)], 2).reshape(B * K, -1)
    lam = lam_sum.repeat_interleave(K)
    fit = fit_irls_logistic(X, weights, labels, lam, free_intercept=bool(pen[-1] == 0), epsilon=tol,
                            max_iter=max_iter)
    theta = fit.theta
    eta = torch.bmm(X, theta.unsqueeze(-1)).squeeze(-1)
    loss = (weights * (torch.nn.functional.softplus(eta) - labels * eta)).sum(1)
    W = glm_working_weights(eta, weights)
    H = torch.bmm(X.transpose(1, 2), X * W.unsqueeze(-1)) + torch.diag_embed(lam.view(-1, 1) * pen)
    log_det = torch.linalg.slogdet(H)[1]
    return LookAhead(theta=theta.view(B, K, p), log_likelihood=-loss.view(B, K), log_det_hessian=log_det.view(B, K),
                     converged=fit.converged.view(B, K))


def _refit_chunk(Z: Tensor, w: Tensor, y: Tensor, Zc: Tensor, yc: Tensor, lam_sum: Tensor, pen: Tensor,
                 theta0: Tensor, wc: float, tol: float, max_iter: int) -> LookAhead:
    B, K, p = Zc.shape
    ridge = lam_sum.view(B, 1) * pen  # (B, p)
    total = (w.sum(1) + wc).view(B, 1)
    ZZ = (Z.unsqueeze(-1) * Z.unsqueeze(-2)).reshape(B, Z.shape[1], p * p)
    th = theta0.unsqueeze(1).expand(B, K, p).clone()
    eps = torch.finfo(Z.dtype).eps

    def value(theta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z, zc, loss = _objective_parts(Z, w, y, Zc, yc, wc, theta)
        return z, zc, loss + 0.5 * (ridge.unsqueeze(1) * theta * theta).sum(-1)

    z, zc, f = value(th)
    active = torch.ones(B, K, dtype=torch.bool, device=Z.device)
    converged = torch.zeros_like(active)
    for _ in range(max_iter + 1):
        s, sc = torch.sigmoid(z), torch.sigmoid(zc)
        g = torch.einsum("bkn,bnp->bkp", w.unsqueeze(1) * (s - y.unsqueeze(1)), Z)
        g = g + (wc * (sc - yc)).unsqueeze(-1) * Zc + ridge.unsqueeze(1) * th
        converged = g.norm(dim=-1) / total <= tol
        active = active & ~converged
        if not bool(active.any()):
            break
        H = _hessian(ZZ, w, z, Zc, zc, wc, ridge)
        L, info = torch.linalg.cholesky_ex(H)
        if bool((info > 0).any()):  # singular (lam = 0, degenerate data): a little jitter on those
            jitter = (H.diagonal(dim1=-2, dim2=-1).abs().mean(-1, keepdim=True).clamp_min(1.0) * 1e-10)
            L = torch.linalg.cholesky_ex(H + torch.diag_embed(jitter.expand(B, K, p)))[0]
        d = -torch.cholesky_solve(g.unsqueeze(-1), L).squeeze(-1)
        slope = (g * d).sum(-1)
        t = torch.ones(B, K, dtype=Z.dtype, device=Z.device)
        accepted = torch.zeros_like(active)
        new_th, new_z, new_zc, new_f = th, z, zc, f
        for _ in range(40):  # Armijo backtracking, per fit
            trial = th + t.unsqueeze(-1) * d
            tz, tzc, tf = value(trial)
            ok = ~accepted & active & (tf <= f + 1e-4 * t * slope + 10 * eps * f.abs().clamp_min(1.0))
            new_th = torch.where(ok.unsqueeze(-1), trial, new_th)
            new_z = torch.where(ok.unsqueeze(-1), tz, new_z)
            new_zc, new_f = torch.where(ok, tzc, new_zc), torch.where(ok, tf, new_f)
            accepted = accepted | ok
            if bool((accepted | ~active).all()):
                break
            t = t * 0.5
        active = active & accepted  # a fit whose line search found no decrease has stalled at rounding level
        th, z, zc, f = new_th, new_z, new_zc, new_f
    H = _hessian(ZZ, w, z, Zc, zc, wc, ridge)
    log_det = 2.0 * torch.log(torch.linalg.cholesky_ex(H)[0].diagonal(dim1=-2, dim2=-1)).sum(-1)
    _, _, loss = _objective_parts(Z, w, y, Zc, yc, wc, th)
    return LookAhead(theta=th, log_likelihood=-loss, log_det_hessian=log_det, converged=converged)


def laplace_log_evidence(fit: LookAhead, lam_sum: Tensor, pen: Tensor) -> Tensor:
    """(B, N) the Laplace approximation of the log marginal likelihood of each extended training set,
    ``log p(D) ~ loglik(theta^) + log prior(theta^) + P / 2 log(2 pi) - 1/2 log det H(theta^)``, with the Gaussian
    prior ``N(0, I / lam)`` on the penalized coordinates that the ridge is the MAP form of (a flat prior where
    ``lam = 0`` or a coordinate is not penalized, whose constant is left out)."""
    P = fit.theta.shape[-1]
    lam = lam_sum.view(-1, 1)
    square = (pen * fit.theta * fit.theta).sum(-1)
    n_pen = float(pen.sum())
    normalizer = 0.5 * n_pen * torch.log(lam.clamp_min(1e-300) / (2 * math.pi))
    log_prior = torch.where(lam > 0, -0.5 * lam * square + normalizer, torch.zeros_like(square))
    return fit.log_likelihood + log_prior + 0.5 * P * math.log(2 * math.pi) - 0.5 * fit.log_det_hessian


def linear_predictor_variance(Z: Tensor, w: Tensor, theta: Tensor, Zc: Tensor, lam_sum: Tensor, pen: Tensor,
                              glm: bool = False) -> Tensor:
    """(B, N) the variance ``x_c' H^-1 x_c`` of each candidate's linear predictor at the fit ``theta`` (B, p), with H
    the summed objective's Hessian on the training atoms (B, n, p) and weights (B, n): the Laplace posterior's
    variance of ``x_c . theta`` (its square root is the standard error; ``glm``: with R glm's working weights, as
    ``predict(fit, se.fit = TRUE)`` on the link scale)."""
    eta = torch.einsum("bnp,bp->bn", Z, theta)
    if glm:
        from reciprocal_gym.learners.irls import glm_working_weights

        v = glm_working_weights(eta, w)
    else:
        s = torch.sigmoid(eta)
        v = w * s * (1 - s)
    H = torch.einsum("bn,bnp,bnq->bpq", v, Z, Z) + torch.diag_embed(lam_sum.view(-1, 1) * pen)
    L, info = torch.linalg.cholesky_ex(H)
    if bool((info > 0).any()):
        jitter = H.diagonal(dim1=-2, dim2=-1).abs().mean(-1, keepdim=True).clamp_min(1.0) * 1e-10
        L = torch.linalg.cholesky_ex(H + torch.diag_embed(jitter.expand_as(theta)))[0]
    solved = torch.cholesky_solve(Zc.transpose(1, 2), L)  # (B, p, N)
    return (Zc.transpose(1, 2) * solved).sum(1)
