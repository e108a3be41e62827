"""One self-contained HTML report: summary, slice explorer, 3D view and objects table.

The page opens offline by double-click: the image, the labels, the meshes,
the table, the figures, the styles, the page's script and plotly.js (from
the installed ``plotly`` package) are all inlined, and a Content Security
Policy forbids the page from loading anything else.

How the data are embedded, in one ``<script type="application/json"
id="voxseg-data">`` block:

* the image, scaled to 8 bits by its 0.5 and 99.5 percentiles (for display
  only) and subsampled with an integer stride per axis when large, as one
  PNG "atlas" of the z planes laid out in a grid;
* the labels, subsampled the same way, as a second, lossless RGB PNG atlas
  whose pixels hold ``index = r + 256 g + 65536 b`` into ``label_ids``;
  the page reads them back through a canvas and slices any axis itself;
* one surface mesh per object (float32 vertices in physical z, y, x and
  integer faces, base64), coarsened together to about ``max_faces``;
* the objects table as columns and rows.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from importlib import resources

import numpy as np

from .._version import __version__
from ..errors import OutputError, ParameterError
from ..volume import Volume, as_spacing
from .figures import display_range, distributions, format_number, histogram, label_colors, unit_label

__all__ = ["build_report", "write_report"]

_FORMAT_VERSION = 1
# largest canvas side browsers accept everywhere
_MAX_ATLAS_SIDE = 16384


def build_report(
    image,
    labels,
    table,
    summary,
    *,
    spacing,
    unit="um",
    title="voxseg report",
    max_display_voxels=2**23,
    max_faces=120_000,
    max_objects_3d=2000,
    image_quality=None,
) -> str:
    """The report as one HTML document (a string).

    Parameters
    ----------
    image : ndarray, shape (z, y, x), or Volume
        The image the objects were found in.
    labels : ndarray of int, shape (z, y, x), or None
        The objects; 0 is background.
    table : pandas.DataFrame or None
        The objects table, one row per object, with a ``label`` column; every
        column is shown.
    summary : mapping
        Run information shown as a definition list (nested mappings too), e.g.
        ``input``, ``spacing``, ``threshold: {method, value}``, ``object_count``,
        ``versions``, ``run_time_s``. A ``threshold`` with a ``value`` is also
        drawn on the intensity histogram.
    spacing : sequence of 3 float or None
        Voxel size (z, y, x) in `unit`; None takes a Volume's own spacing (or 1).
    unit : str
        Unit of `spacing`.
    title : str
    max_display_voxels : int
        Above this many voxels the slice explorer shows the volume subsampled
        by an integer stride per axis (the full-resolution positions are still
        reported).
    max_faces : int
        Meshes of the 3D view are coarsened (marching-cubes step) to keep
        about this many triangles in total.
    max_objects_3d : int
        Only the largest objects up to this count are meshed.
    image_quality : int, optional
        None (default) embeds the 8-bit display image losslessly (PNG); a
        JPEG quality from 1 to 100 makes noisy images about half as large
        (labels stay lossless).

    Returns
    -------
    str
        The document; deterministic for the same inputs.

    See Also
    --------
    write_report : build and write to a file.
    """
    from ._meshes import largest, object_meshes

    if isinstance(image, Volume):
        if spacing is None:
            spacing, unit = image.spacing, image.unit
        image = image.data
    data = np.asarray(image)
    if data.ndim != 3:
        raise ParameterError(f"image must be a 3D array (z, y, x), got shape {data.shape!r}")
    spacing = as_spacing(spacing, 3)
    if isinstance(labels, Volume):
        labels = labels.data
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != data.shape:
            raise ParameterError(
                f"labels must have the image's shape {data.shape!r}, got {labels.shape!r}"
            )
        if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
            raise ParameterError(f"labels must be an integer array, got dtype {labels.dtype}")
        if labels.dtype == bool:
            labels = labels.astype(np.uint8)
        if labels.size and labels.min() < 0:
            raise ParameterError(f"labels must be >= 0, got a minimum of {labels.min()!r}")
    if summary is None:
        summary = {}
    if not isinstance(summary, Mapping):
        raise ParameterError(f"summary must be a mapping, got {type(summary).__name__}")
    ul = unit_label(unit)

    columns, rows, table_ids = _table_json(table)

    # ---- display volume: integer stride per axis, 8-bit grey, label indices
    factors = _display_factors(data.shape, max_display_voxels)
    view = tuple(slice(None, None, f) for f in factors)
    shown = data[view]
    lo, hi = display_range(data)
    grey = _to_uint8(shown, lo, hi)
    present, counts = np.empty(0, np.int64), np.empty(0, np.int64)
    if labels is not None:
        present, counts = np.unique(labels, return_counts=True)
        present, counts = present[present != 0], counts[present != 0]
    label_ids = np.union1d(present.astype(np.int64), np.asarray(table_ids, dtype=np.int64))
    cols = _atlas_columns(grey.shape)
    if image_quality is None:
        image_png = _png_data_url(_atlas(grey, cols))
    elif isinstance(image_quality, (int, np.integer)) and 1 <= image_quality <= 100:
        image_png = _jpeg_data_url(_atlas(grey, cols), int(image_quality))
    else:
        raise ParameterError(f"image_quality must be None or an integer from 1 to 100, got {image_quality!r}")
    labels_png = None
    if labels is not None:
        index = np.searchsorted(label_ids, labels[view]).astype(np.uint32) + 1
        index[labels[view] == 0] = 0
        rgb = np.empty(index.shape + (3,), np.uint8)
        for channel, shift in enumerate((0, 8, 16)):
            rgb[..., channel] = (index >> shift) & 255
        labels_png = _png_data_url(_atlas(rgb, cols))

    colors = ["#%02x%02x%02x" % tuple(c) for c in label_colors(label_ids)] if label_ids.size else []

    # ---- meshes, anchors (a voxel inside each object, to jump the planes to)
    meshes, anchors, mesh_note = [], {}, ""
    if labels is not None and present.size:
        ids, _, total = largest(present, counts, max_objects_3d)
        meshed = object_meshes(labels, spacing=spacing, label_ids=ids, max_faces=max_faces)
        for label, verts, faces in meshed:
            faces_dtype = "u2" if len(verts) < 2**16 else "u4"
            meshes.append(
                {
                    "label": int(label),
                    "verts": _b64(verts.astype("<f4")),
                    "faces": _b64(faces.astype("<" + faces_dtype)),
                    "faces_dtype": faces_dtype,
                }
            )
        if len(ids) < total:
            mesh_note = f"The {len(ids)} largest of {total} objects are shown."
        anchors = _anchors(labels, present)

    data_block = {
        "format": _FORMAT_VERSION,
        "title": str(title),
        "unit": ul,
        "shape": list(data.shape),
        "spacing": list(spacing),
        "display": {
            "shape": list(grey.shape),
            "factors": list(factors),
            "spacing": [s * f for s, f in zip(spacing, factors)],
            "range": [lo, hi],
            "columns": cols,
        },
        "image": image_png,
        "labels": labels_png,
        "label_ids": [int(i) for i in label_ids],
        "colors": colors,
        "anchors": [anchors.get(int(i)) for i in label_ids],
        "table": {"columns": columns, "units": [_column_unit(c, ul) for c in columns], "rows": rows},
        "meshes": meshes,
        "mesh_note": mesh_note,
    }

    # ---- figures as inline PNG
    threshold = summary.get("threshold")
    thresholds = None
    if isinstance(threshold, Mapping) and "input_value" in threshold:
        # the histogram is of the input's grey levels: only a threshold in those units can be drawn on it
        if threshold["input_value"] is not None:
            thresholds = {str(threshold.get("method", "threshold")): float(threshold["input_value"])}
    elif isinstance(threshold, Mapping) and threshold.get("value") is not None:
        thresholds = {str(threshold.get("method", "threshold")): float(threshold["value"])}
    elif isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        thresholds = {"threshold": float(threshold)}
    hist_png = _figure_data_url(histogram(data, thresholds=thresholds, log=True))
    dist_png = None
    if table is not None and len(table):
        dist_png = _figure_data_url(distributions(table, unit=unit, orientation="vertical"))

    parts = {
        "title": html.escape(str(title)),
        "generator": html.escape(f"voxseg {__version__}"),
        "css": _resource("report.css"),
        "summary": _definition_list(summary) if summary else "<p class='muted'>No summary.</p>",
        "histogram": f'<img class="figure" alt="intensity histogram" src="{hist_png}">',
        "distributions": (
            f'<img class="figure" alt="volume and sphericity distributions" src="{dist_png}">'
            if dist_png else ""
        ),
        "object_count": str(len(rows)),
        "data": _script_json(data_block),
        "plotly": _script_text(_plotly_js()),
        "js": _script_text(_resource("report.js")),
    }
    template = _resource("template.html")
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], template)


def write_report(path, image, labels, table, summary, *, spacing, unit="um", title=None, **options):
    """Build the report and write it to `path` atomically (temporary file, then rename).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.html`` file to write; an existing file is replaced.
    image, labels, table, summary, spacing, unit
        As for :func:`build_report`.
    title : str, optional
        Defaults to ``"voxseg report"`` followed by the summary's ``input``.
    **options
        ``max_display_voxels``, ``max_faces``, ``max_objects_3d``, ``image_quality``
        of :func:`build_report`.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    OutputError
        If the file cannot be written.
    """
    import pathlib

    path = pathlib.Path(os.fspath(path))
    if title is None:
        source = summary.get("input") if isinstance(summary, Mapping) else None
        title = f"voxseg report — {os.path.basename(str(source))}" if source else "voxseg report"
    document = build_report(image, labels, table, summary, spacing=spacing, unit=unit, title=title, **options)
    directory = path.parent if str(path.parent) else pathlib.Path(".")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(document)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise OutputError(f"cannot write report to {str(path)!r}: {exc}") from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


# ----------------------------------------------------------------------------- helpers


def _resource(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _plotly_js() -> str:
    try:
        ref = resources.files("plotly").joinpath("package_data", "plotly.min.js")
        return ref.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:  # pragma: no cover - plotly is a dependency
        raise ImportError(
            "the HTML report's 3D view needs the plotly package (pip install plotly)"
        ) from exc


def _script_text(code: str) -> str:
    """JavaScript safe inside <script>: no early end tag, no comment-like markup."""
    return code.replace("</script", "<\\/script").replace("<!--", "<\\!--")


def _script_json(value) -> str:
    """JSON for a <script type="application/json"> block; ``<`` is escaped so no tag can end it."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _b64(array) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _display_factors(shape, max_voxels):
    """Integer stride per axis: in-plane sides up to 512, z up to 512, total up to `max_voxels`."""
    factors = [max(1, math.ceil(n / 512)) for n in shape]
    while math.prod(math.ceil(n / f) for n, f in zip(shape, factors)) > max_voxels:
        # coarsen the axis with the most remaining samples
        k = int(np.argmax([math.ceil(n / f) for n, f in zip(shape, factors)]))
        factors[k] += 1
    return factors


