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

import itertools
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents import SelectionAgent
from reciprocal_gym.certificates import Certificate, certificate
from reciprocal_gym.contraction import ContractionEstimate, contraction_estimate, observed_rate
from reciprocal_gym.wrappers import VERDICTS, ConvergenceDiagnostics

BLOBS = dict(n_features=2, n_classes=2, separation=1.5, n_samples=400)
SOLVER_TOL = 1e-13
"""The refit's gradient tolerance in these experiments: 1e5 below the verdict's 1e-8."""


@dataclass
class Trajectories:
    """Per-learner diagnostics of a run: ``d`` (B, T), final verdicts and parameters, and (with ``estimate=True``)
    the certificate and the contraction estimate made at the start, before the loop ran."""

    d: np.ndarray
    verdicts: list[str]
    theta: np.ndarray
    estimate: ContractionEstimate | None = None
    certificate: Certificate | None = None
    theta_step: np.ndarray | None = None
    """(B, T) |theta_t - theta_(t-1)|."""
    w1: np.ndarray | None = None
    """(B, T) W1(P_t, P_(t-1))."""
    accuracy: np.ndarray | None = None
    """(B,) test accuracy at the end."""
    all_labels: np.ndarray | None = None
    """(B,) test accuracy of the model fitted with every pool label (the reference of "approximately optimal")."""
    periods: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """(B,) the cycle period the diagnostics named at the end (0: none)."""
    time_average: np.ndarray | None = None
    """(B, P) theta averaged over the run."""

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

    def settled(self) -> np.ndarray:
        """(B,) bool: the diagnostics' verdict at the end is ``converged``."""
        return np.array([v == "converged" for v in self.verdicts])

    def observed_rates(self) -> np.ndarray:
        """(B,) the geometric rate of each learner's d_t (:func:`reciprocal_gym.contraction.observed_rate`; NaN
        where too few steps are above the noise floor)."""
        return np.array([np.nan if (r := observed_rate(row)) is None else r for row in self.d])


def _learner_values(value: Any) -> Any:
    return value if np.ndim(value) == 0 else list(map(float, np.asarray(value)))


def self_training(
    label_mode: str = "soft",
    rule: str = "softmax",
    criterion: str = "confidence",
    k: int = 10,
    lam: float | np.ndarray = 0.1,
    tau: float | np.ndarray = 0.1,
    steps: int = 60,
    learners: int = 20,
    seed: int = 0,
    adaptation: str = "expected",
    env_id: str = "Reciprocal-SelfTrain-v0",
    same_split: bool = False,
    random_start: int = 0,
    estimate: bool = False,
    window: int = 10,
    max_period: int = 4,
    expected_rate: float | np.ndarray = 1.0,
    stationary_window: int = 50,
    **env_kwargs: Any,
) -> Trajectories:
    """Run ``learners`` self-training (or active-learning, via ``env_id``) learners and record ``d_t``.

    ``lam``, ``tau`` and ``expected_rate`` take a number or one value per learner (a sweep as one batch).
    ``same_split=True`` gives every learner the same data (seed ``seed``); ``random_start`` steps with random
    selection laws first then give them different starting states (the fixed-point uniqueness check). ``estimate``:
    compute the certificate and the contraction estimate at the start (the labeled-only fit), before the loop runs
    (mean-field mode). ``window``, ``max_period`` and ``stationary_window`` are the diagnostics' look-backs."""
    expected = adaptation == "expected"
    kwargs = dict(dataset="blobs", dataset_kwargs=BLOBS, n_labeled=20, n_pool=100, adaptation=adaptation, k=k,
                  lam=_learner_values(lam), max_steps=steps + random_start + 1, tol=SOLVER_TOL)
    kwargs.update(env_kwargs)
    if env_id == "Reciprocal-SelfTrain-v0":
        kwargs["label_mode"] = label_mode
    if expected:
        kwargs["expected_rate"] = _learner_values(expected_rate)
    envs = ConvergenceDiagnostics(gym.make_vec(env_id, num_envs=learners, vectorization_mode="vector_entry_point",
                                               **kwargs), window=window, max_period=max_period,
                                  stationary_window=stationary_window)
    agent = SelectionAgent(criterion=criterion, rule=rule, tau=_learner_values(tau), k=k, law=expected,
                           seed=seed)
    obs, _ = envs.reset(seed=[seed] * learners if same_split else seed)
    estimated = certified = None
    if estimate:
        certified = certificate(envs, agent)
        estimated = contraction_estimate(envs, agent)
    rng = torch.Generator().manual_seed(seed + 1)
    for _ in range(random_start):
        law = torch.rand(obs["action_mask"].shape, generator=rng, dtype=torch.float64) ** 4
        obs, *_ = envs.step(law / law.sum(1, keepdim=True))
    ds, steps_theta, w1s = [], [], []
    for _ in range(steps):
        obs, _, _, _, info = envs.step(agent.act_in(envs, obs))
        ds.append(info["d"].cpu().numpy())
        steps_theta.append(info["theta_step"].cpu().numpy())
        w1s.append(info["w1"].cpu().numpy())
    verdicts = [VERDICTS[v] for v in info["verdict"].tolist()]
    base = envs.unwrapped
    return Trajectories(np.stack(ds, 1), verdicts, base.parameters().cpu().numpy(), estimated, certified,
                        np.stack(steps_theta, 1), np.stack(w1s, 1), info["test_accuracy"].cpu().numpy(),
                        base.all_labels_accuracy().cpu().numpy(), info["period"].cpu().numpy(),
                        envs.time_average().cpu().numpy())


