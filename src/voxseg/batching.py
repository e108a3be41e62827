"""Many inputs at once: parallel runs, provenance, resume, combined tables.

:func:`run_batch` segments every input the way ``voxseg segment`` does, each
into its own subfolder of OUTDIR, over several worker processes, and then
combines the objects of all inputs into one table.

Inputs
------
Each item of `inputs` is

- a file: one input, whatever its type (:func:`voxseg.io.read` decides);
- a Zarr store (a folder named ``*.zarr`` or holding Zarr metadata): one input;
- any other folder: every ``.tif``, ``.tiff`` and ``.npy`` file and every
  ``.zarr`` store directly inside it (not in subfolders; hidden names are
  skipped), one input each. A folder that holds none of these but 2D images
  (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``) is one input: a stack of slices;
- a glob pattern (``"data/*.tif"``, ``"runs/**/*.zarr"``): every match, one
  input each, exactly as if the shell had expanded it, so quoting the pattern
  or not gives the same batch. (Unlike ``voxseg segment``, a pattern is not
  read as one stack of slices.)

A folder of TIFF *slices* is therefore many one-plane inputs; segment it as
one stack with ``voxseg segment FOLDER``. A path that does not exist, a
pattern that matches nothing and a folder without volumes are mistakes in the
command and stop the batch before any work. The same file reached twice is
one input. Inputs run, and appear in every table, in natural order of their
paths (``z2`` before ``z10``).

Outputs
-------
::

    OUTDIR/
      <name>/            one per input: what `voxseg segment` writes, plus provenance.json
      objects.csv        every object of every input, with a `source` column first
      objects.parquet    the same table
      summary.csv        one row per input: source, output, status, object count, ...
      batch.json         the settings, versions, times, every input's record and the failures

``<name>`` is the input's file name without its volume extension
(``a.ome.tif`` -> ``a``); a name already taken (case-insensitively), or one
of the files above, gets ``-2``, ``-3`` ... in input order. Each subfolder is
written atomically (complete or absent), and so is each file of OUTDIR;
``batch.json`` is deleted when a run starts and written last, so its presence
says that the tables beside it are complete and belong to it.

Resume
------
``resume=True`` continues in an existing OUTDIR: an input is skipped (status
``"reused"``) when its subfolder holds every output, and its
``provenance.json`` records the same input checksum (SHA-256 of the file,
plus the ``.npy.json`` spacing sidecar if any) and the same settings
(pipeline, diameter, threshold, spacing, channel, axes, unit). Anything else
is recomputed. A run that was killed leaves only hidden temporary folders
(removed by the next run) and complete subfolders, so nothing half-written
is trusted. ``overwrite=True`` recomputes every input. Neither deletes
anything but the results they replace: the folder of an input that now fails
keeps what an earlier run wrote there (it is not in the tables), and
subfolders of inputs no longer given stay as they are.
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ._threads import THREADS_VARIABLE, available_cpus

__all__ = ["run_batch", "expand_inputs", "output_names", "BATCH_FILES", "SUMMARY_COLUMNS"]

#: files `run_batch` writes at the top of OUTDIR (batch.json last)
BATCH_FILES = ("objects.csv", "objects.parquet", "summary.csv", "batch.json")
#: per-input record of how and from what a result was made (inside each subfolder)
PROVENANCE_FILE = "provenance.json"
#: columns of summary.csv, in order
SUMMARY_COLUMNS = (
    "source", "output", "status", "object_count", "threshold_method", "threshold_value", "diameter",
    "diameter_estimated", "spacing_z", "spacing_y", "spacing_x", "unit", "spacing_source", "run_time_s",
    "input_sha256", "error",
)
FORMAT = "voxseg-batch/1"

#: what a folder given as input contributes: files and stores with these endings
_VOLUME_FILES = (".tif", ".tiff", ".npy")
_STORE_SUFFIX = ".zarr"
_SLICE_IMAGES = (".png", ".jpg", ".jpeg", ".bmp")
_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray", ".zattrs")
#: endings removed from an input's name to name its results folder (longest first)
_NAME_SUFFIXES = (".ome.tiff", ".ome.tif", ".ome.zarr", ".tiff", ".tif", ".zarr", ".npy")
_GLOB_CHARS = re.compile(r"[*?[]")
#: temporary names of io.atomic (``.name.tmp-1a2b3c4d.ext``, ``.name.old-1a2b3c4d``)
_LEFTOVER = re.compile(r"^\..+\.(?:tmp|old)-[0-9a-f]{8}(?:\.[^.]*)?$")
_LOCK_FILE = ".voxseg-batch.lock"
#: thread-count variables of BLAS, OpenMP, numexpr and dask, set in each worker process
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                     "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "DASK_NUM_WORKERS", THREADS_VARIABLE)
_CRASHED = ("the worker process died while segmenting this input (killed, out of memory, "
            "or a crash in a compiled library)")


def run_batch(
    inputs,
    outdir,
    *,
    pipeline=None,
    workers=None,
    resume=False,
    overwrite=False,
    spacing=None,
    channel=None,
    axes=None,
    unit=None,
    diameter=None,
    threshold="li",
    dark_objects=False,
    clear_border=False,
    report=True,
    threads_per_worker=None,
    progress=False,
):
    """Segment many volumes in parallel into OUTDIR; return all their objects in one table.

    Each input is segmented as by :func:`voxseg.workflow.segment_file` (the
    ``voxseg segment`` command) into ``OUTDIR/<name>/``. An input that fails
    (corrupt, unreadable, wrong shape ...) is recorded with its error and the
    others go on. See the module documentation for which paths are inputs,
    the layout of OUTDIR and what resuming trusts.

    Parameters
    ----------
    inputs : str, os.PathLike or sequence of them
        Files, folders and glob patterns.
    outdir : str or os.PathLike
        Results folder. It must not exist unless `resume` or `overwrite`.
    pipeline : Pipeline, str or os.PathLike, optional
        A :class:`~voxseg.pipeline.Pipeline` or a pipeline TOML file to run
        instead of the default recipe (`threshold`, `dark_objects` and
        `clear_border` are then ignored; `diameter` replaces its diameter).
    workers : int, optional
        Number of worker processes (default: the CPU cores this process may
        use, at most one per input to compute). With 1 the inputs run one
        after the other in this process.
    resume : bool
        Continue in an existing `outdir`: reuse every result made from the
        same input and settings, compute the others.
    overwrite : bool
        Recompute every input, replacing its results folder.
    spacing : float or sequence of 3 floats, optional
        Voxel size (z, y, x), overriding the files' metadata.
    channel : int, optional
        Channel to use in multichannel inputs.
    axes : str, optional
        Axes of inputs without axis metadata, e.g. ``"ZCYX"``.
    unit : str, optional
        Unit of the spacing, overriding the files'.
    diameter : float, optional
        Expected object diameter in the unit of the spacing (default:
        estimated per input).
    threshold : str
        Threshold method (see :data:`voxseg.threshold.METHODS`).
    dark_objects : bool
        Objects are darker than the background.
    clear_border : bool
        Drop the objects that touch the volume border.
    report : bool
        Write ``report.html`` for each input.
    threads_per_worker : int, optional
        Threads each worker process lets voxseg, BLAS, OpenMP and dask use (default:
        cores // workers), so that processes do not compete for cores.
    progress : bool
        Show a progress bar on stderr (on a terminal) and a line per finished input.

    Returns
    -------
    pandas.DataFrame
        Every object of every input that succeeded, in input order, with the
        input path as the first column, ``source`` (also written as
        ``objects.csv`` and ``objects.parquet``). ``attrs["batch"]`` holds
        the path of ``batch.json``, the counts (``inputs``, ``ok``,
        ``reused``, ``failed``) and ``failures``: a list of ``{"source",
        "error"}``.

    Raises
    ------
    InputNotFoundError
        If an input path does not exist, a pattern matches nothing, or a
        folder holds no volume.
    OutputExistsError
        If `outdir` exists and neither `resume` nor `overwrite` is set.
    ParameterError
        If an option has a wrong value.
    PipelineError
        If the pipeline file is invalid.

    Notes
    -----
    Workers are processes started with the ``spawn`` method of
    :class:`concurrent.futures.ProcessPoolExecutor`, so a script calling
    this function with ``workers > 1`` needs the ``if __name__ ==
    "__main__":`` guard. A worker that dies (killed, out of memory) fails
    only the input it was segmenting: the other inputs that were running at
    the time are run again, one at a time, to find which one it was.

    Examples
    --------
    >>> import os, tempfile
    >>> from voxseg import io
    >>> from voxseg.testing import sphere_pack
    >>> folder = tempfile.mkdtemp()
    >>> for seed in (1, 2):
    ...     vol = sphere_pack(shape=(24, 24, 24), diameter=8, attempts=200, seed=seed)
    ...     _ = io.write_volume(os.path.join(folder, f"grains{seed}.tif"), vol.image, spacing=1)
    >>> table = run_batch(folder, os.path.join(folder, "results"), workers=1, diameter=8, report=False)
    >>> sorted(set(table["source"].map(os.path.basename)))
    ['grains1.tif', 'grains2.tif']
    >>> table.attrs["batch"]["counts"]
    {'inputs': 2, 'ok': 2, 'reused': 0, 'failed': 0}
    >>> sorted(os.listdir(os.path.join(folder, "results")))
    ['batch.json', 'grains1', 'grains2', 'objects.csv', 'objects.parquet', 'summary.csv']
    >>> import shutil; shutil.rmtree(folder)
    """
    import pandas as pd

    from .errors import OutputError, OutputExistsError
    from .io.atomic import atomic_path
    from .workflow import versions

    started, clock = _now(), time.perf_counter()
    pipeline = _as_pipeline(pipeline)
    _check_options(workers=workers, threads_per_worker=threads_per_worker, resume=resume, overwrite=overwrite,
                   diameter=diameter, threshold=threshold, channel=channel)
    settings = _settings(pipeline, spacing=spacing, channel=channel, axes=axes, unit=unit, diameter=diameter,
                         threshold=threshold, dark_objects=dark_objects, clear_border=clear_border)
    key = _digest(settings)
    sources = expand_inputs(inputs)
    outdir = Path(outdir)
    if os.path.lexists(outdir):
        if not (resume or overwrite):
            raise OutputExistsError(
                f"{outdir}: already exists (use --resume to continue that batch or --overwrite to recompute it)")
        if not outdir.is_dir():
            raise OutputExistsError(f"{outdir}: exists and is not a folder")
    reading = {"spacing": spacing, "channel": channel, "axes": axes, "unit": unit}
    segmenting = {"diameter": diameter, "threshold": threshold, "dark_objects": dark_objects,
                  "clear_border": clear_border, "pipeline": pipeline, "report": report}
    tasks = [_Task(i, source, str(outdir / name), key, settings, reading, segmenting)
             for i, (source, name) in enumerate(zip(sources, output_names(sources)))]

    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{outdir}: cannot create the results folder ({err.strerror or err})") from None
    with _lock(outdir):
        _remove_leftovers(outdir)
        with contextlib.suppress(FileNotFoundError):
            (outdir / "batch.json").unlink()  # written again last, once the tables are complete
        outcomes = {}
        todo = tasks
        if resume:
            reused = [t for t in tasks if _is_complete(t)]
            outcomes = {t.index: {"status": "reused"} for t in reused}
            todo = [t for t in tasks if t.index not in outcomes]
        count = available_cpus() if workers is None else int(workers)
        count = max(1, min(count, len(todo)))
        threads = threads_per_worker or max(1, available_cpus() // count)
        with _Progress(len(tasks), enabled=progress) as bar:
            if outcomes:
                bar.done(len(outcomes), f"{len(outcomes)} of {len(tasks)} inputs already complete: reused")
            if todo:
                runner = _run_here if count == 1 else _run_in_processes
                with contextlib.closing(runner(todo, count, threads)) as results:  # closing stops the workers
                    for task, outcome in results:
                        outcomes[task.index] = outcome
                        bar.done(1, _line(task, outcome))

        records = [_record(task, outcomes[task.index]) for task in tasks]
        objects = _combine(tasks, records)
        summary = pd.DataFrame([_summary_row(r) for r in records], columns=list(SUMMARY_COLUMNS))
        failures = [{"source": r["source"], "output": r["output"], "error": r["error"]}
                    for r in records if r["status"] == "failed"]
        counts = {"inputs": len(records), **{s: sum(r["status"] == s for r in records)
                                             for s in ("ok", "reused", "failed")}}
        document = {
            "format": FORMAT,
            "started": started,
            "finished": _now(),
            "run_time_s": round(time.perf_counter() - clock, 3),
            "outdir": str(outdir),
            "settings": settings,
            "settings_sha256": key,
            "workers": count,
            "threads_per_worker": threads if count > 1 else None,
            "versions": versions(),
            "counts": counts,
            "failures": failures,
            "inputs": records,
        }
        with atomic_path(outdir / "objects.csv", overwrite=True) as tmp:
            objects.to_csv(tmp, index=False, float_format="%.6g")
        with atomic_path(outdir / "objects.parquet", overwrite=True) as tmp:
            objects.to_parquet(tmp, index=False)
        with atomic_path(outdir / "summary.csv", overwrite=True) as tmp:
            summary.to_csv(tmp, index=False, float_format="%.6g")
        with atomic_path(outdir / "batch.json", overwrite=True) as tmp:
            tmp.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    objects.attrs["batch"] = {"path": str(outdir / "batch.json"), "counts": counts,
                              "failures": [{"source": f["source"], "error": f["error"]} for f in failures]}
    return objects


# -- inputs ------------------------------------------------------------------


def expand_inputs(inputs) -> list[str]:
    """The input volumes that files, folders and glob patterns stand for, deduplicated, in natural order.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> for name in ("z10.tif", "z2.tif", "notes.txt", ".hidden.tif"):
    ...     open(os.path.join(folder, name), "w").close()
    >>> [os.path.basename(p) for p in expand_inputs([folder, os.path.join(folder, "z2.tif")])]
    ['z2.tif', 'z10.tif']
    >>> import shutil; shutil.rmtree(folder)
    """
    from .errors import InputNotFoundError
    from .io.slices import natural_key

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found = []
    for item in inputs:
        path = os.fspath(item)
        if os.path.exists(path):
            found += _expand_existing(path)
        elif _GLOB_CHARS.search(path):
            matches = sorted(glob.glob(path, recursive=True), key=natural_key)
            if not matches:
                raise InputNotFoundError(f"{path}: no file matches this pattern")
            for match in matches:
                found += _expand_existing(match)
        else:
            raise InputNotFoundError(f"{path}: no such file or directory")
    if not found:
        raise InputNotFoundError("no input volume given")
    unique, seen = [], set()
    for path in sorted(found, key=natural_key):
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            unique.append(path)
    return unique


def _expand_existing(path: str) -> list[str]:
    from .errors import InputNotFoundError

    if not os.path.isdir(path) or _is_zarr_store(path):
        return [path]
    volumes, slices = [], False
    for entry in os.scandir(path):
        name = entry.name.lower()
        if entry.name.startswith("."):
            continue
        if entry.is_file() and name.endswith(_VOLUME_FILES):
            volumes.append(os.path.join(path, entry.name))
        elif entry.is_dir() and name.endswith(_STORE_SUFFIX):
            volumes.append(os.path.join(path, entry.name))
        elif entry.is_file() and name.endswith(_SLICE_IMAGES):
            slices = True
    if volumes:
        return volumes
    if slices:
        return [path]  # a stack of 2D images
    raise InputNotFoundError(
        f"{path}: the folder holds no volume (.tif, .tiff, .npy, .zarr) and no 2D image slices")


def _is_zarr_store(path: str) -> bool:
    return path.rstrip("/\\").lower().endswith(_STORE_SUFFIX) or any(
        os.path.exists(os.path.join(path, marker)) for marker in _ZARR_MARKERS)


def output_names(sources) -> list[str]:
    """The results subfolder of each input: its name without volume extension, made unique in order.

    Examples
    --------
    >>> output_names(["a/cells.ome.tif", "b/cells.tif", "c/Cells.npy", "summary.csv.tif", "x.zarr/"])
    ['cells', 'cells-2', 'Cells-3', 'summary.csv-2', 'x']
    """
    taken = {name.casefold() for name in BATCH_FILES}
    names = []
    for source in sources:
        name = os.path.basename(os.fspath(source).rstrip("/\\")) or "input"
        for suffix in _NAME_SUFFIXES:
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                break
        else:
            if os.path.isfile(source) and os.path.splitext(name)[0]:
                name = os.path.splitext(name)[0]
        if name.startswith("."):
            name = "_" + name[1:]
        unique, number = name, 1
        while unique.casefold() in taken:
            number += 1
            unique = f"{name}-{number}"
        taken.add(unique.casefold())
        names.append(unique)
    return names


# -- settings and checks -----------------------------------------------------


def _as_pipeline(pipeline):
    from .errors import ParameterError
    from .pipeline import Pipeline

    if pipeline is None or isinstance(pipeline, Pipeline):
        return pipeline
    if isinstance(pipeline, (str, os.PathLike)):
        return Pipeline.from_toml(pipeline)
    raise ParameterError(f"pipeline must be a Pipeline or the path of a pipeline file, got {pipeline!r}")


def _check_options(*, workers, threads_per_worker, resume, overwrite, diameter, threshold, channel):
    """Refuse, before any work, the options that would fail every input."""
    import math

    from .errors import ParameterError
    from .threshold import METHODS

    for name, value in (("workers", workers), ("threads_per_worker", threads_per_worker)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ParameterError(f"{name} must be a positive integer, got {value!r}")
    if resume and overwrite:
        raise ParameterError("resume and overwrite exclude each other: resume reuses results, overwrite replaces them")
    if diameter is not None and (isinstance(diameter, bool) or not isinstance(diameter, (int, float))
                                 or not math.isfinite(diameter) or diameter <= 0):
        raise ParameterError(f"diameter must be a positive length in the unit of the spacing, got {diameter!r}")
    if channel is not None and (isinstance(channel, bool) or not isinstance(channel, int) or channel < 0):
        raise ParameterError(f"channel must be a non-negative integer, got {channel!r}")
    if threshold not in METHODS:
        raise ParameterError(f"threshold method must be one of {', '.join(METHODS)}; got {threshold!r}")


def _settings(pipeline, *, spacing, channel, axes, unit, diameter, threshold, dark_objects, clear_border) -> dict:
    """Everything that shapes a result besides the input itself (the key resume compares)."""
    from .pipeline import Pipeline, default_pipeline
    from .volume import as_spacing

    if pipeline is None:
        effective = default_pipeline(diameter="auto" if diameter is None else float(diameter), threshold=threshold,
                                     dark_objects=dark_objects, clear_border=clear_border)
    else:  # as voxseg.segmentation.segment combines them
        effective = Pipeline(pipeline.steps, diameter=pipeline.diameter if diameter is None else float(diameter))
    return {
        "pipeline": json.loads(json.dumps(effective.to_dict(), default=str)),
        "spacing": None if spacing is None else list(as_spacing(spacing, 3)),
        "channel": channel,
        "axes": axes,
        "unit": unit,
    }


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _fingerprint(source: str) -> dict:
    """Checksums of an input: the file (or folder), and the spacing sidecar of a .npy file."""
    from .io.npy import sidecar_path
    from .workflow import sha256_of

    sidecar = sidecar_path(source)
    return {"input_sha256": sha256_of(source),
            "sidecar_sha256": sha256_of(sidecar) if source.lower().endswith(".npy") and os.path.isfile(sidecar)
            else None}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


# -- one input ---------------------------------------------------------------


@dataclass
class _Task:
    """One input: where it goes and how to segment it (sent to a worker process)."""

    index: int
    source: str
    output: str
    key: str
    settings: dict
    reading: dict = field(default_factory=dict)
    segmenting: dict = field(default_factory=dict)

    @property
    def required(self) -> tuple:
        from .workflow import OUTPUT_FILES

        return tuple(n for n in (*OUTPUT_FILES, PROVENANCE_FILE)
                     if n != "report.html" or self.segmenting.get("report", True))


def _segment_one(task: _Task) -> dict:
    """Segment one input into its results folder; the outcome, never an exception."""
    started, clock = _now(), time.perf_counter()
    try:
        count, spacing_source = _write_result(task, started, clock)
    except Exception as err:  # recorded, the batch goes on
        from .errors import VoxsegError

        message = str(err) if isinstance(err, VoxsegError) else f"{type(err).__name__}: {err}"
        message = message.removeprefix(f"{task.source}: ")  # the source is said beside it
        return {"status": "failed", "error": message or type(err).__name__,
                "traceback": None if isinstance(err, VoxsegError) else traceback.format_exc(),
                "started": started, "finished": _now(), "run_time_s": round(time.perf_counter() - clock, 3)}
    return {"status": "ok", "object_count": count, "spacing_source": spacing_source,
            "run_time_s": round(time.perf_counter() - clock, 3)}


def _write_result(task: _Task, started: str, clock: float):
    from . import io
    from .io.atomic import atomic_directory
    from .workflow import segment_file

    options = dict(task.segmenting)
    report = options.pop("report")
    volume = io.read(task.source, **task.reading)
    # the whole subfolder, provenance included, appears at once: a killed run leaves no result to trust
    with atomic_directory(task.output, overwrite=True) as tmp:
        summary = segment_file(task.source, tmp, volume=volume, overwrite=True, report=report, **options)
        fingerprint = _fingerprint(task.source)
        if fingerprint["input_sha256"] != summary["input_sha256"]:
            from .errors import FormatError

            raise FormatError(f"{task.source}: the input changed while it was segmented")
        provenance = {
            "format": FORMAT,
            "source": task.source,
            "output": os.path.basename(task.output),
            **fingerprint,
            "settings": task.settings,
            "settings_sha256": task.key,
            "started": started,
            "finished": _now(),
            "run_time_s": round(time.perf_counter() - clock, 3),
            "versions": summary["versions"],
        }
        (tmp / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2, default=str) + "\n", encoding="utf-8")
    return summary["object_count"], summary["spacing_source"]


def _is_complete(task: _Task) -> bool:
    """Whether the results folder of `task` holds every output, made from this input with these settings."""
    out = Path(task.output)
    if not all((out / name).is_file() for name in task.required):
        return False
    try:
        provenance = json.loads((out / PROVENANCE_FILE).read_text(encoding="utf-8"))
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if provenance.get("settings_sha256") != task.key or provenance.get("format") != FORMAT:
        return False
    try:
        fingerprint = _fingerprint(task.source)
    except OSError:
        return False  # the worker will say what is wrong with the input
    return (all(provenance.get(k) == v for k, v in fingerprint.items())
            and summary.get("input_sha256") == fingerprint["input_sha256"])


def _record(task: _Task, outcome: dict) -> dict:
    """What batch.json says about one input, read back from its results folder."""
    import tomllib

    record = {"source": task.source, "output": os.path.basename(task.output), "status": outcome["status"],
              "error": outcome.get("error")}
    if outcome["status"] == "failed":
        return {**record, "started": outcome.get("started"), "finished": outcome.get("finished"),
                "run_time_s": outcome.get("run_time_s"), "traceback": outcome.get("traceback")}
    out = Path(task.output)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    provenance = json.loads((out / PROVENANCE_FILE).read_text(encoding="utf-8"))
    with open(out / "pipeline.toml", "rb") as f:
        resolved = tomllib.load(f)
    return {
        **record,
        "input_sha256": provenance["input_sha256"],
        "sidecar_sha256": provenance.get("sidecar_sha256"),
        "object_count": summary["object_count"],
        "threshold": summary["threshold"],
        "diameter": summary["diameter"],
        "spacing": summary["spacing"],
        "unit": summary["unit"],
        "spacing_source": summary["spacing_source"],
        "started": provenance["started"],
        "finished": provenance["finished"],
        "run_time_s": provenance["run_time_s"],
        "pipeline": resolved,
        "versions": provenance["versions"],
    }


def _summary_row(record: dict) -> dict:
    row = {name: record.get(name) for name in SUMMARY_COLUMNS}
    threshold, diameter = record.get("threshold") or {}, record.get("diameter") or {}
    spacing = record.get("spacing") or [None] * 3
    row.update(threshold_method=threshold.get("method"), threshold_value=threshold.get("value"),
               diameter=diameter.get("value"), diameter_estimated=diameter.get("estimated"),
               spacing_z=spacing[0], spacing_y=spacing[1], spacing_x=spacing[2])
    return row


def _combine(tasks, records):
    """The objects of every input that has results, in input order, `source` first."""
    import pandas as pd

    frames = []
    for task, record in zip(tasks, records):
        if record["status"] == "failed":
            continue
        table = pd.read_csv(Path(task.output) / "objects.csv")
        table.insert(0, "source", pd.Series([task.source] * len(table), dtype=object))
        frames.append(table)
    non_empty = [f for f in frames if len(f)]
    if not non_empty:  # concatenating empty frames is deprecated in pandas
        return frames[0] if frames else pd.DataFrame({"source": pd.Series([], dtype=object)})
    return pd.concat(non_empty, ignore_index=True)


def _line(task: _Task, outcome: dict) -> str:
    if outcome["status"] == "failed":
        return f"{task.source}: failed: {outcome['error']}"
    line = f"{task.source}: {outcome['object_count']} objects, {outcome['run_time_s']:.1f} s"
    if outcome.get("spacing_source") == "default":
        line += " (no voxel spacing in the metadata: 1 x 1 x 1 assumed; use --spacing Z Y X)"
    return line


# -- running -----------------------------------------------------------------


def _run_here(tasks, workers, threads):
    """Run the tasks one after the other in this process, voxseg using at most `threads` threads."""
    before = os.environ.get(THREADS_VARIABLE)
    os.environ[THREADS_VARIABLE] = str(threads)
    try:
        for task in tasks:
            yield task, _segment_one(task)
    finally:
        if before is None:
            os.environ.pop(THREADS_VARIABLE, None)
        else:
            os.environ[THREADS_VARIABLE] = before


def _run_in_processes(tasks, workers, threads):
    """Run the tasks over `workers` processes; yield (task, outcome) as they finish.

    At most `workers` tasks are handed out at a time, so when a worker dies the
    input that killed it is among those in flight: alone, it is failed; else
    they are run again one at a time, each in a fresh process, to find it.
    """
    queue, suspects = list(tasks), []
    while queue or suspects:
        if suspects:
            group, size = [suspects.pop(0)], 1
        else:
            group, size, queue = queue, workers, []
        unstarted = []
        for task, outcome in _pool_round(group, size, threads, unstarted):
            if outcome is None:
                suspects.append(task)
            else:
                yield task, outcome
        queue = unstarted + queue


def _pool_round(tasks, workers, threads, unstarted):
    """Run `tasks` in one process pool; yield (task, outcome).

    When a worker dies the pool is broken: the one task in flight is failed,
    several get outcome None (suspects), and the tasks not handed out yet are
    appended to `unstarted`.
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    def crashed(future):
        return isinstance(future.exception(), BrokenProcessPool)

    pending, running = list(tasks), {}
    executor = ProcessPoolExecutor(max_workers=min(workers, len(tasks)),
                                   mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(threads,))
    try:
        while pending or running:
            while pending and len(running) < workers:
                try:
                    future = executor.submit(_worker_entry, pending[0])
                except BrokenProcessPool as err:
                    if not running:  # the pool broke before any task of it ran: not an input's fault
                        for task in pending:
                            yield task, {"status": "failed", "error": f"cannot start a worker process ({err})"}
                        return
                    break
                running[future] = pending.pop(0)
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            if any(crashed(f) for f in done):
                done, _ = wait(running)  # every task of a broken pool ends at once
            lost = []
            for future in sorted(done, key=lambda f: running[f].index):
                task = running.pop(future)
                if crashed(future):
                    lost.append(task)
                elif future.exception() is not None:  # not the input's error (those are outcomes)
                    err = future.exception()
                    yield task, {"status": "failed", "error": f"{type(err).__name__}: {err}"}
                else:
                    yield task, future.result()
            if lost:
                for task in lost:
                    yield task, ({"status": "failed", "error": _CRASHED} if len(lost) == 1 else None)
                unstarted.extend(pending)
                return
    except BaseException:
        _terminate_workers(executor)
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _terminate_workers(executor):
    """Stop the workers now (their partial results folders are removed by their SIGTERM handler)."""
    if hasattr(executor, "terminate_workers"):  # Python 3.14
        executor.terminate_workers()
        return
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            process.terminate()


# state of a worker process
_BUSY = False


def _init_worker(threads):
    """Set up a worker process: thread limits, allocator, and signals left to the main process."""
    from ._memory import configure_allocator

    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)
    configure_allocator()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the main process, which stops the workers
    signal.signal(signal.SIGTERM, _on_sigterm)
    _stop_with_parent()


