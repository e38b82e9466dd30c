"""``Reciprocal-ActiveLearn-v0``: pool- and stream-based active learning as a decision process, batched in torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector.utils import batch_space
from torch import Tensor

from reciprocal_gym.arguments import Choice, Integer, Real, setting
from reciprocal_gym.core import adaptation as adapt
from reciprocal_gym.core import random as crandom
from reciprocal_gym.core.state import ReciprocalState
from reciprocal_gym.envs import checkpoint as ckpt
from reciprocal_gym.envs.base import SingleEnv, action_tensor, pick_allowed, register_env
from reciprocal_gym.envs.pool import PoolConfig, PoolState, PoolVectorEnv
from reciprocal_gym.envs.scoring import Scoring

MODES = ("pool", "stream")
EVICTIONS = ("oldest", "chosen")


@dataclass(frozen=True)
class ActiveLearnConfig(PoolConfig):
    """Validated settings of an active-learning environment (see :class:`ActiveLearnVectorEnv`)."""

    mode: str = setting("pool", Choice(MODES))
    label_noise: float = setting(0.0, Real(0.0, 1.0, open_high=True))
    query_cost: float = setting(0.0, Real(0.0, 1e6))
    budget: int = setting(40, Integer(1))
    evict: str = setting("oldest", Choice(EVICTIONS))

    adaptations = ("add", "swap", "expected")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.budget < self.k:
            raise ValueError(f"budget={self.budget!r} is not allowed; it must pay for one query of k={self.k} labels")
        if self.evict == "chosen" and self.adaptation != "swap":
            raise ValueError("evict='chosen' needs adaptation='swap' (a fixed-size labeled buffer)")
        if self.mode == "stream" and (self.k != 1 or self.adaptation == "expected"):
            raise ValueError("mode='stream' queries one arriving point at a time: it needs k=1 and adaptation "
                             "'add' or 'swap'")


@dataclass(slots=True)
class ActiveLearnState(PoolState):
    """The pool state plus the oracle's: labels spent, its answers and the stream's order."""

    labels_spent: Tensor
    """(B,) labels bought in the episode."""
    oracle_keys: Tensor
    """(B, 2) int32 stream keys of the label noise (flip, shift)."""
    oracle: Tensor
    """(B, n_pool) int64 the oracle's answer for each pool point (fixed for the episode)."""
    stream_order: Tensor
    """(B, n_pool) int64 the order in which the pool arrives (stream mode)."""


