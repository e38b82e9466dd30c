"""Batched ridge-regularized logistic regression (binary and multinomial) in torch.

B learners are fitted at once. Learner ``b`` minimises the weighted mean cross-entropy over its atoms plus a ridge
penalty on all parameters (the intercept is a feature column of ones and is penalized like the rest):

    f_b(theta) = sum_i a_bi * CE(q_bi, p_theta(x_bi)) + lam / 2 * |theta|^2,   a_bi = w_bi / sum_j w_bj,

with soft labels ``q_bi`` (a probability vector per atom). An empty training set (all weights zero) leaves only the
penalty, so theta = 0. With ``lam > 0`` the objective is ``lam``-strongly convex and every fit has one finite
minimiser, also for one-class training sets.

Parametrization. Binary (C = 2): one weight vector, ``P = p`` parameters, ``p_theta(y=1|x) = sigmoid(x . theta)``.
Multinomial (C > 2): one row per class, ``P = C * p`` parameters stored class-major (``theta.view(B, C, p)``),
``p_theta(y|x) = softmax(Theta x)``. This is scikit-learn's parametrization; with the objective above,
scikit-learn's ``LogisticRegression(C=1 / (lam * sum(w)), fit_intercept=False)`` on the same columns has the same
minimiser.

Solvers. ``"newton"``: warm-started Newton, Cholesky solves of the (B, P, P) Hessians, Armijo backtracking.
``"newton-cg"``: truncated Newton where each step solves H d = -g by conjugate gradients with Hessian-vector
products (O(n C p) each) and a block-Jacobi preconditioner (one p x p Cholesky per class). Full multinomial Newton
costs O(n C^2 p^2) per Hessian and O((C p)^3) per solve (650 x 650 on digits); Newton-CG reaches the same gradient
tolerance at a fraction of that. ``"auto"`` picks Newton for binary problems and for C * p <= 128, else Newton-CG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from reciprocal_gym.learners import newton_cpu
from reciprocal_gym.learners.atoms import RowAtoms

SOLVERS = ("auto", "newton", "newton-cg")
BACKENDS = ("auto", "torch", "compiled")


@dataclass(frozen=True)
class FitResult:
    """Outcome of a batched fit; every field has a leading batch dimension B."""

    theta: Tensor
    """(B, P) fitted parameters."""
    iterations: Tensor
    """(B,) Newton iterations used."""
    grad_norm: Tensor
    """(B,) Euclidean norm of the objective's gradient at exit."""
    converged: Tensor
    """(B,) True where ``grad_norm <= tol``."""
    gamma: Tensor | None
    """(B,) smallest eigenvalue of the Hessian at exit (strong-convexity constant), or None if not asked for."""


def default_tol(dtype: torch.dtype) -> float:
    """Gradient-norm tolerance that the dtype can reach: 1e-8 for float64, 1e-5 for float32."""
    return 1e-8 if dtype == torch.float64 else 1e-5


def n_params(n_features: int, n_classes: int) -> int:
    """Number of parameters P for ``n_features`` columns (intercept included) and ``n_classes`` classes."""
    return n_features if n_classes == 2 else n_classes * n_features


def predict_proba(X: Tensor, theta: Tensor, n_classes: int) -> Tensor:
    """Class probabilities (B, n, C) for atoms X of shape (B, n, p) or shared (n, p) and theta (B, P)."""
    return probs_from_logits(_logits(X, theta, n_classes), n_classes)


def probs_from_logits(logits: Tensor, n_classes: int) -> Tensor:
    """(B, n, C) probabilities from (B, n) binary or (B, n, C) multinomial logits."""
    if n_classes == 2:  # written into one buffer: a stack along the last dimension is slow on CPU
        p1 = torch.sigmoid(logits)  # contiguous: the vectorized kernel
        out = logits.new_empty(*logits.shape, 2)
        out[..., 1] = p1
        torch.sub(1.0, p1, out=out[..., 0])
        return out
    return torch.softmax(logits, dim=-1)


def folded_parameters(theta: Tensor, mean: Tensor, scale: Tensor) -> tuple[Tensor, Tensor]:
    """Binary parameters (B, d + 1) on standardized features, folded onto raw features: weights (B, d) and bias (B,)
    with ``theta . ((x - mean) / scale, 1) = weights . x + bias``."""
    d = mean.shape[1]
    weights = theta[:, :d] / scale
    return weights, theta[:, d] - (weights * mean).sum(1)


