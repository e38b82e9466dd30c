"""An empirical contraction estimate of the reciprocal map that predicts convergence (pool envs, mean-field mode).

In the mean-field (``adaptation="expected"``) mode with re-selection (``expected_rate=1``) the training set after a
step depends on theta alone, so the loop is the map ``T(theta) = ERM(f(theta, P(theta)))`` on the parameters: the
agent's selection law and the labels from theta, the training set they make, the refit. At a rate r < 1 the state
is (theta, P) and ``P' = (1 - r) P + r f(theta)``; its Jacobian at a fixed point has the eigenvalues
``1 - r + r * lambda_i`` (lambda_i those of T's Jacobian) and ``1 - r`` (from P's other directions), so both cases
follow from T. The fixed points are the same for every r.

:func:`contraction_estimate` finds the fixed point theta* of T by Newton's method on ``T(theta) - theta`` (its
Jacobian by central finite differences, every learner at once), and reports the spectral radius of the Jacobian
there: the asymptotic geometric rate of the loop. A fixed point with spectral radius < 1 attracts (the loop
converges there from near enough, at that rate); one with radius > 1 repels (the loop oscillates around it or goes
elsewhere); no fixed point (Newton does not close the residual: hard labels or argmax selection whose pieces do not
contain their own fixed point) means the loop cannot settle. The call ``contracts`` is: a fixed point found, and
spectral radius < 1.

Where the map is only piecewise smooth (hard labels, argmax selection), the derivative is 0 or smooth on each piece
and jumps between pieces: :func:`contraction_estimate` also probes finite perturbations at several scales and
reports, per learner, the smallest scale at which the one-step change departs from the linear prediction by more
than half (``linear_radius``: how far from theta* the linearization holds; a jump between pieces shows up there).

The estimate also gives the two gains of the theorem's factorization at theta* along the map's leading direction:
``adaptation_gain`` (W1 moved by the training set per unit of theta, the measured L) and ``erm_gain`` (theta moved
by the refit per unit of W1, the measured beta / gamma), and the weighting ``c`` of the metric
``|d theta| + c * W1`` that makes one step contract most: ``c* = (1 - r) / adaptation_gain`` with factor
``erm_gain * adaptation_gain + (1 - r)`` (the same algebra as :mod:`reciprocal_gym.certificates`'s bound).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from reciprocal_gym.arguments import MAX_SEED, Integer, Real
from reciprocal_gym.wrappers.diagnostics import exact_w1


@dataclass(frozen=True)
class ContractionEstimate:
    """Per-learner figures of :func:`contraction_estimate` (numpy arrays of length B)."""

    theta: np.ndarray
    """(B, P) the fixed point found (the last Newton iterate where none was found)."""
    residual: np.ndarray
    """|T(theta) - theta| at it."""
    found: np.ndarray
    """bool: Newton closed the residual (<= ``fixed_tol``): theta is a fixed point of the map."""
    initial_step: np.ndarray
    """|T(theta0) - theta0|: the first step's size in theta from where the estimate started."""
    eigenvalues: np.ndarray
    """(B, P) complex: the eigenvalues of T's Jacobian at theta (re-selection, rate 1)."""
    rate: np.ndarray
    """The spectral radius of the env's one-step map at theta (at its ``expected_rate`` r: the largest of
    ``|1 - r + r lambda_i|`` and ``1 - r``): the predicted geometric rate of d_t."""
    linear_radius: np.ndarray
    """The smallest probed perturbation of theta (relative to 1 + |theta|) at which the step departs from its
    linearization by more than half; inf when none of the probed scales does."""
    adaptation_gain: np.ndarray
    """W1(f(theta + h v), f(theta - h v)) / |2 h v| along the leading eigendirection: the measured L."""
    erm_gain: np.ndarray
    """|T(theta + h v) - T(theta - h v)| / W1 along it: the measured beta / gamma."""
    c_best: np.ndarray
    """The weighting c of |d theta| + c W1 with the smallest one-step factor, (1 - r) / adaptation_gain (0 at r = 1:
    any small c)."""
    factor_best: np.ndarray
    """That factor: erm_gain * adaptation_gain + (1 - r)."""

    @property
    def contracts(self) -> np.ndarray:
        """The call: a fixed point found and its spectral radius below 1."""
        return self.found & (self.rate < 1.0)

    def settles_within(self, steps: int, tol: float = 1e-8) -> np.ndarray:
        """(B,) bool: the call for a run of ``steps`` steps from where the estimate started, judged like the
        diagnostics' ``converged`` (estimated distance to the fixed point <= ``tol``): it contracts, and the first
        step shrunk geometrically at the predicted rate, ``initial_step * rate^(steps - 1) * rate / (1 - rate)``,
        is at most ``tol``."""
        rate = np.clip(self.rate, 0.0, 1.0 - 1e-12)
        with np.errstate(divide="ignore", under="ignore"):
            remaining = self.initial_step * rate ** max(steps - 1, 0) * rate / (1.0 - rate)
        return self.contracts & (remaining <= tol)

    def summary(self, b: int) -> str:
        """Learner ``b``'s estimate in words."""
        if not self.found[b]:
            return (f"does not contract: no fixed point found (residual |T(theta) - theta| = {self.residual[b]:.2e} "
                    f"after Newton's method; the map jumps between pieces or has no fixed point nearby)")
        call = "contracts" if self.rate[b] < 1 else "does not contract (the fixed point repels)"
        return (f"{call}: spectral radius {self.rate[b]:.4g} at the fixed point (residual {self.residual[b]:.1e}); "
                f"linear within {self.linear_radius[b]:.1e} (relative); measured L = {self.adaptation_gain[b]:.3g}, "
                f"beta/gamma = {self.erm_gain[b]:.3g}, best c = {self.c_best[b]:.3g} with factor "
                f"{self.factor_best[b]:.3g}")


