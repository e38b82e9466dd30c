"""The parts a pool environment is composed of: how actions select points, who labels them, the reward, the ends.

:class:`~reciprocal_gym.envs.pool.PoolVectorEnv` runs one step as ``select -> label -> adapt -> refit -> reward ->
end`` and takes every env-specific decision from a :class:`PoolParts`:

- a **selection** turns the action into a :class:`Selected` (which points, which learners update, which actions the
  mask forbids) and owns the action space and its masks: :class:`IndexSelection` (k indices, or a selection law in
  expected mode), :class:`ChosenEviction` (k indices to add and k to remove), :class:`StreamSelection` (query or skip
  the arriving point);
- a **label source** labels the selected points: :class:`ModelLabels` (the model's own predictions: self-training)
  or :class:`Oracle` (held-back true labels with noise, bought under a budget: active learning);
- a **reward** (:class:`ValidationReward`) from the metrics before and after the step and the labels bought;
- **ends**: the conditions that terminate an episode (:func:`pool_exhausted`, the oracle's budget, the stream's end).

So an env is a declaration (see ``self_train.py``, ``active_learn.py``, ``stream_active_learn.py``). The parts keep
no state of their own and change nothing: they take the learners' :class:`~reciprocal_gym.envs.pool.PoolState` (and
its :class:`~reciprocal_gym.envs.pool.PoolView` of predictions) and return values or a new state; what they need
across steps lives in the state (``oracle``, ``stream_order``). ``env`` is passed for the static parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from reciprocal_gym.core import adaptation as adapt
from reciprocal_gym.core import random as crandom
from reciprocal_gym.envs import checkpoint as ckpt
from reciprocal_gym.envs.base import action_tensor, pick_allowed

if TYPE_CHECKING:
    from reciprocal_gym.envs.pool import PoolState, PoolVectorEnv, PoolView


@dataclass(frozen=True)
class Selected:
    """What an action asks for, per learner."""

    selection: Tensor
    """(B, k) int64 pool indices, or (B, n_pool) a selection law (expected mode)."""
    update: Tensor
    """(B,) bool: learners whose training set changes this step."""
    invalid: Tensor
    """(B,) bool: learners whose action the mask forbids (no change, the invalid-action penalty)."""
    labels: int
    """Labels one update asks for (k; 1 for a stream query)."""
    evict: Tensor | None = None
    """(B, k) int64 buffer points the agent removes (:class:`ChosenEviction`)."""


# ----- selections -------------------------------------------------------------------------------------------------
class Selection(Protocol):
    """How actions select pool points. ``env`` gives the static parameters (sizes, config); every method that
    depends on the learners takes their ``state`` and returns new values without changing anything."""

    def action_space(self, env: PoolVectorEnv) -> spaces.Space: ...
    def observation(self, env: PoolVectorEnv, base: dict[str, spaces.Space]) -> dict[str, spaces.Space]: ...
    def reset(self, env: PoolVectorEnv, state: PoolState, learners: Tensor,
              rngs: dict[int, np.random.Generator]) -> PoolState: ...
    def decode(self, env: PoolVectorEnv, state: PoolState, actions: Any, rows: Tensor) -> Selected: ...
    def observe(self, env: PoolVectorEnv, state: PoolState, view: PoolView,
                obs: dict[str, Tensor]) -> dict[str, Tensor]: ...
    def masks(self, env: PoolVectorEnv, state: PoolState) -> Tensor: ...
    def sample(self, env: PoolVectorEnv, state: PoolState, rng: np.random.Generator) -> Tensor: ...
    def ended(self, env: PoolVectorEnv, state: PoolState) -> Tensor | None: ...


def off_space(env: PoolVectorEnv, bad: Tensor, message: Callable[[], str]) -> Tensor:
    """(B,) the learners whose action value is outside the action space: a ``ValueError`` with ``message()`` if any
    (the default), or in a sync-free env (which reads no value on the host) the mask itself, so that their actions
    count as invalid (the configured penalty, ``info["invalid_action"]``)."""
    if env.sync_free:
        return bad
    if bool(bad.any()):
        raise ValueError(message())
    return bad


class IndexSelection:
    """k distinct pool indices per learner (``Discrete(n_pool)`` for k = 1, ``MultiDiscrete([n_pool] * k)``), in
    expected mode a selection law over the pool (``Box(0, 1, (n_pool,))``, divided by its sum), in subset mode a set
    of pool points of any size (``MultiBinary(n_pool)``)."""

    def action_space(self, env: PoolVectorEnv) -> spaces.Space:
        n = env.n_pool
        if env.config.adaptation == "expected":
            return spaces.Box(0.0, 1.0, (n,), dtype=np.float32)
        if env.config.adaptation == "subset":
            return spaces.MultiBinary(n)
        if env.k == 1:
            return spaces.Discrete(n)
        return spaces.MultiDiscrete(np.full(env.k, n, dtype=np.int64))

    def observation(self, env: PoolVectorEnv, base: dict[str, spaces.Space]) -> dict[str, spaces.Space]:
        return base

    def reset(self, env: PoolVectorEnv, state: PoolState, learners: Tensor,
              rngs: dict[int, np.random.Generator]) -> PoolState:
        return state

    def decode(self, env: PoolVectorEnv, state: PoolState, actions: Any, rows: Tensor) -> Selected:
        """Check actions against the action space (errors) and the mask (validity per learner)."""
        B, n, k = env.num_envs, env.n_pool, env.k
        a = action_tensor(actions, env.device)
        if env.config.adaptation == "expected":
            if a.shape != (B, n) or not a.is_floating_point():
                raise ValueError(
                    f"action must be a float array of shape ({B}, {n}) (one selection distribution over the pool "
                    f"per learner), got dtype {a.dtype} and shape {tuple(a.shape)}"
                )
            a = a.to(env.dtype)
            bad = off_space(env, ~(torch.isfinite(a) & (a >= 0) & (a <= 1)).any(1), lambda: (
                "action entries must be finite and in [0, 1] (a selection distribution)"))
            total = a.sum(1, keepdim=True)
            bad = bad | off_space(env, rows & (total.squeeze(1) <= 0), lambda: (
                "action must have a positive sum for every learner (it is divided by its sum)"))
            law = torch.where(bad.unsqueeze(1), 0.0, a / torch.where(total > 0, total, 1.0))
            return Selected(law, rows & ~bad, rows & bad, k)
        if env.config.adaptation == "subset":
            if a.shape != (B, n) or a.is_floating_point() or a.is_complex():
                raise ValueError(f"action must be an integer or bool array of shape ({B}, {n}) (1 for each pool point "
                                 f"to pseudo-label, 0 otherwise), got dtype {a.dtype} and shape {tuple(a.shape)}")
            bad = off_space(env, ((a != 0) & (a != 1)).any(1), lambda: (
                "action entries must be 0 or 1 (a set of pool points)"))
            chosen = (a != 0) & ~bad.unsqueeze(1)
            return Selected(chosen, rows & ~bad, rows & bad, 0)
        a, bad = self._indices(env, a, B, k, n, "one pool index" if k == 1 else f"{k} pool indices")
        allowed = adapt.selectable(state.reciprocal, env.config.adaptation).gather(1, a).all(1) & ~bad
        if k > 1:
            allowed = allowed & _distinct(a)
        valid = allowed | ~rows
        return Selected(a, rows & valid, rows & ~valid, k)

    @staticmethod
    def _indices(env: PoolVectorEnv, a: Tensor, B: int, k: int, n: int, what: str) -> tuple[Tensor, Tensor]:
        """(B, k) int64 indices, and (B,) the learners whose indices are out of range (sync-free only: an error
        otherwise); their indices are replaced by 0, and their action counts as invalid."""
        expected_shape = (B,) if k == 1 else (B, k)
        if tuple(a.shape) != expected_shape or a.is_floating_point() or a.dtype == torch.bool:
            raise ValueError(f"action must be an integer array of shape {expected_shape} ({what} per learner), "
                             f"got dtype {a.dtype} and shape {tuple(a.shape)}")
        a = a.to(torch.int64).view(B, k)
        outside = (a < 0) | (a >= n)
        bad = off_space(env, outside.any(1), lambda: (f"action indices must be in [0, {n}) (n_pool={n}); got "
                                                      f"values in [{int(a.min())}, {int(a.max())}]"))
        return (torch.where(outside, 0, a) if env.sync_free else a), bad

    def observe(self, env: PoolVectorEnv, state: PoolState, view: PoolView,
                obs: dict[str, Tensor]) -> dict[str, Tensor]:
        return obs

    def masks(self, env: PoolVectorEnv, state: PoolState) -> Tensor:
        """(B, n_pool) selectable points; (B, k * n_pool) for k > 1, as sb3-contrib expects for MultiDiscrete."""
        mask = adapt.selectable(state.reciprocal, env.config.adaptation)
        if env.config.adaptation == "subset":  # MultiBinary: both values allowed for every point
            return mask.repeat(1, 2)
        if env.config.adaptation != "expected" and env.k > 1:
            mask = mask.repeat(1, env.k)
        return mask

    def sample(self, env: PoolVectorEnv, state: PoolState, rng: np.random.Generator) -> Tensor:
        if env.config.adaptation == "expected":
            return torch.as_tensor(rng.uniform(0.01, 1.0, (env.num_envs, env.n_pool)), dtype=torch.float32,
                                   device=env.device)
        if env.config.adaptation == "subset":
            return torch.as_tensor(rng.random((env.num_envs, env.n_pool)) < 0.5, dtype=torch.int8,
                                   device=env.device)
        mask = adapt.selectable(state.reciprocal, env.config.adaptation).cpu().numpy()
        picks = torch.as_tensor(pick_allowed(rng, mask, env.k), device=env.device)
        return picks[:, 0] if env.k == 1 else picks

    def ended(self, env: PoolVectorEnv, state: PoolState) -> Tensor | None:
        return None


class ChosenEviction(IndexSelection):
    """Swap mode where the agent names who leaves: ``MultiDiscrete([n_pool] * 2k)``, k points to query, then k
    buffer points to remove. Once the buffer is full the first points of the second half that are needed leave (they
    must be in the buffer and distinct); the rest of it is ignored."""

    def action_space(self, env: PoolVectorEnv) -> spaces.Space:
        return spaces.MultiDiscrete(np.full(2 * env.k, env.n_pool, dtype=np.int64))

    def decode(self, env: PoolVectorEnv, state: PoolState, actions: Any, rows: Tensor) -> Selected:
        B, k, n = env.num_envs, env.k, env.n_pool
        a = action_tensor(actions, env.device)
        if tuple(a.shape) != (B, 2 * k) or a.is_floating_point() or a.dtype == torch.bool:
            raise ValueError(f"action must be an integer array of shape ({B}, {2 * k}) (k={k} pool indices to "
                             f"query, then k buffer points to remove), got dtype {a.dtype} and shape {tuple(a.shape)}")
        a = a.long()
        outside = (a < 0) | (a >= n)
        bad = off_space(env, outside.any(1), lambda: f"action indices must be in [0, {n}) (n_pool={n})")
        if env.sync_free:
            a = torch.where(outside, 0, a)
        add, leave = a[:, :k], a[:, k:]
        in_use = state.in_use
        allowed = adapt.selectable(state.reciprocal, "swap").gather(1, add).all(1) & ~bad
        if k > 1:
            allowed = allowed & _distinct(add)
        if env.config.invalid_action == "raise" and bool((rows & ~allowed).any()):
            raise_masked(rows & ~allowed)
        n_out = (in_use.sum(1) + k - env.buffer_size).clamp_min(0)
        needed = torch.arange(k, device=env.device).unsqueeze(0) < n_out.unsqueeze(1)
        in_buffer = in_use.gather(1, leave) | ~needed
        ranked = torch.where(needed, leave, -1 - torch.arange(k, device=env.device).unsqueeze(0))
        good_leave = in_buffer.all(1) & (_distinct(ranked) if k > 1 else torch.ones_like(rows))
        if env.config.invalid_action == "raise" and bool((rows & ~good_leave).any()):
            raise ValueError("the points to remove must be distinct points in the buffer (in use) once the buffer is "
                             "full")
        valid = (allowed & good_leave) | ~rows
        return Selected(add, rows & valid, rows & ~valid, k, evict=leave)

    def masks(self, env: PoolVectorEnv, state: PoolState) -> Tensor:
        """The query mask, then for each removal slot the points that may leave (once the buffer is full: those in
        it)."""
        mask = super().masks(env, state)
        full = (state.in_use.sum(1) + env.k > env.buffer_size).unsqueeze(1)
        leave = state.in_use | ~full
        return torch.cat([mask, leave.repeat(1, env.k)], dim=1)

    def sample(self, env: PoolVectorEnv, state: PoolState, rng: np.random.Generator) -> Tensor:
        queries = super().sample(env, state, rng).view(env.num_envs, env.k)
        in_use = state.in_use.cpu().numpy()
        full = in_use.sum(1, keepdims=True) + env.k > env.buffer_size
        leave = torch.as_tensor(pick_allowed(rng, in_use | ~full, env.k), device=env.device)
        return torch.cat([queries, leave], dim=1)


class StreamSelection:
    """Stream-based selection: the pool arrives one point per step in an order drawn at reset; the action is 1
    (query the arriving point) or 0 (skip it). The observation shows only the arriving point (``"candidate"``,
    ``"candidate_log_probs"``)."""

    POOL_KEYS = ("candidates", "log_probs", "action_mask")
    """The observation keys of the whole pool, which a stream does not show."""

    def action_space(self, env: PoolVectorEnv) -> spaces.Space:
        return spaces.Discrete(2)

    def observation(self, env: PoolVectorEnv, base: dict[str, spaces.Space]) -> dict[str, spaces.Space]:
        C = env.n_classes
        logp = base["log_probs"]
        out = {"candidate": spaces.Box(0.0, base["candidates"].high[0], (C + 3,), np.float32),
               "candidate_log_probs": spaces.Box(logp.low[0], logp.high[0], (C,), logp.dtype)}
        return {**out, **{key: value for key, value in base.items() if key not in self.POOL_KEYS}}

    def reset(self, env: PoolVectorEnv, state: PoolState, learners: Tensor,
              rngs: dict[int, np.random.Generator]) -> PoolState:
        if not len(learners):
            return state
        orders = torch.as_tensor(np.stack([rng.permutation(env.n_pool) for rng in rngs.values()]), device=env.device)
        return state.replace(stream_order=state.stream_order.index_put((learners,), orders))

    def arriving(self, env: PoolVectorEnv, state: PoolState) -> Tensor:
        """(B, 1) the pool index of each learner's arriving point."""
        position = state.step.clamp_max(env.n_pool - 1).unsqueeze(1)
        return state.stream_order.gather(1, position)

    def decode(self, env: PoolVectorEnv, state: PoolState, actions: Any, rows: Tensor) -> Selected:
        a = action_tensor(actions, env.device)
        message = (f"action must be an integer array of shape ({env.num_envs},) with values 0 (skip) or 1 "
                   f"(query), got dtype {a.dtype}, shape {tuple(a.shape)}")
        if tuple(a.shape) != (env.num_envs,) or a.is_floating_point() or a.is_complex():
            raise ValueError(message)
        bad = off_space(env, (a != 0) & (a != 1), lambda: message)
        selection = self.arriving(env, state)
        query = rows & (a == 1) & ~state.in_use.gather(1, selection).squeeze(1)
        return Selected(selection, query, rows & bad, 1)

    def observe(self, env: PoolVectorEnv, state: PoolState, view: PoolView,
                obs: dict[str, Tensor]) -> dict[str, Tensor]:
        arriving = self.arriving(env, state)
        probs = view.pool_probs.gather(1, arriving.unsqueeze(-1).expand(-1, -1, env.n_classes)).squeeze(1)
        in_use = state.in_use.gather(1, arriving).squeeze(1)
        log_probs = view.pool_log_probs.gather(1, arriving.unsqueeze(-1).expand(-1, -1, env.n_classes)).squeeze(1)
        out = {"candidate": env._candidate_features(probs, in_use), "candidate_log_probs": log_probs}
        return {**out, **{key: value for key, value in obs.items() if key not in self.POOL_KEYS}}

    def masks(self, env: PoolVectorEnv, state: PoolState) -> Tensor:
        return torch.ones(env.num_envs, 2, dtype=torch.bool, device=env.device)

    def sample(self, env: PoolVectorEnv, state: PoolState, rng: np.random.Generator) -> Tensor:
        return torch.as_tensor(rng.integers(0, 2, env.num_envs), device=env.device)

    def ended(self, env: PoolVectorEnv, state: PoolState) -> Tensor:
        """The stream has delivered every pool point."""
        return state.step >= env.n_pool