def standardized_logits(X: Tensor, theta: Tensor, mean: Tensor, scale: Tensor, n_classes: int) -> Tensor:
    """Logits of raw rows X (n, d), shared by all learners, under per-learner standardization.

    Learner b sees the features ``(x - mean[b]) / scale[b]`` plus an intercept column (last). Folding the
    standardization into the parameters gives every learner's logits for every row from one matrix product, without
    a standardized copy of the data per learner. Returns (B, n) for binary, (B, n, C) for multinomial.
    """
    B, d = mean.shape
    if n_classes == 2:
        weights, bias = folded_parameters(theta, mean, scale)
        return torch.addmm(bias.unsqueeze(1), weights, X.T)  # the bias added by the matrix product, not a pass
    W = theta.view(B, n_classes, d + 1)
    weights = W[..., :d] / scale.unsqueeze(1)
    bias = W[..., d] - (weights * mean.unsqueeze(1)).sum(-1)
    return (weights.reshape(B * n_classes, d) @ X.T).view(B, n_classes, -1).transpose(1, 2) + bias.unsqueeze(1)


def _logits(X: Tensor, theta: Tensor, n_classes: int) -> Tensor:
    """(B, n) logits for binary, (B, n, C) for multinomial."""
    B = theta.shape[0]
    if n_classes == 2:
        if X.dim() == 2:
            return theta @ X.T
        return torch.bmm(X, theta.unsqueeze(-1)).squeeze(-1)
    W = theta.view(B, n_classes, -1)
    if X.dim() == 2:
        return torch.einsum("np,bcp->bnc", X, W)
    return torch.bmm(X, W.transpose(1, 2))


def _xt_times(X: Tensor, R: Tensor) -> Tensor:
    """X^T R per learner: R (B, n) -> (B, p); R (B, n, C) -> (B, C, p)."""
    if R.dim() == 2:
        if X.dim() == 2:
            return R @ X
        return torch.bmm(R.unsqueeze(1), X).squeeze(1)
    if X.dim() == 2:
        return torch.einsum("bnc,np->bcp", R, X)
    return torch.bmm(R.transpose(1, 2), X)


def _weighted_gram(X: Tensor, s: Tensor) -> Tensor:
    """sum_i s_bi x_i x_i^T for s (B, n): (B, p, p)."""
    if X.dim() == 2:
        return torch.einsum("bn,np,nq->bpq", s, X, X)
    return torch.bmm(X.transpose(1, 2), X * s.unsqueeze(-1))


def normalized_weights(weights: Tensor) -> Tensor:
    """(B, n) atom weights divided by each learner's total (an all-zero row stays zero): the ``a`` of the objective."""
    total = weights.sum(dim=1, keepdim=True)
    return weights / torch.where(total > 0, total, torch.ones_like(total))


