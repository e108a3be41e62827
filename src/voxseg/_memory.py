"""Resident memory of this process: per-step peaks, the whole run's peak, and giving freed memory back.

Linux only (``/proc`` and glibc); elsewhere the functions do nothing and the peaks are None.
"""

from __future__ import annotations

import ctypes
import functools
import os

#: highest peak seen before any reset (the kernel keeps one peak, which a reset forgets)
_process_peak = 0

# glibc mallopt parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8


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


#: set to 1 to give the memory a pipeline step freed back to the system before the next step, so that
#: each step's peak is its own (otherwise the next steps reuse it: faster, but their peaks include it)
STEP_MEMORY_VARIABLE = "VOXSEG_STEP_MEMORY"


def exact_step_peaks() -> bool:
    """Whether ``$VOXSEG_STEP_MEMORY`` asks for each step's own peak (see :func:`end_step`)."""
    return os.environ.get(STEP_MEMORY_VARIABLE, "").strip() not in ("", "0")


def end_step() -> None:
    """Between two steps: keep what the step freed for the next ones, or give it back (:func:`exact_step_peaks`).

    Memory given back costs the next step's arrays their page faults again
    (about 0.1 s of a 3 s run on the 120x512x512 benchmark), for a peak per
    step that points at the step that needs the memory. The process's own
    peak is the same either way (the steps reuse the freed memory).
    """
    if exact_step_peaks():
        release_free_memory()


def release_free_memory() -> None:
    """Give the memory the allocator holds but no array uses back to the system (glibc ``malloc_trim``)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def configure_allocator() -> None:
    """Allocate arrays from one glibc heap that keeps freed memory until :func:`release_free_memory`.

    Worker threads otherwise get arenas of their own, which keep the crops they
    freed and inflate the peak of the steps that follow (voxseg's threads make
    few, large allocations: sharing one arena costs nothing measurable). And
    glibc maps every large array afresh and unmaps it when freed, so the next
    volume-sized array pays the kernel's page faults again (about 2 s per GB
    on a virtual machine): from the heap, later arrays reuse the pages that
    earlier ones freed, across steps too (see :func:`end_step`). On the
    120x512x512 benchmark this took the system time of a run from 0.8-1.4 s
    to 0.4-0.6 s. NumPy's advice to back its arrays with huge pages is
    turned off: where the kernel compacts memory to honour it (its
    ``defrag=madvise`` default), the first steps' page faults stall (the
    benchmark's median run: 3.5 -> 3.1 s, and 2.86 -> 3.08 s on this
    version). For the command line only: a
    library does not change its host's allocator.
    """
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(_M_ARENA_MAX, 1)
        libc.mallopt(_M_MMAP_MAX, 0)  # no array gets pages of its own: all come from the heap
        libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)  # freed pages stay for reuse until released explicitly
    import numpy as np

    # the switch behind NumPy's NUMPY_MADVISE_HUGEPAGE environment variable
    multiarray = getattr(getattr(np, "_core", None), "multiarray", None)
    if hasattr(multiarray, "_set_madvise_hugepage"):
        multiarray._set_madvise_hugepage(False)
