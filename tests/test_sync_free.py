"""Sync-free steps (``sync_free=True``): no host-synchronizing call after warm-up, the same decisions as the default
engine, held learners, actions outside the space as invalid actions, and the fixed-iteration fit.

The check :func:`reciprocal_gym.utils.host_sync.no_host_sync` works on the CPU at torch's dispatcher (on a GPU it also
turns on torch's own sync debug mode): these tests show on any machine that the torch path of a step would not
synchronize on a GPU. The GPU figures themselves (throughput, CUDA graphs) are in ``benchmarks/gpu_scale.py``.
"""

from __future__ import annotations

import contextlib

import gymnasium as gym
import numpy as np
import pytest
import torch

import reciprocal_gym  # noqa: F401
from agents import SelectionAgent
from reciprocal_gym.learners import fit_ridge_logistic
from reciprocal_gym.utils.host_sync import HostSyncError, no_host_sync

POOL_CASES = [
    ("Reciprocal-SelfTrain-v0", {}),
    ("Reciprocal-SelfTrain-v0", {"label_mode": "hard", "k": 3, "label_threshold": 0.6}),
    ("Reciprocal-SelfTrain-v0", {"adaptation": "amend", "lam": [0.01, 0.1, 0.02, 0.05], "penalty": "sum"}),
    ("Reciprocal-SelfTrain-v0", {"adaptation": "swap", "dataset": "wine", "penalize_intercept": False}),
    ("Reciprocal-SelfTrain-v0", {"adaptation": "expected", "dtype": torch.float32, "label_temperature": 0.5}),
    ("Reciprocal-SelfTrain-v0", {"adaptation": "subset", "lam": 0.0, "warm_start": False}),
    ("Reciprocal-ActiveLearn-v0", {"label_noise": 0.2, "query_cost": 0.01, "budget": 6}),
    ("Reciprocal-ActiveLearn-v0", {"adaptation": "swap", "evict": "chosen", "k": 2}),
    ("Reciprocal-StreamActiveLearn-v0", {"budget": 5}),
]
BANDIT_CASES = [
    ("Reciprocal-Bandit-v0", {"max_steps": 30}),
    ("Reciprocal-Bandit-v0", {"adaptation": "expected", "window": 8, "dtype": torch.float64}),
    ("Reciprocal-Bandit-v0", {"reward_dist": "gaussian", "lam": [0.1, 0.2, 0.3, 0.4]}),
]


def make(env_id: str, num_envs: int = 4, **kwargs):
    return gym.make_vec(env_id, num_envs, vectorization_mode="vector_entry_point", autoreset_mode="disabled",
                        **kwargs)


# ----- the check itself ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda x: x.sum().item(),
    lambda x: bool(x.any()),
    lambda x: int(x[0]),
    lambda x: x[x > 1],
    lambda x: torch.nonzero(x),
    lambda x: x.tolist(),
    lambda x: x.numpy(),
    lambda x: torch.tensor([1.0, 2.0]),
    lambda x: x.unique(),
    lambda x: torch.nn.functional.one_hot(x.long(), 5),
], ids=["item", "bool", "int", "mask-index", "nonzero", "tolist", "numpy", "from-host", "unique", "one_hot"])
def test_no_host_sync_catches_host_reads(call):
    x = torch.arange(4.0)
    with pytest.raises(HostSyncError, match="host-synchronizing"), no_host_sync():
        call(x)
    call(x)  # outside the block, everything is allowed again (the patched methods are restored)


def test_no_host_sync_allows_tensor_ops():
    x = torch.arange(4.0)
    with no_host_sync():
        y = torch.where(x > 1, x, 0.0).cumsum(0)
        z = x.masked_fill(x > 2, -1.0) + x.gather(0, torch.zeros(4, dtype=torch.int64))
        w = torch.zeros(3).scatter_add(0, torch.zeros(4, dtype=torch.int64), z)
    assert float(y[-1]) == 5.0 and w.shape == (3,)


# ----- no host sync in a step ---------------------------------------------------------------------------------
def _sample(env, i: int):
    return env.unwrapped.sample_actions(np.random.default_rng(i))


