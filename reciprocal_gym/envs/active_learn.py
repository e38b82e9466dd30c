"""``Reciprocal-ActiveLearn-v0``: pool-based active learning as a decision process, batched in torch.

A declaration: the pool engine (:mod:`reciprocal_gym.envs.pool`) composed with the oracle label source, index
selection (or chosen eviction) and the validation reward minus the query cost (:mod:`reciprocal_gym.envs.pool_parts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reciprocal_gym.arguments import Choice, Integer, PerLearner, setting
from reciprocal_gym.envs.base import SingleEnv, register_env
from reciprocal_gym.envs.pool import PoolConfig, PoolVectorEnv
from reciprocal_gym.envs.pool_parts import (
    ChosenEviction,
    IndexSelection,
    Oracle,
    PoolParts,
    ValidationReward,
    pool_exhausted,
)
from reciprocal_gym.envs.scoring import Scoring

EVICTIONS = ("oldest", "chosen")
POOL_SCORING = Scoring(
    kind="pool", metrics=("test_accuracy", "test_accuracy_gain"), reference="env",
    labels={"test_accuracy": "test accuracy (mean over seeds)",
            "test_accuracy_gain": "test accuracy gain over the labeled-only fit"},
    long_run={"max_steps": 10**6, "budget": 10**6},
)


@dataclass(frozen=True)
class OracleConfig(PoolConfig):
    """The pool settings plus the oracle's: label noise, the price of a label and the budget."""

    label_noise: float = setting(0.0, PerLearner(0.0, 1.0, open_high=True))
    query_cost: float = setting(0.0, PerLearner(0.0, 1e6))
    budget: int = setting(40, Integer(1))

    adaptations = ("add", "swap", "expected")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.budget < self.k:
            raise ValueError(f"budget={self.budget!r} is not allowed; it must pay for one query of k={self.k} labels")


@dataclass(frozen=True)
class ActiveLearnConfig(OracleConfig):
    """Validated settings of a pool-based active-learning environment (see :class:`ActiveLearnVectorEnv`)."""

    evict: str = setting("oldest", Choice(EVICTIONS))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.evict == "chosen" and self.adaptation != "swap":
            raise ValueError("evict='chosen' needs adaptation='swap' (a fixed-size labeled buffer)")


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

    Stream-based active learning (the pool arrives one point at a time; query or skip) is its own env,
    ``Reciprocal-StreamActiveLearn-v0``.

    Each label costs ``query_cost``; the episode ends when the label ``budget`` is spent.

    ## Action Space

    ``Discrete(n_pool)`` (``k == 1``), ``MultiDiscrete([n_pool] * k)`` (batch queries of k distinct points), or
    ``Box(0, 1, (n_pool,))`` (expected mode). With ``evict="chosen"``: ``MultiDiscrete([n_pool] * 2k)``: k points to
    query, then k buffer points to remove; once the buffer is full the first points of the second half that are
    needed leave (they must be in the buffer and distinct), the rest of it is ignored.

    Indices the mask forbids are handled by ``invalid_action`` as in SelfTrain (penalty and no label spent, or an
    error); an action outside the action space raises ``ValueError``.

    ## Observation Space

    SelfTrain's ``Dict`` (``candidates``, ``log_probs``, ``action_mask``, ``theta``, ``scalars``) plus
    ``"labels"``: ``(2,)`` labels spent and labels left in the budget. The selection context
    (``reciprocal_gym.selection_context(env)``) gives criteria the pool's features, row ids and the training set.

    ## Rewards

    ``reward="val_loglik"`` (default): change in mean validation log-likelihood minus ``query_cost`` times the labels
    bought this step. ``"val_accuracy"``: change in validation accuracy minus the cost. ``"stability"``:
    ``-|theta_t - theta_{t-1}|`` minus the cost (:class:`reciprocal_gym.envs.pool_parts.ValidationReward`).

    ## Episode End

    Terminated when the budget cannot pay for another query (labels spent + k > budget) or when the pool is used up
    (add mode). Truncated after ``max_steps`` steps.

    ## Info

    SelfTrain's per-learner info (``test_accuracy``, ``val_accuracy``, ``val_log_likelihood``, ``theta_change``,
    ``train_size``, ``pseudo_label_error`` = share of wrong oracle labels in the queried part, fit reports
    (``fit_iterations``, ``fit_grad_norm``, ``fit_converged``, ``fit_separated``),
    ``invalid_action``, the gains over the labeled-only fit ``test_accuracy_gain``, ``val_accuracy_gain``,
    ``theta_from_labeled_only``) plus ``labels_spent`` and ``queried`` (labels bought this step). The pair
    (``labels_spent``, ``test_accuracy``) is the learning-curve point of the step.

    ## Arguments

    SelfTrain's data, model and episode arguments (``dataset``, ``X``/``y``, ``split``, ``split_rows``, ``n_labeled``,
    ``n_pool``, ``n_val``, ``n_test``, ``stratify``, ``adaptation``, ``k``, ``buffer_size``, ``expected_rate``, ``lam``,
    ``reward``, ``max_steps``, ``invalid_action``, ``invalid_action_penalty``, ``dtype``, ``solver``, ``tol``,
    ``max_iter``, ``report_gamma``, ``backend``, ``device``, ``autoreset_mode``, ``sync_free``, ``fit_chunk``, and
    the learner conventions
    ``penalty``, ``penalize_intercept``, ``standardize``, ``warm_start``), and:

    - ``label_noise`` (0.0, in [0, 1)), ``query_cost`` (0.0, >= 0), ``budget`` (40 labels), ``evict``
      (``"oldest"`` or ``"chosen"``, with ``adaptation="swap"``).

    Per learner (a number, or a length-B sequence with one value per learner): ``lam``, ``expected_rate``,
    ``label_noise``, ``query_cost``.
    """

    config_class = ActiveLearnConfig
    env_id = "Reciprocal-ActiveLearn-v0"
    scoring = POOL_SCORING

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if "mode" in kwargs:
            raise ValueError(f"mode={kwargs['mode']!r} is not an argument of Reciprocal-ActiveLearn-v0 any more: "
                             "stream-based active learning is its own env, gym.make('Reciprocal-StreamActiveLearn-v0')")
        super().__init__(*args, **kwargs)

    def compose(self) -> PoolParts:
        """k queried points (k to query and k to remove with ``evict="chosen"``), labeled by the noisy oracle under
        the budget; reward: the validation gain minus the query cost."""
        cfg = self.config
        return PoolParts(
            selection=ChosenEviction() if cfg.evict == "chosen" else IndexSelection(),
            labels=Oracle(self.learner_setting("label_noise"), cfg.budget),
            reward=ValidationReward(cfg.reward, cfg.invalid_action_penalty, self.learner_setting("query_cost")),
            ends=(pool_exhausted,),
        )


class ActiveLearnEnv(SingleEnv):
    __doc__ = ActiveLearnVectorEnv.__doc__
    vector_class = ActiveLearnVectorEnv


def register_active_learn() -> None:
    register_env("Reciprocal-ActiveLearn-v0", __name__, "ActiveLearn")
