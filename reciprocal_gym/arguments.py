"""Declared arguments: one specification per setting, used to check it and to say what is allowed.

Every setting of the envs, wrappers and agents is declared with a :class:`Spec` (an integer range, a finite real
range, a choice, a flag, optionally ``None``). :func:`check_settings` checks a frozen config dataclass whose fields
were declared with :func:`setting`; :meth:`Spec.check` checks a single argument. An error is a ``ValueError`` that
names the argument, shows the value and says what is allowed. The specs are public (``argument_specs(cls)``), so
tests generate bad values from the declarations instead of from a hand-kept list.

Bounds on real settings keep every value the env computes finite in float32 and float64: a setting beyond them
(e.g. a Gaussian ``prior_std=1e40`` that overflows float32) is refused up front rather than turned into NaN later.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import numpy as np

MAX_SEED = 2**63 - 1
"""Seeds are non-negative ints below 2**63 (numpy's and torch's seed range); a batch seeded ``s`` uses
``s .. s + num_envs - 1``, which must all lie in that range."""


def show(value: Any, limit: int = 60) -> str:
    """A short repr of ``value`` for an error message."""
    text = repr(value)
    if isinstance(value, np.ndarray):
        text = f"array(shape={value.shape}, dtype={value.dtype})"
    elif type(value).__module__.startswith("torch") and hasattr(value, "shape"):
        text = f"tensor(shape={tuple(value.shape)}, dtype={value.dtype}, device={value.device})"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


class Spec:
    """What one argument allows."""

    def allows(self, value: Any) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def check(self, name: str, value: Any) -> None:
        """Raise ``ValueError`` naming ``name``, the value and what is allowed, unless ``value`` is allowed."""
        if not self.allows(value):
            raise ValueError(f"{name}={show(value)} is not allowed; it must be {self.describe()}")


@dataclass(frozen=True)
class Integer(Spec):
    """An int (Python or numpy, not bool) in [low, high]."""

    low: int = 1
    high: int | None = None

    def allows(self, value: Any) -> bool:
        return _is_int(value) and self.low <= value and (self.high is None or value <= self.high)

    def describe(self) -> str:
        return f"an int >= {self.low}" + ("" if self.high is None else f" and <= {self.high}")


@dataclass(frozen=True)
class Real(Spec):
    """A finite real number (int or float, not bool) between ``low`` and ``high``; ``open_low`` / ``open_high``
    exclude the bound itself."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def allows(self, value: Any) -> bool:
        if not _is_real(value) or not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or (value < self.high if self.open_high else value <= self.high)

    def describe(self) -> str:
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.open_low else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'<' if self.open_high else '<='} {self.high:g}")
        return "a finite number" + (f" {' and '.join(bounds)}" if bounds else "")


def _vector(value: Any) -> np.ndarray | None:
    """A non-empty 1-D sequence, array or tensor of real numbers as float64, else None."""
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        if value.dtype.is_complex or str(value.dtype) == "torch.bool" or value.device.type == "meta":
            return None
        value = value.detach().cpu().numpy()
    if not isinstance(value, (list, tuple, np.ndarray)):
        return None
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        return None
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iuf":
        return None
    return arr.astype(np.float64)


@dataclass(frozen=True)
class PerLearner(Real):
    """A :class:`Real` shared by every learner, or one value per learner: a 1-D list, array or tensor whose every
    entry is allowed (its length is checked against ``num_envs`` by the env, :func:`learner_values`)."""

    def allows(self, value: Any) -> bool:
        if _is_real(value):
            return super().allows(value)
        arr = _vector(value)
        return arr is not None and all(super(PerLearner, self).allows(float(v)) for v in arr)

    def check(self, name: str, value: Any) -> None:
        arr = None if _is_real(value) else _vector(value)
        if arr is not None:
            for i, v in enumerate(arr):
                Real.check(self, f"{name}[{i}]", float(v))
        super().check(name, value)

    def describe(self) -> str:
        return super().describe() + ", or a 1-D sequence of such numbers with one per learner"


def learner_values(name: str, value: Any, num_envs: int) -> float | np.ndarray:
    """A :class:`PerLearner` setting for ``num_envs`` learners: a float if shared, else a (num_envs,) float64 array
    (a ``ValueError`` naming ``name`` if the length is not ``num_envs``)."""
    if _is_real(value):
        return float(value)
    arr = _vector(value)
    if arr is None:
        raise ValueError(f"{name}={show(value)} is not allowed; it must be a number or one per learner")
    if len(arr) != num_envs:
        raise ValueError(f"{name} has {len(arr)} entries; a per-learner setting needs one per learner "
                         f"(num_envs={num_envs})")
    return arr


@dataclass(frozen=True)
class Choice(Spec):
    """One of a fixed set of strings."""

    options: tuple[str, ...]

    def allows(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.options

    def describe(self) -> str:
        return f"one of {self.options}"


@dataclass(frozen=True)
class Flag(Spec):
    """True or False."""

    def allows(self, value: Any) -> bool:
        return isinstance(value, (bool, np.bool_))

    def describe(self) -> str:
        return "True or False"


@dataclass(frozen=True)
class Maybe(Spec):
    """None, or what ``inner`` allows."""

    inner: Spec

    def allows(self, value: Any) -> bool:
        return value is None or self.inner.allows(value)

    def describe(self) -> str:
        return f"None or {self.inner.describe()}"


@dataclass(frozen=True)
class Mapping(Spec):
    """None or a dict with string keys (keyword arguments passed on)."""

    def allows(self, value: Any) -> bool:
        return value is None or (isinstance(value, dict) and all(isinstance(k, str) for k in value))

    def describe(self) -> str:
        return "None or a dict of keyword arguments"


def setting(default: Any, spec: Spec | None = None) -> Any:
    """A config dataclass field with its default and its :class:`Spec` (``None``: checked by the config itself)."""
    return field(default=default, metadata={"spec": spec})


def argument_specs(config: Any) -> dict[str, Spec]:
    """The declared :class:`Spec` of every field of a config dataclass (or instance) that has one."""
    return {f.name: f.metadata["spec"] for f in fields(config) if f.metadata.get("spec") is not None}


def defaults(config: Any) -> dict[str, Any]:
    """The default value of every field of a config dataclass."""
    return {f.name: f.default for f in fields(config) if f.default is not MISSING}


def check_settings(config: Any) -> None:
    """Check every declared field of a config instance against its spec (first error raised)."""
    for name, spec in argument_specs(config).items():
        spec.check(name, getattr(config, name))


def check_seed(seed: Any, count: int = 1, name: str = "seed") -> None:
    """A seed for ``count`` consecutive streams: a non-negative int with ``seed + count - 1 <= 2**63 - 1``."""
    Integer(0, MAX_SEED - (count - 1)).check(name, seed)
