"""Declarative pipelines: an ordered list of steps, read from and written to TOML.

A pipeline file looks like::

    [pipeline]
    diameter = "auto"        # expected object diameter, in the spacing's unit

    [[steps]]
    op = "rescale_intensity"
    low = 0.5
    high = 99.5

    [[steps]]
    op = "threshold"
    method = "li"

Each step names an operator of the registry (:data:`OPERATORS`) and its
parameters; lengths are in the unit of the volume's spacing. The value
``"auto"`` (for ``diameter`` and ``min_volume``) is resolved from the data
when the pipeline runs, and :attr:`PipelineResult.pipeline` holds the
resolved pipeline, so saving it and running it again gives identical labels.
"""

from __future__ import annotations

import difflib
import inspect
import math
import time
import tomllib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ._memory import end_step, peak_memory, reset_peak_memory
from .errors import ParameterError, PipelineError
from .volume import as_spacing

__all__ = ["Operator", "OPERATORS", "Pipeline", "PipelineResult", "default_pipeline", "register"]

#: what flows between steps
KINDS = ("image", "mask", "labels")


@dataclass(frozen=True)
class Operator:
    """A pipeline step: `func(data, **params)` turning `takes` into `gives`."""

    name: str
    func: Callable
    takes: tuple[str, ...]
    gives: str | None  # None: same kind as the input
    spacing: bool = True  # pass spacing= to func
    auto: tuple[str, ...] = ()  # parameters that accept "auto"
    doc: str = ""
    context: tuple[str, ...] = ()  # values the runner may pass besides the parameters (not in files)

    def parameters(self) -> dict[str, inspect.Parameter]:
        sig = inspect.signature(self.func)
        skip = {"spacing", *self.context}
        params = list(sig.parameters.values())[1:]  # the first is the data
        return {p.name: p for p in params if p.name not in skip and p.kind is not p.VAR_KEYWORD}


OPERATORS: dict[str, Operator] = {}


#: what a step may hand to the next one about its output, when it knows it cheaply: the histogram (of
#: 8/16-bit rescaled data), the grey levels of such data with the value the rescale gives each (see
#: `deferred` below), the labelled face-connected components of a mask with their sizes, and the voxels and
#: the bounding box of each label of labels numbered in raster order of their first voxel (0 and None for
#: the gaps). What the last step hands is kept in the result (:attr:`PipelineResult.handed`).
HANDED = ("histogram", "levels", "components", "sizes", "boxes")

# A step with "deferred" in its context is told (deferred=True) when the next step takes "levels": it may
# then hand those instead of making its output volume, which that next step does not read.


def register(name, func, takes=("image",), gives=None, *, spacing=True, auto=(), doc="", context=()):
    """Add an operator to the registry under `name`."""
    OPERATORS[name] = Operator(name, func, tuple(takes), gives, spacing, tuple(auto), doc, tuple(context))


def _rescale_step(image, *, low=0.5, high=99.5, in_range=None, deferred=False):
    """Percentile rescale to [0, 1]; records the input values mapped to 0 and 1.

    For 8/16-bit data it also hands the histogram of its output to the next
    step (``"histogram"``), derived from the one count of the input voxels;
    and when `deferred`, the input with the value of each of its grey levels
    (``"levels"``) instead of the rescaled volume (the output is None).
    """
    from . import threshold as th
    from .exposure import percentile, rescale_intensity

    image = np.asarray(image)
    counted = image.dtype.kind in "ui" and image.dtype.itemsize <= 2 and image.size > 0
    hist = th.histogram(image) if counted else None
    if in_range is None:
        in_range = percentile(image, [low, high], hist=None if hist is None else (hist.counts, hist.centers))
    elif not (isinstance(in_range, (list, tuple)) and len(in_range) == 2):
        raise ParameterError(f"in_range must be two numbers [low, high], got {in_range!r}")
    lo, hi = (float(v) for v in in_range)
    records = {"in_range": [lo, hi]}
    if hist is not None:
        # each grey level mapped by the same arithmetic as the voxels
        mapped = rescale_intensity(hist.centers.astype(image.dtype), in_range=(lo, hi))
        records["histogram"] = th.histogram_of_mapped(hist, mapped)
        if deferred:
            records["levels"] = (image, int(hist.centers[0]), mapped)
            return None, records
    return rescale_intensity(image, in_range=(lo, hi)), records


