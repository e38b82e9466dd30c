"""What an environment tells the leaderboard and the CLI about itself, so that neither names an env.

Each batched env class sets ``scoring = Scoring(...)``: the task kind, the ``info`` keys a task can be scored by,
whether a curve sums them, which direction is better, the per-learner upper reference, and the settings a long
benchmark run needs. The leaderboard reads these through :func:`scoring_of`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator


@dataclass(frozen=True)
class Scoring:
    """How a task on this env is scored."""

    kind: str
    """The family name suites use (``"pool"``, ``"bandit"``, ``"solver"``)."""
    metrics: tuple[str, ...]
    """The ``info`` keys a task may be scored by; the first is the default."""
    labels: dict[str, str]
    """The axis label of each metric's learning curve."""
    accumulate: bool = False
    """True: the curve is the running sum of the metric (a per-step cost); False: the metric itself."""
    higher_is_better: bool = True
    """False for regrets and costs: the table then ranks by the negated curve."""
    reference_metric: str | None = None
    """An ``info`` key whose curve (summed like the metric's) is the reference instead of :attr:`reference`."""
    reference: str = "zero"
    """``"zero"`` (0 is the best possible: regret) or ``"env"`` (the env's ``score_reference(metric)``)."""
    required: dict[str, tuple[Any, str]] = field(default_factory=dict)
    """Settings a scored task must have: name -> (value, why), e.g. the solver's ``report_best``."""
    long_run: dict[str, Any] = field(default_factory=dict)
    """Settings that keep an episode going for a throughput benchmark."""


def scoring_of(env_id: str) -> Scoring:
    """The :class:`Scoring` of a registered env id (read from its vector entry point)."""
    spec = gym.spec(env_id)
    entry = spec.vector_entry_point
    cls = load_env_creator(entry) if isinstance(entry, str) else entry
    scoring = getattr(cls, "scoring", None)
    if not isinstance(scoring, Scoring):
        raise ValueError(f"{env_id} declares no leaderboard scoring (its vector env class has no Scoring)")
    return scoring
