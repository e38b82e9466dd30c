"""Shared machinery of the batched environments: seeding, autoreset, partial reset, and the single-env shell.

A batched env subclasses :class:`BatchedVectorEnv` and implements three hooks on learner masks:
``_reset_rows(rows, rngs)``, ``_step_rows(actions, rows)`` and ``_observe()``. The single ``gymnasium.Env`` of
every environment is :class:`SingleEnv` around the batched env with ``num_envs=1`` on the CPU: one implementation.

Seeding. ``reset(seed=s)`` seeds learner i with ``s + i`` (a list gives one seed per learner), as Gymnasium's
vector envs do. Episode e of a learner with seed s draws its randomness from ``numpy.random.default_rng([s, e])``,
so learner i of a batch follows the same trajectory as a single env seeded with ``s + i``, whatever the batch size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from torch import Tensor

from reciprocal_gym.arguments import MAX_SEED, Integer, check_seed, learner_values, show
from reciprocal_gym.envs import checkpoint as ckpt
from reciprocal_gym.utils.threads import env_torch_threads, torch_threads

FLOAT32_MAX = float(np.finfo(np.float32).max)
"""The bound of an observation entry that has no tighter one: every value the envs emit is finite in float32."""

OBSERVATION_LAYOUTS = ("dict", "flat")
ARRAY_KINDS = ("torch", "numpy")


def real_box(shape: tuple[int, ...], low: float = -FLOAT32_MAX, high: float = FLOAT32_MAX) -> gym.spaces.Box:
    """A float32 Box with finite bounds: ``low`` / ``high`` where the values are known to lie, else the finite float32
    range (Gymnasium's checker warns on infinite bounds; no entry is ever inf or NaN)."""
    return gym.spaces.Box(low, high, shape, np.float32)


def flatten_batch(obs: dict[str, Tensor], keys: list[str], dtype: torch.dtype) -> Tensor:
    """A batched Dict observation as one (B, D) tensor: entries ``keys`` flattened per learner and concatenated, in
    ``dtype`` (with ``keys`` in the order of the Dict space, Gymnasium's ``spaces.flatten`` of each learner's)."""
    B = next(iter(obs.values())).shape[0]
    return torch.cat([obs[key].reshape(B, -1).to(dtype) for key in keys], dim=1)


AUTORESET_MODES = {
    "next_step": AutoresetMode.NEXT_STEP,
    "same_step": AutoresetMode.SAME_STEP,
    "disabled": AutoresetMode.DISABLED,
}


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch device, with a clear error for a CUDA device that is not there."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a torch device; use 'cpu' or 'cuda'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asked for, but CUDA is not available on this machine; use 'cpu'")
    return dev


def resolve_dtype(dtype: Any) -> torch.dtype:
    allowed = {"float32": torch.float32, "float64": torch.float64, torch.float32: torch.float32,
               torch.float64: torch.float64}
    if dtype not in allowed:
        raise ValueError(f"dtype={dtype!r} is not allowed; use torch.float32 or torch.float64")
    return allowed[dtype]


