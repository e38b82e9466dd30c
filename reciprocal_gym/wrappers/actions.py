"""Action adapters: let any RL algorithm act on the suite's envs through a small, fixed action space.

Raw pool indices (``Discrete(n_pool)`` with masks) suit sb3-contrib's ``MaskablePPO``; most algorithms do better with
a compact action that parametrizes a selection rule. Each adapter is a vector wrapper over a batched env of the suite
and turns its action into the env's own action with a seeded :class:`agents.SelectionAgent`:

- :class:`CriterionChoice`: ``Discrete(len(criteria))``: which reference criterion to select by this step.
- :class:`TemperatureControl`: ``Box(log10 tau_min, log10 tau_max, (1,))``: the softmax temperature (log10).
- :class:`LinearScoring`: ``Box(-1, 1, (F,))``: weights of a linear score of the F per-candidate features,
  turned into a softmax selection.

In an env's ``expected`` mode the adapters pass the selection law itself. The observation is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space
from torch import Tensor

from agents import CRITERIA, SelectionAgent
from reciprocal_gym.envs.base import action_tensor

Criterion = Callable[[dict[str, Tensor]], Tensor]


class _SelectionAdapter(VectorWrapper):
    """Common machinery: remember the last observation, map the adapter action to scores, select."""

    def __init__(self, env: VectorEnv, rule: str, tau: float, seed: int) -> None:
        super().__init__(env)
        base = env.unwrapped
        self._expected = getattr(base.config, "adaptation", None) == "expected"
        self._k = int(getattr(base, "k", 1))
        self.selector = SelectionAgent(criterion=lambda obs: obs, rule=rule, tau=tau, k=self._k,
                                       law=self._expected, seed=seed)
        self._obs: dict[str, Tensor] | None = None

    def _set_space(self, single: spaces.Space) -> None:
        self.single_action_space = single
        self.action_space = batch_space(single, self.num_envs)

    def reset(self, *, seed: Any = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self.selector.reset(seed if isinstance(seed, int) else int(np.asarray(seed).ravel()[0]))
        self._obs, info = self.env.reset(seed=seed, options=options)
        return self._obs, info

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        a = action_tensor(actions, self.env.unwrapped.device)
        shape = (self.num_envs, *self.single_action_space.shape)
        if tuple(a.shape) != shape:
            raise ValueError(f"action must have shape {shape} for {self.single_action_space}, got {tuple(a.shape)}")
        if isinstance(self.single_action_space, spaces.Box) and not bool(
            torch.isfinite(a).all()
            & (a >= torch.as_tensor(self.single_action_space.low, device=a.device)).all()
            & (a <= torch.as_tensor(self.single_action_space.high, device=a.device)).all()
        ):
            raise ValueError(f"action must be finite and within [{self.single_action_space.low}, "
                             f"{self.single_action_space.high}]")
        scores, tau = self._scores(a, self._obs)
        mask = self._obs["action_mask"].bool() if "action_mask" in self._obs else torch.ones_like(scores,
                                                                                                  dtype=torch.bool)
        inner = self.selector.act_on_scores(scores, mask, tau)
        self._obs, reward, terminated, truncated, info = self.env.step(inner)
        return self._obs, reward, terminated, truncated, info

    def _scores(self, actions: Tensor, obs: dict[str, Tensor]) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def action_masks(self) -> Tensor:
        """Every adapter action is allowed (the selection honours the env's mask itself)."""
        n = self.single_action_space.n if isinstance(self.single_action_space, spaces.Discrete) else 1
        return torch.ones(self.num_envs, n, dtype=torch.bool, device=self.env.unwrapped.device)


class CriterionChoice(_SelectionAdapter):
    """``Discrete(len(criteria))``: each step, select by the chosen criterion with ``rule`` (softmax, tau).

    Args:
        env: a batched env of the suite.
        criteria: names in :data:`agents.CRITERIA` or functions ``obs -> scores`` (default: the pool criteria).
        rule: the selection rule applied to the chosen criterion (``"softmax"``; any of :data:`agents.RULES`).
        tau: its temperature. seed: the selection's generator seed (re-seeded by ``reset(seed=...)``).
    """

    def __init__(self, env: VectorEnv, criteria: Sequence[str | Criterion] = ("confidence", "margin", "entropy",
                 "uncertainty"), rule: str = "softmax", tau: float = 0.1, seed: int = 0) -> None:
        super().__init__(env, rule, tau, seed)
        if len(criteria) < 2:
            raise ValueError("criteria must list at least two criteria to choose from")
        self.criteria = []
        for c in criteria:
            if isinstance(c, str) and c not in CRITERIA:
                raise ValueError(f"criterion {c!r} is not known; choose from {tuple(CRITERIA)} or pass a function")
            self.criteria.append(CRITERIA[c] if isinstance(c, str) else c)
        self._set_space(spaces.Discrete(len(self.criteria)))

    def _scores(self, actions: Tensor, obs: dict[str, Tensor]) -> tuple[Tensor, None]:
        if actions.is_floating_point() or bool(((actions < 0) | (actions >= len(self.criteria))).any()):
            raise ValueError(f"action must be an integer criterion index in [0, {len(self.criteria)})")
        table = torch.stack([c(obs).to(torch.float64) for c in self.criteria])  # (n_criteria, B, n)
        return table[actions.long(), torch.arange(self.num_envs, device=actions.device)], None


class TemperatureControl(_SelectionAdapter):
    """``Box(log10(tau_min), log10(tau_max), (1,))``: the log10 temperature of softmax selection by ``criterion``."""

    def __init__(self, env: VectorEnv, criterion: str | Criterion = "confidence", tau_min: float = 0.01,
                 tau_max: float = 10.0, seed: int = 0) -> None:
        for name, value in (("tau_min", tau_min), ("tau_max", tau_max)):
            SelectionAgent.ARGUMENTS["tau"].check(name, value)
        if not tau_min < tau_max:
            raise ValueError(f"tau_min={tau_min!r} and tau_max={tau_max!r} must satisfy tau_min < tau_max")
        super().__init__(env, "softmax", 1.0, seed)
        self.criterion = CRITERIA[criterion] if isinstance(criterion, str) else criterion
        low, high = np.log10([tau_min, tau_max]).astype(np.float32)
        self._set_space(spaces.Box(low, high, (1,), np.float32))

    def _scores(self, actions: Tensor, obs: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        return self.criterion(obs).to(torch.float64), torch.pow(10.0, actions.to(torch.float64))


class LinearScoring(_SelectionAdapter):
    """``Box(-1, 1, (F,))``: weights w of the score ``features @ w`` of each candidate, selected by softmax(tau).

    ``features`` is the observation key holding per-candidate features (B, n, F) (``"candidates"`` in the pool
    envs: class probabilities, margin, entropy, in-use flag)."""

    def __init__(self, env: VectorEnv, features: str = "candidates", tau: float = 0.1, seed: int = 0) -> None:
        super().__init__(env, "softmax", tau, seed)
        space = env.single_observation_space
        if not isinstance(space, spaces.Dict) or features not in space.spaces or len(space[features].shape) != 2:
            raise ValueError(f"features={features!r} must name a (n, F) per-candidate entry of the observation")
        self.features = features
        self._set_space(spaces.Box(-1.0, 1.0, (space[features].shape[1],), np.float32))

    def _scores(self, actions: Tensor, obs: dict[str, Tensor]) -> tuple[Tensor, None]:
        return torch.einsum("bnf,bf->bn", obs[self.features].to(torch.float64), actions.to(torch.float64)), None