def _threshold_step(image, method="li", *, dark_objects=False, value=None, histogram=None, levels=None):
    """Global threshold; records the value it used.

    With `levels` ``(raw, first, mapped)`` the image (None) is ``f(raw)``
    and ``mapped[i]`` is ``f(first + i)``: the mask is read from the grey
    levels of `raw` that ``f`` puts in the foreground.
    """
    from . import threshold as th
    from .segmentation import foreground

    if value is None:
        value = th.threshold(image, method, hist=histogram)
    if levels is not None:
        raw, first, mapped = levels
        mask = _mask_of_levels(raw, first, foreground(mapped, value, dark_objects=dark_objects))
    else:
        mask = foreground(image, value, dark_objects=dark_objects)
    return mask, {"value": float(value)}


def _mask_of_levels(raw, first, table):
    """``table[raw - first]``: one comparison when `table` is a step (a monotone map's foreground is one)."""
    on = np.flatnonzero(table)
    if on.size == 0:
        return np.zeros(raw.shape, dtype=bool)
    if on.size == table.size:
        return np.ones(raw.shape, dtype=bool)
    if on[-1] == table.size - 1 and on.size == table.size - on[0]:  # off below a level, on from it
        return raw >= first + int(on[0])
    if on[0] == 0 and on.size == on[-1] + 1:  # on up to a level, off above it
        return raw <= first + int(on[-1])
    from .morphology import _look_up

    return _look_up(table, np.subtract(raw, first, dtype=np.intp))


def _remove_small(data, min_volume="auto", *, spacing=None, sizes=None, boxes=None):
    """remove_small_objects, handing over what it knows of its output.

    On a mask it hands its kept components to the next step
    (``"components"``); on labels of known `sizes` (numbered in raster order,
    see :meth:`Pipeline.run`) it needs no count, and hands the sizes (and
    the `boxes`, if known) on.
    """
    from .morphology import _min_voxels, _remove_small_components, remove_small_objects

    data = np.asarray(data)
    if data.ndim not in (2, 3):
        return remove_small_objects(data, min_volume, spacing=spacing)  # which says what is wrong
    threshold = _min_voxels(min_volume, spacing, data.ndim)
    if data.dtype != bool and sizes is not None:
        from .morphology import _look_up

        small = np.flatnonzero((sizes < threshold) & (sizes > 0))
        known = {"boxes": boxes} if boxes is not None else {}
        if small.size == 0:
            return data, {"sizes": sizes, **known}
        kept = sizes.copy()
        kept[small] = 0
        if boxes is not None:
            known["boxes"] = [None if kept[i] == 0 else box for i, box in enumerate(boxes)]
        table = np.arange(len(sizes), dtype=data.dtype)  # the sizes cover every label
        table[small] = 0
        return _look_up(table, data), {"sizes": kept, **known}
    if data.dtype != bool or threshold <= 1:
        return remove_small_objects(data, min_volume, spacing=spacing)
    out, labels, counts = _remove_small_components(data, threshold, 1, numbered=True)
    return out, {"components": (labels, counts)}


def _split(mask, *, spacing=None, diameter="auto", smoothing=None, h=None, merge_distance=None, reduce=True,
           distance=None, components=None):
    from .segmentation import _split_touching

    # a distance map handed over by the runner is scratch: it may be smoothed in place
    labels, sizes, boxes = _split_touching(mask, spacing=spacing, diameter=diameter, smoothing=smoothing, h=h,
                                           merge_distance=merge_distance, distance=distance,
                                           overwrite_distance=distance is not None, reduce=reduce,
                                           components=components)
    return (labels, {"sizes": sizes, "boxes": boxes}) if sizes is not None else labels


