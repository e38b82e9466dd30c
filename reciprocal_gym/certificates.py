"""A rigorous convergence certificate for the mean-field pool loop: the theorem's constant, bounded from above.

The reciprocal-learning theorem (Rodemann et al., NeurIPS 2024): on states s = (theta, P) with the metric
``d(s, s') = |theta - theta'|_2 + W1(P, P')``, if the ERM is (beta / gamma)-Lipschitz from W1 to theta and the sample
adaptation f is L-Lipschitz, one step ``F(theta, P) = (ERM(f(theta, P)), f(theta, P))`` moves two states at most
``kappa = L (1 + beta / gamma)`` times as far apart as they were; kappa < 1 makes the loop a contraction: a unique
fixed point, reached at the linear rate kappa (d_{t+1} <= kappa d_t at every step).

:func:`certificate` bounds each factor from the env's data and settings, with no estimate in between. It applies to
the pool envs' mean-field mode (``adaptation="expected"``): the step's training set is the labeled set (mass 1 per
row) plus ``k`` units of mass spread by the selection law pi(theta) over the pool, each atom labeled by the model
(SelfTrain, soft labels) or the oracle (ActiveLearn), mixed into the old one at ``expected_rate`` r; W1 is between the
normalized measures with the ground cost ``|x - x'|_2 + |y - y'|_1`` (standardized features, label vectors), as in
:class:`~reciprocal_gym.wrappers.ConvergenceDiagnostics`. With R the largest |(x, 1)| over the training atoms,
D the pool's diameter in the ground cost (feature diameter + 2, the largest l1 distance of two label vectors),
s = k / (n_labeled + k) the pool's share of the mass, and ``lam_mean`` the ridge on the mean loss (``lam``;
``lam / (n_labeled + k)`` with ``penalty="sum"``):

- gamma = lam_mean: the ridge makes the mean loss lam_mean-strongly convex (the intercept penalized).
- beta: the Lipschitz constant, in the ground cost, of the loss's gradient in theta as a function of the atom (x, y),
  at any minimizer: binary ``max(1 + R R_theta / 4, R / 2)``, multinomial ``max(sqrt 2 + R R_theta / 2, R)``, where
  ``R_theta = sqrt(2 log C / lam_mean)`` bounds |theta*| (the objective at 0 is log C). Then
  ``|ERM(P) - ERM(Q)| <= beta / gamma * W1(P, Q)`` (compare the two first-order conditions; Kantorovich-Rubinstein).
- the selection law's constant from scores in max norm to the law in l1 (softmax 1 / tau, sparsemax at most
  n_pool / tau, random 0; argmax rules have none), times the criterion's constant in theta (the criterion as a
  function of the logits, times R: ``confidence`` and ``margin`` 1 (binary) or sqrt 2, ``entropy`` /
  ``uncertainty`` max_z |z| sigma(z) sigma(-z) = 0.2240 (binary)), gives the law's total variation per unit of theta:
  ``TV <= sel * crit * R / 2``.
- the label map's constant, l1 of the label vector per unit of theta: soft labels sharpened by T ``R / (2 T)``
  (binary) or ``sqrt 2 R / T``; oracle labels 0 (they do not depend on theta); hard labels have none.
- L_theta = r s (TV-constant * D + label constant) (move the law's changed mass across the pool, relabel the rest);
  L_P = 1 - r (the old training set's share; it assumes the pool's mass has reached k, from the first step at r = 1).

``kappa = max(L_theta, L_P) (1 + beta / gamma)`` is the theorem's constant for d; weighting the metric as
``|d theta| + c W1`` gives ``(beta / gamma + c) max(L_theta, L_P / c)``, smallest at ``c* = L_P / L_theta`` with
``kappa* = beta / gamma * L_theta + L_P`` (at r = 1, any small c). Either below 1 certifies linear convergence.

The bounds are worst cases over the whole pool and every parameter the ridge allows, so they certify only strong
regularization: large lam (gamma), large tau, a small pool share. Where the certificate is silent the loop may still
converge (the condition is sufficient, not necessary): :mod:`reciprocal_gym.contraction` estimates the actual rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


def _binary_entropy_slope() -> float:
    """max_z |z| sigma(z) sigma(-z) (the slope of the binary entropy in the logit), by ternary search, rounded up."""
    lo, hi = 0.5, 3.0  # the maximum is near z = 1.543 and the function is unimodal on [0, inf)

    def f(z: float) -> float:
        s = 1.0 / (1.0 + math.exp(-z))
        return z * s * (1.0 - s)

    for _ in range(200):
        a, b = lo + (hi - lo) / 3, hi - (hi - lo) / 3
        if f(a) < f(b):
            lo = a
        else:
            hi = b
    return f((lo + hi) / 2) + 1e-12


ENTROPY_SLOPE = _binary_entropy_slope()
"""max_z |z| sigma(z) sigma(-z) ~ 0.2240: the binary entropy's Lipschitz constant in the logit."""

