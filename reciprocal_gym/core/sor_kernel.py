"""Compiled SOR for the solver env on the CPU: :func:`reciprocal_gym.core.sor.sor_iterations` system by system.

The torch version sweeps all B systems at once, each sweep a handful of small tensor ops, so a 500-sweep solve
costs thousands of op launches (and wakes torch's thread team for each). Here each system runs its own red-black
sweeps in a compiled loop, the systems spread over the shared worker pool, and a system stops as soon as it
converges. The sweep does the same arithmetic in the same order per unknown as the torch version (neighbour sum up,
left, right, down; then ``(1 - omega) x + omega (b - sum) / diag``), so the iterates agree to the last bit; the
residual norm's sum runs in a different order, so an iteration count could differ where a residual lies within
rounding of the tolerance.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from torch import Tensor

from reciprocal_gym.utils.threads import kernel_threads, run_chunks


@numba.njit(cache=True, nogil=True)
def _residual(x, b, s, axs, ays, diag, m):
    total = 0.0
    for i in range(m):
        for j in range(m):
            ax_term = (-ays) * x[i, j + 1] + (-axs) * x[i + 1, j] + diag * x[i + 1, j + 1]
            ax_term = ax_term + (-axs) * x[i + 1, j + 2] + (-ays) * x[i + 2, j + 1]
            r = b[s, i, j] - ax_term
            total += r * r
    return math.sqrt(total)


@numba.njit(cache=True, nogil=True)
def _sor_rows(b, omega, ax, ay, shift, tol, max_iter, iterations, converged):
    B, m = b.shape[0], b.shape[1]
    x = np.zeros((m + 2, m + 2))
    for s in range(B):
        x[:, :] = 0.0
        axs, ays, om = ax[s], ay[s], omega[s]
        diag = 2.0 * axs + 2.0 * ays + shift[s]
        norm_b = 0.0
        for i in range(m):
            for j in range(m):
                norm_b += b[s, i, j] * b[s, i, j]
        target = tol * math.sqrt(norm_b)
        iterations[s] = max_iter
        converged[s] = False
        if _residual(x, b, s, axs, ays, diag, m) <= target:
            iterations[s] = 0
            converged[s] = True
            continue
        for sweep in range(1, max_iter + 1):
            for colour in range(2):
                for i in range(m):
                    for j in range(m):
                        if (i + j) % 2 != colour:
                            continue
                        nsum = (-ays) * x[i, j + 1] + (-axs) * x[i + 1, j] + (-axs) * x[i + 1, j + 2]
                        nsum = nsum + (-ays) * x[i + 2, j + 1]
                        centre = x[i + 1, j + 1]
                        x[i + 1, j + 1] = (1.0 - om) * centre + om * (b[s, i, j] - nsum) / diag
            if _residual(x, b, s, axs, ays, diag, m) <= target:
                iterations[s] = sweep
                converged[s] = True
                break


def sor_iterations_compiled(b: Tensor, omega: Tensor, ax: Tensor, ay: Tensor, shift: Tensor, tol: float,
                            max_iter: int) -> tuple[Tensor, Tensor]:
    """:func:`reciprocal_gym.core.sor.sor_iterations` for float64 systems on the CPU, compiled."""
    B = b.shape[0]
    arrays = [t.detach().contiguous().numpy() for t in (b, omega, ax, ay, shift)]
    iterations = np.empty(B, dtype=np.int64)
    converged = np.empty(B, dtype=np.bool_)

    def work(lo: int, hi: int) -> None:
        _sor_rows(*(a[lo:hi] for a in arrays), tol, max_iter, iterations[lo:hi], converged[lo:hi])

    run_chunks(B, work, kernel_threads(), min_chunk=4)
    return torch.from_numpy(iterations), torch.from_numpy(converged)