def _relabel(labels, sizes=None, boxes=None):
    """relabel_canonical; on labels of known `sizes` (see HANDED) only the gaps are closed, and the
    sizes (and the `boxes`, if known) of the new labels are handed on."""
    from .segmentation import relabel_canonical

    if sizes is None or labels.dtype.kind not in "ui":
        return relabel_canonical(labels)
    # numbered in raster order already: only the gaps of removed labels to close, keeping the order
    present = sizes > 0
    present[0] = False
    count = int(present.sum())
    known = {"sizes": np.concatenate([[0], sizes[present]])}
    if boxes is not None:
        known["boxes"] = [None] + [box for box, kept in zip(boxes, present) if kept]
    if count == len(sizes) - 1:
        return labels, known
    from .morphology import _look_up

    lut = np.zeros(len(sizes), dtype=np.uint16 if count < 2**16 else np.uint32)
    lut[present] = np.arange(1, count + 1)
    return _look_up(lut, labels), known


def _clear_border(labels):
    from .segmentation import clear_border, relabel_canonical

    return relabel_canonical(clear_border(labels))


def _register_defaults():
    from . import edges, exposure, filters, morphology

    register("rescale_intensity", _rescale_step, spacing=False, context=("deferred",),
             doc="stretch intensities to [0, 1] between two percentiles")
    register("adjust_gamma", exposure.adjust_gamma, spacing=False)
    register("equalize_hist", exposure.equalize_hist, spacing=False)
    register("equalize_adapthist", exposure.equalize_adapthist)
    register("gaussian", filters.gaussian)
    register("median", filters.median)
    register("bilateral", filters.bilateral)
    register("non_local_means", filters.non_local_means)
    register("unsharp_mask", filters.unsharp_mask)
    register("white_tophat", filters.white_tophat)
    register("subtract_background", filters.subtract_background)
    for name in ("sobel", "scharr", "prewitt"):
        register(name, getattr(edges, name))
    for name in ("erosion", "dilation", "opening", "closing"):
        register(name, getattr(morphology, name), takes=("image", "mask"))
    register("despeckle", morphology.despeckle, takes=("image", "mask"))
    register("threshold", _threshold_step, gives="mask", spacing=False, context=("histogram", "levels"))
    register("fill_holes", morphology.fill_holes, takes=("mask",), spacing=False)
    register("remove_small_holes", morphology.remove_small_holes, takes=("mask",))
    register("remove_small_objects", _remove_small, takes=("mask", "labels"), auto=("min_volume",),
             context=("sizes", "boxes"))
    register("split_touching", _split, takes=("mask",), gives="labels", auto=("diameter",),
             context=("distance", "components"))
    register("clear_border", _clear_border, takes=("labels",), spacing=False)
    register("relabel", _relabel, takes=("labels",), spacing=False, context=("sizes", "boxes"))


def _operators():
    if not OPERATORS:
        _register_defaults()
    return OPERATORS


#: parameters that are lengths, volumes or factors wherever they appear: numbers (or one per axis)
NUMERIC_PARAMETERS = frozenset({
    "sigma", "radius", "kernel_size", "sigma_spatial", "sigma_range", "patch_size", "patch_distance", "h",
    "amount", "min_volume", "max_volume", "diameter", "gamma", "gain", "clip_limit", "factors", "scale",
    "target", "low", "high", "smoothing", "merge_distance", "truncate", "in_range", "value",
})


def _is_number_or_numbers(value) -> bool:
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if isinstance(value, list):
        return bool(value) and all(number(v) for v in value)
    return number(value) or value == "auto"


def _round(value: float, digits: int = 4) -> float:
    """`value` to `digits` significant digits (exactly representable in TOML text)."""
    return float(f"{value:.{digits}g}")


@dataclass
class PipelineResult:
    """What running a pipeline gives: the final data and the resolved pipeline."""

    data: Any
    kind: str
    pipeline: "Pipeline"
    records: dict = field(default_factory=dict)  # values a step measured (threshold value, ...)
    timings: list = field(default_factory=list)  # (step name, seconds, peak resident bytes or None)
    saved: dict = field(default_factory=dict)  # step index -> data marked save = true
    handed: dict = field(default_factory=dict)  # what the last step knows of the data (see HANDED)


