"""Gymnasium environments; each module is a thin shell over the batched engine."""

from reciprocal_gym.envs.base import BatchedVectorEnv, SingleEnv
from reciprocal_gym.envs.self_train import SelfTrainConfig, SelfTrainEnv, SelfTrainVectorEnv

__all__ = ["BatchedVectorEnv", "SelfTrainConfig", "SelfTrainEnv", "SelfTrainVectorEnv", "SingleEnv"]
