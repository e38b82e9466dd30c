"""Experiments that reproduce what the reciprocal-learning theory predicts (Rodemann et al., NeurIPS 2024).

Each function runs a batch of learners through an environment of the suite with a reference agent and returns the
measured figures; ``examples/theory_reproduction.py`` runs them at full size and writes plots and a summary, the
tests run them small. The setting is the one of the theory: a ridge-logistic learner on synthetic 2-D data
(``blobs``: two Gaussian classes), and the metric ``d_t = |theta_t - theta_{t-1}| + W1(P_t, P_{t-1})`` from
:class:`reciprocal_gym.wrappers.ConvergenceDiagnostics` (exact W1).

Deterministic dynamics make fixed points and contraction checkable exactly, so the self-training and
active-learning checks use the mean-field (``expected``) adaptation: the agent's selection law itself (mass ``k``)
replaces the pseudo-labeled part of the training set each step (``expected_rate=1``: non-greedy re-selection).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents import SelectionAgent
from reciprocal_gym.wrappers import VERDICTS, ConvergenceDiagnostics, lipschitz_probe

BLOBS = dict(n_features=2, n_classes=2, separation=1.5, n_samples=400)


@dataclass
class Trajectories:
    """Per-learner diagnostics of a run: ``d`` (B, T), final verdicts and parameters."""

    d: np.ndarray
    verdicts: list[str]
    theta: np.ndarray
    probe: dict[str, np.ndarray] | None = None
    """With ``probe=True``: the :func:`reciprocal_gym.wrappers.lipschitz_probe` figures at the end (L, erm, kappa,
    ratio per learner)."""

    def step_ratios(self) -> np.ndarray:
        """d_{t+1} / d_t where d_t > 0 (NaN-free: other entries are dropped)."""
        prev, nxt = self.d[:, :-1], self.d[:, 1:]
        keep = prev > 0
        return nxt[keep] / prev[keep]

    def median_ratio(self, first: int | None = None) -> float:
        """Median step ratio over the first ``first`` steps (all steps if None) while d_t > 1e-12."""
        d = self.d if first is None else self.d[:, : first + 1]
        prev, nxt = d[:, :-1], d[:, 1:]
        keep = prev > 1e-12
        return float(np.median(nxt[keep] / prev[keep])) if keep.any() else 0.0

    def settled(self, tol: float = 1e-6) -> np.ndarray:
        """(B,) bool: the last step moved the state by at most ``tol``."""
        return self.d[:, -1] <= tol


def self_training(
    label_mode: str = "soft",
    rule: str = "softmax",
    criterion: str = "confidence",
    k: int = 10,
    lam: float = 0.1,
    tau: float = 0.1,
    steps: int = 60,
    learners: int = 20,
    seed: int = 0,
    adaptation: str = "expected",
    env_id: str = "Reciprocal-SelfTrain-v0",
    same_split: bool = False,
    random_start: int = 0,
    probe: bool = False,
    window: int = 10,
    max_period: int = 4,
    **env_kwargs: Any,
) -> Trajectories:
    """Run ``learners`` self-training (or active-learning, via ``env_id``) learners and record ``d_t``.

    ``same_split=True`` gives every learner the same data (seed ``seed``); ``random_start`` steps with random
    selection laws first then give them different starting states (the fixed-point uniqueness check). ``window``
    and ``max_period`` are the diagnostics' look-back and longest cycle searched."""
    expected = adaptation == "expected"
    kwargs = dict(dataset="blobs", dataset_kwargs=BLOBS, n_labeled=20, n_pool=100, adaptation=adaptation, k=k,
                  lam=lam, max_steps=steps + random_start + 1, **env_kwargs)
    if env_id == "Reciprocal-SelfTrain-v0":
        kwargs["label_mode"] = label_mode
    if adaptation == "expected":
        kwargs["expected_rate"] = 1.0
    envs = ConvergenceDiagnostics(gym.make_vec(env_id, num_envs=learners, vectorization_mode="vector_entry_point",
                                               **kwargs), window=window, max_period=max_period)
    agent = SelectionAgent(criterion=criterion, rule=rule, tau=tau, k=1 if expected else k, law=expected, seed=seed)
    obs, _ = envs.reset(seed=[seed] * learners if same_split else seed)
    rng = torch.Generator().manual_seed(seed + 1)
    for _ in range(random_start):
        law = torch.rand(obs["action_mask"].shape, generator=rng, dtype=torch.float64) ** 4
        obs, *_ = envs.step(law / law.sum(1, keepdim=True))
    ds = []
    for _ in range(steps):
        obs, _, _, _, info = envs.step(agent.act_in(envs, obs))
        ds.append(info["d"].cpu().numpy())
    verdicts = [VERDICTS[v] for v in info["verdict"].tolist()]
    probed = None
    if probe:
        probed = {k: v.cpu().numpy() for k, v in lipschitz_probe(envs, agent, seed=seed).items()}
    return Trajectories(np.stack(ds, 1), verdicts, envs.unwrapped.parameters().cpu().numpy(), probed)


def bandit_fixed_point(means: np.ndarray, window: int, lam: float, tau: float, tol: float = 1e-15) -> np.ndarray:
    """Solve pi = softmax(theta(pi) / tau) directly, with theta_k = W pi_k mu_k / (W pi_k + lam) (the mean-field
    window statistics n = W pi, S = W pi mu), by damped fixed-point iteration."""
    pi = np.full(len(means), 1.0 / len(means))
    for _ in range(1_000_000):
        theta = window * pi * means / (window * pi + lam)
        z = np.exp((theta - theta.max()) / tau)
        new = z / z.sum()
        if np.abs(new - pi).max() < tol:
            return new
        pi = 0.5 * pi + 0.5 * new
    raise RuntimeError("the fixed-point iteration did not converge")


def bandit_boltzmann(means: np.ndarray, window: int = 10, lam: float = 1.0, tau: float = 0.3, steps: int = 1200,
                     learners: int = 4, seed: int = 0, rule: str = "softmax", epsilon: float = 0.1) -> dict[str, Any]:
    """Mean-field bandit with a sliding window: the selection law after ``steps`` steps from random starts."""
    K = len(means)
    envs = gym.make_vec("Reciprocal-Bandit-v0", num_envs=learners, vectorization_mode="vector_entry_point",
                        n_arms=K, means=list(map(float, means)), adaptation="expected", history="window",
                        window=window, lam=lam, max_steps=steps + 2, dtype=torch.float64)
    agent = SelectionAgent(criterion="mean", rule=rule, tau=tau, epsilon=epsilon, law=True, seed=seed)
    obs, _ = envs.reset(seed=seed)
    start = np.random.default_rng(seed).dirichlet(np.ones(K), learners)
    obs, *_ = envs.step(torch.as_tensor(start))
    laws = []
    for _ in range(steps):
        law = agent.act_in(envs, obs)
        laws.append(law.cpu().numpy())
        obs, *_ = envs.step(law)
    laws = np.stack(laws, 1)  # (B, T, K)
    return {"final": laws[:, -1], "changes": np.abs(np.diff(laws, axis=1)).max(-1), "top_arm": laws.argmax(-1)}
