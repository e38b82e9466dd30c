"""The vector-env checker, determinism across processes, and checkpoints."""

import subprocess
import sys

import gymnasium as gym
import pytest
import torch

import reciprocal_gym
from reciprocal_gym.envs import BanditVectorEnv
from reciprocal_gym.utils import VectorEnvCheckError, check_vector_env

SMALL = {
    "Reciprocal-SelfTrain-v0": dict(dataset="iris", n_labeled=6, n_pool=30),
    "Reciprocal-ActiveLearn-v0": dict(dataset="iris", n_labeled=6, n_pool=30),
    "Reciprocal-StreamActiveLearn-v0": dict(dataset="iris", n_labeled=6, n_pool=30),
    "Reciprocal-Bandit-v0": {},
    "Reciprocal-ContextualBandit-v0": {},
    "Reciprocal-SolverRelax-v0": dict(grid=3),
}
EXTRA = [
    ("Reciprocal-SelfTrain-v0", dict(adaptation="expected", k=3, dtype=torch.float32)),
    ("Reciprocal-SelfTrain-v0", dict(adaptation="swap", k=2, buffer_size=4, label_mode="hard")),
    ("Reciprocal-StreamActiveLearn-v0", dict(max_steps=40)),
    ("Reciprocal-Bandit-v0", dict(adaptation="expected", history="window", window=4)),
    ("Reciprocal-Bandit-v0", dict(reward_dist="gaussian", history="window", window=3, dtype=torch.float64)),
    ("Reciprocal-ContextualBandit-v0", dict(source="linear", history="window", window=3)),
]


def _vec(env_id, autoreset="next_step", num_envs=3, device="cpu", **kwargs):
    kwargs = {**SMALL[env_id], "max_steps": 3, **kwargs}
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", autoreset_mode=autoreset,
                        device=device, **kwargs)


@pytest.mark.parametrize("mode", ["next_step", "same_step", "disabled"])
@pytest.mark.parametrize("env_id", reciprocal_gym.ENV_IDS)
def test_checker_passes_on_every_registered_env(env_id, mode, device):
    check_vector_env(_vec(env_id, autoreset=mode, device=device))


@pytest.mark.parametrize("env_id, kwargs", EXTRA)
def test_checker_passes_on_other_configurations(env_id, kwargs):
    check_vector_env(_vec(env_id, **kwargs))


class _NaNObservation(BanditVectorEnv):
    def _observe(self):
        obs = super()._observe()
        obs["theta"] = obs["theta"].clone()
        obs["theta"][0, 0] = float("nan")
        return obs


class _WrongDtype(BanditVectorEnv):
    def _observe(self):
        obs = super()._observe()
        obs["counts"] = obs["counts"].double()
        return obs


class _ResetsEveryone(BanditVectorEnv):
    def reset(self, *, seed=None, options=None):
        return super().reset(seed=seed)


class _Unseeded(BanditVectorEnv):
    def _step_rows(self, actions, rows):
        reward, terminated, truncated, info = super()._step_rows(actions, rows)
        return reward + torch.rand(reward.shape) * rows, terminated, truncated, info


class _NoAutoreset(BanditVectorEnv):
    def step(self, actions):
        out = super().step(actions)
        self._needs_reset = torch.zeros_like(self._needs_reset)  # claims next-step autoreset, never restarts
        return out


class _MissingMask(BanditVectorEnv):
    def _info(self, values, rows):
        info = super()._info(values, rows)
        info.pop("_regret")
        return info


@pytest.mark.parametrize(
    "cls, message",
    [
        (_NaNObservation, "NaN"),
        (_WrongDtype, "dtype"),
        (_ResetsEveryone, "outside the mask"),
        (_Unseeded, "same seed"),
        (_NoAutoreset, "next-step autoreset"),
        (_MissingMask, "_regret"),
    ],
)
def test_checker_catches_broken_envs(cls, message):
    with pytest.raises(VectorEnvCheckError, match=message):
        check_vector_env(cls(num_envs=3, max_steps=3))


SCRIPT = """
import hashlib, torch, gymnasium as gym, reciprocal_gym
digest = hashlib.sha256()
for env_id, kwargs in {cases!r}:
    env = gym.make_vec(env_id, num_envs=4, vectorization_mode="vector_entry_point", **kwargs)
    obs, _ = env.reset(seed=11)
    gen = torch.Generator().manual_seed(0)
    for t in range(6):
        if "action_mask" in obs:
            action = torch.multinomial(obs["action_mask"].double(), 1, generator=gen).squeeze(1)
        else:
            action = torch.randint(0, env.single_action_space.n, (4,), generator=gen)
        obs, reward, *_ = env.step(action)
        for value in (*obs.values(), reward):
            digest.update(value.cpu().numpy().tobytes())
print(digest.hexdigest())
"""


def test_trajectories_are_bit_identical_in_separate_processes():
    cases = [(env_id, {**kwargs, "max_steps": 4}) for env_id, kwargs in SMALL.items()]
    code = SCRIPT.format(cases=cases)
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
            for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert runs[0].stdout == runs[1].stdout and len(runs[0].stdout.strip()) == 64


