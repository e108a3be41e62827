"""The per-block tasks of a chunked run, and where they keep their data.

Every task reads what it needs from the stores in the run's working folder
(one file per chunk, LZ4-compressed with Blosc: no Zarr metadata round trips
for the many small reads of a run), writes its share of the next store, and
saves its small result (statistics, face planes) in a file of its own. A task
whose result file exists returns it without recomputing: that is how a
killed run resumes. The tasks call the same functions as the in-memory recipe
(:mod:`voxseg.exposure`, :func:`voxseg.segmentation.foreground`, the ``edt``
distance transform, :func:`scipy.ndimage.gaussian_filter` with the recipe's
settings) on regions where their result is provably the one on the whole
volume.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass

import numpy as np

from ..errors import VolumeTooLargeError
from ._label import label_block

__all__ = ["Layout"]

#: bytes per voxel the distance task holds (mask, state, map, smoothed map, temporaries)
DISTANCE_BYTES_PER_VOXEL = 24


@dataclass(frozen=True)
class Layout:
    """Shape, chunking and working folder of a chunked run (small, picklable)."""

    workdir: str
    shape: tuple
    chunks: tuple
    spacing: tuple

    @property
    def grid(self) -> tuple:
        return tuple(math.ceil(n / c) for n, c in zip(self.shape, self.chunks))

    @property
    def blocks(self) -> int:
        return math.prod(self.grid)

    def origin(self, block: int) -> tuple:
        return tuple(int(i * c) for i, c in zip(np.unravel_index(block, self.grid), self.chunks))

    def slices(self, block: int) -> tuple:
        return tuple(slice(o, min(o + c, n)) for o, c, n in zip(self.origin(block), self.chunks, self.shape))

    def path(self, *parts) -> str:
        return os.path.join(self.workdir, *parts)

    def create(self, name, dtype):
        """Create (or, when resuming, keep) the store `name`: one file per chunk of the run's grid."""
        folder = self.path(name)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "dtype"), "w", encoding="utf-8") as f:
            f.write(np.dtype(dtype).str)

    def _dtype(self, name):
        with open(self.path(name, "dtype"), encoding="utf-8") as f:
            return np.dtype(f.read())

    def read(self, name, region):
        """The voxels of store `name` in `region` (a tuple of slices); chunks never written read as 0."""
        dtype = self._dtype(name)
        region = tuple(slice(s.start or 0, n if s.stop is None else s.stop) for s, n in zip(region, self.shape))
        out = np.zeros(tuple(s.stop - s.start for s in region), dtype)
        ranges = [range(s.start // c, (s.stop - 1) // c + 1) for s, c in zip(region, self.chunks)]
        for index in itertools.product(*ranges):
            block = int(np.ravel_multi_index(index, self.grid))
            chunk = _read_chunk(self.path(name, str(block)), dtype, self.slices(block))
            if chunk is None:
                continue
            src, dst = [], []
            for axis, (s, c) in enumerate(zip(region, self.slices(block))):
                a, b = max(s.start, c.start), min(s.stop, c.stop)
                src.append(slice(a - c.start, b - c.start))
                dst.append(slice(a - s.start, b - s.start))
            out[tuple(dst)] = chunk[tuple(src)]
        return out

    def write(self, name, region, data):
        """Write `data` to `region` of store `name`; the region is made of whole chunks."""
        dtype = self._dtype(name)
        ranges = [range(s.start // c, (s.stop - 1) // c + 1) for s, c in zip(region, self.chunks)]
        for index in itertools.product(*ranges):
            block = int(np.ravel_multi_index(index, self.grid))
            part = tuple(slice(c.start - s.start, c.stop - s.start) for s, c in zip(region, self.slices(block)))
            _write_chunk(self.path(name, str(block)), np.asarray(data[part], dtype=dtype))

    def result(self, stage, key) -> str:
        return self.path(stage, f"{key}.npz")


def _codec(dtype):
    """Blosc (LZ4, fast) for masks, labels and integers; floats (the distance map) barely compress: none."""
    if dtype.kind == "f":
        return None
    from numcodecs import Blosc

    return Blosc(cname="lz4", clevel=1, shuffle=Blosc.BITSHUFFLE if dtype.itemsize == 1 else Blosc.SHUFFLE)


def _write_chunk(path, data):
    data = np.ascontiguousarray(data)
    codec = _codec(data.dtype)
    payload = data.tobytes() if codec is None else codec.encode(data)
    with open(path, "wb") as f:
        f.write(payload)


def _read_chunk(path, dtype, region):
    try:
        with open(path, "rb") as f:
            payload = f.read()
    except FileNotFoundError:
        return None
    codec = _codec(dtype)
    raw = payload if codec is None else codec.decode(payload)
    return np.frombuffer(raw, dtype).reshape(tuple(s.stop - s.start for s in region))


def save(path, **arrays):
    """Write a result file atomically (a killed task leaves no half file)."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}-{id(arrays)}.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load(path) -> dict | None:
    if not os.path.exists(path):
        return None
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def _info_arrays(info):
    return {"n": np.int64(info["n"]), "count": info["count"], "box": info["box"], "first": info["first"]}


def _unpack_info(data):
    out = dict(data)
    out["n"] = int(out["n"])
    return out


# -- the raw volume ------------------------------------------------------------


def prepare(block):
    """A block of the input as the recipe reads it (booleans as uint8, the view voxseg.exposure takes)."""
    data = np.asarray(block)
    if data.dtype == bool:
        data = data.view(np.uint8)
    return np.ascontiguousarray(data)


def ingest(block, layout, index, histogram):
    """Copy one block of the input into the raw store; the histogram of 8/16-bit data."""
    from .. import exposure

    path = layout.result("ingest", index)
    done = load(path)
    if done is not None:
        return done
    data = prepare(block)
    layout.write("raw", layout.slices(index), data)
    out = {}
    if histogram:
        counts, values = exposure.histogram(data, source_range="dtype")
        nonzero = np.flatnonzero(counts)
        out["hist"] = counts[nonzero[0]:nonzero[-1] + 1]
        out["hist_lo"] = np.int64(values[nonzero[0]])
    save(path, **out)
    return out


def ingest_block(block, layout=None, histogram=False, block_info=None):
    """:func:`ingest` as a map_blocks function: its result in a (1, 1, 1) object array."""
    info = block_info[0]
    index = int(np.ravel_multi_index(info["chunk-location"], info["num-chunks"]))
    out = np.empty((1, 1, 1), object)
    out[0, 0, 0] = ingest(block, layout, index, histogram)
    return out


def read_raw(layout, region):
    return layout.read("raw", region)


def apply_chain(data, chain):
    """The pointwise image steps, as the pipeline runs them (exposure functions, resolved parameters)."""
    from .. import exposure

    for name, kwargs in chain:
        data = getattr(exposure, name)(data, **kwargs)
    return data


def level_zero(raw, recipe):
    """The thresholded mask of a raw block."""
    if "lut" in recipe:
        lut, lo = recipe["lut"], recipe["lut_lo"]
        return lut[raw] if lo == 0 and raw.dtype.kind == "u" else lut[raw.astype(np.int32) - lo]
    from ..segmentation import foreground

    return foreground(apply_chain(raw, recipe["chain"]), recipe["value"], dark_objects=recipe["dark_objects"])


def chain_values(layout, index, chain):
    """The image a block holds after the pointwise steps `chain`, flattened, NaN removed."""
    values = apply_chain(read_raw(layout, layout.slices(index)), chain).reshape(-1)
    if values.dtype.kind == "f":
        values = values[~np.isnan(values)]
    return values


def describe(layout, index, chain):
    """Count, extent and finite extent of one block of the chained image."""
    values = chain_values(layout, index, chain)
    out = {"n": values.size}
    if values.size:
        out["range"] = (values.min(), values.max())
        finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        out["finite"] = (finite.min(), finite.max()) if finite.size else None
    return out


def select(layout, index, chain, requests):
    from ._stats import select_block

    return select_block(chain_values(layout, index, chain), requests)


def threshold_histogram(layout, index, chain, nbins, value_range):
    from .. import threshold as th

    data = apply_chain(read_raw(layout, layout.slices(index)), chain)
    return th.histogram(data, nbins=nbins, value_range=value_range)


# -- masks and their components --------------------------------------------------


def get_level(layout, index, level, recipe):
    """The block of mask level `level`: from its store, or made from the level before with `recipe`."""
    region = layout.slices(index)
    if recipe is None:
        return layout.read(f"level{level}", region)
    if level == 0:
        return level_zero(read_raw(layout, region), recipe)
    import cc3d

    previous = layout.read(f"level{level - 1}", region)
    target = ~previous if recipe["background"] else previous
    labels = cc3d.connected_components(np.ascontiguousarray(target), connectivity=6)
    table = recipe["table"]
    if recipe["background"]:
        return previous | table[labels]
    return table[labels]


def _reduction(mask, origin, reduce):
    """Majority-vote partial counts of the block (see voxseg.segmentation._reduce_mask), or the block itself."""
    factor, shape = reduce
    if factor == 1:
        return {"reduce_origin": np.asarray(origin, np.int64), "reduce": mask}
    counts = mask.view(np.uint8)
    cells = []
    for axis in (2, 1, 0):
        o, size = origin[axis], mask.shape[axis]
        starts = [t for t in range(size) if (o + t) % factor == 0]
        if not starts or starts[0] != 0:
            starts = [0] + starts
        counts = np.add.reduceat(counts, starts, axis=axis, dtype=np.int32)
        cells.insert(0, np.array([(o + t) // factor for t in starts]))
    keep = [c < n for c, n in zip(cells, shape)]
    counts = counts[np.ix_(*keep)]
    lo = [int(c[k][0]) if k.any() else 0 for c, k in zip(cells, keep)]
    return {"reduce_origin": np.asarray(lo, np.int64), "reduce": counts}


def mask_pass(layout, index, spec):
    """Label one block of a mask level (foreground or background pieces) for a mask step."""
    path = layout.result(spec["stage"], index)
    done = load(path)
    if done is not None:
        return _unpack_info(done)
    mask = get_level(layout, index, spec["level"], spec["recipe"])
    if spec["store"]:
        layout.write(f"level{spec['level']}", layout.slices(index), mask)
    origin = layout.origin(index)
    _, info = label_block(mask, background=spec["background"], origin=origin, shape=layout.shape)
    save(layout.result(spec["stage"] + "-faces", index), **info["faces"])
    out = _info_arrays(info)
    if spec.get("reduce"):
        out.update(_reduction(mask, origin, spec["reduce"]))
    save(path, **out)
    return _unpack_info(out)


def state_pass(layout, index, spec):
    """Write the state store (0 background, 1 distance source only, 2 final mask) and label the final mask."""
    path = layout.result(spec["stage"], index)
    done = load(path)
    if done is not None:
        return _unpack_info(done)
    final = get_level(layout, index, spec["level"], spec["recipe"])
    source = final
    if spec["source_level"] is not None:
        source = layout.read(f"level{spec['source_level']}", layout.slices(index))
    state = final.astype(np.uint8) * 2
    state |= (source & ~final).astype(np.uint8)
    layout.write("state", layout.slices(index), state)
    origin = layout.origin(index)
    _, info = label_block(final, background=False, origin=origin, shape=layout.shape)
    save(layout.result(spec["stage"] + "-faces", index), **info["faces"])
    out = _info_arrays(info)
    if spec.get("reduce"):
        out.update(_reduction(final, origin, spec["reduce"]))
    save(path, **out)
    return _unpack_info(out)


def load_faces(layout, stage, index):
    return load(layout.result(stage + "-faces", index))


# -- distance map -----------------------------------------------------------------


def distance_transform(mask, spacing):
    """voxseg.segmentation.distance_transform on one thread (a task is one unit of parallelism; same values)."""
    import edt

    return edt.edt(np.asarray(mask, dtype=bool).view(np.uint8), anisotropy=spacing, black_border=False,
                   parallel=1).astype(np.float32, copy=False)


def distance_pass(layout, key, spec):
    """Distance map (smoothed or not) of one work block, exact: computed with a certified halo.

    The map at a foreground voxel depends on the mask within that distance
    only. The map is computed on the block grown by the smoothing radius and
    by a halo; a voxel whose value does not exceed what the halo can see
    (volume faces aside: there the whole volume ends too) has its exact
    value. If any voxel needed is not certified, the halo grows to cover the
    largest value found, which certifies all of them.
    """
    from scipy import ndimage as ndi

    from ..segmentation import SMOOTHING_TRUNCATE

    path = layout.result("distance", key)
    if os.path.exists(path):
        return load(path)
    lo, hi = np.asarray(spec["lo"]), np.asarray(spec["hi"])
    shape = np.asarray(layout.shape)
    spacing = np.asarray(layout.spacing)
    radius = np.asarray(spec["radius"])
    need_lo, need_hi = np.maximum(lo - radius, 0), np.minimum(hi + radius, shape)
    halo = np.asarray(spec["halo"])
    while True:
        outer_lo, outer_hi = np.maximum(need_lo - halo, 0), np.minimum(need_hi + halo, shape)
        voxels = int(np.prod(outer_hi - outer_lo))
        if voxels * DISTANCE_BYTES_PER_VOXEL > spec["budget"]:
            raise VolumeTooLargeError(
                f"the distance map around voxels {tuple(lo.tolist())}..{tuple(hi.tolist())} needs a margin of "
                f"{tuple(halo.tolist())} voxels, i.e. about {voxels * DISTANCE_BYTES_PER_VOXEL / 1e9:.1f} GB, "
                f"more than the memory budget of {spec['budget'] / 1e9:.1f} GB per task (an object is very "
                "thick); raise the budget with memory= (CLI: --memory)")
        outer = tuple(slice(a, b) for a, b in zip(outer_lo, outer_hi))
        state = layout.read("state", outer)
        source = state >= 1
        if source.any():
            distance = distance_transform(source, layout.spacing)
            distance[state != 2] = 0  # as the pipeline zeroes the map outside the final mask
        else:
            distance = np.zeros(state.shape, np.float32)
        del state, source
        inner = tuple(slice(a - o, b - o) for a, b, o in zip(need_lo, need_hi, outer_lo))
        top = float(distance[inner].max()) if distance[inner].size else 0.0
        reach = math.inf
        for axis in range(3):
            if outer_lo[axis] > 0:
                reach = min(reach, (need_lo[axis] - outer_lo[axis] - 1) * spacing[axis])
            if outer_hi[axis] < shape[axis]:
                reach = min(reach, (outer_hi[axis] - need_hi[axis] - 1) * spacing[axis])
        if top <= reach:
            break
        halo = np.ceil(top / spacing).astype(np.int64) + 2
    if spec["sigma"] is not None:
        field = ndi.gaussian_filter(distance[inner], spec["sigma"], mode="nearest", truncate=SMOOTHING_TRUNCATE)
        region = tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, need_lo))
    else:
        field = distance
        region = tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, outer_lo))
    layout.write("field", tuple(slice(int(a), int(b)) for a, b in zip(lo, hi)), field[region])
    out = {"halo": halo}
    save(path, **out)
    return out
