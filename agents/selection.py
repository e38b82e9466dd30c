"""Selection rules over selection criteria, for the pool-based environments (self-training, active learning).

A criterion maps a batched observation to scores (B, n_pool), higher = more wanted. A rule turns scores into a
choice, honouring ``obs["action_mask"]``:

=================  ===========================================  ===========  ====================================
rule               choice                                       randomized   Lipschitz in the scores
=================  ===========================================  ===========  ====================================
``greedy``         argmax (top-k)                               no           no (jumps when the argmax switches)
``epsilon``        uniform with prob. epsilon, else argmax      yes          no (same jumps)
``softmax``        sample from softmax(score / tau)             yes          yes, constant 1 / (2 tau)
``random``         uniform over allowed points                  yes          yes (constant law)
=================  ===========================================  ===========  ====================================

Softmax selection is the entropy-regularized rule (it maximises E[score] + tau * entropy), the randomized,
regularized selection under which the reciprocal-learning convergence theorem can hold. In the env's
``expected`` adaptation mode the agent returns the selection law itself (``law=True``).

A criterion can be any function ``obs -> scores`` (a tensor (B, n_pool)); pass it as ``criterion=``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from agents.base import Agent

Criterion = Callable[[dict[str, Tensor]], Tensor]


def _probs(obs: dict[str, Tensor]) -> Tensor:
    n_classes = obs["candidates"].shape[-1] - 3
    return obs["candidates"][..., :n_classes]


def confidence(obs: dict[str, Tensor]) -> Tensor:
    """Highest predicted class probability (self-training picks confident points)."""
    return _probs(obs).max(-1).values


def margin(obs: dict[str, Tensor]) -> Tensor:
    """Top-1 minus top-2 probability (large = confident)."""
    return obs["candidates"][..., -3]


def entropy(obs: dict[str, Tensor]) -> Tensor:
    """Negative predictive entropy (large = confident)."""
    return -obs["candidates"][..., -2]


def uncertainty(obs: dict[str, Tensor]) -> Tensor:
    """Predictive entropy (large = uncertain; uncertainty sampling)."""
    return obs["candidates"][..., -2]


CRITERIA: dict[str, Criterion] = {
    "confidence": confidence,
    "margin": margin,
    "entropy": entropy,
    "uncertainty": uncertainty,
}
RULES = ("greedy", "epsilon", "softmax", "random")


class SelectionAgent(Agent):
    """Select pool points by a rule applied to a criterion.

    Args:
        criterion: a name in :data:`CRITERIA` or a function ``obs -> scores (B, n_pool)``.
        rule: one of :data:`RULES`.
        tau: softmax temperature (> 0), rule ``softmax``.
        epsilon: exploration probability in [0, 1], rule ``epsilon``.
        k: points per step; must match the env's ``k`` (k > 1 gives (B, k) distinct indices).
        law: return the selection law (B, n_pool) instead of indices, for ``adaptation="expected"``.
        seed: seed of the agent's generator.
    """

    def __init__(
        self,
        criterion: str | Criterion = "confidence",
        rule: str = "softmax",
        tau: float = 0.1,
        epsilon: float = 0.1,
        k: int = 1,
        law: bool = False,
        seed: int | None = None,
    ) -> None:
        if isinstance(criterion, str):
            if criterion not in CRITERIA:
                raise ValueError(
                    f"criterion={criterion!r} is not known; choose one of {tuple(CRITERIA)} or pass a function"
                )
            criterion = CRITERIA[criterion]
        if not callable(criterion):
            raise ValueError("criterion must be a name or a function obs -> scores")
        if rule not in RULES:
            raise ValueError(f"rule={rule!r} is not allowed; choose one of {RULES}")
        if not tau > 0:
            raise ValueError(f"tau={tau!r} is not allowed; it must be > 0")
        if not 0 <= epsilon <= 1:
            raise ValueError(f"epsilon={epsilon!r} is not allowed; it must be in [0, 1]")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k={k!r} is not allowed; it must be a positive int")
        self.criterion, self.rule, self.tau, self.epsilon, self.k, self.law = criterion, rule, tau, epsilon, k, law
        super().__init__(seed)

    def selection_law(self, obs: dict[str, Tensor]) -> Tensor:
        """(B, n_pool) probability of selecting each point (for one draw)."""
        mask = obs["action_mask"].bool()
        scores = self.criterion(obs).to(torch.float64)
        if self.rule == "random":
            law = mask.to(torch.float64)
        elif self.rule == "softmax":
            law = torch.softmax(torch.where(mask, scores / self.tau, -torch.inf), dim=-1)
        else:
            best = torch.where(mask, scores, -torch.inf).argmax(-1, keepdim=True)
            law = torch.zeros_like(scores).scatter_(1, best, 1.0)
            if self.rule == "epsilon":
                uniform = mask.to(torch.float64)
                law = (1 - self.epsilon) * law + self.epsilon * uniform / uniform.sum(-1, keepdim=True)
        return law / law.sum(-1, keepdim=True)

    def act(self, obs: dict[str, Tensor]) -> Tensor:
        law = self.selection_law(obs)
        if self.law:
            return law.to(torch.float32)
        device = law.device
        law = law.cpu()
        if self.rule == "greedy":
            mask = obs["action_mask"].bool().cpu()
            scores = torch.where(mask, self.criterion(obs).to(torch.float64).cpu(), -torch.inf)
            chosen = scores.topk(self.k, dim=-1).indices
        elif self.rule == "epsilon":
            explore = torch.rand(law.shape[0], generator=self.generator) < self.epsilon
            mask = obs["action_mask"].bool().cpu()
            scores = torch.where(mask, self.criterion(obs).to(torch.float64).cpu(), -torch.inf)
            greedy = scores.topk(self.k, dim=-1).indices
            uniform = torch.multinomial(mask.to(torch.float64), self.k, replacement=False, generator=self.generator)
            chosen = torch.where(explore.unsqueeze(1), uniform, greedy)
        else:
            chosen = torch.multinomial(law, self.k, replacement=False, generator=self.generator)
        chosen = chosen.to(device)
        return chosen.squeeze(1) if self.k == 1 else chosen