CRITERION_CONSTANTS: dict[str, tuple[float, float | None]] = {
    "confidence": (1.0, math.sqrt(2.0)),
    "margin": (1.0, math.sqrt(2.0)),
    "entropy": (ENTROPY_SLOPE, None),
    "uncertainty": (ENTROPY_SLOPE, None),
    "none": (0.0, 0.0),
}
"""The built-in criteria's Lipschitz constants in the logits (binary: in the logit; multinomial: in the logit
vector's l2 norm); None: no bound given."""


@dataclass(frozen=True)
class Certificate:
    """The certificate's factors per learner (numpy arrays (B,); inf where a factor is unbounded)."""

    kappa: np.ndarray
    """The theorem's constant L (1 + beta / gamma) for d = |d theta| + W1, L = max(L_theta, L_P)."""
    kappa_best: np.ndarray
    """beta / gamma * L_theta + L_P: the constant for the best weighting c of the metric."""
    c_best: np.ndarray
    """That weighting, L_P / L_theta (0 at rate 1: any small c)."""
    L_theta: np.ndarray
    """The adaptation's constant in theta (W1 of the new training set per unit of theta)."""
    L_P: np.ndarray
    """Its constant in P (1 - expected_rate)."""
    beta: np.ndarray
    """The gradient's Lipschitz constant in the atom (ground cost)."""
    gamma: np.ndarray
    """The strong convexity (lam on the mean loss)."""
    selection: np.ndarray
    """The selection law's constant, scores in max norm to the law in l1."""
    criterion: np.ndarray
    """The criterion's constant in theta (its constant in the logits times R)."""
    labels: np.ndarray
    """The label map's constant in theta (l1 of the label vector)."""
    radius: np.ndarray
    """R, the largest |(x, 1)| over the training atoms (standardized features)."""
    diameter: np.ndarray
    """D, the pool's diameter in the ground cost."""
    share: float
    """s = k / (n_labeled + k)."""
    reason: str | None
    """Why the certificate does not apply (then every kappa is inf), or None."""

    @property
    def erm(self) -> np.ndarray:
        """beta / gamma, the ERM's constant from W1 to theta."""
        return self.beta / self.gamma

    @property
    def holds(self) -> np.ndarray:
        """(B,) bool: kappa* < 1, the theorem guarantees linear convergence (at rate ``factor(c)`` < 1 in
        ``|d theta| + c W1`` for a c near c*; where kappa < 1 too, at rate kappa in d itself)."""
        return self.kappa_best < 1.0

    def factor(self, c: float) -> np.ndarray:
        """(B,) the bound on one step's factor in the metric ``|d theta| + c W1`` (c > 0):
        ``(beta / gamma + c) max(L_theta, L_P / c)``. ``factor(1) = kappa``."""
        if not c > 0:
            raise ValueError(f"c={c!r} is not allowed; it must be > 0")
        return (self.erm + c) * np.maximum(self.L_theta, self.L_P / c)

    def summary(self, b: int = 0) -> str:
        """Learner ``b``'s certificate in words, each factor shown."""
        if self.reason is not None:
            return f"no certificate: {self.reason}"
        verdict = ("certifies linear convergence, every step contracting d" if self.kappa[b] < 1 else
                   "certifies linear convergence in the weighted metric" if self.kappa_best[b] < 1 else
                   "certifies nothing (a sufficient condition, not necessary)")
        return (f"kappa = L (1 + beta/gamma) = {self.kappa[b]:.4g} (L_theta = {self.L_theta[b]:.4g}, L_P = "
                f"{self.L_P[b]:.3g}, beta = {self.beta[b]:.4g}, gamma = {self.gamma[b]:.4g}); best weighting c = "
                f"{self.c_best[b]:.3g}: kappa* = {self.kappa_best[b]:.4g}. Factors: selection {self.selection[b]:.4g}"
                f" x criterion {self.criterion[b]:.4g}, labels {self.labels[b]:.4g}, R = {self.radius[b]:.4g}, "
                f"D = {self.diameter[b]:.4g}, share {self.share:.3g}. {verdict}")


def _uncertified(B: int, share: float, reason: str) -> Certificate:
    inf = np.full(B, np.inf)
    nan = np.full(B, np.nan)
    return Certificate(kappa=inf, kappa_best=inf, c_best=nan, L_theta=inf, L_P=nan, beta=nan, gamma=nan,
                       selection=nan, criterion=nan, labels=nan, radius=nan, diameter=nan, share=share, reason=reason)


def _per_learner(value: Any, B: int) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float64).cpu().numpy()
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (B,)).copy()


