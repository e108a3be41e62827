"""Chunked segmentation: peak memory on a volume larger than memory allows in-memory, speed per voxel, workers.

The volume is the bundled nuclei sample (60 x 256 x 256 uint16) mirrored and tiled to 1024^3 (2 GB), stored
once as OME-Zarr (128^3 chunks) in benchmarks/_data/. Every run is a fresh process (start-up counts) from the
file to a results folder on disk; its peak resident memory is sampled from /proc (with worker processes,
the peak of the whole process tree is reported as well).

Measured, with the goals of the chunked path:

1. the 1024^3 volume chunked: peak RSS <= 3 GB;
2. in-memory vs chunked on a volume that fits (256 x 512 x 512): chunked time per voxel <= 1.5 x in-memory;
3. chunked with a LocalCluster of 1 and of 2 worker processes: 2 workers >= 1.6 x faster than 1.

Run: ``python benchmarks/bench_chunked.py [--quick] [--skip-large]``  (``--quick``: 256^3 instead of 1024^3)
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"
SPACING = (0.29, 0.26, 0.26)


def tiled(shape):
    """The nuclei sample mirrored along every axis and repeated to `shape` (a dask array, made lazily)."""
    import dask
    import dask.array as da

    from voxseg.samples import load_sample

    sample = np.asarray(load_sample("nuclei").data)
    period = [2 * n for n in sample.shape]
    mirrored = sample
    for axis in range(3):
        mirrored = np.concatenate([mirrored, np.flip(mirrored, axis=axis)], axis=axis)

    def slab(z0, z1):
        rows = np.arange(z0, z1) % period[0]
        cols = [np.arange(n) % p for n, p in zip(shape[1:], period[1:])]
        return mirrored[rows][:, cols[0]][:, :, cols[1]]

    step = 64
    parts = [da.from_delayed(dask.delayed(slab)(z, min(z + step, shape[0])),
                             (min(z + step, shape[0]) - z, *shape[1:]), dtype=sample.dtype)
             for z in range(0, shape[0], step)]
    return da.concatenate(parts, axis=0)


def make_input(name, shape, chunks=128):
    """Write the tiled volume once as OME-Zarr (and as TIFF when small, for the in-memory run)."""
    from voxseg import io

    path = DATA / f"{name}.zarr"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        data = tiled(shape).rechunk((min(chunks, shape[0]), min(chunks, shape[1]), min(chunks, shape[2])))
        print(f"writing {path} ({' x '.join(map(str, shape))} uint16) ...", file=sys.stderr)
        io.write_volume(path, data, spacing=SPACING)
    return path


def _rss(pid) -> int:
    """Resident memory of a process in bytes (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError):
        return 0


def _descendants(pid) -> list:
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children = [int(c) for c in f.read().split()]
        except OSError:
            continue
        for child in children:
            out += [child, *_descendants(child)]
    return out


def run_process(code) -> dict:
    """Wall time and peak resident memory of one Python child process (and of it with its worker processes).

    The peak is sampled from /proc every 50 ms and combined with the peaks the run reports itself
    (VmHWM per step): ru_maxrss cannot be used, since voxseg resets the kernel's high-water mark
    between steps to report each step's peak.
    """
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peaks = {"self": 0, "tree": 0}

    def sample():
        while child.poll() is None:
            own = _rss(child.pid)
            peaks["self"] = max(peaks["self"], own)
            peaks["tree"] = max(peaks["tree"], own + sum(_rss(p) for p in _descendants(child.pid)))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = child.communicate()
    elapsed = time.perf_counter() - start
    sampler.join()
    if child.returncode != 0:
        raise RuntimeError(f"run failed:\n{err.decode()[-3000:]}")
    report = json.loads(out.decode().strip().splitlines()[-1])
    reported = max([s["peak_mb"] or 0 for s in report.get("steps", [])] + [0]) * 2**20
    report.update(seconds=elapsed, peak_rss=max(peaks["self"], reported), tree_rss=max(peaks["tree"], reported))
    return report


