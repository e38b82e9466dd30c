"""Wrappers of the suite's environments."""

from reciprocal_gym.wrappers.actions import CriterionChoice, LinearScoring, TemperatureControl
from reciprocal_gym.wrappers.diagnostics import (
    DISTANCES,
    VERDICTS,
    ConvergenceDiagnostics,
    SingleConvergenceDiagnostics,
    exact_w1,
    geometric_rate,
    lipschitz_probe,
    sliced_w1,
)
from reciprocal_gym.wrappers.observations import KeepKeys

__all__ = [
    "CriterionChoice",
    "KeepKeys",
    "LinearScoring",
    "TemperatureControl",
    "DISTANCES",
    "VERDICTS",
    "ConvergenceDiagnostics",
    "SingleConvergenceDiagnostics",
    "exact_w1",
    "geometric_rate",
    "lipschitz_probe",
    "sliced_w1",
]
