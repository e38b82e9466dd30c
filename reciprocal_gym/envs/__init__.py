"""Gymnasium environments; each module is a thin shell over the batched engine."""

from reciprocal_gym.envs.active_learn import ActiveLearnConfig, ActiveLearnEnv, ActiveLearnVectorEnv
from reciprocal_gym.envs.bandit import BanditConfig, BanditEnv, BanditVectorEnv
from reciprocal_gym.envs.base import BatchedVectorEnv, SingleEnv
from reciprocal_gym.envs.contextual_bandit import (
    ContextualBanditConfig,
    ContextualBanditEnv,
    ContextualBanditVectorEnv,
)
from reciprocal_gym.envs.self_train import SelfTrainConfig, SelfTrainEnv, SelfTrainVectorEnv
from reciprocal_gym.envs.solver_relax import SolverRelaxConfig, SolverRelaxEnv, SolverRelaxVectorEnv
from reciprocal_gym.envs.stream_active_learn import (
    StreamActiveLearnConfig,
    StreamActiveLearnEnv,
    StreamActiveLearnVectorEnv,
)

__all__ = [
    "ActiveLearnConfig",
    "ActiveLearnEnv",
    "ActiveLearnVectorEnv",
    "BanditConfig",
    "BanditEnv",
    "BanditVectorEnv",
    "BatchedVectorEnv",
    "ContextualBanditConfig",
    "ContextualBanditEnv",
    "ContextualBanditVectorEnv",
    "SelfTrainConfig",
    "SelfTrainEnv",
    "SelfTrainVectorEnv",
    "SingleEnv",
    "SolverRelaxConfig",
    "SolverRelaxEnv",
    "SolverRelaxVectorEnv",
    "StreamActiveLearnConfig",
    "StreamActiveLearnEnv",
    "StreamActiveLearnVectorEnv",
]
