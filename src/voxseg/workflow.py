"""Whole runs: read a volume, segment it, measure the objects, write every output.

This is the layer the command line and the batch runner call. It owns the
results folder: every file is written into a temporary folder that replaces
OUTDIR only when all of them are complete.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import time
from pathlib import Path

import numpy as np

from ._threads import in_background
from ._version import __version__
from .errors import FormatError

__all__ = ["segment_file", "build_summary", "pipeline_header", "write_summary", "jsonable", "sha256_of",
           "versions", "OUTPUT_FILES"]

OUTPUT_FILES = ("labels.tif", "objects.csv", "summary.json", "pipeline.toml", "report.html")


def sha256_of(path) -> str:
    """SHA-256 of a file, or of every file below a folder (sorted by relative path)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def versions() -> dict:
    """Versions of voxseg and of the libraries that shape its results."""
    import scipy
    import skimage

    return {"voxseg": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "scikit-image": skimage.__version__}


def prepare_image(volume):
    """The volume's voxels as a 3D NumPy array ready to segment.

    Non-finite values (NaN, +-Inf) in floating-point data are set to NaN, which
    every step treats as background; their count is returned so that the
    summary can report it.
    """
    data = np.asarray(volume.data)
    if data.ndim != 3:
        raise FormatError(f"{volume.path}: expected a 3D volume, got shape {data.shape}")
    if data.dtype == bool:
        data = data.view(np.uint8)
    non_finite = 0
    if np.issubdtype(data.dtype, np.floating):
        bad = ~np.isfinite(data)
        non_finite = int(bad.sum())
        if non_finite:
            data = np.where(bad, np.nan, data).astype(data.dtype, copy=False)
        if data.dtype == np.float16:
            data = data.astype(np.float32)
        if non_finite == data.size:
            raise FormatError(f"{volume.path}: every voxel is NaN or infinite")
    return data, non_finite


#: peak memory of an in-memory run per voxel, measured by benchmarks/bench_segment.py (with a margin)
BYTES_PER_VOXEL = 24


def check_memory(path, shape):
    """Refuse, before any work, a volume whose in-memory segmentation would not fit."""
    from .errors import VolumeTooLargeError
    from .io import available_memory

    need = BYTES_PER_VOXEL * int(np.prod(shape, dtype=np.int64))
    available = available_memory()
    if available is not None and need > available:
        raise VolumeTooLargeError(
            f"{path}: segmenting {' x '.join(map(str, shape))} voxels in memory needs about {need / 1e9:.1f} GB "
            f"but {available / 1e9:.1f} GB is available; process it in chunks with --chunks")


def segment_file(
    input_path,
    outdir,
    *,
    spacing=None,
    channel=None,
    axes=None,
    diameter=None,
    threshold="li",
    dark_objects=False,
    clear_border=False,
    pipeline=None,
    overwrite=False,
    report=True,
    progress=None,
    volume=None,
) -> dict:
    """Segment one file and write labels, table, summary, pipeline and report into `outdir`.

    Returns the summary (also written as ``summary.json``).
    """
    from . import io
    from .io.atomic import atomic_directory
    from .io.table import write_csv
    from .measurements import measure_columns
    from .segmentation import segment

    started = time.perf_counter()
    outdir = Path(outdir)
    if outdir.exists() and not overwrite:
        from .errors import OutputExistsError

        # checked before the (long) computation as well as at the rename
        raise OutputExistsError(f"{outdir}: already exists (use --overwrite to replace it)")
    if volume is None:
        volume = io.read(input_path, spacing=spacing, channel=channel, axes=axes)
    check_memory(input_path, volume.shape)
    image, non_finite = prepare_image(volume)
    background = {}

    def step_started(index, count, name):
        # the input's checksum on a thread of its own (hashlib releases the GIL) once the first steps,
        # which use every core, are done
        if index >= 2 and "checksum" not in background:
            background["checksum"] = _checksum_in_background(input_path)
        if progress is not None:
            progress(index, count, name)

    result = segment(image, spacing=volume.spacing, diameter=diameter, threshold=threshold,
                     dark_objects=dark_objects, clear_border=clear_border, pipeline=pipeline,
                     progress=step_started)
    checksum = background.get("checksum") or _checksum_in_background(input_path)
    if result.kind != "labels":
        raise FormatError(f"{pipeline.source or 'pipeline'}: the last step gives a {result.kind}, not labels")
    labels = result.data
    if progress is not None:
        progress(len(result.pipeline.steps), len(result.pipeline.steps) + 1, "measure")
    from ._memory import peak_memory, process_peak_memory, reset_peak_memory

    with atomic_directory(outdir, overwrite=overwrite) as tmp:
        # the labels are written (compressed by threads that release the GIL) while the objects are measured
        written = in_background(io.write_labels, tmp / "labels.tif", labels, spacing=volume.spacing,
                                 unit=volume.unit)
        try:
            measure_start = time.perf_counter()
            reset_peak_memory()
            # plain columns: pandas (a third of a second to import) is loaded only for the report
            table, _, _ = measure_columns(labels, image, spacing=volume.spacing, boxes=result.handed.get("boxes"))
            steps = [*result.timings, ("measure", time.perf_counter() - measure_start, peak_memory())]
        finally:
            written.result()
        summary = build_summary(input_path, volume, result, table, non_finite=non_finite, steps=steps,
                                input_sha256=checksum.result())
        header = pipeline_header(input_path, volume, summary)
        write_csv(tmp / "objects.csv", table)
        (tmp / "pipeline.toml").write_text(result.pipeline.to_toml(header), encoding="utf-8")
        for index, data in result.saved.items():
            name = f"step{index + 1:02d}_{result.pipeline.steps[index]['op']}.tif"
            io.write_volume(tmp / name, np.asarray(data, dtype=np.uint8 if data.dtype == bool else None),
                            spacing=volume.spacing, unit=volume.unit)
        summary["run_time_s"] = round(time.perf_counter() - started, 3)
        peak = process_peak_memory()
        summary["peak_memory_mb"] = None if peak is None else round(peak / 2**20, 1)
        write_summary(tmp / "summary.json", summary)
        if report:
            import pandas as pd

            from .report.html import write_report

            # run times stay out of the page, so that the same input gives the same report
            shown = {k: v for k, v in summary.items() if k not in ("run_time_s", "peak_memory_mb", "steps")}
            write_report(tmp / "report.html", image, labels, pd.DataFrame(table), jsonable(shown),
                         spacing=volume.spacing, unit=volume.unit, title=f"voxseg: {Path(str(input_path)).name}")
    return summary


