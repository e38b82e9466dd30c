"""Curriculum labeling (Cascante-Bonilla et al., "Curriculum Labeling: Revisiting Pseudo-Labeling for
Semi-Supervised Learning", AAAI 2021) as a batched agent.

Each round the model is refitted from scratch on the labeled set plus the pseudo-labeled points, then every
unlabeled point is scored by its confidence and the points in the top ``q_t`` of the pool are pseudo-labeled,
``q_t = min(1, stride * t)`` for round ``t = 1, 2, ...`` (stride 0.2: 20 %, 40 %, ... of the pool, as the paper's
percentile thresholds of 80, 60, ... 0). In the env this is ``Reciprocal-SelfTrain-v0`` with ``adaptation="subset"``
(the pseudo-labeled part becomes each round's set), ``label_mode="hard"`` and ``warm_start=False`` (the restart), which
:data:`CURRICULUM_SETTINGS` holds. Confidence is the observation's ``log_probs`` maximum (float64, from the logits).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from agents.base import Agent
from reciprocal_gym.arguments import Real

CURRICULUM_SETTINGS = {"adaptation": "subset", "label_mode": "hard", "warm_start": False}
"""The env settings under which the agent is curriculum labeling."""


class CurriculumAgent(Agent):
    """Pseudo-label the top ``min(1, stride * t)`` of the pool by confidence at round t (the step + 1).

    Args:
        stride: the share of the pool the curriculum adds per round, in (0, 1] (the paper: 0.2).
        seed: unused (the rule is deterministic; ties go to the lower pool index).
    """

    ARGUMENTS = {"stride": Real(0.0, 1.0, open_low=True)}

    def __init__(self, stride: float = 0.2, seed: int | None = None) -> None:
        self.ARGUMENTS["stride"].check("stride", stride)
        self.stride = float(stride)
        super().__init__(seed)

    @property
    def conditions(self) -> dict[str, object]:
        return {"randomized": False, "regularized": False, "lipschitz": "no (a percentile cut of the scores)"}

    def act(self, obs: dict[str, Tensor]) -> Tensor:
        if "log_probs" not in obs:
            raise ValueError("CurriculumAgent needs a pool env's observation (its 'log_probs'); use it with "
                             "Reciprocal-SelfTrain-v0 and adaptation='subset'")
        confidence = obs["log_probs"].to(torch.float64).max(-1).values  # (B, N)
        B, N = confidence.shape
        rounds = obs["scalars"][:, 0].to(torch.int64) + 1  # the step in the episode, from 0
        share = (self.stride * rounds.to(torch.float64)).clamp_max(1.0)
        count = torch.tensor([math.ceil(float(q) * N - 1e-9) for q in share], device=confidence.device)
        order = torch.sort(confidence, dim=1, descending=True, stable=True).indices
        rank = torch.empty_like(order).scatter_(1, order, torch.arange(N, device=order.device).expand(B, N))
        return (rank < count.unsqueeze(1)).to(torch.int8)