class ActiveLearnVectorEnv(PoolVectorEnv):
    """Active learning as a decision process: the agent picks which points an oracle labels, under a label budget.

    ## Description

    Each learner holds a ridge-logistic model, a labeled set, an unlabeled pool, validation and test rows (the same
    data engine as ``Reciprocal-SelfTrain-v0``). Each step the agent queries pool points; the oracle returns each
    point's held-back true label, flipped to a uniformly drawn other class with probability ``label_noise`` (the
    answer for a point is fixed within an episode: asking again gives the same label). The queried points join the
    training set by the ``adaptation`` rule and the model is refitted by warm-started Newton.

    - ``adaptation="add"`` (default): queried points stay (the usual add-only active learner).
    - ``adaptation="swap"``: a fixed-size labeled buffer of ``buffer_size`` queried points (non-greedy); when it is
      full, the oldest leave (``evict="oldest"``) or the points the agent names leave (``evict="chosen"``).
    - ``adaptation="expected"``: mean-field; the action is a query distribution over the pool and the queried part
      moves toward it with the oracle's expected label ``(1 - label_noise) * onehot(y) + label_noise / (C - 1)``
      on the other classes.

    ``mode="stream"``: stream-based active learning. The pool points arrive one per step in a random order (drawn
    at reset); the action is 1 (query the arriving point) or 0 (skip it).

    Each label costs ``query_cost``; the episode ends when the label ``budget`` is spent.

    ## Action Space

    - ``mode="pool"``: ``Discrete(n_pool)`` (``k == 1``), ``MultiDiscrete([n_pool] * k)`` (batch queries of k
      distinct points), or ``Box(0, 1, (n_pool,))`` (expected mode). With ``evict="chosen"``:
      ``MultiDiscrete([n_pool] * 2k)``: k points to query, then k buffer points to remove; once the buffer is full
      the first points of the second half that are needed leave (they must be in the buffer and distinct), the rest
      of it is ignored.
    - ``mode="stream"``: ``Discrete(2)``: 0 skip, 1 query.

    Indices the mask forbids are handled by ``invalid_action`` as in SelfTrain (penalty and no label spent, or an
    error); an action outside the action space raises ``ValueError``.

    ## Observation Space

    ``mode="pool"``: SelfTrain's ``Dict`` (``candidates``, ``action_mask``, ``theta``, ``scalars``) plus
    ``"labels"``: ``(2,)`` labels spent and labels left in the budget. ``mode="stream"``: ``"candidate"``
    ``(C + 3,)`` (the arriving point's predicted probabilities, margin, entropy, in-use flag), ``"theta"``,
    ``"scalars"`` and ``"labels"``.

    ## Rewards

    ``reward="val_loglik"`` (default): change in mean validation log-likelihood minus ``query_cost`` times the labels
    bought this step. ``"val_accuracy"``: change in validation accuracy minus the cost. ``"stability"``:
    ``-|theta_t - theta_{t-1}|`` minus the cost. A skip (stream) costs nothing and gives 0.

    ## Episode End

    Terminated when the budget cannot pay for another query (labels spent + k > budget), when the pool is used up
    (add mode), or when the stream has delivered every pool point. Truncated after ``max_steps`` steps (set it to
    ``n_pool`` or more to see a whole stream).

    ## Info

    SelfTrain's per-learner info (``test_accuracy``, ``val_accuracy``, ``val_log_likelihood``, ``theta_change``,
    ``train_size``, ``pseudo_label_error`` = share of wrong oracle labels in the queried part, fit reports,
    ``invalid_action``, the gains over the labeled-only fit ``test_accuracy_gain``, ``val_accuracy_gain``,
    ``theta_from_labeled_only``) plus ``labels_spent`` and ``queried`` (labels bought this step). The pair
    (``labels_spent``, ``test_accuracy``) is the learning-curve point of the step.

    ## Arguments

    SelfTrain's data, model and episode arguments (``dataset``, ``X``/``y``, ``split``, ``n_labeled``, ``n_pool``,
    ``n_val``, ``n_test``, ``stratify``, ``adaptation``, ``k``, ``buffer_size``, ``expected_rate``, ``lam``,
    ``reward``, ``max_steps``, ``invalid_action``, ``invalid_action_penalty``, ``dtype``, ``solver``, ``tol``,
    ``max_iter``, ``report_gamma``, ``device``, ``autoreset_mode``), and:

    - ``mode`` (``"pool"`` or ``"stream"``), ``label_noise`` (0.0, in [0, 1)), ``query_cost`` (0.0, >= 0),
      ``budget`` (40 labels), ``evict`` (``"oldest"`` or ``"chosen"``, with ``adaptation="swap"``).
    """

    config_class = ActiveLearnConfig
    env_id = "Reciprocal-ActiveLearn-v0"
    scoring = Scoring(
        kind="pool", metrics=("test_accuracy", "test_accuracy_gain"), reference="env",
        labels={"test_accuracy": "test accuracy (mean over seeds)",
                "test_accuracy_gain": "test accuracy gain over the labeled-only fit"},
        long_run={"max_steps": 10**6, "budget": 10**6},
    )

    def _setup(self) -> None:
        super()._setup()
        self._pending_evict: Tensor | None = None

    def _empty_state(self) -> ActiveLearnState:
        B, dev = self.num_envs, self.device
        base = super()._empty_state()
        return ActiveLearnState(
            **{name: getattr(base, name) for name in PoolState.__dataclass_fields__},
            labels_spent=torch.zeros(B, dtype=self.dtype, device=dev),
            oracle_keys=torch.zeros(B, 2, dtype=torch.int32, device=dev),
            oracle=torch.zeros(B, self.n_pool, dtype=torch.int64, device=dev),
            stream_order=torch.zeros(B, self.n_pool, dtype=torch.int64, device=dev),
        )

    def _check_state(self, state: ActiveLearnState) -> None:
        super()._check_state(state)
        ckpt.check_range("state.oracle", state.oracle, 0, self.n_classes)
        ckpt.check_range("state.stream_order", state.stream_order, 0, self.n_pool)
        if bool((state.labels_spent < 0).any()) or bool((state.labels_spent > self.config.budget).any()):
            raise ckpt.CheckpointError(f"checkpoint field 'state.labels_spent' must lie in [0, {self.config.budget}]")

    @property
    def stream(self) -> bool:
        return self.config.mode == "stream"

    def _build_spaces(self) -> None:
        super()._build_spaces()
        cfg, C = self.config, self.n_classes
        labels = spaces.Box(0.0, float(cfg.budget), (2,), np.float32)
        base = self.single_observation_space.spaces
        if self.stream:
            self.single_observation_space = spaces.Dict(
                {
                    "candidate": spaces.Box(0.0, base["candidates"].high[0], (C + 3,), np.float32),
                    "theta": base["theta"],
                    "scalars": base["scalars"],
                    "labels": labels,
                }
            )
            self.single_action_space = spaces.Discrete(2)
        else:
            self.single_observation_space = spaces.Dict({**base, "labels": labels})
            if cfg.evict == "chosen":
                self.single_action_space = spaces.MultiDiscrete(np.full(2 * self.k, self.n_pool, dtype=np.int64))
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    # ----- the oracle -----------------------------------------------------------------------------------------
    def _reset_rows(self, rows: Tensor, rngs: dict[int, np.random.Generator]) -> dict[str, Tensor]:
        values = super()._reset_rows(rows, rngs)  # draws the splits from the generators first
        learners = torch.as_tensor(list(rngs), dtype=torch.int64, device=self.device)
        if len(learners):
            keys = torch.as_tensor([[crandom.draw_key(rng), crandom.draw_key(rng)] for rng in rngs.values()],
                                   dtype=torch.int32, device=self.device)
            self.state.oracle_keys[learners] = torch.stack([crandom.stream_key(keys[:, 0], 10),
                                                       crandom.stream_key(keys[:, 1], 11)], dim=1)
            orders = np.stack([rng.permutation(self.n_pool) for rng in rngs.values()])
            self.state.stream_order[learners] = torch.as_tensor(orders, device=self.device)
            self.state.oracle[learners] = self._noisy_labels(learners)
        self.state.labels_spent = torch.where(rows, 0.0, self.state.labels_spent)
        values["labels_spent"] = self.state.labels_spent
        values["queried"] = torch.zeros_like(self.state.labels_spent)
        return values

    def _noisy_labels(self, learners: Tensor) -> Tensor:
        """The oracle's answer for every pool point of ``learners`` (fixed for the episode)."""
        y = self.state.labels["pool"][learners]
        eps, C = self.config.label_noise, self.n_classes
        if eps == 0:
            return y
        index = torch.arange(self.n_pool, device=self.device).unsqueeze(0)
        keys = self.state.oracle_keys[learners]
        flip = crandom.uniform(keys[:, :1], index, torch.float64) < eps
        shift = 1 + (crandom.uniform(keys[:, 1:], index, torch.float64) * (C - 1)).long().clamp_max(C - 2)
        return torch.where(flip, (y + shift) % C, y)

    def _labels_for(self, selection: Tensor | None) -> Tensor:
        C, dt = self.n_classes, self.dtype
        if selection is None:  # expected mode: the oracle's label distribution for every pool point
            onehot = torch.nn.functional.one_hot(self.state.labels["pool"], C).to(dt)
            eps = self.config.label_noise
            return (1.0 - eps) * onehot + eps / (C - 1) * (1.0 - onehot)
        return torch.nn.functional.one_hot(self.state.oracle.gather(1, selection), C).to(dt)

    def _adapt(self, state: ReciprocalState, selection: Tensor, labels: Tensor) -> ReciprocalState:
        if self._pending_evict is not None:
            return adapt.evict(state, selection, labels, self._pending_evict, self.buffer_size)
        return super()._adapt(state, selection, labels)

    # ----- the step -------------------------------------------------------------------------------------------
    def _step_rows(self, actions: Any, rows: Tensor) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        cfg = self.config
        if self.stream:
            a = self._as_tensor(actions)
            if tuple(a.shape) != (self.num_envs,) or a.is_floating_point() or bool(((a != 0) & (a != 1)).any()):
                raise ValueError(f"action must be an integer array of shape ({self.num_envs},) with values 0 (skip) "
                                 f"or 1 (query), got dtype {a.dtype}, shape {tuple(a.shape)}")
            position = self.state.step.clamp_max(self.n_pool - 1).unsqueeze(1)
            selection = self.state.stream_order.gather(1, position)
            query = rows & (a == 1) & ~self.state.in_use.gather(1, selection).squeeze(1)
            out = self._advance(selection, rows, query, torch.zeros_like(rows))
        elif cfg.evict == "chosen":
            out = self._step_chosen(actions, rows)
        else:
            out = super()._step_rows(actions, rows)
        reward, terminated, truncated, info = out
        bought = torch.where(info["invalid_action"] | ~rows, 0.0, self._bought(info))
        if self.stream:
            bought = torch.where(query, 1.0, 0.0).to(self.dtype)
        self.state.labels_spent = self.state.labels_spent + bought
        reward = reward - cfg.query_cost * bought
        broke = self.state.labels_spent + self.k > cfg.budget
        done = broke | (self.stream & (self.state.step >= self.n_pool))
        terminated = terminated | (rows & done)
        truncated = truncated & ~terminated
        info = {**info, "labels_spent": self.state.labels_spent, "queried": bought}
        return reward, terminated, truncated, info

    def _bought(self, info: dict[str, Tensor]) -> Tensor:
        return torch.full_like(self.state.labels_spent, float(self.k))

    def _as_tensor(self, actions: Any) -> Tensor:
        return action_tensor(actions, self.device)

    def _step_chosen(self, actions: Any, rows: Tensor) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """Pool mode with ``evict="chosen"``: the action is k queries followed by k points to remove."""
        B, k, n = self.num_envs, self.k, self.n_pool
        a = self._as_tensor(actions)
        if tuple(a.shape) != (B, 2 * k) or a.is_floating_point() or a.dtype == torch.bool:
            raise ValueError(f"action must be an integer array of shape ({B}, {2 * k}) (k={k} pool indices to "
                             f"query, then k buffer points to remove), got dtype {a.dtype} and shape {tuple(a.shape)}")
        a = a.long()
        if bool(((a < 0) | (a >= n)).any()):
            raise ValueError(f"action indices must be in [0, {n}) (n_pool={n})")
        add, leave = a[:, :k], a[:, k:]
        n_out = (self.state.in_use.sum(1) + k - self.buffer_size).clamp_min(0)
        needed = torch.arange(k, device=self.device).unsqueeze(0) < n_out.unsqueeze(1)
        in_buffer = self.state.in_use.gather(1, leave) | ~needed
        ranked = torch.where(needed, leave, -1 - torch.arange(k, device=self.device).unsqueeze(0))
        ordered = ranked.sort(1).values
        distinct = (ordered[:, 1:] != ordered[:, :-1]).all(1) if k > 1 else torch.ones_like(rows)
        bad_leave = rows & ~(in_buffer.all(1) & distinct)
        self._pending_evict = leave
        try:
            queries = add.squeeze(1) if k == 1 else add
            reward, terminated, truncated, info = super()._step_rows(queries, rows & ~bad_leave)
        finally:
            self._pending_evict = None
        if bool(bad_leave.any()):
            if self.config.invalid_action == "raise":
                raise ValueError("the points to remove must be distinct points in the buffer (in use) once the "
                                 "buffer is full")
            reward = torch.where(bad_leave, self.config.invalid_action_penalty, reward)
            info["invalid_action"] = info["invalid_action"] | bad_leave
            r = self.state.reciprocal
            self.state.reciprocal = r.where(bad_leave, r.replace(step=r.step + 1))
            truncated = truncated | (bad_leave & (self.state.step >= self.config.max_steps))
        return reward, terminated, truncated, info

    # ----- outputs --------------------------------------------------------------------------------------------
    def _observe(self) -> dict[str, Tensor]:
        obs = super()._observe()
        labels = torch.stack([self.state.labels_spent, self.config.budget - self.state.labels_spent], 1).float()
        if not self.stream:
            return {**obs, "labels": labels}
        position = self.state.step.clamp_max(self.n_pool - 1).unsqueeze(1)
        arriving = self.state.stream_order.gather(1, position)
        probs = self._pool_probs.gather(1, arriving.unsqueeze(-1).expand(-1, -1, self.n_classes)).squeeze(1)
        in_use = self.state.in_use.gather(1, arriving).squeeze(1)
        return {"candidate": self._candidate_features(probs, in_use), "theta": obs["theta"],
                "scalars": obs["scalars"], "labels": labels}

    def sample_actions(self, rng: np.random.Generator) -> Tensor:
        """Pool mode: k distinct selectable points (and with ``evict="chosen"`` k distinct buffer points to remove);
        stream mode: query or skip with equal odds."""
        if self.stream:
            return torch.as_tensor(rng.integers(0, 2, self.num_envs), device=self.device)
        queries = super().sample_actions(rng)
        if self.config.evict != "chosen":
            return queries
        in_use = self.state.in_use.cpu().numpy()
        full = in_use.sum(1, keepdims=True) + self.k > self.buffer_size
        leave = torch.as_tensor(pick_allowed(rng, in_use | ~full, self.k), device=self.device)
        return torch.cat([queries.view(self.num_envs, self.k), leave], dim=1)

    def action_masks(self) -> Tensor:
        if self.stream:
            return torch.ones(self.num_envs, 2, dtype=torch.bool, device=self.device)
        mask = super().action_masks()
        if self.config.evict == "chosen":  # once the buffer is full, only points in it can be removed
            full = (self.state.in_use.sum(1) + self.k > self.buffer_size).unsqueeze(1)
            leave = self.state.in_use | ~full
            mask = torch.cat([mask, leave.repeat(1, self.k)], dim=1)
        return mask


class ActiveLearnEnv(SingleEnv):
    __doc__ = ActiveLearnVectorEnv.__doc__
    vector_class = ActiveLearnVectorEnv


def register_active_learn() -> None:
    register_env("Reciprocal-ActiveLearn-v0", __name__, "ActiveLearn")
