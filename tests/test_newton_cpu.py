"""The compiled CPU Newton solver runs the torch solver's algorithm: same iterations, same solution to rounding."""

import numpy as np
import pytest
import torch

from reciprocal_gym.learners import fit_ridge_logistic, newton_cpu
from reciprocal_gym.learners.logistic import default_tol


def _problem(B=40, n=30, p=8, seed=0, dtype=torch.float64, pad=True):
    rng = np.random.default_rng(seed)
    X = torch.tensor(rng.normal(size=(B, n, p)), dtype=dtype)
    X[..., -1] = 1.0
    w = torch.tensor(rng.uniform(0.2, 2.0, size=(B, n)), dtype=dtype)
    if pad:  # zero-weight padding slots, a different number per learner, as the envs' gathered atoms have
        for b in range(B):
            w[b, n - b % 7 :] = 0.0
        w[0] = 0.0  # an empty training set
    q1 = torch.tensor(rng.random((B, n)), dtype=dtype)
    q1[: B // 2] = (q1[: B // 2] > 0.5).to(dtype)  # hard labels for half the learners, soft for the rest
    Q = torch.stack([1 - q1, q1], -1)
    return X, w, Q


def _assert_same_solution(compiled, reference, lam, dtype):
    """What the two backends guarantee on any CPU: both stop at a gradient norm <= tol, so their iteration counts
    differ by at most one (the last step is taken or not as the norm lands on either side of tol, which depends on
    rounding), and by lam-strong convexity each solution lies within tol / lam of the exact minimizer: they are
    within 2 tol / lam of each other. Where the counts agree the two ran the same steps: equal to rounding (atol)."""
    tol = default_tol(dtype)
    gap = (compiled.iterations - reference.iterations).abs()
    assert int(gap.max()) <= 1, gap
    same = gap == 0
    assert float(same.double().mean()) >= 0.5  # the iterations differ only for learners that end near tol
    atol = 1e-10 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(compiled.theta[same], reference.theta[same], atol=atol, rtol=0)
    bound = 2 * tol / lam + atol
    assert float((compiled.theta - reference.theta).norm(dim=1).max()) <= bound


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_compiled_equals_torch_backend(dtype):
    X, w, Q = _problem(dtype=dtype)
    warm = torch.randn(X.shape[0], X.shape[-1], dtype=dtype, generator=torch.Generator().manual_seed(3)) * 0.3
    for theta0 in (None, warm):
        compiled = fit_ridge_logistic(X, w, Q, 0.01, theta0=theta0, backend="compiled")
        reference = fit_ridge_logistic(X, w, Q, 0.01, theta0=theta0, backend="torch")
        assert bool(compiled.converged.all()) and bool(reference.converged.all())
        _assert_same_solution(compiled, reference, 0.01, dtype)
        same = compiled.iterations == reference.iterations  # the same steps: the same Hessian to rounding
        atol = 1e-10 if dtype == torch.float64 else 1e-4
        torch.testing.assert_close(compiled.gamma[same], reference.gamma[same], atol=atol, rtol=1e-6)
        # the empty training set leaves only the penalty: theta = 0 (exactly from a zero start)
        assert torch.all(compiled.theta[0] == 0) if theta0 is None else float(compiled.theta[0].abs().max()) < atol
    assert compiled.theta.dtype == dtype and compiled.grad_norm.dtype == dtype


def test_auto_backend_is_compiled_for_binary_cpu_problems_only(monkeypatch):
    calls = []
    original = newton_cpu.fit_binary_newton
    monkeypatch.setattr(newton_cpu, "fit_binary_newton", lambda *a, **k: calls.append(1) or original(*a, **k))
    X, w, Q = _problem(B=3)
    fit_ridge_logistic(X, w, Q, 0.01)
    fit_ridge_logistic(X[0], w, Q, 0.01)  # atoms shared by every learner
    assert len(calls) == 2
    Q3 = torch.softmax(torch.randn(3, X.shape[1], 3, dtype=torch.float64), -1)
    fit_ridge_logistic(X, w, Q3, 0.01)  # multinomial: torch
    fit_ridge_logistic(X, w, Q, 0.01, backend="torch")
    assert len(calls) == 2
    with pytest.raises(ValueError, match="backend='compiled' needs a binary problem"):
        fit_ridge_logistic(X, w, Q3, 0.01, backend="compiled")
    with pytest.raises(ValueError, match="backend='numba' is not allowed"):
        fit_ridge_logistic(X, w, Q, 0.01, backend="numba")


def test_shared_atoms_equal_per_learner_copies():
    X, w, Q = _problem(B=5, pad=False)
    shared = fit_ridge_logistic(X[0], w, Q, 0.01, backend="compiled")
    copies = fit_ridge_logistic(X[:1].expand(5, -1, -1).contiguous(), w, Q, 0.01, backend="compiled")
    assert torch.equal(shared.theta, copies.theta)


def test_result_does_not_depend_on_threads_or_batch(monkeypatch):
    """Learners are fitted one by one in chunks spread over threads: bit for bit the same for any thread count and
    for the learner fitted alone (this is what makes vector envs equal single envs)."""
    X, w, Q = _problem(B=300, seed=1)
    monkeypatch.setenv("RECIPROCAL_GYM_KERNEL_THREADS", "2")
    two = fit_ridge_logistic(X, w, Q, 0.01)
    monkeypatch.setenv("RECIPROCAL_GYM_KERNEL_THREADS", "1")
    one = fit_ridge_logistic(X, w, Q, 0.01)
    assert torch.equal(two.theta, one.theta) and torch.equal(two.iterations, one.iterations)
    for b in (0, 1, 137, 299):
        alone = fit_ridge_logistic(X[b : b + 1], w[b : b + 1], Q[b : b + 1], 0.01)
        assert torch.equal(alone.theta[0], two.theta[b])


def test_singular_hessian_falls_back_to_the_jittered_torch_solve():
    """With lam = 0 and a repeated feature column the Hessian is singular: Cholesky rejects it in the compiled
    solver, and the learner is refitted by the torch solver (jittered factorization) instead of failing."""
    X, w, Q = _problem(B=4, pad=False)
    X[..., 1] = X[..., 0]
    X, w, Q = X[:2], w[:2], Q[:2]
    status = newton_cpu.fit_binary_newton(X, w / w.sum(1, keepdim=True), Q[..., 1], 0.0,
                                          torch.zeros(2, X.shape[-1], dtype=X.dtype), 1e-8, 50)[3]
    assert torch.all(status == newton_cpu.STATUS_NOT_PD)
    compiled = fit_ridge_logistic(X, w, Q, 0.0, max_iter=30, backend="compiled")
    reference = fit_ridge_logistic(X, w, Q, 0.0, max_iter=30, backend="torch")
    assert bool(torch.isfinite(compiled.theta).all())
    torch.testing.assert_close(compiled.theta, reference.theta, atol=1e-12, rtol=0)
    assert int((compiled.iterations - reference.iterations).abs().max()) <= 1


def test_iteration_cap_matches_the_torch_backend():
    X, w, Q = _problem(B=6, pad=False)
    for kwargs in (dict(max_iter=1), dict(tol=1e-300, max_iter=20)):  # the cap; a tolerance below rounding
        compiled = fit_ridge_logistic(X, w, Q, 1e-3, backend="compiled", **kwargs)
        reference = fit_ridge_logistic(X, w, Q, 1e-3, backend="torch", **kwargs)
        assert not bool(compiled.converged.any())
        assert torch.equal(compiled.iterations, reference.iterations)
        torch.testing.assert_close(compiled.theta, reference.theta, atol=1e-9, rtol=0)


def test_row_atoms_equal_their_materialized_tensor():
    """Standardized rows of a shared table, built learner by learner inside the compiled solver, give bit for bit
    the fit of the materialized (B, n, p) atoms; the torch backend materializes them."""
    from reciprocal_gym.learners import RowAtoms

    rng = np.random.default_rng(4)
    B, n, d, N = 50, 25, 6, 80
    table = torch.tensor(rng.normal(2.0, 3.0, size=(N, d)))
    atoms = RowAtoms(table, torch.tensor(rng.integers(0, N, size=(B, n))),
                     torch.tensor(rng.normal(size=(B, d))), torch.tensor(rng.uniform(1.0, 4.0, size=(B, d))))
    X = atoms.materialize()
    assert X.shape == atoms.shape == (B, n, d + 1) and torch.all(X[..., -1] == 1)
    torch.testing.assert_close(X[3, 7, :d], (table[atoms.rows[3, 7]] - atoms.mean[3]) / atoms.scale[3])
    _, w, Q = _problem(B=B, n=n, p=d + 1)
    from_rows = fit_ridge_logistic(atoms, w, Q, 0.01, backend="compiled")
    from_tensor = fit_ridge_logistic(X, w, Q, 0.01, backend="compiled")
    assert torch.equal(from_rows.theta, from_tensor.theta) and torch.equal(from_rows.iterations, from_tensor.iterations)
    torch_rows = fit_ridge_logistic(atoms, w, Q, 0.01, backend="torch")
    torch.testing.assert_close(torch_rows.theta, from_tensor.theta, atol=1e-10, rtol=0)


@pytest.mark.parametrize("dtype, lam", [(torch.float64, 0.01), (torch.float64, 1e-4), (torch.float32, 0.01),
                                        (torch.float32, 1e-3)])
def test_fewer_atoms_than_parameters_take_the_atom_system(dtype, lam):
    # with at most p atoms in use the compiled solver's Newton directions come from the m x m system of the atoms
    # (Woodbury); the torch backend factors the p x p Hessian: the same iterations, the same solutions
    X, w, Q = _problem(B=60, n=20, p=31, seed=4, dtype=dtype)
    warm = torch.randn(60, 31, dtype=dtype, generator=torch.Generator().manual_seed(5)) * 0.3
    for theta0 in (None, warm):
        compiled = fit_ridge_logistic(X, w, Q, lam, theta0=theta0, backend="compiled", compute_gamma=False)
        reference = fit_ridge_logistic(X, w, Q, lam, theta0=theta0, backend="torch", compute_gamma=False)
        assert bool(compiled.converged.all()) and bool(reference.converged.all())
        _assert_same_solution(compiled, reference, lam, dtype)