@pytest.mark.parametrize("env_id,kwargs", POOL_CASES + BANDIT_CASES,
                         ids=[f"{e.split('-')[1]}-{i}" for i, (e, _) in enumerate(POOL_CASES + BANDIT_CASES)])
def test_step_makes_no_host_sync_after_warm_up(env_id, kwargs):
    env = make(env_id, sync_free=True, **kwargs)
    env.reset(seed=0)
    env.step(_sample(env, 0))  # warm-up
    stepped = 0
    for i in range(1, 40):  # long enough for episodes to end, be held and be reset (the reset reads the host)
        action = _sample(env, i)
        with no_host_sync():
            obs, reward, terminated, truncated, info = env.step(action)
        stepped += 1
        done = env.unwrapped._needs_reset
        if bool(done.any()) and i % 3 == 0:
            env.reset(options={"reset_mask": done})
        for value in (reward, *obs.values()):
            assert bool(torch.isfinite(value.double()).all())
    assert stepped == 39


def test_default_step_does_read_the_host():
    """The check can fail: the default (host-checked) step reads tensors on the host."""
    env = gym.make_vec("Reciprocal-SelfTrain-v0", 4, vectorization_mode="vector_entry_point", backend="torch")
    env.reset(seed=0)
    env.step(_sample(env, 0))
    with pytest.raises(HostSyncError), no_host_sync():
        env.step(_sample(env, 1))


