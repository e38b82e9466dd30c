"""Bandit classics as batched agents: UCB1, Thompson sampling (Beta-Bernoulli and Gaussian) and LinUCB.

They read the arm statistics the bandit environments put in the observation (``theta`` = ridge arm means
``S / (n + lam)``, ``counts`` = n, ``step``), so they work on the full and on the windowed history alike (with a
window they see the window's statistics: a sliding-window UCB / Thompson).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from agents.base import Agent
from agents.selection import SelectionAgent
from reciprocal_gym.arguments import Choice, Real


class UCB1Agent(SelectionAgent):
    """UCB1 (Auer et al. 2002): pull the arm with the largest ``theta_k + sqrt(2 log t / n_k)``, untried arms first.

    Theory conditions: deterministic (argmax), not Lipschitz; use ``SelectionAgent("ucb", "softmax")`` for a
    randomized, regularized variant.
    """

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(criterion="ucb", rule="greedy", seed=seed)


class ThompsonAgent(Agent):
    """Thompson sampling: draw a mean per arm from its posterior, pull the argmax.

    Args:
        kind: ``"beta"`` (Bernoulli rewards, Beta(1 + S, 1 + n - S) posterior) or ``"gaussian"`` (Gaussian
            rewards, Normal(theta_k, noise_std^2 / (n_k + lam)) posterior: the ridge posterior with prior
            N(0, noise_std^2 / lam)).
        lam: the env's ridge strength (to recover S = theta * (n + lam) from the observation).
        noise_std: reward noise of the Gaussian model.
        seed: seed of the agent's generators.

    Theory conditions: randomized (a draw per step); its selection law (the probability that an arm's draw is the
    largest) is smooth in the statistics, but it is not regularized with a fixed strength: the law sharpens as the
    counts grow.
    """

    conditions = {"randomized": True, "regularized": False, "lipschitz": "smooth, not uniformly (sharpens with n)"}

    ARGUMENTS = {"kind": Choice(("beta", "gaussian")), "lam": Real(0.0, 1e8),
                 "noise_std": Real(0.0, 1e6, open_low=True)}

    def __init__(self, kind: str = "beta", lam: float = 1.0, noise_std: float = 1.0, seed: int | None = None) -> None:
        values = {"kind": kind, "lam": lam, "noise_std": noise_std}
        for name, spec in self.ARGUMENTS.items():
            spec.check(name, values[name])
        self.kind, self.lam, self.noise_std = kind, float(lam), float(noise_std)
        super().__init__(seed)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.rng = np.random.default_rng(int(self.generator.initial_seed()))

    def sample_means(self, obs: dict[str, Tensor]) -> Tensor:
        """(B, K) one posterior draw of every arm's mean."""
        theta, n = obs["theta"].double(), obs["counts"].double()
        if self.kind == "beta":
            s = (theta * (n + self.lam)).clamp(min=0.0)
            s = torch.minimum(s, n)
            draws = self.rng.beta(1.0 + s.cpu().numpy(), 1.0 + (n - s).cpu().numpy())
            return torch.as_tensor(draws, device=theta.device)
        z = torch.randn(theta.shape, generator=self.generator, dtype=torch.float64).to(theta.device)
        return theta + self.noise_std * z / torch.sqrt(n + max(self.lam, 1e-12))

    def act(self, obs: dict[str, Tensor]) -> Tensor:
        return self.sample_means(obs).argmax(-1)


class LinUCBAgent(Agent):
    """LinUCB (Li et al. 2010) for ``Reciprocal-ContextualBandit-v0``: pull argmax ``theta_a . x + alpha * width_a``.

    The env provides the ridge weights ``theta`` (K, p), the context x and the widths ``sqrt(x^T A_a^{-1} x)``.

    Theory conditions: deterministic (argmax), not Lipschitz.
    """

    conditions = {"randomized": False, "regularized": False, "lipschitz": "no"}

    ARGUMENTS = {"alpha": Real(0.0, 1e6)}

    def __init__(self, alpha: float = 1.0, seed: int | None = None) -> None:
        self.ARGUMENTS["alpha"].check("alpha", alpha)
        self.alpha = float(alpha)
        super().__init__(seed)

    def scores(self, obs: dict[str, Tensor]) -> Tensor:
        estimate = torch.einsum("bkp,bp->bk", obs["theta"], obs["context"])
        return estimate + self.alpha * obs["widths"]

    def act(self, obs: dict[str, Tensor]) -> Tensor:
        return self.scores(obs).argmax(-1)
