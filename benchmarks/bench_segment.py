"""Speed and memory of `voxseg segment` against the tutorial's recipe, measured in the same run.

Each contender runs in a fresh process (start-up counts) from a TIFF file to labels and a table on disk;
the peak resident memory of that process is read from the kernel (ru_maxrss, and for voxseg the peak its
summary records over its per-step resets). Both are scored against the sample's reference labels,
mirrored like the image (F1 and mean IoU of objects matched at IoU >= 0.5). The volume is the bundled
nuclei sample mirrored to twice its size along each axis (120 x 512 x 512 uint16); ``--scaling`` adds
four times its size (240 x 1024 x 1024) to check that time grows linearly with voxels. With ``--repeat N``
the contenders take turns (baseline, voxseg, baseline, ...) and each one's best run is kept.

Then voxseg's steps: time and peak resident memory in the best run, where each step reuses the memory the
steps before it freed (so its peak includes that), and each step's own peak from one more run with
``VOXSEG_STEP_MEMORY=1``, which gives the freed memory back between steps.

voxseg's modules are byte-compiled first, as installing a package does (an editable install under
``PYTHONDONTWRITEBYTECODE`` would otherwise compile them in every run); the baseline's libraries are
installed packages.

Run: ``python benchmarks/bench_segment.py [--scaling]``
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

BASELINE = """
import sys, numpy as np, tifffile, pandas as pd
sys.path.insert(0, {here!r})
from tutorial_recipe import tutorial_segment
from skimage import measure
data = tifffile.imread({input!r})
labels = tutorial_segment(data, (0.29, 0.26, 0.26), clear_border=True)
table = measure.regionprops_table(labels, intensity_image=data, spacing=(0.29, 0.26, 0.26),
                                  properties=("label", "area", "centroid", "bbox", "intensity_mean"))