def _base(env: Any) -> Any:
    base = env.unwrapped
    base = getattr(base, "vector_env", base)  # a single env is the batched engine with one learner
    if not hasattr(base, "evaluate_map"):
        raise ValueError("contraction_estimate needs a pool environment (Reciprocal-SelfTrain-v0, "
                         "Reciprocal-ActiveLearn-v0)")
    if getattr(base.config, "adaptation", None) != "expected":
        raise ValueError(f"contraction_estimate needs adaptation='expected' (a deterministic step); this env has "
                         f"adaptation={base.config.adaptation!r}: sampled selections are judged by the diagnostics' "
                         "'stationary' verdict instead")
    if base.dtype != torch.float64:
        raise ValueError("contraction_estimate needs dtype=torch.float64 (finite differences of the refit)")
    return base


def _rate_of(base: Any) -> Tensor:
    rate = base.learner_setting("expected_rate")
    if isinstance(rate, Tensor):
        return rate.to(torch.float64).cpu()
    return torch.full((base.num_envs,), rate, dtype=torch.float64)


def contraction_estimate(env: Any, agent: Any, theta0: Tensor | None = None, h: float = 1e-5,
                         max_newton: int = 30, fixed_tol: float = 1e-9,
                         scales: tuple[float, ...] = (1e-6, 1e-4, 1e-3, 1e-2, 1e-1),
                         damped_steps: int = 10, seed: int = 0) -> ContractionEstimate:
    """Estimate, per learner, whether and how fast the env's mean-field loop contracts (see the module docstring).

    Args:
        env: a pool env (vector or single, wrapped or not) with ``adaptation="expected"`` and float64.
        agent: the selection agent (``law=True``); it acts through ``agent.act_in``. A sampled agent is refused.
        theta0: (B, P) where Newton's method starts (default: the env's current theta).
        h: the finite-difference step of the Jacobian (central differences).
        max_newton: Newton iterations at most.
        fixed_tol: a residual |T(theta) - theta| at or below it counts as a fixed point. Set the env's solver
            ``tol`` well below it (the refit's accuracy limits the residual; 1e-12 or less).
        scales: the relative perturbation sizes of the finite-scale probe.
        damped_steps: where a Newton step finds no point with a smaller residual (the map jumps between pieces),
            this many damped fixed-point steps ``theta <- theta + (T(theta) - theta) / 2`` before Newton resumes
            (a solver for theta = T(theta), not the loop: it also finds fixed points the loop is repelled from).
        seed: seeds the probe's random directions.

    Cost: each Newton iteration evaluates the map 2 P times for the Jacobian (P parameters; every learner at once)
    plus a few times for the step; binary data with d features have P = d + 1, multinomial C (d + 1). The env is
    left exactly as it was."""
    for name, value, spec in (("h", h, Real(0.0, 1.0, open_low=True)), ("max_newton", max_newton, Integer(0, 1000)),
                              ("fixed_tol", fixed_tol, Real(0.0, 1.0, open_low=True)),
                              ("damped_steps", damped_steps, Integer(0, 10_000)), ("seed", seed, Integer(0, MAX_SEED))):
        spec.check(name, value)
    if not scales or not all(isinstance(v, float | int) and 0 < v <= 1 for v in scales):
        raise ValueError(f"scales={scales!r} is not allowed; it must be a non-empty sequence of numbers in (0, 1]")
    base = _base(env)
    if not getattr(agent, "law", False):
        raise ValueError("contraction_estimate needs an agent that returns the selection law (law=True)")
    B, P = base.num_envs, base.n_params
    rate = _rate_of(base)

    def step(theta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return base.evaluate_map(theta, lambda obs: agent.act_in(base, obs), rate=1.0)

    def T(theta: Tensor) -> Tensor:
        return step(theta)[0].to(torch.float64)

    def jacobian(theta: Tensor) -> Tensor:
        cols = []
        for j in range(P):
            e = torch.zeros_like(theta)
            e[:, j] = h
            cols.append((T(theta + e) - T(theta - e)) / (2 * h))
        return torch.stack(cols, -1)  # (B, P, P): column j = dT / dtheta_j

    theta = (base.parameters() if theta0 is None else torch.as_tensor(theta0, device=base.device)).to(torch.float64)
    theta = theta.clone()
    G = T(theta) - theta
    res = G.norm(dim=1)
    initial_step = res.clone()
    eye = torch.eye(P, dtype=torch.float64, device=theta.device)
    for _ in range(max_newton):
        active = res > fixed_tol
        if not bool(active.any()):
            break
        J = jacobian(theta)
        try:
            delta = torch.linalg.solve(J - eye, -G.unsqueeze(-1)).squeeze(-1)
        except RuntimeError:  # a singular J - I (eigenvalue 1): a least-squares step instead
            delta = torch.linalg.lstsq(J - eye, -G.unsqueeze(-1)).solution.squeeze(-1)
        delta = torch.where(torch.isfinite(delta), delta, 0.0)
        step_size = torch.ones(B, dtype=torch.float64, device=theta.device)
        improved = torch.zeros(B, dtype=torch.bool, device=theta.device)
        best_theta, best_G, best_res = theta, G, res
        for _ in range(8):  # backtracking: keep the step where the residual falls
            trial = theta + (step_size * active).unsqueeze(1) * delta
            G_t = T(trial) - trial
            res_t = G_t.norm(dim=1)
            take = active & ~improved & (res_t < best_res)
            best_theta = torch.where(take.unsqueeze(1), trial, best_theta)
            best_G = torch.where(take.unsqueeze(1), G_t, best_G)
            best_res = torch.where(take, res_t, best_res)
            improved = improved | take
            if bool((improved | ~active).all()):
                break
            step_size = torch.where(improved, step_size, step_size / 4)
        stalled = active & ~improved
        theta, G, res = best_theta, best_G, best_res
        if bool(stalled.any()):  # Newton stalls (the map jumps between pieces): damped fixed-point steps instead
            for _ in range(damped_steps):
                trial = theta + 0.5 * G
                G_t = T(trial) - trial
                theta = torch.where(stalled.unsqueeze(1), trial, theta)
                G = torch.where(stalled.unsqueeze(1), G_t, G)
            res = G.norm(dim=1)
    found = res <= fixed_tol
    J = jacobian(theta)
    lam, vecs = torch.linalg.eig(J.cpu())  # (B, P) complex eigenvalues, (B, P, P) eigenvectors
    r = rate.view(-1, 1)
    rho = (1 - r + r * lam).abs().amax(1)
    rho = torch.where(rate < 1, torch.maximum(rho, 1 - rate), rho)

    # the leading eigendirection (real part; the imaginary part if the real part vanishes)
    lead = lam.abs().argmax(1)
    v = vecs[torch.arange(B), :, lead]
    direction = torch.where(v.real.norm(dim=1, keepdim=True) > 1e-8, v.real, v.imag).to(theta.device)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-300)
    x, _, _ = base.training_measure()
    t_plus, y_plus, m_plus = step(theta + h * direction)
    t_minus, y_minus, m_minus = step(theta - h * direction)
    w1 = exact_w1(x, y_plus, m_plus, y_minus, m_minus).to(torch.float64)
    moved = (t_plus - t_minus).to(torch.float64).norm(dim=1)
    a_gain = w1 / (2 * h)
    b_gain = torch.where(w1 > 0, moved / torch.where(w1 > 0, w1, 1.0), 0.0)
    keep = (1 - rate).to(theta.device)
    c_best = torch.where(a_gain > 0, keep / torch.where(a_gain > 0, a_gain, 1.0), torch.inf)
    c_best = torch.where(keep == 0, 0.0, c_best)

    # finite-scale probe: where does the step stop following its linearization?
    generator = torch.Generator().manual_seed(seed)
    u = torch.randn(B, P, generator=generator, dtype=torch.float64).to(theta.device)
    u = u / u.norm(dim=1, keepdim=True)
    base_out = theta + G  # T(theta): the residual G belongs to the final iterate
    linear_radius = torch.full((B,), torch.inf, dtype=torch.float64, device=theta.device)
    size = 1 + theta.norm(dim=1)
    for scale in sorted(scales):
        delta = (scale * size).unsqueeze(1) * u
        actual = T(theta + delta) - base_out
        predicted = torch.einsum("bij,bj->bi", J, delta)
        off = (actual - predicted).norm(dim=1) > 0.5 * torch.maximum(predicted.norm(dim=1), delta.norm(dim=1))
        linear_radius = torch.where(off & torch.isinf(linear_radius), scale, linear_radius)

    def out(t: Tensor) -> np.ndarray:
        return t.detach().cpu().numpy()

    return ContractionEstimate(theta=out(theta), residual=out(res), found=out(found), eigenvalues=lam.numpy(),
                               initial_step=out(initial_step),
                               rate=out(rho), linear_radius=out(linear_radius), adaptation_gain=out(a_gain),
                               erm_gain=out(b_gain), c_best=out(c_best),
                               factor_best=out(b_gain * a_gain + keep))


def observed_rate(d: np.ndarray, tol: float = 1e-8, floor: float = 1e-11) -> float | None:
    """The geometric rate of a run's step sizes ``d`` (T,): the least-squares slope of log d_t over the steps after
    the first tenth where ``floor < d_t`` (the solver's noise below it), as a factor per step; from the steps after
    d first falls below 1e-2 of its start when that leaves at least 5 (the asymptotic part). None with fewer than
    3 usable steps."""
    d = np.asarray(d, dtype=np.float64)
    t = np.arange(len(d))
    keep = (d > floor) & np.isfinite(d)
    keep &= t >= len(d) // 10
    start = np.flatnonzero(keep & (d < 1e-2 * max(d[0], 1e-300)))
    if len(start) and keep[start[0]:].sum() >= 5:
        keep &= t >= start[0]
    if keep.sum() < 3:
        return None
    return float(np.exp(np.polyfit(t[keep], np.log(d[keep]), 1)[0]))

