import gymnasium as gym
import numpy as np
import ot
import pytest
import torch

import reciprocal_gym  # noqa: F401
from agents import SelectionAgent
from reciprocal_gym.wrappers import VERDICTS, ConvergenceDiagnostics, diagnostics, exact_w1, sliced_w1
from reciprocal_gym.wrappers.diagnostics import _Tracker


def _direct_w1(x, y0, m0, y1, m1):
    """ot.emd2 on the full union support: points (x_i, y0_i) carry m0, points (x_i, y1_i) carry m1."""
    X = np.concatenate([np.concatenate([x, y0], 1), np.concatenate([x, y1], 1)])
    d = x.shape[1]
    cost = (np.linalg.norm(X[:, None, :d] - X[None, :, :d], axis=-1)
            + np.abs(X[:, None, d:] - X[None, :, d:]).sum(-1))
    a = np.concatenate([m0, np.zeros_like(m0)])
    b = np.concatenate([np.zeros_like(m1), m1])
    return ot.emd2(a, b, cost, numItermax=10_000_000)


def test_exact_w1_equals_ot_emd2_on_the_full_support(monkeypatch):
    rng = np.random.default_rng(0)
    B, n, d, C = 12, 15, 3, 3
    x = rng.standard_normal((B, n, d))
    y0 = np.eye(C)[rng.integers(0, C, (B, n))]
    y1 = y0.copy()
    m0 = rng.random((B, n)) * (rng.random((B, n)) < 0.7)
    m1 = m0.copy()
    for b in range(B):
        if b % 3 == 0:  # one atom added: a single target after cancelling the shared mass
            j = rng.integers(n)
            m1[b, j] += 1.0
        elif b % 3 == 1:  # masses move on several atoms and some labels change (soft labels)
            m1[b] = rng.random(n) * (rng.random(n) < 0.7)
            y1[b, :4] = rng.dirichlet(np.ones(C), 4)
        else:  # one atom leaves: a single source
            j = int(np.flatnonzero(m0[b])[0])
            m1[b, j] = 0.0
    m0 /= m0.sum(1, keepdims=True)
    m1 /= m1.sum(1, keepdims=True)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    got = exact_w1(t(x), t(y0), t(m0), t(y1), t(m1))
    for b in range(B):
        assert got[b].item() == pytest.approx(_direct_w1(x[b], y0[b], m0[b], y1[b], m1[b]), abs=1e-9)
    # the general problems' cost matrices built a few learners at a time give the same distances
    monkeypatch.setattr(diagnostics, "_COST_BYTES", 8 * n * n * 2)
    torch.testing.assert_close(exact_w1(t(x), t(y0), t(m0), t(y1), t(m1)), got, rtol=0, atol=0)
    sliced = sliced_w1(t(x), t(y0), t(m0), t(y1), t(m1), torch.nn.functional.normalize(torch.randn(64, d + C,
                       dtype=torch.float64), dim=1))
    assert (sliced <= got + 1e-12).all() and (sliced > 0).all()


