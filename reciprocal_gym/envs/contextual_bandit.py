"""``Reciprocal-ContextualBandit-v0``: a contextual bandit as reciprocal learning (ridge regression per arm)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector.utils import batch_space
from torch import Tensor

from reciprocal_gym.arguments import Choice, Integer, Mapping, Maybe, PerLearner, Real, check_settings, setting
from reciprocal_gym.core import random as crandom
from reciprocal_gym.core.adaptation import per_learner as adapt_per_learner
from reciprocal_gym.data import DATASETS, from_arrays, load_dataset
from reciprocal_gym.data.splits import standardization
from reciprocal_gym.envs import checkpoint as ckpt
from reciprocal_gym.envs.base import (
    BatchedVectorEnv,
    SingleEnv,
    discrete_actions,
    real_box,
    register_env,
    resolve_dtype,
)
from reciprocal_gym.envs.scoring import Scoring

SOURCES = ("dataset", "linear")
HISTORIES = ("full", "window")
LINEAR_DEFAULTS = {"n_arms": 5, "dim": 5}  # source="linear" when n_arms / dim are not given


@dataclass(frozen=True)
class ContextualBanditConfig:
    """Validated settings of a contextual bandit (see :class:`ContextualBanditVectorEnv` for the meaning)."""

    source: str = setting("dataset", Choice(SOURCES))
    dataset: str | None = setting("wine", Maybe(Choice(DATASETS)))
    dataset_kwargs: dict[str, Any] | None = setting(None, Mapping())
    X: Any = None
    y: Any = None
    n_arms: int | None = setting(None, Maybe(Integer(2, 1000)))
    dim: int | None = setting(None, Maybe(Integer(1, 10_000)))
    noise_std: float = setting(0.1, Real(0.0, 1e6))
    history: str = setting("full", Choice(HISTORIES))
    window: int = setting(100, Integer(1, 1_000_000))
    # the widths grow like 1 / sqrt(lam): the floor keeps them finite in float32
    lam: float = setting(1.0, PerLearner(1e-8, 1e8))
    max_steps: int = setting(500, Integer(1, 2**31 - 1))
    dtype: Any = torch.float64

    def __post_init__(self) -> None:
        check_settings(self)
        resolve_dtype(self.dtype)
        if (self.X is None) != (self.y is None):
            raise ValueError("X and y must be given together")
        if self.source == "linear":
            ignored = [name for name in ("X", "y", "dataset_kwargs") if getattr(self, name) is not None]
            if ignored:
                raise ValueError(f"source='linear' draws its own contexts: {', '.join(ignored)} would be ignored; "
                                 "use source='dataset' for a classification set")
        else:
            ignored = [name for name in ("n_arms", "dim") if getattr(self, name) is not None]
            if ignored:
                raise ValueError(f"source='dataset' takes the arms from the classes and the dimension from the "
                                 f"features: {', '.join(ignored)} would be ignored; leave {' and '.join(ignored)} "
                                 "unset, or use source='linear'")
            if self.X is None and self.dataset is None:
                raise ValueError("dataset=None needs X and y arrays (source='dataset')")


@dataclass(frozen=True, slots=True)
class ContextualBanditState:
    """The state of B contextual-bandit learners (tensors with the learner dimension first). Immutable: a reset and
    a step build a new one (:meth:`ContextualBanditVectorEnv._draw_contexts`, ``_refresh`` return new states)."""

    gram: Tensor
    """(B, K, p, p) per-arm Gram matrices ``sum x x^T`` of the history in use."""
    moment: Tensor
    """(B, K, p) per-arm ``sum r x``."""
    counts: Tensor
    """(B, K) pulls per arm in the history in use."""
    theta: Tensor
    """(B, K, p) the ridge weights (the model)."""
    widths: Tensor
    """(B, K) the confidence widths ``|x|_{A^-1}`` of the current context."""
    true_weights: Tensor
    """(B, K, p) the arms' true weights (linear source; zeros for the dataset source)."""
    context: Tensor
    """(B, p) the current context (intercept last)."""
    context_row: Tensor
    """(B,) int64 the dataset row of the context (dataset source)."""
    steps: Tensor
    """(B,) int64 pulls in the episode."""
    cumulative_regret: Tensor
    """(B,) the episode's summed regret."""
    keys: Tensor
    """(B, 2) int32 stream keys: contexts, reward noise."""
    window_X: Tensor | None
    """(B, W, p) ring buffer of the window's contexts (None for a full history)."""
    window_arm: Tensor | None
    """(B, W) int64 their arms."""
    window_reward: Tensor | None
    """(B, W) their rewards."""


