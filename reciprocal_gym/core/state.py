"""The batched reciprocal state: model parameters and the adaptive part of the training set.

The training set of learner b is its fixed labeled set (weight 1 per row, true one-hot labels) plus the pool atoms
with positive ``weight[b]``, each carrying the label distribution ``label[b, j]``. Together with ``theta`` this is
the MDP state (theta_t, P_t) of reciprocal learning.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class ReciprocalState:
    """Batched state of B learners; every tensor has the batch dimension first."""

    theta: Tensor
    """(B, P) model parameters."""
    weight: Tensor
    """(B, n_pool) mass of each pool atom in the training set (0 = not in it)."""
    label: Tensor
    """(B, n_pool, C) label distribution attached to each pool atom (zeros where weight is 0)."""
    in_use: Tensor
    """(B, n_pool) bool, True where the atom is in the training set."""
    age: Tensor
    """(B, n_pool) int64 step at which the atom joined (-1 when not in use); swap removes the oldest."""
    step: Tensor
    """(B,) int64 adaptation steps taken in the current episode."""

    @classmethod
    def empty(
        cls, batch: int, n_pool: int, n_classes: int, n_params: int, dtype: torch.dtype, device: torch.device
    ) -> ReciprocalState:
        return cls(
            theta=torch.zeros(batch, n_params, dtype=dtype, device=device),
            weight=torch.zeros(batch, n_pool, dtype=dtype, device=device),
            label=torch.zeros(batch, n_pool, n_classes, dtype=dtype, device=device),
            in_use=torch.zeros(batch, n_pool, dtype=torch.bool, device=device),
            age=torch.full((batch, n_pool), -1, dtype=torch.int64, device=device),
            step=torch.zeros(batch, dtype=torch.int64, device=device),
        )

    def where(self, rows: Tensor, other: ReciprocalState, shortcut: bool = True) -> ReciprocalState:
        """Rows of ``other`` where ``rows`` (B,) is True, rows of ``self`` elsewhere. ``shortcut``: return one of
        the two whole when ``rows`` is all True or all False (a read on the host; False in a sync-free step)."""
        if shortcut and bool(rows.all()):
            return other
        if shortcut and not bool(rows.any()):
            return self
        merged = {}
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            shape = (-1,) + (1,) * (mine.dim() - 1)
            merged[f.name] = torch.where(rows.view(shape), theirs, mine)
        return ReciprocalState(**merged)

    def replace(self, **changes: Tensor) -> ReciprocalState:
        return replace(self, **changes)
