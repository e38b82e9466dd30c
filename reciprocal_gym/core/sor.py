"""Batched successive over-relaxation (SOR) on 2-D anisotropic diffusion systems, in torch.

The system of learner b is the 5-point discretisation on an m x m interior grid (zero Dirichlet boundary)

    A = ax * (T (x) I) + ay * (I (x) T) + shift * I,    T = tridiag(-1, 2, -1),

with ax, ay > 0 and shift >= 0, so A is sparse, symmetric positive definite and has the diagonal
``2 ax + 2 ay + shift``; unknown (i, j) has lexicographic index ``i * m + j``, its neighbours (i -+ 1, j) couple
with ``-ay`` and (i, j -+ 1) with ``-ax``.

SOR runs in red-black order: all unknowns with i + j even ("red", in lexicographic order), then all others. The
red unknowns only couple to black ones, so updating all red unknowns at once gives exactly the sequential SOR
sweep in that order; the same holds for black. One iteration is one full sweep:

    x_k <- (1 - omega) x_k + omega * (b_k - sum_{l != k} A_kl x_l) / A_kk,

with the off-diagonal sum taken in column order (up, left, right, down) and the residual ``b - A x`` likewise (up,
left, diagonal, right, down), so that a plain sequential implementation in the same order reproduces the numbers.
The iteration count is the number of sweeps until ``|b - A x|_2 <= tol * |b|_2`` (starting from x = 0), or
``max_iter`` if that is not reached.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def jacobi_radius(m: int, ax: Tensor, ay: Tensor, shift: Tensor) -> Tensor:
    """Spectral radius of the Jacobi iteration matrix of A (closed form on the m x m grid)."""
    c = math.cos(math.pi / (m + 1))
    return 2.0 * (ax + ay) * c / (2.0 * (ax + ay) + shift)


def optimal_omega(m: int, ax: Tensor, ay: Tensor, shift: Tensor) -> Tensor:
    """Young's optimal relaxation ``2 / (1 + sqrt(1 - rho_J^2))`` (red-black is a consistent ordering)."""
    rho = jacobi_radius(m, ax, ay, shift)
    return 2.0 / (1.0 + torch.sqrt(1.0 - rho * rho))


def _neighbour_sum(x: Tensor, ax: Tensor, ay: Tensor, m: int) -> Tensor:
    """sum_{l != k} A_kl x_l for every interior unknown of the zero-padded grid x (B, m + 2, m + 2)."""
    up = x[:, 0:m, 1 : m + 1]
    left = x[:, 1 : m + 1, 0:m]
    right = x[:, 1 : m + 1, 2 : m + 2]
    down = x[:, 2 : m + 2, 1 : m + 1]
    return (-ay) * up + (-ax) * left + (-ax) * right + (-ay) * down


def _residual_norm(x: Tensor, b: Tensor, ax: Tensor, ay: Tensor, diag: Tensor, m: int) -> Tensor:
    up = x[:, 0:m, 1 : m + 1]
    left = x[:, 1 : m + 1, 0:m]
    centre = x[:, 1 : m + 1, 1 : m + 1]
    right = x[:, 1 : m + 1, 2 : m + 2]
    down = x[:, 2 : m + 2, 1 : m + 1]
    Ax = (-ay) * up + (-ax) * left + diag * centre + (-ax) * right + (-ay) * down
    return (b - Ax).flatten(1).norm(dim=1)


def sor_iterations(
    b: Tensor, omega: Tensor, ax: Tensor, ay: Tensor, shift: Tensor, tol: float, max_iter: int
) -> tuple[Tensor, Tensor]:
    """SOR sweeps to reach ``tol`` for B systems at once.

    Args:
        b: (B, m, m) right-hand sides on the grid.
        omega: (B,) relaxation parameters in (0, 2).
        ax, ay, shift: (B,) system coefficients.
        tol: relative residual tolerance.
        max_iter: cap on sweeps.

    Returns:
        iterations (B,) int64 and converged (B,) bool.
    """
    B, m = b.shape[0], b.shape[1]
    view = (B, 1, 1)
    ax3, ay3, om = ax.view(view), ay.view(view), omega.view(view)
    diag = (2.0 * ax + 2.0 * ay + shift).view(view)
    x = torch.zeros(B, m + 2, m + 2, dtype=b.dtype, device=b.device)
    i = torch.arange(m, device=b.device)
    red = ((i.view(-1, 1) + i.view(1, -1)) % 2 == 0).unsqueeze(0)
    target = tol * b.flatten(1).norm(dim=1)
    iterations = torch.full((B,), max_iter, dtype=torch.int64, device=b.device)
    converged = torch.zeros(B, dtype=torch.bool, device=b.device)
    done = _residual_norm(x, b, ax3, ay3, diag, m) <= target
    iterations = torch.where(done, 0, iterations)
    converged = converged | done
    for sweep in range(1, max_iter + 1):
        if bool(converged.all()):
            break
        for colour in (red, ~red):
            centre = x[:, 1 : m + 1, 1 : m + 1]
            updated = (1.0 - om) * centre + om * (b - _neighbour_sum(x, ax3, ay3, m)) / diag
            x[:, 1 : m + 1, 1 : m + 1] = torch.where(colour, updated, centre)
        done = ~converged & (_residual_norm(x, b, ax3, ay3, diag, m) <= target)
        iterations = torch.where(done, sweep, iterations)
        converged = converged | done
    return iterations, converged