class BatchedVectorEnv(VectorEnv):
    """Base of the batched torch environments (a ``gymnasium.vector.VectorEnv``).

    Observations, rewards, terminations and info values are torch tensors on ``self.device`` with the batch
    dimension first. Info follows Gymnasium's vector convention: ``info[key]`` holds one value per learner and
    ``info["_" + key]`` a boolean mask of the learners that have it.

    Autoreset (``metadata["autoreset_mode"]``):
        - ``next_step`` (default): a learner that ended is reset on the next ``step``, whose action it ignores; that
          step returns its first observation with reward 0 and ``terminated = truncated = False``.
        - ``same_step``: a learner that ends is reset within the same ``step``; its last observation is in
          ``info["final_obs"]`` (a batched dict, valid where ``info["_final_obs"]``), its last info in
          ``info["final_info"]``.
        - ``disabled``: the caller resets ended learners with ``reset(options={"reset_mask": mask})``; stepping an
          ended learner raises an error.

    Partial reset: ``reset(seed=None, options={"reset_mask": mask})`` with a (num_envs,) bool mask resets only
    those learners; the others keep their state.

    Arrays (``arrays``): ``"torch"`` (default), tensors on ``device``; ``"numpy"``, the same values as numpy arrays
    (observations, rewards, flags and info; actions may be either), for clients that read numpy from a vector env
    (RLlib's batched path) without a wrapper. The suite's own wrappers and agents read torch.

    Observation layout (``observation_layout``): ``"dict"`` (default), the Dict of named entries every agent of the
    suite reads; ``"flat"``, one 1-D Box per learner (the entries flattened and concatenated in the order of
    ``gymnasium.spaces.flatten_space``), for RL libraries whose default networks or checkers want a flat vector
    (Stable-Baselines3's ``MlpPolicy`` and ``check_env``, RLlib's default encoders). The Dict space stays available
    as ``dict_observation_space``; every Box has finite bounds.

    Sync-free steps (``sync_free=True``, envs whose ``supports_sync_free`` is True; needs
    ``autoreset_mode="disabled"``): a ``step`` reads no tensor value on the host, so the host runs ahead of a GPU
    and a step can be captured in a CUDA graph. Every data-dependent decision of the step is a tensor op: learners
    that ended and were not reset yet are held (not stepped: reward 0, ``terminated = truncated = False``, their
    ``info["_" + key]`` masks False) until ``reset(options={"reset_mask": ...})``; an action index out of range
    counts as an invalid action (the configured penalty, ``info["invalid_action"]``) instead of an error, so
    ``invalid_action="raise"`` is refused; the env's own fits run a fixed number of masked iterations. Resets still
    draw their splits on the host. :func:`reciprocal_gym.utils.host_sync.no_host_sync` checks the claim on any
    device. ``sync_free="graph"`` also keeps every tensor's shape fixed from step to step (the pool envs fit on
    the whole pool, zero weight where not in use, instead of a training-set size bounded on the host), so that one
    captured step can be replayed (``torch.cuda.CUDAGraph``; ``benchmarks/gpu_scale.py`` shows how).
    """

    metadata: dict[str, Any] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    config_class: type | None = None
    """The env's frozen settings dataclass; the keyword arguments build it (``self.config``) and its ``dtype``."""

    supports_sync_free: bool = False
    """Whether the env's step can run without host synchronization (``sync_free=True``)."""

    def __init__(self, num_envs: int = 1, device: str | torch.device = "cpu",
                 autoreset_mode: str | AutoresetMode = "next_step", observation_layout: str = "dict",
                 arrays: str = "torch", sync_free: bool | str = False, **kwargs: Any) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs={num_envs!r} is not allowed; it must be a positive int")
        if isinstance(autoreset_mode, AutoresetMode):
            mode = autoreset_mode
        elif autoreset_mode in AUTORESET_MODES:
            mode = AUTORESET_MODES[autoreset_mode]
        else:
            raise ValueError(
                f"autoreset_mode={autoreset_mode!r} is not allowed; choose one of {tuple(AUTORESET_MODES)} "
                "or a gymnasium.vector.AutoresetMode"
            )
        if observation_layout not in OBSERVATION_LAYOUTS:
            raise ValueError(f"observation_layout={show(observation_layout)} is not allowed; choose one of "
                             f"{OBSERVATION_LAYOUTS}")
        if arrays not in ARRAY_KINDS:
            raise ValueError(f"arrays={show(arrays)} is not allowed; choose one of {ARRAY_KINDS}")
        if not (isinstance(sync_free, (bool, np.bool_)) or (isinstance(sync_free, str) and sync_free == "graph")):
            raise ValueError(f"sync_free={show(sync_free)} is not allowed; choose False, True or 'graph'")
        if sync_free and not self.supports_sync_free:
            raise ValueError(f"sync_free=True is not available for {type(self).__name__}; the pool envs (SelfTrain, "
                             "ActiveLearn, StreamActiveLearn) and the Bandit env support it")
        if sync_free and mode != AutoresetMode.DISABLED:
            raise ValueError("sync_free=True needs autoreset_mode='disabled': an autoreset must read on the host "
                             "which learners ended; reset them with reset(options={'reset_mask': mask})")
        if sync_free and arrays != "torch":
            raise ValueError("sync_free=True needs arrays='torch': numpy outputs are copies to the host")
        self.sync_free = bool(sync_free)
        self.fixed_shapes = sync_free == "graph"
        self.arrays = arrays
        self.num_envs = int(num_envs)
        self.device = resolve_device(device)
        self.render_mode = None
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        self._seeds = np.zeros(self.num_envs, dtype=np.int64)
        self._episodes = np.zeros(self.num_envs, dtype=np.int64)
        self._seeded = False
        self._needs_reset = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        self._all_rows = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        self._has_reset = False
        self._torch_threads = env_torch_threads()  # torch threads of the env's own ops (reciprocal_gym.utils.threads)
        if self.config_class is not None:
            self.config = self.config_class(**kwargs)
            self.dtype = resolve_dtype(self.config.dtype)
        elif kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        with torch_threads(self._torch_threads):
            self._setup()
        self.observation_layout = observation_layout
        self.dict_observation_space = getattr(self, "single_observation_space", None)
        """The observation as a Dict space (what :meth:`_observe` returns), whatever the layout."""
        if observation_layout == "flat":
            self._flat_keys = list(self.dict_observation_space.spaces)
            self.single_observation_space = gym.spaces.flatten_space(self.dict_observation_space)
            self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
            self._flat_dtype = torch.float64 if self.single_observation_space.dtype == np.float64 else torch.float32
        # the reward's dtype for clients that read a reward space (TorchRL's GymWrapper builds its reward spec from it)
        reward_dtype = getattr(self, "dtype", torch.float32)
        self.reward_space = gym.spaces.Box(-np.inf, np.inf, (), np.dtype(str(reward_dtype).removeprefix("torch.")))

    def _public(self, obs: dict[str, Tensor]) -> dict[str, Tensor] | Tensor:
        """The observation in the env's layout: the Dict of tensors, or with ``observation_layout="flat"`` one
        (B, D) tensor, the entries flattened per learner and concatenated in the order of
        ``gymnasium.spaces.flatten_space`` (Gymnasium's ``spaces.flatten`` of the Dict observation)."""
        if self.observation_layout == "dict":
            return obs
        return flatten_batch(obs, self._flat_keys, self._flat_dtype)

    @property
    def autoreset_mode(self) -> AutoresetMode:
        """The autoreset mode (also ``metadata["autoreset_mode"]``), as Gymnasium's own vector envs expose it."""
        return self.metadata["autoreset_mode"]

    def _setup(self) -> None:
        """Build the env's tensors and spaces from ``self.config`` (called at the end of ``__init__``)."""

    def learner_setting(self, name: str) -> float | Tensor:
        """A per-learner setting (:class:`~reciprocal_gym.arguments.PerLearner`) of the config: a float when every
        learner shares it, else a (B,) float64 tensor on ``device`` (float64 like a Python float: the arithmetic that
        combines it with the setting's other numbers is then the same for a shared and a per-learner value; it is
        rounded to ``dtype`` where it meets the env's tensors)."""
        values = learner_values(name, getattr(self.config, name), self.num_envs)
        if isinstance(values, float) or bool((values == values[0]).all()):
            return float(values if isinstance(values, float) else values[0])
        return torch.as_tensor(values, dtype=torch.float64, device=self.device)

    # ----- hooks for subclasses -------------------------------------------------------------------------------
    def _reset_rows(self, rows: Tensor, rngs: dict[int, np.random.Generator]) -> dict[str, Tensor]:
        """Start new episodes for learners ``rows`` (B,) bool; ``rngs`` maps learner index -> its generator.

        Returns the per-learner reset info values (tensors (B,); only the ``rows`` entries are meaningful)."""
        raise NotImplementedError

    def _step_rows(self, actions: Any, rows: Tensor) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """Advance learners ``rows``; others must be left unchanged. Returns reward, terminated, truncated, info."""
        raise NotImplementedError

    def _observe(self) -> dict[str, Tensor]:
        raise NotImplementedError

    # ----- state access for diagnostics -----------------------------------------------------------------------
    def parameters(self) -> Tensor:
        """(B, P) the learners' current model parameters (float tensor on ``device``)."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its parameters")

    def training_measure(self, with_features: bool = True) -> tuple[Tensor | None, Tensor, Tensor]:
        """The learners' training sets as measures on a finite support in X x Y.

        Returns ``(x, y, mass)``: support points with features x (B, n, d) and label vectors y (B, n, C) (one-hot
        or probability vectors), and masses (B, n) summing to 1 per learner. Ground cost of the diagnostics:
        ``|x - x'|_2 + |y - y'|_1``. The features do not change within an episode; ``with_features=False`` skips
        them (x is None)."""
        raise NotImplementedError(f"{type(self).__name__} has no finite training measure")

    def action_masks(self) -> Tensor:
        """(B, n) bool mask of the allowed actions, as sb3-contrib's maskable algorithms expect (n = the number of
        actions, or the sum of ``nvec`` for ``MultiDiscrete``). Every action is allowed here; envs that forbid some
        (the pool envs) override this. Envs with a continuous (``Box``) action space have no masks."""
        space = self.single_action_space
        if isinstance(space, gym.spaces.Discrete):
            n = int(space.n)
        elif isinstance(space, gym.spaces.MultiDiscrete):
            n = int(np.sum(space.nvec))
        else:
            raise AttributeError(f"{type(self).__name__} has a {space} action space: action masks exist only for "
                                 "Discrete and MultiDiscrete actions")
        return torch.ones(self.num_envs, n, dtype=torch.bool, device=self.device)

    def sample_actions(self, rng: np.random.Generator) -> Tensor:
        """One valid action per learner (on ``device``): uniform among the actions the masks allow; for a ``Box``
        action, uniform weights in [0.01, 1). For benchmarks and smoke runs; agents live in :mod:`agents`."""
        space = self.single_action_space
        if isinstance(space, gym.spaces.Box):
            values = rng.uniform(0.01, 1.0, (self.num_envs, *space.shape))
            return torch.as_tensor(values, dtype=torch.float32, device=self.device)
        if isinstance(space, gym.spaces.Discrete):
            return torch.as_tensor(pick_allowed(rng, self.action_masks().cpu().numpy(), 1)[:, 0], device=self.device)
        nvec = np.asarray(space.nvec)
        return torch.as_tensor(rng.integers(0, nvec, (self.num_envs, *nvec.shape)), device=self.device)

    # ----- seeding --------------------------------------------------------------------------------------------
    def _parse_reset_mask(self, options: dict[str, Any] | None) -> Tensor:
        if options is None or options.get("reset_mask") is None:
            return self._all_rows
        given = options["reset_mask"]
        if isinstance(given, Tensor):
            mask = given.to(self.device)
        else:
            raw = np.asarray(given)
            if raw.dtype != np.bool_:
                raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},), "
                                 f"got dtype {raw.dtype} and shape {raw.shape}")
            mask = torch.as_tensor(raw, device=self.device)
        if mask.dtype != torch.bool or mask.shape != (self.num_envs,):
            raise ValueError(
                f"options['reset_mask'] must be a bool array of shape ({self.num_envs},), "
                f"got dtype {mask.dtype} and shape {tuple(mask.shape)}"
            )
        if not self._has_reset and not bool(mask.all()):
            raise ValueError("the first reset must reset every learner: options['reset_mask'] must be all True")
        return mask

    def _assign_seeds(self, seed: int | list[int] | None, rows_np: np.ndarray) -> None:
        idx = np.flatnonzero(rows_np)
        if seed is None:
            if not self._seeded:
                base = int(np.random.SeedSequence().entropy % (2**62))
                self._seeds[:] = base + np.arange(self.num_envs)
                self._episodes[:] = 0
                self._seeded = True
            else:
                self._episodes[idx] += 1
            return
        if isinstance(seed, (list, tuple, np.ndarray)):
            if len(seed) != self.num_envs:
                raise ValueError(f"seed has {len(seed)} entries; a list of seeds needs one per learner "
                                 f"({self.num_envs})")
            entry = Integer(0, MAX_SEED)
            for i, s in enumerate(seed):
                entry.check(f"seed[{i}]", s)
            self._seeds[idx] = np.asarray([int(s) for s in seed], dtype=np.int64)[idx]
        else:
            # learner i gets seed + i: the whole run of seeds must fit below 2**63
            check_seed(seed, self.num_envs)
            self._seeds[idx] = int(seed) + idx
        self._episodes[idx] = 0
        self._seeded = True

    def _rngs(self, rows_np: np.ndarray) -> dict[int, np.random.Generator]:
        return {int(i): np.random.default_rng([int(self._seeds[i]), int(self._episodes[i])])
                for i in np.flatnonzero(rows_np)}

    # ----- Gymnasium API --------------------------------------------------------------------------------------
    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Reset all learners, or those in ``options["reset_mask"]``; returns (observations, info). The env's torch
        ops run on ``RECIPROCAL_GYM_TORCH_THREADS`` threads (default 1, see :mod:`reciprocal_gym.utils.threads`)."""
        with torch_threads(self._torch_threads):
            out = self._reset(seed, options)
        return out if self.arrays == "torch" else _to_numpy(out)

    def _reset(self, seed: int | list[int] | None,
               options: dict[str, Any] | None) -> tuple[dict[str, Tensor], dict[str, Any]]:
        rows = self._parse_reset_mask(options)
        rows_np = rows.cpu().numpy()
        self._assign_seeds(seed, rows_np)
        values = self._reset_rows(rows, self._rngs(rows_np))
        self._needs_reset = self._needs_reset & ~rows
        self._has_reset = True
        return self._public(self._observe()), self._info(values, rows)

    def step(
        self, actions: Any
    ) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor, dict[str, Any]]:
        """Step every learner with its action; see the class docstring for autoreset. The env's torch ops run on
        ``RECIPROCAL_GYM_TORCH_THREADS`` threads (default 1), the caller's count is restored afterwards."""
        with torch_threads(self._torch_threads):
            out = self._step(actions)
        return out if self.arrays == "torch" else _to_numpy(out)

    def _step(self, actions: Any) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor, dict[str, Any]]:
        if not self._has_reset:
            raise gym.error.ResetNeeded("call reset() before step()")
        mode = self.metadata["autoreset_mode"]
        rows = self._all_rows  # the same object when every learner steps: subclasses may test ``is``
        restarting = self._needs_reset
        if self.sync_free:  # learners that ended are held until the caller resets them; no host reads
            rows = ~restarting
            reward, terminated, truncated, values = self._step_rows(actions, rows)
            reward = torch.where(rows, reward, 0.0)
            self._needs_reset = restarting | terminated | truncated
            return self._public(self._observe()), reward, terminated, truncated, self._info(values, rows)
        # numpy's any on a CPU tensor's memory is a few microseconds cheaper than torch's, which matters for small
        # batches stepped in a loop
        any_restarting = bool(restarting.numpy().any() if restarting.is_cpu else restarting.any())
        if mode == AutoresetMode.DISABLED and any_restarting:
            bad = torch.nonzero(restarting).squeeze(1).tolist()
            raise gym.error.ResetNeeded(
                f"learners {bad[:10]} ended; with autoreset_mode='disabled' reset them with "
                "reset(options={'reset_mask': mask}) before stepping"
            )
        if mode == AutoresetMode.NEXT_STEP and any_restarting:
            rows = ~restarting
        reward, terminated, truncated, values = self._step_rows(actions, rows)
        if mode == AutoresetMode.NEXT_STEP and any_restarting:
            restart_np = restarting.cpu().numpy()
            self._assign_seeds(None, restart_np)
            reset_values = self._reset_rows(restarting, self._rngs(restart_np))
            for key, value in reset_values.items():
                values[key] = torch.where(restarting, value, values[key]) if key in values else value
        done = terminated | truncated
        info = self._info(values, self._all_rows)
        if mode == AutoresetMode.SAME_STEP and bool(done.any()):
            info["final_obs"] = self._public(self._observe())
            info["_final_obs"] = done
            info["final_info"] = dict(info)
            info["_final_info"] = done
            done_np = done.cpu().numpy()
            self._assign_seeds(None, done_np)
            reset_values = self._reset_rows(done, self._rngs(done_np))
            for key, value in reset_values.items():
                if key in values:
                    info[key] = torch.where(done, value, values[key])
            self._needs_reset = torch.zeros_like(done)
        else:
            self._needs_reset = done
        return self._public(self._observe()), reward, terminated, truncated, info

    def _info(self, values: dict[str, Tensor], rows: Tensor) -> dict[str, Any]:
        info: dict[str, Any] = {}
        for key, value in values.items():
            info[key] = value
            info["_" + key] = rows
        return info

    def close_extras(self, **kwargs: Any) -> None:
        pass

    # ----- state and checkpoints -----------------------------------------------------------------------------
    env_id: str = ""
    """The registered id, written into checkpoints."""

    state: Any
    """The env's explicit state: a dataclass of tensors with the learner dimension first (see each env's
    ``*State`` class). Everything else an env holds is either fixed by its config or a workspace rebuilt from the
    state (:meth:`_rebuild_workspace`)."""

    def _check_state(self, state: Any) -> None:
        """Refuse a restored state whose values break the env's invariants (indices out of range); the dtypes,
        shapes and finiteness are checked already. Raise :class:`~reciprocal_gym.envs.checkpoint.CheckpointError`."""

    def _rebuild_workspace(self) -> None:
        """Recompute every cache from ``self.state`` (after a state is restored)."""

    def _header(self) -> dict[str, Any]:
        import reciprocal_gym

        description = ckpt.config_description(self.config)
        description["dtype"] = repr(str(self.dtype))  # "float32" and torch.float32 are the same setting
        return {
            "format": ckpt.FORMAT,
            "env_id": self.env_id,
            "package_version": reciprocal_gym.__version__,
            "config": description,
            "config_hash": ckpt.config_hash(description),
            "num_envs": self.num_envs,
            "dtype": str(self.dtype),
            "device": str(self.device),
            "autoreset_mode": next(k for k, v in AUTORESET_MODES.items() if v == self.metadata["autoreset_mode"]),
        }

    def _episode_tensors(self) -> dict[str, Tensor]:
        return {"episodes.seeds": torch.from_numpy(self._seeds.copy()),
                "episodes.number": torch.from_numpy(self._episodes.copy()),
                "episodes.needs_reset": self._needs_reset.clone()}

    def get_state(self) -> dict[str, Any]:
        """A checkpoint of the env in memory (a copy): header, state tensors and checksum; see
        :mod:`reciprocal_gym.envs.checkpoint`. With :meth:`set_state` a run continues exactly as it would have."""
        tensors = {**{f"state.{k}": None if v is None else v.clone() for k, v in ckpt.flatten(self.state).items()},
                   **self._episode_tensors()}
        header = self._header()
        header["flags"] = {"seeded": bool(self._seeded), "has_reset": bool(self._has_reset)}
        header["fields"] = ckpt.field_spec(tensors)
        header["checksum"] = ckpt.checksum(tensors)
        return {"header": header, "tensors": tensors}

    def set_state(self, checkpoint: dict[str, Any]) -> None:
        """Restore a :meth:`get_state` checkpoint taken from an env with the same id, config, batch size, dtype and
        autoreset mode (on any device; the tensors move to this env's). Every field is checked first; a mismatch
        raises :class:`~reciprocal_gym.envs.checkpoint.CheckpointError` naming the field and both values, and leaves
        the env as it was. The env need not have been reset."""
        if not isinstance(checkpoint, dict) or set(checkpoint) != {"header", "tensors"}:
            raise ckpt.CheckpointError("a checkpoint is a dict with 'header' and 'tensors' (from get_state or "
                                       "save_state)")
        header, tensors = checkpoint["header"], checkpoint["tensors"]
        ckpt.check_header(header, self._header())
        template = {**{f"state.{k}": v for k, v in ckpt.flatten(self.state).items()}, **self._episode_tensors()}
        ckpt.check_fields(tensors, template, header.get("fields"))
        if header.get("checksum") != ckpt.checksum(tensors):
            raise ckpt.CheckpointError("the checkpoint's checksum does not match its tensors: the file is damaged")
        flags = header.get("flags")
        if not isinstance(flags, dict) or set(flags) != {"seeded", "has_reset"} or \
                not all(isinstance(v, bool) for v in flags.values()):
            raise ckpt.CheckpointError("the checkpoint header's flags are missing or malformed")
        moved = {k: None if v is None else v.to(template[k].device, copy=True) for k, v in tensors.items()}
        state = ckpt.rebuild(self.state, {k.removeprefix("state."): v for k, v in moved.items()
                                          if k.startswith("state.")})
        ckpt.check_range("episodes.seeds", moved["episodes.seeds"], 0, 2**63)
        ckpt.check_range("episodes.number", moved["episodes.number"], 0, 2**63)
        self._check_state(state)
        self.state = state
        self._seeds = moved["episodes.seeds"].numpy().copy()
        self._episodes = moved["episodes.number"].numpy().copy()
        self._needs_reset = moved["episodes.needs_reset"]
        self._seeded, self._has_reset = flags["seeded"], flags["has_reset"]
        with torch_threads(self._torch_threads):  # the workspace as a step would compute it, bit for bit
            self._rebuild_workspace()

    def save_state(self, path: str | Path) -> None:
        """Write the :meth:`get_state` checkpoint to ``path`` (``torch.save`` of tensors, numbers and text only)."""
        checkpoint = self.get_state()
        checkpoint["tensors"] = {k: None if v is None else v.cpu() for k, v in checkpoint["tensors"].items()}
        torch.save(checkpoint, path)

    def load_state(self, path: str | Path) -> None:
        """Restore a checkpoint written by :meth:`save_state` (read with ``weights_only=True``: no code runs); see
        :meth:`set_state` for what is checked."""
        try:
            checkpoint = torch.load(path, weights_only=True, map_location="cpu")
        except FileNotFoundError:
            raise
        except Exception as exc:  # torch raises several kinds for a damaged or foreign file
            raise ckpt.CheckpointError(f"{path} is not a readable checkpoint ({type(exc).__name__}: "
                                       f"{str(exc).splitlines()[0][:200]})") from exc
        self.set_state(checkpoint)


