"""Numeric settings given one per learner: a batched sweep follows, learner for learner, the trajectories of
separate envs that each take one value."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import reciprocal_gym  # noqa: F401
from reciprocal_gym.envs.base import pick_allowed

SWEEPS = [
    ("Reciprocal-SelfTrain-v0", {"dataset": "breast_cancer", "n_pool": 40},  # binary: the compiled solver
     {"lam": [1e-3, 1e-2, 0.1, 1.0]}),
    ("Reciprocal-SelfTrain-v0", {"dataset": "iris", "n_labeled": 6, "n_pool": 30, "adaptation": "expected", "k": 3,
                                 "dtype": torch.float32},  # multinomial in torch, float32
     {"lam": [0.0, 0.01, 0.1, 1.0], "expected_rate": [0.2, 0.5, 0.9, 1.0],
      "label_temperature": [0.1, 0.5, 1.0, 3.0]}),
    ("Reciprocal-SelfTrain-v0", {"dataset": "wine", "n_labeled": 9, "n_pool": 30, "adaptation": "amend", "k": 2},
     {"label_temperature": [0.05, 0.3, 1.0, 7.0], "lam": [0.3, 0.03, 0.003, 0.0003]}),
    ("Reciprocal-ActiveLearn-v0", {"dataset": "breast_cancer", "n_pool": 40},
     {"lam": [1e-3, 1e-2, 0.1, 1.0], "label_noise": [0.0, 0.1, 0.3, 0.6], "query_cost": [0.0, 0.01, 0.1, 1.0]}),
    ("Reciprocal-ActiveLearn-v0", {"dataset": "wine", "n_labeled": 9, "n_pool": 30, "adaptation": "expected", "k": 2},
     {"label_noise": [0.0, 0.1, 0.3, 0.6]}),
    ("Reciprocal-StreamActiveLearn-v0", {"dataset": "iris", "n_labeled": 6, "n_pool": 30},
     {"label_noise": [0.0, 0.2, 0.4, 0.6], "query_cost": [0.5, 0.0, 0.1, 0.2]}),
    ("Reciprocal-Bandit-v0", {}, {"lam": [0.0, 0.5, 2.0, 10.0]}),
    ("Reciprocal-Bandit-v0", {"n_arms": 3}, {"means": [[0.1, 0.5, 0.9], [0.9, 0.5, 0.1], [0.3, 0.3, 0.4], [0, 1, 0]]}),
    ("Reciprocal-Bandit-v0", {"reward_dist": "gaussian", "history": "window", "window": 3},
     {"lam": [0.0, 0.5, 2.0, 10.0]}),
    ("Reciprocal-ContextualBandit-v0", {"source": "linear"}, {"lam": [1e-3, 0.1, 1.0, 30.0]}),
    ("Reciprocal-SolverRelax-v0", {"grid": 3}, {"lam": [0.0, 1.0, 5.0, 50.0]}),
]
IDS = [f"{env_id.split('-')[1]}-{'-'.join(sweep)}" for env_id, _, sweep in SWEEPS]
B = 4


def _actions(env, t: int) -> list:
    """Learner i's action at step t from its own generator (so batched and separate runs act alike)."""
    space = env.single_action_space
    out = []
    for i in range(env.num_envs):
        rng = np.random.default_rng([i, t])
        if isinstance(space, gym.spaces.Box):
            out.append(rng.uniform(0.01, 1.0, space.shape).astype(np.float32))
        elif hasattr(env, "n_pool") and space.n != 2 if isinstance(space, gym.spaces.Discrete) else True:
            mask = env.action_masks()[i : i + 1, : env.n_pool].cpu().numpy()
            out.append(pick_allowed(rng, mask, getattr(env, "k", 1))[0])
        else:
            out.append(rng.integers(0, space.n))
    return out


def _step(env, actions):
    a = torch.as_tensor(np.asarray(actions))
    if a.dim() == 2 and a.shape[1] == 1 and not a.is_floating_point():
        a = a[:, 0]
    return env.step(a)


@pytest.mark.parametrize(("env_id", "kwargs", "sweep"), SWEEPS, ids=IDS)
def test_a_sweep_in_one_batch_equals_separate_envs(env_id, kwargs, sweep):
    kwargs = {**kwargs, "max_steps": 4}  # the run crosses an autoreset
    batched = gym.make_vec(env_id, num_envs=B, vectorization_mode="vector_entry_point", **kwargs, **sweep).unwrapped
    alone = [gym.make_vec(env_id, num_envs=1, vectorization_mode="vector_entry_point", **kwargs,
                          **{name: values[i] for name, values in sweep.items()}).unwrapped for i in range(B)]
    batched.reset(seed=7)
    for i, env in enumerate(alone):
        env.reset(seed=7 + i)
    tol = {"atol": 1e-5, "rtol": 1e-5} if kwargs.get("dtype") == torch.float32 or "Bandit-v0" in env_id and \
        "reward_dist" not in kwargs else {"atol": 1e-10, "rtol": 1e-9}
    for t in range(7):
        actions = _actions(batched, t)
        together = _step(batched, actions)
        for i, env in enumerate(alone):
            own = _step(env, [actions[i]])
            for mine, theirs in zip(own[:4], together[:4], strict=True):
                values = mine.items() if isinstance(mine, dict) else [("", mine)]
                for key, value in values:
                    other = theirs[key] if key else theirs
                    torch.testing.assert_close(value[0], other[i], **tol, msg=f"step {t} learner {i} {key}")
            for key, value in own[4].items():
                if isinstance(value, torch.Tensor) and not key.startswith("_"):
                    torch.testing.assert_close(value[0], together[4][key][i], **tol,
                                               msg=f"step {t} learner {i} info {key}")
    if isinstance(batched.parameters(), torch.Tensor):  # the settings took effect: the learners differ
        assert len({tuple(np.round(row.numpy(), 12)) for row in batched.parameters().reshape(B, -1)}) > 1


def test_per_learner_values_are_checked_entry_by_entry_and_by_length():
    with pytest.raises(ValueError, match=r"lam\[2\]=-1.0 is not allowed"):
        gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=4, vectorization_mode="vector_entry_point",
                     lam=[0.1, 0.2, -1.0, 0.3])
    with pytest.raises(ValueError, match=r"lam has 3 entries; a per-learner setting needs one per learner "
                                         r"\(num_envs=4\)"):
        gym.make_vec("Reciprocal-Bandit-v0", num_envs=4, vectorization_mode="vector_entry_point", lam=[1, 2, 3])
    with pytest.raises(ValueError, match=r"label_noise\[1\]"):
        gym.make("Reciprocal-ActiveLearn-v0", label_noise=np.array([0.1, 1.0]))
    with pytest.raises(ValueError, match="label_temperature"):
        gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=2, vectorization_mode="vector_entry_point",
                     label_mode="hard", label_temperature=[1.0, 0.5])
    with pytest.raises(ValueError, match="lam"):
        gym.make("Reciprocal-SelfTrain-v0", lam=[[0.1]])
    env = gym.make("Reciprocal-SelfTrain-v0", lam=torch.tensor([0.5]))  # a single env: one entry
    env.reset(seed=0)
    assert env.unwrapped.vector_env._lam == 0.5