# ----- label sources ----------------------------------------------------------------------------------------------
class LabelSource(Protocol):
    """Who labels the selected points; like :class:`Selection`, pure in the learners' state."""

    def observation(self, env: PoolVectorEnv) -> dict[str, spaces.Space]: ...
    def reset(self, env: PoolVectorEnv, state: PoolState, rows: Tensor, learners: Tensor,
              rngs: dict[int, np.random.Generator]) -> tuple[PoolState, dict[str, Tensor]]: ...
    def labels(self, env: PoolVectorEnv, state: PoolState, view: PoolView, selection: Tensor | None) -> Tensor: ...
    def charge(self, env: PoolVectorEnv, state: PoolState,
               choice: Selected) -> tuple[PoolState, Tensor, dict[str, Tensor]]: ...
    def observe(self, env: PoolVectorEnv, state: PoolState) -> dict[str, Tensor]: ...
    def ended(self, env: PoolVectorEnv, state: PoolState) -> Tensor | None: ...


@dataclass(frozen=True)
class ModelLabels:
    """Self-training: each selected point is labeled with the model's own prediction (``"soft"``: the predicted
    probabilities sharpened by ``temperature``; ``"hard"``: the argmax class). Labels cost nothing. With a
    ``threshold`` > 0, a selected point whose predicted probability of its most probable class is below it is not
    pseudo-labeled (threshold self-training): it does not join the training set."""

    mode: str
    temperature: float | Tensor = 1.0
    """Shared, or (B,) one per learner."""
    threshold: float | Tensor = 0.0
    """Confidence threshold in [0, 1): shared, or (B,) one per learner; 0 admits every selected point."""

    def admitted(self, env: PoolVectorEnv, view: PoolView, selection: Tensor | None) -> Tensor | None:
        """(B, k) bool of the selected points, or (B, n_pool) of every pool point (expected mode), whose confidence
        reaches the threshold (compared on the log scale, from the logits); None when there is no threshold."""
        if not isinstance(self.threshold, Tensor) and self.threshold == 0.0:
            return None
        log_conf = view.pool_log_probs.max(-1).values
        if selection is not None:
            log_conf = log_conf.gather(1, selection)
        threshold = adapt.per_learner(self.threshold, log_conf)
        if isinstance(threshold, Tensor):
            log_threshold = torch.log(threshold.to(torch.float64))
        else:  # a shared threshold in (0, 1): its logarithm on the host, no tensor made from it
            log_threshold = math.log(threshold)
        return log_conf.to(torch.float64) >= log_threshold

    def observation(self, env: PoolVectorEnv) -> dict[str, spaces.Space]:
        return {}

    def reset(self, env: PoolVectorEnv, state: PoolState, rows: Tensor, learners: Tensor,
              rngs: dict[int, np.random.Generator]) -> tuple[PoolState, dict[str, Tensor]]:
        return state, {}

    def labels(self, env: PoolVectorEnv, state: PoolState, view: PoolView, selection: Tensor | None) -> Tensor:
        """(B, k, C) labels of the selected points, or (B, n_pool, C) of every pool point (expected mode)."""
        probs = view.pool_probs
        if selection is not None:  # only the selected atoms need labels
            probs = probs.gather(1, selection.unsqueeze(-1).expand(-1, -1, env.n_classes))
        return adapt.pseudo_labels(probs, self.mode, self.temperature)

    def charge(self, env: PoolVectorEnv, state: PoolState,
               choice: Selected) -> tuple[PoolState, Tensor, dict[str, Tensor]]:
        return state, torch.zeros(env.num_envs, dtype=env.dtype, device=env.device), {}

    def observe(self, env: PoolVectorEnv, state: PoolState) -> dict[str, Tensor]:
        return {}

    def ended(self, env: PoolVectorEnv, state: PoolState) -> Tensor | None:
        return None


