"""A saved Stable-Baselines3 model as a batched agent (for the leaderboard and your own loops)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from agents.base import Agent


class SB3Agent(Agent):
    """Act with a saved SB3 / sb3-contrib model on raw env actions.

    Args:
        path: the ``.zip`` file written by ``model.save``.
        algo: ``"PPO"``, ``"A2C"``, ``"DQN"`` (stable_baselines3) or ``"MaskablePPO"`` (sb3_contrib).
        keys: the observation entries the model was trained on (e.g. after ``KeepKeys``); all if None.
        deterministic: act with the policy's mode.
    """

    conditions = {"randomized": False, "regularized": False, "lipschitz": "unknown (a learned policy)"}

    def __init__(self, path: str, algo: str = "PPO", keys: Sequence[str] | None = None, deterministic: bool = True,
                 seed: int | None = None) -> None:
        import sb3_contrib
        import stable_baselines3

        module = sb3_contrib if algo == "MaskablePPO" else stable_baselines3
        if not hasattr(module, algo):
            raise ValueError(f"algo={algo!r} is not an SB3 / sb3-contrib algorithm")
        self.model = getattr(module, algo).load(path, device="cpu")
        self.masked = algo == "MaskablePPO"
        self.keys, self.deterministic = keys, deterministic
        super().__init__(seed)

    def act(self, obs: dict[str, Tensor]) -> Tensor:
        device = next(iter(obs.values())).device
        chosen = {k: v.cpu().numpy() for k, v in obs.items() if self.keys is None or k in self.keys}
        extra = {"action_masks": obs["action_mask"].cpu().numpy().astype(bool)} if self.masked else {}
        action, _ = self.model.predict(chosen, deterministic=self.deterministic, **extra)
        return torch.as_tensor(np.asarray(action), device=device)
