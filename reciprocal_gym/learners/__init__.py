"""Batched empirical risk minimisers (the parameter-selection half of reciprocal learning)."""

from reciprocal_gym.learners.atoms import RowAtoms
from reciprocal_gym.learners.logistic import (
    SOLVERS,
    FitResult,
    default_tol,
    fit_ridge_logistic,
    folded_parameters,
    n_params,
    predict_proba,
    probs_from_logits,
    standardized_logits,
)

__all__ = [
    "SOLVERS",
    "FitResult",
    "RowAtoms",
    "default_tol",
    "fit_ridge_logistic",
    "folded_parameters",
    "n_params",
    "predict_proba",
    "probs_from_logits",
    "standardized_logits",
]
