"""The pool-based engine shared by self-training and active learning, batched over learners in torch.

A learner holds a labeled set, an unlabeled pool, validation and test rows of a dataset, and a ridge-logistic model.
Each step the agent selects pool points, a label source labels them (the model itself for self-training, an oracle
for active learning), the training set is updated by an adaptation rule, and the model is refitted. Subclasses
declare their parts (:meth:`PoolVectorEnv.compose`: selection, label source, reward, ends; see
:mod:`reciprocal_gym.envs.pool_parts`) and their docstrings; the state (:class:`PoolState`), its view of predictions
(:class:`PoolView`) and the pure stages of a step live here once.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector.utils import batch_space
from torch import Tensor

from reciprocal_gym.arguments import (
    Choice,
    Flag,
    Integer,
    Mapping,
    Maybe,
    PerLearner,
    Real,
    check_settings,
    setting,
)
from reciprocal_gym.core import adaptation as adapt
from reciprocal_gym.core.state import ReciprocalState
from reciprocal_gym.data import (
    DATASETS,
    PARTS,
    STANDARDIZE,
    Split,
    from_arrays,
    load_dataset,
    make_split,
    resolve_sizes,
    splits_from_arrays,
    splits_from_rows,
)
from reciprocal_gym.data.datasets import MAX_FEATURE_FLOAT32
from reciprocal_gym.envs import checkpoint as ckpt
from reciprocal_gym.envs.backend import BACKENDS, pool_backend
from reciprocal_gym.envs.base import BatchedVectorEnv, real_box, resolve_dtype
from reciprocal_gym.envs.context import SelectionContext, raw_parameters
from reciprocal_gym.envs.pool_kernel import binary_pool_pass, gather_training_atoms
from reciprocal_gym.envs.pool_parts import (
    REWARDS,
    Oracle,
    OracleState,
    PoolParts,
    Selected,
    StreamSelection,
    raise_masked,
)
from reciprocal_gym.learners import (
    SOLVERS,
    FitResult,
    RowAtoms,
    default_tol,
    fit_ridge_logistic,
    folded_parameters,
    n_params,
    probs_from_logits,
    standardized_logits,
)
from reciprocal_gym.learners.irls import GLM_EPSILON, GLM_MAXIT, fit_irls_logistic, separated
from reciprocal_gym.utils.threads import torch_threads

MAX_LAM = 1e8  # a larger ridge leaves theta = 0 to rounding; the bound keeps lam finite in float32
MAX_STEPS = 2**31 - 1
INVALID_ACTIONS = ("penalty", "raise")
POOL_TOL_FLOAT64 = 1e-12
"""The pool envs' default gradient-norm tolerance of the Newton refit in float64: 1e4 below the convergence
diagnostics' default verdict tolerance (1e-8), so that "converged" means the loop settled, not that the warm-started
refit stopped moving (float32 keeps :func:`~reciprocal_gym.learners.default_tol`'s 1e-5)."""
POOL_SOLVERS = (*SOLVERS, "irls")
SYNC_FREE_ITERATIONS = 12
"""Newton iterations of every refit of a sync-free step when ``max_iter`` is not given (fixed, masked: a
warm-started refit to the default tolerance took 1-11, mean 3-7, over the pool settings measured;
``info["fit_converged"]`` says whether each reached it)."""
SYNC_FREE_CG_ITERATIONS = 40
"""Conjugate-gradient iterations of each Newton-CG step of a sync-free refit (fixed, masked; the host-checked solver
stops at its forcing term, which took at most 26 on digits active learning)."""
PENALTIES = ("mean", "sum")


class SeparationWarning(UserWarning):
    """An unpenalized fit (lam = 0) met separated classes: its maximum-likelihood estimate does not exist."""


@dataclass(frozen=True)
class PoolConfig:
    """Validated settings shared by the pool environments (see the env docstrings for the meaning)."""

    dataset: str | None = setting("breast_cancer", Maybe(Choice(DATASETS)))
    dataset_kwargs: dict[str, Any] | None = setting(None, Mapping())
    X: Any = None
    y: Any = None
    split: dict[str, Any] | list[dict[str, Any]] | None = None
    split_rows: dict[str, Any] | None = None
    n_labeled: int = setting(20, Integer(1))
    n_pool: int | None = setting(None, Maybe(Integer(1)))
    n_val: int | None = setting(None, Maybe(Integer(0)))
    n_test: int | None = setting(None, Maybe(Integer(1)))
    stratify: bool = setting(True, Flag())
    adaptation: str = setting("add", Choice(adapt.ADAPTATIONS))
    k: int = setting(1, Integer(1))
    buffer_size: int | None = setting(None, Maybe(Integer(1)))
    expected_rate: float = setting(1.0, PerLearner(0.0, 1.0, open_low=True))
    lam: float = setting(0.01, PerLearner(0.0, MAX_LAM))
    reward: str = setting("val_loglik", Choice(REWARDS))
    max_steps: int = setting(50, Integer(1, MAX_STEPS))
    invalid_action: str = setting("penalty", Choice(INVALID_ACTIONS))
    invalid_action_penalty: float = setting(-1.0, Real(-1e6, 1e6))
    dtype: Any = torch.float64
    solver: str = setting("auto", Choice(POOL_SOLVERS))
    tol: float | None = setting(None, Maybe(Real(0.0, 1.0, open_low=True)))
    max_iter: int | None = setting(None, Maybe(Integer(1, 10_000)))
    penalty: str = setting("mean", Choice(PENALTIES))
    penalize_intercept: bool = setting(True, Flag())
    standardize: str = setting("non_test", Choice(STANDARDIZE))
    warm_start: bool | None = setting(None, Maybe(Flag()))
    report_gamma: bool = setting(False, Flag())
    backend: str = setting("auto", Choice(BACKENDS))
    fit_chunk: int | None = setting(None, Maybe(Integer(1)))

    adaptations = adapt.ADAPTATIONS  # class attribute: the adaptation rules the env allows

    def __post_init__(self) -> None:
        check_settings(self)
        if self.adaptation not in self.adaptations:
            raise ValueError(f"adaptation={self.adaptation!r} is not allowed; choose one of {self.adaptations}")
        resolve_dtype(self.dtype)
        given = [self.split is not None, self.X is not None or self.y is not None]
        if sum(given) > 1:
            raise ValueError("give either split=... or X and y, not both")
        if self.split is not None and self.split_rows is not None:
            raise ValueError("give either split=... (arrays per part) or split_rows=... (row ids into X / y or the "
                             "dataset), not both")
        if (self.X is None) != (self.y is None):
            raise ValueError("X and y must be given together")
        if self.buffer_size is not None and self.adaptation != "swap":
            raise ValueError(f"buffer_size is only used by adaptation='swap', not {self.adaptation!r}")
        if self.adaptation == "subset" and self.k != 1:
            raise ValueError(f"k={self.k!r} is not used with adaptation='subset' (the action is a set of pool points "
                             "of any size); leave k at 1")
        if self.solver == "irls" and self.warm_start:
            raise ValueError("warm_start=True is not allowed with solver='irls': IRLS starts from R glm's start each "
                             "fit; leave warm_start unset (or False)")


@dataclass(frozen=True, slots=True)
class PoolState:
    """The state of B pool learners (tensors with the learner dimension first): the reciprocal state (theta and
    the adaptive training set), each learner's split of the dataset, and the labeled-only fit the gains are measured
    against. Immutable: a step returns a new one; a checkpoint is this object. ``theta``, ``weight``, ``label``,
    ``in_use``, ``age`` and ``step`` read through to ``reciprocal``."""

    reciprocal: ReciprocalState
    """theta (B, P) and the adaptive part of the training set (see :class:`~reciprocal_gym.core.ReciprocalState`)."""
    rows: dict[str, Tensor]
    """Per part (``labeled``, ``pool``, ``val``, ``test``): (B, n_part) int64 dataset row ids of each learner."""
    labels: dict[str, Tensor]
    """Per part: (B, n_part) int64 the rows' true classes."""
    mean: Tensor
    """(B, d) each learner's standardization means (from its non-test rows)."""
    scale: Tensor
    """(B, d) and scales."""
    baseline_theta: Tensor
    """(B, P) the labeled-only fit of the episode (the fit at reset)."""
    baseline_accuracy: Tensor
    """(B, 2) its validation and test accuracy."""
    oracle: OracleState | None = None
    """The oracle's answers, noise keys and labels spent (active learning; None for self-training)."""
    stream_order: Tensor | None = None
    """(B, n_pool) int64 the order in which the pool arrives (stream selection; None otherwise)."""

    theta = property(lambda self: self.reciprocal.theta)
    weight = property(lambda self: self.reciprocal.weight)
    label = property(lambda self: self.reciprocal.label)
    in_use = property(lambda self: self.reciprocal.in_use)
    age = property(lambda self: self.reciprocal.age)
    step = property(lambda self: self.reciprocal.step)

    def replace(self, **changes: Any) -> PoolState:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class PoolView:
    """What follows from a pool state and is kept between steps to save work (the workspace): never saved, rebuilt
    from the state after a restore (:meth:`PoolVectorEnv._view`)."""

    labeled_X: Tensor
    """(B, n_labeled, p) the labeled rows' standardized features with the intercept."""
    labeled_onehot: Tensor
    """(B, n_labeled, C) their one-hot labels."""
    eval_rows: Tensor
    """(B, n_pool + n_val + n_test) the pool, validation and test row ids in one index."""
    pool_probs: Tensor
    """(B, n_pool, C) the predicted probabilities at theta."""
    pool_log_probs: Tensor
    """(B, n_pool, C) their logarithms, computed from the logits (no saturation at probabilities near 1)."""
    candidates: Tensor
    """(B, n_pool, C + 3) float32 candidate features (probabilities, margin, entropy, in-use flag)."""
    metrics: dict[str, Tensor]
    """``val_log_likelihood``, ``val_accuracy``, ``test_accuracy`` (B,) at theta."""


def in_use_order(in_use: Tensor, m: int) -> tuple[Tensor, Tensor]:
    """(B, m) the pool indices of each learner's atoms in use, in pool order and padded with 0, and (B, m) which slots
    hold one; no host read. ``m`` must bound every learner's count (atoms past it would be left out)."""
    B, n = in_use.shape
    rank = in_use.cumsum(1)
    slot = torch.where(in_use & (rank <= m), rank - 1, m)
    order = torch.zeros(B, m + 1, dtype=torch.int64, device=in_use.device)
    order.scatter_(1, slot, torch.arange(n, device=in_use.device).expand_as(slot))
    filled = torch.arange(m, device=in_use.device).unsqueeze(0) < rank[:, -1:]
    return order[:, :m], filled


class PoolVectorEnv(BatchedVectorEnv):
    """Base of the pool environments; see :class:`reciprocal_gym.envs.SelfTrainVectorEnv` for the full contract.

    A subclass declares ``config_class`` and :meth:`compose` (its :class:`~reciprocal_gym.envs.pool_parts.PoolParts`).
    The env holds ``state`` (a :class:`PoolState`) and ``view`` (a :class:`PoolView`); the stages of a step are
    functions of a state (and its view) that return new ones: ``decode -> label -> _adapt -> _refit -> _predict ->
    reward -> ends``, and the shell assigns the results once (:meth:`_step_rows`).
    """

    config_class: type[PoolConfig] = PoolConfig
    supports_sync_free = True

    def _setup(self) -> None:
        cfg = self.config
        if cfg.fit_chunk is not None and not self.sync_free:
            raise ValueError(f"fit_chunk={cfg.fit_chunk!r} is used by sync-free steps only (sync_free=True or "
                             "'graph'); leave it unset")
        if self.sync_free:
            refused = [text for bad, text in ((cfg.invalid_action == "raise", "invalid_action='raise' (an error needs "
                                               "the actions on the host)"),
                                              (cfg.solver == "irls", "solver='irls' (R's IRLS stops on the host)"),
                                              (cfg.report_gamma, "report_gamma=True (an eigen decomposition checks "
                                               "its result on the host)")) if bad]
            if refused:
                raise ValueError("sync_free=True does not allow " + "; ".join(refused))
        self._fixed_splits: list[Split] | None = None  # one shared by every learner, or one per learner
        if cfg.split is not None:
            self.dataset, self._fixed_splits = splits_from_arrays(cfg.split, cfg.standardize)
        else:
            if cfg.X is not None:
                self.dataset = from_arrays(cfg.X, cfg.y)
            elif cfg.dataset is None:
                raise ValueError("dataset=None needs X and y arrays or a split")
            else:
                self.dataset = load_dataset(cfg.dataset, **(cfg.dataset_kwargs or {}))
            if cfg.split_rows is not None:
                self._fixed_splits = splits_from_rows(self.dataset, cfg.split_rows, self.num_envs, cfg.standardize)
        if self._fixed_splits is not None:
            if len(self._fixed_splits) not in (1, self.num_envs):
                raise ValueError(f"split has {len(self._fixed_splits)} splits for num_envs={self.num_envs}: give one "
                                 "split shared by every learner or a list with one per learner")
            n_rows = {key: len(rows) for key, rows in self._fixed_splits[0].rows.items()}
            self.sizes = resolve_sizes(self.dataset.n_samples, n_rows["labeled"], n_rows["pool"], n_rows["val"],
                                       n_rows["test"])
        else:
            self.sizes = resolve_sizes(self.dataset.n_samples, cfg.n_labeled, cfg.n_pool, cfg.n_val, cfg.n_test)
        if self.sizes.n_val == 0 and cfg.reward in ("val_loglik", "val_accuracy"):
            raise ValueError(f"reward={cfg.reward!r} needs validation rows and this split has none (n_val=0): choose "
                             "reward='stability', or give validation rows")
        if self.dtype == torch.float32 and float(np.abs(self.dataset.X).max()) > MAX_FEATURE_FLOAT32:
            raise ValueError(f"dtype=torch.float32 needs features within +-{MAX_FEATURE_FLOAT32:g}; the data have "
                             f"values up to {float(np.abs(self.dataset.X).max()):.3g}: use dtype=torch.float64 or "
                             "rescale the features")
        self.n_classes = self.dataset.n_classes
        self.n_features = self.dataset.n_features + 1
        self.n_pool = self.sizes.n_pool
        self.k = int(cfg.k)
        if self.k > self.n_pool:
            raise ValueError(f"k={self.k} is not allowed; it must be <= n_pool={self.n_pool}")
        self.buffer_size = int(cfg.buffer_size if cfg.buffer_size is not None else self.sizes.n_labeled)
        if cfg.adaptation == "swap" and not (self.k <= self.buffer_size <= self.n_pool - self.k):
            raise ValueError(
                f"buffer_size={self.buffer_size} is not allowed with k={self.k} and n_pool={self.n_pool}; "
                f"swap needs k <= buffer_size <= n_pool - k"
            )
        self.n_params = n_params(self.n_features, self.n_classes)
        if cfg.solver == "irls" and self.n_classes != 2:
            raise ValueError(f"solver='irls' fits binary models (R glm's binomial family); the data have "
                             f"{self.n_classes} classes: use solver='auto', 'newton' or 'newton-cg'")
        own_solver = [text for bad, text in ((cfg.solver == "irls", "solver='irls'"),
                                             (not cfg.penalize_intercept, "penalize_intercept=False")) if bad]
        self.backend = pool_backend(cfg.backend, self.device, self.dtype, self.n_classes, torch_fit=own_solver,
                                    sync_free=self.sync_free)
        self._warned_separation = False
        self._lam = self.learner_setting("lam")  # float, or (B,) one per learner
        self._unpenalized = bool((self._lam == 0) if isinstance(self._lam, float) else (self._lam == 0).any())
        self._expected_rate = self.learner_setting("expected_rate")
        self.parts: PoolParts = self.compose()
        self._build_spaces()
        # the dataset once on the device; each learner holds row numbers and standardization statistics
        self._base_X = torch.as_tensor(self.dataset.X, dtype=self.dtype, device=self.device)
        self.state = self._empty_state()
        self.view = self._view(self.state)
        self._atom_bound = 0

    def _empty_state(self) -> PoolState:
        B, dev, dt = self.num_envs, self.device, self.dtype
        d = self.dataset.n_features
        sizes = {part: getattr(self.sizes, f"n_{part}") for part in PARTS}
        return PoolState(
            reciprocal=ReciprocalState.empty(B, self.n_pool, self.n_classes, self.n_params, dt, dev),
            rows={part: torch.zeros(B, n, dtype=torch.int64, device=dev) for part, n in sizes.items()},
            labels={part: torch.zeros(B, n, dtype=torch.int64, device=dev) for part, n in sizes.items()},
            mean=torch.zeros(B, d, dtype=dt, device=dev),
            scale=torch.ones(B, d, dtype=dt, device=dev),
            baseline_theta=torch.zeros(B, self.n_params, dtype=dt, device=dev),
            baseline_accuracy=torch.zeros(B, 2, dtype=dt, device=dev),
            oracle=OracleState.empty(B, self.n_pool, dt, dev) if isinstance(self.parts.labels, Oracle) else None,
            stream_order=(torch.zeros(B, self.n_pool, dtype=torch.int64, device=dev)
                          if isinstance(self.parts.selection, StreamSelection) else None),
        )

    def _view(self, state: PoolState) -> PoolView:
        """The whole workspace of ``state``, computed afresh."""
        every = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        return self._predict(state, self._split_view(state, every, None), every)

    def _rebuild_workspace(self) -> None:
        self.view = self._view(self.state)
        self._count_atoms()

    def _check_state(self, state: PoolState) -> None:
        n_rows, C = self.dataset.n_samples, self.n_classes
        for part in PARTS:
            ckpt.check_range(f"state.rows.{part}", state.rows[part], 0, n_rows)
            ckpt.check_range(f"state.labels.{part}", state.labels[part], 0, C)
        r = state.reciprocal
        ckpt.check_range("state.reciprocal.step", r.step, 0, self.config.max_steps + 1)
        ckpt.check_range("state.reciprocal.age", r.age, -1, self.config.max_steps + 1)
        if bool((r.weight < 0).any()) or bool((r.label < 0).any()) or bool((state.scale <= 0).any()):
            raise ckpt.CheckpointError("checkpoint fields 'state.reciprocal.weight' / 'label' / 'state.scale' hold "
                                       "negative values")
        if bool((r.in_use != (r.weight > 0)).any()) and self.config.adaptation != "expected":
            raise ckpt.CheckpointError("checkpoint field 'state.reciprocal.in_use' disagrees with the weights")
        if state.oracle is not None:
            state.oracle.check(self.n_classes, self.parts.labels.budget)
        if state.stream_order is not None:
            ckpt.check_range("state.stream_order", state.stream_order, 0, self.n_pool)

    # ----- spaces ---------------------------------------------------------------------------------------------
    def _build_spaces(self) -> None:
        C, n = self.n_classes, self.n_pool
        np_dtype = np.float64 if self.dtype == torch.float64 else np.float32
        high = np.ones(C + 3, dtype=np.float32)
        high[C + 1] = np.float32(math.log(C)) + np.float32(1e-5)
        cand_high = np.broadcast_to(high, (n, C + 3)).copy()
        max_size = self.sizes.n_labeled + max(self.n_pool, self.k)
        base = self.parts.selection.observation(self, {
            "candidates": spaces.Box(0.0, cand_high, dtype=np.float32),
            "log_probs": spaces.Box(float(np.finfo(np_dtype).min), 0.0, (n, C), dtype=np_dtype),
            "action_mask": spaces.MultiBinary(n),
            "theta": real_box((self.n_params,)),
            "scalars": spaces.Box(
                0.0, np.array([self.config.max_steps, max_size, n], dtype=np.float32), dtype=np.float32
            ),
        })
        self.single_observation_space = spaces.Dict({**base, **self.parts.labels.observation(self)})
        self.single_action_space = self.parts.selection.action_space(self)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    # ----- episode start --------------------------------------------------------------------------------------
    def _reset_rows(self, rows: Tensor, rngs: dict[int, np.random.Generator]) -> dict[str, Tensor]:
        state = self.state
        # draw the splits on the CPU, then copy them to the device in one transfer per field
        fixed = self._fixed_splits
        splits = [
            (fixed[i if len(fixed) > 1 else 0] if fixed is not None else
             make_split(self.dataset, self.sizes, rng, stratify=self.config.stratify,
                        standardize=self.config.standardize))
            for i, rng in rngs.items()
        ]
        learners = torch.as_tensor(list(rngs), dtype=torch.int64, device=self.device)
        if splits:
            def put(old: Tensor, values: np.ndarray) -> Tensor:
                return old.index_put((learners,), torch.as_tensor(values, dtype=old.dtype, device=self.device))

            state = state.replace(
                rows={part: put(state.rows[part], np.stack([sp.rows[part] for sp in splits])) for part in PARTS},
                labels={part: put(state.labels[part], np.stack([sp.y[part] for sp in splits])) for part in PARTS},
                mean=put(state.mean, np.stack([sp.mean for sp in splits])),
                scale=put(state.scale, np.stack([sp.scale for sp in splits])),
            )
        empty = ReciprocalState.empty(self.num_envs, self.n_pool, self.n_classes, self.n_params, self.dtype,
                                      self.device)
        state = state.replace(reciprocal=state.reciprocal.where(rows, empty))
        view = self._split_view(state, rows, self.view)
        state, fit, label_stats = self._refit(state, view, rows)
        view = self._predict(state, view, rows)
        accuracy = torch.stack([view.metrics["val_accuracy"], view.metrics["test_accuracy"]], 1)
        state = state.replace(
            baseline_theta=torch.where(rows.view(-1, 1), state.theta, state.baseline_theta),
            baseline_accuracy=torch.where(rows.view(-1, 1), accuracy, state.baseline_accuracy),
        )
        zero = torch.zeros(self.num_envs, dtype=self.dtype, device=self.device)
        values = self._step_info(state, view, fit, zero, torch.zeros_like(rows), label_stats)
        state, label_values = self.parts.labels.reset(self, state, rows, learners, rngs)  # draws after the splits
        state = self.parts.selection.reset(self, state, learners, rngs)
        self.state, self.view = state, view
        self._count_atoms()
        return {**values, **label_values}

    # ----- the host's bound on the training-set size (sync-free steps) ----------------------------------------------
    def _count_atoms(self) -> None:
        """After a reset or a restore (which read the host anyway): the largest number of pool atoms in use."""
        if self.sync_free and not self.fixed_shapes:
            self._atom_bound = int(self.state.in_use.sum(1).max()) if self.num_envs else 0

    def _atom_bound_after_step(self) -> int | None:
        """The host's upper bound on the pool atoms in use after this step (None: the whole pool): it grows by what
        one step can add (k points, one in a stream), up to the pool or the swap buffer; a mean-field law or a subset
        may use the whole pool at once. Kept without reading the state, so a sync-free step gathers the training set
        into that many slots: O(training set) per fit, as in the default engine, not O(pool)."""
        cfg = self.config
        if self.fixed_shapes or cfg.adaptation in ("expected", "subset"):
            return None
        growth = 1 if isinstance(self.parts.selection, StreamSelection) else self.k
        cap = self.buffer_size if cfg.adaptation == "swap" else self.n_pool
        self._atom_bound = min(cap, self._atom_bound + growth)
        return self._atom_bound

    # ----- the reciprocal step ----------------------------------------------------------------------------------
    def compose(self) -> PoolParts:
        """The parts of this env (selection, label source, reward, ends): see :mod:`reciprocal_gym.envs.pool_parts`."""
        raise NotImplementedError

    def _step_rows(self, actions: Any, rows: Tensor) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """select -> label -> adapt -> refit -> predict -> reward -> end, for learners ``rows``; every learner in
        ``rows`` counts a step, those whose action is forbidden or who skip keep their training set and model. Each
        stage takes the state (and its view) and returns new ones; they are assigned to the env at the end."""
        cfg, parts = self.config, self.parts
        state, view = self.state, self.view
        choice = parts.selection.decode(self, state, actions, rows)
        if cfg.invalid_action == "raise" and bool(choice.invalid.any()):
            raise_masked(choice.invalid)
        whole_pool = cfg.adaptation in ("expected", "subset")  # a law or a set over the pool: labels for every point
        labels = parts.labels.labels(self, state, view, None if whole_pool else choice.selection)
        admitted = parts.labels.admitted(self, view, None if whole_pool else choice.selection)
        below = None
        if admitted is not None and whole_pool:  # the law's mass, or the set's points, below the threshold drop out
            below = ((choice.selection > 0) & ~admitted & choice.update.unsqueeze(1)).sum(1)
            choice = replace(choice, selection=choice.selection & admitted if cfg.adaptation == "subset"
                             else choice.selection * admitted)
        before = state.reciprocal
        moved = self._adapt(before, choice, labels)
        if admitted is not None and not whole_pool:  # selected points below the threshold do not join
            rejected = torch.zeros_like(moved.in_use).scatter(1, choice.selection, ~admitted)
            rejected = rejected & choice.update.unsqueeze(1)
            moved = adapt.drop(moved, rejected)
            below = rejected.sum(1)
        moved = moved.replace(step=moved.step + 1)
        update = choice.update
        if self.sync_free or not bool(update.all()):  # a learner that does not update still counts the step
            counted = before.replace(step=before.step + 1)
            quick = not self.sync_free
            moved = before.where(rows & ~update, counted, quick).where(update, moved, quick)
        bound = self._atom_bound_after_step() if self.sync_free else None
        new, fit, label_stats = self._refit(state.replace(reciprocal=moved), view, update, fixed=self.sync_free,
                                            bound=bound)
        new_view = self._predict(new, view, update)
        theta_change = (new.theta - before.theta).norm(dim=1)
        new, bought, label_info = parts.labels.charge(self, new, choice)
        reward = parts.reward(view.metrics, new_view.metrics, theta_change, choice, bought)
        ended = torch.zeros_like(rows)
        for end in (*parts.ends, parts.labels.ended, parts.selection.ended):
            flag = end(self, new)
            if flag is not None:
                ended = ended | flag
        terminated = rows & ended
        truncated = rows & ~terminated & (new.step >= cfg.max_steps)
        info = self._step_info(new, new_view, fit, theta_change, choice.invalid, label_stats)
        if below is not None:
            info["below_threshold"] = below
        self.state, self.view = new, new_view
        return reward, terminated, truncated, {**info, **label_info}

    def _adapt(self, state: ReciprocalState, choice: Selected, labels: Tensor) -> ReciprocalState:
        """The training-set update of the configured adaptation rule."""
        cfg, selection = self.config, choice.selection
        if choice.evict is not None:
            return adapt.evict(state, selection, labels, choice.evict, self.buffer_size)
        if cfg.adaptation == "add":
            return adapt.add(state, selection, labels)
        if cfg.adaptation == "amend":
            return adapt.amend(state, selection, labels)
        if cfg.adaptation == "swap":
            return adapt.swap(state, selection, labels, self.buffer_size)
        if cfg.adaptation == "subset":
            return adapt.subset(state, selection, labels)
        return adapt.expected(state, selection, labels, float(self.k), self._expected_rate)

    # ----- ERM and predictions --------------------------------------------------------------------------------
    def _split_view(self, state: PoolState, rows: Tensor, previous: PoolView | None) -> PoolView:
        """The view's split part (labeled features and labels, the evaluation rows) for learners ``rows`` of
        ``state``; the rest, and the predictions, from ``previous``."""
        st = state
        labeled_X = self._features(st, st.rows["labeled"])
        if previous is not None and not bool(rows.all()):
            labeled_X = torch.where(rows.view(-1, 1, 1), labeled_X, previous.labeled_X)
        B, dt, dev = self.num_envs, self.dtype, self.device
        return PoolView(
            labeled_X=labeled_X,
            labeled_onehot=torch.nn.functional.one_hot(st.labels["labeled"], self.n_classes).to(dt),
            eval_rows=torch.cat([st.rows["pool"], st.rows["val"], st.rows["test"]], dim=1),
            pool_probs=previous.pool_probs if previous is not None else torch.zeros(
                B, self.n_pool, self.n_classes, dtype=dt, device=dev),
            pool_log_probs=previous.pool_log_probs if previous is not None else torch.zeros(
                B, self.n_pool, self.n_classes, dtype=dt, device=dev),
            candidates=previous.candidates if previous is not None else torch.zeros(
                B, self.n_pool, self.n_classes + 3, dtype=torch.float32, device=dev),
            metrics=previous.metrics if previous is not None else {
                key: torch.zeros(B, dtype=dt, device=dev)
                for key in ("val_log_likelihood", "val_accuracy", "test_accuracy")},
        )

    def _training_atoms(self, state: PoolState, view: PoolView, idx: Tensor | None, bound: int | None = None
                        ) -> tuple[RowAtoms, Tensor, Tensor, tuple[Tensor, Tensor] | None]:
        """Atoms, weights and labels of the training sets of learners ``idx``: labeled rows + pool atoms in use.

        In the index modes only the atoms in use are gathered (in pool order, padded with zero-weight slots to the
        largest count among ``idx``), so a fit costs O(training-set size), not O(pool size). With the compiled
        backend, every learner's in one pass (:func:`~reciprocal_gym.envs.pool_kernel.gather_training_atoms`), which
        also returns the pool mass in use and its mislabeled part (else None). ``idx`` None: every learner, without
        host reads (the sync-free step): the atoms in use gathered into ``bound`` slots, an upper bound of the count
        the host keeps (:meth:`_atom_bound_after_step`), or with ``bound`` None the whole pool (zero weight where not
        in use; the fixed shapes of ``sync_free="graph"``)."""
        r = state.reciprocal
        n_labeled = self.sizes.n_labeled
        n_learners = self.num_envs if idx is None else len(idx)
        every = n_learners == self.num_envs  # the common case: no gathers of per-learner tensors needed
        if idx is None:
            if bound is None or bound >= self.n_pool:
                pool_rows, weight, label = state.rows["pool"], r.weight, r.label
            else:
                order, filled = in_use_order(r.in_use, bound)
                weight = torch.where(filled, r.weight.gather(1, order), 0.0)
                pool_rows = state.rows["pool"].gather(1, order)
                label = r.label.gather(1, order.unsqueeze(-1).expand(-1, -1, self.n_classes))
        elif self.config.adaptation == "expected":
            pool_rows = state.rows["pool"][idx]
            weight, label = r.weight[idx], r.label[idx]
        elif every and self.backend.gather:
            rows_all, w, Q, mass, wrong = gather_training_atoms(
                r.in_use, r.weight, r.label, state.labels["pool"], state.rows["pool"], state.rows["labeled"],
                view.labeled_onehot)
            return RowAtoms(self._base_X, rows_all, state.mean, state.scale), w, Q, (mass, wrong)
        else:
            rows = idx.unsqueeze(1)
            in_use = r.in_use[idx]
            count = in_use.sum(1)
            fewest, m = (int(v) for v in torch.aminmax(count)) if len(idx) else (0, 0)
            if fewest == m:  # the usual case, every learner uses as many atoms: their indices row by row
                order = torch.nonzero(in_use)[:, 1].view(len(idx), m)
                weight = r.weight[rows, order]
            else:
                order, filled = in_use_order(in_use, m)
                weight = torch.where(filled, r.weight[rows, order], 0.0)
            pool_rows = state.rows["pool"][rows, order]
            label = r.label[rows, order]
        # labeled rows then pool atoms, as rows of the dataset standardized per learner: the CPU solver builds each
        # learner's atoms as it fits it, other solvers materialize them
        labeled = state.rows["labeled"] if every else state.rows["labeled"][idx]
        mean, scale = (state.mean, state.scale) if every else (state.mean[idx], state.scale[idx])
        X = RowAtoms(self._base_X, torch.cat([labeled, pool_rows], dim=1), mean, scale)
        ones = torch.ones(n_learners, n_labeled, dtype=self.dtype, device=self.device)
        w = torch.cat([ones, weight], dim=1)
        Q = torch.cat([view.labeled_onehot if every else view.labeled_onehot[idx], label], dim=1)
        return X, w, Q, None

    def _features(self, state: PoolState, rows: Tensor) -> Tensor:
        """Standardized features with intercept for dataset rows ``rows`` (B, n) of every learner."""
        return RowAtoms(self._base_X, rows, state.mean, state.scale).materialize()

    def _refit(self, state: PoolState, view: PoolView, rows: Tensor, fixed: bool = False, bound: int | None = None
               ) -> tuple[PoolState, dict[str, Tensor], tuple[Tensor, Tensor] | None]:
        """``state`` with learners ``rows`` refitted, warm-started from their current theta; the per-learner fit
        reports (for the others: 0 iterations, gradient norm 0, converged, gamma = lam) and the training sets'
        pseudo-label statistics when the gather made them (see :meth:`_training_atoms`). ``fixed``: the sync-free
        refit (every learner, its atoms in use in ``bound`` slots or its whole pool, a fixed number of masked
        iterations, no host reads)."""
        cfg = self.config
        B = self.num_envs
        if fixed:
            X, w, Q, _ = self._training_atoms(state, view, None, bound)
            chunk = cfg.fit_chunk or B
            blocks = []
            for start in range(0, B, chunk):  # fixed blocks of learners: the fit's temporaries stay bounded
                part = slice(start, start + chunk)
                lam = self._lam[part] if isinstance(self._lam, Tensor) else self._lam
                atoms = RowAtoms(X.table, X.rows[part], X.mean[part], X.scale[part]) if chunk < B else X
                blocks.append(self._fit(atoms, w[part], Q[part], lam, state.theta[part], active=rows[part]))
            if len(blocks) == 1:
                fit, split_classes = blocks[0]
            else:
                fit = FitResult(*(torch.cat([getattr(b[0], name) for b in blocks])
                                  for name in ("theta", "iterations", "grad_norm", "converged")), gamma=None)
                split_classes = torch.cat([b[1] for b in blocks])
            state = state.replace(reciprocal=state.reciprocal.replace(theta=fit.theta))
            zero = torch.zeros((), dtype=self.dtype, device=self.device)
            return state, {"fit_iterations": fit.iterations, "fit_grad_norm": torch.where(rows, fit.grad_norm, zero),
                           "fit_converged": (fit.converged | ~rows) & ~split_classes,
                           "fit_separated": split_classes & rows}, None
        idx = torch.nonzero(rows).squeeze(1)
        every = len(idx) == B
        fitted: dict[str, Tensor] = {}
        label_stats = None
        if len(idx):
            X, w, Q, label_stats = self._training_atoms(state, view, idx)
            lam = self._lam if every or not isinstance(self._lam, Tensor) else self._lam[idx]
            fit, split_classes = self._fit(X, w, Q, lam, state.theta if every else state.theta[idx],
                                           cfg.report_gamma)
            theta = fit.theta if every else state.theta.index_copy(0, idx, fit.theta)
            state = state.replace(reciprocal=state.reciprocal.replace(theta=theta))
            fitted = {"fit_iterations": fit.iterations, "fit_grad_norm": fit.grad_norm,
                      "fit_converged": fit.converged & ~split_classes, "fit_separated": split_classes}
            if cfg.report_gamma:
                fitted["gamma"] = fit.gamma
        if every:
            return state, fitted, label_stats
        report = {
            "fit_iterations": torch.zeros(B, dtype=torch.int64, device=self.device),
            "fit_grad_norm": torch.zeros(B, dtype=self.dtype, device=self.device),
            "fit_converged": torch.ones(B, dtype=torch.bool, device=self.device),
            "fit_separated": torch.zeros(B, dtype=torch.bool, device=self.device),
        }
        if cfg.report_gamma:  # learners not refitted: the ridge's bound (0 with a free intercept, lam / W for "sum")
            lam = self._lam if isinstance(self._lam, Tensor) else torch.full((B,), self._lam, dtype=torch.float64,
                                                                              device=self.device)
            if cfg.penalty == "sum":
                lam = lam / (self.sizes.n_labeled + state.weight.sum(1)).to(lam.dtype)
            if not cfg.penalize_intercept:
                lam = torch.zeros_like(lam)
            report["gamma"] = lam.to(self.dtype)
        return state, {key: report[key].index_copy(0, idx, fitted[key]) if fitted else value
                       for key, value in report.items()}, label_stats

    def _fit(self, X: RowAtoms, w: Tensor, Q: Tensor, lam: float | Tensor, theta: Tensor,
             compute_gamma: bool = False, active: Tensor | None = None) -> tuple[FitResult, Tensor]:
        """The ERM step under the configured learner conventions (``penalty``, ``penalize_intercept``,
        ``warm_start``, ``solver``): the fit of atoms ``X`` with weights ``w`` and labels ``Q`` at ridge ``lam``
        (float or (len,) tensor), warm-started at ``theta`` if so configured, and (len,) flags of the unpenalized
        fits that met separated classes (then never reported converged; a :class:`SeparationWarning` the first
        time, not in a sync-free step). ``active`` (B,): the sync-free fit of these learners (a fixed number of
        masked iterations; the others keep ``theta``)."""
        cfg = self.config
        total = w.sum(1)
        irls = cfg.solver == "irls"
        # the solvers take the ridge on the scale of their objective: the mean loss (Newton) or the sum (IRLS)
        if cfg.penalty == "sum":
            lam_mean, lam_sum = lam / total, lam
        else:
            lam_mean, lam_sum = lam, lam * total
        if irls:
            atoms = X.materialize() if isinstance(X, RowAtoms) else X
            fit = fit_irls_logistic(atoms, w, Q[..., 1], lam_sum, free_intercept=not cfg.penalize_intercept,
                                    epsilon=GLM_EPSILON if cfg.tol is None else cfg.tol,
                                    max_iter=GLM_MAXIT if cfg.max_iter is None else cfg.max_iter)
        else:
            warm = cfg.warm_start is None or cfg.warm_start
            fixed = active is not None
            max_iter = cfg.max_iter if cfg.max_iter is not None else SYNC_FREE_ITERATIONS if fixed else 50
            start = theta if warm else torch.zeros_like(theta)
            fit = fit_ridge_logistic(X, w, Q, lam_mean, theta0=start, backend=self.backend.fit,
                                     tol=self.solver_tolerance, max_iter=max_iter, solver=cfg.solver,
                                     compute_gamma=compute_gamma, free_intercept=not cfg.penalize_intercept,
                                     fixed_iterations=fixed, active=active,
                                     max_cg=SYNC_FREE_CG_ITERATIONS if fixed else 200)
            if fixed and not warm:  # the learners outside ``active`` keep their parameters
                fit = replace(fit, theta=torch.where(active.unsqueeze(1), fit.theta, theta))
        if not self._unpenalized:
            return fit, torch.zeros(len(w), dtype=torch.bool, device=w.device)
        atoms = X.materialize() if isinstance(X, RowAtoms) else X
        flags = separated(atoms, w, Q, fit.theta)
        if isinstance(lam, Tensor):
            flags = flags & (lam == 0).to(flags.device)
        if active is None and bool(flags.any()) and not self._warned_separation:
            self._warned_separation = True
            warnings.warn(
                f"{int(flags.sum())} of {len(flags)} unpenalized fits (lam=0) met separated classes: the "
                "maximum-likelihood estimate does not exist, theta grows until the solver stops, and the results "
                "then depend on the solver's tolerance (info['fit_separated'] marks them; warned once per env). "
                "Use lam > 0 for a fit that always exists.", SeparationWarning, stacklevel=2)
        return fit, flags

    def _predict(self, state: PoolState, view: PoolView, rows: Tensor) -> PoolView:
        """``view`` with the predictions of learners ``rows`` recomputed from ``state``: pool probabilities,
        candidate features and validation / test metrics.

        One matrix product gives every learner's logits on every dataset row (the standardization is folded into
        the parameters); the learners' pool, validation and test rows are then read from it. With the compiled backend
        (float64 binary learners on the CPU) the compiled pass (:mod:`reciprocal_gym.envs.pool_kernel`, the product
        done by chunks of learners) does it, which recomputes every learner (those outside ``rows`` have unchanged
        parameters and get the same values again); otherwise torch ops."""
        C = self.n_classes
        if self.backend.predict:
            weights, bias = folded_parameters(state.theta, state.mean, state.scale)
            pool_probs, log_probs, candidates, metrics = binary_pool_pass(
                self._base_X, weights, bias, view.eval_rows, self.n_pool, state.labels["val"], state.labels["test"],
                state.in_use)
            return replace(view, pool_probs=pool_probs, pool_log_probs=log_probs, candidates=candidates,
                           metrics={**view.metrics, **metrics})
        logits = standardized_logits(self._base_X, state.theta, state.mean, state.scale, C)
        if C == 2:
            logits = logits.gather(1, view.eval_rows)
        else:
            logits = logits.gather(1, view.eval_rows.unsqueeze(-1).expand(-1, -1, C))
        n_pool, n_val = self.n_pool, self.sizes.n_val
        pool = probs_from_logits(logits[:, :n_pool], C)
        if C == 2:
            pool_z = logits[:, :n_pool]
            log_probs = torch.stack([torch.nn.functional.logsigmoid(-pool_z),
                                     torch.nn.functional.logsigmoid(pool_z)], -1)
        else:
            log_probs = torch.log_softmax(logits[:, :n_pool], -1)
        val_z, test_z = logits[:, n_pool : n_pool + n_val], logits[:, n_pool + n_val :]
        y_val, y_test = state.labels["val"], state.labels["test"]
        if C == 2:  # log p(y | x) = logsigmoid(+-z); the prediction is the sign of z
            val_ll = torch.nn.functional.logsigmoid(torch.where(y_val == 1, val_z, -val_z))
            val_hit = (val_z > 0) == (y_val == 1)
            test_hit = (test_z > 0) == (y_test == 1)
        else:
            val_ll = torch.log_softmax(val_z, -1).gather(2, y_val.unsqueeze(-1)).squeeze(-1)
            val_hit = val_z.argmax(-1) == y_val
            test_hit = test_z.argmax(-1) == y_test
        n_val_rows = max(n_val, 1)  # no validation rows: the validation metrics are 0 and left out of info
        metrics = {
            "val_log_likelihood": val_ll.sum(1) / n_val_rows,
            "val_accuracy": val_hit.to(self.dtype).sum(1) / n_val_rows,
            "test_accuracy": test_hit.to(self.dtype).mean(1),
        }
        candidates = self._candidate_features(pool, state.in_use)
        if rows is self._all_rows or (not self.sync_free and bool(rows.all())):
            return replace(view, pool_probs=pool, pool_log_probs=log_probs, candidates=candidates, metrics=metrics)
        return replace(
            view,
            pool_probs=torch.where(rows.view(-1, 1, 1), pool, view.pool_probs),
            pool_log_probs=torch.where(rows.view(-1, 1, 1), log_probs, view.pool_log_probs),
            candidates=torch.where(rows.view(-1, 1, 1), candidates, view.candidates),
            metrics={key: torch.where(rows, value, view.metrics[key]) for key, value in metrics.items()},
        )

    # ----- outputs --------------------------------------------------------------------------------------------
    def _step_info(self, state: PoolState, view: PoolView, fit: dict[str, Tensor], theta_change: Tensor,
                   invalid: Tensor, label_stats: tuple[Tensor, Tensor] | None = None) -> dict[str, Tensor]:
        """The per-learner info; ``label_stats``: the pool mass in use and its mislabeled part, if the compiled
        gather of this very training set made them."""
        r = state.reciprocal
        if label_stats is not None:
            mass, wrong = label_stats
        else:
            mass = r.weight.sum(1)
            true_label_prob = r.label.gather(2, state.labels["pool"].unsqueeze(-1)).squeeze(-1)
            wrong = (r.weight * (1.0 - true_label_prob)).sum(1)
        pseudo_error = torch.where(mass > 0, wrong / torch.where(mass > 0, mass, 1.0), 0.0)
        metrics = view.metrics
        if self.sizes.n_val == 0:  # no validation rows: no validation metrics
            metrics = {"test_accuracy": metrics["test_accuracy"]}
        info = {
            **metrics,
            "theta_change": theta_change,
            "train_size": self.sizes.n_labeled + mass,
            "pseudo_label_error": pseudo_error,
            "val_accuracy_gain": (metrics["val_accuracy"] - state.baseline_accuracy[:, 0]
                                  if self.sizes.n_val else None),
            "test_accuracy_gain": metrics["test_accuracy"] - state.baseline_accuracy[:, 1],
            "theta_from_labeled_only": (r.theta - state.baseline_theta).norm(dim=1),
            **fit,
            "invalid_action": invalid,
        }
        return {key: value for key, value in info.items() if value is not None}

    def _candidate_features(self, probs: Tensor, in_use: Tensor) -> Tensor:
        """(..., C + 3) float32 features per candidate: probabilities, margin, entropy, in-use flag.

        Written column by column into one buffer (a ``cat`` along a short last dimension is slow on CPU)."""
        C = self.n_classes
        out = torch.empty(*probs.shape[:-1], C + 3, dtype=torch.float32, device=probs.device)
        p = out[..., :C]
        p.copy_(probs)  # features are computed at the observation's precision
        tiny = torch.finfo(torch.float32).tiny  # p log max(p, tiny) is 0 at p = 0, like xlogy
        margin, entropy = out[..., C], out[..., C + 1]
        if C == 2:
            p0, p1 = p[..., 0], p[..., 1]
            torch.sub(p1, p0, out=margin).abs_()
            torch.mul(p0, p0.clamp_min(tiny).log(), out=entropy)
            entropy.add_(p1 * p1.clamp_min(tiny).log()).neg_()
        else:
            top2 = p.topk(2, dim=-1).values
            torch.sub(top2[..., 0], top2[..., 1], out=margin)
            torch.sum(p * p.clamp_min(tiny).log(), dim=-1, out=entropy).neg_()
        out[..., C + 2] = in_use
        return out

    def _observe(self) -> dict[str, Tensor]:
        return self._observation(self.state, self.view)

    def _observation(self, state: PoolState, view: PoolView) -> dict[str, Tensor]:
        # the candidate features are made with the predictions: a learner's in-use flags change only when it adapts
        # or resets, and its predictions are then recomputed
        mask = adapt.selectable(state.reciprocal, self.config.adaptation)
        train_size = self.sizes.n_labeled + state.weight.sum(1)
        scalars = torch.stack([state.step.to(self.dtype), train_size, mask.sum(1).to(self.dtype)], 1)
        obs = {
            "candidates": view.candidates,
            "log_probs": view.pool_log_probs,
            "action_mask": mask.to(torch.int8),
            "theta": state.theta.float(),
            "scalars": scalars.float(),
        }
        return {**self.parts.selection.observe(self, state, view, obs), **self.parts.labels.observe(self, state)}

    def parameters(self) -> Tensor:
        return self.state.theta

    def selection_context(self) -> SelectionContext:
        """What a selection criterion may use about every learner now (features, row ids, theta in both units,
        float64 logits and probabilities, the training and labeled sets): see
        :class:`~reciprocal_gym.envs.context.SelectionContext`. Reading it changes nothing."""
        with torch_threads(self._torch_threads):
            return self._selection_context()

    def _selection_context(self) -> SelectionContext:
        state, f64, C = self.state, torch.float64, self.n_classes
        X = self._base_X.to(f64)
        mean, scale, theta = state.mean.to(f64), state.scale.to(f64), state.theta.to(f64)
        coef, intercept = raw_parameters(theta, mean, scale, C)
        pool_rows = state.rows["pool"]
        pool_X = X[pool_rows]
        if C == 2:
            logits = torch.einsum("bnd,bd->bn", pool_X, coef) + intercept.unsqueeze(1)
            log_probs = torch.stack([torch.nn.functional.logsigmoid(-logits),
                                     torch.nn.functional.logsigmoid(logits)], -1)
        else:
            logits = torch.einsum("bnd,bcd->bnc", pool_X, coef) + intercept.unsqueeze(1)
            log_probs = torch.log_softmax(logits, -1)
        B = self.num_envs
        ones = torch.ones(B, self.sizes.n_labeled, dtype=f64, device=self.device)
        onehot = torch.nn.functional.one_hot(state.labels["labeled"], C).to(f64)
        lam = self._lam if isinstance(self._lam, Tensor) else torch.full((B,), float(self._lam), dtype=f64,
                                                                         device=self.device)
        return SelectionContext(
            n_classes=C, X=X, y=torch.as_tensor(self.dataset.y, device=self.device),
            pool_rows=pool_rows, pool_X=pool_X, pool_Z=(pool_X - mean.unsqueeze(1)) / scale.unsqueeze(1),
            mean=mean, scale=scale, theta=theta, coef=coef, intercept=intercept, logits=logits,
            log_probs=log_probs, probs=log_probs.exp(),
            selectable=adapt.selectable(state.reciprocal, self.config.adaptation), in_use=state.in_use.clone(),
            labeled_rows=state.rows["labeled"], labeled_y=state.labels["labeled"],
            train_rows=torch.cat([state.rows["labeled"], pool_rows], 1),
            train_labels=torch.cat([onehot, state.label.to(f64)], 1),
            train_mass=torch.cat([ones, state.weight.to(f64)], 1),
            lam=lam.to(f64), penalty=self.config.penalty, penalize_intercept=self.config.penalize_intercept,
            solver="irls" if self.config.solver == "irls" else "newton", tol=self.config.tol,
            max_iter=self.config.max_iter,
        )

    def perturb_parameters(self, delta: Tensor) -> None:
        """Add ``delta`` (B, P) to every learner's parameters and refresh the predictions (pool probabilities,
        metrics) they drive, without refitting: for probing the sample adaptation's sensitivity to theta."""
        state = self.state.replace(reciprocal=self.state.reciprocal.replace(theta=self.state.theta
                                                                            + delta.to(self.dtype)))
        with torch_threads(self._torch_threads):
            self.state, self.view = state, self._predict(state, self.view, torch.ones_like(self._all_rows))

    @property
    def solver_tolerance(self) -> float:
        """The refit's stopping tolerance: the gradient norm (Newton solvers) or the relative deviance change
        (``solver="irls"``) at which a fit stops. The convergence diagnostics compare it with their own."""
        if self.config.tol is not None:
            return float(self.config.tol)
        if self.config.solver == "irls":
            return GLM_EPSILON
        return POOL_TOL_FLOAT64 if self.dtype == torch.float64 else default_tol(self.dtype)

    def evaluate_map(self, theta: Tensor, act: Any, rate: float | Tensor | None = None
                     ) -> tuple[Tensor, Tensor, Tensor]:
        """One step of the reciprocal map from the current training set with the parameters ``theta`` (B, P) in
        place of the current ones: the agent's choice ``act(obs)`` on the predictions of ``theta``, the labels, the
        adaptation (in ``expected`` mode at ``rate`` if given, e.g. 1.0 for the re-selection map
        theta -> ERM(f(theta))) and the refit. Returns the new theta (B, P) and the new training measure's labels
        and normalized masses (as :meth:`training_measure`); the env is left exactly as it was. For the
        contraction estimates of :mod:`reciprocal_gym.contraction`."""
        state, view, old_rate = self.state, self.view, self._expected_rate
        rows = torch.ones_like(self._all_rows)
        try:
            with torch_threads(self._torch_threads):
                moved = state.replace(reciprocal=state.reciprocal.replace(theta=theta.to(self.dtype).clone()))
                self.state, self.view = moved, self._predict(moved, view, rows)
                action = act(self._observe())
                if rate is not None:
                    self._expected_rate = rate
                self._step_rows(action, rows)
                _, y, m = self.training_measure(with_features=False)
                return self.state.theta.clone(), y, m
        finally:
            self.state, self.view, self._expected_rate = state, view, old_rate

    def all_labels_accuracy(self) -> Tensor:
        """(B,) test accuracy of the model fitted on the labeled set plus the whole pool with its true labels: the
        upper reference of the leaderboard's score for self-training and active learning."""
        with torch_threads(self._torch_threads):
            return self._all_labels_accuracy()

    def _all_labels_accuracy(self) -> Tensor:
        B, state = self.num_envs, self.state
        X = torch.cat([self.view.labeled_X, self._features(state, state.rows["pool"])], dim=1)
        y = torch.cat([state.labels["labeled"], state.labels["pool"]], dim=1)
        Q = torch.nn.functional.one_hot(y, self.n_classes).to(self.dtype)
        w = torch.ones(B, X.shape[1], dtype=self.dtype, device=self.device)
        theta = self._fit(X, w, Q, self._lam, torch.zeros(B, self.n_params, dtype=self.dtype,
                                                           device=self.device))[0].theta
        logits = standardized_logits(self._base_X, theta, state.mean, state.scale, self.n_classes)
        rows = state.rows["test"]
        if self.n_classes == 2:
            hit = (logits.gather(1, rows) > 0) == (state.labels["test"] == 1)
        else:
            z = logits.gather(1, rows.unsqueeze(-1).expand(-1, -1, self.n_classes))
            hit = z.argmax(-1) == state.labels["test"]
        return hit.to(self.dtype).mean(1)

    def training_measure(self, with_features: bool = True) -> tuple[Tensor | None, Tensor, Tensor]:
        """Labeled rows (mass 1 each) and pool atoms (mass = weight, label = attached label), normalized; features
        are the learner's standardized features (no intercept)."""
        state, view = self.state, self.view
        x = None
        if with_features:
            x = torch.cat([view.labeled_X[..., :-1], self._features(state, state.rows["pool"])[..., :-1]], dim=1)
        y = torch.cat([view.labeled_onehot, state.label], dim=1)
        ones = torch.ones(self.num_envs, self.sizes.n_labeled, dtype=self.dtype, device=self.device)
        mass = torch.cat([ones, state.weight], dim=1)
        return x, y, mass / mass.sum(1, keepdim=True)

    def score_reference(self, metric: str) -> np.ndarray:
        """(B,) the leaderboard's upper reference for ``metric``: the all-labels fit's test accuracy, or for
        ``test_accuracy_gain`` its gain over the labeled-only fit."""
        reference = self.all_labels_accuracy().cpu().numpy()
        if metric == "test_accuracy_gain":
            reference = reference - self.state.baseline_accuracy[:, 1].cpu().numpy()
        return reference

    def sample_actions(self, rng: np.random.Generator) -> Tensor:
        """Valid actions: k distinct selectable pool points per learner (the selection's own sampler)."""
        return self.parts.selection.sample(self, self.state, rng)

    def action_masks(self) -> Tensor:
        """Bool masks of the allowed actions as sb3-contrib's maskable algorithms expect: (B, n_pool) selectable
        points, (B, k * n_pool) for k > 1 (see the env's selection)."""
        return self.parts.selection.masks(self, self.state)
