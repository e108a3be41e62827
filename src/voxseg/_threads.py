"""Threads for the kernels that release the GIL (watershed, filters, distance maps)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: environment variable that caps the threads of one voxseg process (batch workers set it)
THREADS_VARIABLE = "VOXSEG_THREADS"


def available_cpus() -> int:
    """CPUs this process may run on (its affinity where the system tells it)."""
    if hasattr(os, "process_cpu_count"):  # Python 3.13
        return os.process_cpu_count() or 1
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def thread_count() -> int:
    """Threads one process may use: the CPUs it may run on, capped by ``$VOXSEG_THREADS``."""
    cpus = available_cpus()
    try:
        cap = int(os.environ.get(THREADS_VARIABLE, "0"))
    except ValueError:
        cap = 0
    return max(1, min(cpus, cap) if cap > 0 else cpus)


def thread_map(func, items, *, threads=None):
    """``map(func, items)`` on a pool of threads, results in the order of `items` (lazily)."""
    threads = thread_count() if threads is None else threads
    items = list(items)
    if threads <= 1 or len(items) <= 1:
        yield from map(func, items)
        return
    with ThreadPoolExecutor(min(threads, len(items))) as pool:
        yield from pool.map(func, items)


def slabs(shape, *, voxels: int = 1 << 20) -> list:
    """Index tuples cutting an array of `shape` along its first axis into slabs of about `voxels` voxels."""
    if len(shape) == 0 or shape[0] == 0:
        return [()]
    per_index = max(1, int(np.prod(shape[1:], dtype=np.int64)))
    step = max(1, voxels // per_index)
    return [(slice(start, min(start + step, shape[0])),) for start in range(0, shape[0], step)]


def in_background(func, *args, **kwargs):
    """A future of ``func(*args, **kwargs)``, computed by a thread of its own (its exception, if any, kept)."""
    from concurrent.futures import Future
    from threading import Thread

    future = Future()

    def work():
        try:
            future.set_result(func(*args, **kwargs))
        except BaseException as err:  # handed to the caller of result()
            future.set_exception(err)

    Thread(target=work, name=f"voxseg-{getattr(func, '__name__', 'work')}", daemon=True).start()
    return future
