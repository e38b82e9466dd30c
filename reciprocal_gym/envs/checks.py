"""Argument checks shared by the environment configs: each error names the argument and what is allowed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; choose one of {allowed}")


def check_positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r} is not allowed; it must be an int >= {minimum}")


def check_number(name: str, value: Any, low: float | None = None, strict: bool = False,
                 high: float | None = None) -> None:
    """A finite real number, optionally >= low (> low when ``strict``) and <= high."""
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value)
    ok = ok and (low is None or (value > low if strict else value >= low)) and (high is None or value <= high)
    if not ok:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if strict else '>='} {low}")
        if high is not None:
            bounds.append(f"<= {high}")
        where = f" {' and '.join(bounds)}" if bounds else ""
        raise ValueError(f"{name}={value!r} is not allowed; it must be a finite number{where}")
