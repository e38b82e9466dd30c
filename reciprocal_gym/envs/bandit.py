"""``Reciprocal-Bandit-v0``: a K-armed bandit as reciprocal learning, batched over learners in torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector.utils import batch_space
from torch import Tensor

from reciprocal_gym.arguments import Choice, Integer, PerLearner, Real, check_settings, setting
from reciprocal_gym.core import random as crandom
from reciprocal_gym.core.arm_history import ArmHistory
from reciprocal_gym.data.datasets import real_array
from reciprocal_gym.envs import checkpoint as ckpt
from reciprocal_gym.envs.backend import BACKENDS, bandit_backend
from reciprocal_gym.envs.base import (
    BatchedVectorEnv,
    SingleEnv,
    action_tensor,
    discrete_actions,
    real_box,
    register_env,
    resolve_dtype,
)
from reciprocal_gym.envs.scoring import Scoring

REWARD_DISTS = ("bernoulli", "gaussian")
MAX_REWARD_SCALE = 1e6  # bound on |means|, prior_mean, prior_std, noise_std: float32 sums of rewards stay finite
HISTORIES = ("full", "window")
BANDIT_ADAPTATIONS = ("sample", "expected")


@dataclass(frozen=True)
class BanditConfig:
    """Validated settings of a bandit environment (see :class:`BanditVectorEnv` for the meaning)."""

    n_arms: int = setting(10, Integer(2, 100_000))
    reward_dist: str = setting("bernoulli", Choice(REWARD_DISTS))
    means: Any = None
    prior_mean: float = setting(0.0, Real(-MAX_REWARD_SCALE, MAX_REWARD_SCALE))
    prior_std: float = setting(1.0, Real(0.0, MAX_REWARD_SCALE))
    noise_std: float = setting(1.0, Real(0.0, MAX_REWARD_SCALE, open_low=True))
    history: str = setting("full", Choice(HISTORIES))
    window: int = setting(50, Integer(1, 1_000_000))
    lam: float = setting(1.0, PerLearner(0.0, 1e8))
    adaptation: str = setting("sample", Choice(BANDIT_ADAPTATIONS))
    max_steps: int = setting(1000, Integer(1, 2**31 - 1))
    dtype: Any = torch.float32
    backend: str = setting("auto", Choice(BACKENDS))

    def __post_init__(self) -> None:
        check_settings(self)
        resolve_dtype(self.dtype)
        if self.means is not None:
            means = real_array("means", self.means)
            if means.ndim not in (1, 2) or means.shape[-1] != self.n_arms:
                raise ValueError(f"means must have one entry per arm (shape ({self.n_arms},)), or one row per learner "
                                 f"(shape (num_envs, {self.n_arms})), got {means.shape}")
            if not np.isfinite(means).all() or np.abs(means).max() > MAX_REWARD_SCALE:
                raise ValueError(f"means must be finite with |means| <= {MAX_REWARD_SCALE:g}")
            if self.reward_dist == "bernoulli" and ((means < 0) | (means > 1)).any():
                raise ValueError("means of Bernoulli arms must lie in [0, 1]")


@dataclass(frozen=True, slots=True)
class BanditState:
    """The state of B bandit learners (tensors with the learner dimension first). Immutable: a reset and a step
    build a new one, which the env assigns at the end; a checkpoint is this object."""

    means: Tensor
    """(B, K) the arms' means in the current episode."""
    key: Tensor
    """(B,) int32 the learner's reward-noise stream key of the episode."""
    history: ArmHistory
    """The (arm, reward) history in use: counts and reward sums per arm (and the window ring buffer)."""
    pulls: Tensor
    """(B, K) pulls of each arm in the episode (the window's counts are ``history.counts``)."""
    theta: Tensor
    """(B, K) the ridge arm means ``S_k / (n_k + lam)``: the model."""
    steps: Tensor
    """(B,) int64 pulls in the episode."""
    cumulative_regret: Tensor
    """(B,) the episode's summed pseudo-regret."""


