"""Sample adaptation P_{t+1} = f(theta_t, P_t): label generation and the update of the empirical measure.

All functions are pure and batched: they take a :class:`ReciprocalState` and return a new one.

Adaptation modes (the update of the training set after the selection):

- ``add`` (greedy): the selected atoms join with weight 1 and never leave.
- ``amend`` (non-greedy re-selection): the pseudo-labeled part is replaced by this step's selection; its size is
  the number selected per step.
- ``subset`` (non-greedy re-selection of any size): the pseudo-labeled part becomes exactly this step's set of
  points, of any size (an empty set leaves the labeled set alone): curriculum labeling and threshold self-training
  select this way.
- ``swap`` (non-greedy): the selected atoms join; once the pseudo-labeled part holds ``capacity`` atoms, as many of
  the oldest leave (first in, first out; ties broken by pool index) and may be selected again later.
- ``evict`` (non-greedy, chosen): like ``swap``, but the caller names the atoms that leave.
- ``expected`` (mean-field, deterministic): the pseudo-labeled part moves toward the selection law pi over the pool,
  ``w' = (1 - rate) w + rate * mass * pi``, and each atom's label becomes the weight-average of its old label and
  the new one, so P_{t+1} = (1 - rate) P_t + rate * (selection law x labels) exactly, as a measure on X x Y.
"""

from __future__ import annotations

import torch
from torch import Tensor

from reciprocal_gym.core.state import ReciprocalState

LABEL_MODES = ("soft", "hard")
ADAPTATIONS = ("add", "amend", "swap", "expected", "subset")


def per_learner(value: float | Tensor, like: Tensor) -> float | Tensor:
    """A shared number as is; a (B,) tensor of per-learner values shaped to broadcast against ``like`` (B, ...)."""
    if not isinstance(value, Tensor):
        return value
    return value.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def sharpen(probs: Tensor, temperature: float | Tensor) -> Tensor:
    """Probabilities raised to ``1 / temperature`` and renormalized: ``softmax(log p / T)``, i.e. the softmax of the
    model's logits divided by T. T = 1 returns ``probs``; T -> 0 tends to the one-hot argmax (hard labels); T > 1
    flattens toward uniform. As a function of the logits z the label softmax(z / T) is Lipschitz with constant
    1 / (2 T) in the l2 norm (softmax's Jacobian diag(q) - q q^T has norm <= 1/2), so the label generation is
    Lipschitz in theta for every T > 0, with a constant that grows like 1 / T as the labels approach hard ones.
    ``temperature`` may be a (B,) tensor, one per learner."""
    if not isinstance(temperature, Tensor) and temperature == 1.0:
        return probs
    tiny = torch.finfo(probs.dtype).tiny
    return torch.softmax(torch.log(probs.clamp_min(tiny)) / per_learner(temperature, probs), dim=-1)


def one_hot(index: Tensor, n_classes: int, dtype: torch.dtype) -> Tensor:
    """(..., n_classes) one-hot rows of class indices in [0, n_classes), made by a comparison: unlike
    ``torch.nn.functional.one_hot``, no range check that reads the indices on the host."""
    return (index.unsqueeze(-1) == torch.arange(n_classes, device=index.device)).to(dtype)


def pseudo_labels(probs: Tensor, label_mode: str, temperature: float | Tensor = 1.0) -> Tensor:
    """Labels the model attaches to atoms: ``soft`` = predicted probabilities, sharpened by ``temperature``
    (:func:`sharpen`; 1 = the probabilities themselves), ``hard`` = one-hot argmax."""
    if label_mode == "soft":
        return sharpen(probs, temperature)
    if label_mode == "hard":
        return one_hot(probs.argmax(-1), probs.shape[-1], probs.dtype)
    raise ValueError(f"label_mode={label_mode!r} is not allowed; choose one of {LABEL_MODES}")


def selectable(state: ReciprocalState, adaptation: str) -> Tensor:
    """(B, n_pool) bool: which atoms may be selected now (atoms in use are excluded by add and swap)."""
    if adaptation in ("add", "swap"):
        return ~state.in_use
    return torch.ones_like(state.in_use)


def _join(state: ReciprocalState, index: Tensor, labels: Tensor) -> ReciprocalState:
    """Atoms ``index`` (B, k) join with weight 1 and ``labels`` (B, k, C), written by scatter (O(B k))."""
    label_index = index.unsqueeze(-1).expand(-1, -1, state.label.shape[-1])
    return state.replace(
        weight=state.weight.scatter(1, index, 1.0),
        label=state.label.scatter(1, label_index, labels),
        in_use=state.in_use.scatter(1, index, True),
        age=state.age.scatter(1, index, state.step.unsqueeze(1).expand_as(index)),
    )


