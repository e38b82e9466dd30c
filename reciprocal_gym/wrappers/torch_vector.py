"""Vector wrappers that keep torch tensors on the env's device: flattened observations, episode statistics and
reward normalization for the batched envs (Gymnasium's own vector wrappers of these work on numpy arrays only).

They follow Gymnasium's conventions: :class:`FlattenObservation` flattens a Dict observation in the order of
``gymnasium.spaces.flatten_space`` (so its ``single_observation_space`` is that space);
:class:`RecordEpisodeStatistics` puts ``info["episode"] = {"r", "l"}`` (return and length, tensors) with the mask
``info["_episode"]`` on the step an episode ends; :class:`NormalizeReward` divides rewards by the running standard
deviation of the discounted return.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv, VectorObservationWrapper, VectorWrapper
from gymnasium.vector.utils import batch_space
from torch import Tensor

from reciprocal_gym.arguments import Real
from reciprocal_gym.envs.base import flatten_batch


class FlattenObservation(VectorObservationWrapper):
    """A Dict observation as one (B, D) tensor: each entry flattened per learner, concatenated in the order of
    ``gymnasium.spaces.flatten_space(single_observation_space)``, in that space's dtype (float32, or float64 where an
    entry is float64, e.g. the pool envs' ``log_probs`` in float64 envs)."""

    def __init__(self, env: VectorEnv) -> None:
        super().__init__(env)
        space = env.single_observation_space
        if not isinstance(space, spaces.Dict):
            raise ValueError(f"FlattenObservation needs a Dict observation space, got {space}")
        self.keys = list(space.spaces)
        self.single_observation_space = spaces.flatten_space(space)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.dtype = torch.float64 if self.single_observation_space.dtype == np.float64 else torch.float32

    def observations(self, observations: dict[str, Tensor]) -> Tensor:
        return flatten_batch(observations, self.keys, self.dtype)


class RecordEpisodeStatistics(VectorWrapper):
    """Per-learner episode return and length as tensors; on the step an episode ends,
    ``info["episode"] = {"r": returns, "l": lengths}`` (valid where ``info["_episode"]``). With next-step autoreset
    the reset step does not count (as in Gymnasium)."""

    def __init__(self, env: VectorEnv) -> None:
        super().__init__(env)
        self._returns: Tensor | None = None
        self._lengths: Tensor | None = None
        self._prev_done: Tensor | None = None

    def reset(self, *, seed: int | list[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        rows = None if options is None else options.get("reset_mask")
        device = self.env.unwrapped.device
        if self._returns is None or rows is None:
            self._returns = torch.zeros(self.num_envs, dtype=torch.float64, device=device)
            self._lengths = torch.zeros(self.num_envs, dtype=torch.int64, device=device)
            self._prev_done = torch.zeros(self.num_envs, dtype=torch.bool, device=device)
        else:
            rows = torch.as_tensor(rows, device=device)
            self._returns = torch.where(rows, 0.0, self._returns)
            self._lengths = torch.where(rows, 0, self._lengths)
            self._prev_done = self._prev_done & ~rows
        return obs, info

    def step(self, actions: Any) -> tuple[Any, Tensor, Tensor, Tensor, dict[str, Any]]:
        if self._returns is None:
            raise RuntimeError("call reset() before step()")
        obs, reward, terminated, truncated, info = self.env.step(actions)
        if self.env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP:
            counted = ~self._prev_done  # learners that were reset by this step took no step of an episode
            returns = torch.where(counted, self._returns + reward.to(torch.float64), 0.0)
            lengths = torch.where(counted, self._lengths + 1, 0)
        else:
            returns = self._returns + reward.to(torch.float64)
            lengths = self._lengths + 1
        done = terminated | truncated
        if bool(done.any()):
            info = {**info, "episode": {"r": returns, "l": lengths}, "_episode": done}
        # with same-step autoreset (or a later reset_mask) the next episode starts from zero
        fresh = done if self.env.metadata["autoreset_mode"] != AutoresetMode.NEXT_STEP else torch.zeros_like(done)
        self._returns = torch.where(fresh, 0.0, returns)
        self._lengths = torch.where(fresh, 0, lengths)
        self._prev_done = done
        return obs, reward, terminated, truncated, info


class NormalizeReward(VectorWrapper):
    """Rewards divided by the running standard deviation of the discounted return ``G = gamma (1 - terminated) G + r``,
    as Gymnasium's ``NormalizeReward`` computes it (a test compares the two), in float64 torch on the env's device."""

    def __init__(self, env: VectorEnv, gamma: float = 0.99, epsilon: float = 1e-8) -> None:
        Real(0.0, 1.0).check("gamma", gamma)
        Real(0.0, 1.0, open_low=True).check("epsilon", epsilon)
        super().__init__(env)
        self.gamma, self.epsilon = float(gamma), float(epsilon)
        device = env.unwrapped.device
        self._return = torch.zeros(self.num_envs, dtype=torch.float64, device=device)
        self._count = 1e-4
        self._mean = torch.zeros((), dtype=torch.float64, device=device)
        self._var = torch.ones((), dtype=torch.float64, device=device)
        self._prev_done = torch.zeros(self.num_envs, dtype=torch.bool, device=device)

    def reset(self, *, seed: int | list[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self._return = torch.zeros_like(self._return)
        self._prev_done = torch.zeros(self.num_envs, dtype=torch.bool, device=self._return.device)
        return self.env.reset(seed=seed, options=options)

    def step(self, actions: Any) -> tuple[Any, Tensor, Tensor, Tensor, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        same_step = self.env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
        # the step that resets a learner (next-step autoreset) is no step of an episode: it leaves the statistics
        active = torch.ones_like(terminated) if same_step else ~self._prev_done
        updated = self._return * self.gamma * (~terminated).to(torch.float64) + reward.to(torch.float64)
        self._return = torch.where(active, updated, self._return)
        if bool(active.any()):
            self._update(self._return[active])
        self._prev_done = terminated | truncated
        if same_step:  # those learners have been reset already: their next return starts now
            self._return = torch.where(self._prev_done, 0.0, self._return)
        scaled = reward.to(torch.float64) / torch.sqrt(self._var + self.epsilon)
        return obs, scaled.to(reward.dtype), terminated, truncated, info

    def _update(self, x: Tensor) -> None:
        """Parallel (Chan et al.) update of the running mean and variance with the batch ``x``."""
        n = x.numel()
        batch_mean, batch_var = x.mean(), x.var(unbiased=False)
        delta = batch_mean - self._mean
        total = self._count + n
        self._mean = self._mean + delta * n / total
        m2 = self._var * self._count + batch_var * n + delta * delta * self._count * n / total
        self._var = m2 / total
        self._count = total
