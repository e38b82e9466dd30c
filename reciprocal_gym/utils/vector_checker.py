"""A checker for batched (torch) vector envs: Gymnasium's ``check_env`` covers single envs only.

``check_vector_env(env)`` runs a short script against a ``gymnasium.vector.VectorEnv`` whose values are torch
tensors and raises :class:`VectorEnvCheckError` naming the first problem it finds:

- spaces: ``observation_space`` / ``action_space`` are the batched ``single_*`` spaces;
- every returned observation entry has the batched shape, the space's dtype and lies on the env's device, with no
  NaN or inf and inside Box bounds; rewards are finite floats (B,), terminated / truncated bool (B,);
- info values have the batch dimension and a bool ``"_" + key`` mask of shape (B,); float values are finite;
- ``metadata["autoreset_mode"]`` is declared and honoured (next-step: a learner that ended restarts on the next
  step with reward 0 and no termination; disabled: stepping it raises until it is reset);
- ``reset(options={"reset_mask": mask})`` resets only the masked learners;
- seeding: the same seed and actions give the same trajectory (bit for bit).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from torch import Tensor


class VectorEnvCheckError(ValueError):
    """A batched env broke the vector-env contract."""


def _fail(message: str) -> None:
    raise VectorEnvCheckError(message)


def _torch_dtype(space: spaces.Space) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=space.dtype)).dtype


def _check_value(name: str, value: Any, space: spaces.Space, B: int, device: torch.device) -> None:
    if isinstance(space, spaces.Dict):
        if not isinstance(value, dict) or set(value) != set(space.spaces):
            _fail(f"{name}: expected a dict with keys {sorted(space.spaces)}, got "
                  f"{sorted(value) if isinstance(value, dict) else type(value).__name__}")
        for key, sub in space.spaces.items():
            _check_value(f"{name}[{key!r}]", value[key], sub, B, device)
        return
    if not isinstance(value, Tensor):
        _fail(f"{name}: expected a torch tensor, got {type(value).__name__}")
    shape = (B, *space.shape)
    if tuple(value.shape) != shape:
        _fail(f"{name}: shape {tuple(value.shape)} does not match the batched space shape {shape}")
    if value.dtype != _torch_dtype(space):
        _fail(f"{name}: dtype {value.dtype} does not match the space dtype {space.dtype}")
    if value.device.type != device.type:
        _fail(f"{name}: on {value.device}, but the env's device is {device}")
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        _fail(f"{name}: contains NaN or inf")
    if isinstance(space, spaces.Box):
        low = torch.as_tensor(space.low, device=value.device, dtype=torch.float64)
        high = torch.as_tensor(space.high, device=value.device, dtype=torch.float64)
        v = value.double()
        if bool(((v < low) | (v > high)).any()):
            _fail(f"{name}: values outside the Box bounds")
    if isinstance(space, spaces.MultiBinary) and bool(((value != 0) & (value != 1)).any()):
        _fail(f"{name}: values other than 0 and 1 in a MultiBinary space")


def _check_info(info: Any, B: int) -> None:
    if not isinstance(info, dict):
        _fail(f"info must be a dict, got {type(info).__name__}")
    for key, value in info.items():
        if key.startswith("_") or key in ("final_obs", "final_info"):
            continue
        if not isinstance(value, Tensor) or value.shape[:1] != (B,):
            _fail(f"info[{key!r}] must be a tensor with the batch dimension {B} first")
        mask = info.get("_" + key)
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != (B,):
            _fail(f"info[{'_' + key!r}] must be a bool tensor of shape ({B},) (Gymnasium's vector info masks)")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            _fail(f"info[{key!r}] contains NaN or inf")


def _actions(env: gym.vector.VectorEnv, obs: dict[str, Tensor], rng: np.random.Generator, device: torch.device):
    """Valid actions: sampled from the space, masked pool indices drawn from the allowed points."""
    space = env.single_action_space
    B = env.num_envs
    if isinstance(obs, dict) and "action_mask" in obs and isinstance(space, spaces.Discrete):
        mask = obs["action_mask"].bool().cpu().numpy()
        return torch.as_tensor([rng.choice(np.flatnonzero(m)) if m.any() else 0 for m in mask], device=device)
    if isinstance(space, spaces.Box):
        sample = rng.random((B, *space.shape)).astype(space.dtype) * (space.high - space.low) + space.low
        return torch.as_tensor(sample, device=device)
    if isinstance(space, spaces.Discrete):
        return torch.as_tensor(rng.integers(space.start, space.start + space.n, B), device=device)
    if isinstance(space, spaces.MultiDiscrete):
        return torch.as_tensor(rng.integers(0, space.nvec, (B, *space.nvec.shape)), device=device)
    if isinstance(space, spaces.MultiBinary):
        return torch.as_tensor(rng.integers(0, 2, (B, *np.atleast_1d(space.n))), dtype=torch.int8, device=device)
    _fail(f"unsupported action space {space}")


def _rollout(env: gym.vector.VectorEnv, seed: int, steps: int, device: torch.device):
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = [(obs, None, None, None)]
    disabled = env.metadata.get("autoreset_mode") == AutoresetMode.DISABLED
    for _ in range(steps):
        actions = _actions(env, obs, rng, device)
        obs, reward, terminated, truncated, info = env.step(actions)
        out.append((obs, reward, terminated, truncated))
        if disabled and bool((terminated | truncated).any()):
            obs, _ = env.reset(options={"reset_mask": terminated | truncated})
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    if a is None:
        return b is None
    return torch.equal(a, b)


def check_vector_env(env: gym.vector.VectorEnv, seed: int = 0, steps: int = 12) -> None:
    """Check a batched torch vector env against the vector-env contract (see the module docstring)."""
    base = env.unwrapped
    B = env.num_envs
    device = torch.device(getattr(base, "device", "cpu"))
    mode = env.metadata.get("autoreset_mode")
    if not isinstance(mode, AutoresetMode):
        _fail("metadata['autoreset_mode'] must declare a gymnasium.vector.AutoresetMode")
    if env.observation_space != batch_space(env.single_observation_space, B):
        _fail("observation_space must be batch_space(single_observation_space, num_envs)")
    if env.action_space != batch_space(env.single_action_space, B):
        _fail("action_space must be batch_space(single_action_space, num_envs)")
    obs, info = env.reset(seed=seed)
    _check_value("reset observation", obs, env.single_observation_space, B, device)
    _check_info(info, B)
    rng = np.random.default_rng(seed)
    ended = torch.zeros(B, dtype=torch.bool, device=device)
    for t in range(steps):
        actions = _actions(env, obs, rng, device)
        try:
            obs, reward, terminated, truncated, info = env.step(actions)
        except gym.error.ResetNeeded:
            if mode == AutoresetMode.DISABLED and bool(ended.any()):
                obs, info = env.reset(options={"reset_mask": ended})
                ended = torch.zeros_like(ended)
                continue
            raise
        for name, value, dtype in (("reward", reward, None), ("terminated", terminated, torch.bool),
                                   ("truncated", truncated, torch.bool)):
            if not isinstance(value, Tensor) or tuple(value.shape) != (B,):
                _fail(f"{name} must be a tensor of shape ({B},)")
            if dtype is not None and value.dtype != dtype:
                _fail(f"{name} must be bool, got {value.dtype}")
        if not reward.is_floating_point() or not bool(torch.isfinite(reward).all()):
            _fail("reward must be finite floats")
        if mode == AutoresetMode.NEXT_STEP and bool(ended.any()):
            if bool((reward[ended] != 0).any()) or bool((terminated | truncated)[ended].any()):
                _fail("next-step autoreset: a learner that ended must restart on the next step with reward 0 and "
                      "terminated = truncated = False")
        _check_value(f"step {t} observation", obs, env.single_observation_space, B, device)
        _check_info(info, B)
        if mode == AutoresetMode.DISABLED and bool(ended.any()):
            try:
                env.step(actions)
            except gym.error.ResetNeeded:
                pass
            else:
                _fail("autoreset_mode DISABLED: stepping a learner that ended must raise until it is reset")
            obs, info = env.reset(options={"reset_mask": ended})
            ended = torch.zeros_like(ended)
            continue
        ended = terminated | truncated
    # partial reset: only learner 0 restarts
    before, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed + 1)
    after, *_ = env.step(_actions(env, before, rng, device))
    mask = torch.zeros(B, dtype=torch.bool, device=device)
    mask[0] = True
    partial, _ = env.reset(options={"reset_mask": mask})
    keys = partial.keys() if isinstance(partial, dict) else [None]
    for key in keys:
        p, a = (x[key] if key is not None else x for x in (partial, after))
        if B > 1 and not torch.equal(p[1:], a[1:]):
            _fail(f"reset(options={{'reset_mask': ...}}) changed learners outside the mask (observation {key!r})")
    step = partial.get("step", partial.get("scalars")) if isinstance(partial, dict) else None
    if step is not None and float(step.reshape(B, -1)[0, 0]) != 0.0:
        _fail("reset(options={'reset_mask': ...}) did not restart the masked learner (its step is not 0)")
    # seeding determinism
    first, second = _rollout(env, seed, 4, device), _rollout(env, seed, 4, device)
    for t, (x, y) in enumerate(zip(first, second, strict=True)):
        if not all(_same(u, v) for u, v in zip(x, y, strict=True)):
            _fail(f"the same seed and actions gave a different trajectory at step {t}")
