"""The chunked run: the in-memory pipeline's steps, one global decision at a time.

:meth:`Engine.run` walks the steps of the pipeline exactly as
:meth:`voxseg.pipeline.Pipeline.run` does (same resolution of ``"auto"``
values, same records), but each step runs as passes over blocks with the
global decisions made in between:

1. ingest: the input is copied block by block into the raw store, with the
   histogram of 8/16-bit data (or, for other types, order statistics by
   selection passes later);
2. image steps (``rescale_intensity``, ``adjust_gamma``) and ``threshold``:
   their percentiles, histogram and threshold value come from those
   reductions; the thresholded mask is a pointwise function of the raw value;
3. mask steps (``fill_holes``, ``remove_small_holes``,
   ``remove_small_objects``): one pass each labels the pieces of every block
   (background or foreground) and the pieces are stitched into components;
   a look-up table over the components makes the next mask level;
4. ``split_touching``: a pass writes the final mask (and the mask the
   distance map comes from) and stitches its components; the diameter is
   estimated, if asked, on the same (reduced) mask as in memory; the
   distance map, smoothed or not, is computed per work block with a
   certified halo; every component is split on its own crop;
5. label steps (``remove_small_objects``, ``clear_border``, ``relabel``)
   filter and number the objects; the labels are painted block by block.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..errors import ParameterError, PipelineError, VolumeTooLargeError
from . import _blocks
from ._blocks import Layout
from ._label import stitch

__all__ = ["Engine", "CHUNKABLE", "check_chunkable"]

#: steps the chunked path runs (with the parameters noted in check_chunkable)
CHUNKABLE = ("rescale_intensity", "adjust_gamma", "threshold", "fill_holes", "remove_small_holes",
             "remove_small_objects", "split_touching", "clear_border", "relabel")

#: target size (voxels per axis) of the work blocks that compute distance maps and split components
WORK_BLOCK = 256

#: components whose crop is larger than this many chunks are split in a task of their own
OWN_TASK_CHUNKS = 1.0


def check_chunkable(pipeline):
    """Raise PipelineError naming the first step that the chunked path cannot run."""
    for index, step in enumerate(pipeline.steps):
        name = step["op"]
        where = pipeline._where(index)
        if name not in CHUNKABLE:
            raise PipelineError(
                f"{where}step {name!r} cannot run chunked (it is not pointwise, nor a step chunked runs "
                f"exactly); chunked pipelines use only {', '.join(CHUNKABLE)}; run this pipeline in memory "
                "(without --chunks)")
        if step.get("save"):
            raise PipelineError(f"{where}save = true is not supported chunked (step {name!r}); remove it")
        if name == "fill_holes" and step.get("planewise"):
            raise PipelineError(f"{where}fill_holes with planewise = true cannot run chunked")
        if name in ("remove_small_holes", "remove_small_objects") and step.get("connectivity", 1) not in (1, 6):
            raise PipelineError(
                f"{where}{name} with connectivity = {step['connectivity']!r} cannot run chunked (only 1, faces)")
    kinds = [step["op"] for step in pipeline.steps]
    if "split_touching" not in kinds:
        raise PipelineError(
            f"{pipeline.source + ': ' if pipeline.source else ''}the chunked path makes labels with "
            "split_touching; this pipeline has no split_touching step")


def _pipeline_operators():
    from ..pipeline import _operators

    return _operators()


def _voxels(volume, spacing, name, factor):
    """A physical volume as the voxel-count threshold of voxseg.morphology (with its rounding tolerance)."""
    from ..morphology import _voxel_threshold

    return _voxel_threshold(volume, spacing, 3, name) * factor


class Engine:
    """One chunked run. See the module docstring."""

    def __init__(self, data, *, spacing, pipeline, layout: Layout, runner, budget, measure=True):
        self.data = data
        self.spacing = spacing
        self.pipeline = pipeline
        self.layout = layout
        self.runner = runner
        self.budget = budget
        self.measure = measure
        self.timings = []
        self.records = {}
        self.stored = set()  # mask levels written to stores
        self.levels = []  # per level >= 1: (background, component table, values)
        self.level0 = None  # recipe of the thresholded mask

    # -- helpers ----------------------------------------------------------------
    def _time(self, name, start):
        """Record a stage: its time and the peak resident memory of this process while it ran."""
        from .._memory import peak_memory, release_free_memory, reset_peak_memory

        self.timings.append((name, time.perf_counter() - start, peak_memory()))
        release_free_memory()  # what the stage freed must not inflate the next stage's peak
        reset_peak_memory()

    def _map(self, func, arguments, desc, batch=False):
        return self.runner.map(func, arguments, desc=desc, batch=batch)

    def _blocks(self):
        return range(self.layout.blocks)

    # -- 1. ingest ----------------------------------------------------------------
    def ingest(self):
        start = time.perf_counter()
        dtype = self.raw_dtype
        self.layout.create("raw", dtype)
        histogram = dtype.kind in "ui" and dtype.itemsize <= 2
        # one task per block that reads it and stores it (map_blocks fuses with the reading of the input)
        copied = self.data.map_blocks(_blocks.ingest_block, layout=self.layout, histogram=histogram, dtype=object,
                                      chunks=(1, 1, 1), meta=np.empty((0, 0, 0), object))
        results = [r[0, 0, 0] for r in self.runner.compute(copied.to_delayed().ravel().tolist(), desc="read")]
        self.histogram = None
        if histogram:
            lo = min(int(r["hist_lo"]) for r in results)
            hi = max(int(r["hist_lo"]) + len(r["hist"]) for r in results)
            counts = np.zeros(hi - lo, np.int64)
            for r in results:
                start_at = int(r["hist_lo"]) - lo
                counts[start_at:start_at + len(r["hist"])] += r["hist"]
            self.histogram = (counts, lo)
        self._time("read", start)

    @property
    def raw_dtype(self):
        dtype = np.dtype(self.data.dtype)
        return np.dtype(np.uint8) if dtype == bool else dtype

    # -- 2. image steps and threshold ----------------------------------------------
    def image_steps(self, steps):
        """Resolve the pointwise steps and the threshold; set the recipe of mask level 0."""
        from .. import exposure
        from .. import threshold as th
        from ..segmentation import foreground
        from ._stats import Multiset

        chain = []
        multiset = None
        if self.histogram is not None:
            counts, lo = self.histogram
            multiset = Multiset.from_histogram(counts, lo, self.raw_dtype)
            base = multiset
        records = {}
        ops = _pipeline_operators()
        for index, name, params in steps:
            start = time.perf_counter()
            try:
                if name == "rescale_intensity":
                    # the step checks its parameters itself: run it on a one-voxel image
                    ops[name].func(np.zeros(1, np.float32), **params)
                    if params.get("in_range") is not None:
                        lo_hi = params["in_range"]
                    else:
                        q = [params.get("low", 0.5), params.get("high", 99.5)]
                        lo_hi = multiset.percentile(q) if multiset is not None else self._percentile(chain, q)
                    lo, hi = (float(v) for v in lo_hi)
                    records[name] = {"in_range": [lo, hi]}
                    step = ("rescale_intensity", {"in_range": (lo, hi)})
                elif name == "adjust_gamma":
                    kwargs = {k: v for k, v in params.items() if k in ("gamma", "gain")}
                    exposure.adjust_gamma(np.zeros(1, np.float32), **kwargs)
                    step = ("adjust_gamma", kwargs)
                else:  # threshold
                    method = params.get("method", "li")
                    value = params.get("value")
                    if value is None:
                        if multiset is not None:
                            hist = multiset.threshold_histogram(th.FLOAT_BINS)
                        else:
                            hist = self._threshold_histogram(chain)
                        value = th.threshold(None, method, hist=hist)
                    dark = params.get("dark_objects", False)
                    records[name] = {"value": float(value)}
                    if multiset is not None:
                        # a look-up table over the raw values (from 0 for unsigned types: indexed by the raw value)
                        lo = 0 if self.raw_dtype.kind == "u" else int(self.histogram[1])
                        lut = np.zeros(int(base.values.max()) - lo + 1, bool)
                        lut[base.values.astype(np.int64) - lo] = foreground(_blocks.apply_chain(base.values, chain),
                                                                            value, dark_objects=dark)
                        self.level0 = {"lut": lut, "lut_lo": lo}
                    else:
                        self.level0 = {"chain": chain, "value": value, "dark_objects": dark}
                    self._time("threshold", start)
                    return records
                chain.append(step)
                if multiset is not None:
                    multiset = multiset.map(lambda v, f=step: _blocks.apply_chain(v, [f]))
            except PipelineError:
                raise
            except (ParameterError, TypeError) as err:
                raise PipelineError(f"{self.pipeline._where(index)}{name}: {err}") from None
            self._time(name, start)
        return records

    def _passes(self, func, extra, desc):
        return self._map(func, [(self.layout, b, *extra) for b in self._blocks()], desc, batch=True)

    def _describe(self, chain):
        parts = self._passes(_blocks.describe, (chain,), "statistics")
        n = sum(p["n"] for p in parts)
        ranges = [p["range"] for p in parts if p["n"]]
        finite = [p["finite"] for p in parts if p["n"] and p["finite"] is not None]
        value_range = (min(r[0] for r in ranges), max(r[1] for r in ranges)) if ranges else None
        finite_range = (min(r[0] for r in finite), max(r[1] for r in finite)) if finite else None
        return n, value_range, finite_range

    def _percentile(self, chain, q):
        """exposure.percentile of the chained image, from order statistics selected over the blocks."""
        from ._stats import MAX_BINCOUNT_SPAN, combine_selections, numpy_percentile, order_statistics

        n, value_range, _ = self._describe(chain)
        if n == 0:
            raise ParameterError("image must contain at least one value that is not NaN")
        dtype = np.dtype(type(value_range[0]))

        def select(requests):
            parts = self._passes(_blocks.select, (chain, requests), "percentiles")
            return combine_selections(parts, requests)

        def statistic(ranks):
            return order_statistics(ranks, value_range, select, dtype)

        arithmetic = dtype
        if dtype.kind in "ui" and int(value_range[1]) - int(value_range[0]) + 1 <= MAX_BINCOUNT_SPAN:
            arithmetic = np.dtype(np.float64)  # as exposure.percentile from its one-bin-per-value histogram
        return numpy_percentile(n, q, statistic, arithmetic)

    def _threshold_histogram(self, chain):
        """threshold.histogram of the chained image, summed over blocks on the bins of the whole."""
        from .. import threshold as th

        _, value_range, finite_range = self._describe(chain)
        integer = value_range is not None and np.asarray(value_range[0]).dtype.kind in "ui"
        if integer:
            bins_range = (int(value_range[0]), int(value_range[1]))
        elif finite_range is not None:
            bins_range = (float(finite_range[0]), float(finite_range[1]))
        else:
            bins_range = (0.0, 1.0)
        parts = self._passes(_blocks.threshold_histogram, (chain, th.FLOAT_BINS, bins_range), "histogram")
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total

    # -- 3. mask steps ------------------------------------------------------------------
    def recipe(self, level, block):
        """What a task needs to make `level` of `block` (None: read the store)."""
        if level in self.stored:
            return None
        if level == 0:
            return self.level0
        background, components, values = self.levels[level - 1]
        return {"background": background, "table": components.block_table(block, values)}

    def label_level(self, level, *, background, stage, name, reduce=None):
        """Label the pieces of mask `level` in every block and stitch them into components."""
        start = time.perf_counter()
        store = level not in self.stored
        if store:
            self.layout.create(f"level{level}", bool)
        arguments = []
        for b in self._blocks():
            spec = {"stage": stage, "level": level, "recipe": self.recipe(level, b), "store": store,
                    "background": background, "reduce": reduce}
            arguments.append((self.layout, b, spec))
        infos = self._map(_blocks.mask_pass, arguments, name, batch=True)
        if store:
            self.stored.add(level)
        components = stitch(infos, self.layout.grid, lambda b: _blocks.load_faces(self.layout, stage, b))
        self._time(name, start)
        return components, infos

    def add_level(self, background, components, values):
        """Mask level n+1: level n where values[component] of its (background or foreground) components."""
        values = np.asarray(values, bool).copy()
        values[0] = False
        self.levels.append((background, components, values))
        return len(self.levels)

    # -- diameter ------------------------------------------------------------------------
    def reduction(self):
        """How estimate_diameter reduces this volume: (factor, reduced shape), factor 1 meaning not at all."""
        from ..segmentation import ESTIMATE_VOXELS

        shape = self.layout.shape
        size = math.prod(shape)
        factor = int(np.ceil((size / ESTIMATE_VOXELS) ** (1 / 3)))
        reduced = tuple(n // factor for n in shape)
        if factor <= 1 or min(reduced) == 0:
            return (1, shape), factor
        return (factor, reduced), factor

    def estimate(self, infos):
        """estimate_diameter of the mask whose blocks returned `infos`, on the same (reduced) mask."""
        from ..segmentation import estimate_diameter

        start = time.perf_counter()
        (factor, shape), raw_factor = self.reduction()
        dtype = bool if factor == 1 else np.int32
        reduced = np.zeros(shape, dtype)
        for info in infos:
            part = info["reduce"]
            origin = info["reduce_origin"]
            region = tuple(slice(int(o), int(o) + n) for o, n in zip(origin, part.shape))
            if factor == 1:
                reduced[region] = part
            else:
                reduced[region] += part
        if factor == 1:
            # the whole mask (small volumes, or a reduction estimate_diameter itself would skip)
            diameter = estimate_diameter(reduced, spacing=self.spacing)
        else:
            mask = reduced * 2 > factor**3
            del reduced
            diameter = estimate_diameter(mask, spacing=tuple(s * raw_factor for s in self.spacing))
        self._time("estimate_diameter", start)
        return diameter

    # -- 4. split -----------------------------------------------------------------------
    def final_mask(self, source_level, reduce):
        """Write the state store for the last mask level and stitch its components."""
        start = time.perf_counter()
        self.layout.create("state", np.uint8)
        level = len(self.levels)
        source = None if source_level is None or source_level == level else source_level
        arguments = []
        for b in self._blocks():
            spec = {"stage": "components", "level": level, "recipe": self.recipe(level, b),
                    "source_level": source, "reduce": reduce}
            arguments.append((self.layout, b, spec))
        infos = self._map(_blocks.state_pass, arguments, "components", batch=True)
        components = stitch(infos, self.layout.grid, lambda b: _blocks.load_faces(self.layout, "components", b))
        self._time("components", start)
        return components, infos

    def work_chunks(self):
        return tuple(min(n, c * max(1, round(WORK_BLOCK / c))) for n, c in zip(self.layout.shape,
                                                                                 self.layout.chunks))

    def split(self, components, params, diameter, filters):
        """Split every component as split_touching does; returns the objects' table and measurements."""
        from ..segmentation import (DEFAULTS, GLOBAL_SMOOTHING_FRACTION, SMOOTHING_TRUNCATE, TINY_COMPONENT,
                                    reduced_crop, split_factor)

        spacing = np.asarray(self.spacing)
        if not np.isfinite(diameter) or diameter <= 0:
            raise ParameterError(f"diameter must be a positive length, got {diameter!r}")
        smoothing = DEFAULTS["smoothing"] if params.get("smoothing") is None else params["smoothing"]
        h = DEFAULTS["h"] if params.get("h") is None else params["h"]
        merge_distance = DEFAULTS["merge_distance"] if params.get("merge_distance") is None \
            else params["merge_distance"]
        shape = np.asarray(self.layout.shape)
        n = components.n
        box = components.box[1:]
        sigma = smoothing * diameter / spacing
        margin = np.ceil(SMOOTHING_TRUNCATE * sigma).astype(int) + 1 if smoothing > 0 else np.ones(3, int)
        factor = split_factor(diameter, spacing) if params.get("reduce", True) else (1, 1, 1)
        crop = np.zeros_like(box)
        if max(factor) > 1:
            # split_touching splits each component on its own reduced crop: no distance map of the volume
            crop[:, 0::2], crop[:, 1::2] = reduced_crop(box[:, 0::2], box[:, 1::2], factor, shape)
        else:
            crop[:, 0::2] = np.maximum(box[:, 0::2] - margin, 0)
            crop[:, 1::2] = np.minimum(box[:, 1::2] + margin, shape)
        # the same test, with the same arithmetic, as split_touching
        small = np.array([np.linalg.norm(np.array([(box[i, 2 * a + 1] - box[i, 2 * a]) * spacing[a]
                                                   for a in range(3)])) < merge_distance * diameter
                          or components.count[i + 1] < TINY_COMPONENT for i in range(n)], dtype=bool)
        crop_voxels = np.prod(crop[:, 1::2] - crop[:, 0::2], axis=1)
        cropped = int(crop_voxels[~small].sum())
        if max(factor) > 1:
            mode = "reduced"
        elif smoothing > 0 and cropped > GLOBAL_SMOOTHING_FRACTION * math.prod(self.layout.shape):
            mode = "smoothed"
        elif smoothing > 0:
            mode = "crop"
        else:
            mode = "plain"
        # a component too large to split whole within the budget is an error, never a split object
        need = crop_voxels * _split_bytes()
        if n and (need[~small] > self.budget).any():
            i = int(np.flatnonzero(~small & (need > self.budget))[np.argmax(need[~small & (need > self.budget)])])
            dims = " x ".join(str(int(d)) for d in box[i, 1::2] - box[i, 0::2])
            raise VolumeTooLargeError(
                f"a connected component of {int(components.count[i + 1])} voxels (bounding box {dims} at "
                f"z, y, x = {', '.join(str(int(v)) for v in box[i, 0::2])}) needs about {need[i] / 1e9:.1f} GB "
                f"to be split whole, more than the memory budget of {self.budget / 1e9:.1f} GB per task; "
                "raise the budget with memory= (CLI: --memory)")
        self.layout.create("field", np.float32)
        if n and not small.all() and mode != "reduced":
            self._distance(components, crop, small, mode, sigma, diameter)
        start = time.perf_counter()
        groups = self._groups(components, crop, small)
        depth, merge_radius = h * diameter, merge_distance * diameter
        arguments = []
        for key, members in groups:
            members = np.asarray(members, np.int64)
            spec = {"ids": members + 1, "box": box[members], "crop": crop[members],
                    "first": components.first[members + 1], "small": small[members], "mode": mode,
                    "sigma": sigma, "depth": depth, "merge_radius": merge_radius,
                    "factor": factor, "smoothing_length": smoothing * diameter,
                    "min_voxels": filters["min_voxels"], "clear_border": filters["clear_border"],
                    "measure": self.measure}
            arguments.append((self.layout, key, spec))
        from ._split import split_group

        results = self._map(split_group, arguments, "split")
        self._time("split_touching", start)
        return [key for key, _ in groups], results

    def _distance(self, components, crop, small, mode, sigma, diameter):
        """Write the field store: the smoothed (or plain) distance map, exact, on the work blocks that need it."""
        start = time.perf_counter()
        shape = np.asarray(self.layout.shape)
        spacing = np.asarray(self.spacing)
        work = np.asarray(self.work_chunks())
        grid = np.ceil(shape / work).astype(int)
        from ..segmentation import SMOOTHING_TRUNCATE

        # scipy's gaussian_filter reaches int(truncate * sigma + 0.5) voxels along each axis
        radius = np.array([int(SMOOTHING_TRUNCATE * float(s) + 0.5) for s in sigma]) if mode == "smoothed" \
            else np.zeros(3, int)
        needed = crop[~small]
        # a component's voxels are at most this far from the background (a line from a voxel leaves the
        # component within its bounding box, onto background; the volume faces are not background)
        box = components.box[1:]
        bound = _distance_bound(box, shape, spacing)
        arguments = []
        for key in range(int(np.prod(grid))):
            position = np.array(np.unravel_index(key, tuple(grid)))
            lo = position * work
            hi = np.minimum(lo + work, shape)
            if not _intersects(needed, lo, hi).any():
                continue
            need_lo, need_hi = np.maximum(lo - radius, 0), np.minimum(hi + radius, shape)
            touching = _intersects(box, need_lo, need_hi)
            reach = float(bound[touching].max()) if touching.any() else 0.0
            if not math.isfinite(reach):
                reach = float(diameter)
            halo = np.ceil(reach / spacing).astype(np.int64) + 2
            spec = {"lo": lo, "hi": hi, "radius": radius, "halo": halo,
                    "sigma": sigma if mode == "smoothed" else None, "budget": self.budget}
            arguments.append((self.layout, key, spec))
        self._map(_blocks.distance_pass, arguments, "distance")
        self._time("distance", start)

    def _groups(self, components, crop, small):
        """Components grouped by the chunk of their first corner; those with a crop larger than a chunk alone."""
        chunks = np.asarray(self.layout.chunks)
        box = components.box[1:]
        owner = np.ravel_multi_index(tuple((box[:, 0::2] // chunks).T), self.layout.grid) if len(box) \
            else np.zeros(0, int)
        extent = crop[:, 1::2] - crop[:, 0::2]
        # large or long crops would make the group's region large: they go alone
        alone = (np.prod(extent, axis=1) > OWN_TASK_CHUNKS * np.prod(chunks)) | (extent > 2 * chunks).any(axis=1)
        groups = []
        for key in np.unique(owner[~alone]):
            groups.append((f"b{int(key)}", np.flatnonzero((owner == key) & ~alone)))
        for i in np.flatnonzero(alone):
            groups.append((f"c{int(i) + 1}", np.array([i])))
        return groups


def _split_bytes():
    from ._split import SPLIT_BYTES_PER_VOXEL

    return SPLIT_BYTES_PER_VOXEL


def _intersects(boxes, lo, hi):
    """Which boxes (z0, z1, y0, y1, x0, x1) overlap the region [lo, hi)."""
    if len(boxes) == 0:
        return np.zeros(0, bool)
    return ((boxes[:, 0::2] < np.asarray(hi)) & (boxes[:, 1::2] > np.asarray(lo))).all(axis=1)


def _distance_bound(box, shape, spacing):
    """Largest distance to the background any voxel of each component can have (inf if unbounded)."""
    extent = box[:, 1::2] - box[:, 0::2]
    at_lo = box[:, 0::2] == 0
    at_hi = box[:, 1::2] == np.asarray(shape)
    steps = np.where(at_lo & at_hi, np.inf, np.where(at_lo | at_hi, extent, (extent + 1) // 2 + 1))
    return (steps * spacing).min(axis=1) if len(box) else np.zeros(0)


# -- the walk over the steps ------------------------------------------------------------


def _round(value):
    from ..pipeline import _round as round_resolved

    return round_resolved(value)


def run(engine: Engine, progress=None):
    """Run the pipeline's steps chunked, resolving "auto" values as Pipeline.run does.

    Returns ``((group keys, split results), numbering plan, resolved pipeline, records)``.
    """
    from ..pipeline import Pipeline, _operators
    from ..segmentation import DEFAULTS, sphere_volume

    pipeline = engine.pipeline
    check_chunkable(pipeline)
    ops = _operators()
    steps = [(i, s["op"], {k: v for k, v in s.items() if k not in ("op", "save")}) for i, s in
             enumerate(pipeline.steps)]
    total = len(steps)

    def announce(index, name):
        if progress is not None:
            progress(index, total, name)

    announce(0, "read")
    engine.ingest()
    threshold_at = next(i for i, (_, name, _) in enumerate(steps) if name == "threshold")
    image = steps[:threshold_at + 1]
    resolved = [{"op": name, **params} for _, name, params in image]
    announce(0, "threshold")
    records = engine.image_steps(image)
    diameter = pipeline.diameter
    distance_level = None  # the mask level whose distance map the split reuses (diameter estimated)
    rest = steps[threshold_at + 1:]
    split_result = None
    position = 0
    while position < len(rest):
        index, name, params = rest[position]
        op = ops[name]
        announce(index, name)
        params = dict(params)
        needs_diameter = any(params.get(k, "auto") == "auto" for k in op.auto)
        estimate_here = needs_diameter and diameter == "auto"
        level = len(engine.levels)
        try:
            if name == "split_touching":
                reduce = engine.reduction()[0] if estimate_here else None
                source = distance_level
                if estimate_here:
                    source = level
                components, infos = engine.final_mask(source, reduce)
                if estimate_here:
                    diameter = _resolve_estimate(engine.estimate(infos), engine.spacing)
                    records["diameter_estimated"] = True
                if params.get("diameter", "auto") == "auto":
                    params["diameter"] = float(diameter)
                resolved.append({"op": name, **params})
                # the steps on labels only filter and number objects: resolve them now
                filters, label_steps = _label_filters(rest[position + 1:], diameter, engine.spacing, ops,
                                                      pipeline)
                split_result = engine.split(components, params, params["diameter"], filters)
                resolved.extend(label_steps)
                numbering = filters["plan"]
                break
            # a mask step: label the current mask (background for holes), stitch, decide per component
            background = name in ("fill_holes", "remove_small_holes")
            reduce = engine.reduction()[0] if estimate_here else None
            components, infos = engine.label_level(level, background=background, stage=f"step{index + 1}",
                                                   name=name, reduce=reduce)
            if estimate_here:
                diameter = _resolve_estimate(engine.estimate(infos), engine.spacing)
                records["diameter_estimated"] = True
                distance_level = level
            if "min_volume" in op.auto and params.get("min_volume", "auto") == "auto":
                params["min_volume"] = _round(DEFAULTS["noise_volume"] * sphere_volume(float(diameter)))
            if name == "fill_holes":
                values = ~components.touches_border(engine.layout.shape)
            elif name == "remove_small_holes":
                limit = _voxels(params["max_volume"], engine.spacing, "max_volume", 1 + 1e-9)
                values = (components.count <= limit) & ~components.touches_border(engine.layout.shape)
            else:
                limit = _voxels(params["min_volume"], engine.spacing, "min_volume", 1 - 1e-9)
                values = np.ones(components.n + 1, bool) if limit <= 1 else components.count >= limit
            engine.add_level(background, components, values)
            resolved.append({"op": name, **params})
            if name != "remove_small_objects":
                distance_level = None
        except PipelineError:
            raise
        except (ParameterError, TypeError) as err:
            raise PipelineError(f"{pipeline._where(index)}{name}: {err}") from None
        position += 1
    records.setdefault("diameter_estimated", False)
    resolved_pipeline = Pipeline(resolved, diameter=float(diameter) if diameter != "auto" else "auto")
    return split_result, numbering, resolved_pipeline, records


def _resolve_estimate(diameter, spacing):
    if not math.isfinite(diameter):  # nothing in the foreground: any size will do
        diameter = float(max(spacing) * 2)
    return _round(diameter)


def _label_filters(steps, diameter, spacing, ops, pipeline):
    """The object filters of the steps after split_touching, and those steps resolved."""
    from ..segmentation import DEFAULTS, sphere_volume

    min_voxels, clear_border, resolved, plan = [], False, [], []
    for index, name, params in steps:
        op = ops[name]
        params = dict(params)
        if "min_volume" in op.auto and params.get("min_volume", "auto") == "auto" and diameter == "auto":
            raise PipelineError(
                f"{pipeline._where(index)}{name}: the chunked path cannot estimate the diameter from labels; "
                "give the pipeline a diameter (or min_volume a value)")
        try:
            if "min_volume" in op.auto and params.get("min_volume", "auto") == "auto":
                params["min_volume"] = _round(DEFAULTS["min_volume"] * sphere_volume(float(diameter)))
            if name == "remove_small_objects":
                limit = _voxels(params["min_volume"], spacing, "min_volume", 1 - 1e-9)
                if limit > 1:
                    min_voxels.append(limit)
                    plan.append(("remove", limit))
            elif name == "clear_border":
                clear_border = True
                plan.append(("clear_border", None))
            else:
                plan.append(("relabel", None))
        except (ParameterError, TypeError) as err:
            raise PipelineError(f"{pipeline._where(index)}{name}: {err}") from None
        resolved.append({"op": name, **params})
    return {"min_voxels": min_voxels, "clear_border": clear_border, "plan": plan}, resolved


def number_objects(meta, plan, shape):
    """Final label of every object (0: removed) and the label type, as the steps on labels leave them.

    `meta` rows: component, local id, voxels, first voxel, box (6), alive.
    split_touching numbers all objects by their first voxel; each
    remove_small_objects zeroes objects (leaving gaps), clear_border and
    relabel renumber the survivors by their first voxel.
    """
    n = len(meta)
    voxels, first, box = meta[:, 2], meta[:, 3], meta[:, 4:10]
    order = np.argsort(first, kind="stable")

    def canonical(alive):
        ids = np.zeros(n, np.int64)
        ranked = order[alive[order]]
        ids[ranked] = np.arange(1, ranked.size + 1)
        return ids, np.dtype(np.uint16 if ranked.size < 2**16 else np.uint32)

    alive = np.ones(n, bool)
    ids, dtype = canonical(alive)
    touches = (box[:, 0::2] == 0).any(axis=1) | (box[:, 1::2] == np.asarray(shape)).any(axis=1) if n \
        else np.zeros(0, bool)
    for kind, limit in plan:
        if kind == "remove":
            alive &= voxels >= limit
        else:
            if kind == "clear_border":
                alive &= ~touches
            ids, dtype = canonical(alive)
    return np.where(alive, ids, 0), dtype
