"""Resident memory of this process: per-step peaks, the whole run's peak, and giving freed memory back.

Linux only (``/proc`` and glibc); elsewhere the functions do nothing and the peaks are None.
"""

from __future__ import annotations

import ctypes
import functools

#: highest peak seen before any reset (the kernel keeps one peak, which a reset forgets)
_process_peak = 0

_M_ARENA_MAX = -8  # glibc mallopt parameter


def _high_water_mark() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def reset_peak_memory() -> None:
    """Start a new peak of resident memory for :func:`peak_memory` (the old one is kept for the process)."""
    global _process_peak
    _process_peak = max(_process_peak, _high_water_mark() or 0)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_memory() -> int | None:
    """Peak resident memory of this process since :func:`reset_peak_memory`, in bytes (None if unknown)."""
    return _high_water_mark()


def process_peak_memory() -> int | None:
    """Peak resident memory of this process since it started, resets included, in bytes (None if unknown)."""
    current = _high_water_mark()
    return None if current is None else max(_process_peak, current)


@functools.cache
def _libc():
    # the C library is already loaded into the process: no library search (which runs ldconfig)
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def release_free_memory() -> None:
    """Give the memory the allocator holds but no array uses back to the system (glibc ``malloc_trim``)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def use_one_malloc_arena() -> None:
    """Make every thread allocate from one glibc arena, which :func:`release_free_memory` can empty.

    Worker threads otherwise get arenas of their own, which keep the crops they
    freed and inflate the peak of the steps that follow. voxseg's threads make
    few, large allocations, so sharing one arena costs nothing measurable. For
    the command line only: a library does not change its host's allocator.
    """
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(_M_ARENA_MAX, 1)
