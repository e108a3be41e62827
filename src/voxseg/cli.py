"""The ``voxseg`` command line: parse arguments, call the library, set the exit status.

A user mistake (a :class:`~voxseg.errors.VoxsegError`) ends with one line on
stderr and exit status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ._version import __version__

# exit statuses
USER_ERROR = 2
INTERRUPTED = 130


def _input_options(func):
    """--spacing, --channel, --axes, --unit: how to read an input volume."""
    func = click.option("--unit", default=None, help="Unit of the spacing (default: from metadata, else 'pixel').")(func)
    func = click.option("--axes", default=None, metavar="AXES",
                        help="Axes of data without metadata, e.g. ZCYX.")(func)
    func = click.option("--channel", type=int, default=None, metavar="N",
                        help="Channel to use in multichannel data (0-based).")(func)
    func = click.option("--spacing", type=float, nargs=3, default=None, metavar="Z Y X",
                        help="Voxel size; overrides the file's metadata.")(func)
    return func


def _read(path, spacing, channel, axes, unit, lazy=None):
    from . import io

    volume = io.read(path, spacing=spacing or None, channel=channel, axes=axes, unit=unit, lazy=lazy)
    if volume.spacing_source == "default":
        _note(f"{path}: no voxel spacing in the metadata; assumed 1 x 1 x 1 voxels (use --spacing Z Y X)")
    return volume


def _note(message):
    """Say `message` on stderr when the command succeeds (an error stays a single line)."""
    click.get_current_context().find_root().meta.setdefault("voxseg_notes", []).append(message)


@click.pass_context
def _print_notes(ctx, *args, **kwargs):
    for message in ctx.find_root().meta.get("voxseg_notes", []):
        click.echo(f"voxseg: note: {message}", err=True)


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no such method, or closed
        return False


class _StepProgress:
    """A progress bar over pipeline steps (shown on a terminal only)."""

    def __init__(self, label):
        self.label = label
        self.bar = None

    def __call__(self, index, count, name):
        if self.bar is None and not _is_terminal(sys.stderr):
            return  # what tqdm's disable=None decides, without importing it
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=count + 1, desc=self.label, unit="step", leave=False, disable=None,
                            file=sys.stderr)
        self.bar.total = count + 1
        self.bar.n = index
        self.bar.set_postfix_str(name)

    def close(self):
        if self.bar is not None:
            self.bar.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, result_callback=_print_notes)
@click.version_option(__version__, prog_name="voxseg")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
@click.pass_context
def cli(ctx, debug):
    """voxseg: 3D images to separated, measured objects, in physical units."""
    ctx.obj = {"debug": debug}


@cli.command()
@click.argument("input", type=click.Path())
@_input_options
@click.option("--figure", type=click.Path(), default=None, help="Write orthogonal planes and histogram to this PNG.")
@click.option("--overwrite", is_flag=True, help="Replace an existing figure.")
def inspect(input, spacing, channel, axes, unit, figure, overwrite):
    """Describe a volume: shape, dtype, value range, percentiles, spacing."""
    import numpy as np

    from .exposure import percentile

    volume = _read(input, spacing, channel, axes, unit)
    data = np.asarray(volume.data)
    finite = data[np.isfinite(data)] if np.issubdtype(data.dtype, np.floating) else data
    lo, hi = (percentile(finite, [0.5, 99.5]) if finite.size else (float("nan"), float("nan")))
    z, y, x = volume.spacing
    lines = [
        f"file:        {input}",
        f"shape:       {' x '.join(map(str, volume.shape))} (z, y, x)",
        f"axes:        {volume.axes} in the file",
        f"dtype:       {volume.dtype}",
        f"range:       {finite.min() if finite.size else 'n/a'} .. {finite.max() if finite.size else 'n/a'}",
        f"percentiles: 0.5% = {lo:g}, 99.5% = {hi:g}",
        f"spacing:     {z:g} x {y:g} x {x:g} {volume.unit} ({volume.spacing_source})",
        f"extent:      {volume.shape[0] * z:g} x {volume.shape[1] * y:g} x {volume.shape[2] * x:g} {volume.unit}",
        f"memory:      {volume.nbytes / 2**20:.1f} MiB",
    ]
    if data.size != finite.size:
        lines.append(f"non-finite:  {data.size - finite.size} voxels (NaN or Inf)")
    click.echo("\n".join(lines))
    if figure:
        from .io.atomic import atomic_path
        from .report import figures

        fig = figures.inspection(data, spacing=volume.spacing, unit=volume.unit)
        with atomic_path(figure, overwrite=overwrite) as tmp:
            figures.save_figure(fig, tmp)
        click.echo(f"figure:      {figure}")


@cli.command()
@click.argument("name")
@click.option("-o", "--output", required=True, type=click.Path(), help="File to write (.tif, .zarr or .npy).")
@click.option("--overwrite", is_flag=True, help="Replace an existing file.")
def sample(name, output, overwrite):
    """Write a sample volume (nuclei, nuclei_labels, beads, ellipsoids) or example pipeline (nuclei.toml, beads.toml)."""
    from . import io
    from .samples import SAMPLES, load_sample

    if name.endswith(".toml"):
        from .io.atomic import atomic_path
        from .pipeline import SHIPPED_PIPELINES, shipped_pipeline

        source = shipped_pipeline(name)
        if source is None:
            from .errors import ParameterError

            raise ParameterError(f"unknown example pipeline {name!r}; available: "
                                 f"{', '.join(p + '.toml' for p in SHIPPED_PIPELINES)}")
        with atomic_path(output, overwrite=overwrite) as tmp:
            Path(tmp).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
        click.echo(f"{output}: example pipeline {name}")
        return
    volume = load_sample(name)
    writer = io.write_labels if name == "nuclei_labels" else io.write_volume
    writer(output, volume.data, spacing=volume.spacing, unit=volume.unit, overwrite=overwrite)
    click.echo(f"{output}: {name} ({SAMPLES[name]})")


def _segment_options(func):
    for option in reversed([
        click.option("-o", "--output", "outdir", required=True, type=click.Path(), help="Results folder."),
        click.option("--diameter", type=float, default=None,
                     help="Expected object diameter in the spacing's unit (default: estimated)."),
        click.option("--threshold", "threshold_method", default="li", show_default=True,
                     type=click.Choice(["li", "otsu", "yen", "triangle", "mean", "isodata", "minimum"])),
        click.option("--dark-objects", is_flag=True, help="Objects are darker than the background."),
        click.option("--clear-border", is_flag=True, help="Drop objects touching the volume border."),
        click.option("--overwrite", is_flag=True, help="Replace an existing results folder."),
        click.option("--no-report", is_flag=True, help="Do not write report.html."),
    ]):
        func = option(func)
    return func


def _parse_chunks(ctx, param, value):
    if value is None:
        return None
    try:
        sizes = [int(v) for v in value.split(",")]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 3) or min(sizes) < 1:
        raise click.BadParameter(f"expected N or Z,Y,X (positive integers), got {value!r}")
    return sizes[0] if len(sizes) == 1 else tuple(sizes)


def _chunked_options(func):
    """--chunks, --scheduler, --workers, --memory: segment block by block on Dask (volumes larger than memory)."""
    for option in reversed([
        click.option("--chunks", callback=_parse_chunks, default=None, metavar="N|Z,Y,X",
                     help="Segment block by block with blocks of this shape (volumes larger than memory); "
                          "labels are written as labels.zarr."),
        click.option("--scheduler", default=None, metavar="ADDRESS",
                     help="With --chunks: run on this dask.distributed scheduler (e.g. tcp://host:8786)."),
        click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
                     help="With --chunks: start a local Dask cluster of N worker processes."),
        click.option("--memory", type=click.FloatRange(min=0, min_open=True), default=None, metavar="GB",
                     help="With --chunks: memory one task may use (default: a share of the available memory)."),
    ]):
        func = option(func)
    return func


def _run_segmentation(input, outdir, pipeline, *, spacing, channel, axes, unit, diameter, threshold_method,
                      dark_objects, clear_border, overwrite, no_report, chunks=None, scheduler=None, workers=None,
                      memory=None):
    from .workflow import segment_file

    if Path(outdir).exists() and not overwrite:
        from .errors import OutputExistsError

        raise OutputExistsError(f"{outdir}: already exists (use --overwrite to replace it)")
    chunked = chunks is not None or scheduler is not None or workers is not None or memory is not None
    if not chunked:
        from .workflow import import_in_background

        import_in_background()  # while the input is read
    volume = _read(input, spacing, channel, axes, unit, lazy=True if chunked else None)
    if diameter is not None:
        from .segmentation import check_diameter

        check_diameter(diameter, volume.shape, volume.spacing)
    if chunked:
        from .chunked import segment_file_chunked

        summary = segment_file_chunked(input, outdir, volume=volume, diameter=diameter, threshold=threshold_method,
                                       dark_objects=dark_objects, clear_border=clear_border, pipeline=pipeline,
                                       overwrite=overwrite, report=not no_report, chunks=chunks or 128,
                                       scheduler=scheduler, workers=workers,
                                       memory=None if memory is None else int(memory * 2**30))
    else:
        progress = _StepProgress(Path(input).name)
        try:
            summary = segment_file(input, outdir, volume=volume, diameter=diameter, threshold=threshold_method,
                                   dark_objects=dark_objects, clear_border=clear_border, pipeline=pipeline,
                                   overwrite=overwrite, report=not no_report, progress=progress)
        finally:
            progress.close()
    d, t = summary["diameter"], summary["threshold"]
    parts = [f"{outdir}: {summary['object_count']} objects"]
    if t["value"] is not None:
        parts.append(f"threshold {t['method']} = {t['value']:.4g}")
    if d["value"] is not None:
        parts.append(f"diameter {d['value']:.4g} {summary['unit']}{' (estimated)' if d['estimated'] else ''}")
    parts.append(f"{summary['run_time_s']:.1f} s")
    click.echo("; ".join(parts))


@cli.command()
@click.argument("input", type=click.Path())
@_input_options
@_segment_options
@click.option("--pipeline", "pipeline_file", type=click.Path(), default=None,
              help="Run this pipeline file (e.g. a previous run's pipeline.toml) instead of the default recipe.")
@_chunked_options
def segment(input, spacing, channel, axes, unit, outdir, diameter, threshold_method, dark_objects, clear_border,
            overwrite, no_report, pipeline_file, chunks, scheduler, workers, memory):
    """Segment INPUT into separated objects; write labels, table, summary, pipeline and report."""
    pipeline = None
    if pipeline_file:
        from .pipeline import Pipeline

        pipeline = Pipeline.from_toml(pipeline_file)
    _run_segmentation(input, outdir, pipeline, spacing=spacing, channel=channel, axes=axes, unit=unit,
                      diameter=diameter, threshold_method=threshold_method, dark_objects=dark_objects,
                      clear_border=clear_border, overwrite=overwrite, no_report=no_report, chunks=chunks,
                      scheduler=scheduler, workers=workers, memory=memory)


@cli.command()
@click.argument("pipeline_file", metavar="PIPELINE", type=click.Path())
@click.argument("input", type=click.Path())
@_input_options
@click.option("-o", "--output", "outdir", required=True, type=click.Path(), help="Results folder.")
@click.option("--overwrite", is_flag=True, help="Replace an existing results folder.")
@click.option("--no-report", is_flag=True, help="Do not write report.html.")
@_chunked_options
def run(pipeline_file, input, spacing, channel, axes, unit, outdir, overwrite, no_report, chunks, scheduler, workers,
        memory):
    """Run the steps of a PIPELINE file (or a shipped one: nuclei, beads) on INPUT."""
    from .pipeline import Pipeline, shipped_pipeline

    shipped = None if Path(pipeline_file).exists() else shipped_pipeline(pipeline_file)
    pipeline = Pipeline.from_toml(shipped or pipeline_file)
    _run_segmentation(input, outdir, pipeline, spacing=spacing, channel=channel, axes=axes, unit=unit,
                      diameter=None, threshold_method="li", dark_objects=False, clear_border=False,
                      overwrite=overwrite, no_report=no_report, chunks=chunks, scheduler=scheduler, workers=workers,
                      memory=memory)


@cli.command()
@click.argument("input", type=click.Path())
@_input_options
@click.option("-o", "--output", required=True, type=click.Path(), help="Figure to write (PNG).")
@click.option("--overwrite", is_flag=True, help="Replace an existing figure.")
def thresholds(input, spacing, channel, axes, unit, output, overwrite):
    """Compare threshold methods on INPUT (3D try_all_threshold) in one figure."""
    from .exposure import rescale_intensity
    from .io.atomic import atomic_path
    from .report import figures
    from .threshold import compare_thresholds
    from .workflow import prepare_image

    volume = _read(input, spacing, channel, axes, unit)
    image, _ = prepare_image(volume)
    image = rescale_intensity(image)
    results = compare_thresholds(image)
    width = max(len(r["method"]) for r in results)
    for r in results:
        if r.get("value") is None:
            click.echo(f"{r['method']:<{width}}  failed: {r['error']}")
        else:
            click.echo(f"{r['method']:<{width}}  value {r['value']:.4f}  foreground {100 * r['foreground_fraction']:5.1f} %"
                       f"  objects {r['object_count']}")
    fig = figures.threshold_comparison(
        image, [{"name": r["method"], **r} for r in results if r.get("value") is not None],
        spacing=volume.spacing, unit=volume.unit)
    with atomic_path(output, overwrite=overwrite) as tmp:
        figures.save_figure(fig, tmp)
    click.echo(f"figure: {output}")


@cli.command()
@click.argument("labels", type=click.Path())
@click.option("--intensity", type=click.Path(), default=None, help="Intensity volume for intensity columns.")
@click.option("--spacing", type=float, nargs=3, default=None, metavar="Z Y X", help="Voxel size; overrides metadata.")
@click.option("--channel", type=int, default=None, metavar="N", help="Channel of the intensity volume.")
@click.option("-o", "--output", required=True, type=click.Path(), help="Table to write (.csv or .parquet).")
@click.option("--meshes", type=click.Path(), default=None, help="Folder for one mesh per object (PLY) and scene.glb.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
def measure(labels, intensity, spacing, channel, output, meshes, overwrite):
    """Measure the objects of a LABELS volume in physical units."""
    import numpy as np

    from . import io
    from .errors import ParameterError
    from .io.atomic import atomic_directory, atomic_path
    from .io.table import write_csv
    from .measurements import export_meshes
    from .measurements import measure as measure_objects

    suffix = Path(output).suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ParameterError(f"{output}: the table must end in .csv or .parquet")
    label_volume = _read(labels, spacing, None, None, None)
    data = np.asarray(label_volume.data)
    if data.dtype.kind not in "ui" and data.dtype != bool:
        if np.issubdtype(data.dtype, np.floating) and np.all(np.mod(data, 1) == 0) and data.min() >= 0:
            data = data.astype(np.uint32)
        else:
            raise ParameterError(f"{labels}: labels must be non-negative integers, got dtype {data.dtype}")
    image = None
    if intensity:
        image = np.asarray(io.read(intensity, spacing=label_volume.spacing, channel=channel).data)
        if image.shape != data.shape:
            raise ParameterError(f"{intensity}: shape {image.shape} differs from the labels' {data.shape}")
    table = measure_objects(data.astype(np.uint32) if data.dtype == bool else data, image,
                            spacing=label_volume.spacing)
    with atomic_path(output, overwrite=overwrite) as tmp:
        if suffix == ".csv":
            write_csv(tmp, table)
        else:
            table.to_parquet(tmp, index=False)
    click.echo(f"{output}: {len(table)} objects")
    if meshes:
        with atomic_directory(meshes, overwrite=overwrite) as tmp:
            export_meshes(data, tmp, spacing=label_volume.spacing)
        click.echo(f"{meshes}: meshes in {label_volume.unit}")


@cli.command()
@click.argument("outdir", type=click.Path())
@click.option("--input", "input_path", type=click.Path(), default=None,
              help="The segmented volume, if it moved since the run (default: as recorded in summary.json).")
def report(outdir, input_path):
    """Rebuild OUTDIR/report.html from a results folder."""
    import json

    import numpy as np
    import pandas as pd

    from . import io
    from .errors import FormatError, InputNotFoundError
    from .report.html import write_report

    outdir = Path(outdir)
    summary_file = outdir / "summary.json"
    if not summary_file.is_file():
        raise InputNotFoundError(f"{summary_file}: no such file; is {outdir} a voxseg results folder?")
    try:
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FormatError(f"{summary_file}: not valid JSON ({err})") from None
    source = input_path or summary.get("input")
    spacing = summary.get("spacing")
    volume = io.read(source, spacing=spacing)
    labels = np.asarray(io.read(outdir / "labels.tif", spacing=spacing).data)
    table = pd.read_csv(outdir / "objects.csv")
    write_report(outdir / "report.html", np.asarray(volume.data), labels, table, summary, spacing=volume.spacing,
                 unit=summary.get("unit", volume.unit), title=f"voxseg: {Path(str(source)).name}")
    click.echo(f"{outdir / 'report.html'}: rebuilt")


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", "outdir", required=True, type=click.Path(),
              help="Results folder: a subfolder per input, objects.csv/.parquet, summary.csv, batch.json.")
@click.option("--pipeline", "pipeline_file", type=click.Path(), default=None,
              help="Run this pipeline file instead of the default recipe.")
@click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
              help="Worker processes (default: one per CPU core).")
@click.option("--resume", is_flag=True,
              help="Continue in OUTDIR: reuse the results made from the same input and settings.")
@click.option("--spacing", type=float, nargs=3, default=None, metavar="Z Y X",
              help="Voxel size; overrides the files' metadata.")
@click.option("--channel", type=int, default=None, metavar="N", help="Channel to use in multichannel data (0-based).")
@click.option("--axes", default=None, metavar="AXES", help="Axes of data without metadata, e.g. ZCYX.")
@click.option("--unit", default=None, help="Unit of the spacing (default: from metadata, else 'pixel').")
@click.option("--diameter", type=float, default=None,
              help="Expected object diameter in the spacing's unit (default: estimated per input).")
@click.option("--threshold", "threshold_method", default="li", show_default=True,
              type=click.Choice(["li", "otsu", "yen", "triangle", "mean", "isodata", "minimum"]))
@click.option("--dark-objects", is_flag=True, help="Objects are darker than the background.")
@click.option("--clear-border", is_flag=True, help="Drop objects touching the volume border.")
@click.option("--no-report", is_flag=True, help="Do not write report.html.")
@click.option("--overwrite", is_flag=True, help="Recompute every input, replacing its results.")
def batch(inputs, outdir, pipeline_file, workers, resume, spacing, channel, axes, unit, diameter, threshold_method,
          dark_objects, clear_border, no_report, overwrite):
    """Segment many INPUTS (files, folders of volumes, glob patterns) in parallel into OUTDIR.

    Every input gets the outputs of `voxseg segment` in OUTDIR/<name>/. A failing
    input is listed at the end and the others go on; the exit status is then 2.
    """
    from .batching import run_batch

    objects = run_batch(list(inputs), outdir, pipeline=pipeline_file, workers=workers, resume=resume,
                        overwrite=overwrite, spacing=spacing or None, channel=channel, axes=axes, unit=unit,
                        diameter=diameter, threshold=threshold_method, dark_objects=dark_objects,
                        clear_border=clear_border, report=not no_report, progress=True)
    info = objects.attrs["batch"]
    counts, failures = info["counts"], info["failures"]
    reused = f" ({counts['reused']} reused)" if counts["reused"] else ""
    click.echo(f"{outdir}: {counts['ok'] + counts['reused']} of {counts['inputs']} inputs segmented{reused}, "
               f"{len(objects)} objects")
    if failures:
        click.echo(f"voxseg: error: {len(failures)} of {counts['inputs']} inputs failed "
                   f"(also listed in {info['path']}):", err=True)
        for failure in failures:
            click.echo(f"  {failure['source']}: {failure['error']}", err=True)
        sys.exit(USER_ERROR)


def _exit_cleanly_on_sigterm():
    """Turn SIGTERM into an exception, so that partial outputs are removed like on Ctrl-C."""
    import signal
    import threading

    def terminate(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, terminate)


def _one_blas_thread():
    """Give the BLAS libraries one thread each, unless the user chose otherwise.

    voxseg parallelises over threads of its own and makes no large BLAS
    calls, while NumPy's and SciPy's OpenBLAS each start a pool of threads
    that spin on the cores from their import on (0.15 s of CPU time per
    run). Set before NumPy is imported, which reads it then.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _exit_without_teardown():
    """End the process of a command that succeeded, as the interpreter would but without freeing each object.

    The interpreter's teardown frees every module and object one by one
    (0.05-0.1 s after a segmentation) where the system frees the process at
    once. The steps that matter are kept, in the interpreter's order: wait
    for the threads that are not daemons (which also shuts thread pools
    down), run the exit handlers (temporary folders, logging, worker
    processes), flush the standard streams. Without ``threading._shutdown``
    (a private function) the process ends the usual way.
    """
    import atexit
    import threading

    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is None or threading.current_thread() is not threading.main_thread():
        return
    shutdown()
    atexit._run_exitfuncs()
    status = 0
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: what the interpreter reports with status 120
            status = 120
    os._exit(status)


def main(argv=None):
    """Entry point of the ``voxseg`` console script."""
    _one_blas_thread()
    # voxseg's threads hand the GIL back and forth around short NumPy calls: a thread that wants it back
    # waits for the switch interval (5 ms by default; 1 ms measured 1.5 % faster on the benchmark)
    sys.setswitchinterval(0.001)
    from .errors import VoxsegError

    from ._memory import configure_allocator

    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    _exit_cleanly_on_sigterm()
    configure_allocator()
    try:
        cli.main(args=argv, prog_name="voxseg", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("voxseg: interrupted", err=True)
        sys.exit(INTERRUPTED)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except VoxsegError as err:
        if debug:
            raise
        click.echo(f"voxseg: error: {err}", err=True)
        sys.exit(USER_ERROR)
    except MemoryError:
        if debug:
            raise
        click.echo("voxseg: error: out of memory; the volume is too large for an in-memory run", err=True)
        sys.exit(USER_ERROR)
    except KeyboardInterrupt:
        click.echo("voxseg: interrupted", err=True)
        sys.exit(INTERRUPTED)
    if argv is None:  # the console script, not a caller of main() that goes on
        _exit_without_teardown()


if __name__ == "__main__":  # pragma: no cover
    main()
