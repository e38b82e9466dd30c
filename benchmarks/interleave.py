"""Alternate timed runs of a batched env and chunks of a per-learner baseline loop, so that both sides sample the
same stretch of time on a machine whose speed drifts (shared VMs drift by tens of percent over minutes)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def interleaved(
    batch: int,
    rounds: int,
    run_env: Callable[[], tuple[float, np.ndarray]],
    run_baseline: Callable[[np.ndarray], tuple[float, np.ndarray]],
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Run the env ``rounds`` times (each a whole run over all ``batch`` learners), each followed by the baseline on
    the next of ``rounds`` chunks of the learners (fewer chunks if ``batch < rounds``).

    ``run_env()`` returns (seconds, per-step values (steps, batch)); ``run_baseline(learners)`` returns (seconds,
    per-step values (steps, len(learners))) for those learners. Every env run must give the same values (the env is
    seeded); raises if not.

    Returns: the env's mean seconds per run, the baseline's seconds for all learners, and both sides' values.
    """
    chunks = np.array_split(np.arange(batch), min(rounds, batch))
    env_seconds, env_values, base_seconds, base_values = [], None, 0.0, None
    for chunk in chunks:
        seconds, values = run_env()
        if env_values is not None and not np.array_equal(values, env_values):
            raise SystemExit("the env gave different values in two runs with the same seed")
        env_seconds.append(seconds)
        env_values = values
        seconds, values = run_baseline(chunk)
        base_seconds += seconds
        if base_values is None:
            base_values = np.zeros((values.shape[0], batch))
        base_values[:, chunk] = values
    return float(np.mean(env_seconds)), base_seconds, env_values, base_values
