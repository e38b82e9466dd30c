import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from lockstep import run_lockstep
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import reciprocal_gym  # noqa: F401
from reciprocal_gym.core.sor import optimal_omega, sor_iterations
from reciprocal_gym.envs import SolverRelaxEnv, SolverRelaxVectorEnv

ENV_ID = "Reciprocal-SolverRelax-v0"
CASES = [
    dict(grid=5),
    dict(grid=4, history="window", window=3, context=False, report_best=True),
    dict(grid=6, omegas=[0.8, 1.2, 1.6], lam=0.0, persistence=0.5, shift_max=2.0),
]


def poisson_matrix(m, ax, ay, shift):
    """Dense A of the 5-point anisotropic operator, unknown (i, j) at row i * m + j."""
    n = m * m
    A = np.zeros((n, n))
    for i in range(m):
        for j in range(m):
            k = i * m + j
            A[k, k] = 2 * ax + 2 * ay + shift
            if i > 0:
                A[k, k - m] = -ay
            if j > 0:
                A[k, k - 1] = -ax
            if j < m - 1:
                A[k, k + 1] = -ax
            if i < m - 1:
                A[k, k + m] = -ay
    return A


def plain_sor(A, b, omega, order, tol, max_iter):
    """Textbook SOR, one unknown at a time in the given order, columns visited in increasing order."""
    n = len(b)
    x = np.zeros(n)
    cols = [[c for c in np.flatnonzero(A[k]) if c != k] for k in range(n)]
    allcols = [list(np.flatnonzero(A[k])) for k in range(n)]
    target = tol * np.linalg.norm(b)

    def residual():
        r = np.empty(n)
        for k in range(n):
            s = 0.0
            for c in allcols[k]:
                s += A[k, c] * x[c]
            r[k] = b[k] - s
        return np.linalg.norm(r)

    if residual() <= target:
        return 0
    for sweep in range(1, max_iter + 1):
        for k in order:
            s = 0.0
            for c in cols[k]:
                s += A[k, c] * x[c]
            x[k] = (1 - omega) * x[k] + omega * (b[k] - s) / A[k, k]
        if residual() <= target:
            return sweep
    return max_iter


def red_black(m):
    cells = [(i, j) for i in range(m) for j in range(m)]
    return [i * m + j for i, j in cells if (i + j) % 2 == 0] + [i * m + j for i, j in cells if (i + j) % 2 == 1]


@pytest.mark.parametrize("m, ax, ay, shift", [(4, 1.0, 1.0, 0.0), (6, 2.5, 0.4, 0.3), (5, 0.3, 3.0, 1.5)])
def test_iteration_counts_equal_plain_numpy_sor(m, ax, ay, shift, device):
    rng = np.random.default_rng(m)
    omegas = [0.7, 1.0, 1.3, 1.6, 1.9]
    b = rng.standard_normal((len(omegas), m, m))
    t = lambda v: torch.full((len(omegas),), v, dtype=torch.float64, device=device)  # noqa: E731
    got, converged = sor_iterations(torch.as_tensor(b, device=device), torch.tensor(omegas, device=device,
                                    dtype=torch.float64), t(ax), t(ay), t(shift), 1e-8, 400)
    A = poisson_matrix(m, ax, ay, shift)
    for idx, omega in enumerate(omegas):
        expected = plain_sor(A, b[idx].ravel(), omega, red_black(m), 1e-8, 400)
        # the same sweeps in another summation order: the residual crosses tol at the same sweep unless it lands
        # within rounding of tol, so the counts agree within one
        assert abs(int(got[idx]) - expected) <= 1, (omega, int(got[idx]), expected)
    assert converged.all()


def test_env_reports_the_plain_sor_count_for_its_system():
    env = gym.make(ENV_ID, grid=5, tol=1e-7)
    env.reset(seed=3)
    vec = env.unwrapped.vector_env
    for action in (0, 7, 15, 19):
        ax, ay, shift = (float(c[0]) for c in vec._coefficients())
        b = vec.state.b[0].numpy().ravel().copy()
        omega = float(vec.omegas[action])
        _, r, _, _, info = env.step(action)
        expected = plain_sor(poisson_matrix(5, ax, ay, shift), b, omega, red_black(5), 1e-7, 500)
        assert abs(info["iterations"] - expected) <= 1 and r == -info["iterations"]  # within one: see above


