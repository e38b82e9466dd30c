"""One parity suite for the backends: every env with compiled kernels runs the same cases under ``backend="torch"``
and ``backend="compiled"`` (forced by the env argument), and the two agree within stated tolerances."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import reciprocal_gym  # noqa: F401
from reciprocal_gym.envs.backend import TORCH

POOL = {"n_pool": 60, "max_steps": 40}
CASES = [
    # (env id, kwargs, float tolerance of the outputs)
    ("Reciprocal-SelfTrain-v0", {**POOL, "label_mode": "soft"}, 1e-12),
    ("Reciprocal-SelfTrain-v0", {**POOL, "label_mode": "hard", "adaptation": "amend", "k": 2}, 1e-12),
    ("Reciprocal-SelfTrain-v0", {**POOL, "adaptation": "expected", "k": 3, "lam": [0.001, 0.01, 0.1, 1.0, 0.03, 3.0]},
     1e-10),
    ("Reciprocal-SelfTrain-v0", {**POOL, "dtype": torch.float32, "adaptation": "swap", "k": 2, "buffer_size": 6},
     1e-4),
    ("Reciprocal-ActiveLearn-v0", {**POOL, "budget": 30, "label_noise": 0.2}, 1e-12),
    ("Reciprocal-StreamActiveLearn-v0", {**POOL, "budget": 30}, 1e-12),
    ("Reciprocal-Bandit-v0", {"max_steps": 30}, 0.0),  # the same float32 arithmetic: equal bit for bit
    # the same sweeps per unknown; the iteration counts (all outputs derive from them) are equal
    ("Reciprocal-SolverRelax-v0", {"max_steps": 30, "report_best": True, "grid": 6}, 0.0),
    ("Reciprocal-SolverRelax-v0", {"max_steps": 30, "history": "window", "window": 5, "shift_max": 0.0}, 0.0),
]
IDS = [f"{env_id.split('-')[1]}-{i}" for i, (env_id, _, _) in enumerate(CASES)]


def _run(env_id, backend, kwargs, steps=8):
    envs = gym.make_vec(env_id, num_envs=6, vectorization_mode="vector_entry_point", backend=backend, **kwargs)
    obs, info = envs.reset(seed=3)
    rng = np.random.default_rng(0)
    trace = [(obs, info)]
    for t in range(steps):
        actions = envs.unwrapped.sample_actions(rng)
        if t == 2 and "action_mask" in obs and actions.dim() == 1 and not actions.is_floating_point():
            # a rejected action for learner 0 (an index in use, if any): a partial update
            used = torch.nonzero(envs.unwrapped.state.in_use[0]).squeeze(1)
            if len(used):
                actions[0] = used[0]
        obs, reward, term, trunc, info = envs.step(actions)
        trace.append((obs, {**info, "reward": reward, "terminated": term, "truncated": trunc}))
    return envs.unwrapped, trace


@pytest.mark.parametrize(("env_id", "kwargs", "tol"), CASES, ids=IDS)
def test_compiled_and_torch_backends_agree(env_id, kwargs, tol):
    compiled_env, compiled = _run(env_id, "compiled", kwargs)
    torch_env, reference = _run(env_id, "torch", kwargs)
    assert compiled_env.backend.name == "compiled" and torch_env.backend == TORCH
    for t, ((obs, info), (obs_ref, info_ref)) in enumerate(zip(compiled, reference, strict=True)):
        for key in obs_ref:
            # candidate features are float32: the entropy from the logit (compiled) and from the float32
            # probabilities (torch) differ in the last bits
            close = {"atol": max(tol, 1e-6), "rtol": max(tol, 1e-6)} if obs_ref[key].dtype == torch.float32 \
                else {"atol": tol, "rtol": 0}
            torch.testing.assert_close(obs[key], obs_ref[key], **close, msg=f"step {t} obs {key}")
        for key, value in info_ref.items():
            if isinstance(value, torch.Tensor) and not key.startswith("_") and not key.startswith("fit_"):
                exact = not value.is_floating_point()
                torch.testing.assert_close(info[key], value, atol=0 if exact else tol, rtol=0,
                                           msg=f"step {t} info {key}")
    if hasattr(compiled_env, "view"):
        torch.testing.assert_close(compiled_env.view.pool_probs, torch_env.view.pool_probs, atol=max(tol, 1e-12),
                                   rtol=0)
        assert bool(compiled[3][1]["invalid_action"][0]) or not bool(reference[3][1]["invalid_action"][0])


def test_compiled_gather_of_training_sets_equals_torch_ops():
    envs = {backend: gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=5, vectorization_mode="vector_entry_point",
                                  n_pool=40, label_mode="soft", autoreset_mode="disabled", backend=backend).unwrapped
            for backend in ("compiled", "torch")}
    for vec in envs.values():
        vec.reset(seed=0)
        for t in range(4):  # learner 0 takes an already used point at step 2 (rejected): counts differ, padding
            actions = np.array([t, 10 + t, 20 + t, 30 + t, 5 + t])
            actions[0] = 0 if t == 2 else actions[0]
            vec.step(actions)
    every = torch.arange(5)
    X, w, Q, stats = envs["compiled"]._training_atoms(envs["compiled"].state, envs["compiled"].view, every)
    X_ref, w_ref, Q_ref, no_stats = envs["torch"]._training_atoms(envs["torch"].state, envs["torch"].view, every)
    assert no_stats is None and torch.equal(X.rows, X_ref.rows) and torch.equal(w, w_ref)
    torch.testing.assert_close(Q, Q_ref, atol=1e-12, rtol=0)
    mass, wrong = stats
    state, y = envs["compiled"].state, envs["compiled"].state.labels["pool"]
    torch.testing.assert_close(mass, state.weight.sum(1))
    torch.testing.assert_close(wrong, (state.weight * (1 - state.label.gather(2, y.unsqueeze(-1)).squeeze(-1))).sum(1))
    assert float(wrong.sum()) > 0  # soft pseudo-labels: some mass on the wrong class
    assert float(w[0, -1]) == 0.0 and bool((w[1:, -1] == 1.0).all())  # learner 0 is padded


@pytest.mark.parametrize(("env_id", "kwargs", "why"), [
    ("Reciprocal-SelfTrain-v0", {"dataset": "iris"}, "3 classes"),
    ("Reciprocal-Bandit-v0", {"history": "window"}, "windowed"),
    ("Reciprocal-Bandit-v0", {"dtype": torch.float64}, "float32"),
    ("Reciprocal-Bandit-v0", {"adaptation": "expected"}, "expected"),
    ("Reciprocal-SolverRelax-v0", {"dtype": torch.float32}, "float64"),
])
def test_forcing_compiled_where_no_kernel_applies_says_why(env_id, kwargs, why):
    with pytest.raises(ValueError, match=f"backend='compiled' is not available here: .*{why}"):
        gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", backend="compiled", **kwargs)
    auto = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", **kwargs).unwrapped
    assert auto.backend == TORCH


def test_auto_picks_compiled_kernels_where_they_apply():
    def backend(env_id, **kwargs):
        return gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", **kwargs).unwrapped.backend

    assert backend("Reciprocal-SelfTrain-v0").predict and backend("Reciprocal-SelfTrain-v0").fit == "compiled"
    float32 = backend("Reciprocal-SelfTrain-v0", dtype=torch.float32)
    assert float32.fit == "compiled" and not float32.predict  # the prediction pass is float64 only
    assert backend("Reciprocal-Bandit-v0").step
    assert backend("Reciprocal-SolverRelax-v0").sor
    assert backend("Reciprocal-Bandit-v0", lam=[1.0, 2.0]) == TORCH
    assert backend("Reciprocal-SelfTrain-v0", backend="torch") == TORCH


@pytest.mark.parametrize("max_iter, tol", [(500, 1e-6), (12, 1e-8), (300, 1e-3)])
def test_compiled_sor_makes_the_torch_sweeps_counts(max_iter, tol):
    from reciprocal_gym.core.sor import sor_iterations
    from reciprocal_gym.core.sor_kernel import sor_iterations_compiled

    g = torch.Generator().manual_seed(max_iter)
    B, m = 300, 7
    b = torch.randn(B, m, m, generator=g, dtype=torch.float64)
    b[:3] = 0.0  # a zero right-hand side: converged before the first sweep
    a = 2.0 * torch.randn(B, generator=g, dtype=torch.float64)
    ax, ay = torch.exp(a / 2), torch.exp(-a / 2)
    shift = torch.rand(B, generator=g, dtype=torch.float64)
    omega = 0.05 + 1.9 * torch.rand(B, generator=g, dtype=torch.float64)
    counts, converged = sor_iterations(b, omega, ax, ay, shift, tol, max_iter)
    compiled_counts, compiled_converged = sor_iterations_compiled(b, omega, ax, ay, shift, tol, max_iter)
    assert torch.equal(compiled_counts, counts) and torch.equal(compiled_converged, converged)
    assert bool(converged[:3].all()) and int(counts[:3].sum()) == 0
    if max_iter == 12:
        assert not bool(converged.all())  # some systems hit the cap: the case is covered
