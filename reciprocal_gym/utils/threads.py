"""The threading policy: torch ops of the envs on one thread, compiled kernels spread over a pool that yields.

A torch thread team spins while it waits for work. With small per-step ops that buys little on a quiet machine
(the quick suite takes the same time with one torch thread as with two on 2 cores) and on a busy machine the
spinning teams fight the other processes (the quick suite ran 5.5x slower with two busy processes instead of the
fair 2x, its CPU time 3.2x). So every env call (``reset``, ``step``) runs its torch ops with
``RECIPROCAL_GYM_TORCH_THREADS`` threads (default 1; ``keep`` leaves the process setting alone) and restores the
caller's count afterwards (:func:`torch_threads`), and the parallelism across learners lives in the compiled
kernels, which spread chunks of learners over one process-wide pool of Python threads (:func:`run_chunks`) whose idle
threads block instead of spinning, ``RECIPROCAL_GYM_KERNEL_THREADS`` of them (default: the CPUs this process may run
on). The ``reciprocal-gym`` command sets one torch thread for the whole process (``--torch-threads`` to change it).

Forked children get one torch thread. A child forked from a process that has run torch's OpenMP thread team inherits
a team it cannot use, and the next op that enters a parallel region (a Cholesky, say) hangs forever: Gymnasium's
async vector env and TorchRL's ``ParallelEnv`` fork by default on Linux. With one torch thread the child never enters
those regions. Set ``RECIPROCAL_GYM_KEEP_TORCH_THREADS_AFTER_FORK=1`` to keep the parent's count (at your own risk),
or start workers with ``context="spawn"`` / ``"forkserver"``, which are not affected.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

_pool: tuple[int, ThreadPoolExecutor] | None = None
_lock = threading.Lock()


def _one_torch_thread_in_forked_child() -> None:
    if os.environ.get("RECIPROCAL_GYM_KEEP_TORCH_THREADS_AFTER_FORK") == "1":
        return
    import torch

    torch.set_num_threads(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_one_torch_thread_in_forked_child)


def _count(name: str, default: int | None) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if value == "keep" and name == "RECIPROCAL_GYM_TORCH_THREADS":
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name}={value!r} is not allowed; give a number of threads >= 1"
                         + (" or 'keep'" if name == "RECIPROCAL_GYM_TORCH_THREADS" else ""))
    return int(value)


def available_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def kernel_threads() -> int:
    """Threads the compiled kernels spread learners over: ``RECIPROCAL_GYM_KERNEL_THREADS``, else the CPUs this process
    may run on."""
    return _count("RECIPROCAL_GYM_KERNEL_THREADS", None) or available_cpus()


def env_torch_threads() -> int | None:
    """Torch threads for the envs' own ops: ``RECIPROCAL_GYM_TORCH_THREADS`` (a number, or ``keep`` for None: the
    process setting), default 1."""
    return _count("RECIPROCAL_GYM_TORCH_THREADS", 1)


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` torch threads (None: unchanged), then restore the caller's count."""
    if count is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    if before == count:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def worker_pool() -> ThreadPoolExecutor:
    """The shared pool (one thread per available CPU). No torch op may run on it: each thread that runs torch ops
    brings its own OpenMP team, and the spinning teams slow every other op down."""
    global _pool
    with _lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(max(available_cpus(), kernel_threads()),
                                                     thread_name_prefix="reciprocal-gym"))
        return _pool[1]


def run_chunks(n: int, work: Callable[[int, int], None], threads: int, min_chunk: int = 32) -> None:
    """Call ``work(lo, hi)`` on chunks covering ``range(n)``, claimed in turn by the calling thread and
    ``threads - 1`` pool threads; returns when all are done (re-raising the first error).

    Small chunks even the load out: items may cost different amounts (learners need different numbers of Newton
    iterations), and right after a torch op one core is still busy with torch's spinning OpenMP worker for a while.
    """
    threads = max(1, min(threads, max(available_cpus(), kernel_threads())))
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
