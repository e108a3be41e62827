"""Benchmark voxseg.batch (voxseg.batching.run_batch): the same inputs over 1 worker and over 2 worker processes.

Usage::

    python benchmarks/bench_batch.py [--copies N] [--repeat N] [--no-report]

Copies the bundled nuclei sample (60 x 256 x 256, uint16) ``--copies`` times
(default 8) into a temporary folder and times :func:`voxseg.batching.run_batch`
on it, each time in a fresh Python process (as ``voxseg batch`` runs, imports
included) and into a fresh results folder:

* with 1 worker (the inputs one after the other, in that process), whose
  splitting, filters and measurements use every core for part of the time;
* with 1 worker limited to one thread (what one process alone gets out of
  one core);
* with 2 worker processes, each limited to cores // 2 BLAS/OpenMP/dask
  threads (the default);
* with 2 worker processes whose thread pools are not limited
  (``threads_per_worker`` = all cores).

Reports are written (as ``voxseg batch`` does) unless ``--no-report``. It
prints the best wall-clock seconds of ``--repeat`` rounds (the configurations
alternate within a round), the ratio to the 1-worker time (goal, set when a
run used one core: 2 workers <= 0.6 x the 1-worker 1-thread time), and the CPU seconds the run got (the process and its workers) per
wall-clock second: about 1 for one worker and about 2 for two on a machine
with 2 free cores. Less than that means other processes took the cores, which
no worker count can make up for; the load average is printed for the same
reason. It also checks that every configuration wrote the same combined table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUN = """
import json, sys
from voxseg.batching import run_batch
run_batch(sys.argv[1], sys.argv[2], report=sys.argv[3] == "report", **json.loads(sys.argv[4]))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8, help="Copies of the nuclei sample (default 8).")
    parser.add_argument("--repeat", type=int, default=1, help="Rounds; the best time is kept (default 1).")
    parser.add_argument("--no-report", action="store_true", help="Do not write report.html.")
    args = parser.parse_args()

    from voxseg.samples import sample_path

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    configs = [
        ("1 worker", {"workers": 1}),
        ("1 worker, 1 thread", {"workers": 1, "threads_per_worker": 1}),
        ("2 workers, threads limited", {"workers": 2}),
        ("2 workers, threads not limited", {"workers": 2, "threads_per_worker": cores}),
    ]
    best = {name: (float("inf"), 0.0) for name, _ in configs}
    tables = {}
    folder = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        data = folder / "inputs"
        data.mkdir()
        for i in range(args.copies):
            shutil.copy(sample_path("nuclei"), data / f"nuclei{i:02d}.tif")
        load = os.getloadavg()
        for _ in range(args.repeat):
            for index, (name, options) in enumerate(configs):
                outdir = folder / f"out{index}"
                shutil.rmtree(outdir, ignore_errors=True)
                cpu, start = _cpu_seconds(), time.perf_counter()
                subprocess.run([sys.executable, "-c", RUN, data, outdir, "no" if args.no_report else "report",
                                json.dumps(options)], check=True)
                seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
                if seconds < best[name][0]:
                    best[name] = (seconds, cpu / seconds)
                tables.setdefault(name, hashlib.sha256((outdir / "objects.csv").read_bytes()).hexdigest())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert len(set(tables.values())) == 1, "the combined tables differ between configurations"

    base = best[configs[0][0]][0]
    print(f"{args.copies} copies of the nuclei sample (60 x 256 x 256), reports {'off' if args.no_report else 'on'}, "
          f"best of {args.repeat}; {cores} CPU cores; load average before {load[0]:.2f}, "
          f"after {os.getloadavg()[0]:.2f}")
    print(f"{'configuration':<32} {'seconds':>8} {'ratio':>6} {'CPU s / s':>10}")
    for name, _ in configs:
        seconds, busy = best[name]
        print(f"{name:<32} {seconds:8.2f} {seconds / base:6.2f} {busy:10.2f}")
    two, single = best[configs[2][0]][0], best[configs[1][0]][0]
    # the goal was set when a run used one core; a run now uses more for part of its time
    print(f"goal: 2 workers <= 0.60 x 1 worker on 1 thread: {'met' if two <= 0.6 * single else 'NOT met'} "
          f"({two / single:.2f} x); against 1 worker using its threads: {two / base:.2f} x")


def _cpu_seconds():
    """CPU time of this process and of its finished child processes (and theirs: the workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


if __name__ == "__main__":
    main()