class BanditVectorEnv(BatchedVectorEnv):
    """A K-armed bandit as reciprocal learning: the data are the (arm, reward) history, the model the arm means.

    ## Description

    Each learner plays a K-armed bandit with Bernoulli or Gaussian rewards. Its training data are the (arm, reward)
    pairs of its history; its parameters are the ridge-regularized arm means, the ERM of the squared loss with a
    ridge penalty: ``theta_k = S_k / (n_k + lam)`` with ``n_k`` pulls and reward sum ``S_k`` of arm k in the history
    (``theta_k = 0`` when ``n_k + lam = 0``). The agent's action (the data selection) decides which arm's reward
    joins the data. ``history="full"`` keeps every pull (greedy, add-only); ``history="window"`` keeps the last
    ``window`` pulls (non-greedy: old data leave).

    ``adaptation="expected"`` is the mean-field version: the action is a distribution ``pi`` over arms and the
    history moves deterministically toward it: ``n <- n + pi``, ``S <- S + pi * mu`` (full), or
    ``n <- (1 - 1/window) n + pi``, ``S <- (1 - 1/window) S + pi * mu`` (window, an exponential window of effective
    size ``window``), with ``mu`` the true arm means. Its fixed points with a Boltzmann policy solve
    ``pi = softmax(theta(pi) / tau)``.

    Arm means are ``means`` if given, else drawn at each reset: Uniform(0, 1) (= Beta(1, 1)) for Bernoulli arms,
    Normal(``prior_mean``, ``prior_std``) for Gaussian arms. Gaussian rewards have standard deviation ``noise_std``.
    Rewards come from a counter-based generator keyed per learner (see :mod:`reciprocal_gym.core.random`), so a
    learner's rewards do not depend on the batch it is in.

    ## Action Space

    ``Discrete(n_arms)``: the arm to pull. In expected mode ``Box(0, 1, (n_arms,), float32)``: the selection
    distribution over arms (divided by its sum, which must be positive). An action outside the space raises
    ``ValueError``.

    ## Observation Space

    A ``Dict`` (float32):

    - ``"theta"``: ``(n_arms,)`` ridge arm means over the history in use.
    - ``"counts"``: ``(n_arms,)`` pulls of each arm in the history in use (the window statistics in window mode).
    - ``"pulls"``: ``(n_arms,)`` pulls of each arm since the episode began.
    - ``"step"``: ``(1,)`` the step in the episode.

    ## Rewards

    The pulled arm's reward (expected mode: the expected reward ``sum_k pi_k mu_k``).

    ## Episode End

    Never terminated; truncated after ``max_steps`` pulls. The vector env autoresets as declared in
    ``metadata["autoreset_mode"]``.

    ## Info

    Per learner: ``regret`` (instantaneous pseudo-regret ``max_k mu_k - mu_a``; expected mode
    ``max_k mu_k - sum_k pi_k mu_k``), ``cumulative_regret`` (its sum over the episode), ``arm`` (the arm pulled;
    -1 in expected mode) and ``best_arm``.

    ## Arguments

    - ``num_envs``: number of learners B (vector env only).
    - ``n_arms`` (10), ``reward_dist`` (``"bernoulli"`` or ``"gaussian"``), ``means`` (K fixed means, a (B, K)
      array with one row per learner, or None to draw them per reset), ``prior_mean`` (0.0) / ``prior_std`` (1.0)
      of Gaussian means, ``noise_std`` (1.0).
    - ``history``: ``"full"`` or ``"window"``; ``window`` (50) its length.
    - ``lam`` (1.0): ridge strength of the arm means (>= 0); a number, or a length-B sequence with one per learner
      (a sweep in one batch; learner i then follows the env made with ``lam=lam[i]`` seeded ``seed + i``).
    - ``adaptation``: ``"sample"`` (default) or ``"expected"``.
    - ``max_steps`` (1000): the horizon. ``device`` ("cpu"), ``dtype`` (``torch.float32``).
    - ``backend`` (``"auto"``): ``"compiled"`` (one compiled pass per step: Bernoulli arms, full history, sampled
      pulls, float32, a shared ``lam``, CPU), ``"torch"``, or ``"auto"`` (compiled where it applies).
    - ``autoreset_mode``: ``"next_step"`` (default), ``"same_step"`` or ``"disabled"``.
    - ``sync_free`` (False): ``True`` for steps without host reads (needs ``autoreset_mode="disabled"``; an arm or
      law outside the action space holds that learner, ``info["invalid_action"]``); see
      :class:`~reciprocal_gym.envs.base.BatchedVectorEnv`.
    """

    config_class = BanditConfig
    supports_sync_free = True
    env_id = "Reciprocal-Bandit-v0"
    scoring = Scoring(kind="bandit", metrics=("cumulative_regret",), higher_is_better=False,
                      labels={"cumulative_regret": "cumulative pseudo-regret"}, long_run={"max_steps": 10**6})

    def _setup(self) -> None:
        cfg = self.config
        B, K, dev, dt = self.num_envs, cfg.n_arms, self.device, self.dtype
        self.n_arms = K
        self.expected = cfg.adaptation == "expected"
        self.windowed = cfg.history == "window"
        self._fixed_means = None if cfg.means is None else torch.as_tensor(np.asarray(cfg.means), dtype=dt, device=dev)
        if self._fixed_means is not None and self._fixed_means.dim() == 2 and len(self._fixed_means) != B:
            raise ValueError(f"means has {len(self._fixed_means)} rows; per-learner means need one row per learner "
                             f"(num_envs={B})")
        self._build_spaces()
        window = cfg.window if self.windowed and not self.expected else None
        zeros = torch.zeros(B, K, dtype=dt, device=dev)
        self.state = BanditState(
            means=zeros, key=torch.zeros(B, dtype=torch.int32, device=dev),
            history=ArmHistory.empty(B, K, window, dt, dev), pulls=zeros.clone(), theta=zeros.clone(),
            steps=torch.zeros(B, dtype=torch.int64, device=dev), cumulative_regret=torch.zeros(B, dtype=dt, device=dev),
        )
        # workspace (rebuilt from the state, never saved): the episode's best arm, look-ahead uniforms, compiled-step
        # views
        self._best, self._best_arm = self.state.means.max(1)
        self._uniforms = crandom.UniformBlocks()
        self._ones = torch.ones(B, 1, dtype=dt, device=dev)
        self._lam, self._max_steps = self.learner_setting("lam"), int(cfg.max_steps)  # lam: float or (B,)
        self.backend = bandit_backend(cfg.backend, self.device, dt, bernoulli=cfg.reward_dist == "bernoulli",
                                      full_history=not self.windowed, sampled=not self.expected,
                                      shared_lam=not isinstance(self._lam, Tensor), sync_free=self.sync_free)
        # the compiled step's float32 arithmetic, as torch casts a Python scalar (a shared lam only)
        self._lam32 = np.float32(self._lam if self.backend.step else 0.0)
        self._compiled_cache: tuple | None = None  # the compiled step's tensors and numpy views, see _step_compiled
        self._step_obs: tuple[Tensor, Tensor] | None = None

    def _rebuild_workspace(self) -> None:
        self._best, self._best_arm = self.state.means.max(1)
        self._uniforms.invalidate()
        self._compiled_cache = None
        self._step_obs = None

    def _check_state(self, state: BanditState) -> None:
        K = self.n_arms
        if state.history.window_arm is not None:
            ckpt.check_range("state.history.window_arm", state.history.window_arm, 0, K)
        ckpt.check_range("state.steps", state.steps, 0, self.config.max_steps + 1)
        if bool((state.history.counts < 0).any()) or bool((state.pulls < 0).any()):
            raise ckpt.CheckpointError("checkpoint fields 'state.history.counts' / 'state.pulls' hold negative counts")

    def _build_spaces(self) -> None:
        cfg, K = self.config, self.n_arms
        bernoulli = cfg.reward_dist == "bernoulli"
        cap = float(cfg.window if self.windowed else cfg.max_steps)
        self.single_observation_space = spaces.Dict(
            {
                "theta": real_box((K,), 0.0, 1.0) if bernoulli else real_box((K,)),
                "counts": spaces.Box(0.0, cap, (K,), np.float32),
                "pulls": spaces.Box(0.0, float(cfg.max_steps), (K,), np.float32),
                "step": spaces.Box(0.0, float(cfg.max_steps), (1,), np.float32),
            }
        )
        if self.expected:
            self.single_action_space: spaces.Space = spaces.Box(0.0, 1.0, (K,), dtype=np.float32)
        else:
            self.single_action_space = spaces.Discrete(K)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    # ----- episode start --------------------------------------------------------------------------------------
    def _reset_rows(self, rows: Tensor, rngs: dict[int, np.random.Generator]) -> dict[str, Tensor]:
        cfg, K = self.config, self.n_arms
        learners = torch.as_tensor(list(rngs), dtype=torch.int64, device=self.device)
        keys, means = [], []
        for rng in rngs.values():
            keys.append(crandom.draw_key(rng))
            if self._fixed_means is None:
                if cfg.reward_dist == "bernoulli":
                    means.append(rng.random(K))
                else:
                    means.append(cfg.prior_mean + cfg.prior_std * rng.standard_normal(K))
        st = self.state
        key_all, means_all = st.key, st.means
        if len(learners):
            key = torch.as_tensor(keys, dtype=torch.int64, device=self.device)
            key_all = key_all.index_put((learners,), crandom.stream_key(crandom.as_word(key).to(self.device), 0))
            if self._fixed_means is None:
                drawn = torch.as_tensor(np.stack(means), dtype=self.dtype, device=self.device)
            else:
                fixed = self._fixed_means
                drawn = fixed.expand(len(learners), -1) if fixed.dim() == 1 else fixed[learners]
            means_all = means_all.index_put((learners,), drawn)
        self._uniforms.invalidate()
        keep = ~rows.unsqueeze(1)
        self.state = BanditState(
            means=means_all, key=key_all, history=st.history.cleared(rows), pulls=st.pulls * keep,
            theta=st.theta * keep, steps=torch.where(rows, 0, st.steps),
            cumulative_regret=torch.where(rows, 0.0, st.cumulative_regret),
        )
        self._best, self._best_arm = means_all.max(1)  # fixed for the episode
        zero = torch.zeros_like(self.state.cumulative_regret)
        return {"regret": zero, "cumulative_regret": zero, "arm": torch.full_like(self.state.steps, -1),
                "best_arm": self._best_arm}

    # ----- the reciprocal step --------------------------------------------------------------------------------
    def _check_actions(self, actions: Any) -> tuple[Tensor, Tensor | None]:
        """The actions as arms or laws, and in a sync-free env (B,) the learners whose action is outside the action
        space (an error otherwise)."""
        B, K = self.num_envs, self.n_arms
        a = action_tensor(actions, self.device)
        if self.expected:
            if a.shape != (B, K) or not a.is_floating_point():
                raise ValueError(f"action must be a float array of shape ({B}, {K}) (a distribution over arms per "
                                 f"learner), got dtype {a.dtype} and shape {tuple(a.shape)}")
            a = a.to(self.dtype)
            total = a.sum(1, keepdim=True)
            if self.sync_free:  # no host reads: a learner whose law is not one is held (see _step_rows)
                bad = ~(torch.isfinite(a) & (a >= 0) & (a <= 1)).all(1) | (total.squeeze(1) <= 0)
                return torch.where(bad.unsqueeze(1), 0.0, a / torch.where(total > 0, total, 1.0)), bad
            if not bool(torch.isfinite(a).all()) or bool((a < 0).any()) or bool((a > 1).any()):
                raise ValueError("action entries must be finite and in [0, 1] (a selection distribution)")
            if bool((total <= 0).any()):
                raise ValueError("action must have a positive sum for every learner (it is divided by its sum)")
            return a / total, None
        if self.sync_free:
            a = discrete_actions(a, B, K, self.device, "an arm", check_values=False)
            bad = (a < 0) | (a >= K)
            return torch.where(bad, 0, a), bad
        return discrete_actions(a, B, K, self.device, "an arm"), None

    def _step_rows(self, actions: Any, rows: Tensor) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        cfg = self.config
        every = rows is self._all_rows
        if every and self.backend.step and isinstance(actions, Tensor) and actions.is_cpu and actions.dim() == 1 \
                and actions.shape[0] == self.num_envs and actions.dtype == torch.int64 and actions.is_contiguous():
            out = self._step_compiled(actions)
            if out is not None:
                return out
        a, bad = self._check_actions(actions)
        if bad is not None:  # sync-free: a learner with an action outside the space is held (not stepped)
            rows, every = rows & ~bad, False
        st = self.state
        live = None if every else rows.unsqueeze(1).to(self.dtype)
        if self.expected:
            mu = (a * st.means).sum(1)
            reward = mu
            added_n, added_s = a, a * st.means
            decay = (1.0 - 1.0 / cfg.window) if self.windowed else 1.0
            if live is not None:
                added_n, added_s = added_n * live, added_s * live
                decay = 1.0 - (1.0 - decay) * live
            h = st.history
            history = ArmHistory(h.counts * decay + added_n, h.sums * decay + added_s, None, None)
            pulls = st.pulls + added_n
            arm = torch.full_like(st.steps, -1)
        else:
            mu = st.means.gather(1, a.unsqueeze(1)).squeeze(1)
            if self.sync_free:  # learners may skip steps (held, invalid): each draws at its own counter
                u = crandom.uniform(st.key, st.steps, self.dtype)
            else:
                u = self._uniforms.next(st.key, st.steps, self.dtype)
            if cfg.reward_dist == "bernoulli":
                reward = (u < mu).to(self.dtype)
            else:
                noise = torch.special.ndtri(u.double()).to(self.dtype)
                reward = mu + cfg.noise_std * noise
            history = st.history.record(st.steps, a, reward, None if every else rows)
            arm = a
            if self.windowed:
                one = self._ones if every else rows.to(self.dtype).unsqueeze(1)
                pulls = st.pulls.scatter_add(1, a.unsqueeze(1), one)
            else:  # the full history holds every pull
                pulls = history.counts
        regret = self._best - mu
        if not every:
            reward = reward * rows
            regret = regret * rows
            steps = st.steps + rows
        else:
            steps = st.steps + 1
        self.state = BanditState(means=st.means, key=st.key, history=history, pulls=pulls,
                                 theta=history.means(self._lam), steps=steps,
                                 cumulative_regret=st.cumulative_regret + regret)
        truncated = steps >= cfg.max_steps
        if not every:
            truncated = truncated & rows
        terminated = torch.zeros_like(truncated)
        info = {"regret": regret, "cumulative_regret": self.state.cumulative_regret, "arm": arm,
                "best_arm": self._best_arm}
        if bad is not None:
            info["invalid_action"] = bad
        return reward, terminated, truncated, info

    def _step_compiled(self, a: Tensor) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]] | None:
        """The common case in one compiled pass: every learner pulls arm ``a``, full history, float32 Bernoulli arms
        on the CPU. Same float32 arithmetic as the general path (a test compares them bit for bit). Returns None if
        an arm is out of range (the general path then raises the usual error).

        Outputs are new arrays every step, made in numpy and shared with torch. At 256 learners a step's Python
        overhead is most of its cost, so the numpy views of the tensors the pass made (or reads) are kept for the next
        step (a workspace), used only while the state holds those very tensors with the same memory."""
        B, K = self.num_envs, self.n_arms
        self._uniforms.invalidate()  # the kernel draws the uniforms itself (the same counter-based values)
        h = self.state.history
        c = self._compiled_cache
        st = self.state
        if (c is not None and c[0] is h.counts and c[1] is h.sums and c[2] is st.cumulative_regret
                and c[3] is st.steps and c[4] is st.means and c[5] is self._best and c[6] is st.key
                and c[7] == st.means.data_ptr() and c[8] == st.key.data_ptr()):
            counts, sums, cumulative, steps, means, best, key = c[9]
        else:
            counts, sums, cumulative, steps, means, best, key = (
                t.numpy() for t in (h.counts, h.sums, st.cumulative_regret, st.steps, st.means, self._best, st.key))
        block = np.empty(3 * B * K + 4 * B, dtype=np.float32)  # counts, sums, theta; reward, regret, cumulative, step
        stats, per_learner = block[: 3 * B * K].reshape(3, B, K), block[3 * B * K :].reshape(4, B)
        steps_out, truncated = np.empty(B, dtype=np.int64), np.empty(B, dtype=np.bool_)
        if _bandit_step(a.numpy(), means, key, counts, sums, self._lam32, best, cumulative, steps, self._max_steps,
                        stats, per_learner, steps_out, truncated):
            return None
        counts_t, sums_t, theta_t, reward, regret, cumulative_t, steps_t, truncated_t = (
            torch.from_numpy(x) for x in (stats[0], stats[1], stats[2], per_learner[0], per_learner[1],
                                          per_learner[2], steps_out, truncated))
        self._compiled_cache = (counts_t, sums_t, cumulative_t, steps_t, st.means, self._best, st.key,
                            st.means.data_ptr(), st.key.data_ptr(),
                            (stats[0], stats[1], per_learner[2], steps_out, means, best, key))
        self.state = BanditState(means=st.means, key=st.key, history=ArmHistory(counts_t, sums_t, None, None),
                                 pulls=counts_t, theta=theta_t, steps=steps_t, cumulative_regret=cumulative_t)
        self._step_obs = (steps_t, torch.from_numpy(per_learner[3].reshape(B, 1)))
        info = {"regret": regret, "cumulative_regret": cumulative_t, "arm": a, "best_arm": self._best_arm}
        return reward, torch.from_numpy(np.zeros(B, dtype=np.bool_)), truncated_t, info

    def _observe(self) -> dict[str, Tensor]:
        obs = {"theta": self.state.theta, "counts": self.state.history.counts, "pulls": self.state.pulls}
        if self.dtype != torch.float32:
            obs = {key: value.float() for key, value in obs.items()}
        cached = self._step_obs  # the compiled step's (steps, float32 steps) pair
        steps = self.state.steps
        obs["step"] = cached[1] if cached is not None and cached[0] is steps else steps.float().unsqueeze(1)
        return obs


    def parameters(self) -> Tensor:
        return self.state.theta

    def training_measure(self, with_features: bool = True) -> tuple[Tensor | None, Tensor, Tensor]:
        """Bernoulli arms: the history as a measure on arms x {0, 1}, support (k, r) with mass ``n_k - S_k`` at
        r = 0 and ``S_k`` at r = 1; features ``e_k / sqrt(2)`` (so different arms are at distance 1) and reward
        one-hot labels (distance 2 between rewards 0 and 1). An empty history is uniform over arms with reward 0."""
        if self.config.reward_dist != "bernoulli":
            raise NotImplementedError("the diagnostics' W1 needs a finite support: Bernoulli arms only "
                                      "(use distance='theta' for Gaussian arms)")
        B, K = self.num_envs, self.n_arms
        eye = torch.eye(K, dtype=self.dtype, device=self.device) / 2**0.5
        x = eye.repeat(2, 1).expand(B, -1, -1)
        y = torch.eye(2, dtype=self.dtype, device=self.device).repeat_interleave(K, 0).expand(B, -1, -1)
        n, s = self.state.history.counts, self.state.history.sums
        mass = torch.cat([(n - s).clamp_min(0.0), s], dim=1)
        total = mass.sum(1, keepdim=True)
        empty = torch.cat([torch.ones_like(n), torch.zeros_like(s)], 1) / K
        return x, y, torch.where(total > 0, mass / torch.where(total > 0, total, 1.0), empty)


