"""reciprocal_gym: reciprocal learning (self-training, active learning, bandits) as Gymnasium environments.

Importing the package registers the environments with Gymnasium::

    import gymnasium as gym
    import reciprocal_gym  # noqa: F401

    env = gym.make("Reciprocal-SelfTrain-v0", dataset="breast_cancer")
    envs = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=64, vectorization_mode="vector_entry_point")
"""

from reciprocal_gym.envs.active_learn import register_active_learn
from reciprocal_gym.envs.bandit import register_bandit
from reciprocal_gym.envs.context import SelectionContext, selection_context
from reciprocal_gym.envs.contextual_bandit import register_contextual_bandit
from reciprocal_gym.envs.self_train import register_self_train
from reciprocal_gym.envs.solver_relax import register_solver_relax
from reciprocal_gym.envs.stream_active_learn import register_stream_active_learn
from reciprocal_gym.utils import threads as _threads  # noqa: F401  (forked children: one torch thread)

__version__ = "0.1.0"

ENV_IDS = (
    "Reciprocal-SelfTrain-v0",
    "Reciprocal-ActiveLearn-v0",
    "Reciprocal-StreamActiveLearn-v0",
    "Reciprocal-Bandit-v0",
    "Reciprocal-ContextualBandit-v0",
    "Reciprocal-SolverRelax-v0",
)


def register_envs() -> None:
    """Register every environment id with Gymnasium (done on import; safe to call again)."""
    register_self_train()
    register_active_learn()
    register_stream_active_learn()
    register_bandit()
    register_contextual_bandit()
    register_solver_relax()


register_envs()

_LAZY = {"Certificate": "certificates", "certificate": "certificates", "ContractionEstimate": "contraction",
         "contraction_estimate": "contraction"}


def __getattr__(name: str) -> object:
    """The convergence tools load on first use (they import the wrappers, which import the agents)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"reciprocal_gym.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'reciprocal_gym' has no attribute {name!r}")


__all__ = ["ENV_IDS", "Certificate", "ContractionEstimate", "SelectionContext", "__version__", "certificate",
           "contraction_estimate", "register_envs", "selection_context"]
