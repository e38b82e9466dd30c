"""Wrappers of the suite's environments."""

from reciprocal_gym.wrappers.actions import CriterionChoice, LinearScoring, TemperatureControl
from reciprocal_gym.wrappers.diagnostics import (
    DISTANCES,
    VERDICTS,
    ConvergenceDiagnostics,
    SingleConvergenceDiagnostics,
    exact_w1,
    geometric_rate,
    sliced_w1,
)
from reciprocal_gym.wrappers.observations import KeepKeys
from reciprocal_gym.wrappers.torch_vector import FlattenObservation, NormalizeReward, RecordEpisodeStatistics

__all__ = [
    "CriterionChoice",
    "FlattenObservation",
    "NormalizeReward",
    "RecordEpisodeStatistics",
    "KeepKeys",
    "LinearScoring",
    "TemperatureControl",
    "DISTANCES",
    "VERDICTS",
    "ConvergenceDiagnostics",
    "SingleConvergenceDiagnostics",
    "exact_w1",
    "geometric_rate",
    "sliced_w1",
]