def certificate(env: Any, agent: Any) -> Certificate:
    """The certificate of a pool env's mean-field loop under ``agent`` (a :class:`~agents.SelectionAgent`), from the
    env's current data (its learners' splits): see the module docstring for every factor. Settings outside its
    assumptions (not ``adaptation="expected"``, hard labels, a confidence threshold, no ridge or a free intercept,
    an argmax rule, a criterion without a known constant) give a certificate with kappa = inf and the ``reason``."""
    base = env.unwrapped
    base = getattr(base, "vector_env", base)
    if not hasattr(base, "evaluate_map"):
        raise ValueError("certificate needs a pool environment (Reciprocal-SelfTrain-v0, Reciprocal-ActiveLearn-v0)")
    cfg = base.config
    B, C = base.num_envs, base.n_classes
    n_labeled, k = base.sizes.n_labeled, base.k
    share = k / (n_labeled + k)
    binary = C == 2
    from agents.selection import CRITERIA  # agents import the envs, not the other way round

    reasons = []
    if cfg.adaptation != "expected":
        reasons.append(f"adaptation={cfg.adaptation!r} samples or jumps (the certificate covers the deterministic "
                       "adaptation='expected')")
    labels = base.parts.labels
    mode = getattr(labels, "mode", None)
    if mode == "hard":
        reasons.append("hard labels jump when the argmax class switches (not Lipschitz)")
    threshold = getattr(labels, "threshold", 0.0)
    if isinstance(threshold, torch.Tensor) or threshold != 0.0:
        reasons.append("a confidence threshold admits points by a jump (not Lipschitz)")
    lam = _per_learner(base.learner_setting("lam"), B)
    if not cfg.penalize_intercept:
        reasons.append("penalize_intercept=False: the loss is not strongly convex in the intercept")
    if np.any(lam <= 0):
        reasons.append("lam=0: no strong convexity")
    rule = getattr(agent, "rule", None)
    tau = _per_learner(getattr(agent, "tau", np.nan), B)
    if rule == "softmax":
        selection = 1.0 / tau
    elif rule == "sparsemax":
        selection = base.n_pool / tau
    elif rule == "random":
        selection = np.zeros(B)
    else:
        selection = None
        reasons.append(f"rule={rule!r}: the law jumps when the argmax switches (no Lipschitz constant)")
    name = next((key for key, fn in CRITERIA.items() if fn is getattr(agent, "criterion", None)), None)
    crit_const = None
    if name in CRITERION_CONSTANTS:
        crit_const = CRITERION_CONSTANTS[name][0 if binary else 1]
    if crit_const is None and rule != "random":
        reasons.append(f"criterion {name or 'custom'!r}: no Lipschitz constant known to the certificate"
                       + ("" if binary else " for multinomial models"))
    if reasons:
        return _uncertified(B, share, "; ".join(reasons))

    x, _, _ = base.training_measure()
    x = x.to(torch.float64)
    radius = torch.sqrt(1.0 + (x * x).sum(-1).amax(1)).cpu().numpy()
    pool = x[:, n_labeled:]
    diameter = torch.cdist(pool, pool, compute_mode="donot_use_mm_for_euclid_dist").flatten(1).amax(1)
    diameter = diameter.cpu().numpy() + 2.0
    lam_mean = lam if cfg.penalty == "mean" else lam / (n_labeled + k)
    gamma = lam_mean
    theta_radius = np.sqrt(2.0 * math.log(C) / lam_mean)
    if binary:
        beta = np.maximum(1.0 + radius * theta_radius / 4.0, radius / 2.0)
    else:
        beta = np.maximum(math.sqrt(2.0) + radius * theta_radius / 2.0, radius)
    criterion = (crit_const or 0.0) * radius
    if mode == "soft":
        temperature = _per_learner(labels.temperature, B)
        label_const = radius / (2.0 * temperature) if binary else math.sqrt(2.0) * radius / temperature
    else:  # the oracle's answers do not depend on theta
        label_const = np.zeros(B)
    rate = _per_learner(base.learner_setting("expected_rate"), B)
    L_theta = rate * share * (0.5 * selection * criterion * diameter + label_const)
    L_P = 1.0 - rate
    erm = beta / gamma
    kappa = np.maximum(L_theta, L_P) * (1.0 + erm)
    kappa_best = erm * L_theta + L_P
    c_best = np.where(L_P > 0, L_P / np.where(L_theta > 0, L_theta, 1.0), 0.0)
    c_best = np.where((L_P > 0) & (L_theta == 0), np.inf, c_best)
    return Certificate(kappa=kappa, kappa_best=kappa_best, c_best=c_best, L_theta=L_theta, L_P=L_P, beta=beta,
                       gamma=gamma, selection=np.asarray(selection, dtype=np.float64), criterion=criterion,
                       labels=np.asarray(label_const, dtype=np.float64), radius=radius, diameter=diameter,
                       share=share, reason=None)
