import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.linear_model import LogisticRegression

from reciprocal_gym.learners import fit_ridge_logistic, predict_proba


def _standardized(loader, rows=None):
    X, y = loader(return_X_y=True)
    if rows is not None:
        X, y = X[rows], y[rows]
    scale = X.std(0)
    X = (X - X.mean(0)) / np.where(scale > 0, scale, 1.0)
    return np.hstack([X, np.ones((len(X), 1))]), y


def _onehot(y, C):
    return np.eye(C)[y]


@pytest.mark.parametrize("loader", [load_breast_cancer, load_wine], ids=["breast_cancer", "wine"])
@pytest.mark.parametrize("solver", ["newton", "newton-cg"])
def test_matches_sklearn(loader, solver, device):
    X, y = _standardized(loader)
    C = int(y.max()) + 1
    lam = 0.01
    sk = LogisticRegression(C=1.0 / (lam * len(X)), fit_intercept=False, tol=1e-12, max_iter=10_000).fit(X, y)
    Xt = torch.tensor(X, device=device)
    Q = torch.tensor(_onehot(y, C), device=device)[None]
    fit = fit_ridge_logistic(Xt, torch.ones(1, len(X), dtype=torch.float64, device=device), Q, lam, solver=solver)
    assert bool(fit.converged.all())
    np.testing.assert_allclose(fit.theta[0].cpu().numpy(), sk.coef_.ravel(), atol=1e-4, rtol=0)
    probs = predict_proba(Xt, fit.theta, C)[0].cpu().numpy()
    np.testing.assert_allclose(probs, sk.predict_proba(X), atol=1e-5)


def test_batched_learners_with_own_weights_match_separate_fits(device):
    X, y = _standardized(load_wine)
    rng = np.random.default_rng(0)
    B = 5
    weights = (rng.random((B, len(X))) < 0.5).astype(float) * rng.uniform(0.5, 2.0, (B, len(X)))
    Q = torch.tensor(_onehot(y, 3), device=device).expand(B, -1, -1)
    fit = fit_ridge_logistic(torch.tensor(X, device=device), torch.tensor(weights, device=device), Q, 0.05)
    for b in range(B):
        sk = LogisticRegression(C=1.0 / (0.05 * weights[b].sum()), fit_intercept=False, tol=1e-12, max_iter=10_000)
        sk.fit(X, y, sample_weight=weights[b])
        np.testing.assert_allclose(fit.theta[b].cpu().numpy(), sk.coef_.ravel(), atol=1e-4)


@pytest.mark.parametrize("C", [2, 3])
def test_blocked_threaded_newton_equals_learner_by_learner_fits(C):
    """A large batch is solved in blocks (CPU); every learner's fit equals its fit alone, for any thread count."""
    rng = np.random.default_rng(1)
    B, n, p = 300, 25, 6
    X = torch.tensor(rng.normal(size=(B, n, p)))
    y = rng.integers(0, C, size=(B, n))
    Q = torch.nn.functional.one_hot(torch.tensor(y), C).double()
    w = torch.tensor(rng.uniform(0.2, 1.0, size=(B, n)))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        batched = fit_ridge_logistic(X, w, Q, 0.01, solver="newton")
        torch.set_num_threads(1)
        single_thread = fit_ridge_logistic(X, w, Q, 0.01, solver="newton")
    finally:
        torch.set_num_threads(threads)
    assert bool(batched.converged.all())
    torch.testing.assert_close(batched.theta, single_thread.theta, rtol=0, atol=1e-12)
    for b in (0, 137, 299):
        alone = fit_ridge_logistic(X[b : b + 1], w[b : b + 1], Q[b : b + 1], 0.01, solver="newton")
        # a batched product may round differently from a single one: the last step is taken or not as the gradient
        # norm lands on either side of tol, so the counts agree within one; both solutions lie within tol / lam of
        # the minimizer (lam-strong convexity), and equal counts mean the same steps (equal to rounding)
        gap = abs(int(batched.iterations[b]) - int(alone.iterations[0]))
        assert gap <= 1
        atol = 1e-10 if gap == 0 else 2 * 1e-8 / 0.01
        torch.testing.assert_close(batched.theta[b], alone.theta[0], rtol=0, atol=atol)