@dataclass
class Pipeline:
    """An ordered list of steps plus pipeline-wide settings.

    Parameters
    ----------
    steps : list of dict
        Each has ``op`` (an operator name) and its parameters; ``save =
        true`` keeps the step's output in :attr:`PipelineResult.saved`.
    diameter : float or "auto"
        Expected object diameter in the spacing's unit.

    Examples
    --------
    >>> p = Pipeline([{"op": "threshold", "method": "otsu"}])
    >>> p.run(np.array([[[0, 0, 9, 9]]], dtype=np.uint8)).data.tolist()
    [[[False, False, True, True]]]
    """

    steps: list[dict] = field(default_factory=list)
    diameter: float | str = "auto"
    source: str | None = None  # file the pipeline was read from, for messages
    text: str | None = field(default=None, repr=False)

    def __post_init__(self):
        self.steps = [dict(s) for s in self.steps]
        self.validate()

    # -- reading and writing -------------------------------------------------
    @classmethod
    def from_toml(cls, path) -> "Pipeline":
        """Read and validate a pipeline file; errors name the file and line."""
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            from .errors import InputNotFoundError

            raise InputNotFoundError(f"{path}: no such file or directory") from None
        try:
            text = raw.decode("utf-8")
            doc = tomllib.loads(text)
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise PipelineError(f"{path}: invalid TOML: {err}") from None
        return cls.from_dict(doc, source=str(path), text=text)

    @classmethod
    def from_dict(cls, doc: dict, *, source=None, text=None) -> "Pipeline":
        unknown = set(doc) - {"pipeline", "steps", "voxseg"}
        where = f"{source}: " if source else ""
        if unknown:
            raise PipelineError(f"{where}unknown table(s) {sorted(unknown)}; expected [pipeline] and [[steps]]")
        settings = doc.get("pipeline", {})
        if not isinstance(settings, dict):
            raise PipelineError(f"{where}[pipeline] must be a table")
        bad = set(settings) - {"diameter"}
        if bad:
            raise PipelineError(f"{where}unknown setting(s) {sorted(bad)} in [pipeline]; known: diameter")
        steps = doc.get("steps", [])
        if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
            raise PipelineError(f"{where}steps must be an array of tables ([[steps]])")
        return cls(steps, diameter=settings.get("diameter", "auto"), source=source, text=text)

    def to_dict(self) -> dict:
        return {"pipeline": {"diameter": self.diameter}, "steps": [dict(s) for s in self.steps]}

    def to_toml(self, header: str = "") -> str:
        import tomli_w

        # one [[steps]] table per step reads better than tomli-w's inline array
        parts = ["".join(f"# {line}\n" for line in header.splitlines())]
        parts.append(tomli_w.dumps({"pipeline": {"diameter": self.diameter}}))
        for step in self.steps:
            parts.append("\n[[steps]]\n" + tomli_w.dumps(step))
        return "".join(parts)

    def save(self, path, *, header: str = "", overwrite: bool = False):
        from .io.atomic import atomic_path

        with atomic_path(path, overwrite=overwrite) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(self.to_toml(header))

    # -- validation -----------------------------------------------------------
    def _where(self, index: int, key: str | None = None) -> str:
        """'file:line: ' of a step (or a key in it), as well as can be found."""
        if not self.source:
            return f"step {index + 1}: "
        line = None
        if self.text:
            lines = self.text.splitlines()
            headers = [i for i, l in enumerate(lines) if l.strip().startswith("[[steps]]")]
            if index < len(headers):
                line = headers[index]
                end = headers[index + 1] if index + 1 < len(headers) else len(lines)
                if key:
                    for i in range(line, end):
                        if lines[i].split("=")[0].strip() == key:
                            line = i
                            break
        return f"{self.source}:{line + 1}: " if line is not None else f"{self.source}: step {index + 1}: "

    def validate(self):
        """Check every step and parameter before anything runs."""
        ops = _operators()
        if self.diameter != "auto":
            if isinstance(self.diameter, bool) or not isinstance(self.diameter, (int, float)) \
                    or not math.isfinite(self.diameter) or self.diameter <= 0:
                raise PipelineError(
                    f"{self.source + ': ' if self.source else ''}diameter must be a positive number or \"auto\", "
                    f"got {self.diameter!r}")
        kind = "image"
        for index, step in enumerate(self.steps):
            name = step.get("op")
            if not isinstance(name, str):
                raise PipelineError(f"{self._where(index)}each step needs op = \"<operator name>\"")
            if name not in ops:
                near = difflib.get_close_matches(name, ops, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else f"; known: {', '.join(sorted(ops))}"
                raise PipelineError(f"{self._where(index, 'op')}unknown step {name!r}{hint}")
            op = ops[name]
            if kind not in op.takes:
                raise PipelineError(
                    f"{self._where(index, 'op')}step {name!r} takes {' or '.join(op.takes)}, "
                    f"but the step before gives {kind}")
            params = op.parameters()
            for key, value in step.items():
                if key in ("op", "save"):
                    continue
                if key not in params:
                    near = difflib.get_close_matches(key, params, n=1)
                    hint = f"; did you mean {near[0]!r}?" if near else (
                        f"; {name} takes {', '.join(params) or 'no parameters'}")
                    raise PipelineError(f"{self._where(index, key)}unknown parameter {key!r} for {name}{hint}")
                self._check_type(index, name, key, value, params[key], op)
            if "save" in step and not isinstance(step["save"], bool):
                raise PipelineError(f"{self._where(index, 'save')}save must be true or false")
            kind = op.gives or kind

    def _check_type(self, index, name, key, value, param, op):
        default = param.default
        if key in NUMERIC_PARAMETERS and not _is_number_or_numbers(value):
            raise PipelineError(
                f"{self._where(index, key)}{name}: {key} has the wrong type: got {value!r}, "
                f"expected a number or a list of numbers")
        if key in op.auto:
            if value == "auto" or (isinstance(value, (int, float)) and not isinstance(value, bool)
                                   and math.isfinite(value) and value >= 0):
                return
            raise PipelineError(
                f"{self._where(index, key)}{name}: {key} must be a non-negative number or \"auto\", got {value!r}")
        ok = True
        if default is inspect.Parameter.empty or default is None:
            ok = not isinstance(value, dict)
        elif isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float, list)) and not isinstance(value, bool)
            if ok and isinstance(value, (int, float)) and not math.isfinite(value):
                ok = False
        elif isinstance(default, str):
            ok = isinstance(value, str)
        elif isinstance(default, tuple):
            ok = isinstance(value, list)
        if not ok:
            expected = type(default).__name__ if default not in (inspect.Parameter.empty, None) else "a value"
            raise PipelineError(
                f"{self._where(index, key)}{name}: {key} has the wrong type: got {value!r}, expected {expected}")

    # -- running --------------------------------------------------------------
    def run(self, image, *, spacing=None, progress=None) -> PipelineResult:
        """Run the steps on `image` and return the result with the resolved pipeline.

        `progress`, if given, is called with (step index, step count, op name)
        before each step.
        """
        from .segmentation import DEFAULTS, ESTIMATE_VOXELS, distance_transform, estimate_diameter, sphere_volume

        ops = _operators()
        spacing = as_spacing(spacing, np.ndim(image))
        data, kind = image, "image"
        diameter = self.diameter
        resolved, records, timings, saved = [], {}, [], {}
        # the distance map made to estimate the diameter, while it still fits the current mask
        distance = None
        handed = {}  # what the step that made the current data knows of it (see HANDED)
        for index, step in enumerate(self.steps):
            op = ops[step["op"]]
            params = {k: v for k, v in step.items() if k not in ("op", "save")}
            if progress is not None:
                progress(index, len(self.steps), op.name)
            needs_diameter = any(params.get(k, "auto") == "auto" for k in op.auto)
            if needs_diameter and diameter == "auto":
                mask = data if kind == "mask" else np.asarray(data) > 0
                start = time.perf_counter()
                reset_peak_memory()
                # a mask small enough to be estimated at full resolution lends its map to split_touching
                reuse = kind == "mask" and mask.size <= ESTIMATE_VOXELS
                distance = distance_transform(mask, spacing=spacing) if reuse else None
                diameter = estimate_diameter(mask, spacing=spacing, distance=distance)
                del mask
                timings.append(("estimate_diameter", time.perf_counter() - start, peak_memory()))
                records["diameter_estimated"] = True
                if not math.isfinite(diameter):  # nothing in the foreground: any size will do
                    diameter = float(max(spacing) * 2)
                # round resolved values so that the saved pipeline reproduces them exactly
                diameter = _round(diameter)
            if "diameter" in op.auto and params.get("diameter", "auto") == "auto":
                params["diameter"] = float(diameter)
            if "min_volume" in op.auto and params.get("min_volume", "auto") == "auto":
                fraction = DEFAULTS["noise_volume"] if kind == "mask" else DEFAULTS["min_volume"]
                params["min_volume"] = _round(fraction * sphere_volume(float(diameter)))
            kwargs = dict(params)
            if op.spacing:
                kwargs["spacing"] = spacing
            kwargs.update({name: value for name, value in handed.items() if name in op.context})
            handed = {}
            if "deferred" in op.context and not step.get("save") and index + 1 < len(self.steps):
                kwargs["deferred"] = "levels" in ops[self.steps[index + 1]["op"]].context
            if "distance" in op.context and distance is not None:
                # removing whole components since the map was made leaves it exact on what remains
                distance[~data] = 0  # in place: the map is not needed otherwise
                kwargs["distance"] = distance
            if not (op.name == "remove_small_objects" and kind == "mask"):
                distance = None
            start = time.perf_counter()
            reset_peak_memory()
            try:
                out = op.func(data, **kwargs)
            except PipelineError:
                raise
            except (ParameterError, TypeError) as err:
                # a value that passed validation but that the operator refuses: still the file's mistake
                raise PipelineError(f"{self._where(index)}{op.name}: {err}") from None
            kwargs = None  # nor what it was handed
            end_step()
            timings.append((op.name, time.perf_counter() - start, peak_memory()))
            if isinstance(out, tuple):  # (data, measured values)
                out, measured = out
                handed = {name: measured.pop(name) for name in HANDED if name in measured}
                if measured:
                    records[op.name] = measured
            data, kind = out, op.gives or kind
            resolved.append({"op": op.name, **params, **({"save": True} if step.get("save") else {})})
            if step.get("save"):
                saved[index] = data
        records.setdefault("diameter_estimated", False)
        pipeline = Pipeline(resolved, diameter=float(diameter) if diameter != "auto" else "auto")
        return PipelineResult(data, kind, pipeline, records, timings, saved, handed)


