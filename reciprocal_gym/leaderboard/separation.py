"""Does a task separate its agents? Each agent's normalized scores over the seeds (as the leaderboard scores the
task: ``final`` or ``auc``), a percentile bootstrap 95 % interval of their mean, and the pairs of agents whose
intervals do not overlap. A learning task where no pair separates cannot rank its agents
(``benchmarks/task_separation.py`` runs this over a suite)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from reciprocal_gym.leaderboard.report import scores
from reciprocal_gym.leaderboard.run import run_unit


def mean_interval(values: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of the mean of ``values``."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (reps, len(values)))].mean(1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def task_separation(task: dict[str, Any], suite: dict[str, Any], seeds: int, seed_offset: int = 0,
                    device: str = "cpu") -> dict[str, Any]:
    """Run every agent of ``task`` on ``seeds`` learners; per agent (mean, low, high) of its normalized score, and
    the separated pairs (agent names whose intervals do not overlap)."""
    names = ["random"] + [a for a in task["agents"] if a != "random"]
    results = [{**row, "task": task["name"], "agent": name} for name in names
               for row in run_unit(task, suite["agents"][name], seeds, seed_offset, device)]
    by_agent = scores(results, {task["name"]: task.get("score", "final")})
    intervals = {a: (float(v[task["name"]].mean()), *mean_interval(v[task["name"]])) for a, v in by_agent.items()}
    pairs = [(a, b) for a, b in itertools.combinations(intervals, 2)
             if intervals[a][1] > intervals[b][2] or intervals[b][1] > intervals[a][2]]
    return {"task": task["name"], "agents": intervals, "separated_pairs": pairs}