@numba.njit(cache=True, nogil=True)
def _bandit_step(arms, means, key, counts, sums, lam, best, cumulative, steps, max_steps, stats, per_learner,
                 steps_out, truncated_out):
    """One pull per learner (float32, full history): reward 1[u < mu] with the learner's counter-based uniform
    u = uniform(key, step); the arm's new count and reward sum; ridge means sum / (count + lam), 0 where
    count + lam = 0 (as :meth:`ArmHistory.means`); pseudo-regret; the step count. Writes counts, sums and means
    into ``stats`` (3, B, K) and reward, regret, cumulative regret and the step (as float32) into ``per_learner``
    (4, B). Returns True, and writes nothing, if an arm is out of range."""
    B, K = counts.shape
    for b in range(B):
        if arms[b] < 0 or arms[b] >= K:
            return True
    one, zero = np.float32(1.0), np.float32(0.0)
    for b in range(B):
        arm = arms[b]
        mu = means[b, arm]
        r = one if crandom.uniform_one(key[b], steps[b]) < mu else zero
        for k in range(K):
            stats[0, b, k] = counts[b, k]
            stats[1, b, k] = sums[b, k]
        stats[0, b, arm] += one
        stats[1, b, arm] += r
        for k in range(K):
            denominator = stats[0, b, k] + lam
            stats[2, b, k] = stats[1, b, k] / denominator if denominator > zero else zero
        per_learner[0, b] = r
        regret = best[b] - mu
        per_learner[1, b] = regret
        per_learner[2, b] = cumulative[b] + regret
        step = steps[b] + 1
        steps_out[b] = step
        truncated_out[b] = step >= max_steps
        per_learner[3, b] = np.float32(step)
    return False


class BanditEnv(SingleEnv):
    __doc__ = BanditVectorEnv.__doc__
    vector_class = BanditVectorEnv


def register_bandit() -> None:
    register_env("Reciprocal-Bandit-v0", __name__, "Bandit")
