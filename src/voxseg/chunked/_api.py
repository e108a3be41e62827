"""segment_chunked: the in-memory recipe run block by block, with the in-memory result."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ParameterError
from ..pipeline import PipelineResult
from ..volume import as_spacing

__all__ = ["segment_chunked", "ChunkedResult", "DEFAULT_CHUNKS"]

#: default block edge, in voxels
DEFAULT_CHUNKS = 128


@dataclass
class ChunkedResult(PipelineResult):
    """What :func:`segment_chunked` gives: a :class:`~voxseg.pipeline.PipelineResult` with a lazy label volume.

    Attributes
    ----------
    data : dask.array.Array
        The labels (uint16, or uint32 from 65536 objects on), painted block
        by block from the run's working folder when computed. The folder is
        kept as long as this array (or the result) is referenced.
    table : pandas.DataFrame or None
        :func:`voxseg.measurements.measure` of the labels with the intensity image.
    workdir : str
        The working folder.
    """

    table: Any = None
    workdir: str | None = None
    chunks: tuple = ()
    counts: dict = field(default_factory=dict)


class Workspace:
    """A working folder, removed when the last object holding it goes (if this run made it)."""

    def __init__(self, path, owned=False):
        self.path = str(path)
        if owned:
            self._finalizer = weakref.finalize(self, shutil.rmtree, self.path, True)

    def __reduce__(self):
        # a copy sent to a worker never removes the folder
        return (Workspace, (self.path, False))

    def cleanup(self):
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer()


def _chunks(chunks, shape):
    if isinstance(chunks, str):
        try:
            chunks = [int(v) for v in chunks.split(",")]
        except ValueError:
            raise ParameterError(f"chunks must be a positive integer or 3 of them (z, y, x), got {chunks!r}") \
                from None
        chunks = chunks[0] if len(chunks) == 1 else chunks
    values = (chunks,) * 3 if np.ndim(chunks) == 0 else tuple(chunks)
    if len(values) != 3 or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c > 0
                                   for c in values):
        raise ParameterError(f"chunks must be a positive integer or 3 of them (z, y, x), got {chunks!r}")
    return tuple(int(min(c, n)) if n else int(c) for c, n in zip(values, shape))


def _as_dask(data, chunks):
    import dask.array as da

    from ..volume import Volume

    if isinstance(data, Volume):
        data = data.data
    if isinstance(data, da.Array):
        array = data
    else:
        array = da.from_array(np.asarray(data) if not hasattr(data, "shape") else data, chunks=chunks)
    if array.ndim != 3:
        raise ParameterError(f"image must be 3D (z, y, x), got shape {tuple(array.shape)}")
    if np.dtype(array.dtype).kind not in "biuf":
        raise ParameterError(f"image must be a real numeric array, got dtype {array.dtype}")
    return array.rechunk(chunks)


def default_budget(parallelism):
    """Memory one task may use: a share of the available memory, at most 4 GB."""
    from ..io import available_memory

    available = available_memory()
    if available is None:
        return 2 * 2**30
    return int(max(256 * 2**20, min(4 * 2**30, available / (2 * max(1, parallelism)))))


def segment_chunked(data, *, spacing=None, diameter=None, threshold="li", dark_objects=False, clear_border=False,
                    pipeline=None, chunks=DEFAULT_CHUNKS, scheduler=None, workers=None, progress=None,
                    memory=None, workdir=None, measure=True) -> ChunkedResult:
    """Segment a volume block by block on Dask, with exactly the in-memory result.

    Same recipe, parameters and result as :func:`voxseg.segmentation.segment`,
    for volumes larger than memory: the label volume equals the in-memory one
    voxel for voxel (objects numbered by their first voxel in raster order),
    the threshold, the estimated diameter and the resolved pipeline are the
    same numbers, and the table equals ``measure(labels, image, spacing=...)``.

    Parameters
    ----------
    data : dask.array.Array, ndarray, zarr array or Volume
        3D intensity volume (z, y, x), e.g. ``voxseg.read(path, lazy=True).data``.
    spacing : sequence of float, optional
        Voxel size per axis; every length is in its unit.
    diameter, threshold, dark_objects, clear_border, pipeline
        As for :func:`voxseg.segmentation.segment`. A custom pipeline may use the
        pointwise steps (``rescale_intensity``, ``adjust_gamma``),
        ``threshold``, the mask steps ``fill_holes``, ``remove_small_holes``
        and ``remove_small_objects`` (face connectivity), ``split_touching``
        and the label steps ``remove_small_objects``, ``clear_border`` and
        ``relabel``; any other step raises a PipelineError naming it.
    chunks : int, sequence of 3 int or "Z,Y,X"
        Block shape: the unit of work of the passes and the chunks of the
        stores and of the label volume.
    scheduler : str or distributed.Client, optional
        Run on an existing ``dask.distributed`` cluster (its workers must
        see `workdir`). Default: Dask's local threaded scheduler.
    workers : int, optional
        Start a ``distributed.LocalCluster`` with this many worker processes.
    progress : bool or callable, optional
        Progress bars on stderr (None: on a terminal only); a callable is
        called with (step index, step count, step name) as
        :meth:`voxseg.pipeline.Pipeline.run` calls it.
    memory : int, optional
        Bytes one task may use (default: a share of the available memory,
        at most 4 GB). A connected component that cannot be split whole
        within it raises VolumeTooLargeError (objects are never cut).
    workdir : str or os.PathLike, optional
        Folder for the run's stores; a run killed and started again with the
        same folder and the same input and settings resumes where it stopped.
        Default: a temporary folder removed with the result.
    measure : bool
        Measure the objects (``.table``).

    Returns
    -------
    ChunkedResult
        ``.data`` (lazy dask array of labels), ``.pipeline`` (resolved),
        ``.records`` (threshold value, whether the diameter was estimated),
        ``.table``, ``.timings``.

    Raises
    ------
    PipelineError
        If a step of `pipeline` cannot run chunked.
    VolumeTooLargeError
        If a component does not fit the memory budget.

    Examples
    --------
    >>> from voxseg.testing import sphere_pack
    >>> from voxseg.segmentation import segment
    >>> vol = sphere_pack(shape=(24, 32, 32), diameter=10, attempts=300)
    >>> chunked = segment_chunked(vol.image, spacing=vol.spacing, chunks=(8, 16, 16), progress=False)
    >>> labels = chunked.data.compute()
    >>> bool((labels == segment(vol.image, spacing=vol.spacing).data).all())
    True
    """
    from ._run import Runner

    callback = progress if callable(progress) else None
    bars = None if callable(progress) else progress
    owned = workdir is None
    path = tempfile.mkdtemp(prefix="voxseg-chunked-") if owned else os.fspath(workdir)
    workspace = Workspace(path, owned=owned)
    try:
        with Runner(scheduler, workers, bars) as runner:
            return run_chunked(data, spacing=spacing, diameter=diameter, threshold=threshold,
                               dark_objects=dark_objects, clear_border=clear_border, pipeline=pipeline,
                               chunks=chunks, runner=runner, memory=memory, workspace=workspace, measure=measure,
                               progress=callback)
    except BaseException:
        workspace.cleanup()
        raise


def run_chunked(data, *, spacing, diameter, threshold, dark_objects, clear_border, pipeline, chunks, runner,
                memory, workspace, measure, progress) -> ChunkedResult:
    """segment_chunked with a runner and a working folder given (see there)."""
    from ..segmentation import check_diameter
    from ._blocks import Layout
    from ._engine import Engine, check_chunkable, number_objects, run

    shape = tuple(int(n) for n in data.shape)
    if len(shape) != 3:
        raise ParameterError(f"image must be 3D (z, y, x), got shape {shape}")
    if 0 in shape:
        raise ParameterError(f"image must not be empty, got shape {shape}")
    if spacing is None and hasattr(data, "spacing"):
        spacing = data.spacing
    spacing = as_spacing(spacing, 3)
    chunks = _chunks(chunks, shape)
    array = _as_dask(data, chunks)
    if diameter is not None:
        check_diameter(diameter, shape, spacing)
    if pipeline is None:
        from ..pipeline import default_pipeline

        pipeline = default_pipeline(diameter="auto" if diameter is None else float(diameter), threshold=threshold,
                                    dark_objects=dark_objects, clear_border=clear_border)
    elif diameter is not None:
        pipeline = type(pipeline)(pipeline.steps, diameter=float(diameter))
    check_chunkable(pipeline)
    if memory is not None and (isinstance(memory, bool) or not isinstance(memory, (int, float)) or memory <= 0):
        raise ParameterError(f"memory must be a positive number of bytes, got {memory!r}")
    path = workspace.path
    os.makedirs(path, exist_ok=True)
    started = time.perf_counter()
    budget = int(memory) if memory is not None else default_budget(runner.parallelism)
    layout = Layout(path, shape, chunks, spacing)
    engine = Engine(array, spacing=spacing, pipeline=pipeline, layout=layout, runner=runner, budget=budget,
                    measure=measure)
    (keys, results), plan, resolved, records = run(engine, progress)
    meta = [r["meta"] for r in results]
    group_of = np.concatenate([np.full(len(m), i, np.int64) for i, m in enumerate(meta)]) if meta \
        else np.zeros(0, np.int64)
    meta = np.concatenate(meta) if meta else np.zeros((0, 11), np.int64)
    final, dtype = number_objects(meta, plan, shape)
    table = _table(path, keys, meta, final, spacing) if measure else None
    labels = _labels(workspace, layout, keys, meta, group_of, final, dtype)
    timings = engine.timings + [("total", time.perf_counter() - started, None)]
    counts = {"blocks": layout.blocks, "objects": int((final > 0).sum())}
    return ChunkedResult(labels, "labels", resolved, records, timings, {}, table=table, workdir=path, chunks=chunks,
                         counts=counts)


def _table(path, keys, meta, final, spacing):
    """The measurements of all groups, labelled and sorted like measure()'s table."""
    import pandas as pd

    from ..measurements import measure

    parts = []
    for key in keys:
        file = os.path.join(path, "split", f"{key}.table.pkl")
        if os.path.exists(file):
            parts.append(pd.read_pickle(file))
    if not parts:
        table = measure(np.zeros((1, 1, 1), np.uint8), np.zeros((1, 1, 1), np.float64), spacing=spacing)
    else:
        table = pd.concat(parts, ignore_index=True)
        lookup = {(int(c), int(l)): int(f) for c, l, f in zip(meta[:, 0], meta[:, 1], final)}
        table["label"] = [lookup[(c, l)] for c, l in zip(table.pop("_component").tolist(),
                                                          table["label"].tolist())]
        table["label"] = table["label"].astype(np.int64)
        table = table.sort_values("label", kind="stable").reset_index(drop=True)
    table.attrs = {"spacing": tuple(float(s) for s in spacing)}
    return table