def _checksum_in_background(path):
    """A future of :func:`sha256_of` `path` (None if it does not exist), computed by a thread of its own."""
    return in_background(lambda: sha256_of(path) if Path(path).exists() else None)


#: what a run imports late and slowly (SciPy's ndimage alone is about 0.15 s), in the order it needs them
SLOW_IMPORTS = ("scipy.ndimage", "skimage.segmentation", "scipy.spatial")
_importing = []


def import_in_background():
    """Import :data:`SLOW_IMPORTS` on a thread of their own, once per process; returns its future.

    The modules of the first steps (reading, rescale, threshold, hole
    filling) do not import SciPy or scikit-image, so the imports run while
    those steps do. One thread imports them one after the other: threads
    importing overlapping modules at once could wait on each other. For
    the ``segment`` command only: an interruption that arrives while the
    main thread waits for a module the thread imports can be lost in
    Python's import machinery ("Exception ignored"), which batch workers,
    stopped by signals, must not risk.
    """
    if not _importing:
        _importing.append(in_background(_import_modules, SLOW_IMPORTS))
    return _importing[0]


def _import_modules(names):
    import importlib

    for name in names:
        importlib.import_module(name)


def build_summary(input_path, volume, result, table, *, non_finite, steps, input_sha256=None) -> dict:
    """The summary of a run (in memory or chunked): input, spacing, decisions, statistics, steps, versions.

    `input_sha256`, when given, is the input's checksum already computed (else it is computed here).
    """
    from .measurements import summarize

    if input_sha256 is None:
        input_sha256 = sha256_of(input_path) if Path(input_path).exists() else None

    threshold_record = result.records.get("threshold", {})
    threshold_step = next((s for s in result.pipeline.steps if s["op"] == "threshold"), {})
    return {
        "input": str(input_path),
        "input_sha256": input_sha256,
        "shape": [int(n) for n in volume.shape],
        "dtype": str(volume.dtype),
        "spacing": list(volume.spacing),
        "unit": volume.unit,
        "spacing_source": volume.spacing_source,
        "object_count": int(len(table["label"])),
        "threshold": {"method": threshold_step.get("method"), "value": threshold_record.get("value"),
                      "input_value": _threshold_in_input_units(result),
                      "dark_objects": threshold_step.get("dark_objects", False)},
        "diameter": {"value": _diameter_used(result.pipeline),
                     "estimated": bool(result.records.get("diameter_estimated"))},
        "clear_border": any(s["op"] == "clear_border" for s in result.pipeline.steps),
        "non_finite_voxels": non_finite,
        "statistics": summarize(table, unit=volume.unit),
        # each step's time and the peak resident memory of the process while it ran
        "steps": [{"step": name, "seconds": round(t, 4), "peak_mb": None if peak is None else round(peak / 2**20, 1)}
                  for name, t, peak in steps],
        "versions": versions(),
    }


def pipeline_header(input_path, volume, summary) -> str:
    """The comment at the top of a run's pipeline.toml."""
    return (f"voxseg {__version__} pipeline, resolved on {Path(str(input_path)).name}\n"
            f"spacing {tuple(volume.spacing)} {volume.unit}; threshold value {summary['threshold']['value']}")


def _threshold_in_input_units(result):
    """The threshold in the input's grey levels, when only a linear rescale came before it (else None)."""
    value = result.records.get("threshold", {}).get("value")
    if value is None:
        return None
    for step in result.pipeline.steps:
        if step["op"] == "threshold":
            return float(value)
        if step["op"] != "rescale_intensity":
            return None
        lo, hi = result.records["rescale_intensity"]["in_range"]
        value = lo + value * (hi - lo)
    return None


def _diameter_used(pipeline):
    """The object diameter the pipeline ran with: its own, or its split step's, or None."""
    if pipeline.diameter != "auto":
        return pipeline.diameter
    for step in pipeline.steps:
        if isinstance(step.get("diameter"), (int, float)):
            return float(step["diameter"])
    return None


def write_summary(path, summary) -> None:
    """Write a run's summary as indented JSON (the run's folder is written atomically by the caller)."""
    Path(path).write_text(json.dumps(jsonable(summary), indent=2) + "\n", encoding="utf-8")


def jsonable(value):
    """`value` in plain JSON types (NumPy scalars converted), NaN and infinities as None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
