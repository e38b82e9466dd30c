"""Aggregate statistics of normalized scores, after Agarwal et al., "Deep RL at the Edge of the Statistical
Precipice" (NeurIPS 2021), the method of the rliable library (which does not install cleanly here, so the same
method is implemented with numpy): the interquartile mean (IQM) over all (task, seed) scores of an agent, 95 %
stratified bootstrap confidence intervals (seeds resampled with replacement within each task), and the
probability of improvement P(X > Y) averaged over tasks (ties count one half).
"""

from __future__ import annotations

import numpy as np


def iqm(scores: np.ndarray) -> float:
    """Mean of the middle 50 % of the values (the interquartile mean), with fractional end weights."""
    x = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    n = len(x)
    if n == 0:
        raise ValueError("iqm of no scores")
    low, high = 0.25 * n, 0.75 * n
    edges = np.arange(n + 1)
    weights = np.clip(np.minimum(edges[1:], high) - np.maximum(edges[:-1], low), 0.0, None)
    return float((weights * x).sum() / weights.sum())


def stratified_bootstrap_ci(scores: dict[str, np.ndarray], reps: int = 2000, seed: int = 0,
                            level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the IQM over all tasks, resampling seeds within each task (``scores``: task -> runs)."""
    rng = np.random.default_rng(seed)
    tasks = [np.asarray(v, dtype=np.float64) for v in scores.values()]
    stats = np.empty(reps)
    for r in range(reps):
        stats[r] = iqm(np.concatenate([t[rng.integers(0, len(t), len(t))] for t in tasks]))
    alpha = (1.0 - level) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def probability_of_improvement(x: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> float:
    """P(X > Y): for each common task the Mann-Whitney probability that a run of X beats a run of Y, averaged."""
    values = []
    for task in x.keys() & y.keys():
        a, b = np.asarray(x[task])[:, None], np.asarray(y[task])[None, :]
        values.append(float(((a > b) + 0.5 * (a == b)).mean()))
    if not values:
        raise ValueError("the two agents share no task")
    return float(np.mean(values))