def test_sliced_w1_is_the_mean_of_one_dimensional_w1_over_the_directions():
    """Against POT's sliced distance (p = 1) with the same directions; the learners move different numbers of atoms
    (one moves none), so atoms that cancel are dropped and rows are padded differently."""
    rng = np.random.default_rng(3)
    B, n, d, C, L = 4, 12, 3, 2, 20
    x = rng.standard_normal((B, n, d))
    y0 = rng.dirichlet(np.ones(C), (B, n))
    m0 = rng.random((B, n)) * (rng.random((B, n)) < 0.8)
    m0 /= m0.sum(1, keepdims=True)
    y1, m1 = y0.copy(), m0.copy()
    y1[0, :5] = rng.dirichlet(np.ones(C), 5)  # labels of five atoms change
    m1[1, [0, 1]] = m0[1, [1, 0]]  # two masses trade places
    m1[2] = rng.dirichlet(np.ones(n))  # everything moves; learner 3 moves nothing
    dirs = torch.nn.functional.normalize(torch.randn(L, d + C, dtype=torch.float64), dim=1)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    got = sliced_w1(t(x), t(y0), t(m0), t(y1), t(m1), dirs)
    for b in range(B):
        want = ot.sliced_wasserstein_distance(np.concatenate([x[b], y0[b]], 1), np.concatenate([x[b], y1[b]], 1),
                                              a=m0[b], b=m1[b], p=1, projections=dirs.numpy().T)
        assert got[b].item() == pytest.approx(float(want), abs=1e-12)
    assert got[3].item() == 0.0 and (got[:3] > 0).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(adaptation="add", label_mode="hard"),
        dict(adaptation="add", label_mode="soft", k=3),
        dict(adaptation="amend", label_mode="soft", k=4),
        dict(adaptation="swap", label_mode="hard", k=2, buffer_size=6),
        dict(adaptation="expected", label_mode="soft", k=4, expected_rate=0.5),
    ],
)
def test_wrapper_w1_equals_direct_emd2_between_successive_training_sets(kwargs):
    envs = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=3, vectorization_mode="vector_entry_point",
                        dataset="wine", n_labeled=9, n_pool=30, **kwargs)
    wrapped = ConvergenceDiagnostics(envs)
    agent = SelectionAgent(rule="softmax", tau=0.2, k=kwargs.get("k", 1), law=kwargs["adaptation"] == "expected",
                           seed=0)
    obs, _ = wrapped.reset(seed=0)
    base = envs.unwrapped
    for _ in range(5):
        x, y0, m0 = (a.numpy() for a in base.training_measure())
        theta0 = base.parameters().clone()
        obs, _, _, _, info = wrapped.step(agent.act(obs))
        _, y1, m1 = (a.numpy() for a in base.training_measure())
        for b in range(3):
            assert info["w1"][b].item() == pytest.approx(_direct_w1(x[b], y0[b], m0[b], y1[b], m1[b]), abs=1e-9)
        step = (base.parameters() - theta0).norm(dim=1)
        torch.testing.assert_close(info["theta_step"], step)
        torch.testing.assert_close(info["d"], step + info["w1"])


def test_bandit_measure_and_single_env_wrapper():
    env = ConvergenceDiagnostics(gym.make("Reciprocal-Bandit-v0", n_arms=3, means=[0.2, 0.5, 0.8]))
    env.reset(seed=0)
    for arm in (0, 1, 2, 2):
        _, _, _, _, info = env.step(arm)
    assert info["verdict"] in VERDICTS and "verdict_reason" in info
    assert info["d"] == pytest.approx(info["theta_step"] + info["w1"])
    assert info["w1"] > 0
    with pytest.raises(ValueError, match="finite training measure"):
        ConvergenceDiagnostics(gym.make("Reciprocal-Bandit-v0", reward_dist="gaussian"))
    theta_only = ConvergenceDiagnostics(gym.make("Reciprocal-SolverRelax-v0", grid=3), distance="theta")
    theta_only.reset(seed=0)
    _, _, _, _, info = theta_only.step(3)
    assert info["w1"] == 0 and info["d"] == info["theta_step"] > 0


class _Scripted:
    """A stand-in env whose parameters follow a given sequence (no training measure)."""

    def __init__(self, thetas):
        self.thetas, self.t = torch.as_tensor(thetas, dtype=torch.float64), 0

    def parameters(self):
        return self.thetas[:, self.t]


def _verdicts(thetas, stationary_window=50, **kwargs):
    env = _Scripted(thetas)
    tracker = _Tracker(env, "theta", kwargs.pop("tol", 1e-8), 10, 4, 1e6, 8, 0, stationary_window)
    tracker.restart(torch.ones(env.thetas.shape[0], dtype=torch.bool))
    history = []
    for t in range(1, env.thetas.shape[1]):
        env.t = t
        values, _ = tracker.update(torch.ones(env.thetas.shape[0], dtype=torch.bool))
        history.append({key: value.clone() for key, value in values.items()})
    return [VERDICTS[v] for v in values["verdict"].tolist()], tracker.reasons(), history, tracker


