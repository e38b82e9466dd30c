"""Per-arm sufficient statistics of an (arm, value) history, full or windowed, batched over learners.

The data of a bandit-type learner are the (arm, value) pairs it has observed; its parameters are ridge-regularized
arm means ``theta_k = S_k / (n_k + lam)``, the ERM of the squared loss with a ridge penalty. Used by the bandit and
the solver-parameter environments.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class ArmHistory:
    """Counts and value sums per arm over the history in use; with a window, the last ``window`` pulls."""

    counts: Tensor
    """(B, K) pulls of each arm in the history in use."""
    sums: Tensor
    """(B, K) sum of the observed values of each arm in the history in use."""
    window_arm: Tensor | None
    """(B, W) ring buffer of the arms of the last W pulls (None for a full history)."""
    window_value: Tensor | None
    """(B, W) their values."""

    @staticmethod
    def empty(batch: int, arms: int, window: int | None, dtype: torch.dtype, device: torch.device) -> ArmHistory:
        buffers = (None, None) if window is None else (
            torch.zeros(batch, window, dtype=torch.int64, device=device),
            torch.zeros(batch, window, dtype=dtype, device=device),
        )
        zeros = torch.zeros(batch, arms, dtype=dtype, device=device)
        return ArmHistory(zeros, zeros.clone(), *buffers)

    def cleared(self, rows: Tensor) -> ArmHistory:
        """The history with learners ``rows`` (B,) bool emptied."""
        keep = (~rows).unsqueeze(1).to(self.counts.dtype)
        value = None if self.window_value is None else self.window_value * keep
        return replace(self, counts=self.counts * keep, sums=self.sums * keep, window_value=value)

    def record(self, steps: Tensor, arm: Tensor, value: Tensor, live: Tensor | None = None) -> ArmHistory:
        """Add pull ``steps`` (B,) (0-based) of ``arm`` (B,) with ``value`` (B,); with a window the pull from
        ``window`` steps ago leaves. ``live`` (B,) bool limits the update to some learners (None = all)."""
        if live is None:
            gained = value.unsqueeze(1)
            one = torch.ones_like(gained)
        else:
            one = live.to(value.dtype).unsqueeze(1)
            gained = value.unsqueeze(1) * one
        counts, sums = self.counts, self.sums
        window_arm, window_value = self.window_arm, self.window_value
        if window_arm is not None:
            window = window_arm.shape[1]
            slot = (steps % window).unsqueeze(1)
            leaving = (steps >= window).to(value.dtype).unsqueeze(1) * one
            old_arm = window_arm.gather(1, slot)
            old_value = window_value.gather(1, slot)
            counts = counts.scatter_add(1, old_arm, -leaving)
            sums = sums.scatter_add(1, old_arm, -leaving * old_value)
            new_arm, new_value = arm.unsqueeze(1), value.unsqueeze(1)
            if live is not None:
                new_arm = torch.where(live.unsqueeze(1), new_arm, old_arm)
                new_value = torch.where(live.unsqueeze(1), new_value, old_value)
            window_arm = window_arm.scatter(1, slot, new_arm)
            window_value = window_value.scatter(1, slot, new_value)
        index = arm.unsqueeze(1)
        counts = counts.scatter_add(1, index, one)
        sums = sums.scatter_add(1, index, gained)
        if window_arm is not None:  # an arm that left the window holds no value mass (no rounding residue)
            sums = torch.where(counts > 0, sums, 0.0)
        return ArmHistory(counts, sums, window_arm, window_value)

    def means(self, lam: float | Tensor) -> Tensor:
        """(B, K) ridge arm means ``S / (n + lam)``; 0 for an arm with ``n + lam = 0``. ``lam`` is shared or a (B,)
        tensor with one per learner."""
        if isinstance(lam, Tensor):
            lam = lam.to(self.sums.dtype).view(-1, 1)
        elif lam >= torch.finfo(self.sums.dtype).tiny:  # lam is a positive number in this dtype: no 0 / 0
            return self.sums / (self.counts + lam)
        denominator = self.counts + lam
        return torch.where(denominator > 0, self.sums / torch.where(denominator > 0, denominator, 1.0), 0.0)