def _to_numpy(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_to_numpy(v) for v in value)
    return value


def _scalar(value: np.ndarray) -> Any:
    return value.item() if value.size == 1 else value


class SingleEnv(gym.Env):
    """A single ``gymnasium.Env`` that is the batched engine with one learner on the CPU, speaking numpy.

    Subclasses set ``vector_class``; keyword arguments go to it unchanged (``num_envs``, ``device`` and
    ``autoreset_mode`` are fixed to 1, "cpu" and "disabled").
    """

    vector_class: type[BatchedVectorEnv]
    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, **kwargs: Any) -> None:
        for fixed in ("num_envs", "device", "autoreset_mode"):
            if fixed in kwargs:
                raise ValueError(f"{fixed} is not an argument of the single env; use gym.make_vec for batches")
        if "arrays" in kwargs:
            raise ValueError("arrays is not an argument of the single env: it speaks numpy already (arrays is for "
                             "the batched env made by gym.make_vec)")
        self.vector_env = self.vector_class(num_envs=1, device="cpu", autoreset_mode="disabled", **kwargs)
        self.observation_space = self.vector_env.single_observation_space
        self.action_space = self.vector_env.single_action_space
        self.reward_space = self.vector_env.reward_space
        self.render_mode = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if seed is not None:
            check_seed(seed)
        super().reset(seed=seed)
        if options is not None and "reset_mask" in options:
            raise ValueError("options['reset_mask'] is for vector envs; a single env always resets whole")
        obs, info = self.vector_env.reset(seed=seed, options=options)
        return self._obs(obs), self._unbatch_info(info)

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        if not self.vector_env._has_reset:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self.vector_env._needs_reset.cpu().numpy()[0]:
            raise gym.error.ResetNeeded("the episode has ended (terminated or truncated); call reset() before "
                                        "stepping again")
        a = action_tensor(action, self.vector_env.device)
        if tuple(a.shape) != self.action_space.shape:
            raise ValueError(
                f"action must have shape {self.action_space.shape} for {self.action_space}, got shape "
                f"{tuple(a.shape)}"
            )
        obs, reward, terminated, truncated, info = self.vector_env.step(a.unsqueeze(0))
        return (
            self._obs(obs),
            float(reward[0]),
            bool(terminated[0]),
            bool(truncated[0]),
            self._unbatch_info(info),
        )

    @property
    def config(self) -> Any:
        """The validated settings of the underlying batched env."""
        return self.vector_env.config

    @property
    def state(self) -> Any:
        """The explicit state of the underlying batched env (one learner)."""
        return self.vector_env.state

    def get_state(self) -> dict[str, Any]:
        """A checkpoint in memory; see :meth:`BatchedVectorEnv.get_state`."""
        return self.vector_env.get_state()

    def set_state(self, checkpoint: dict[str, Any]) -> None:
        """Restore a :meth:`get_state` checkpoint of a single env with the same id and config."""
        self.vector_env.set_state(checkpoint)

    def save_state(self, path: str | Path) -> None:
        """Write a checkpoint to ``path``; see :meth:`BatchedVectorEnv.save_state`."""
        self.vector_env.save_state(path)

    def load_state(self, path: str | Path) -> None:
        """Restore a checkpoint written by :meth:`save_state`; no prior ``reset()`` needed."""
        self.vector_env.load_state(path)

    def action_masks(self) -> np.ndarray:
        """Bool mask of allowed actions, as sb3-contrib's maskable algorithms expect."""
        return self.vector_env.action_masks()[0].cpu().numpy()

    @staticmethod
    def _obs(obs: dict[str, Tensor] | Tensor) -> dict[str, np.ndarray] | np.ndarray:
        if isinstance(obs, Tensor):  # observation_layout="flat"
            return obs[0].cpu().numpy()
        return {key: value[0].cpu().numpy() for key, value in obs.items()}

    @staticmethod
    def _unbatch_info(info: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in info.items():
            if key.startswith("_"):
                continue
            arr = _to_numpy(value)
            out[key] = _scalar(arr[0]) if isinstance(arr, np.ndarray) else arr
        return out


def pick_allowed(rng: np.random.Generator, mask: np.ndarray, k: int) -> np.ndarray:
    """(B, k) distinct indices per row, uniform among the True entries of ``mask`` (B, n) (each row has >= k)."""
    keys = np.where(mask, rng.random(mask.shape), -1.0)
    return np.argsort(-keys, axis=1, kind="stable")[:, :k]


def register_env(env_id: str, module: str, name: str) -> None:
    """Register ``env_id`` with both entry points, ``module:{name}Env`` and ``module:{name}VectorEnv``
    (idempotent)."""
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=f"{module}:{name}Env", vector_entry_point=f"{module}:{name}VectorEnv")


