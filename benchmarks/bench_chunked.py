"""Chunked segmentation: peak memory on a volume larger than memory allows in-memory, speed per voxel, workers.

The volume is the bundled nuclei sample (60 x 256 x 256 uint16) mirrored and tiled to 1024^3 (2 GB), stored
once as OME-Zarr (128^3 chunks) in benchmarks/_data/. Every run is a fresh process (start-up counts) from the
file to a results folder on disk, and its peak resident memory is read from the kernel (ru_maxrss; with
worker processes, the largest worker's peak is reported as well).

Measured, with the goals of the chunked path:

1. the 1024^3 volume chunked: peak RSS <= 3 GB;
2. in-memory vs chunked on a volume that fits (120 x 512 x 512): chunked time per voxel <= 1.5 x in-memory;
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


def run_process(code) -> dict:
    """Wall time, peak RSS of the process and of its largest child (bytes) of one Python child process."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    out, err = child.stdout.read().decode(), child.stderr.read().decode()
    if status != 0:
        raise RuntimeError(f"run failed:\n{err[-3000:]}")
    report = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    report.update(seconds=elapsed, peak_rss=usage.ru_maxrss * 1024)
    return report


CHUNKED = """
import json, resource
from voxseg.chunked import segment_file_chunked
s = segment_file_chunked({input!r}, {out!r}, chunks={chunks}, workers={workers}, progress=False, report=False)
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({{"objects": s["object_count"], "steps": s["steps"], "children_peak_rss": children}}))
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
    extra = f", largest worker {r['children_peak_rss'] / 2**30:.2f} GB" if r.get("children_peak_rss") else ""
    return (f"{name:<44} {r['seconds']:8.1f} s  {r['seconds'] / voxels * 1e9:6.0f} ns/voxel  "
            f"peak RSS {gb:5.2f} GB{extra}  ({r['objects']} objects)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256^3 instead of 1024^3 for the large volume")
    parser.add_argument("--skip-large", action="store_true", help="only the speed and worker comparisons")
    parser.add_argument("--chunks", type=int, default=128, help="chunk edge of the chunked runs")
    args = parser.parse_args()
    large = (256, 256, 256) if args.quick else (1024, 1024, 1024)
    fits = (120, 512, 512)
    rows = []
    work = Path(tempfile.mkdtemp(prefix="voxseg-bench-"))
    try:
        medium = make_input("nuclei_tiled_120x512x512", fits)
        voxels = int(np.prod(fits))
        memory = in_memory(medium, work / "memory")
        rows.append(line("in memory, 120x512x512", voxels, memory))
        print(rows[-1], flush=True)
        threads = chunked(medium, work / "chunked", args.chunks)
        rows.append(line(f"chunked {args.chunks}^3, threads, 120x512x512", voxels, threads))
        print(rows[-1], flush=True)
        one = chunked(medium, work / "one", args.chunks, workers=1)
        rows.append(line(f"chunked {args.chunks}^3, 1 worker, 120x512x512", voxels, one))
        print(rows[-1], flush=True)
        two = chunked(medium, work / "two", args.chunks, workers=2)
        rows.append(line(f"chunked {args.chunks}^3, 2 workers, 120x512x512", voxels, two))
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
