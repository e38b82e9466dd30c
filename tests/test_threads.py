"""The threading policy: the envs' torch ops on one thread by default, the caller's count restored; the kernels'
thread count and the overrides."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import reciprocal_gym  # noqa: F401
from reciprocal_gym.utils import threads


def _recording(monkeypatch):
    calls = []
    original = torch.set_num_threads

    def record(n):
        calls.append(n)
        original(n)

    monkeypatch.setattr(torch, "set_num_threads", record)
    return calls


@pytest.mark.parametrize("env_id", ["Reciprocal-SelfTrain-v0", "Reciprocal-Bandit-v0", "Reciprocal-SolverRelax-v0"])
def test_env_calls_run_on_one_torch_thread_and_restore_the_callers_count(env_id, monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        env = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point")
        calls = _recording(monkeypatch)
        env.reset(seed=0)
        env.step(env.unwrapped.sample_actions(np.random.default_rng(0)))
        assert calls == [1, 2, 1, 2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_overrides(monkeypatch):
    monkeypatch.setenv("RECIPROCAL_GYM_TORCH_THREADS", "keep")
    env = gym.make_vec("Reciprocal-Bandit-v0", num_envs=2, vectorization_mode="vector_entry_point")
    calls = _recording(monkeypatch)
    env.reset(seed=0)
    assert calls == []
    monkeypatch.setenv("RECIPROCAL_GYM_TORCH_THREADS", "zero")
    with pytest.raises(ValueError, match="RECIPROCAL_GYM_TORCH_THREADS='zero' is not allowed"):
        gym.make_vec("Reciprocal-Bandit-v0", num_envs=2, vectorization_mode="vector_entry_point")
    monkeypatch.setenv("RECIPROCAL_GYM_KERNEL_THREADS", "3")
    assert threads.kernel_threads() == 3
    monkeypatch.setenv("RECIPROCAL_GYM_KERNEL_THREADS", "-1")
    with pytest.raises(ValueError, match="RECIPROCAL_GYM_KERNEL_THREADS='-1'"):
        threads.kernel_threads()
    monkeypatch.delenv("RECIPROCAL_GYM_KERNEL_THREADS")
    assert threads.kernel_threads() == threads.available_cpus()


def test_the_command_sets_its_torch_threads_and_restores_them(monkeypatch, capsys):
    from reciprocal_gym.cli import main

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        calls = _recording(monkeypatch)
        assert main(["bench", "--num-envs", "1", "--steps", "1"]) == 0  # the default: one thread
        assert calls[0] == 1 and calls[-1] == 2 and torch.get_num_threads() == 2
        calls.clear()
        assert main(["--torch-threads", "keep", "bench", "--num-envs", "1", "--steps", "1"]) == 0
        assert 2 in calls and torch.get_num_threads() == 2  # the envs still run their ops on one thread
    finally:
        torch.set_num_threads(before)
    with pytest.raises(SystemExit):
        main(["--torch-threads", "0", "bench"])
    assert "--torch-threads='0' is not allowed" in capsys.readouterr().err
