"""The envs in other clients' hands: Gymnasium's async vectorization with the default (fork) start method never
hangs, even after the parent process ran torch work; the ``reciprocal_gym:<id>`` form resolves in a process that
never imported the package; TorchRL wraps the single and the batched envs without glue (optional extra ``torchrl``,
skipped without it)."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import pytest

import reciprocal_gym

FORK_AFTER_TORCH_WORK = r"""
import gymnasium as gym, numpy as np, torch, reciprocal_gym
A = torch.randn(64, 64, dtype=torch.float64)
A = A @ A.T + 64 * torch.eye(64, dtype=torch.float64)
for _ in range(3):
    torch.linalg.cholesky(A)  # the parent's OpenMP thread team is up
for env_id in reciprocal_gym.ENV_IDS:
    kwargs = {"dataset": "iris", "n_labeled": 6, "n_pool": 30} if "Learn" in env_id or "SelfTrain" in env_id else {}
    single = gym.make(env_id, **kwargs)
    single.reset(seed=0)
    single.step(single.action_space.sample())  # the parent steps an env first
    envs = gym.make_vec(env_id, 2, vectorization_mode="async", **kwargs)  # fork on Linux
    envs.reset(seed=0)
    for _ in range(3):
        envs.step(envs.action_space.sample())
    envs.close()
    from stable_baselines3.common.vec_env import SubprocVecEnv
    sb3 = SubprocVecEnv([lambda: gym.make(env_id, **kwargs)] * 2, start_method="fork")
    sb3.reset()
    for _ in range(3):
        sb3.step(np.stack([sb3.action_space.sample() for _ in range(2)]))
    sb3.close()
    try:
        from torchrl.envs import GymEnv
    except ImportError:
        GymEnv = None
    if GymEnv is not None:  # TorchRL's own vectorization: Gymnasium's async env in its default (fork) mode
        trl = GymEnv(env_id, num_envs=2, **kwargs)
        trl.rollout(3)
        trl.close()
        import functools
        from torchrl.envs import ParallelEnv
        parallel = ParallelEnv(2, functools.partial(GymEnv, env_id, **kwargs), mp_start_method="fork")
        parallel.rollout(3)
        parallel.close()
    print("ok", env_id, flush=True)
"""

FRESH_WORKER = r"""
import gymnasium as gym  # reciprocal_gym is never imported by this process
env = gym.make("reciprocal_gym:Reciprocal-Bandit-v0")
env.reset(seed=0)
env.step(0)
print("ok")
"""


def test_forked_workers_after_torch_work_in_the_parent_never_hang():
    """Gymnasium's async vector env, SB3's SubprocVecEnv with fork, and TorchRL's GymEnv(id, num_envs=2) and
    ParallelEnv with fork (if installed), on every id, after the parent ran a Cholesky and stepped an env."""
    run = subprocess.run([sys.executable, "-c", FORK_AFTER_TORCH_WORK], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split().count("ok") == len(reciprocal_gym.ENV_IDS)


PARALLEL_SPAWN = r"""
import functools, torch
from torchrl.envs import GymEnv, ParallelEnv
if __name__ == "__main__":
    torch.linalg.cholesky(torch.eye(8, dtype=torch.float64) * 2)
    # spawned workers never imported the package: the module-qualified id imports it
    parallel = ParallelEnv(2, functools.partial(GymEnv, "reciprocal_gym:Reciprocal-Bandit-v0"))
    parallel.rollout(3)
    parallel.close()
    print("ok")
"""


def test_torchrl_parallel_env_with_its_default_start_method(tmp_path):
    pytest.importorskip("torchrl.envs")
    script = tmp_path / "parallel.py"
    script.write_text(PARALLEL_SPAWN)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-2000:]


def test_the_module_qualified_id_resolves_in_a_fresh_process():
    run = subprocess.run([sys.executable, "-c", FRESH_WORKER], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


def _pool_kwargs(env_id):
    return {"dataset": "iris", "n_labeled": 6, "n_pool": 30} if "Learn" in env_id or "SelfTrain" in env_id else {}


@pytest.mark.parametrize("env_id", reciprocal_gym.ENV_IDS)
def test_torchrl_wraps_the_batched_and_the_single_env(env_id):
    libs = pytest.importorskip("torchrl.envs")
    from torchrl.envs.utils import check_env_specs

    for mode in ("disabled", "same_step"):  # TorchRL takes these two autoreset modes
        batched = libs.GymWrapper(gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point",
                                               autoreset_mode=mode, **_pool_kwargs(env_id)))
        check_env_specs(batched)
        assert tuple(batched.rollout(4).batch_size) == (3, 4)
    single = libs.GymEnv(env_id, **_pool_kwargs(env_id))
    check_env_specs(single)
    assert tuple(single.rollout(4).batch_size) == (4,)