# ----- the same decisions as the default engine ------------------------------------------------------------------
def _trajectory(env_id: str, kwargs: dict, sync_free: bool | str, steps: int = 20, B: int = 16):
    env = make(env_id, B, max_steps=steps, sync_free=sync_free, **kwargs)
    criterion = "uncertainty" if "Active" in env_id else "confidence"
    agent = SelectionAgent(criterion, "greedy", seed=0)
    obs, _ = env.reset(seed=3)
    actions, thetas, converged = [], [], []
    for _ in range(steps):
        action = agent.act(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        actions.append(action.clone())
        thetas.append(env.unwrapped.parameters().clone())
        converged.append(info["fit_converged"].clone())
    return torch.stack(actions), torch.stack(thetas), torch.stack(converged)


@pytest.mark.parametrize("env_id,kwargs", [
    ("Reciprocal-SelfTrain-v0", {}),
    ("Reciprocal-SelfTrain-v0", {"label_mode": "hard", "dataset": "wine"}),
    ("Reciprocal-ActiveLearn-v0", {"label_noise": 0.1}),
], ids=["selftrain-soft", "selftrain-hard-wine", "activelearn"])
def test_same_decisions_as_the_default_engine(env_id, kwargs):
    """Greedy agents make the same choices at every step; the parameters agree to 1e-8 (measured ~1e-15: the
    sync-free refit sums over the whole pool with zero weights where the default gathers the atoms in use)."""
    a_ref, th_ref, ok_ref = _trajectory(env_id, kwargs, sync_free=False)
    a_sf, th_sf, ok_sf = _trajectory(env_id, kwargs, sync_free=True)
    assert torch.equal(a_ref, a_sf)
    assert float((th_ref - th_sf).abs().max()) < 1e-8
    assert bool(ok_ref.all()) and bool(ok_sf.all())


def test_bandit_same_pulls_as_the_default_engine():
    def run(sync_free: bool):
        env = make("Reciprocal-Bandit-v0", 8, max_steps=40, sync_free=sync_free)
        obs, _ = env.reset(seed=5)
        arms, rewards = [], []
        for i in range(40):
            action = torch.as_tensor(np.random.default_rng(i).integers(0, env.unwrapped.n_arms, 8))
            obs, reward, *_ = env.step(action)
            arms.append(action)
            rewards.append(reward.clone())
        return torch.stack(rewards), obs["theta"].clone()

    r_ref, th_ref = run(False)
    r_sf, th_sf = run(True)
    assert torch.equal(r_ref, r_sf) and torch.equal(th_ref, th_sf)


# ----- held learners, invalid actions, refusals ------------------------------------------------------------------
def test_ended_learners_are_held_until_reset():
    env = make("Reciprocal-SelfTrain-v0", 3, max_steps=2, sync_free=True)
    env.reset(seed=0)
    for i in range(2):
        obs, reward, terminated, truncated, info = env.step(_sample(env, i))
    assert bool(truncated.all())
    before = env.unwrapped.state
    obs, reward, terminated, truncated, info = env.step(_sample(env, 9))  # every learner has ended: all held
    after = env.unwrapped.state
    assert torch.equal(before.theta, after.theta) and torch.equal(before.step, after.step)
    assert not bool(reward.any()) and not bool(terminated.any()) and not bool(truncated.any())
    assert not bool(info["_theta_change"].any())
    env.reset(options={"reset_mask": torch.tensor([True, False, False])})
    obs, reward, terminated, truncated, info = env.step(_sample(env, 10))
    assert info["_theta_change"].tolist() == [True, False, False]
    assert env.unwrapped.state.step.tolist() == [1, 2, 2]


def test_out_of_range_actions_count_as_invalid():
    env = make("Reciprocal-SelfTrain-v0", 3, sync_free=True, invalid_action_penalty=-2.0)
    env.reset(seed=0)
    n = env.unwrapped.n_pool
    before = env.unwrapped.state
    obs, reward, terminated, truncated, info = env.step(torch.tensor([0, n + 5, -1]))
    after = env.unwrapped.state
    assert info["invalid_action"].tolist() == [False, True, True]
    assert reward[1:].tolist() == [-2.0, -2.0]
    assert torch.equal(after.weight[1:], before.weight[1:]) and torch.equal(after.theta[1:], before.theta[1:])
    assert after.step.tolist() == [1, 1, 1]  # an invalid action counts the step, as in the default engine
    # the default engine refuses the same action in words
    plain = gym.make_vec("Reciprocal-SelfTrain-v0", 3, vectorization_mode="vector_entry_point")
    plain.reset(seed=0)
    with pytest.raises(ValueError, match=r"action indices must be in \[0, "):
        plain.step(torch.tensor([0, n + 5, -1]))


def test_bandit_out_of_range_arms_are_held_and_flagged():
    env = make("Reciprocal-Bandit-v0", 3, sync_free=True)
    env.reset(seed=0)
    K = env.unwrapped.n_arms
    obs, reward, terminated, truncated, info = env.step(torch.tensor([0, K, -3]))
    assert info["invalid_action"].tolist() == [False, True, True]
    assert env.unwrapped.state.steps.tolist() == [1, 0, 0]
    assert reward[1:].tolist() == [0.0, 0.0]
    law = torch.full((3, K), 1.0 / K)
    law[1, 0] = float("nan")
    expected = make("Reciprocal-Bandit-v0", 3, sync_free=True, adaptation="expected")
    expected.reset(seed=0)
    obs, reward, *_, info = expected.step(law)
    assert info["invalid_action"].tolist() == [False, True, False]
    assert bool(torch.isfinite(reward).all()) and bool(torch.isfinite(obs["theta"]).all())


@pytest.mark.parametrize("kwargs,match", [
    ({"autoreset_mode": "next_step"}, "autoreset_mode='disabled'"),
    ({"invalid_action": "raise"}, "invalid_action='raise'"),
    ({"solver": "irls"}, "solver='irls'"),
    ({"report_gamma": True}, "report_gamma=True"),
    ({"arrays": "numpy"}, "arrays='torch'"),
    ({"backend": "compiled"}, "sync_free=True"),
    ({"sync_free": "yes"}, "sync_free='yes' is not allowed"),
])
def test_sync_free_refusals(kwargs, match):
    settings = {"autoreset_mode": "disabled", "sync_free": True, **kwargs}
    with pytest.raises(ValueError, match=match):
        gym.make_vec("Reciprocal-SelfTrain-v0", 2, vectorization_mode="vector_entry_point", **settings)


@pytest.mark.parametrize("env_id", ["Reciprocal-ContextualBandit-v0", "Reciprocal-SolverRelax-v0"])
def test_envs_without_a_sync_free_step_refuse_it(env_id):
    with pytest.raises(ValueError, match="sync_free=True is not available"):
        gym.make_vec(env_id, 2, vectorization_mode="vector_entry_point", autoreset_mode="disabled", sync_free=True)


# ----- the fixed-iteration fit -----------------------------------------------------------------------------------
@pytest.mark.parametrize("C,solver", [(2, "newton"), (3, "newton"), (4, "newton-cg")])
def test_fixed_iteration_fit_matches_the_host_checked_fit(C, solver):
    g = torch.Generator().manual_seed(C)
    B, n, p = 48, 60, 5
    X = torch.randn(B, n, p, generator=g, dtype=torch.float64)
    X[..., -1] = 1.0
    w = (torch.rand(B, n, generator=g) > 0.3).double()
    Q = torch.nn.functional.one_hot(torch.randint(0, C, (B, n), generator=g), C).double()
    lam = torch.rand(B, generator=g, dtype=torch.float64) * 0.1 + 1e-3
    theta0 = torch.randn(B, p if C == 2 else C * p, generator=g, dtype=torch.float64)
    ref = fit_ridge_logistic(X, w, Q, lam, theta0=theta0, tol=1e-12, backend="torch", solver=solver,
                             compute_gamma=False)
    active = torch.arange(B) % 5 != 0
    with no_host_sync():
        fixed = fit_ridge_logistic(X, w, Q, lam, theta0=theta0, tol=1e-12, max_iter=30, backend="torch",
                                   solver=solver, compute_gamma=False, fixed_iterations=True, active=active)
    assert float((fixed.theta[active] - ref.theta[active]).abs().max()) < 1e-9
    assert torch.equal(fixed.iterations[active], ref.iterations[active])
    assert torch.equal(fixed.theta[~active], theta0[~active]) and not bool(fixed.iterations[~active].any())
    # too few iterations: honest flags, not a silent stop
    short = fit_ridge_logistic(X, w, Q, lam, theta0=theta0, tol=1e-12, max_iter=1, backend="torch", solver=solver,
                               compute_gamma=False, fixed_iterations=True)
    assert not bool(short.converged.all())
    assert torch.equal(short.converged, short.grad_norm <= 1e-12)


def test_fixed_iteration_fit_survives_singular_hessians():
    """lam = 0 on data with a duplicated column: the plain factorization fails, the fixed jitter takes over; the fit
    stays finite and the loss does not rise."""
    g = torch.Generator().manual_seed(1)
    X = torch.randn(8, 20, 3, generator=g, dtype=torch.float64)
    X = torch.cat([X, X[..., :1], torch.ones(8, 20, 1, dtype=torch.float64)], -1)
    w = torch.ones(8, 20, dtype=torch.float64)
    Q = torch.nn.functional.one_hot(torch.randint(0, 2, (8, 20), generator=g), 2).double()
    with no_host_sync():
        fit = fit_ridge_logistic(X, w, Q, 0.0, tol=1e-10, max_iter=25, backend="torch", compute_gamma=False,
                                 fixed_iterations=True)
    assert bool(torch.isfinite(fit.theta).all())
    ref = fit_ridge_logistic(X, w, Q, 0.0, tol=1e-10, backend="torch", compute_gamma=False)
    z_fixed, z_ref = (torch.bmm(X, t.unsqueeze(-1)).squeeze(-1) for t in (fit.theta, ref.theta))
    loss = [(torch.nn.functional.softplus(z) - Q[..., 1] * z).mean(1) for z in (z_fixed, z_ref)]
    assert float((loss[0] - loss[1]).abs().max()) < 1e-8


@pytest.mark.parametrize("kwargs,match", [
    ({"compute_gamma": True}, "compute_gamma"),
    ({"backend": "compiled"}, "torch backend"),
])
def test_fixed_iteration_fit_refusals(kwargs, match):
    X = torch.randn(2, 5, 3, dtype=torch.float64)
    w = torch.ones(2, 5, dtype=torch.float64)
    Q = torch.full((2, 5, 2), 0.5, dtype=torch.float64)
    with pytest.raises(ValueError, match=match):
        fit_ridge_logistic(X, w, Q, 0.1, fixed_iterations=True, **kwargs)
    with pytest.raises(ValueError, match="active is used with fixed_iterations=True only"):
        fit_ridge_logistic(X, w, Q, 0.1, active=torch.ones(2, dtype=torch.bool))


# ----- the host's bound on the training set, fixed shapes, checkpoints ------------------------------------------
@pytest.mark.parametrize("env_id,kwargs", [
    ("Reciprocal-SelfTrain-v0", {"k": 2}),
    ("Reciprocal-SelfTrain-v0", {"adaptation": "swap", "buffer_size": 6, "k": 2}),
    ("Reciprocal-ActiveLearn-v0", {"adaptation": "swap", "evict": "chosen", "k": 2, "buffer_size": 5}),
    ("Reciprocal-StreamActiveLearn-v0", {"budget": 30}),
])
def test_host_bound_covers_every_training_set(env_id, kwargs):
    """The sync-free refit gathers the atoms in use into a number of slots the host keeps without reading the
    state; every learner's count stays within it (atoms past it would be left out of the fit)."""
    env = make(env_id, 4, sync_free=True, max_steps=25, **kwargs)
    env.reset(seed=0)
    u = env.unwrapped
    for i in range(25):
        env.step(_sample(env, i))
        assert int(u.state.in_use.sum(1).max()) <= u._atom_bound <= u.n_pool
    assert u._atom_bound < u.n_pool  # it is a real bound, not the whole pool


def test_graph_mode_keeps_shapes_fixed_and_the_same_decisions():
    shapes = set()
    from reciprocal_gym.envs import pool

    original = pool.PoolVectorEnv._training_atoms

    def spy(self, state, view, idx, bound=None):
        X, w, Q, stats = original(self, state, view, idx, bound)
        if idx is None:  # a sync-free step's refit (a reset's refit reads the host and may use any shape)
            shapes.add(tuple(w.shape))
        return X, w, Q, stats

    pool.PoolVectorEnv._training_atoms = spy
    try:
        a_graph, th_graph, ok_graph = _trajectory("Reciprocal-SelfTrain-v0", {}, sync_free="graph", steps=8)
    finally:
        pool.PoolVectorEnv._training_atoms = original
    assert len(shapes) == 1  # the whole pool every step
    a_ref, th_ref, _ = _trajectory("Reciprocal-SelfTrain-v0", {}, sync_free=False, steps=8)
    assert torch.equal(a_graph, a_ref) and float((th_graph - th_ref).abs().max()) < 1e-8


def test_checkpoint_restore_continues_the_same_run():
    def steps(env, start, count, check=False):
        out = []
        for i in range(start, start + count):
            action = _sample(env, i)
            with no_host_sync() if check else contextlib.nullcontext():
                env.step(action)
            out.append(env.unwrapped.parameters().clone())
        return torch.stack(out)

    env = make("Reciprocal-ActiveLearn-v0", 4, sync_free=True, max_steps=12)
    env.reset(seed=2)
    steps(env, 0, 4)
    checkpoint = env.unwrapped.get_state()
    straight = steps(env, 4, 6)
    other = make("Reciprocal-ActiveLearn-v0", 4, sync_free=True, max_steps=12)
    other.unwrapped.set_state(checkpoint)
    resumed = steps(other, 4, 6, check=True)  # the restored env's bound comes from the restored state
    assert torch.equal(straight, resumed)


def test_fit_chunk_gives_the_same_step_and_needs_sync_free():
    def run(**kwargs):
        env = make("Reciprocal-SelfTrain-v0", 10, sync_free=True, lam=[0.01 * (i + 1) for i in range(10)], **kwargs)
        env.reset(seed=4)
        for i in range(5):
            action = _sample(env, i)
            with no_host_sync():
                obs, reward, terminated, truncated, info = env.step(action)
        return env.unwrapped.parameters(), info["fit_iterations"]

    whole, iterations = run()
    blocks, iterations_blocks = run(fit_chunk=3)  # blocks of 3, 3, 3 and 1 learners
    assert float((whole - blocks).abs().max()) < 1e-12 and torch.equal(iterations, iterations_blocks)
    with pytest.raises(ValueError, match="fit_chunk=3 is used by sync-free steps only"):
        gym.make_vec("Reciprocal-SelfTrain-v0", 2, vectorization_mode="vector_entry_point", fit_chunk=3)
