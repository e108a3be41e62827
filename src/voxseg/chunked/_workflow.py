"""segment_file_chunked: voxseg.workflow.segment_file for volumes larger than memory."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import FormatError

__all__ = ["segment_file_chunked", "REPORT_MAX_VOXELS", "OUTPUT_FILES"]

#: the HTML report loads the volume and its labels: written only up to this many voxels
REPORT_MAX_VOXELS = 2**27

OUTPUT_FILES = ("labels.zarr", "objects.parquet", "objects.csv", "summary.json", "pipeline.toml", "report.html")


def _prepare_block(block):
    """voxseg.workflow.prepare_image on one block: non-finite values to NaN, float16 to float32."""
    if block.dtype.kind != "f":
        return block
    bad = ~np.isfinite(block)
    if bad.any():
        block = np.where(bad, np.nan, block).astype(block.dtype, copy=False)
    return block.astype(np.float32) if block.dtype == np.float16 else block


def _count_non_finite(block):
    return np.array([[[int((~np.isfinite(block)).sum())]]], dtype=np.int64)


def _input_signature(path) -> list:
    """Sizes and modification times of the input's files: a changed input is not resumed."""
    path = Path(path)
    if not path.exists():
        return [str(path)]
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [[str(f.relative_to(path)) if path.is_dir() else f.name, f.stat().st_size, f.stat().st_mtime_ns]
            for f in files]


def work_folder(outdir) -> Path:
    """Where a chunked run keeps its stores: next to the results folder, so that a new run resumes it."""
    outdir = Path(outdir)
    return outdir.parent / f".{outdir.name}.voxseg-chunked"


def _open_work_folder(folder: Path, key: dict) -> bool:
    """Make `folder` hold a run of `key`; returns whether a previous run of the same key is resumed."""
    from ..errors import OutputError

    manifest = folder / "manifest.json"
    text = json.dumps(key, sort_keys=True, default=str)
    try:
        if manifest.exists():
            if manifest.read_text(encoding="utf-8") == text:
                return True
            shutil.rmtree(folder)
        elif folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        manifest.write_text(text, encoding="utf-8")
    except OSError as err:
        raise OutputError(f"{folder}: cannot make the working folder of the chunked run "
                          f"({err.strerror or err})") from None
    return False


