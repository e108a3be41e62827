"""Accuracy of `voxseg segment` against known truth, beside the tutorial's recipe in the same run.

Score: matched-object F1 at IoU >= 0.5 (Hungarian matching on the IoU matrix) and the mean IoU of the
matches. Cases:

- the bundled nuclei sample against its reference labels (20 nuclei, border ones included), voxseg given
  nothing but the spacing (which is in the file);
- touching ellipsoids in a 4:1 anisotropic stack, and a dense pack of touching spheres (bright grains),
  both synthetic with exact truth (``voxseg.testing``), voxseg given only the diameter.

Run: ``python benchmarks/bench_accuracy.py``
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from tutorial_recipe import tutorial_segment  # noqa: E402

from voxseg import testing  # noqa: E402
from voxseg.samples import load_sample  # noqa: E402
from voxseg.segmentation import segment  # noqa: E402


def cases():
    nuclei = load_sample("nuclei")
    truth = load_sample("nuclei_labels")
    yield "nuclei sample (spacing only)", nuclei.data, truth.data, nuclei.spacing, None
    for seed in (0, 1, 2):
        vol = testing.touching_ellipsoids(shape=(24, 96, 96), spacing=(2.0, 0.5, 0.5), diameter=12.0, seed=seed)
        yield f"ellipsoids 4:1, seed {seed} (diameter)", vol.image, vol.labels, vol.spacing, vol.diameter
    for seed in (0, 1):
        vol = testing.sphere_pack(shape=(96, 96, 96), diameter=16.0, seed=seed)
        yield f"sphere pack, seed {seed} (diameter)", vol.image, vol.labels, vol.spacing, vol.diameter


def main():
    rows = []
    for name, image, truth, spacing, diameter in cases():
        start = time.perf_counter()
        ours = segment(image, spacing=spacing, diameter=diameter).data
        ours_time = time.perf_counter() - start
        start = time.perf_counter()
        baseline = tutorial_segment(image, spacing)
        base_time = time.perf_counter() - start
        a = testing.match_labels(ours, truth)
        b = testing.match_labels(baseline, truth)
        rows.append((name, a, b, ours_time, base_time))
    header = f"{'case':<36} {'truth':>5} | {'voxseg F1':>9} {'IoU':>5} {'n':>4} | {'tutorial F1':>11} {'IoU':>5} {'n':>4}"
    print(header)
    print("-" * len(header))
    for name, a, b, ours_time, base_time in rows:
        print(f"{name:<36} {a['truth']:>5} | {a['f1']:>9.3f} {a['mean_iou']:>5.2f} {a['predicted']:>4} | "
              f"{b['f1']:>11.3f} {b['mean_iou']:>5.2f} {b['predicted']:>4}")
    return rows


if __name__ == "__main__":
    main()