def _to_uint8(data, lo, hi):
    data = np.asarray(data)
    if data.dtype.kind in "ui" and data.dtype.itemsize <= 2:
        # 8/16-bit data: the same arithmetic once per grey level, then a look-up
        levels = np.arange(np.iinfo(data.dtype).min, np.iinfo(data.dtype).max + 1)
        table = _to_uint8(levels.astype(np.float64), lo, hi)
        return table[data.astype(np.intp) - levels[0]] if levels[0] else table[data]
    scaled = (np.asarray(data, dtype=np.float64) - lo) * (255.0 / (hi - lo))
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _atlas_columns(shape):
    nz, ny, nx = shape
    cols = max(1, round(math.sqrt(nz * ny / nx)))
    cols = min(cols, nz, max(1, _MAX_ATLAS_SIDE // nx))
    if math.ceil(nz / cols) * ny > _MAX_ATLAS_SIDE:  # pragma: no cover - guarded by _display_factors
        raise ParameterError(f"volume too large to display, got display shape {shape!r}")
    return int(cols)


def _atlas(volume, cols):
    """Tile the z planes of `volume` (z, y, x[, c]) row by row into one 2D image."""
    nz, ny, nx = volume.shape[:3]
    rows = math.ceil(nz / cols)
    atlas = np.zeros((rows * ny, cols * nx) + volume.shape[3:], dtype=volume.dtype)
    for z in range(nz):
        r, c = divmod(z, cols)
        atlas[r * ny:(r + 1) * ny, c * nx:(c + 1) * nx] = volume[z]
    return atlas


def _png_data_url(array) -> str:
    from PIL import Image

    buf = io.BytesIO()
    # zlib's default level: level 9 takes several times longer for a few percent
    Image.fromarray(array).save(buf, format="PNG", compress_level=6)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _jpeg_data_url(array, quality) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure_data_url(fig, dpi=100) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _anchors(labels, ids):
    """For each id, the voxel (z, y, x) of the object nearest its centroid."""
    from scipy import ndimage as ndi

    out = {}
    boxes = ndi.find_objects(labels, max_label=int(ids.max())) if ids.size else []
    for i in ids:
        box = boxes[int(i) - 1] if int(i) - 1 < len(boxes) else None
        if box is None:
            continue
        pts = np.argwhere(labels[box] == i)
        centre = pts.mean(axis=0)
        best = pts[np.argmin(((pts - centre) ** 2).sum(axis=1))]
        out[int(i)] = [int(b + s.start) for b, s in zip(best, box)]
    return out


def _json_value(v):
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return v if math.isfinite(v) else None
    try:
        import pandas as pd

        if v is pd.NA or v is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    return str(v)


def _table_json(table):
    """``(columns, rows, label_ids)`` of the objects table."""
    if table is None:
        return [], [], []
    if "label" not in table.columns:
        if table.index.name == "label":
            table = table.reset_index()
        else:
            raise ParameterError(
                f"table must have a 'label' column, got columns {list(table.columns)!r}"
            )
    columns = [str(c) for c in table.columns]
    rows = [[_json_value(v) for v in row] for row in table.itertuples(index=False, name=None)]
    ids = [int(v) for v in table["label"]]
    return columns, rows, ids


def _column_unit(column: str, ul: str) -> str:
    name = column.lower()
    if name == "voxels" or "fraction" in name or "ratio" in name or name == "sphericity":
        return ""
    if "volume" in name:
        return ul + "³"
    if "area" in name:
        return ul + "²"
    if any(k in name for k in ("diameter", "length", "centroid", "radius", "distance", "feret")):
        return ul
    return ""


def _scalar_text(v) -> str:
    if isinstance(v, (float, np.floating, int, np.integer, bool, np.bool_)):
        return format_number(v)
    return str(v)


def _definition_list(mapping) -> str:
    """Nested <dl> of a mapping; lists of scalars are joined, lists of mappings nested."""
    items = []
    for key, value in mapping.items():
        items.append(f"<dt>{html.escape(str(key).replace('_', ' '))}</dt>")
        items.append(f"<dd>{_value_html(value)}</dd>")
    return "<dl>" + "".join(items) + "</dl>"


def _value_html(value) -> str:
    if isinstance(value, Mapping):
        return _definition_list(value) if value else "<span class='muted'>—</span>"
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        if all(not isinstance(v, (Mapping, list, tuple)) for v in value):
            return html.escape(", ".join(_scalar_text(v) for v in value))
        return "<ol>" + "".join(f"<li>{_value_html(v)}</li>" for v in value) + "</ol>"
    if value is None:
        return "<span class='muted'>—</span>"
    return html.escape(_scalar_text(value))