@dataclass(frozen=True, slots=True)
class OracleState:
    """The oracle's part of a pool state."""

    keys: Tensor
    """(B, 2) int32 stream keys of the label noise (flip, shift)."""
    answers: Tensor
    """(B, n_pool) int64 the oracle's answer for each pool point (fixed for the episode)."""
    labels_spent: Tensor
    """(B,) labels bought in the episode."""

    @staticmethod
    def empty(batch: int, n_pool: int, dtype: torch.dtype, device: torch.device) -> OracleState:
        return OracleState(keys=torch.zeros(batch, 2, dtype=torch.int32, device=device),
                           answers=torch.zeros(batch, n_pool, dtype=torch.int64, device=device),
                           labels_spent=torch.zeros(batch, dtype=dtype, device=device))

    def check(self, n_classes: int, budget: int) -> None:
        ckpt.check_range("state.oracle.answers", self.answers, 0, n_classes)
        if bool((self.labels_spent < 0).any()) or bool((self.labels_spent > budget).any()):
            raise ckpt.CheckpointError(f"checkpoint field 'state.oracle.labels_spent' must lie in [0, {budget}]")


@dataclass(frozen=True)
class Oracle:
    """Active learning: each queried point gets its held-back true label, flipped to a uniformly drawn other class
    with probability ``noise`` (the answer for a point is fixed within an episode). Each label counts against the
    ``budget``; the episode ends when the budget cannot pay for another query."""

    noise: float | Tensor
    """Shared, or (B,) one per learner."""
    budget: int

    def observation(self, env: PoolVectorEnv) -> dict[str, spaces.Space]:
        return {"labels": spaces.Box(0.0, float(self.budget), (2,), np.float32)}

    def reset(self, env: PoolVectorEnv, state: PoolState, rows: Tensor, learners: Tensor,
              rngs: dict[int, np.random.Generator]) -> tuple[PoolState, dict[str, Tensor]]:
        oracle = state.oracle
        keys, answers = oracle.keys, oracle.answers
        if len(learners):
            keys = keys.index_put((learners,), crandom.draw_stream_keys(list(rngs.values()), [10, 11], env.device))
            answers = answers.index_put((learners,), self._noisy_labels(env, state, keys, learners))
        spent = torch.where(rows, 0.0, oracle.labels_spent)
        state = state.replace(oracle=OracleState(keys=keys, answers=answers, labels_spent=spent))
        return state, {"labels_spent": spent, "queried": torch.zeros_like(spent)}

    def _noisy_labels(self, env: PoolVectorEnv, state: PoolState, keys: Tensor, learners: Tensor) -> Tensor:
        """The oracle's answer for every pool point of ``learners`` whose noise keys are ``keys``."""
        y = state.labels["pool"][learners]
        eps, C = self.noise, env.n_classes
        if isinstance(eps, Tensor):
            eps = eps[learners].double().unsqueeze(1)
        elif eps == 0:
            return y
        index = torch.arange(env.n_pool, device=env.device).unsqueeze(0)
        keys = keys[learners]
        flip = crandom.uniform(keys[:, :1], index, torch.float64) < eps
        shift = 1 + (crandom.uniform(keys[:, 1:], index, torch.float64) * (C - 1)).long().clamp_max(C - 2)
        return torch.where(flip, (y + shift) % C, y)

    def admitted(self, env: PoolVectorEnv, view: PoolView, selection: Tensor | None) -> Tensor | None:
        """Every queried point gets its label (no confidence threshold)."""
        return None

    def labels(self, env: PoolVectorEnv, state: PoolState, view: PoolView, selection: Tensor | None) -> Tensor:
        """One-hot answers of the queried points; in expected mode the answer distribution of every pool point,
        ``(1 - noise) * onehot(y) + noise / (C - 1)`` on the other classes."""
        C, dt = env.n_classes, env.dtype
        if selection is None:
            onehot = adapt.one_hot(state.labels["pool"], C, dt)
            keep, spread = (adapt.per_learner(c, onehot) for c in (1.0 - self.noise, self.noise / (C - 1)))
            return keep * onehot + spread * (1.0 - onehot)
        return adapt.one_hot(state.oracle.answers.gather(1, selection), C, dt)

    def charge(self, env: PoolVectorEnv, state: PoolState,
               choice: Selected) -> tuple[PoolState, Tensor, dict[str, Tensor]]:
        """Labels bought this step (``choice.labels`` per updating learner), added to the labels spent."""
        bought = torch.where(choice.update, float(choice.labels), 0.0).to(env.dtype)
        spent = state.oracle.labels_spent + bought
        state = state.replace(oracle=replace(state.oracle, labels_spent=spent))
        return state, bought, {"labels_spent": spent, "queried": bought}

    def observe(self, env: PoolVectorEnv, state: PoolState) -> dict[str, Tensor]:
        spent = state.oracle.labels_spent
        return {"labels": torch.stack([spent, self.budget - spent], 1).float()}

    def ended(self, env: PoolVectorEnv, state: PoolState) -> Tensor:
        """The budget cannot pay for another query."""
        return state.oracle.labels_spent + env.k > self.budget


