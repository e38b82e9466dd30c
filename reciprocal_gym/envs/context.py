"""What a data-selection criterion may know about B pool learners: the :class:`SelectionContext`.

A criterion sees the observation, which holds what an RL policy should see (predicted probabilities, log
probabilities, the mask). Criteria from the literature need more: the candidates' features, the dataset's row ids,
the model in the data's own units, the training set, a refit. The context gives all of it, batched (learner
dimension first), in float64, read from the env's state without changing it:

    from reciprocal_gym import selection_context
    context = selection_context(envs)          # any pool env: vector or single, wrapped or not
    scores = my_criterion(obs, context)        # or SelectionAgent(my_criterion).act(obs, context=context)

Conventions. Row ids index the dataset's raw feature table ``context.X`` (for an explicit ``split``, the parts are
stacked in the order labeled, pool, val, test, each in its given row order). The model's parameters ``theta`` act on
standardized features ``(x - mean) / scale`` with an intercept column last (binary: ``P = d + 1``; multinomial: class
major, ``theta.view(B, C, d + 1)``); ``coef`` and ``intercept`` are the same model on the raw features:
``logit = coef . x + intercept``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class SelectionContext:
    """Everything about B pool learners that a selection criterion may use (float64 tensors unless stated)."""

    n_classes: int
    """C, the number of classes."""
    X: Tensor
    """(n_rows, d) the dataset's raw features; every ``*_rows`` field indexes its rows."""
    y: Tensor
    """(n_rows,) int64 the dataset's labels (for evaluation and oracles; a self-training criterion should not read
    the pool's labels)."""
    pool_rows: Tensor
    """(B, N) int64 each learner's pool, as dataset row ids; pool index i is ``pool_rows[:, i]``."""
    pool_X: Tensor
    """(B, N, d) the pool's raw features."""
    pool_Z: Tensor
    """(B, N, d) the pool's standardized features (the model's inputs, without the intercept column)."""
    mean: Tensor
    """(B, d) the standardization means (0 with ``standardize="none"``)."""
    scale: Tensor
    """(B, d) and scales (1 with ``standardize="none"``)."""
    theta: Tensor
    """(B, P) the model on standardized features, intercept last (multinomial: class-major (B, C, d + 1))."""
    coef: Tensor
    """The model on raw features: (B, d) binary, (B, C, d) multinomial."""
    intercept: Tensor
    """(B,) binary, (B, C) multinomial: ``logit = coef . x + intercept`` on raw features."""
    logits: Tensor
    """The pool's logits: (B, N) binary (of class 1), (B, N, C) multinomial."""
    log_probs: Tensor
    """(B, N, C) the pool's log predicted probabilities, from the logits (no saturation near probability 1)."""
    probs: Tensor
    """(B, N, C) the pool's predicted probabilities."""
    selectable: Tensor
    """(B, N) bool the points an action may select (the observation's ``action_mask``)."""
    in_use: Tensor
    """(B, N) bool the pool points in the training set."""
    labeled_rows: Tensor
    """(B, n_labeled) int64 the labeled set, as dataset row ids."""
    labeled_y: Tensor
    """(B, n_labeled) int64 its true labels."""
    train_rows: Tensor
    """(B, n_labeled + N) int64 the training set's atoms as row ids: the labeled rows, then every pool point."""
    train_labels: Tensor
    """(B, n_labeled + N, C) their labels (one-hot for labeled rows, the attached label for pool atoms)."""
    train_mass: Tensor
    """(B, n_labeled + N) their masses: 1 for labeled rows, the weight for pool atoms (0 when not in use)."""
    lam: Tensor
    """(B,) the ridge strength of each learner (on the scale of ``penalty``)."""
    penalty: str
    """``"mean"`` (the ridge acts on the mean loss) or ``"sum"`` (on the summed loss, scikit-learn's C = 1 / lam)."""
    penalize_intercept: bool
    """Whether the ridge acts on the intercept."""
    solver: str = "newton"
    """The env's ERM solver: ``"irls"`` (R glm's IRLS, its start and deviance test) or a Newton solver."""
    tol: float | None = None
    """The env's fit tolerance (None: the solver's default)."""
    max_iter: int | None = None
    """The env's iteration cap (None: the solver's default)."""

    @property
    def num_learners(self) -> int:
        return int(self.theta.shape[0])

    def features(self, rows: Tensor) -> Tensor:
        """Standardized features with the intercept column (last) of dataset rows ``rows`` (B, n), each learner's
        rows in its own standardization: (B, n, d + 1), the model's inputs."""
        if rows.dim() != 2 or rows.shape[0] != self.num_learners:
            raise ValueError(f"rows must have shape ({self.num_learners}, n): one row of dataset row ids per learner "
                             f"(each learner has its own standardization), got {tuple(rows.shape)}")
        z = (self.X[rows] - self.mean.unsqueeze(1)) / self.scale.unsqueeze(1)
        return torch.cat([z, torch.ones(*z.shape[:-1], 1, dtype=z.dtype, device=z.device)], dim=-1)

    def lam_sum(self, extra_mass: float = 0.0) -> Tensor:
        """(B,) the ridge on the summed loss: ``lam`` for ``penalty="sum"``, ``lam`` times the training mass (plus
        ``extra_mass``, e.g. 1 for a look-ahead with one more point) for ``"mean"``."""
        return self.lam if self.penalty == "sum" else self.lam * (self.train_mass.sum(1) + extra_mass)

    def penalty_mask(self) -> Tensor:
        """(d + 1,) 1 for the coordinates the ridge acts on, per class block (0 for a free intercept)."""
        pen = torch.ones(self.mean.shape[1] + 1, dtype=torch.float64, device=self.theta.device)
        if not self.penalize_intercept:
            pen[-1] = 0.0
        return pen


def raw_parameters(theta: Tensor, mean: Tensor, scale: Tensor, n_classes: int) -> tuple[Tensor, Tensor]:
    """``theta`` on standardized features (intercept last) as coefficients and intercepts on raw features."""
    B, d = mean.shape
    if n_classes == 2:
        coef = theta[:, :d] / scale
        return coef, theta[:, d] - (coef * mean).sum(1)
    W = theta.view(B, n_classes, d + 1)
    coef = W[..., :d] / scale.unsqueeze(1)
    return coef, W[..., d] - (coef * mean.unsqueeze(1)).sum(-1)


def selection_context(env: Any) -> SelectionContext:
    """The :class:`SelectionContext` of a pool env (SelfTrain, ActiveLearn, StreamActiveLearn) now: a vector env
    (its B learners) or a single env (B = 1), wrapped or not."""
    base = env
    while getattr(base, "env", None) is not None:  # Gymnasium's wrappers, single or vector
        base = base.env
    base = getattr(base, "vector_env", base)  # a single env is the batched engine with one learner
    method = getattr(base, "selection_context", None)
    if method is None:
        raise TypeError(f"{type(env).__name__} has no selection context: it is defined for the pool envs "
                        "(Reciprocal-SelfTrain-v0, Reciprocal-ActiveLearn-v0, Reciprocal-StreamActiveLearn-v0)")
    return method()