#: example pipelines shipped with voxseg (src/voxseg/pipelines/<name>.toml)
SHIPPED_PIPELINES = ("nuclei", "beads")


def shipped_pipeline(name: str):
    """Path of a shipped example pipeline, by name (``"nuclei"`` or ``"nuclei.toml"``), or None."""
    from importlib import resources

    stem = name[:-5] if name.endswith(".toml") else name
    if stem not in SHIPPED_PIPELINES:
        return None
    return resources.files("voxseg") / "pipelines" / f"{stem}.toml"


def default_pipeline(*, diameter="auto", threshold="li", dark_objects=False, clear_border=False,
                     low=0.5, high=99.5, sigma=0.0, min_volume="auto") -> Pipeline:
    """The recipe `voxseg segment` runs: rescale, (smooth), threshold, fill, split, clean up."""
    steps = [{"op": "rescale_intensity", "low": low, "high": high}]
    if sigma:
        steps.append({"op": "gaussian", "sigma": sigma})
    steps += [
        {"op": "threshold", "method": threshold, "dark_objects": dark_objects},
        {"op": "fill_holes"},
        {"op": "remove_small_objects", "min_volume": "auto"},
        {"op": "split_touching", "diameter": "auto"},
        {"op": "remove_small_objects", "min_volume": min_volume},
    ]
    if clear_border:
        steps.append({"op": "clear_border"})
    steps.append({"op": "relabel"})
    return Pipeline(steps, diameter=diameter)