CERTIFIED = (
    ("Reciprocal-SelfTrain-v0", "confidence", 2, 1.0, 10.0),
    ("Reciprocal-SelfTrain-v0", "confidence", 2, 3.0, 3.0),
    ("Reciprocal-ActiveLearn-v0", "uncertainty", 5, 1.0, 3.0),
)
"""Settings (env id, criterion, k, lam, tau; softmax selection, re-selection) where the certificate holds on the
blobs data: strong ridge, a flat law, a small pool share."""

RATE_SETTINGS = (
    {"label_mode": "soft", "criterion": "confidence", "k": 10, "lam": 0.1, "tau": 0.1},
    {"label_mode": "hard", "criterion": "uncertainty", "k": 5, "lam": 0.01, "tau": 0.1},
    {"label_mode": "soft", "criterion": "confidence", "k": 20, "lam": 0.01, "tau": 0.3, "expected_rate": 0.5},
)
"""Settings (softmax selection) whose predicted and observed geometric rates are compared."""

SWEEP = {"label_mode": ("hard", "soft"), "k": (5, 20, 60), "tau": (0.01, 0.03, 0.1, 0.3, 1.0, 3.0),
         "lam": (0.001, 0.01, 0.1, 1.0), "rate": (1.0, 0.5)}
"""The phase-diagram sweep: label mode x pseudo-label mass k (share k / (20 + k)) x tau x lam x expected_rate
(1: re-selection; 0.5: a damped mean-field step) = 288 settings."""


def sweep(grid: dict[str, tuple[Any, ...]] | None = None, seeds: int = 2, steps: int = 200,
          criterion: str = "uncertainty", seed: int = 0) -> list[dict[str, Any]]:
    """Self-training with softmax(tau) selection in the mean-field mode over a grid of settings (default
    :data:`SWEEP`), ``seeds`` learners per setting; per label mode and k one batch (lam, tau and the rate per
    learner). Each record holds the setting, what was observed (verdict, rate, d_T, the accuracy gap of the end
    state to the all-labels model) and what was predicted at the start (the contraction estimate's call and rate,
    the certificate)."""
    grid = dict(SWEEP if grid is None else grid)
    records = []
    for label_mode, k in itertools.product(grid["label_mode"], grid["k"]):
        cells = list(itertools.product(grid["tau"], grid["lam"], grid["rate"]))
        rows = [(tau, lam, rate, s) for tau, lam, rate in cells for s in range(seeds)]
        taus, lams, rates = (np.array([r[i] for r in rows]) for i in range(3))
        run = self_training(label_mode, "softmax", criterion, k=k, lam=lams, tau=taus, expected_rate=rates,
                            steps=steps, learners=len(rows), seed=seed, estimate=True)
        observed = run.observed_rates()
        for b, (tau, lam, rate, s) in enumerate(rows):
            records.append({
                "label_mode": label_mode, "k": k, "share": k / (20 + k), "tau": tau, "lam": lam, "rate": rate,
                "seed": s, "verdict": run.verdicts[b], "settled": run.verdicts[b] == "converged",
                "d_T": float(run.d[b, -1]), "observed_rate": float(observed[b]),
                "contracts": bool(run.estimate.contracts[b]), "predicted_rate": float(run.estimate.rate[b]),
                "predicted_settled": bool(run.estimate.settles_within(steps)[b]),
                "fixed_point_found": bool(run.estimate.found[b]),
                "certified": bool(run.certificate.holds[b]), "kappa": float(run.certificate.kappa[b]),
                "kappa_best": float(run.certificate.kappa_best[b]),
                "accuracy_gap": float(run.accuracy[b] - run.all_labels[b]),
            })
    return records


def write_records(records: list[dict[str, Any]], path: Any) -> None:
    """Write sweep records as JSON (non-finite numbers as null, so every JSON reader loads the file)."""
    import json
    from pathlib import Path

    def clean(value: Any) -> Any:
        return None if isinstance(value, float) and not np.isfinite(value) else value

    Path(path).write_text(json.dumps([{k: clean(v) for k, v in r.items()} for r in records], indent=1))


def agreement(records: list[dict[str, Any]]) -> float:
    """The share of runs whose predicted call (settles within the run's steps / does not, made at the start from the
    contraction estimate) matches the observed verdict (converged / not)."""
    return float(np.mean([r["predicted_settled"] == r["settled"] for r in records]))


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
