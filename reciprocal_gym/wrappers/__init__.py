"""Wrappers of the suite's environments."""

from reciprocal_gym.wrappers.diagnostics import (
    DISTANCES,
    VERDICTS,
    ConvergenceDiagnostics,
    SingleConvergenceDiagnostics,
    exact_w1,
    geometric_rate,
    sliced_w1,
)

__all__ = [
    "DISTANCES",
    "VERDICTS",
    "ConvergenceDiagnostics",
    "SingleConvergenceDiagnostics",
    "exact_w1",
    "geometric_rate",
    "sliced_w1",
]