def segment_file_chunked(
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
    chunks=128,
    scheduler=None,
    workers=None,
    memory=None,
) -> dict:
    """Segment one file block by block and write labels, table, summary, pipeline (and report) into `outdir`.

    The chunked counterpart of :func:`voxseg.workflow.segment_file`, with the
    same results: ``labels.zarr`` (OME-Zarr, chunked like the run) instead of
    ``labels.tif``, ``objects.parquet`` and ``objects.csv``, ``summary.json``,
    ``pipeline.toml``, and ``report.html`` when the volume has at most
    :data:`REPORT_MAX_VOXELS` voxels (the summary says when it was skipped).
    The input is read lazily (:func:`voxseg.io.read` with ``lazy=True``).

    The run's stores live in a hidden folder next to `outdir`
    (``.<name>.voxseg-chunked``), removed on success. A run that was killed
    resumes from it when started again with the same input and settings:
    finished blocks are not computed again.

    Parameters
    ----------
    input_path, outdir, spacing, channel, axes, volume
        As for :func:`voxseg.workflow.segment_file` (the volume is read lazily).
    diameter, threshold, dark_objects, clear_border, pipeline, overwrite, report
        As for :func:`voxseg.workflow.segment_file`.
    progress : bool or callable, optional
        As for :func:`voxseg.chunked.segment_chunked`.
    chunks, scheduler, workers, memory
        As for :func:`voxseg.chunked.segment_chunked`.

    Returns
    -------
    dict
        The summary (also written as ``summary.json``).
    """
    import dask.array as da

    from .. import io
    from .._memory import process_peak_memory
    from ..io.atomic import atomic_directory
    from ..io.table import write_csv
    from ..workflow import build_summary, jsonable, pipeline_header, write_summary
    from ._api import Workspace, _chunks, run_chunked
    from ._run import Runner

    started = time.perf_counter()
    outdir = Path(outdir)
    if outdir.exists() and not overwrite:
        from ..errors import OutputExistsError

        raise OutputExistsError(f"{outdir}: already exists (use --overwrite to replace it)")
    if volume is None:
        volume = io.read(input_path, spacing=spacing, channel=channel, axes=axes, lazy=True)
    if len(volume.shape) != 3:
        raise FormatError(f"{volume.path}: expected a 3D volume, got shape {tuple(volume.shape)}")
    chunks = _chunks(chunks, volume.shape)
    data = volume.data if isinstance(volume.data, da.Array) else da.from_array(np.asarray(volume.data),
                                                                                  chunks=chunks)
    data = data.rechunk(chunks)
    non_finite = 0
    if data.dtype == bool:
        data = data.astype(np.uint8)
    if data.dtype.kind == "f":
        non_finite = int(data.map_blocks(_count_non_finite, dtype=np.int64, chunks=(1, 1, 1)).sum().compute())
        if non_finite == int(np.prod(volume.shape)):
            raise FormatError(f"{volume.path}: every voxel is NaN or infinite")
        data = data.map_blocks(_prepare_block, dtype=np.float32 if data.dtype == np.float16 else data.dtype)
    folder = work_folder(outdir)
    key = {"voxseg": __version__, "input": os.path.abspath(str(input_path)), "files": _input_signature(input_path),
           "shape": list(volume.shape), "dtype": str(volume.dtype), "spacing": list(volume.spacing),
           "channel": channel, "axes": axes, "chunks": list(chunks), "diameter": diameter, "threshold": threshold,
           "dark_objects": dark_objects, "clear_border": clear_border,
           "pipeline": pipeline.to_dict() if pipeline is not None else None}
    key["key"] = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    resumed = _open_work_folder(folder, key)
    workspace = Workspace(folder)
    callback = progress if callable(progress) else None
    bars = None if callable(progress) else progress
    with Runner(scheduler, workers, bars) as runner:
        result = run_chunked(data, spacing=volume.spacing, diameter=diameter, threshold=threshold,
                             dark_objects=dark_objects, clear_border=clear_border, pipeline=pipeline, chunks=chunks,
                             runner=runner, memory=memory, workspace=workspace, measure=True, progress=callback)
        table = result.table
        table.attrs["unit"] = volume.unit
        shape = tuple(int(n) for n in volume.shape)
        summary = build_summary(input_path, volume, result, table, non_finite=non_finite, steps=result.timings)
        summary["chunked"] = {"chunks": list(chunks), "blocks": result.counts["blocks"], "resumed": resumed,
                              "scheduler": str(scheduler) if scheduler is not None else None, "workers": workers}
        write_report = report and int(np.prod(shape)) <= REPORT_MAX_VOXELS
        if report and not write_report:
            summary["report"] = (f"skipped: {int(np.prod(shape))} voxels is more than the {REPORT_MAX_VOXELS} "
                                 "the report shows; see objects.csv and labels.zarr")
        header = pipeline_header(input_path, volume, summary)
        with atomic_directory(outdir, overwrite=overwrite) as tmp:
            with runner.active("write labels", result.counts["blocks"]):
                io.write_labels(tmp / "labels.zarr", result.data, spacing=volume.spacing, unit=volume.unit,
                                chunks=chunks)
            table.to_parquet(tmp / "objects.parquet", index=False)
            write_csv(tmp / "objects.csv", table)
            (tmp / "pipeline.toml").write_text(result.pipeline.to_toml(header), encoding="utf-8")
            summary["run_time_s"] = round(time.perf_counter() - started, 3)
            peak = process_peak_memory()  # of this process; Dask workers elsewhere have their own
            summary["peak_memory_mb"] = None if peak is None else round(peak / 2**20, 1)
            write_summary(tmp / "summary.json", summary)
            if write_report:
                from ..report.html import write_report as write_html

                with runner.active("report", result.counts["blocks"]):
                    labels = result.data.compute()
                    image = data.compute()
                shown = {k: v for k, v in summary.items() if k not in ("run_time_s", "peak_memory_mb", "steps", "chunked")}
                write_html(tmp / "report.html", image, labels, table, jsonable(shown),
                           spacing=volume.spacing, unit=volume.unit, title=f"voxseg: {Path(str(input_path)).name}")
    del result
    shutil.rmtree(folder, ignore_errors=True)
    return summary
