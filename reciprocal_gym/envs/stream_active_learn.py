"""``Reciprocal-StreamActiveLearn-v0``: stream-based active learning as a decision process, batched in torch.

A declaration: the pool engine (:mod:`reciprocal_gym.envs.pool`) composed with stream selection, the oracle label
source and the validation reward minus the query cost (:mod:`reciprocal_gym.envs.pool_parts`).
"""

from __future__ import annotations

from dataclasses import dataclass

from reciprocal_gym.envs.active_learn import POOL_SCORING, OracleConfig
from reciprocal_gym.envs.base import SingleEnv, register_env
from reciprocal_gym.envs.pool import PoolVectorEnv
from reciprocal_gym.envs.pool_parts import Oracle, PoolParts, StreamSelection, ValidationReward, pool_exhausted


@dataclass(frozen=True)
class StreamActiveLearnConfig(OracleConfig):
    """Validated settings of a stream-based active-learning environment (see :class:`StreamActiveLearnVectorEnv`)."""

    adaptations = ("add", "swap")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.k != 1:
            raise ValueError(f"k={self.k!r} is not allowed; a stream learner queries one arriving point at a time "
                             "(k=1)")


class StreamActiveLearnVectorEnv(PoolVectorEnv):
    """Stream-based active learning: the pool arrives one point per step and the agent decides whether to buy its
    label.

    ## Description

    The data engine of ``Reciprocal-ActiveLearn-v0`` (ridge-logistic learners on their own split of a dataset, a
    noisy oracle, a label budget), with the pool delivered as a stream: each learner's pool points arrive one per
    step in an order drawn at reset. The agent sees the arriving point's predictions and decides to query it (its
    oracle label joins the training set by the ``adaptation`` rule, ``add`` or ``swap``, and the model is refitted)
    or to skip it (nothing changes; the point does not come back).

    ## Action Space

    ``Discrete(2)``: 0 skip, 1 query the arriving point.

    ## Observation Space

    A ``Dict``: ``"candidate"`` ``(C + 3,)`` the arriving point's predicted class probabilities, margin, entropy and
    in-use flag; ``"candidate_log_probs"`` ``(C,)`` its log probabilities (from the logits, env dtype);
    ``"theta"`` ``(P,)``; ``"scalars"`` ``(3,)`` (step, training-set size, selectable points);
    ``"labels"`` ``(2,)`` labels spent and labels left in the budget.

    ## Rewards

    A query: the change in the validation metric of ``reward`` (``"val_loglik"`` default, ``"val_accuracy"``,
    ``"stability"``) minus ``query_cost``. A skip: 0.

    ## Episode End

    Terminated when the budget cannot pay for another label, or when the stream has delivered every pool point.
    Truncated after ``max_steps`` steps (set it to ``n_pool`` or more to see a whole stream).

    ## Info

    ActiveLearn's per-learner info, with ``queried`` 1 for a query and 0 for a skip.

    ## Arguments

    ActiveLearn's arguments (``dataset``, ``X``/``y``, ``split``, ``split_rows``, ``n_labeled``, ``n_pool``,
    ``n_val``, ``n_test``, ``stratify``, ``adaptation`` (``"add"`` or ``"swap"``), ``buffer_size``, ``lam``,
    ``reward``, ``max_steps``,
    ``label_noise``, ``query_cost``, ``budget``, ``dtype``, ``solver``, ``tol``, ``max_iter``, ``report_gamma``,
    ``backend``, ``device``, ``autoreset_mode``, ``sync_free``, ``fit_chunk``, ``penalty``, ``penalize_intercept``,
    ``standardize``,
    ``warm_start``); ``k`` is 1. Per learner (a number, or a length-B sequence): ``lam``,
    ``label_noise``, ``query_cost``.
    """

    config_class = StreamActiveLearnConfig
    env_id = "Reciprocal-StreamActiveLearn-v0"
    scoring = POOL_SCORING

    def compose(self) -> PoolParts:
        """Query or skip the arriving point; the noisy oracle under the budget; the stream's end."""
        cfg = self.config
        return PoolParts(
            selection=StreamSelection(),
            labels=Oracle(self.learner_setting("label_noise"), cfg.budget),
            reward=ValidationReward(cfg.reward, cfg.invalid_action_penalty, self.learner_setting("query_cost")),
            ends=(pool_exhausted,),
        )


class StreamActiveLearnEnv(SingleEnv):
    __doc__ = StreamActiveLearnVectorEnv.__doc__
    vector_class = StreamActiveLearnVectorEnv


def register_stream_active_learn() -> None:
    register_env("Reciprocal-StreamActiveLearn-v0", __name__, "StreamActiveLearn")
