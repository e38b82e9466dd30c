"""Look-ahead selection criteria of the pseudo-label selection literature, batched over learners and candidates.

Each is a criterion ``(obs, context) -> scores (B, N)`` (higher = more wanted) for binary pool envs; ``context`` is
the env's :class:`~reciprocal_gym.SelectionContext` (``reciprocal_gym.selection_context(env)``). A candidate is
pseudo-labeled with the current model's most probable class (hard label, as in the papers), and the training set is
the learner's current one (labeled rows with weight 1, pool atoms with their weights). The refits use the env's own
objective (its ``lam`` on the ``penalty`` scale, ``penalize_intercept``) and solver: B x N refits in one batched
Newton solve, or with ``solver="irls"`` R glm's IRLS (its start, deviance test and 25 iterations, as the seed paper's
R code refits), all B x N in one batched call (:func:`reciprocal_gym.learners.lookahead.refit_each_candidate`).

=========================  ==================================================================================
criterion                  score of candidate c
=========================  ==================================================================================
``ppp``                    the pseudo-posterior predictive: the Laplace approximation of the log marginal
                           likelihood of the training set plus (x_c, y^_c), at the refit (Rodemann et al.,
                           "Approximately Bayes-optimal pseudo-label selection", UAI 2023)
``likelihood``             the max-max likelihood: the log-likelihood of the training set plus (x_c, y^_c)
                           at the refit (BIC ranks the same: every candidate adds one atom, the same P)
``predictive_variance``    minus the standard error of the candidate's linear predictor x_c . theta at the
                           current fit (``sqrt(x_c' H^-1 x_c)``): the least uncertain first
``probability_score``      the predicted probability of the pseudo-label (as a log, from the logit: no ties
                           where probabilities round to 1)
=========================  ==================================================================================
"""

from __future__ import annotations

import torch
from torch import Tensor

from reciprocal_gym.envs.context import SelectionContext
from reciprocal_gym.learners.irls import GLM_EPSILON, GLM_MAXIT
from reciprocal_gym.learners.lookahead import laplace_log_evidence, linear_predictor_variance, refit_each_candidate

LOOKAHEAD_TOL = 1e-12
"""Gradient tolerance (mean scale) of the look-ahead refits."""


def _binary(context: SelectionContext | None, name: str) -> SelectionContext:
    if context is None:
        raise ValueError(f"the criterion {name!r} needs the selection context: call agent.act(obs, "
                         "context=reciprocal_gym.selection_context(env))")
    if context.n_classes != 2:
        raise ValueError(f"the criterion {name!r} is defined for binary labels; the env has {context.n_classes} "
                         "classes")
    return context


def _training_set(context: SelectionContext) -> tuple[Tensor, Tensor, Tensor]:
    """The training atoms' model inputs (B, n, p), weights and class-1 label shares; atoms of weight 0 in every
    learner are left out."""
    keep = (context.train_mass > 0).any(0)
    rows = context.train_rows[:, keep]
    return context.features(rows), context.train_mass[:, keep], context.train_labels[:, keep, 1]


def _refits(context: SelectionContext, name: str):
    context = _binary(context, name)
    Z, w, y = _training_set(context)
    Zc = context.features(context.pool_rows)
    yc = (context.logits > 0).to(torch.float64)
    lam, pen = context.lam_sum(extra_mass=1.0), context.penalty_mask()
    if context.solver == "irls":  # the env's own glm fits: its start, deviance test and iteration cap
        fit = refit_each_candidate(Z, w, y, Zc, yc, lam, pen, context.theta, solver="irls",
                                   tol=GLM_EPSILON if context.tol is None else context.tol,
                                   max_iter=GLM_MAXIT if context.max_iter is None else context.max_iter)
    else:
        fit = refit_each_candidate(Z, w, y, Zc, yc, lam, pen, context.theta, tol=LOOKAHEAD_TOL)
    return fit, lam, pen


def _finite(scores: Tensor, context: SelectionContext, name: str) -> Tensor:
    """The scores, or a clear error where a refit has no finite value (unpenalized Newton fits on separated data)."""
    bad = ~torch.isfinite(scores) & context.selectable
    if bool(bad.any()):
        raise ValueError(f"the criterion {name!r} has no finite value for {int(bad.sum())} candidate(s): their "
                         "refits are unpenalized fits on separated data (the maximum-likelihood estimate does not "
                         "exist); use lam > 0, or solver='irls', whose glm stopping point is finite")
    return scores


def ppp(obs: dict[str, Tensor], context: SelectionContext) -> Tensor:
    """Pseudo-posterior predictive (Laplace approximation of the extended training set's log evidence)."""
    fit, lam, pen = _refits(context, "ppp")
    return _finite(laplace_log_evidence(fit, lam, pen), context, "ppp")


def likelihood(obs: dict[str, Tensor], context: SelectionContext) -> Tensor:
    """Max-max likelihood: the extended training set's log-likelihood at its refit."""
    return _finite(_refits(context, "likelihood")[0].log_likelihood, context, "likelihood")


def predictive_variance(obs: dict[str, Tensor], context: SelectionContext) -> Tensor:
    """Minus the standard error of each candidate's linear predictor at the current fit."""
    context = _binary(context, "predictive_variance")
    Z, w, _ = _training_set(context)
    variance = linear_predictor_variance(Z, w, context.theta, context.features(context.pool_rows),
                                         context.lam_sum(), context.penalty_mask(), glm=context.solver == "irls")
    return _finite(-variance.clamp_min(0.0).sqrt(), context, "predictive_variance")


def probability_score(obs: dict[str, Tensor], context: SelectionContext) -> Tensor:
    """The log predicted probability of the pseudo-label (the most probable class)."""
    return context.log_probs.max(-1).values


LOOKAHEAD_CRITERIA = {
    "ppp": ppp,
    "likelihood": likelihood,
    "predictive_variance": predictive_variance,
    "probability_score": probability_score,
}
