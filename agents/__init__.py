"""Reference data-selection agents for the reciprocal_gym environments.

Every agent is batched: ``act(obs)`` takes the observation of a vector env (a dict of tensors with a leading batch
dimension) and returns one action per learner; ``act_single(obs)`` does the same for a single env's numpy
observation. Agents are seeded with ``reset(seed)`` and use their own torch generator.
"""

from agents.base import Agent
from agents.selection import CRITERIA, RULES, SelectionAgent, confidence, entropy, margin, uncertainty

__all__ = ["CRITERIA", "RULES", "Agent", "SelectionAgent", "confidence", "entropy", "margin", "uncertainty"]
