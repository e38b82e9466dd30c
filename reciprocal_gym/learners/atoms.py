"""Atoms given as rows of a shared feature table, standardized per learner: built only where needed."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class RowAtoms:
    """Learner b's atom i is ``((table[rows[b, i]] - mean[b]) / scale[b], 1)``: a row of a raw feature table shared
    by every learner, standardized with the learner's own statistics, with an intercept column last.

    :func:`~reciprocal_gym.learners.fit_ridge_logistic` accepts it in place of a (B, n, p) atom tensor: the CPU
    solver builds each learner's atoms in a small buffer as it fits it, instead of the whole (B, n, p) tensor in
    memory; the other solvers call :meth:`materialize`.
    """

    table: Tensor
    """(N, d) raw features."""
    rows: Tensor
    """(B, n) int64 row indices into ``table``."""
    mean: Tensor
    """(B, d) per-learner feature means."""
    scale: Tensor
    """(B, d) per-learner feature scales (non-zero)."""

    @property
    def shape(self) -> torch.Size:
        return torch.Size((*self.rows.shape, self.table.shape[1] + 1))

    @property
    def dtype(self) -> torch.dtype:
        return self.table.dtype

    @property
    def device(self) -> torch.device:
        return self.table.device

    def dim(self) -> int:
        return 3

    def materialize(self, out: Tensor | None = None) -> Tensor:
        """The (B, n, d + 1) atom tensor (written into ``out`` if given)."""
        if out is None:
            out = torch.empty(self.shape, dtype=self.dtype, device=self.device)
        torch.sub(self.table[self.rows], self.mean.unsqueeze(1), out=out[..., :-1])
        out[..., :-1].div_(self.scale.unsqueeze(1))
        out[..., -1].fill_(1.0)
        return out