class ContextualBanditVectorEnv(BatchedVectorEnv):
    """A contextual bandit as reciprocal learning: per-arm ridge regression refitted on the (context, reward) history.

    ## Description

    Each step a context x arrives; the agent pulls an arm; the reward is observed. The data are the
    (context, arm, reward) history; the parameters are one ridge-regression weight vector per arm, the ERM of the
    squared loss with ridge ``lam``: ``theta_a = (lam I + sum x x^T)^{-1} sum r x`` over the history's pulls of arm
    a. ``history="full"`` keeps every pull (greedy, add-only); ``"window"`` keeps the last ``window`` (non-greedy).

    Sources of contexts and rewards:

    - ``source="dataset"``: the standard supervised-to-bandit conversion. Contexts are rows of a classification set
      (drawn uniformly with replacement; features standardized over the whole set), arms are the classes, and the
      reward is 1 when the pulled arm is the row's class, else 0. ``n_arms`` is the number of classes.
    - ``source="linear"``: contexts ``x ~ N(0, I_dim)``, rewards ``x . w_a + noise_std * N(0, 1)`` with true
      weights ``w_a ~ N(0, I_dim / dim)`` drawn at each reset.

    The feature vector of a context is x with an intercept 1 appended (``p = d + 1`` columns). Contexts and reward
    noise come from a counter-based generator keyed per learner (:mod:`reciprocal_gym.core.random`).

    ## Action Space

    ``Discrete(n_arms)``. An action outside the space raises ``ValueError``.

    ## Observation Space

    A ``Dict`` (float32):

    - ``"context"``: ``(p,)`` the current context's features (intercept last).
    - ``"theta"``: ``(n_arms, p)`` the ridge weights per arm.
    - ``"widths"``: ``(n_arms,)`` ``sqrt(x^T A_a^{-1} x)`` for the current context, ``A_a = lam I + sum x x^T``:
      the confidence width LinUCB adds (times its alpha) to ``theta_a . x``.
    - ``"counts"``: ``(n_arms,)`` pulls of each arm in the history in use.
    - ``"step"``: ``(1,)`` the step in the episode.

    ## Rewards

    The observed reward of the pulled arm.

    ## Episode End

    Never terminated; truncated after ``max_steps`` steps. Autoreset as declared in ``metadata["autoreset_mode"]``.

    ## Info

    Per learner: ``regret`` (pseudo-regret ``max_a E[r | x, a] - E[r | x, pulled]``: for a dataset 0 when the
    pulled arm is the class, else 1), ``cumulative_regret``, ``arm``, ``best_arm`` (for the context just played).

    ## Arguments

    - ``num_envs`` (vector env only), ``source`` (``"dataset"`` or ``"linear"``).
    - ``dataset`` (``"wine"``; any of ``reciprocal_gym.data.DATASETS``), ``dataset_kwargs``, or ``X`` and ``y``.
    - ``n_arms`` (5) and ``dim`` (5): the linear source's arms and context dimension (only for
      ``source="linear"``; the dataset source takes them from the classes and features). ``noise_std`` (0.1).
    - ``history`` (``"full"`` or ``"window"``), ``window`` (100), ``lam`` (1.0, >= 1e-8; a number or one
      per learner).
    - ``max_steps`` (500), ``device`` ("cpu"), ``dtype`` (``torch.float64``), ``autoreset_mode``.
    """

    config_class = ContextualBanditConfig
    env_id = "Reciprocal-ContextualBandit-v0"
    scoring = Scoring(kind="bandit", metrics=("cumulative_regret",), higher_is_better=False,
                      labels={"cumulative_regret": "cumulative pseudo-regret"}, long_run={"max_steps": 10**6})

    def _setup(self) -> None:
        cfg = self.config
        dt = self.dtype
        B, dev = self.num_envs, self.device
        if cfg.source == "dataset":
            data = from_arrays(cfg.X, cfg.y) if cfg.X is not None else load_dataset(cfg.dataset,
                                                                                   **(cfg.dataset_kwargs or {}))
            mean, scale = standardization(data.X)
            z = (data.X - mean) / scale
            self._rows_X = torch.as_tensor(np.hstack([z, np.ones((len(z), 1))]), dtype=dt, device=dev)
            self._rows_y = torch.as_tensor(data.y, dtype=torch.int64, device=dev)
            self.n_arms, self.n_features = data.n_classes, data.n_features + 1
        else:
            self.n_arms = LINEAR_DEFAULTS["n_arms"] if cfg.n_arms is None else cfg.n_arms
            self.n_features = (LINEAR_DEFAULTS["dim"] if cfg.dim is None else cfg.dim) + 1
        K, p = self.n_arms, self.n_features
        self._build_spaces()
        window = cfg.window if cfg.history == "window" else None
        self.state = ContextualBanditState(
            gram=torch.zeros(B, K, p, p, dtype=dt, device=dev),
            moment=torch.zeros(B, K, p, dtype=dt, device=dev),
            counts=torch.zeros(B, K, dtype=dt, device=dev),
            theta=torch.zeros(B, K, p, dtype=dt, device=dev),
            widths=torch.zeros(B, K, dtype=dt, device=dev),
            true_weights=torch.zeros(B, K, p, dtype=dt, device=dev),
            context=torch.zeros(B, p, dtype=dt, device=dev),
            context_row=torch.zeros(B, dtype=torch.int64, device=dev),
            steps=torch.zeros(B, dtype=torch.int64, device=dev),
            cumulative_regret=torch.zeros(B, dtype=dt, device=dev),
            keys=torch.zeros(B, 2, dtype=torch.int32, device=dev),
            window_X=None if window is None else torch.zeros(B, window, p, dtype=dt, device=dev),
            window_arm=None if window is None else torch.zeros(B, window, dtype=torch.int64, device=dev),
            window_reward=None if window is None else torch.zeros(B, window, dtype=dt, device=dev),
        )
        self._eye = torch.eye(p, dtype=dt, device=dev)
        self._lam = self.learner_setting("lam")  # float, or (B,) one per learner

    def _check_state(self, state: ContextualBanditState) -> None:
        ckpt.check_range("state.steps", state.steps, 0, self.config.max_steps + 1)
        if self.config.source == "dataset":
            ckpt.check_range("state.context_row", state.context_row, 0, len(self._rows_y))
        if state.window_arm is not None:
            ckpt.check_range("state.window_arm", state.window_arm, 0, self.n_arms)
        if bool((state.counts < 0).any()):
            raise ckpt.CheckpointError("checkpoint field 'state.counts' holds negative counts")

    def _build_spaces(self) -> None:
        K, p, cfg = self.n_arms, self.n_features, self.config
        cap = float(cfg.window if cfg.history == "window" else cfg.max_steps)
        self.single_observation_space = spaces.Dict(
            {
                "context": real_box((p,)),
                "theta": real_box((K, p)),
                "widths": real_box((K,), 0.0),
                "counts": spaces.Box(0.0, cap, (K,), np.float32),
                "step": spaces.Box(0.0, float(cfg.max_steps), (1,), np.float32),
            }
        )
        self.single_action_space = spaces.Discrete(K)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    # ----- contexts -------------------------------------------------------------------------------------------
    def _draw_contexts(self, state: ContextualBanditState, rows: Tensor) -> ContextualBanditState:
        """``state`` with the context of step ``steps`` for learners ``rows`` (counter-based, so batch-independent)."""
        cfg, p = self.config, self.n_features
        context_row = state.context_row
        if cfg.source == "dataset":
            u = crandom.uniform(state.keys[:, 0], state.steps, torch.float64)
            row = (u * len(self._rows_y)).long().clamp_max(len(self._rows_y) - 1)
            x = self._rows_X[row]
            context_row = torch.where(rows, row, context_row)
        else:
            d = p - 1
            counter = state.steps.unsqueeze(1) * d + torch.arange(d, device=self.device)
            z = crandom.normal(state.keys[:, :1], counter, self.dtype)
            x = torch.cat([z, torch.ones_like(z[:, :1])], dim=1)
        return replace(state, context=torch.where(rows.unsqueeze(1), x, state.context), context_row=context_row)

    def _expected_rewards(self, state: ContextualBanditState) -> Tensor:
        """(B, K) expected reward of each arm for the current context."""
        if self.config.source == "dataset":
            classes = self._rows_y[state.context_row]
            return torch.nn.functional.one_hot(classes, self.n_arms).to(self.dtype)
        return torch.einsum("bkp,bp->bk", state.true_weights, state.context)

    def _refresh(self, state: ContextualBanditState) -> ContextualBanditState:
        """``state`` with the ridge weights and confidence widths of its statistics (one Cholesky per arm)."""
        A = state.gram + adapt_per_learner(self._lam, state.gram) * self._eye
        L, failed = torch.linalg.cholesky_ex(A)
        scale = 10.0 * torch.finfo(A.dtype).eps
        while bool(failed.any()) and scale < 1e-2:
            # rounding made A numerically indefinite (a tiny lam next to a large Gram matrix in float32, or a
            # windowed downdate): add a jitter of a few units in the last place of A's scale, growing until it holds
            size = A.diagonal(dim1=-2, dim2=-1).abs().amax(-1, keepdim=True).unsqueeze(-1)
            A = A + (failed > 0).view(*failed.shape, 1, 1) * scale * size * self._eye
            L, failed = torch.linalg.cholesky_ex(A)
            scale *= 10.0
        if bool(failed.any()):
            raise FloatingPointError("the ridge systems stayed indefinite after jitter; use dtype=torch.float64")
        theta = torch.cholesky_solve(state.moment.unsqueeze(-1), L).squeeze(-1)
        x = state.context.unsqueeze(1).expand(-1, self.n_arms, -1).unsqueeze(-1)
        widths = torch.linalg.solve_triangular(L, x, upper=False).squeeze(-1).norm(dim=-1)
        return replace(state, theta=theta, widths=widths)

    # ----- episode start --------------------------------------------------------------------------------------
    def _reset_rows(self, rows: Tensor, rngs: dict[int, np.random.Generator]) -> dict[str, Tensor]:
        cfg, K, p = self.config, self.n_arms, self.n_features
        learners = torch.as_tensor(list(rngs), dtype=torch.int64, device=self.device)
        st = self.state
        keys_all, true_weights = st.keys, st.true_weights
        if len(learners):
            keys_all = keys_all.index_put((learners,), crandom.draw_stream_keys(list(rngs.values()), [0, 1],
                                                                                 self.device))
            if cfg.source == "linear":
                w = np.stack([rng.standard_normal((K, p - 1)) / np.sqrt(p - 1) for rng in rngs.values()])
                weights = torch.zeros(len(learners), K, p, dtype=self.dtype, device=self.device)
                weights[..., :-1] = torch.as_tensor(w, dtype=self.dtype, device=self.device)
                true_weights = true_weights.index_put((learners,), weights)
        keep = ~rows
        windowed = cfg.history == "window"
        st = replace(
            st, keys=keys_all, true_weights=true_weights,
            gram=st.gram * keep.view(-1, 1, 1, 1), moment=st.moment * keep.view(-1, 1, 1),
            counts=st.counts * keep.view(-1, 1),
            window_X=st.window_X * keep.view(-1, 1, 1) if windowed else st.window_X,
            window_reward=st.window_reward * keep.view(-1, 1) if windowed else st.window_reward,
            steps=torch.where(rows, 0, st.steps), cumulative_regret=torch.where(rows, 0.0, st.cumulative_regret),
        )
        self.state = self._refresh(self._draw_contexts(st, rows))
        zero = torch.zeros_like(self.state.cumulative_regret)
        return {"regret": zero, "cumulative_regret": zero, "arm": torch.full_like(self.state.steps, -1),
                "best_arm": torch.full_like(self.state.steps, -1)}

    # ----- the reciprocal step --------------------------------------------------------------------------------
    def _check_actions(self, actions: Any) -> Tensor:
        return discrete_actions(actions, self.num_envs, self.n_arms, self.device, "an arm")

    def _step_rows(self, actions: Any, rows: Tensor) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        cfg = self.config
        a = self._check_actions(actions)
        st = self.state
        live = rows.to(self.dtype)
        expected = self._expected_rewards(st)
        best, best_arm = expected.max(1)
        mu = expected.gather(1, a.unsqueeze(1)).squeeze(1)
        if cfg.source == "dataset":
            reward = mu
        else:
            reward = mu + cfg.noise_std * crandom.normal(st.keys[:, 1], st.steps, self.dtype)
        x = st.context
        onehot = torch.nn.functional.one_hot(a, self.n_arms).to(self.dtype) * live.unsqueeze(1)
        outer = x.unsqueeze(2) * x.unsqueeze(1)
        gram = st.gram + onehot.view(-1, self.n_arms, 1, 1) * outer.unsqueeze(1)
        moment = st.moment + onehot.unsqueeze(2) * (reward.unsqueeze(1) * x).unsqueeze(1)
        counts = st.counts + onehot
        window = {}
        if cfg.history == "window":
            slot = (st.steps % cfg.window).unsqueeze(1)
            leaving = ((st.steps >= cfg.window).to(self.dtype) * live).unsqueeze(1)
            old_x = st.window_X.gather(1, slot.unsqueeze(2).expand(-1, -1, self.n_features)).squeeze(1)
            old_arm = st.window_arm.gather(1, slot).squeeze(1)
            old_reward = st.window_reward.gather(1, slot).squeeze(1)
            old = torch.nn.functional.one_hot(old_arm, self.n_arms).to(self.dtype) * leaving
            gram = gram - old.view(-1, self.n_arms, 1, 1) * (old_x.unsqueeze(2) * old_x.unsqueeze(1)).unsqueeze(1)
            moment = moment - old.unsqueeze(2) * (old_reward.unsqueeze(1) * old_x).unsqueeze(1)
            counts = counts - old
            write = rows.unsqueeze(1)
            window = {
                "window_X": st.window_X.scatter(1, slot.unsqueeze(2).expand(-1, -1, self.n_features),
                                                torch.where(write, x, old_x).unsqueeze(1)),
                "window_arm": st.window_arm.scatter(1, slot, torch.where(rows, a, old_arm).unsqueeze(1)),
                "window_reward": st.window_reward.scatter(1, slot, torch.where(rows, reward, old_reward).unsqueeze(1)),
            }
            # an arm with no pulls left in the window holds exactly no statistics (no rounding residue)
            empty = (counts == 0).view(-1, self.n_arms, 1)
            gram = torch.where(empty.unsqueeze(-1), 0.0, gram)
            moment = torch.where(empty, 0.0, moment)
        regret = (best - mu) * live
        reward = reward * live
        st = replace(st, gram=gram, moment=moment, counts=counts, steps=st.steps + rows.long(),
                     cumulative_regret=st.cumulative_regret + regret, **window)
        self.state = self._refresh(self._draw_contexts(st, rows))
        truncated = rows & (self.state.steps >= cfg.max_steps)
        info = {"regret": regret, "cumulative_regret": self.state.cumulative_regret,
                "arm": torch.where(rows, a, -1), "best_arm": torch.where(rows, best_arm, -1)}
        return reward, torch.zeros_like(truncated), truncated, info

    def _observe(self) -> dict[str, Tensor]:
        f32 = torch.float32
        return {
            "context": self.state.context.to(f32),
            "theta": self.state.theta.to(f32),
            "widths": self.state.widths.to(f32),
            "counts": self.state.counts.to(f32),
            "step": self.state.steps.to(f32).unsqueeze(1),
        }


    def parameters(self) -> Tensor:
        return self.state.theta.flatten(1)


class ContextualBanditEnv(SingleEnv):
    __doc__ = ContextualBanditVectorEnv.__doc__
    vector_class = ContextualBanditVectorEnv


def register_contextual_bandit() -> None:
    register_env("Reciprocal-ContextualBandit-v0", __name__, "ContextualBandit")