def test_verdicts_on_scripted_trajectories():
    T = 120
    t = np.arange(T)
    rng = np.random.default_rng(0)
    geometric = (0.5 ** t)[:, None] * np.ones(2)                  # contracts to 0
    cycle = np.where(t % 2 == 0, 1.0, -1.0)[:, None] * np.ones(2)  # period 2
    cycle3 = np.array([[1.0, 0], [0, 1.0], [-1.0, -1.0]])[t % 3]   # period 3
    growing = (1.5 ** np.minimum(t, 60))[:, None] * np.ones(2)     # blows up
    slow = (1.0 / (t + 1))[:, None] * np.ones(2)                   # 1/n steps: no geometric contraction
    noise = rng.normal(size=(T, 2))                                # independent draws: stationary in distribution
    drift = np.linspace(0, 1, T)[:, None] + 0.3 * rng.normal(size=(T, 2))  # noise around a drifting mean
    names, reasons, history, _ = _verdicts(np.stack([geometric, cycle, cycle3, growing, slow, noise, drift]))
    assert names == ["converged", "oscillating", "oscillating", "diverging", "undecided", "stationary",
                     "undecided"], reasons
    assert "period 2" in reasons[1] and "period 3" in reasons[2] and "stationary in distribution" in reasons[5]
    assert history[-1]["period"].tolist() == [0, 2, 3, 0, 0, 0, 0]
    nan = np.ones((1, 5, 2))
    nan[0, 3:] = np.nan
    assert _verdicts(nan)[0] == ["diverging"]


def test_converged_waits_for_the_estimated_distance_to_the_fixed_point():
    # d_t = c 0.9^t: the remaining path 9 d_t is what "converged" compares with tol, not one small step
    t = np.arange(260)
    slow = (0.9 ** t)[:, None] * np.ones((1, 2))
    _, _, history, _ = _verdicts(slow[None])
    d = np.array([h["d"][0].item() for h in history])
    converged = np.array([h["verdict"][0].item() == VERDICTS.index("converged") for h in history])
    first_small = int(np.argmax(d <= 1e-8))
    assert not converged[first_small]  # one step below tol, but 9 d_t above it
    first = int(np.argmax(converged))
    assert 9 * d[first] <= 1e-8 * (1 + 1e-6) and 9 * d[first - 1] > 1e-8
    assert history[first]["distance"][0].item() == pytest.approx(9 * d[first], rel=1e-6)


def test_time_average_is_the_mean_of_theta_over_the_episode():
    rng = np.random.default_rng(1)
    thetas = rng.normal(size=(3, 40, 2))
    _, _, _, tracker = _verdicts(thetas)
    np.testing.assert_allclose(tracker.time_average().numpy(), thetas[:, 1:].mean(1), rtol=1e-12)


def test_a_solver_tolerance_near_the_verdicts_is_warned_about():
    loose = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=2, vectorization_mode="vector_entry_point", tol=1e-8)
    with pytest.warns(UserWarning, match="solver|refit"):
        ConvergenceDiagnostics(loose)
    import warnings

    default = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=2, vectorization_mode="vector_entry_point")
    assert default.unwrapped.solver_tolerance == 1e-12
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ConvergenceDiagnostics(default)  # 1e-12 is 1e4 below the default tol = 1e-8


def test_bad_arguments():
    envs = gym.make_vec("Reciprocal-SelfTrain-v0", num_envs=2, vectorization_mode="vector_entry_point")
    with pytest.raises(ValueError, match="distance"):
        ConvergenceDiagnostics(envs, distance="sinkhorn2")
    with pytest.raises(ValueError, match="max_period"):
        ConvergenceDiagnostics(envs, window=3, max_period=5)
