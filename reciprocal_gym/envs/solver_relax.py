"""``Reciprocal-SolverRelax-v0``: choosing SOR's relaxation parameter across a sequence of linear systems.

After Khodak et al., "Learning to Relax: Setting Solver Parameters Across a Sequence of Linear System Instances"
(ICLR 2024): the same kind of sparse SPD system is solved again and again with slowly changing coefficients, and a
learner picks the relaxation parameter omega of successive over-relaxation for each one from the costs it saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector.utils import batch_space
from torch import Tensor

from reciprocal_gym.arguments import Choice, Flag, Integer, PerLearner, Real, check_settings, setting
from reciprocal_gym.core import random as crandom
from reciprocal_gym.core.arm_history import ArmHistory
from reciprocal_gym.core.sor import jacobi_radius, optimal_omega, sor_iterations
from reciprocal_gym.core.sor_kernel import sor_iterations_compiled
from reciprocal_gym.data.datasets import real_array
from reciprocal_gym.envs import checkpoint as ckpt
from reciprocal_gym.envs.backend import BACKENDS, solver_backend
from reciprocal_gym.envs.base import (
    FLOAT32_MAX,
    BatchedVectorEnv,
    SingleEnv,
    discrete_actions,
    register_env,
    resolve_dtype,
)
from reciprocal_gym.envs.scoring import Scoring

HISTORIES = ("full", "window")


@dataclass(frozen=True)
class SolverRelaxConfig:
    """Validated settings of the solver-parameter environment (see :class:`SolverRelaxVectorEnv`)."""

    grid: int = setting(8, Integer(2, 256))
    omegas: Any = None
    tol: float = setting(1e-6, Real(0.0, 1.0, open_low=True, open_high=True))
    max_iter: int = setting(500, Integer(1, 1_000_000))
    # the coefficients are exp(+-a / 2) with a ~ N(0, anisotropy_std^2): the bound keeps them finite in float32
    anisotropy_std: float = setting(1.0, Real(0.0, 10.0))
    persistence: float = setting(0.9, Real(0.0, 1.0))
    shift_max: float = setting(0.5, Real(0.0, 1e6))
    history: str = setting("full", Choice(HISTORIES))
    window: int = setting(20, Integer(1, 1_000_000))
    lam: float = setting(1.0, PerLearner(0.0, 1e8))
    context: bool = setting(True, Flag())
    report_best: bool = setting(False, Flag())
    max_steps: int = setting(100, Integer(1, 2**31 - 1))
    dtype: Any = torch.float64
    backend: str = setting("auto", Choice(BACKENDS))

    def __post_init__(self) -> None:
        check_settings(self)
        resolve_dtype(self.dtype)
        omegas = self.omega_grid
        if omegas.ndim != 1 or len(omegas) < 2 or not np.isfinite(omegas).all():
            raise ValueError(f"omegas must be a 1-D array of at least 2 finite values, got {self.omegas!r}")
        if ((omegas <= 0) | (omegas >= 2)).any():
            raise ValueError("omegas must lie in (0, 2), where SOR converges for SPD systems")

    @property
    def omega_grid(self) -> np.ndarray:
        """The relaxation parameters to choose from (default: 1.0, 1.05, ..., 1.95)."""
        return np.round(np.arange(1.0, 1.96, 0.05), 10) if self.omegas is None else real_array("omegas", self.omegas)


@dataclass(frozen=True, slots=True)
class SolverRelaxState:
    """The state of B solver-tuning learners (tensors with the learner dimension first). Immutable: a reset and a
    step build a new one."""

    history: ArmHistory
    """The (omega index, sweeps) history in use."""
    theta: Tensor
    """(B, n_omega) ridge mean sweeps per omega (the model)."""
    log_anisotropy: Tensor
    """(B,) the current system's log anisotropy."""
    shift: Tensor
    """(B,) the current system's shift."""
    b: Tensor
    """(B, grid, grid) the current right-hand side."""
    steps: Tensor
    """(B,) int64 systems solved in the episode."""
    keys: Tensor
    """(B, 3) int32 stream keys: anisotropy, shift, right-hand side."""