def _stop_with_parent():
    """Stop this worker, as on SIGTERM, when the main process dies (e.g. killed with SIGKILL).

    Without this an orphaned worker would finish its input and then wait forever for the next one.
    """
    import multiprocessing
    import threading

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch():
        parent.join()  # returns when the parent process has ended
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="voxseg-parent-watch", daemon=True).start()


def _on_sigterm(signum, frame):
    if _BUSY:
        raise KeyboardInterrupt  # unwinds the atomic writes, removing the partial folder
    os._exit(128 + signum)


def _worker_entry(task: _Task) -> dict:
    """What a worker process runs for one task."""
    global _BUSY
    _BUSY = True
    try:
        return _segment_one(task)
    except KeyboardInterrupt:
        os._exit(128 + signal.SIGTERM)
    finally:
        _BUSY = False


# -- output folder -----------------------------------------------------------


@contextlib.contextmanager
def _lock(outdir: Path):
    """Hold an exclusive lock on OUTDIR for the run (where the OS offers file locks)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    from .errors import OutputError

    path = outdir / _LOCK_FILE
    try:
        handle = open(path, "a")
    except OSError as err:
        raise OutputError(f"{outdir}: cannot write into the results folder ({err.strerror or err})") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise OutputError(f"{outdir}: another voxseg batch is writing into this folder") from None
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(outdir: Path) -> None:
    """Delete the hidden temporary files and folders of an earlier run that was killed."""
    for entry in os.scandir(outdir):
        if _LEFTOVER.match(entry.name):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


class _Progress:
    """One bar over the inputs (on a terminal) and a line per finished input, on stderr."""

    def __init__(self, total, *, enabled):
        self.total, self.enabled, self.bar = total, enabled, None

    def __enter__(self):
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc="batch", unit="input", disable=None, file=sys.stderr)
        return self

    def done(self, count, line):
        if self.enabled:
            from tqdm import tqdm

            tqdm.write(line, file=sys.stderr)
            self.bar.update(count)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
