"""Observation adapters for the batched envs (they keep torch tensors on the env's device).

Gymnasium's vector ``FilterObservation`` returns numpy arrays and refuses same-step autoreset; :class:`KeepKeys`
is the tensor-preserving equivalent for the suite's Dict observations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gymnasium import spaces
from gymnasium.vector import VectorEnv, VectorObservationWrapper
from gymnasium.vector.utils import batch_space


class KeepKeys(VectorObservationWrapper):
    """Keep only ``keys`` of a Dict observation, e.g. the dataset-independent ones (``candidates``, ``scalars``,
    ``action_mask``) so that one policy can run on envs whose ``theta`` sizes differ."""

    def __init__(self, env: VectorEnv, keys: Sequence[str]) -> None:
        super().__init__(env)
        space = env.single_observation_space
        if not isinstance(space, spaces.Dict):
            raise ValueError("KeepKeys needs a Dict observation space")
        missing = [k for k in keys if k not in space.spaces]
        if missing or not keys:
            raise ValueError(f"keys must be a non-empty subset of {tuple(space.spaces)}; unknown: {missing}")
        self.keys = list(keys)
        self.single_observation_space = spaces.Dict({k: space[k] for k in self.keys})
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)

    def observations(self, observations: dict[str, Any]) -> dict[str, Any]:
        return {k: observations[k] for k in self.keys}