def test_best_iterations_and_optimal_omega():
    env = gym.make(ENV_ID, grid=6, report_best=True, omegas=np.linspace(1.0, 1.95, 20))
    obs, _ = env.reset(seed=0)
    vec = env.unwrapped.vector_env
    ax, ay, shift = vec._coefficients()
    counts = [sor_iterations(vec.state.b, vec.omegas[k : k + 1], ax, ay, shift, 1e-6, 500)[0].item() for k in range(20)]
    _, _, _, _, info = env.step(3)
    assert info["best_iterations"] == min(counts) and info["regret"] == counts[3] - min(counts)
    best_omega = float(vec.omegas[int(np.argmin(counts))])
    assert abs(best_omega - info["omega_star"]) <= 0.15  # Young's omega is near the empirical best
    assert info["omega_star"] == pytest.approx(float(optimal_omega(6, ax, ay, shift)[0]))


def test_history_gives_ridge_mean_cost_per_omega():
    env = gym.make(ENV_ID, grid=4, history="window", window=2, lam=0.5, omegas=[1.0, 1.5])
    env.reset(seed=0)
    seen = []
    for action in (0, 1, 1, 0):
        obs, r, _, _, _ = env.step(action)
        seen.append((action, -r))
        kept = seen[-2:]
        for k in range(2):
            costs = [c for a, c in kept if a == k]
            assert obs["counts"][k] == len(costs)
            assert obs["theta"][k] == pytest.approx(sum(costs) / (len(costs) + 0.5))


def test_systems_drift_and_context_features():
    vec = gym.make_vec(ENV_ID, num_envs=2000, vectorization_mode="vector_entry_point", grid=3, anisotropy_std=1.0)
    obs, _ = vec.reset(seed=0)
    a0 = obs["context"][:, 0].double()
    assert a0.std().item() == pytest.approx(1.0, abs=0.05)
    assert (obs["context"][:, 1] <= 0.5).all() and (obs["context"][:, 2] < 1).all()
    obs, *_ = vec.step(torch.zeros(2000, dtype=torch.int64))
    a1 = obs["context"][:, 0].double()
    assert torch.corrcoef(torch.stack([a0, a1]))[0, 1].item() == pytest.approx(0.9, abs=0.03)


def test_registered_and_check_env():
    assert gym.spec(ENV_ID).vector_entry_point.endswith(":SolverRelaxVectorEnv")
    assert isinstance(gym.make(ENV_ID).unwrapped, SolverRelaxEnv)
    assert isinstance(gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point").unwrapped,
                      SolverRelaxVectorEnv)
    for kwargs in CASES:
        check_env(gym.make(ENV_ID, **kwargs).unwrapped, skip_render_check=True)
        sb3_check_env(gym.make(ENV_ID, **kwargs).unwrapped, warn=False)


@pytest.mark.parametrize("kwargs", CASES)
def test_vector_equals_single_envs_seeded_seed_plus_i(kwargs, device):
    info_keys = ("iterations", "converged", "omega", "omega_star")
    if kwargs.get("report_best"):
        info_keys += ("best_iterations", "regret")
    run_lockstep(ENV_ID, dict(kwargs, max_steps=5), num_envs=4, steps=7,
                 choose=lambda rng, obs, env: int(rng.integers(env.action_space.n)), info_keys=info_keys,
                 device=device, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(grid=1), "grid"),
        (dict(omegas=[1.0, 2.0]), "omegas"),
        (dict(omegas=[1.0]), "omegas"),
        (dict(omegas=[[1.0, 1.2]]), "omegas"),
        (dict(tol=0.0), "tol"),
        (dict(persistence=1.5), "persistence"),
        (dict(shift_max=-1.0), "shift_max"),
        (dict(history="all"), "history"),
        (dict(max_iter=0), "max_iter"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make(ENV_ID, **kwargs)


def test_bad_actions():
    vec = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point")
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"omega index in \[0, 20\)"):
        vec.step(torch.tensor([0, 20]))
    with pytest.raises(ValueError, match="integer"):
        vec.step(torch.tensor([0.5, 1.0]))