def test_soft_labels_equal_weighted_duplicates():
    """A soft label q is the same training signal as one copy per class with weight q_c."""
    X, y = _standardized(load_breast_cancer, rows=np.arange(120))
    rng = np.random.default_rng(1)
    q1 = rng.random(len(X))
    soft = np.stack([1 - q1, q1], 1)
    lam = 0.02
    fit = fit_ridge_logistic(torch.tensor(X), torch.ones(1, len(X), dtype=torch.float64), torch.tensor(soft)[None], lam)
    Xd = np.vstack([X, X])
    yd = np.r_[np.zeros(len(X), int), np.ones(len(X), int)]
    sk = LogisticRegression(C=1.0 / (lam * len(X)), fit_intercept=False, tol=1e-12, max_iter=10_000)
    sk.fit(Xd, yd, sample_weight=np.r_[1 - q1, q1])
    np.testing.assert_allclose(fit.theta[0].numpy(), sk.coef_.ravel(), atol=1e-4)


def test_per_learner_atoms_equal_shared_atoms():
    X, y = _standardized(load_wine)
    Xt = torch.tensor(X)
    w = torch.rand(3, len(X), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    Q = torch.tensor(_onehot(y, 3)).expand(3, -1, -1)
    shared = fit_ridge_logistic(Xt, w, Q, 0.01)
    batched = fit_ridge_logistic(Xt.expand(3, -1, -1).contiguous(), w, Q, 0.01)
    torch.testing.assert_close(shared.theta, batched.theta, atol=1e-10, rtol=0)


def test_newton_cg_reaches_the_newton_solution_on_digits():
    X, y = _standardized(load_digits, rows=np.arange(400))
    Xt, Q = torch.tensor(X), torch.tensor(_onehot(y, 10))[None].expand(2, -1, -1)
    w = torch.ones(2, len(X), dtype=torch.float64)
    full = fit_ridge_logistic(Xt, w, Q, 0.01, solver="newton")
    cg = fit_ridge_logistic(Xt, w, Q, 0.01, solver="newton-cg")
    assert bool(full.converged.all()) and bool(cg.converged.all())
    assert float(cg.grad_norm.max()) <= 1e-8
    # both solutions are within tol / gamma of the optimum
    torch.testing.assert_close(full.theta, cg.theta, atol=1e-6, rtol=0)


def test_empty_and_one_class_training_sets_have_finite_unique_fits():
    X, _ = _standardized(load_breast_cancer, rows=np.arange(50))
    Xt = torch.tensor(X)
    Q = torch.zeros(2, 50, 2, dtype=torch.float64)
    Q[..., 1] = 1.0  # every atom labeled class 1
    w = torch.stack([torch.zeros(50, dtype=torch.float64), torch.ones(50, dtype=torch.float64)])
    fit = fit_ridge_logistic(Xt, w, Q, 0.01)
    assert torch.all(fit.theta[0] == 0)  # empty: only the penalty is left
    assert bool(torch.isfinite(fit.theta).all()) and bool(fit.converged.all())
    assert float(predict_proba(Xt, fit.theta, 2)[1, :, 1].min()) > 0.5


def test_gamma_is_the_smallest_hessian_eigenvalue():
    X, y = _standardized(load_wine, rows=np.arange(0, 178, 4))
    Xt = torch.tensor(X)
    w = torch.ones(1, len(X), dtype=torch.float64)
    lam = 0.03
    # multinomial: the loss Hessian annihilates (v, v, v), so gamma equals lam; check against an explicit Hessian
    fit = fit_ridge_logistic(Xt, w, torch.tensor(_onehot(y, 3))[None], lam)

    def objective(theta):
        z = (Xt @ theta.view(3, -1).T)
        loss = (torch.logsumexp(z, 1) - (torch.tensor(_onehot(y, 3)) * z).sum(1)).mean()
        return loss + 0.5 * lam * (theta ** 2).sum()

    H = torch.autograd.functional.hessian(objective, fit.theta[0])
    assert float(fit.gamma[0]) == pytest.approx(float(torch.linalg.eigvalsh(H)[0]), abs=1e-9)
    # binary: compare with autograd too
    yb = (y == 0).astype(int)
    fitb = fit_ridge_logistic(Xt, w, torch.tensor(_onehot(yb, 2))[None], lam)

    def objective_b(theta):
        z = Xt @ theta
        return (torch.nn.functional.softplus(z) - torch.tensor(yb) * z).mean() + 0.5 * lam * (theta ** 2).sum()

    Hb = torch.autograd.functional.hessian(objective_b, fitb.theta[0])
    assert float(fitb.gamma[0]) == pytest.approx(float(torch.linalg.eigvalsh(Hb)[0]), abs=1e-9)
    assert float(fitb.gamma[0]) > lam


def test_warm_start_needs_fewer_iterations():
    X, y = _standardized(load_breast_cancer)
    Xt, Q = torch.tensor(X), torch.tensor(_onehot(y, 2))[None]
    w = torch.ones(1, len(X), dtype=torch.float64)
    w[0, -1] = 0.0
    cold = fit_ridge_logistic(Xt, w, Q, 0.01)
    w2 = torch.ones(1, len(X), dtype=torch.float64)
    warm = fit_ridge_logistic(Xt, w2, Q, 0.01, theta0=cold.theta)
    assert int(warm.iterations[0]) < int(cold.iterations[0])
    assert bool(warm.converged.all())


@pytest.mark.parametrize("C", [2, 3])
def test_float32_reaches_its_tolerance(C, device):
    loader = load_breast_cancer if C == 2 else load_wine
    X, y = _standardized(loader)
    w = torch.ones(1, len(X), dtype=torch.float64, device=device)
    Q = torch.tensor(_onehot(y, C), device=device)[None]
    f64 = fit_ridge_logistic(torch.tensor(X, device=device), w, Q, 0.01)
    f32 = fit_ridge_logistic(torch.tensor(X, device=device).float(), w.float(), Q.float(), 0.01)
    assert f32.theta.dtype == torch.float32 and bool(f32.converged.all())
    torch.testing.assert_close(f32.theta.double(), f64.theta, atol=5e-3, rtol=0)


def test_iteration_cap_is_reported():
    X, y = _standardized(load_breast_cancer)
    fit = fit_ridge_logistic(torch.tensor(X), torch.ones(1, len(X), dtype=torch.float64),
                             torch.tensor(_onehot(y, 2))[None], 1e-4, max_iter=1)
    assert int(fit.iterations[0]) == 1 and not bool(fit.converged[0])
    assert float(fit.grad_norm[0]) > 1e-8


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lam=-1.0), "lam"),
        (dict(lam=float("nan")), "lam"),
        (dict(solver="lbfgs"), "solver"),
        (dict(max_iter=0), "max_iter"),
    ],
)
def test_bad_arguments(kwargs, match):
    X = torch.zeros(4, 3, dtype=torch.float64)
    args = dict(X=X, weights=torch.ones(1, 4, dtype=torch.float64), targets=torch.full((1, 4, 2), 0.5,
                dtype=torch.float64), lam=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fit_ridge_logistic(**args)


@pytest.mark.parametrize("C", [2, 3])
def test_standardized_logits_fold_the_standardization_into_theta(C):
    from reciprocal_gym.learners import standardized_logits
    from reciprocal_gym.learners.logistic import _logits

    g = torch.Generator().manual_seed(0)
    X = torch.randn(50, 4, dtype=torch.float64, generator=g) * 3 + 1
    mean = torch.randn(2, 4, dtype=torch.float64, generator=g)
    scale = torch.rand(2, 4, dtype=torch.float64, generator=g) + 0.5
    theta = torch.randn(2, 5 if C == 2 else 5 * C, dtype=torch.float64, generator=g)
    Z = (X.unsqueeze(0) - mean.unsqueeze(1)) / scale.unsqueeze(1)
    Z = torch.cat([Z, torch.ones(2, 50, 1, dtype=torch.float64)], -1)
    torch.testing.assert_close(standardized_logits(X, theta, mean, scale, C), _logits(Z, theta, C))
