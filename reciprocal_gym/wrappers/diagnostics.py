"""Convergence diagnostics of reciprocal learning, per learner and per step.

The state of a learner is (theta_t, P_t), with P_t its training set as a measure on X x Y. The diagnostics follow
the metric of the reciprocal-learning analysis, ``d_t = |theta_t - theta_{t-1}|_2 + W1(P_t, P_{t-1})``, with ground
cost ``|x - x'|_2 + |y - y'|_1`` between support points (features x, label vectors y: one-hot or probabilities).

W1 modes:

- ``"exact"``: the exact Wasserstein-1 distance. Successive training sets live on one support, and for a metric
  cost the mass two measures share at a point can stay in place, so only the mass that moved enters the transport
  problem. When one side of that reduced problem is a single point (adding one atom, a hard label) the distance is
  a closed-form sum, computed for all learners at once; when both sides hold the same few (<= 6) equal masses
  (amend, a full swap buffer) it is an assignment, solved by enumeration for all learners at once; otherwise POT's
  exact ``ot.emd2`` solves the reduced problem per learner (the cost matrices in one batched call, the solves on
  a thread pool: POT releases the GIL). Equal to ``ot.emd2`` on the full support (tested to 1e-9 in float64).
- ``"sliced"`` (the cheap mode): the exact closed forms and assignments where they apply (adding atoms one at a
  time, amend, a full swap buffer), else the sliced Wasserstein-1 distance with ``n_projections`` random
  directions of the concatenated vector (x, y), batched in torch (no per-learner loop). The sliced distance is a
  lower bound: sliced-W1 <= W1 with the Euclidean cost on (x, y) <= W1 with the cost above; on the documented case
  in ``benchmarks/diagnostics_overhead.py`` it is 7-15x smaller than the exact W1 but moves in proportion to it,
  so step ratios and rates stay meaningful (mix the two modes in one trajectory only knowingly).
- ``"theta"``: no W1 (``d_t = |theta_t - theta_{t-1}|``), for environments without a finite training measure.

Per step, ``info`` gains (tensors (B,), each with its ``"_" + key`` validity mask as in Gymnasium's vector info):
``theta_step``, ``w1``, ``d``, ``step_ratio`` (``d_t / d_{t-1}``), ``rate`` (geometric-mean step ratio over the
last ``window`` steps), ``distance`` (the estimated distance to the fixed point, ``rate / (1 - rate) * d_t`` once the
rate is known and below 1, else ``d_t``), ``period`` (the cycle's period, 0 when none) and ``verdict`` (an index into
:data:`VERDICTS`). :meth:`ConvergenceDiagnostics.reasons` explains each learner's verdict in words, and
:meth:`ConvergenceDiagnostics.time_average` gives the time-averaged parameters.

Verdicts:

- ``converged``: the estimated distance to the fixed point is at most ``tol``. For a geometric decay at rate rho the
  remaining path is ``d_t rho / (1 - rho)``: the verdict waits for it, not for one small step. The pool envs refit to a
  gradient norm of 1e-12 by default, 1e4 below the default ``tol`` (1e-8); the wrapper warns when an env's solver
  tolerance is not at least 1e3 below ``tol`` (a run could then count as converged because the warm-started refit
  stops moving, not because the loop settled).
- ``diverging``: theta not finite, ``|theta| > theta_limit``, or ``|theta|`` growing tenfold over the window while
  steps grow.
- ``oscillating``: no contraction over the window (rate >= 0.95) and the state returns to within 10 % of a state 2 to
  ``max_period`` steps earlier; or the last two parameters repeat exactly (to 1e-9) those p steps earlier for a
  longer p (up to ``2 * stationary_window - 2``): a cycle, whose period is reported (``period``, and in the reason).
  A deterministic loop on finitely many training sets (argmax selection with a swap buffer) ends in such cycles,
  often of period 10 to 100.
- ``stationary``: stationary in distribution, the verdict for randomized (sampled) selection, whose iterates never
  settle: the empirical law of theta over the last ``stationary_window`` steps is within ``stationary_tol`` times
  its spread of the law over the ``stationary_window`` steps before (W1 between the two windows, sliced: the mean
  over ``n_projections`` random directions of theta; the spread: the mean absolute deviation of the projections over
  both windows). A drift (even a slow one, like greedy add-only's 1/n steps) gives a ratio near 2; independent
  draws about 0.3 (windows of 50), a strongly autocorrelated chain (AR(1) with coefficient 0.9) about 0.8. The
  time-averaged iterate is then the quantity to report (:meth:`ConvergenceDiagnostics.time_average`). This test and
  the exact long-cycle test run every ``stationary_window // 5`` steps of a learner (their cost); the verdict holds
  in between.
- ``undecided``: otherwise (including slow, non-geometric decay).
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import ot
import torch
from gymnasium.vector import VectorEnv, VectorWrapper
from torch import Tensor

from reciprocal_gym.arguments import MAX_SEED, Choice, Integer, Real
from reciprocal_gym.utils.threads import worker_pool

VERDICTS = ("undecided", "converged", "oscillating", "diverging", "stationary")
DISTANCES = ("exact", "sliced", "theta")
ARGUMENTS = {
    "distance": Choice(DISTANCES),
    "tol": Real(0.0, 1e6, open_low=True),
    "window": Integer(2, 10_000),
    "max_period": Integer(2, 10_000),
    "theta_limit": Real(0.0, 1e300, open_low=True),
    "n_projections": Integer(1, 10_000),
    "seed": Integer(0, MAX_SEED),
    "stationary_window": Integer(5, 100_000),
    "stationary_tol": Real(0.0, 2.0, open_low=True),
}
"""What each argument of :class:`ConvergenceDiagnostics` allows (``max_period <= window`` too)."""


def _pairwise_cost(xa: Tensor, ya: Tensor, xb: Tensor, yb: Tensor) -> Tensor:
    """(..., na, nb) ground cost |x - x'|_2 + |y - y'|_1."""
    exact = "donot_use_mm_for_euclid_dist"  # the matrix-product shortcut loses ~1e-8 relative accuracy
    return torch.cdist(xa, xb, compute_mode=exact) + torch.cdist(ya, yb, p=1)


_MAX_ASSIGNMENT = 6


def _take(t: Tensor, index: Tensor) -> Tensor:
    """Rows ``index`` (b, r) of t (b, n, k)."""
    return t.gather(1, index.unsqueeze(-1).expand(-1, -1, t.shape[-1]))


def _permutations(r: int, device: torch.device) -> Tensor:
    return torch.as_tensor(list(itertools.permutations(range(r))), dtype=torch.int64, device=device)


def exact_w1(x: Tensor, y_prev: Tensor, m_prev: Tensor, y_now: Tensor, m_now: Tensor,
             fallback: Any = None) -> Tensor:
    """Exact W1 between P = sum m_prev_i delta(x_i, y_prev_i) and Q = sum m_now_i delta(x_i, y_now_i), per learner.

    Args: x (B, n, d), y_prev / y_now (B, n, C), m_prev / m_now (B, n) with equal sums per learner.
    ``fallback(index)``: if given, the learners ``index`` that would need a general transport solve (POT) get
    ``fallback(index)`` instead (the sliced mode's shortcut); the closed forms and assignments stay exact.
    """
    B, n = m_prev.shape
    same = (y_prev == y_now).all(-1)
    common = torch.where(same, torch.minimum(m_prev, m_now), 0.0)
    p, q = m_prev - common, m_now - common
    dust = 1e-13 * m_prev.sum(1, keepdim=True).clamp_min(1e-300)
    p, q = torch.where(p > dust, p, 0.0), torch.where(q > dust, q, 0.0)
    n_src, n_dst = (p > 0).sum(1), (q > 0).sum(1)
    w1 = torch.zeros(B, dtype=m_prev.dtype, device=m_prev.device)
    rows = torch.arange(B, device=m_prev.device)
    # one target point: every source sends its mass there (the only coupling)
    one_dst = (n_dst == 1) & (n_src >= 1)
    if bool(one_dst.any()):
        j = q.argmax(1)
        cost = _pairwise_cost(x, y_prev, x[rows, j].unsqueeze(1), y_now[rows, j].unsqueeze(1)).squeeze(-1)
        w1 = torch.where(one_dst, (p * cost).sum(1), w1)
    one_src = (n_src == 1) & (n_dst > 1)
    if bool(one_src.any()):
        i = p.argmax(1)
        cost = _pairwise_cost(x[rows, i].unsqueeze(1), y_prev[rows, i].unsqueeze(1), x, y_now).squeeze(1)
        w1 = torch.where(one_src, (q * cost).sum(1), w1)
    rest = (n_src > 1) & (n_dst > 1)
    # equal numbers of equal masses on both sides (amend, swap once full): an assignment, by enumeration if small
    p_pos = torch.where(p > 0, p, torch.inf).min(1).values
    uniform = (p.max(1).values <= p_pos * (1 + 1e-12)) & (q.max(1).values <= p_pos * (1 + 1e-12)) \
        & (torch.where(q > 0, q, torch.inf).min(1).values >= p_pos * (1 - 1e-12))
    square = rest & uniform & (n_src == n_dst) & (n_src <= _MAX_ASSIGNMENT)
    for r in torch.unique(n_src[square]).tolist() if bool(square.any()) else []:
        pick = square & (n_src == r)
        idx = torch.nonzero(pick).squeeze(1)
        src = torch.sort((p[idx] > 0).to(torch.int8), dim=1, descending=True, stable=True).indices[:, :r]
        dst = torch.sort((q[idx] > 0).to(torch.int8), dim=1, descending=True, stable=True).indices[:, :r]
        at = idx.unsqueeze(1)  # gather only the (b, r) atoms, not whole rows of x
        cost = _pairwise_cost(x[at, src], y_prev[at, src], x[at, dst], y_now[at, dst])  # (b, r, r)
        perms = _permutations(r, cost.device)  # (r!, r)
        totals = cost.gather(2, perms.T.unsqueeze(0).expand(len(idx), -1, -1)).sum(1)  # (b, r!)
        w1[idx] = totals.min(1).values * p[idx].gather(1, src[:, :1]).squeeze(1)
        rest = rest & ~pick
    if fallback is not None:
        idx = torch.nonzero(rest).squeeze(1)
        if len(idx):
            w1[idx] = fallback(idx).to(w1.dtype)
        return w1
    idx = torch.nonzero(rest).squeeze(1)
    if len(idx):
        parts = (x, y_prev, p, y_now, q) if len(idx) == B else (x[idx], y_prev[idx], p[idx], y_now[idx], q[idx])
        w1[idx] = torch.as_tensor(_transport_costs(*parts), dtype=w1.dtype, device=w1.device)
    return w1


_COST_BYTES = 64e6
"""Size of the float64 cost matrices :func:`_transport_costs` builds at a time."""


def _transport_costs(x: Tensor, y_prev: Tensor, p: Tensor, y_now: Tensor, q: Tensor) -> np.ndarray:
    """``ot.emd2`` of the reduced problems (sources where p > 0, targets where q > 0), one per learner.

    The cost matrices are computed in batched calls (sources and targets packed to the front, padded to the largest
    count; about 64 MB of them at a time); the exact solves run on a thread pool (POT's network simplex releases
    the GIL)."""
    n_src, n_dst = (p > 0).sum(1).tolist(), (q > 0).sum(1).tolist()
    src = torch.sort((p > 0).to(torch.int8), dim=1, descending=True, stable=True).indices[:, : max(n_src)]
    dst = torch.sort((q > 0).to(torch.int8), dim=1, descending=True, stable=True).indices[:, : max(n_dst)]
    a_all = p.gather(1, src).double().cpu().numpy()
    c_all = q.gather(1, dst).double().cpu().numpy()
    out = np.empty(len(n_src))
    chunk = max(1, int(_COST_BYTES // (8 * src.shape[1] * dst.shape[1])))
    for start in range(0, len(n_src), chunk):
        rows = slice(start, start + chunk)
        s, t = src[rows], dst[rows]
        cost = _pairwise_cost(_take(x[rows], s), _take(y_prev[rows], s), _take(x[rows], t),
                              _take(y_now[rows], t)).double().cpu().numpy()

        def solve(b: int, cost: np.ndarray = cost, first: int = start) -> float:
            a, c = a_all[b, : n_src[b]], c_all[b, : n_dst[b]]
            c = c * (a.sum() / c.sum())  # the dust threshold can unbalance the sums by ~1e-13
            M = np.ascontiguousarray(cost[b - first, : n_src[b], : n_dst[b]])
            return float(ot.emd2(a, c, M, numItermax=10_000_000))

        learners = range(start, min(start + chunk, len(n_src)))
        out[start : learners.stop] = [solve(b) for b in learners] if len(learners) == 1 else \
            list(worker_pool().map(solve, learners))
    return out


def sliced_w1(x: Tensor, y_prev: Tensor, m_prev: Tensor, y_now: Tensor, m_now: Tensor, directions: Tensor) -> Tensor:
    """Sliced W1 (mean over ``directions`` (L, d + C) unit vectors) between the same measures, batched."""
    # an atom whose label and mass are the same on both sides puts +m and -m at one projected point: drop it, and
    # atoms without mass on either side. Masses equal up to the dust of :func:`exact_w1` (1e-13 of the total, e.g.
    # rounding from renormalization) count as equal, as they do there.
    dust = 1e-13 * m_prev.sum(1, keepdim=True)
    same = ((m_prev - m_now).abs() <= dust) & (y_prev == y_now).all(-1)
    moved = ((m_prev > 0) | (m_now > 0)) & ~same
    m = int(moved.sum(1).max())
    if m == 0:
        return torch.zeros(m_prev.shape[0], dtype=m_prev.dtype, device=m_prev.device)
    if m < moved.shape[1]:
        keep = torch.sort(moved.to(torch.int8), dim=1, descending=True, stable=True).indices[:, :m]
        x, y_prev, y_now = _take(x, keep), _take(y_prev, keep), _take(y_now, keep)
        m_prev, m_now = m_prev.gather(1, keep), m_now.gather(1, keep)
        kept = moved.gather(1, keep)  # padding slots of learners with fewer moved atoms carry no mass
        m_prev, m_now = torch.where(kept, m_prev, 0.0), torch.where(kept, m_now, 0.0)
    directions = directions.to(x.dtype)
    d = x.shape[-1]
    # project the features once and the two label sets separately: (B, L, 2m) positions of P's and Q's atoms
    zx = torch.matmul(x, directions[:, :d].T)
    z = torch.cat([zx + torch.matmul(y_prev, directions[:, d:].T), zx + torch.matmul(y_now, directions[:, d:].T)],
                  dim=1).transpose(1, 2).contiguous()
    signed = torch.cat([m_prev, -m_now], dim=1)  # P minus Q on the union of support points
    if z.device.type == "cpu":  # numpy's argsort of many short rows is several times faster than torch's sort here
        order = torch.from_numpy(np.argsort(z.numpy(), axis=-1))
        zs = z.gather(-1, order)
    else:
        zs, order = z.sort(dim=-1)
    cdf = signed.unsqueeze(1).expand_as(z).gather(-1, order).cumsum(-1)
    return (cdf[..., :-1].abs() * zs.diff(dim=-1)).sum(-1).mean(-1)


class _Tracker:
    """The batched bookkeeping of the diagnostics for a vector env (B learners)."""

    def __init__(self, env: Any, distance: str, tol: float, window: int, max_period: int, theta_limit: float,
                 n_projections: int, seed: int, stationary_window: int = 50, stationary_tol: float = 0.8) -> None:
        values = {"distance": distance, "tol": tol, "window": window, "max_period": max_period,
                  "theta_limit": theta_limit, "n_projections": n_projections, "seed": seed,
                  "stationary_window": stationary_window, "stationary_tol": stationary_tol}
        for name, spec in ARGUMENTS.items():
            spec.check(name, values[name])
        if max_period > window:
            raise ValueError(f"window={window!r} and max_period={max_period!r} must satisfy 2 <= max_period <= window")
        self.env, self.distance, self.tol, self.window = env, distance, tol, window
        self.max_period, self.theta_limit = max_period, theta_limit
        self.stationary_window, self.stationary_tol = stationary_window, stationary_tol
        solver_tol = getattr(env, "solver_tolerance", None)
        if solver_tol is not None and getattr(env.config, "solver", None) != "irls" and solver_tol > 1e-3 * tol:
            warnings.warn(
                f"the env's refit stops at gradient norm {solver_tol:g}, not at least 1e3 below the verdict's "
                f"tol={tol:g}: a run may count as converged because the warm-started refit stops moving, not because "
                "the loop settled. Create the env with a smaller tol (the float64 default is 1e-12) or give the "
                "diagnostics a larger one.", stacklevel=3)
        theta = env.parameters()
        if distance != "theta":
            try:
                x, _, _ = env.training_measure()
            except NotImplementedError as exc:
                raise ValueError(f"distance={distance!r} needs a finite training measure: {exc}") from exc
            generator = torch.Generator().manual_seed(seed)
            dirs = torch.randn(n_projections, x.shape[-1] + env.training_measure()[1].shape[-1], generator=generator,
                               dtype=torch.float64)
            self.directions = (dirs / dirs.norm(dim=1, keepdim=True)).to(theta.device)
        B, P = theta.shape
        self.B = B
        generator = torch.Generator().manual_seed(seed + 1)
        dirs = torch.randn(n_projections, P, generator=generator, dtype=torch.float64)
        self.theta_directions = (dirs / dirs.norm(dim=1, keepdim=True)).to(theta.device, theta.dtype)
        self.projections = torch.zeros(B, 2 * stationary_window, n_projections, dtype=theta.dtype,
                                       device=theta.device)
        self.theta_sum = torch.zeros(B, P, dtype=torch.float64, device=theta.device)
        self.cadence = max(1, stationary_window // 5)
        """Steps between a learner's window tests (exact long cycles, stationarity)."""
        self._long_lag = torch.zeros(B, dtype=torch.int64, device=theta.device)
        self._stationarity = torch.full((B,), torch.inf, dtype=theta.dtype, device=theta.device)
        self.thetas = torch.zeros(B, window + 1, P, dtype=theta.dtype, device=theta.device)
        self.ds = torch.zeros(B, window, dtype=theta.dtype, device=theta.device)
        self.count = torch.zeros(B, dtype=torch.int64, device=theta.device)
        self.verdict = torch.zeros(B, dtype=torch.int64, device=theta.device)
        self._why: dict[str, Tensor] | None = None
        self._x = None
        self._y = self._m = None

    def restart(self, rows: Tensor) -> None:
        """Learners ``rows`` began a new episode: forget their history and take their current state."""
        theta = self.env.parameters()
        self.thetas = torch.where(rows.view(-1, 1, 1), theta.unsqueeze(1).expand_as(self.thetas), self.thetas)
        self.ds = torch.where(rows.unsqueeze(1), 0.0, self.ds)
        self.count = torch.where(rows, 0, self.count)
        self.verdict = torch.where(rows, 0, self.verdict)
        self.projections = torch.where(rows.view(-1, 1, 1), 0.0, self.projections)
        self.theta_sum = torch.where(rows.unsqueeze(1), 0.0, self.theta_sum)
        self._long_lag = torch.where(rows, 0, self._long_lag)
        self._stationarity = torch.where(rows, torch.inf, self._stationarity)
        if self.distance != "theta":
            x, y, m = self.env.training_measure()
            if self._x is None:
                self._x, self._y, self._m = x, y, m
            else:
                r3 = rows.view(-1, 1, 1)
                self._x = torch.where(r3, x, self._x)
                self._y = torch.where(r3, y, self._y)
                self._m = torch.where(rows.unsqueeze(1), m, self._m)
        if self._why is not None:
            self._why["seen"] = self._why["seen"] & ~rows

    def update(self, stepped: Tensor) -> dict[str, Tensor]:
        """Diagnostics after a step of learners ``stepped`` (the others keep their values)."""
        theta = self.env.parameters()
        every = bool(stepped.all())  # the common case: no masked merges needed
        previous = self.thetas[:, -1]
        theta_step = (theta - previous).norm(dim=1)
        theta_step = torch.where(torch.isfinite(theta_step), theta_step, torch.zeros_like(theta_step))
        w1 = torch.zeros_like(theta_step)
        if self.distance != "theta":
            _, y, m = self.env.training_measure(with_features=False)
            if self.distance == "exact":
                w1 = exact_w1(self._x, self._y, self._m, y, m)
            else:
                x0, y0, m0 = self._x, self._y, self._m
                def fallback(i: Tensor) -> Tensor:
                    if len(i) == self.B:
                        return sliced_w1(x0, y0, m0, y, m, self.directions)
                    return sliced_w1(x0[i], y0[i], m0[i], y[i], m[i], self.directions)

                w1 = exact_w1(x0, y0, m0, y, m, fallback=fallback)
            if every:
                self._y, self._m = y, m
            else:
                self._y = torch.where(stepped.view(-1, 1, 1), y, self._y)
                self._m = torch.where(stepped.unsqueeze(1), m, self._m)
        d = theta_step + w1
        d_prev = self.ds[:, -1]
        has_prev = (self.count >= 1) & (d_prev > 0)
        ratio = torch.where(has_prev, d / torch.where(has_prev, d_prev, 1.0), 0.0)
        ds = torch.cat([self.ds[:, 1:], d.unsqueeze(1)], 1)
        thetas = torch.cat([self.thetas[:, 1:], theta.unsqueeze(1)], 1)
        finite_theta = torch.where(torch.isfinite(theta), theta, 0.0)
        # the projections of theta in a ring buffer: learner b's step number count[b] goes to slot count[b] % n
        idx = torch.arange(self.B, device=theta.device) if every else torch.nonzero(stepped).squeeze(1)
        slot = self.count[idx] % self.projections.shape[1]
        self.projections[idx, slot] = (finite_theta[idx] @ self.theta_directions.T)
        if every:
            self.ds, self.thetas = ds, thetas
            self.theta_sum = self.theta_sum + finite_theta.to(torch.float64)
        else:
            live = stepped.unsqueeze(1)
            self.ds = torch.where(live, ds, self.ds)
            self.thetas = torch.where(live.unsqueeze(-1), thetas, self.thetas)
            self.theta_sum = torch.where(live, self.theta_sum + finite_theta.to(torch.float64), self.theta_sum)
        self.count = self.count + stepped.long()
        w = self.window
        full = self.count >= w
        first = self.ds[:, 0]
        rate_ok = full & (first > 0) & (d > 0)
        rate = torch.where(rate_ok, (d / torch.where(rate_ok, first, 1.0)).clamp_min(1e-300) ** (1.0 / (w - 1)),
                           0.0)
        distance = torch.where(rate_ok & (rate < 1), d * rate / (1 - torch.where(rate < 1, rate, 0.0)), d)
        period = self._judge(theta, d, distance, rate, rate_ok, full, stepped, every)
        return {"theta_step": theta_step, "w1": w1, "d": d, "step_ratio": ratio, "rate": rate,
                "distance": distance, "period": period, "verdict": self.verdict.clone()}, \
            {"step_ratio": has_prev & stepped, "rate": rate_ok & stepped}

    def _chronological(self, idx: Tensor) -> Tensor:
        """The projection history of learners ``idx``, oldest first: (len(idx), 2 * stationary_window, L)."""
        n = self.projections.shape[1]
        order = (self.count[idx].unsqueeze(1) + torch.arange(n, device=idx.device)) % n
        return self.projections[idx].gather(1, order.unsqueeze(-1).expand(-1, -1, self.projections.shape[-1]))

    def stationarity(self, rows: Tensor | None = None) -> Tensor:
        """(B,) W1 between the empirical laws of theta over the last two ``stationary_window`` windows (sliced over
        the random directions) divided by the projections' mean absolute deviation over both; inf before
        2 * stationary_window steps, and for learners outside ``rows`` (B,) bool when given (only those are
        computed)."""
        w = self.stationary_window
        out = torch.full((self.B,), torch.inf, dtype=self.projections.dtype, device=self.projections.device)
        ready = self.count >= 2 * w if rows is None else rows & (self.count >= 2 * w)
        if not bool(ready.any()):
            return out
        idx = torch.nonzero(ready).squeeze(1)
        p = self._chronological(idx)
        early, late = p[:, :w].sort(dim=1).values, p[:, w:].sort(dim=1).values
        w1 = (early - late).abs().mean((1, 2))
        spread = (p - p.mean(1, keepdim=True)).abs().mean((1, 2))
        ratio = torch.where(spread > 0, w1 / torch.where(spread > 0, spread, 1.0), torch.where(w1 > 0, torch.inf, 0.0))
        return out.index_copy(0, idx, ratio)

    def _exact_cycle(self, rows: Tensor) -> Tensor:
        """(B,) the smallest lag p in (max_period, 2 * stationary_window - 1) at which the last two parameters repeat
        those p steps earlier exactly (to 1e-9 relative, in the random projections): a deterministic loop on finitely
        many training sets (argmax selection with a buffer) ends in such a cycle, often longer than the window's
        test sees; 0 where there is none, and for learners outside ``rows`` (B,) bool (only those are searched)."""
        out = torch.zeros(self.B, dtype=torch.int64, device=self.projections.device)
        n = self.projections.shape[1]
        longest = min(n - 2, int(self.count.max()) - 2)
        rows = rows & (self.count >= self.max_period + 3)
        if longest <= self.max_period or not bool(rows.any()):
            return out
        idx = torch.nonzero(rows).squeeze(1)
        p = self._chronological(idx)
        lags = torch.arange(self.max_period + 1, longest + 1, device=p.device)
        scale = 1e-9 * (1.0 + p[:, -1].abs().amax(-1, keepdim=True))
        last = (p[:, -1:] - p[:, n - 1 - lags]).abs().amax(-1) <= scale  # (b, lags)
        before = (p[:, -2:-1] - p[:, n - 2 - lags]).abs().amax(-1) <= scale
        seen = self.count[idx].unsqueeze(1) >= lags.unsqueeze(0) + 2
        match = last & before & seen
        first = torch.where(match, lags.unsqueeze(0), n).amin(1)
        return out.index_copy(0, idx, torch.where(first < n, first, 0))

    def _judge(self, theta: Tensor, d: Tensor, distance: Tensor, rate: Tensor, rate_ok: Tensor, full: Tensor,
               stepped: Tensor, every: bool) -> Tensor:
        norm = theta.norm(dim=1)
        finite = torch.isfinite(theta).all(1)
        huge = norm > self.theta_limit
        old_norm = self.thetas[:, 1].norm(dim=1)
        growing = full & (norm > 10.0 * old_norm.clamp_min(1e-12)) & rate_ok & (rate > 1.0)
        diverging = ~finite | huge | growing
        converged = finite & (distance <= self.tol)
        recent = (self.thetas[:, -1] - self.thetas[:, -2]).norm(dim=1)
        back = torch.stack([(self.thetas[:, -1] - self.thetas[:, -1 - lag]).norm(dim=1)
                            for lag in range(2, self.max_period + 1)], 1)
        closest, lag = back.min(1)
        recurrent = full & (closest <= 0.1 * recent) & (recent > self.tol)
        stalled = rate_ok & (rate >= 0.95)
        oscillating = recurrent & (stalled | ~rate_ok)
        # the window tests only where the verdict is open, and every `cadence` steps of a learner (their cost):
        # between, each learner keeps its last result
        open_rows = ~diverging & ~converged & ~oscillating
        due = open_rows & stepped & (self.count % self.cadence == 0)
        if bool(due.any()):
            lag_now = self._exact_cycle(due & (recent > self.tol))
            self._long_lag = torch.where(due, lag_now, self._long_lag)
            ratio_now = self.stationarity(due & (lag_now == 0))
            self._stationarity = torch.where(due, ratio_now, self._stationarity)
        long_lag = self._long_lag
        long_cycle = open_rows & (long_lag > 0)
        oscillating = oscillating | long_cycle
        stationarity = torch.where(open_rows & ~long_cycle, self._stationarity, torch.inf)
        stationary = stationarity <= self.stationary_tol
        verdict = torch.where(diverging, 3, torch.where(converged, 1, torch.where(
            oscillating, 2, torch.where(stationary, 4, 0))))
        self.verdict = verdict if every else torch.where(stepped, verdict, self.verdict)
        period = torch.where(verdict == 2, torch.where(long_cycle, long_lag, lag + 2), 0)
        # the figures behind each verdict, kept per learner; reasons() puts them into words only when asked
        fresh = {"d": d, "distance": distance, "rate": rate, "rate_ok": rate_ok, "norm": norm, "finite": finite,
                 "huge": huge, "closest": closest, "recent": recent, "lag": lag, "verdict": verdict, "full": full,
                 "stationarity": stationarity, "period": period, "long": long_cycle,
                 "seen": torch.ones_like(stepped)}
        if every:
            self._why = fresh
        elif self._why is None:
            self._why = {k: torch.where(stepped, v, torch.zeros_like(v)) for k, v in fresh.items()}
        else:
            self._why = {k: torch.where(stepped, v, self._why[k]) for k, v in fresh.items()}
        return period

    def _explain(self, b: int, values: dict[str, Tensor]) -> str:
        if not bool(values["seen"][b]):
            return "no steps yet"
        v = int(values["verdict"][b])
        rate_txt = f"rate {float(values['rate'][b]):.3g}" if bool(values["rate_ok"][b]) else "rate not yet known"
        if v == 3:
            why = ("theta is not finite" if not bool(values["finite"][b]) else
                   f"|theta| = {float(values['norm'][b]):.3g} > {self.theta_limit:g}" if bool(values["huge"][b])
                   else f"|theta| grew more than tenfold over {self.window} steps ({rate_txt})")
        elif v == 1:
            why = (f"estimated distance to the fixed point {float(values['distance'][b]):.3g} <= tol = {self.tol:g} "
                   f"(d_t = {float(values['d'][b]):.3g}; {rate_txt})")
        elif v == 2 and bool(values["long"][b]):
            period = int(values["period"][b])
            why = (f"the last two parameters repeat those {period} steps earlier exactly (last step "
                   f"{float(values['recent'][b]):.3g}): a cycle of period {period}")
        elif v == 2:
            period = int(values["lag"][b]) + 2
            why = (f"theta returns within {float(values['closest'][b]):.3g} of its value {period} steps earlier "
                   f"(last step {float(values['recent'][b]):.3g}): a cycle of period {period}; {rate_txt}")
        elif v == 4:
            why = (f"the law of theta over the last {self.stationary_window} steps is within "
                   f"{float(values['stationarity'][b]):.3g} x its spread of the law over the {self.stationary_window} "
                   f"before (<= stationary_tol = {self.stationary_tol:g}): stationary in distribution; d_t = "
                   f"{float(values['d'][b]):.3g} (report the time-averaged theta)")
        else:
            why = (f"estimated distance to the fixed point {float(values['distance'][b]):.3g} > tol; {rate_txt}"
                   + ("" if bool(values["full"][b]) else f"; fewer than {self.window} steps seen"))
        return f"{VERDICTS[v]}: {why}"

    def time_average(self) -> Tensor:
        """(B, P) float64 the mean of theta over the steps since each learner's episode began (zeros before a
        step)."""
        return self.theta_sum / self.count.clamp_min(1).to(torch.float64).unsqueeze(1)

    def reasons(self) -> list[str]:
        if self._why is None:
            return ["no steps yet"] * self.B
        values = {k: v.detach().cpu() for k, v in self._why.items()}
        return [self._explain(b, values) for b in range(self.B)]


class ConvergenceDiagnostics(VectorWrapper):
    """Add convergence diagnostics to the ``info`` of a batched env (see the module docstring for the quantities).

    Given a single ``gymnasium.Env`` of the suite it returns a :class:`SingleConvergenceDiagnostics` instead, which
    does the same for its one learner.

    Args:
        env: a vector env of the suite (``gym.make_vec(..., vectorization_mode="vector_entry_point")``), or a single
            env from ``gym.make``.
        distance: ``"exact"`` (default), ``"sliced"`` or ``"theta"``.
        tol: ``d_t`` at or below it counts as converged (1e-8).
        window: steps over which the rate and the cycle test look back (10).
        max_period: longest cycle the oscillation test looks for (4).
        theta_limit: ``|theta|`` above it counts as diverging (1e6).
        n_projections: directions of the sliced distance and of the stationarity test (16), drawn from ``seed``
            (0).
        stationary_window: the two windows (of this many steps each) the stationarity test compares (50).
        stationary_tol: the largest ratio of their W1 to the spread that counts as stationary (0.8).
    """

    def __new__(cls, env: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(env, VectorEnv):
            return SingleConvergenceDiagnostics(env, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, env: VectorEnv, distance: str = "exact", tol: float = 1e-8, window: int = 10,
                 max_period: int = 4, theta_limit: float = 1e6, n_projections: int = 16, seed: int = 0,
                 stationary_window: int = 50, stationary_tol: float = 0.8) -> None:
        super().__init__(env)
        self.tracker = _Tracker(env.unwrapped, distance, tol, window, max_period, theta_limit, n_projections, seed,
                                stationary_window, stationary_tol)
        self._started = False

    def reset(self, *, seed: Any = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        rows = None if options is None else options.get("reset_mask")
        base = self.env.unwrapped
        mask = torch.ones(base.num_envs, dtype=torch.bool, device=base.device) if rows is None or not self._started \
            else torch.as_tensor(rows, device=base.device)
        self.tracker.restart(mask)
        self._started = True
        return obs, info

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        base = self.env.unwrapped
        restarting = base._needs_reset.clone()
        obs, reward, terminated, truncated, info = self.env.step(actions)
        mode = base.metadata["autoreset_mode"]
        if mode == gym.vector.AutoresetMode.NEXT_STEP:
            stepped, restart = ~restarting, restarting
        elif mode == gym.vector.AutoresetMode.SAME_STEP:  # ended learners were reset within the step
            restart = torch.as_tensor(terminated | truncated, device=restarting.device)
            stepped = ~restart
        else:
            stepped, restart = torch.ones_like(restarting), None
        values, masks = self.tracker.update(stepped)
        if restart is not None and bool(restart.any()):
            self.tracker.restart(restart)
        info = dict(info)
        for key, value in values.items():
            info[key] = value
            info["_" + key] = masks.get(key, stepped)
        return obs, reward, terminated, truncated, info

    def reasons(self) -> list[str]:
        """Each learner's current verdict, in words."""
        return self.tracker.reasons()

    def time_average(self) -> Tensor:
        """(B, P) each learner's theta averaged over the steps of its episode so far: the quantity to report for
        randomized selection, whose iterates are stationary in distribution rather than settled."""
        return self.tracker.time_average()

    @property
    def verdict_names(self) -> tuple[str, ...]:
        return VERDICTS


class SingleConvergenceDiagnostics(gym.Wrapper):
    """The diagnostics for a single env of the suite (its batched engine with one learner); info values are floats."""

    def __init__(self, env: gym.Env, distance: str = "exact", tol: float = 1e-8, window: int = 10,
                 max_period: int = 4, theta_limit: float = 1e6, n_projections: int = 16, seed: int = 0,
                 stationary_window: int = 50, stationary_tol: float = 0.8) -> None:
        super().__init__(env)
        vector = getattr(env.unwrapped, "vector_env", None)
        if vector is None:
            raise ValueError("ConvergenceDiagnostics needs an environment of the reciprocal_gym suite")
        self.tracker = _Tracker(vector, distance, tol, window, max_period, theta_limit, n_projections, seed,
                                stationary_window, stationary_tol)

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.tracker.restart(torch.ones(1, dtype=torch.bool))
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        values, masks = self.tracker.update(torch.ones(1, dtype=torch.bool))
        info = dict(info)
        for key, value in values.items():
            if bool(masks.get(key, torch.ones(1, dtype=torch.bool))[0]):
                item = value[0].item()
                info[key] = VERDICTS[item] if key == "verdict" else item
        info["verdict_reason"] = self.tracker.reasons()[0]
        return obs, reward, terminated, truncated, info

    def reasons(self) -> list[str]:
        return self.tracker.reasons()

    def time_average(self) -> np.ndarray:
        """(P,) theta averaged over the episode's steps so far."""
        return self.tracker.time_average()[0].cpu().numpy()


def geometric_rate(d: np.ndarray) -> float | None:
    """Least-squares slope of log d_t against t, as a per-step factor (None with fewer than 2 positive d_t)."""
    d = np.asarray(d, dtype=np.float64)
    keep = d > 0
    if keep.sum() < 2:
        return None
    t = np.flatnonzero(keep)
    return float(np.exp(np.polyfit(t, np.log(d[keep]), 1)[0]))