class _Problem:
    """The objective of B learners on fixed data; theta-independent pieces computed once."""

    def __init__(self, X: Tensor, weights: Tensor, targets: Tensor, lam: float | Tensor,
                 free_intercept: bool = False) -> None:
        self.X = X
        self.C = targets.shape[-1]
        self.p = X.shape[-1]
        self.a = normalized_weights(weights)
        self.Q = targets
        # the ridge: a float shared by all learners, or one per learner as a (B, 1) column (lam_row: (B,))
        self.lam: float | Tensor = lam if not isinstance(lam, Tensor) else lam.to(X.dtype).view(-1, 1)
        self.lam_row: float | Tensor = lam if not isinstance(lam, Tensor) else self.lam.view(-1)
        # which parameters the ridge acts on: all (None), or all but each class's intercept (the last column)
        self.pen: Tensor | None = None
        if free_intercept:
            pen = torch.ones(self.C if self.C > 2 else 1, self.p, dtype=X.dtype, device=X.device)
            pen[:, -1].fill_(0.0)
            self.pen = pen.view(-1)

    def ridge(self, theta: Tensor) -> Tensor:
        """The penalty's gradient ``lam * pen * theta``."""
        return self.lam * (theta if self.pen is None else self.pen * theta)

    def add_ridge_diagonal(self, H: Tensor) -> None:
        """Add the penalty's Hessian to H in place; with free intercepts in a multinomial model, also the rank-one
        term along (intercept_1 = ... = intercept_C), the direction that neither the loss nor the penalty sees
        (softmax is invariant to it): the gradient is orthogonal to it, so Newton steps are unchanged and H stays
        positive definite."""
        diag = H.diagonal(dim1=-2, dim2=-1)
        if self.pen is None:
            diag.add_(self.lam)
            return
        diag.add_(self.lam * self.pen)
        if self.C > 2:
            u = (1.0 - self.pen) / math.sqrt(self.C)
            H.add_(torch.outer(u, u))

    def subset(self, idx: Tensor | slice) -> _Problem:
        """The problem of learners ``idx`` only (a slice gives views, an index tensor copies)."""
        sub = object.__new__(_Problem)
        sub.X = self.X if self.X.dim() == 2 else self.X[idx]
        sub.C, sub.p = self.C, self.p
        shared = not isinstance(self.lam, Tensor)
        sub.lam, sub.lam_row = (self.lam, self.lam_row) if shared else (self.lam[idx], self.lam_row[idx])
        sub.pen = self.pen
        sub.a, sub.Q = self.a[idx], self.Q[idx]
        return sub

    def value(self, theta: Tensor) -> Tensor:
        return self._value_from_logits(_logits(self.X, theta, self.C), theta)

    def _value_from_logits(self, z: Tensor, theta: Tensor) -> Tensor:
        if self.C == 2:
            loss = torch.nn.functional.softplus(z) - self.Q[..., 1] * z
        else:
            loss = torch.logsumexp(z, dim=-1) - (self.Q * z).sum(-1)
        square = theta * theta if self.pen is None else self.pen * theta * theta
        return (self.a * loss).sum(1) + 0.5 * self.lam_row * square.sum(1)

    def evaluate(self, theta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Objective value, probabilities and gradient at theta."""
        z = _logits(self.X, theta, self.C)
        return self._value_from_logits(z, theta), *self.probs_and_gradient(z, theta)

    def evaluate_logits(self, theta: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Objective value, logits, probabilities and gradient at theta."""
        z = _logits(self.X, theta, self.C)
        return self._value_from_logits(z, theta), z, *self.probs_and_gradient(z, theta)

    def probs_and_gradient(self, z: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]:
        """Probabilities and gradient at theta, whose logits are ``z``."""
        B = theta.shape[0]
        if self.C == 2:
            s = torch.sigmoid(z)
            g = _xt_times(self.X, self.a * (s - self.Q[..., 1]))
            return s, g + self.ridge(theta)
        S = torch.softmax(z, dim=-1)
        G = _xt_times(self.X, self.a.unsqueeze(-1) * (S - self.Q))
        return S, G.reshape(B, -1) + self.ridge(theta)

    def hessian(self, probs: Tensor) -> Tensor:
        """Full (B, P, P) Hessian at the point whose probabilities are ``probs``."""
        if self.C == 2:
            H = _weighted_gram(self.X, self.a * probs * (1.0 - probs))
            self.add_ridge_diagonal(H)
            return H
        B, C, p = probs.shape[0], self.C, self.p
        H = probs.new_zeros(B, C, p, C, p)
        aS = self.a.unsqueeze(-1) * probs
        for c in range(C):
            for d in range(c, C):
                coef = -aS[..., c] * probs[..., d]
                if c == d:
                    coef = coef + aS[..., c]
                block = _weighted_gram(self.X, coef)
                H[:, c, :, d, :] = block
                if d != c:
                    H[:, d, :, c, :] = block.transpose(1, 2)
        H = H.reshape(B, C * p, C * p)
        self.add_ridge_diagonal(H)
        return H

    def hvp(self, probs: Tensor, V: Tensor) -> Tensor:
        """Multinomial Hessian-vector products H v for V (B, P)."""
        B = V.shape[0]
        U = _logits(self.X, V, self.C)  # (B, n, C)
        R = probs * (U - (probs * U).sum(-1, keepdim=True))
        HV = _xt_times(self.X, self.a.unsqueeze(-1) * R).reshape(B, -1) + self.ridge(V)
        if self.pen is not None:  # the rank-one term of add_ridge_diagonal
            u = (1.0 - self.pen) / math.sqrt(self.C)
            HV = HV + (V @ u).unsqueeze(1) * u
        return HV

    def block_preconditioner(self, probs: Tensor, fixed: bool = False) -> Tensor:
        """Cholesky factors (B, C, p, p) of the class-diagonal Hessian blocks (``fixed``: without host reads)."""
        B, C, p = probs.shape[0], self.C, self.p
        coef = self.a.unsqueeze(-1) * probs * (1.0 - probs)  # (B, n, C)
        coef = coef.permute(0, 2, 1).reshape(B * C, -1)
        X = self.X
        if X.dim() == 3:
            X = X.repeat_interleave(C, dim=0)
        lam = self.lam if not isinstance(self.lam, Tensor) else self.lam.repeat_interleave(C, 0).unsqueeze(-1)
        eye = torch.eye(p, dtype=probs.dtype, device=probs.device)
        if self.pen is not None:  # free intercepts: the block's intercept entry gets the rank-one term's 1 / C
            eye = torch.diag(torch.cat([torch.full((p - 1,), 1.0, dtype=probs.dtype, device=probs.device),
                                        torch.zeros(1, dtype=probs.dtype, device=probs.device)]))
            blocks = _weighted_gram(X, coef) + lam * eye
            blocks[:, -1, -1] += 1.0 / C
        else:
            blocks = _weighted_gram(X, coef) + lam * eye
        return (_cholesky_fixed if fixed else _cholesky_jittered)(blocks).view(B, C, p, p)


def _cholesky_jittered(H: Tensor) -> Tensor:
    """Cholesky factor of each SPD matrix; matrices that fail (singular, lam = 0) get growing diagonal jitter."""
    L, info = torch.linalg.cholesky_ex(H)
    if not bool((info > 0).any()):
        return L
    P = H.shape[-1]
    eye = torch.eye(P, dtype=H.dtype, device=H.device)
    scale = H.diagonal(dim1=-2, dim2=-1).abs().mean(-1).clamp_min(1.0)
    eps = torch.finfo(H.dtype).eps
    for power in range(0, 12):
        bad = info > 0
        if not bool(bad.any()):
            break
        jitter = (scale[bad] * eps * 10.0 ** (power + 2)).view(-1, 1, 1)
        Lb, info_b = torch.linalg.cholesky_ex(H[bad] + jitter * eye)
        L[bad] = Lb
        info[bad] = info_b
    return L


FIXED_JITTER = 1e6
"""The sync-free factorization's one fallback: a matrix whose Cholesky factorization fails gets ``FIXED_JITTER``
times eps times its mean diagonal added to the diagonal (the host-checked one escalates from 1e2 to 1e13)."""


def _cholesky_fixed(H: Tensor) -> Tensor:
    """Cholesky factors without host reads: every matrix is also factorized with a diagonal jitter, used where the
    plain factorization failed (a matrix that fails both gives a non-finite direction, which no step accepts)."""
    L, info = torch.linalg.cholesky_ex(H)
    eye = torch.eye(H.shape[-1], dtype=H.dtype, device=H.device)
    scale = H.diagonal(dim1=-2, dim2=-1).abs().mean(-1).clamp_min(1.0)
    jitter = (scale * torch.finfo(H.dtype).eps * FIXED_JITTER).view(-1, 1, 1)
    L_jittered, _ = torch.linalg.cholesky_ex(H + jitter * eye)
    return torch.where((info > 0).view(-1, 1, 1), L_jittered, L)


def _cholesky_solve(L: Tensor, g: Tensor) -> Tensor:
    """Solve L L^T x = g for a batch of lower Cholesky factors L (two triangular solves)."""
    y = torch.linalg.solve_triangular(L, g.unsqueeze(-1), upper=False)
    return torch.linalg.solve_triangular(L.transpose(-1, -2), y, upper=True).squeeze(-1)


_CHUNK = 256
"""Learners per block in the CPU Newton solve: a block's (chunk, P, P) Hessians stay in cache from their product to
the triangular solves, which is faster than streaming (B, P, P) tensors through memory op by op. (Blocks on a
thread pool were tried too: each Python thread that runs torch ops brings its own OpenMP team, and the spinning
teams slowed every other op down more than the parallel LAPACK calls saved.)"""


def _newton_direction(problem: _Problem, probs: Tensor, g: Tensor, fixed: bool = False) -> Tensor:
    """Newton directions -H^{-1} g; on CPU in blocks of ``_CHUNK`` learners. Each matrix is factorized on its own,
    so the result does not depend on the blocking. ``fixed``: the factorization without host reads."""
    B = g.shape[0]
    factor = _cholesky_fixed if fixed else _cholesky_jittered
    if g.device.type != "cpu" or B <= _CHUNK:
        return -_cholesky_solve(factor(problem.hessian(probs)), g)
    d = torch.empty_like(g)
    for start in range(0, B, _CHUNK):
        rows = slice(start, start + _CHUNK)
        H = problem.subset(rows).hessian(probs[rows])
        torch.neg(_cholesky_solve(factor(H), g[rows]), out=d[rows])
    return d


def _pcg(problem: _Problem, probs: Tensor, g: Tensor, max_cg: int, fixed: bool = False) -> Tensor:
    """Batched preconditioned CG on H d = -g with the Eisenstat-Walker forcing term min(0.5, sqrt|g|); ``fixed``:
    exactly ``max_cg`` masked iterations, no host reads."""
    B, C, p = g.shape[0], problem.C, problem.p
    L = problem.block_preconditioner(probs, fixed)

    def precondition(r: Tensor) -> Tensor:
        rhs = r.view(B, C, p, 1)
        return torch.cholesky_solve(rhs, L).view(B, -1)

    gnorm = g.norm(dim=1)
    target = torch.minimum(torch.full_like(gnorm, 0.5), gnorm.sqrt()) * gnorm
    d = torch.zeros_like(g)
    r = -g
    z = precondition(r)
    direction = z.clone()
    rz = (r * z).sum(1)
    active = r.norm(dim=1) > target
    for _ in range(max_cg):
        if not fixed and not bool(active.any()):
            break
        Hp = problem.hvp(probs, direction)
        curvature = (direction * Hp).sum(1)
        alpha = torch.where(active, rz / torch.where(curvature > 0, curvature, torch.ones_like(curvature)), 0.0)
        d = d + alpha.unsqueeze(1) * direction
        r = r - alpha.unsqueeze(1) * Hp
        active = active & (r.norm(dim=1) > target) & (curvature > 0)
        z = precondition(r)
        rz_new = (r * z).sum(1)
        beta = torch.where(active, rz_new / torch.where(rz != 0, rz, torch.ones_like(rz)), 0.0)
        direction = z + beta.unsqueeze(1) * direction
        rz = rz_new
    return d


def fit_ridge_logistic(
    X: Tensor | RowAtoms,
    weights: Tensor,
    targets: Tensor,
    lam: float | Tensor,
    theta0: Tensor | None = None,
    tol: float | None = None,
    max_iter: int = 50,
    solver: str = "auto",
    compute_gamma: bool = True,
    max_cg: int = 200,
    backend: str = "auto",
    free_intercept: bool = False,
    fixed_iterations: bool = False,
    active: Tensor | None = None,
) -> FitResult:
    """Fit B ridge-logistic learners at once.

    Args:
        X: atoms, (B, n, p) per learner or (n, p) shared by all learners (include an intercept column if wanted),
            or :class:`~reciprocal_gym.learners.atoms.RowAtoms` (standardized rows of a shared table).
        weights: (B, n) non-negative sample weights; zero-weight atoms do not count.
        targets: (B, n, C) soft labels, each row a probability vector (C >= 2).
        lam: ridge strength (>= 0) on the mean loss, shared or a (B,) tensor with one per learner; gamma >= lam.
        theta0: (B, P) warm start; zeros if None.
        tol: stop a learner when the gradient norm is <= tol (default: :func:`default_tol`).
        max_iter: cap on Newton iterations.
        solver: "auto", "newton" or "newton-cg" (multinomial only; binary always uses Newton).
        compute_gamma: also report the smallest Hessian eigenvalue at exit.
        max_cg: cap on conjugate-gradient iterations per Newton-CG step.
        backend: "auto" (the compiled per-learner solver of :mod:`~reciprocal_gym.learners.newton_cpu` for binary
            problems on the CPU, batched torch otherwise), "torch", or "compiled" (binary problems on the CPU only).
            Both run the same Newton iterations and agree to rounding.
        free_intercept: leave each class's intercept (the last column of X, which must then be a column of ones)
            out of the penalty, as scikit-learn's ``LogisticRegression`` does; torch backend only. ``gamma`` is then
            the smallest eigenvalue of the Hessian, which may be below lam (0 for a multinomial model: a shift shared
            by all intercepts changes nothing).
        fixed_iterations: run exactly ``max_iter`` iterations over every learner, those at tolerance held by masks,
            with a fixed line search of step sizes 1 to 2^-16 and a fixed jitter for failed factorizations: no
            tensor value is read on the host, so a CUDA graph can capture the fit (torch backend; the values of a
            tensor ``lam`` are then not checked, which would read them: the caller checks them once). A learner
            that needs more iterations stops with ``converged`` False. ``compute_gamma`` is not available.
        active: (B,) bool, with ``fixed_iterations``: the learners to fit; the others keep ``theta0``.
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver={solver!r} is not allowed; choose one of {SOLVERS}")
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not allowed; choose one of {BACKENDS}")
    if fixed_iterations and (backend == "compiled" or compute_gamma):
        raise ValueError("fixed_iterations=True runs the torch backend without compute_gamma (an eigen decomposition "
                         "checks its result on the host): use backend='auto' or 'torch' and compute_gamma=False")
    if active is not None and not fixed_iterations:
        raise ValueError("active is used with fixed_iterations=True only")
    if isinstance(lam, Tensor):
        if lam.shape != (targets.shape[0],) or not lam.is_floating_point() or (not fixed_iterations and not bool(
                (torch.isfinite(lam) & (lam >= 0)).all())):
            raise ValueError(f"lam must be a finite number >= 0 or a ({targets.shape[0]},) float tensor of such, got "
                             f"shape {tuple(lam.shape)} {lam.dtype}")
    elif not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam={lam!r} is not allowed; lam must be a finite number >= 0")
    if max_iter < 1:
        raise ValueError(f"max_iter={max_iter!r} is not allowed; it must be >= 1")
    if targets.dim() != 3 or targets.shape[-1] < 2:
        raise ValueError(f"targets must have shape (B, n, C) with C >= 2, got {tuple(targets.shape)}")
    B, n, C = targets.shape
    p = X.shape[-1]
    if weights.shape != (B, n) or X.shape[-2] != n or (X.dim() == 3 and X.shape[0] != B):
        raise ValueError(
            f"shapes do not agree: X {tuple(X.shape)}, weights {tuple(weights.shape)}, targets {tuple(targets.shape)}"
        )
    tol = default_tol(X.dtype) if tol is None else tol
    P = n_params(p, C)
    if solver == "auto":
        solver = "newton" if (C == 2 or C * p <= 128) else "newton-cg"
    if C == 2:
        solver = "newton"
    if theta0 is not None and (theta0.shape != (B, P) or theta0.dtype != X.dtype or theta0.device != X.device):
        raise ValueError(f"theta0 must be a ({B}, {P}) {X.dtype} tensor on {X.device}, got {tuple(theta0.shape)} "
                         f"{theta0.dtype} on {theta0.device}")
    compiled_fits = C == 2 and X.device.type == "cpu" and not free_intercept
    if backend == "compiled" and not compiled_fits:
        raise ValueError("backend='compiled' needs a binary problem (C = 2) on the CPU with the intercept penalized")
    theta = torch.zeros(B, P, dtype=X.dtype, device=X.device) if theta0 is None else theta0.clone()
    lam = lam if isinstance(lam, Tensor) else float(lam)
    if active is not None and (active.shape != (B,) or active.dtype != torch.bool):
        raise ValueError(f"active must be a ({B},) bool tensor, got {tuple(active.shape)} {active.dtype}")
    if compiled_fits and backend != "torch" and not fixed_iterations:
        return _fit_compiled(X, weights, targets, lam, theta, tol, max_iter, compute_gamma)
    problem = _Problem(X.materialize() if isinstance(X, RowAtoms) else X, weights, targets, lam, free_intercept)
    return _fit_torch(problem, theta, solver, tol, max_iter, compute_gamma, max_cg, fixed_iterations, active)


def _fit_compiled(X: Tensor | RowAtoms, weights: Tensor, targets: Tensor, lam: float | Tensor, theta0: Tensor,
                  tol: float, max_iter: int, compute_gamma: bool) -> FitResult:
    """Binary fits by the compiled per-learner Newton solver; a learner whose Hessian Cholesky rejects (lam = 0 on
    degenerate data) is refitted by the torch solver, whose factorization adds jitter."""
    a = normalized_weights(weights)
    theta, iterations, gnorm, status = newton_cpu.fit_binary_newton(X, a, targets[..., 1], lam, theta0, tol, max_iter)
    redo = torch.nonzero(status != newton_cpu.STATUS_OK).squeeze(1)
    problem = None
    if len(redo) or compute_gamma:
        problem = _Problem(X.materialize() if isinstance(X, RowAtoms) else X, weights, targets, lam)
    if len(redo):
        again = _fit_torch(problem.subset(redo), theta0[redo], "newton", tol, max_iter, False, 0)
        theta[redo], iterations[redo], gnorm[redo] = again.theta, again.iterations, again.grad_norm
    gamma = None
    if compute_gamma:
        probs = torch.sigmoid(_logits(problem.X, theta, 2))
        gamma = torch.linalg.eigvalsh(problem.hessian(probs))[:, 0]
    return FitResult(theta=theta, iterations=iterations, grad_norm=gnorm, converged=gnorm <= tol, gamma=gamma)


BACKTRACKS = 40
"""Halvings of the Armijo line search before a learner counts as stalled (step sizes down to 2^-40)."""
FIXED_BACKTRACKS = 16
"""Halvings of the sync-free line search (every one is evaluated for every learner each iteration, an elementwise
pass over the atoms; warm-started refits take the full step)."""


def _armijo_step(problem: _Problem, z: Tensor, zd: Tensor, theta: Tensor, d: Tensor, f0: Tensor, slope: Tensor,
                 slack: Tensor, first: int, last: int) -> Tensor:
    """(B,) the largest step t in 2^-first, ..., 2^-last with Armijo's decrease ``f(theta + t d) <= f0 + 1e-4 t
    slope`` (0 where none). Every trial at once, without a product with the atoms: the logits of ``theta + t d``
    are ``z + t zd`` and the ridge term is a quadratic in t, so all trials are a few elementwise ops over
    (B, n, trials)."""
    steps = torch.pow(0.5, torch.arange(first, last + 1, dtype=z.dtype, device=z.device))  # (L,)
    zt = z.unsqueeze(-1) + zd.unsqueeze(-1) * steps  # (B, n, L) or (B, n, C, L)
    if problem.C == 2:
        loss = torch.nn.functional.softplus(zt) - problem.Q[..., 1].unsqueeze(-1) * zt
    else:
        loss = torch.logsumexp(zt, dim=2) - (problem.Q.unsqueeze(-1) * zt).sum(2)
    data = (problem.a.unsqueeze(-1) * loss).sum(1)  # (B, L)
    pd = d if problem.pen is None else problem.pen * d
    pt = theta if problem.pen is None else problem.pen * theta
    square = ((pt * theta).sum(1).unsqueeze(1) + 2.0 * (pt * d).sum(1).unsqueeze(1) * steps
              + (pd * d).sum(1).unsqueeze(1) * steps * steps)  # |theta + t d|^2 on the penalized entries
    lam = problem.lam_row if not isinstance(problem.lam_row, Tensor) else problem.lam_row.unsqueeze(1)
    value = data + 0.5 * lam * square
    ok = (value <= f0.unsqueeze(1) + 1e-4 * steps * slope.unsqueeze(1) + slack.unsqueeze(1)) & torch.isfinite(value)
    first_ok = ok.to(torch.int8).argmax(1)
    return torch.where(ok.any(1), steps[first_ok], 0.0)


def _where_rows(rows: Tensor, new: Tensor, old: Tensor) -> Tensor:
    """``new`` for the learners ``rows`` (B,), ``old`` for the others, whatever the trailing dimensions."""
    return torch.where(rows.view(-1, *([1] * (new.dim() - 1))), new, old)


def _fixed_iterations(problem: _Problem, theta: Tensor, solver: str, tol: float, max_iter: int, max_cg: int,
                      active: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``max_iter`` masked Newton iterations over every learner, no host reads: (theta, probs, gradient,
    iterations)."""
    X, C = problem.X, problem.C
    eps = torch.finfo(X.dtype).eps
    iterations = torch.zeros(theta.shape[0], dtype=torch.int64, device=X.device)
    f, z, probs, g = problem.evaluate_logits(theta)
    moving = g.norm(dim=1) > tol
    if active is not None:
        moving = moving & active
    for _ in range(max_iter):
        if solver == "newton":
            d = _newton_direction(problem, probs, g, fixed=True)
        else:
            d = _pcg(problem, probs, g, max_cg, fixed=True)
        slope = (g * d).sum(1)
        slack = 10.0 * eps * f.abs().clamp_min(1.0)
        t = _armijo_step(problem, z, _logits(X, d, C), theta, d, f, slope, slack, 0, FIXED_BACKTRACKS)
        step = moving & (t > 0)
        theta = torch.where(step.unsqueeze(1), theta + t.unsqueeze(1) * d, theta)
        f_new, z_new, probs_new, g_new = problem.evaluate_logits(theta)
        f, z, probs, g = (_where_rows(step, new, old) for new, old in ((f_new, f), (z_new, z), (probs_new, probs),
                                                                     (g_new, g)))
        iterations = iterations + moving.to(iterations.dtype)
        moving = step & (g.norm(dim=1) > tol)
    return theta, probs, g, iterations


def _checked_iterations(problem: _Problem, theta: Tensor, solver: str, tol: float, max_iter: int, max_cg: int,
                        active: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Newton iterations on the learners still above tolerance, until none is or ``max_iter``: (theta, probs,
    gradient, iterations). ``active`` is not used (every learner is fitted)."""
    X, C = problem.X, problem.C
    B = theta.shape[0]
    eps = torch.finfo(X.dtype).eps
    iterations = torch.zeros(B, dtype=torch.int64, device=X.device)
    f, probs, g = problem.evaluate(theta)
    moving = g.norm(dim=1) > tol
    for _ in range(max_iter):
        idx = torch.nonzero(moving).squeeze(1)
        if len(idx) == 0:
            break
        # work on the learners still above tolerance only; the others keep their theta
        sub = problem if len(idx) == B else problem.subset(idx)
        th, pr, gr, f0 = theta[idx], probs[idx], g[idx], f[idx]
        if solver == "newton":
            d = _newton_direction(sub, pr, gr)
        else:
            d = _pcg(sub, pr, gr, max_cg)
        slope = (gr * d).sum(1)
        slack = 10.0 * eps * f0.abs().clamp_min(1.0)
        # Armijo backtracking; the full step is usually taken, and then its logits give the gradient as well
        trial = th + d
        zt = _logits(sub.X, trial, C)
        fr = sub._value_from_logits(zt, trial)
        accepted = (fr <= f0 + 1e-4 * slope + slack) & torch.isfinite(fr)
        if bool(accepted.all()):
            th = trial
            pr, gr = sub.probs_and_gradient(zt, th)
        else:  # the halvings in windows of 8 trials (each window one elementwise pass), until every learner has one
            zd = _logits(sub.X, d, C)
            t = accepted.to(f0.dtype)
            for first in range(1, BACKTRACKS + 1, 8):
                window = _armijo_step(sub, zt - zd, zd, th, d, f0, slope, slack, first, min(first + 7, BACKTRACKS))
                t = torch.where(t > 0, t, window)
                if bool((t > 0).all()):
                    break
            accepted = t > 0
            th = th + t.unsqueeze(1) * d
            fr, pr, gr = sub.evaluate(th)
        theta = theta.index_copy(0, idx, th)
        f = f.index_copy(0, idx, fr)
        probs = probs.index_copy(0, idx, pr)
        iterations = iterations.index_add(0, idx, torch.ones_like(idx))
        g = g.index_copy(0, idx, gr)
        # a learner whose line search found no decrease has stalled at rounding level: stop it
        still = accepted & (gr.norm(dim=1) > tol)
        moving = torch.zeros_like(moving).index_copy(0, idx, still)
    return theta, probs, g, iterations


def _fit_torch(problem: _Problem, theta: Tensor, solver: str, tol: float, max_iter: int, compute_gamma: bool,
               max_cg: int, fixed: bool = False, active: Tensor | None = None) -> FitResult:
    """Batched Newton or Newton-CG in torch (any device); ``theta`` is the warm start and is overwritten.

    Host-checked (default, :func:`_checked_iterations`): each iteration works on the learners still above tolerance
    only (gathered by index) and the loop ends when none is. ``fixed`` (:func:`_fixed_iterations`): exactly
    ``max_iter`` iterations over every learner, those at tolerance (or outside ``active``) held by masks, and a
    fixed line search: no tensor value is read on the host (a CUDA graph can capture the fit). Both take the same
    steps while a learner is active."""
    X, C, lam = problem.X, problem.C, problem.lam
    B = theta.shape[0]
    iterate = _fixed_iterations if fixed else _checked_iterations
    theta, probs, g, iterations = iterate(problem, theta, solver, tol, max_iter, max_cg, active)
    gnorm = g.norm(dim=1)
    gamma = None
    if compute_gamma:
        if C == 2:
            gamma = torch.linalg.eigvalsh(problem.hessian(probs))[:, 0]
        elif problem.pen is not None:  # a shift shared by every free intercept changes nothing: a zero eigenvalue
            gamma = torch.zeros(B, dtype=X.dtype, device=X.device)
        else:
            # Softmax is invariant to adding one vector v to every class row, so the loss Hessian annihilates
            # (v, ..., v) and is PSD: the smallest eigenvalue of the full Hessian is exactly lam.
            gamma = (torch.full((B,), float(lam), dtype=X.dtype, device=X.device) if not isinstance(lam, Tensor)
                     else problem.lam_row.clone())
    return FitResult(theta=theta, iterations=iterations, grad_norm=gnorm, converged=gnorm <= tol, gamma=gamma)
