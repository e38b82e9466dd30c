"""Stable-Baselines3 ``VecEnv`` adapter for the suite's batched environments.

SB3's algorithms collect rollouts from a ``VecEnv``. :class:`SB3VecEnv` presents a batched env of the suite (all B
learners stepped in one torch call) as one, with SB3's conventions: numpy in and out (through Gymnasium's own
``ArrayConversion`` wrapper), ``reset()`` returning observations only with per-learner ``reset_infos``, a learner
that ends reset inside ``step_wait`` with its last observation in ``infos[i]["terminal_observation"]`` and
``infos[i]["TimeLimit.truncated"]`` set, seeding through ``seed()``, and ``env_method("action_masks")`` for
sb3-contrib's ``MaskablePPO``::

    from stable_baselines3 import PPO
    venv = SB3VecEnv(gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=64, vectorization_mode="vector_entry_point"))
    PPO("MultiInputPolicy", venv).learn(10_000)

The wrapped env may carry Gymnasium vector wrappers (an observation filter, an action adapter); its autoreset mode
must be ``"disabled"`` or ``"next_step"``: the adapter resets finished learners itself, right away, through the
env's partial reset (``reset(options={"reset_mask": done})``), as SB3 expects. :func:`make_sb3_vec_env` builds
the env with ``autoreset_mode="disabled"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers.vector import ArrayConversion
from stable_baselines3.common.vec_env import VecEnv


def make_sb3_vec_env(env_id: str, num_envs: int, wrappers: Sequence[Any] = (), **kwargs: Any) -> SB3VecEnv:
    """``gym.make_vec(env_id, num_envs, vector_entry_point, autoreset_mode="disabled", **kwargs)``, then each of
    ``wrappers`` (callables env -> env: an action adapter, an observation filter), then :class:`SB3VecEnv`."""
    env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", autoreset_mode="disabled",
                       **kwargs)
    for wrap in wrappers:
        env = wrap(env)
    return SB3VecEnv(env)


class SB3VecEnv(VecEnv):
    """A batched env of the suite as a Stable-Baselines3 ``VecEnv`` (see the module docstring)."""

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        base = env.unwrapped
        if base.metadata.get("autoreset_mode") not in (AutoresetMode.DISABLED, AutoresetMode.NEXT_STEP):
            raise ValueError("SB3VecEnv needs autoreset_mode='disabled' or 'next_step' (it resets finished learners "
                             "itself); build the env with make_sb3_vec_env or gym.make_vec(..., "
                             "autoreset_mode='disabled')")
        self.torch_env = env
        self.env = ArrayConversion(env, env_xp=torch, target_xp=np)
        self.render_mode = None
        self._actions: np.ndarray | None = None
        self.last_info: dict[str, Any] = {}
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)

    # ----- the VecEnv API -------------------------------------------------------------------------------------
    def reset(self) -> Any:
        seeds = [s for s in self._seeds]
        seed = None if all(s is None for s in seeds) else [int(s) for s in seeds]
        obs, info = self.env.reset(seed=seed)
        self._reset_seeds()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[Any, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        obs, reward, terminated, truncated, info = self.env.step(self._actions)
        self.last_info = info  # the env's batched info (numpy), for consumers that want all of it
        dones = np.logical_or(terminated, truncated)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if dones.any():
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = {key: value[i] for key, value in obs.items()} \
                    if isinstance(obs, dict) else obs[i]
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            obs, _ = self.env.reset(options={"reset_mask": dones})  # only the finished learners start again
        return obs, np.asarray(reward, dtype=np.float32), dones, infos

    def close(self) -> None:
        self.env.close()

    def _targets(self, indices: Any) -> list[int]:
        return list(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        value = getattr(self.torch_env.unwrapped, attr_name) if attr_name != "render_mode" else None
        return [value for _ in self._targets(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.torch_env.unwrapped, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        targets = self._targets(indices)
        if method_name == "action_masks":  # one batched call for all learners
            masks = _to_numpy(self._find("action_masks")())
            return [masks[i] for i in targets]
        result = getattr(self.torch_env.unwrapped, method_name)(*method_args, **method_kwargs)
        return [result for _ in targets]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        env, found = self.torch_env, False
        while True:
            found = found or isinstance(env, wrapper_class)
            if not hasattr(env, "env") or env is env.env:
                break
            env = env.env
        return [found for _ in self._targets(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]

    def _find(self, name: str) -> Any:
        """The outermost wrapper (or the env) that defines ``name``: action adapters override action_masks."""
        env = self.torch_env
        while True:
            if name in type(env).__dict__ or not hasattr(env, "env"):
                return getattr(env, name)
            env = env.env

    def action_masks(self) -> np.ndarray:
        """(B, n_actions) bool masks, as sb3-contrib's ``get_action_masks`` returns them."""
        return _to_numpy(self._find("action_masks")())


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)
