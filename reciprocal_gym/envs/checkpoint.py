"""Checkpoints of a batched env: its explicit state, a header that says where it comes from, and a checksum.

An env's state is a dataclass of tensors with the learner dimension first (nested dataclasses, dicts of tensors
and ``None`` allowed), plus the episode bookkeeping of :class:`~reciprocal_gym.envs.base.BatchedVectorEnv` (seeds,
episode numbers, which learners await a reset). A checkpoint is a plain dict of strings, numbers and tensors::

    {"header": {"format": 1, "env_id": ..., "package_version": ..., "config": {field: canonical text},
                "config_hash": ..., "num_envs": B, "dtype": ..., "device": ..., "autoreset_mode": ...,
                "flags": {...}, "fields": {name: [dtype, shape]}, "checksum": sha256},
     "tensors": {name: tensor}}

written with ``torch.save`` and read with ``torch.load(weights_only=True)``, so reading one runs no code. Loading
checks the header against the env (id, every config field, batch size, dtype, autoreset mode), every field's name,
dtype and shape against the env's own state, the checksum against the tensors' bytes, and the values (finite floats,
indices in range) before anything of the env changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import numpy as np
import torch
from torch import Tensor

FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint that does not fit the env it is loaded into, or that was damaged."""


# ----- the state as named tensors -------------------------------------------------------------------------------
def flatten(state: Any, prefix: str = "") -> dict[str, Tensor | None]:
    """The tensors of a state (dataclass / dict / tensor / None, nested) by dotted name, in declaration order."""
    if isinstance(state, Tensor) or state is None:
        return {prefix: state}
    if dataclasses.is_dataclass(state):
        items = [(f.name, getattr(state, f.name)) for f in dataclasses.fields(state)]
    elif isinstance(state, dict):
        items = list(state.items())
    else:
        raise TypeError(f"state entry {prefix!r} is a {type(state).__name__}; a state holds tensors only")
    out: dict[str, Tensor | None] = {}
    for name, value in items:
        out.update(flatten(value, f"{prefix}.{name}" if prefix else str(name)))
    return out


def rebuild(template: Any, tensors: dict[str, Tensor | None], prefix: str = "") -> Any:
    """A state shaped like ``template`` whose tensors are ``tensors[name]``."""
    if isinstance(template, Tensor) or template is None:
        return tensors[prefix]
    join = (lambda name: f"{prefix}.{name}" if prefix else str(name))  # noqa: E731
    if dataclasses.is_dataclass(template):
        values = {f.name: rebuild(getattr(template, f.name), tensors, join(f.name))
                  for f in dataclasses.fields(template)}
        return type(template)(**values)
    return {name: rebuild(value, tensors, join(name)) for name, value in template.items()}


def clone(state: Any) -> Any:
    """A copy of a state whose tensors share no memory with it."""
    flat = flatten(state)
    return rebuild(state, {k: None if v is None else v.clone() for k, v in flat.items()})


# ----- the header ---------------------------------------------------------------------------------------------
def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def canonical(value: Any) -> str:
    """A short text that is equal for equal setting values (arrays by shape, dtype and a hash of their bytes)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, torch.dtype):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {canonical(v)}" for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))) \
            + "}"
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)):
        try:
            arr = np.asarray(value)
        except ValueError:
            arr = None
        if arr is None or arr.dtype == object:
            return "[" + ", ".join(canonical(v) for v in value) + "]"
        value = arr
    if isinstance(value, np.generic):
        return repr(value.item())
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return "[" + ", ".join(canonical(v) for v in value.tolist()) + "]"
        data = np.ascontiguousarray(value)
        return f"array(shape={data.shape}, dtype={data.dtype}, sha256={_digest(data.tobytes())})"
    return f"{type(value).__name__}({value!r})"


def config_description(config: Any) -> dict[str, str]:
    """Every setting of a config dataclass as canonical text."""
    return {f.name: canonical(getattr(config, f.name)) for f in dataclasses.fields(config)}


def config_hash(description: dict[str, str]) -> str:
    return _digest(json.dumps(description, sort_keys=True).encode())


def checksum(tensors: dict[str, Tensor | None]) -> str:
    """sha256 over every field's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(name.encode())
        if t is None:
            h.update(b"None")
            continue
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def field_spec(tensors: dict[str, Tensor | None]) -> dict[str, Any]:
    return {name: None if t is None else [str(t.dtype).removeprefix("torch."), list(t.shape)]
            for name, t in tensors.items()}


# ----- validation ---------------------------------------------------------------------------------------------
def check_header(header: Any, expected: dict[str, Any]) -> None:
    """Refuse a header that does not match ``expected`` (the env's own header, without fields and checksum)."""
    if not isinstance(header, dict):
        raise CheckpointError("the checkpoint has no header: it was not written by save_state of this package")
    if header.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint format {header.get('format')!r} is not supported; this package reads "
                              f"format {FORMAT}")
    for key in ("env_id", "num_envs", "dtype", "autoreset_mode"):
        if header.get(key) != expected[key]:
            raise CheckpointError(f"checkpoint {key} is {header.get(key)!r} but this env has {expected[key]!r}")
    theirs, mine = header.get("config"), expected["config"]
    if not isinstance(theirs, dict):
        raise CheckpointError("the checkpoint header has no config")
    for name in sorted(set(mine) | set(theirs)):
        if theirs.get(name) != mine.get(name):
            raise CheckpointError(f"checkpoint config field {name!r} is {theirs.get(name, '(absent)')} but this env "
                                  f"has {mine.get(name, '(absent)')}")
    if header.get("config_hash") != expected["config_hash"]:
        raise CheckpointError("the checkpoint's config hash does not match its config: the header was edited")


def check_fields(tensors: Any, template: dict[str, Tensor | None], spec: Any) -> None:
    """Every field present with the env's dtype and shape, and the header's field list telling the same."""
    if not isinstance(tensors, dict):
        raise CheckpointError("the checkpoint has no tensors")
    missing, extra = set(template) - set(tensors), set(tensors) - set(template)
    if missing or extra:
        raise CheckpointError(f"checkpoint fields do not match this env's state: missing {sorted(missing)}, "
                              f"unexpected {sorted(extra)}")
    if spec != field_spec(tensors):
        raise CheckpointError("the checkpoint's field list does not match its tensors: the file was edited")
    for name, want in template.items():
        got = tensors[name]
        if (want is None) != (got is None):
            raise CheckpointError(f"checkpoint field {name!r} is {'absent' if got is None else 'present'} but this "
                                  f"env's is {'absent' if want is None else 'present'}")
        if want is None:
            continue
        if not isinstance(got, Tensor):
            raise CheckpointError(f"checkpoint field {name!r} is a {type(got).__name__}, not a tensor")
        if got.dtype != want.dtype:
            raise CheckpointError(f"checkpoint field {name!r} has dtype {got.dtype} but this env's has {want.dtype}")
        if tuple(got.shape) != tuple(want.shape):
            raise CheckpointError(f"checkpoint field {name!r} has shape {tuple(got.shape)} but this env's has "
                                  f"{tuple(want.shape)}")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise CheckpointError(f"checkpoint field {name!r} holds NaN or infinite values")


def check_range(name: str, values: Tensor, low: int, high: int) -> None:
    """Index field ``name`` within [low, high)."""
    if values.numel() and (int(values.min()) < low or int(values.max()) >= high):
        raise CheckpointError(f"checkpoint field {name!r} has values in [{int(values.min())}, {int(values.max())}] "
                              f"but must lie in [{low}, {high})")