tifffile.imwrite({out!r} + "/labels.tif", labels.astype(np.uint16))
pd.DataFrame(table).to_csv({out!r} + "/objects.csv", index=False)
"""


def mirrored(times: int, sample: str = "nuclei") -> np.ndarray:
    """The sample mirrored along each axis until it is `times` as long; label copies get ids of their own."""
    from voxseg.samples import load_sample

    data = np.asarray(load_sample(sample).data)
    labels = sample.endswith("labels")
    target = [n * times for n in data.shape]
    for axis in range(3):
        while data.shape[axis] < target[axis]:  # mirror: doubles the axis each time
            copy = np.flip(data, axis=axis)
            if labels:
                copy = np.where(copy > 0, copy.astype(np.uint32) + int(data.max()), 0)
            data = np.concatenate([data.astype(copy.dtype), copy], axis=axis)
    return data


def accuracy(labels_path, truth):
    """F1 and mean IoU of the labels in `labels_path` against `truth`."""
    import tifffile

    from voxseg.testing import match_labels

    score = match_labels(tifffile.imread(labels_path), truth)
    return score["f1"], score["mean_iou"]


def write_input(path: Path, times: int):
    if path.exists():
        return
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, mirrored(times), imagej=True, resolution=(1 / 0.26, 1 / 0.26),
                     metadata={"spacing": 0.29, "unit": "um", "axes": "ZYX"})


def run_process(args, env=None) -> tuple[float, int]:
    """Wall time and peak RSS (bytes) of one child process."""
    start = time.perf_counter()
    pid = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(pid.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{args[0]} failed: {pid.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss * 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scaling", action="store_true", help="also run the 240x1024x1024 volume")
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender (best time is kept)")
    args = parser.parse_args()
    import compileall

    import voxseg

    compileall.compile_dir(os.path.dirname(voxseg.__file__), quiet=1)
    data_dir = HERE / "_data"
    sizes = [(2, "120x512x512")] + ([(4, "240x1024x1024")] if args.scaling else [])
    voxseg_exe = str(Path(sys.executable).with_name("voxseg"))
    rows, step_rows = [], []
    keep = tempfile.mkdtemp(prefix="bench-labels-")
    for times, name in sizes:
        path = data_dir / f"nuclei_x{times}.tif"
        write_input(path, times)
        voxels = int(np.prod([60 * times, 256 * times, 256 * times]))
        contenders = [("voxseg segment", lambda out: [voxseg_exe, "segment", str(path), "-o", out, "--no-report"])]
        if times == 2:
            contenders.insert(0, ("tutorial recipe", lambda out: [
                sys.executable, "-c", BASELINE.format(here=str(HERE), input=str(path), out=out)]))
        # the contenders take turns, run after run: the machine's slow and fast phases (minutes long on
        # a shared virtual machine) then fall on both alike
        best = {}
        for run in range(args.repeat):
            for label, command in contenders:
                with tempfile.TemporaryDirectory() as tmp:
                    out = os.path.join(tmp, "out")
                    if label == "tutorial recipe":
                        os.mkdir(out)
                    result = run_process(command(out))
                    kept = None
                    if times == 2:  # scored at the end: a large parent process would inflate the children's peaks
                        kept = os.path.join(keep, f"{label.split()[0]}-{name}-{run}.tif")
                        shutil.move(os.path.join(out, "labels.tif"), kept)
                    summary_path = os.path.join(out, "summary.json")
                    summary = json.load(open(summary_path)) if os.path.exists(summary_path) else {}
                    steps = summary.get("steps", [])
                # voxseg resets the kernel's peak counter per step (to report each step's peak), which the
                # kernel's ru_maxrss then misses: the summary keeps the process's peak over all resets
                process_peak = (summary.get("peak_memory_mb") or 0) * 2**20
                result = (result[0], max(result[1], int(process_peak)), kept)
                if label not in best or result[0] < best[label][0][0]:
                    best[label] = (result, steps)
        for label, command in contenders:
            (seconds, rss, kept), best_steps = best[label]
            rows.append((name, label, seconds, rss, voxels, kept))
            if label == "voxseg segment":
                # the steps reuse the memory earlier steps freed, so their peaks include it: one more run
                # gives it back between steps for each step's own peak (its times are not the best run's)
                with tempfile.TemporaryDirectory() as tmp:
                    out = os.path.join(tmp, "out")
                    run_process(command(out), env={**os.environ, "VOXSEG_STEP_MEMORY": "1"})
                    own_peaks = [step["peak_mb"] for step in json.load(open(os.path.join(out, "summary.json")))["steps"]]
                step_rows.extend((name, {**step, "own_peak_mb": peak}) for step, peak in zip(best_steps, own_peaks))
    truth = mirrored(2, "nuclei_labels")
    rows = [(*row[:5], accuracy(row[5], truth) if row[5] else None) for row in rows]
    shutil.rmtree(keep)
    base_time, base_mem = rows[0][2], rows[0][3]
    print(f"{'volume':<15} {'contender':<17} {'seconds':>8} {'peak MB':>8} {'B/voxel':>8} "
          f"{'speed-up':>9} {'memory ratio':>13} {'F1':>6} {'IoU':>5}")
    for name, label, seconds, rss, voxels, score in rows:
        f1, iou = (f"{score[0]:.3f}", f"{score[1]:.2f}") if score else ("-", "-")
        print(f"{name:<15} {label:<17} {seconds:>8.2f} {rss / 1e6:>8.0f} {rss / voxels:>8.1f} "
              f"{base_time / seconds * voxels / rows[0][4]:>8.1f}x {rss / base_mem:>12.2f}x {f1:>6} {iou:>5}")
    print()
    print(f"{'volume':<15} {'voxseg step':<22} {'seconds':>8} {'peak MB':>8} {'own peak MB':>12}")
    for name, step in step_rows:
        print(f"{name:<15} {step['step']:<22} {step['seconds']:>8.2f} {step['peak_mb'] or float('nan'):>8.0f} "
              f"{step['own_peak_mb'] or float('nan'):>12.0f}")
    if args.scaling:
        small = next(r for r in rows if r[0] == "120x512x512" and r[1] == "voxseg segment")
        large = next(r for r in rows if r[0] == "240x1024x1024")
        print(f"scaling: 8x the voxels took {large[2] / small[2]:.1f}x the time (goal: at most 9x)")
    return rows


if __name__ == "__main__":
    main()
