"""Reference data-selection agents for the reciprocal_gym environments.

Every agent is batched: ``act(obs)`` takes the observation of a vector env (a dict of tensors with a leading batch
dimension) and returns one action per learner; ``act_single(obs)`` does the same for a single env's numpy
observation. Agents are seeded with ``reset(seed)`` and use their own torch generator.
"""

from agents.bandits import LinUCBAgent, ThompsonAgent, UCB1Agent
from agents.base import Agent
from agents.curriculum import CURRICULUM_SETTINGS, CurriculumAgent
from agents.selection import (
    CRITERIA,
    RULES,
    SelectionAgent,
    confidence,
    entropy,
    margin,
    mean,
    sparsemax,
    ucb,
    uncertainty,
)

__all__ = [
    "CRITERIA",
    "CURRICULUM_SETTINGS",
    "CurriculumAgent",
    "RULES",
    "Agent",
    "LinUCBAgent",
    "SelectionAgent",
    "ThompsonAgent",
    "UCB1Agent",
    "confidence",
    "entropy",
    "margin",
    "mean",
    "sparsemax",
    "ucb",
    "uncertainty",
]
