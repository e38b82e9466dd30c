"""Where a pool env's step goes: the ERM's LAPACK calls, the rest of the ERM, and the rest of the step.

Used by ``throughput_selftrain.py --breakdown`` and ``throughput_activelearn.py --breakdown``. The LAPACK calls are
the per-matrix Cholesky factorizations and triangular solves of the batched Newton solve; torch runs them as one
call per learner matrix on one core, so their time is a floor that batching does not remove. Each part is also
shown as the throughput ratio against the scikit-learn loop that the step would reach if it cost only that part.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

import reciprocal_gym.envs.pool as pool_module

LAPACK_OPS = ("aten::linalg_cholesky_ex", "aten::linalg_solve_triangular", "aten::linalg_eigvalsh",
              "aten::cholesky_solve")


def breakdown(run: Callable[[], float], batch: int, steps: int, sklearn_rate: float) -> dict[str, float]:
    """Split ``run`` (``steps`` env steps of ``batch`` learners; returns their wall time) into parts, print a table
    and return milliseconds per env step for each part."""
    fit, fit_time = pool_module.fit_ridge_logistic, [0.0]

    def timed_fit(*args, **kwargs):
        start = time.perf_counter()
        result = fit(*args, **kwargs)
        fit_time[0] += time.perf_counter() - start
        return result

    pool_module.fit_ridge_logistic = timed_fit
    try:
        total = run()
    finally:
        pool_module.fit_ridge_logistic = fit
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        profiled = run()
    lapack_profiled = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in LAPACK_OPS) / 1e6
    lapack = lapack_profiled * total / profiled  # the profiler slows every op a little: scale to the plain run
    parts = {"step": total, "erm": fit_time[0], "erm_lapack": lapack, "erm_other": fit_time[0] - lapack,
             "outside_erm": total - fit_time[0]}
    per_step = {key: value / steps * 1e3 for key, value in parts.items()}
    print(f"\nB = {batch}: milliseconds per env step over {steps} steps (the LAPACK share comes from a profiled "
          "run, scaled to the plain one)")
    print(f"  {'part':<13}{'ms':>8}   ratio to scikit-learn if a step cost only this part")
    for key, ms in per_step.items():
        ceiling = f"{batch / (ms / 1e3) / sklearn_rate:>6.1f}" if ms > 0 else "     -"
        print(f"  {key:<13}{ms:>8.1f}   {ceiling}")
    return per_step
