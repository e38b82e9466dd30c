"""One process-wide thread pool for work that releases the GIL (compiled kernels, POT's solver), made again after
a fork, and a helper that spreads independent per-learner work over it."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

_pool: tuple[int, ThreadPoolExecutor] | None = None
_lock = threading.Lock()


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
