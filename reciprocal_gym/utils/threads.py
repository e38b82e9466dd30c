"""One process-wide thread pool for work that releases the GIL (compiled kernels, POT's solver), made again after
a fork, and a helper that spreads independent per-learner work over it.

Forked children get one torch thread. A child forked from a process that has run torch's OpenMP thread team inherits
a team it cannot use, and the next op that enters a parallel region (a Cholesky, say) hangs forever: Gymnasium's
async vector env and TorchRL's ``ParallelEnv`` fork by default on Linux. With one torch thread the child never enters
those regions. Set ``RECIPROCAL_GYM_KEEP_TORCH_THREADS_AFTER_FORK=1`` to keep the parent's count (at your own risk),
or start workers with ``context="spawn"`` / ``"forkserver"``, which are not affected.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

_pool: tuple[int, ThreadPoolExecutor] | None = None
_lock = threading.Lock()


def _one_torch_thread_in_forked_child() -> None:
    if os.environ.get("RECIPROCAL_GYM_KEEP_TORCH_THREADS_AFTER_FORK") == "1":
        return
    import torch

    torch.set_num_threads(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_one_torch_thread_in_forked_child)


def worker_pool() -> ThreadPoolExecutor:
    """The shared pool (one thread per CPU). No torch op may run on it: each thread that runs torch ops brings its
    own OpenMP team, and the spinning teams slow every other op down."""
    global _pool
    with _lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="reciprocal-gym"))
        return _pool[1]


def run_chunks(n: int, work: Callable[[int, int], None], threads: int, min_chunk: int = 32) -> None:
    """Call ``work(lo, hi)`` on chunks covering ``range(n)``, claimed in turn by the calling thread and
    ``threads - 1`` pool threads; returns when all are done (re-raising the first error).

    Small chunks even the load out: items may cost different amounts (learners need different numbers of Newton
    iterations), and right after a torch op one core is still busy with torch's spinning OpenMP worker for a while.
    """
    threads = max(1, min(threads, os.cpu_count() or 1))
    if threads == 1 or n < 2 * min_chunk:
        if n:
            work(0, n)
        return
    chunk = max(min_chunk, -(-n // (8 * threads)))
    bounds = iter([(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)])
    lock = threading.Lock()

    def claim() -> None:
        while True:
            with lock:
                rows = next(bounds, None)
            if rows is None:
                return
            work(*rows)

    helpers = [worker_pool().submit(claim) for _ in range(threads - 1)]
    try:
        claim()
    finally:
        for helper in helpers:
            helper.result()