_WIDE_UNSIGNED = (torch.uint16, torch.uint32, torch.uint64)  # torch's limited unsigned types: taken as int64


def action_tensor(actions: Any, device: torch.device) -> Tensor:
    """Actions as a real-valued tensor on ``device``, whatever numeric form they come in.

    Accepted: a torch tensor on any device (moved to ``device``), a numpy array of any byte order, a list or a
    number. Unsigned ints are taken as int64 when they fit. Anything else (None, text, objects, complex numbers, a
    ragged list, a tensor without data) is a ``ValueError`` that says what was given."""
    if isinstance(actions, Tensor):
        a = actions
        if a.device.type == "meta":
            raise ValueError("action is a tensor on the 'meta' device, which holds no values; give real actions")
    else:
        if actions is None:
            raise ValueError("action=None is not allowed; give one action per learner (an array or a tensor)")
        try:
            arr = np.asarray(actions)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"action must be a numeric array with a regular shape: {exc}") from exc
        kind = arr.dtype.kind
        if kind not in "biuf":
            raise ValueError(f"action={show(actions)} is not allowed; it must be a numeric array (ints for indices, "
                             f"floats for distributions), got dtype {arr.dtype}")
        if not arr.dtype.isnative:  # e.g. big-endian data read from a file: torch takes native byte order only
            arr = arr.astype(arr.dtype.newbyteorder("="))
        if kind == "u" and arr.dtype.itemsize > 1:
            if arr.size and int(arr.max()) > np.iinfo(np.int64).max:
                raise ValueError(f"action values up to {int(arr.max())} are out of range for an index")
            arr = arr.astype(np.int64)
        a = torch.as_tensor(arr)
    if a.is_complex():
        raise ValueError(f"action has complex dtype {a.dtype}; actions are real numbers")
    if a.dtype in _WIDE_UNSIGNED:
        if a.numel() and int(a.max()) > np.iinfo(np.int64).max:
            raise ValueError(f"action values up to {int(a.max())} are out of range for an index")
        a = a.to(torch.int64)
    return a if a.device == device else a.to(device)


def discrete_actions(actions: Any, num_envs: int, n: int, device: torch.device, what: str,
                     check_values: bool = True) -> Tensor:
    """One index in [0, n) per learner as an int64 tensor on ``device``; a clear error otherwise (the values are
    checked unless ``check_values`` is False: a sync-free env, which reads no value on the host, checks them as
    tensor ops)."""
    a = action_tensor(actions, device)
    if tuple(a.shape) != (num_envs,) or a.is_floating_point() or a.dtype == torch.bool:
        raise ValueError(f"action must be an integer array of shape ({num_envs},) ({what} per learner), "
                         f"got dtype {a.dtype} and shape {tuple(a.shape)}")
    if not check_values:
        return a.long()
    if bool(torch.div(a, n, rounding_mode="floor").any()):  # nonzero exactly outside [0, n)
        raise ValueError(f"action must be {what} in [0, {n}); got values in [{int(a.min())}, {int(a.max())}]")
    return a.long()