def _labels(workspace, layout, keys, meta, group_of, final, dtype):
    """The label volume as a dask array: one paint task per block, from the saved objects."""
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    from ._split import paint

    grid = layout.grid
    items = {}
    if len(meta):
        order = np.argsort(meta[:, 0], kind="stable")
        meta, group_of, final = meta[order], group_of[order], final[order]
        components, first_row = np.unique(meta[:, 0], return_index=True)
        bounds = np.concatenate([first_row, [len(meta)]])
        for k, component in enumerate(components.tolist()):
            rows = slice(bounds[k], bounds[k + 1])
            table = np.concatenate([[0], final[rows]])
            if not table.any():
                continue
            box = np.concatenate([meta[rows, 4:10:2].min(axis=0)[:, None], meta[rows, 5:10:2].max(axis=0)[:, None]],
                                 axis=1).reshape(-1)
            group = keys[int(group_of[bounds[k]])]
            # every block the component's box crosses
            ranges = [range(int(box[2 * a]) // layout.chunks[a], (int(box[2 * a + 1]) - 1) // layout.chunks[a] + 1)
                      for a in range(3)]
            for z in ranges[0]:
                for y in ranges[1]:
                    for x in ranges[2]:
                        items.setdefault((z, y, x), []).append((group, component, box, table))
    name = f"voxseg-paint-{os.path.basename(workspace.path)}-{id(meta):x}"
    graph = {}
    for index in np.ndindex(*grid):
        block = int(np.ravel_multi_index(index, grid))
        graph[(name, *index)] = (paint, workspace, layout.slices(block), items.get(index, []), dtype)
    chunks = tuple(tuple(min(c, n - i * c) for i in range(g)) for c, n, g in zip(layout.chunks, layout.shape, grid))
    hlg = HighLevelGraph.from_collections(name, graph, dependencies=())
    return da.Array(hlg, name, chunks, dtype=dtype)