def _leave(state: ReciprocalState, leaving: Tensor) -> ReciprocalState:
    return state.replace(
        weight=torch.where(leaving, torch.zeros_like(state.weight), state.weight),
        label=torch.where(leaving.unsqueeze(-1), torch.zeros_like(state.label), state.label),
        in_use=state.in_use & ~leaving,
        age=torch.where(leaving, torch.full_like(state.age, -1), state.age),
    )


def drop(state: ReciprocalState, leaving: Tensor) -> ReciprocalState:
    """The atoms where ``leaving`` (B, n_pool) is True leave the training set (weight 0, no label, not in use)."""
    return _leave(state, leaving & state.in_use)


def add(state: ReciprocalState, index: Tensor, labels: Tensor) -> ReciprocalState:
    """Greedy add-only: atoms ``index`` (B, k) join with ``labels`` (B, k, C)."""
    return _join(state, index, labels)


def amend(state: ReciprocalState, index: Tensor, labels: Tensor) -> ReciprocalState:
    """Non-greedy re-selection: the pseudo-labeled part becomes exactly the atoms ``index`` (B, k)."""
    return _join(_leave(state, state.in_use), index, labels)


def subset(state: ReciprocalState, chosen: Tensor, labels: Tensor) -> ReciprocalState:
    """The pseudo-labeled part becomes exactly the atoms where ``chosen`` (B, n_pool) is True, weight 1 each, with
    ``labels`` (B, n_pool, C) (those of every pool atom); ages restart as in :func:`amend`."""
    return state.replace(
        weight=chosen.to(state.weight.dtype),
        label=torch.where(chosen.unsqueeze(-1), labels, torch.zeros_like(labels)),
        in_use=chosen.clone(),
        age=torch.where(chosen, state.step.unsqueeze(1).expand_as(state.age), torch.full_like(state.age, -1)),
    )


def swap(state: ReciprocalState, index: Tensor, labels: Tensor, capacity: int) -> ReciprocalState:
    """Atoms ``index`` (B, k) join; the oldest leave so that at most ``capacity`` atoms stay in use."""
    k = index.shape[1]
    n_pool = state.in_use.shape[1]
    count = state.in_use.sum(1)
    n_out = (count + k - capacity).clamp_min(0)
    position = torch.arange(n_pool, device=index.device)
    key = torch.where(state.in_use, state.age * n_pool + position, torch.iinfo(torch.int64).max)
    oldest = torch.topk(key, k, dim=1, largest=False, sorted=True).indices
    leave_rank = torch.arange(k, device=index.device).unsqueeze(0) < n_out.unsqueeze(1)
    leaving = torch.zeros_like(state.in_use).scatter_(1, oldest, leave_rank)
    return _join(_leave(state, leaving), index, labels)


def evict(state: ReciprocalState, index: Tensor, labels: Tensor, leave: Tensor, capacity: int) -> ReciprocalState:
    """Atoms ``index`` (B, k) join; if more than ``capacity`` atoms would then be in use, the first ones of ``leave``
    (B, k; atoms in use, chosen by the caller) leave, as many as needed."""
    k = index.shape[1]
    n_out = (state.in_use.sum(1) + k - capacity).clamp_min(0)
    used = (torch.arange(k, device=index.device).unsqueeze(0) < n_out.unsqueeze(1)).long()
    leaving = torch.zeros_like(state.age).scatter_add(1, leave, used) > 0
    return _join(_leave(state, leaving), index, labels)


def expected(state: ReciprocalState, law: Tensor, labels: Tensor, mass: float, rate: float | Tensor
             ) -> ReciprocalState:
    """Mean-field update toward the selection law ``law`` (B, n_pool), rows summing to 1; ``labels`` (B, n_pool, C)
    are the labels the model would attach to every pool atom; ``rate`` shared or (B,) one per learner."""
    # the coefficients in float64, then rounded to the state's dtype: as for a Python float
    keep, take = per_learner(1.0 - rate, state.weight), per_learner(rate * mass, state.weight)
    old = keep * state.weight
    new = take * law
    weight = old + new
    numerator = old.unsqueeze(-1) * state.label + new.unsqueeze(-1) * labels
    positive = weight > 0
    label = torch.where(
        positive.unsqueeze(-1), numerator / torch.where(positive, weight, 1.0).unsqueeze(-1), 0.0
    )
    age = torch.where(positive & ~state.in_use, state.step.unsqueeze(1), state.age)
    age = torch.where(positive, age, torch.full_like(age, -1))
    return state.replace(weight=weight, label=label, in_use=positive, age=age)