CHUNKED = """
import json
from voxseg.chunked import segment_file_chunked
s = segment_file_chunked({input!r}, {out!r}, chunks={chunks}, workers={workers}, progress=False, report=False)
print(json.dumps({{"objects": s["object_count"], "steps": s["steps"]}}))
"""

IN_MEMORY = """
import json
from voxseg.workflow import segment_file
s = segment_file({input!r}, {out!r}, report=False)
print(json.dumps({{"objects": s["object_count"], "steps": s["steps"]}}))
"""


def chunked(path, out, chunks=128, workers=None):
    shutil.rmtree(out, ignore_errors=True)
    result = run_process(CHUNKED.format(input=str(path), out=str(out), chunks=chunks, workers=workers))
    shutil.rmtree(out, ignore_errors=True)
    return result


def in_memory(path, out):
    shutil.rmtree(out, ignore_errors=True)
    result = run_process(IN_MEMORY.format(input=str(path), out=str(out)))
    shutil.rmtree(out, ignore_errors=True)
    return result


def line(name, voxels, r):
    gb = r["peak_rss"] / 2**30
    extra = f" (with workers {r['tree_rss'] / 2**30:.2f} GB)" if r["tree_rss"] > r["peak_rss"] * 1.05 else ""
    return (f"{name:<44} {r['seconds']:8.1f} s  {r['seconds'] / voxels * 1e9:6.0f} ns/voxel  "
            f"peak RSS {gb:5.2f} GB{extra}  {r['objects']} objects")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256^3 instead of 1024^3 for the large volume")
    parser.add_argument("--skip-large", action="store_true", help="only the speed and worker comparisons")
    parser.add_argument("--chunks", type=int, default=128, help="chunk edge of the chunked runs")
    args = parser.parse_args()
    large = (256, 256, 256) if args.quick else (1024, 1024, 1024)
    fits = (256, 512, 512)
    rows = []
    work = Path(tempfile.mkdtemp(prefix="voxseg-bench-"))
    try:
        fits_name = "x".join(map(str, fits))
        medium = make_input(f"nuclei_tiled_{fits_name}", fits)
        voxels = int(np.prod(fits))
        memory = in_memory(medium, work / "memory")
        rows.append(line(f"in memory, {fits_name}", voxels, memory))
        print(rows[-1], flush=True)
        threads = chunked(medium, work / "chunked", args.chunks)
        rows.append(line(f"chunked {args.chunks}^3, threads, {fits_name}", voxels, threads))
        print(rows[-1], flush=True)
        one = chunked(medium, work / "one", args.chunks, workers=1)
        rows.append(line(f"chunked {args.chunks}^3, 1 worker, {fits_name}", voxels, one))
        print(rows[-1], flush=True)
        two = chunked(medium, work / "two", args.chunks, workers=2)
        rows.append(line(f"chunked {args.chunks}^3, 2 workers, {fits_name}", voxels, two))
        print(rows[-1], flush=True)
        if not args.skip_large:
            name = "x".join(map(str, large))
            path = make_input(f"nuclei_tiled_{name}", large)
            result = chunked(path, work / "large", args.chunks)
            rows.append(line(f"chunked {args.chunks}^3, threads, {name}", int(np.prod(large)), result))
            print(rows[-1], flush=True)
            print("stages:", json.dumps(result["steps"]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("chunked / in-memory time per voxel: %.2f (goal <= 1.5)" % (threads["seconds"] / memory["seconds"]))
    print("1 worker / 2 workers: %.2f (goal >= 1.6)" % (one["seconds"] / two["seconds"]))
    if not args.skip_large:
        print("peak RSS of the large run: %.2f GB (goal <= 3)" % (result["peak_rss"] / 2**30))


if __name__ == "__main__":
    main()