class SolverRelaxVectorEnv(BatchedVectorEnv):
    """Set SOR's relaxation parameter for each system of a sequence: the data are the (omega, cost) history.

    ## Description

    Each step brings a new sparse SPD system ``A_t x = b_t``: the 5-point discretisation of anisotropic diffusion
    on a ``grid x grid`` interior grid, ``A_t = ax_t (T (x) I) + ay_t (I (x) T) + shift_t I`` (see
    :mod:`reciprocal_gym.core.sor`). The coefficients drift: ``ax_t = exp(a_t / 2)``, ``ay_t = exp(-a_t / 2)`` with
    the log-anisotropy ``a_t`` an AR(1) process (``a_t = persistence * a_{t-1} + sqrt(1 - persistence^2) *
    anisotropy_std * N(0, 1)``, stationary from the start), ``shift_t`` uniform in ``[0, shift_max]``, and
    ``b_t ~ N(0, I)``. The agent picks omega from a grid; the environment runs SOR (red-black order, from x = 0)
    until the relative residual is below ``tol`` and reports the number of sweeps. The learner's data are the
    (omega, cost) pairs seen so far (``history="full"``) or in the last ``window`` steps; its parameters are the
    ridge-regularized mean cost per omega, ``theta_k = S_k / (n_k + lam)`` in sweeps.

    ## Action Space

    ``Discrete(len(omegas))``: the index of omega in the grid (``omegas``; default 1.0, 1.05, ..., 1.95).

    ## Observation Space

    A ``Dict`` (float32):

    - ``"theta"``: ``(n_omega,)`` ridge mean cost (sweeps) per omega over the history in use.
    - ``"counts"``: ``(n_omega,)`` times each omega was used in the history in use.
    - ``"context"`` (if ``context=True``): ``(3,)`` features of the next system: log-anisotropy ``a_t``,
      ``shift_t``, and the Jacobi spectral radius of ``A_t``.
    - ``"step"``: ``(1,)`` the step in the episode.

    ## Rewards

    Minus the number of SOR sweeps for the system of this step (``-max_iter`` if SOR did not reach ``tol``).

    ## Episode End

    Never terminated; truncated after ``max_steps`` systems. Autoreset as declared in ``metadata["autoreset_mode"]``.

    ## Info

    Per learner: ``iterations`` (sweeps), ``converged``, ``omega`` (the value used), ``omega_star`` (Young's optimal
    omega for this system, from the closed-form Jacobi radius), and with ``report_best=True`` ``best_iterations``
    (the fewest sweeps over the grid, found by running SOR with every omega; costs ``len(omegas)`` solves) and
    ``regret`` (``iterations - best_iterations``).

    ## Arguments

    - ``num_envs`` (vector env only). ``grid`` (8): interior points per side (``grid**2`` unknowns).
    - ``omegas``: the grid of relaxation parameters in (0, 2). ``tol`` (1e-6), ``max_iter`` (500).
    - ``anisotropy_std`` (1.0), ``persistence`` (0.9, in [0, 1]), ``shift_max`` (0.5): the system sequence.
    - ``history`` (``"full"`` or ``"window"``), ``window`` (20), ``lam`` (1.0, >= 0; a number or one per
      learner).
    - ``context`` (True), ``report_best`` (False), ``max_steps`` (100), ``device``, ``dtype`` (``torch.float64``),
      ``autoreset_mode``.
    - ``backend`` (``"auto"``): ``"compiled"`` SOR solves system by system on the CPU in float64 (the same sweeps and
      iteration counts as the batched torch sweeps, about 60x faster), ``"torch"``, or ``"auto"`` (compiled where
      available); see :mod:`reciprocal_gym.envs.backend`.
    """

    config_class = SolverRelaxConfig
    env_id = "Reciprocal-SolverRelax-v0"
    scoring = Scoring(
        kind="solver", metrics=("iterations",), accumulate=True, higher_is_better=False,
        reference_metric="best_iterations", labels={"iterations": "cumulative SOR iterations"},
        required={"report_best": (True, "a solver task is scored against the best omega in hindsight")},
        long_run={"max_steps": 10**6},
    )

    def _setup(self) -> None:
        cfg = self.config
        dt = self.dtype
        B, dev = self.num_envs, self.device
        self.omegas = torch.as_tensor(cfg.omega_grid, dtype=dt, device=dev)
        self.n_omega = len(self.omegas)
        self._build_spaces()
        self.state = SolverRelaxState(
            history=ArmHistory.empty(B, self.n_omega, cfg.window if cfg.history == "window" else None, dt, dev),
            theta=torch.zeros(B, self.n_omega, dtype=dt, device=dev),
            log_anisotropy=torch.zeros(B, dtype=dt, device=dev),
            shift=torch.zeros(B, dtype=dt, device=dev),
            b=torch.zeros(B, cfg.grid, cfg.grid, dtype=dt, device=dev),
            steps=torch.zeros(B, dtype=torch.int64, device=dev),
            keys=torch.zeros(B, 3, dtype=torch.int32, device=dev),
        )
        self._lam = self.learner_setting("lam")  # float, or (B,) one per learner
        self.backend = solver_backend(self.config.backend, self.device, self.dtype)
        self._sor = sor_iterations_compiled if self.backend.sor else sor_iterations

    def _check_state(self, state: SolverRelaxState) -> None:
        ckpt.check_range("state.steps", state.steps, 0, self.config.max_steps + 1)
        if state.history.window_arm is not None:
            ckpt.check_range("state.history.window_arm", state.history.window_arm, 0, self.n_omega)
        if bool((state.history.counts < 0).any()):
            raise ckpt.CheckpointError("checkpoint field 'state.history.counts' holds negative counts")

    def _build_spaces(self) -> None:
        cfg, K = self.config, self.n_omega
        cap = float(cfg.window if cfg.history == "window" else cfg.max_steps)
        obs: dict[str, spaces.Space] = {
            "theta": spaces.Box(0.0, float(cfg.max_iter), (K,), np.float32),
            "counts": spaces.Box(0.0, cap, (K,), np.float32),
        }
        if cfg.context:
            low = np.array([-FLOAT32_MAX, 0.0, 0.0], np.float32)
            high = np.array([FLOAT32_MAX, cfg.shift_max, 1.0], np.float32)
            obs["context"] = spaces.Box(low, high, dtype=np.float32)
        obs["step"] = spaces.Box(0.0, float(cfg.max_steps), (1,), np.float32)
        self.single_observation_space = spaces.Dict(obs)
        self.single_action_space = spaces.Discrete(K)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    # ----- the system sequence --------------------------------------------------------------------------------
    def _coefficients(self) -> tuple[Tensor, Tensor, Tensor]:
        half = 0.5 * self.state.log_anisotropy
        return torch.exp(half), torch.exp(-half), self.state.shift

    def _draw_system(self, state: SolverRelaxState, rows: Tensor, first: bool) -> SolverRelaxState:
        """``state`` with the system of step ``steps`` for learners ``rows`` (counter-based: batch-independent)."""
        cfg, m = self.config, self.config.grid
        z = crandom.normal(state.keys[:, 0], state.steps, self.dtype)
        if first:
            a = cfg.anisotropy_std * z
        else:
            rho = cfg.persistence
            a = rho * state.log_anisotropy + math.sqrt(1.0 - rho * rho) * cfg.anisotropy_std * z
        shift = cfg.shift_max * crandom.uniform(state.keys[:, 1], state.steps, self.dtype)
        counter = state.steps.unsqueeze(1) * (m * m) + torch.arange(m * m, device=self.device)
        b = crandom.normal(state.keys[:, 2:], counter, self.dtype).view(-1, m, m)
        return replace(state, log_anisotropy=torch.where(rows, a, state.log_anisotropy),
                       shift=torch.where(rows, shift, state.shift), b=torch.where(rows.view(-1, 1, 1), b, state.b))

    # ----- episode start --------------------------------------------------------------------------------------
    def _reset_rows(self, rows: Tensor, rngs: dict[int, np.random.Generator]) -> dict[str, Tensor]:
        learners = torch.as_tensor(list(rngs), dtype=torch.int64, device=self.device)
        st = self.state
        keys_all = st.keys
        if len(learners):
            keys_all = keys_all.index_put((learners,), crandom.draw_stream_keys(list(rngs.values()), [20, 21, 22],
                                                                                 self.device))
        history = st.history.cleared(rows)
        st = replace(st, keys=keys_all, history=history, theta=history.means(self._lam),
                     steps=torch.where(rows, 0, st.steps))
        self.state = self._draw_system(st, rows, first=True)
        values = {
            "iterations": torch.zeros_like(self.state.steps),
            "converged": torch.ones_like(rows),
            "omega": torch.zeros_like(self.state.shift),
            "omega_star": torch.zeros_like(self.state.shift),
        }
        if self.config.report_best:
            values["best_iterations"] = torch.zeros_like(self.state.steps)
            values["regret"] = torch.zeros_like(self.state.steps)
        return values

    # ----- the step -------------------------------------------------------------------------------------------
    def _check_actions(self, actions: Any) -> Tensor:
        return discrete_actions(actions, self.num_envs, self.n_omega, self.device, "an omega index")

    def _solve(self, omega: Tensor) -> tuple[Tensor, Tensor]:
        cfg = self.config
        ax, ay, shift = self._coefficients()
        return self._sor(self.state.b, omega, ax, ay, shift, cfg.tol, cfg.max_iter)

    def _best_iterations(self) -> Tensor:
        """Fewest sweeps over the omega grid for the current systems (one batched solve of B * n_omega systems)."""
        cfg, K = self.config, self.n_omega
        ax, ay, shift = (c.repeat_interleave(K) for c in self._coefficients())
        b = self.state.b.repeat_interleave(K, dim=0)
        omega = self.omegas.repeat(self.num_envs)
        iterations, _ = self._sor(b, omega, ax, ay, shift, cfg.tol, cfg.max_iter)
        return iterations.view(-1, K).min(1).values

    def _step_rows(self, actions: Any, rows: Tensor) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        cfg = self.config
        a = self._check_actions(actions)
        omega = self.omegas[a]
        iterations, converged = self._solve(omega)
        ax, ay, shift = self._coefficients()
        info = {"iterations": iterations, "converged": converged, "omega": omega,
                "omega_star": optimal_omega(cfg.grid, ax, ay, shift)}
        if cfg.report_best:
            best = self._best_iterations()
            info["best_iterations"] = best
            info["regret"] = iterations - best
        cost = iterations.to(self.dtype)
        st = self.state
        history = st.history.record(st.steps, a, cost, rows)
        st = replace(st, history=history, theta=history.means(self._lam), steps=st.steps + rows.long())
        self.state = self._draw_system(st, rows, first=False)
        reward = torch.where(rows, -cost, 0.0)
        truncated = rows & (self.state.steps >= cfg.max_steps)
        return reward, torch.zeros_like(truncated), truncated, info

    def _observe(self) -> dict[str, Tensor]:
        f32 = torch.float32
        obs = {"theta": self.state.theta.to(f32), "counts": self.state.history.counts.to(f32)}
        if self.config.context:
            ax, ay, shift = self._coefficients()
            rho = jacobi_radius(self.config.grid, ax, ay, shift)
            obs["context"] = torch.stack([self.state.log_anisotropy, self.state.shift, rho], 1).to(f32)
        obs["step"] = self.state.steps.to(f32).unsqueeze(1)
        return obs


    def parameters(self) -> Tensor:
        return self.state.theta


class SolverRelaxEnv(SingleEnv):
    __doc__ = SolverRelaxVectorEnv.__doc__
    vector_class = SolverRelaxVectorEnv


def register_solver_relax() -> None:
    register_env("Reciprocal-SolverRelax-v0", __name__, "SolverRelax")
