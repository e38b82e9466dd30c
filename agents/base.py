"""The batched agent interface."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from torch import Tensor

from reciprocal_gym.arguments import check_seed


class Agent:
    """Base class: a seeded, resettable policy acting on a batch of observations.

    Subclasses implement :meth:`act` on batched tensor observations.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.generator = torch.Generator()
        self.reset(seed)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "act" in cls.__dict__:  # every act takes batched tensors: refuse numpy with a pointer to act_single
            batched_act = cls.__dict__["act"]

            @functools.wraps(batched_act)
            def act(self: Agent, obs: Any, *args: Any, **kwargs: Any) -> Any:
                if isinstance(obs, dict) and any(isinstance(v, np.ndarray) for v in obs.values()):
                    raise TypeError(
                        f"{type(self).__name__}.act takes a vector env's batched observation as torch tensors; for "
                        "a single env's numpy observation (gym.make) call act_single(obs), and convert a batched "
                        "numpy observation with torch.as_tensor first")
                return batched_act(self, obs, *args, **kwargs)

            cls.act = act

    def reset(self, seed: int | None = None) -> None:
        """Re-seed the agent's generator (a random seed when None)."""
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**62))
        check_seed(seed)
        self.generator.manual_seed(int(seed))

    needs_context = False
    """Whether :meth:`act` needs the env's selection context (``act(obs, context=...)``)."""

    def act(self, obs: dict[str, Tensor]) -> Tensor:
        """One action per learner for a batched observation."""
        raise NotImplementedError

    def act_in(self, env: Any, obs: dict[str, Tensor]) -> Tensor:
        """:meth:`act` on a vector env's batched observation, with the env's selection context when the agent needs
        it (fetched through any wrappers)."""
        if not self.needs_context:
            return self.act(obs)
        from reciprocal_gym.envs.context import selection_context

        return self.act(obs, context=selection_context(env))

    def act_single(self, obs: dict[str, Any], context: Any = None) -> Any:
        """The action for a single env's (unbatched numpy) observation, as a numpy value; ``context``: the single
        env's selection context (B = 1), for agents that need one."""
        batched = {key: torch.as_tensor(np.asarray(value))[None] for key, value in obs.items()}
        action = (self.act(batched, context=context) if context is not None else self.act(batched))[0].cpu().numpy()
        return action.item() if action.ndim == 0 else action