# ----- rewards and ends -------------------------------------------------------------------------------------------
REWARDS = ("val_loglik", "val_accuracy", "stability")


@dataclass(frozen=True)
class ValidationReward:
    """The reward of a pool step: the change the step caused in ``kind`` (``"val_loglik"``: mean validation
    log-likelihood of the true labels; ``"val_accuracy"``: validation accuracy; ``"stability"``:
    ``-|theta_t - theta_{t-1}|``), minus ``query_cost`` per label bought; 0 for a learner that did not update (a
    stream skip), ``penalty`` for an action the mask forbids."""

    kind: str
    penalty: float
    query_cost: float | Tensor = 0.0
    """Shared, or (B,) one per learner."""

    def __call__(self, before: dict[str, Tensor], after: dict[str, Tensor], theta_change: Tensor, choice: Selected,
                 bought: Tensor) -> Tensor:
        if self.kind == "val_loglik":
            gain = after["val_log_likelihood"] - before["val_log_likelihood"]
        elif self.kind == "val_accuracy":
            gain = after["val_accuracy"] - before["val_accuracy"]
        else:
            gain = -theta_change
        reward = torch.where(choice.update, gain, torch.zeros_like(gain))
        reward = torch.where(choice.invalid, torch.full_like(gain, self.penalty), reward)
        cost = self.query_cost
        return reward - adapt.per_learner(cost, bought) * bought if isinstance(cost, Tensor) or cost else reward


def pool_exhausted(env: PoolVectorEnv, state: PoolState) -> Tensor:
    """Fewer than k points are selectable (add mode uses the pool up)."""
    return adapt.selectable(state.reciprocal, env.config.adaptation).sum(1) < env.k


@dataclass(frozen=True)
class PoolParts:
    """The composition of a pool env."""

    selection: Any
    labels: Any
    reward: ValidationReward
    ends: tuple[Any, ...] = field(default=(pool_exhausted,))


def raise_masked(invalid: Tensor) -> None:
    learners = torch.nonzero(invalid).squeeze(1).tolist()
    raise ValueError(
        f"action selects pool points the action_mask forbids (already in use, or repeated) for learners "
        f"{learners[:10]}; with invalid_action='raise' only masked-in, distinct indices are allowed "
        "(use invalid_action='penalty' to get a penalty reward instead)"
    )


def _distinct(a: Tensor) -> Tensor:
    ordered = a.sort(1).values
    return (ordered[:, 1:] != ordered[:, :-1]).all(1)
