"""Matplotlib figures of volumes, labels and measurements, drawn in physical units.

Every function returns a :class:`matplotlib.figure.Figure` built without
:mod:`matplotlib.pyplot`, so nothing touches global state and the figures
render with the Agg backend anywhere (servers, workers, tests). Save them
with :func:`save_figure`, or display them in a notebook by evaluating the
figure.

Voxel ``i`` along an axis has its centre at ``i * spacing``; images are drawn
with ``imshow`` extents in physical units, so an anisotropic stack keeps its
true proportions. Colours of labels come from :func:`label_colors`, shared
with the HTML report.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import numpy as np
from matplotlib.colors import LightSource, hsv_to_rgb
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..errors import OutputError, ParameterError
from ..volume import Volume, as_spacing

__all__ = [
    "orthogonal_planes",
    "show_plane",
    "montage",
    "histogram",
    "surface_3d",
    "distributions",
    "threshold_comparison",
    "save_figure",
    "label_colors",
    "display_range",
    "unit_label",
    "format_number",
]

_AXES = "zyx"
_OVERLAYS = ("off", "outlines", "filled")


# --------------------------------------------------------------------------- helpers


def label_colors(label_ids) -> np.ndarray:
    """A distinct, deterministic RGB colour per label id.

    The colour depends only on the id (golden-ratio hue steps), so the same
    object has the same colour in every figure and in the HTML report.

    Parameters
    ----------
    label_ids : int or array_like of int

    Returns
    -------
    ndarray of uint8, shape (..., 3)

    Examples
    --------
    >>> label_colors([1, 2]).shape
    (2, 3)
    >>> bool((label_colors(7) == label_colors([7])[0]).all())
    True
    """
    ids = np.asarray(label_ids, dtype=np.float64)
    hue = (ids * 0.6180339887498949) % 1.0
    sat = 0.55 + 0.35 * ((ids * 0.7548776662466927) % 1.0)
    val = 0.80 + 0.20 * ((ids * 0.5698402909980532) % 1.0)
    rgb = hsv_to_rgb(np.stack([hue, sat, val], axis=-1))
    return np.round(rgb * 255).astype(np.uint8)


def display_range(image, percentiles=(0.5, 99.5)) -> tuple[float, float]:
    """Grey levels mapped to black and white for display: the 0.5 and 99.5 percentiles.

    Non-finite values are ignored; large images are subsampled (with a fixed
    stride, so the result is deterministic). The data are not changed.

    Examples
    --------
    >>> display_range(np.arange(1000.0))
    (4.995, 994.005)
    """
    data = np.asarray(image)
    if data.dtype == bool:
        return 0.0, 1.0
    flat = data.reshape(-1)
    if flat.size > 2**22:
        flat = flat[:: math.ceil(flat.size / 2**22)]
    if np.issubdtype(flat.dtype, np.floating) or np.issubdtype(flat.dtype, np.complexfloating):
        flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(flat, percentiles))
    if not hi > lo:
        lo, hi = float(flat.min()), float(flat.max())
        if not hi > lo:
            hi = lo + 1.0
    return lo, hi


def unit_label(unit) -> str:
    """How a spacing unit is written on axes: ``"um"`` becomes ``"µm"``.

    Examples
    --------
    >>> unit_label("um"), unit_label(None)
    ('µm', 'px')
    """
    if unit is None or unit in ("pixel", "px", "voxel"):
        return "px"
    return {"um": "µm", "micron": "µm", "microns": "µm", "A": "Å", "angstrom": "Å"}.get(unit, unit)


def format_number(value) -> str:
    """A short, readable form of a number for titles, legends and tables.

    Examples
    --------
    >>> format_number(12000.0), format_number(0.123456), format_number(1234.567), format_number(3)
    ('12000', '0.1235', '1234.6', '3')
    """
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    if v != 0 and (abs(v) >= 1e7 or abs(v) < 1e-3):
        return f"{v:.3e}"
    if abs(v) >= 100:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.4g}"


def _unwrap(image, spacing, unit="um", *, name="image"):
    """``(ndarray, spacing, unit)`` from an array or a :class:`~voxseg.Volume`."""
    if isinstance(image, Volume):
        if spacing is None:
            spacing = image.spacing
            unit = image.unit
        image = image.data
    data = np.asarray(image)
    if data.ndim != 3:
        raise ParameterError(f"{name} must be a 3D array (z, y, x), got shape {data.shape!r}")
    return data, as_spacing(spacing, 3), unit


def _labels_like(labels, shape):
    if labels is None:
        return None
    if isinstance(labels, Volume):
        labels = labels.data
    labels = np.asarray(labels)
    if labels.shape != tuple(shape):
        raise ParameterError(
            f"labels must have the image's shape {tuple(shape)!r}, got {labels.shape!r}"
        )
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ParameterError(f"labels must be an integer array, got dtype {labels.dtype}")
    return labels


def _position(position, shape):
    if position is None:
        return tuple(n // 2 for n in shape)
    try:
        pos = tuple(int(p) for p in position)
    except (TypeError, ValueError):
        raise ParameterError(
            f"position must be 3 voxel indices (z, y, x), got {position!r}"
        ) from None
    if len(pos) != 3 or not all(0 <= p < n for p, n in zip(pos, shape)):
        raise ParameterError(
            f"position must be 3 voxel indices (z, y, x) inside shape {tuple(shape)!r}, got {position!r}"
        )
    return pos


def _axis_index(axis):
    if axis in (0, 1, 2):
        return int(axis)
    if isinstance(axis, str) and axis.lower() in _AXES:
        return _AXES.index(axis.lower())
    raise ParameterError(f"axis must be 0, 1, 2 or 'z', 'y', 'x', got {axis!r}")


def _extent(n_cols, s_cols, n_rows, s_rows):
    """imshow extent (left, right, bottom, top) with voxel centres at ``i * s``."""
    return (-0.5 * s_cols, (n_cols - 0.5) * s_cols, (n_rows - 0.5) * s_rows, -0.5 * s_rows)


def _nice_length(target: float) -> float:
    """The largest 1, 2 or 5 times a power of ten not above `target`."""
    if not target > 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(target))
    for m in (5.0, 2.0, 1.0):
        if m * power <= target * (1 + 1e-9):
            return m * power
    return power  # pragma: no cover


def _add_scale_bar(ax, width, unit):
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length = _nice_length(width / 5)
    bar = AnchoredSizeBar(
        ax.transData,
        length,
        f"{length:g} {unit_label(unit)}",
        loc="lower right",
        pad=0.4,
        borderpad=0.3,
        sep=3,
        color="white",
        frameon=False,
        size_vertical=width / 150,
        fontproperties={"size": 8},
    )
    ax.add_artist(bar)
    return bar


def _overlay_rgba(plane_labels, mode="outlines", alpha=0.45):
    """RGBA image (float, 0..1) of the labels of one plane: outlines or filled."""
    from skimage.segmentation import find_boundaries

    plane_labels = np.asarray(plane_labels)
    rgba = np.zeros(plane_labels.shape + (4,), dtype=np.float32)
    if mode == "off" or not plane_labels.any():
        return rgba
    ids, inverse = np.unique(plane_labels, return_inverse=True)
    inverse = inverse.reshape(plane_labels.shape)
    colors = label_colors(ids).astype(np.float32) / 255
    if mode == "outlines":
        where = find_boundaries(plane_labels, mode="inner") & (plane_labels != 0)
        a = 1.0
    elif mode == "filled":
        where = plane_labels != 0
        a = alpha
    else:
        raise ParameterError(f"overlay must be one of {_OVERLAYS!r}, got {mode!r}")
    rgba[where, :3] = colors[inverse[where]]
    rgba[where, 3] = a
    return rgba


def _grey(ax, plane, extent, lo, hi, *, cmap="gray"):
    return ax.imshow(
        plane, cmap=cmap, vmin=lo, vmax=hi, extent=extent, interpolation="nearest", origin="upper"
    )


# ----------------------------------------------------------------------------- figures


def orthogonal_planes(
    image,
    *,
    spacing=None,
    unit="um",
    labels=None,
    position=None,
    scale_bar=True,
    overlay="outlines",
    crosshair=True,
):
    """The three orthogonal planes through one voxel, in true physical proportions.

    The xy plane (``image[z]``) is drawn top left, the zy plane (``image[:, :, x]``,
    z horizontal) to its right and the xz plane (``image[:, y]``) below it, so
    that neighbouring panels share an axis. Panel sizes follow ``shape *
    spacing``: a stack with 0.29 um between planes and 0.26 um pixels keeps
    its shape.

    Parameters
    ----------
    image : ndarray, shape (z, y, x), or Volume
        Drawn with grey levels from the 0.5 to the 99.5 percentile.
    spacing : sequence of 3 float, optional
        Voxel size (z, y, x); a Volume's own spacing is used when omitted.
    unit : str
        Unit of `spacing`, written on the axes and the scale bar.
    labels : ndarray of int, optional
        Label image of the same shape, drawn over the planes.
    position : sequence of 3 int, optional
        Voxel indices (z, y, x) of the planes; the centre by default.
    scale_bar : bool
        Draw a scale bar of a round length in the xy panel.
    overlay : {"outlines", "filled", "off"}
        How `labels` are drawn.
    crosshair : bool
        Mark where the other two planes cut each panel.

    Returns
    -------
    matplotlib.figure.Figure
        With three image axes, in the order z (xy), x (zy), y (xz).

    Examples
    --------
    >>> fig = orthogonal_planes(np.zeros((4, 8, 8)), spacing=(2, 1, 1))
    >>> [ax.get_title() for ax in fig.axes]
    ['xy  (z = 2)', 'zy  (x = 4)', 'xz  (y = 4)']
    """
    data, spacing, unit = _unwrap(image, spacing, unit)
    labels = _labels_like(labels, data.shape)
    position = _position(position, data.shape)
    nz, ny, nx = data.shape
    sz, sy, sx = spacing
    w_x, w_y, w_z = nx * sx, ny * sy, nz * sz
    width = 8.0
    height = min(width * (w_y + w_z) / (w_x + w_z), 14.0) + 0.6
    fig = Figure(figsize=(width, height), layout="constrained")
    ax_xy, _, _ = _draw_orthogonal(
        fig, data, position, spacing, display_range(data), labels=labels, overlay=overlay,
        crosshair=crosshair, unit=unit,
    )
    if scale_bar:
        _add_scale_bar(ax_xy, w_x, unit)
    return fig


def _draw_orthogonal(
    container, data, position, spacing, vrange, *, labels=None, overlay="outlines",
    crosshair=True, unit="um", ticks=True, fontsize=9,
):
    """Draw xy (top left), zy (right) and xz (below) panels in `container` (figure or subfigure)."""
    pz, py, px = position
    nz, ny, nx = data.shape
    sz, sy, sx = spacing
    w_x, w_y, w_z = nx * sx, ny * sy, nz * sz
    ul = unit_label(unit)
    gs = container.add_gridspec(2, 2, width_ratios=[w_x, w_z], height_ratios=[w_y, w_z])
    ax_xy = container.add_subplot(gs[0, 0])
    ax_zy = container.add_subplot(gs[0, 1])
    ax_xz = container.add_subplot(gs[1, 0])
    panels = [
        # axes, plane, label plane, extent, (x label, y label), title, (vertical, horizontal) lines
        (ax_xy, data[pz], None if labels is None else labels[pz],
         _extent(nx, sx, ny, sy), ("x", "y"), f"xy  (z = {pz})", (px * sx, py * sy)),
        (ax_zy, data[:, :, px].T, None if labels is None else labels[:, :, px].T,
         _extent(nz, sz, ny, sy), ("z", "y"), f"zy  (x = {px})", (pz * sz, py * sy)),
        (ax_xz, data[:, py, :], None if labels is None else labels[:, py, :],
         _extent(nx, sx, nz, sz), ("x", "z"), f"xz  (y = {py})", (px * sx, pz * sz)),
    ]
    for ax, plane, lab, extent, (xl, yl), title, (vline, hline) in panels:
        _grey(ax, plane, extent, *vrange)
        if lab is not None and overlay != "off":
            ax.imshow(_overlay_rgba(lab, overlay), extent=extent, interpolation="nearest")
        if crosshair:
            ax.axvline(vline, color="yellow", lw=0.6, alpha=0.5)
            ax.axhline(hline, color="yellow", lw=0.6, alpha=0.5)
        ax.set_aspect("equal")
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        if ticks:
            ax.set_xlabel(f"{xl} ({ul})", fontsize=fontsize - 1)
            ax.set_ylabel(f"{yl} ({ul})", fontsize=fontsize - 1)
            ax.tick_params(labelsize=fontsize - 2)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_title(title, fontsize=fontsize)
    return ax_xy, ax_zy, ax_xz


def show_plane(
    image,
    *,
    axis=0,
    index=None,
    labels=None,
    overlay="outlines",
    spacing=None,
    unit="um",
    scale_bar=True,
    figsize=None,
):
    """One plane of a volume, in physical proportions, with an optional label overlay.

    Parameters
    ----------
    image : ndarray, shape (z, y, x), or Volume
    axis : {0, 1, 2, "z", "y", "x"}
        The axis the plane is normal to.
    index : int, optional
        Plane index along `axis`; the middle plane by default.
    labels : ndarray of int, optional
    overlay : {"outlines", "filled", "off"}
    spacing : sequence of 3 float, optional
    unit : str
    scale_bar : bool
    figsize : (float, float), optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = show_plane(np.zeros((4, 8, 8)), axis="y", index=1)
    >>> fig.axes[0].get_title()
    'y = 1'
    """
    data, spacing, unit = _unwrap(image, spacing, unit)
    labels = _labels_like(labels, data.shape)
    axis = _axis_index(axis)
    n = data.shape[axis]
    index = n // 2 if index is None else int(index)
    if not 0 <= index < n:
        raise ParameterError(f"index must be in [0, {n}) along axis {_AXES[axis]}, got {index!r}")
    take = [slice(None)] * 3
    take[axis] = index
    plane = data[tuple(take)]
    rows, cols = [a for a in range(3) if a != axis]
    extent = _extent(data.shape[cols], spacing[cols], data.shape[rows], spacing[rows])
    w, h = data.shape[cols] * spacing[cols], data.shape[rows] * spacing[rows]
    if figsize is None:
        figsize = (6.0, float(np.clip(6.0 * h / w, 1.5, 12.0)) + 0.5)
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    lo, hi = display_range(data)
    _grey(ax, plane, extent, lo, hi)
    if labels is not None and overlay != "off":
        ax.imshow(_overlay_rgba(labels[tuple(take)], overlay), extent=extent, interpolation="nearest")
    ax.set_aspect("equal")
    ul = unit_label(unit)
    ax.set_xlabel(f"{_AXES[cols]} ({ul})", fontsize=8)
    ax.set_ylabel(f"{_AXES[rows]} ({ul})", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(f"{_AXES[axis]} = {index}", fontsize=9)
    if scale_bar:
        _add_scale_bar(ax, w, unit)
    return fig


def montage(image, *, labels=None, step=None, ncols=None, spacing=None, unit="um", overlay="outlines"):
    """Every `step`-th z plane side by side, with label outlines when `labels` are given.

    Parameters
    ----------
    image : ndarray, shape (z, y, x), or Volume
    labels : ndarray of int, optional
        Outlined in the colour of each label (:func:`label_colors`).
    step : int, optional
        Plane step; by default at most 16 planes are shown.
    ncols : int, optional
        Panels per row; about square by default.
    spacing : sequence of 3 float, optional
        Sets the in-plane aspect and the physical depth in the titles.
    unit : str
    overlay : {"outlines", "filled", "off"}

    Returns
    -------
    matplotlib.figure.Figure
        With ``ceil(nz / step)`` axes, one per plane.

    Examples
    --------
    >>> len(montage(np.zeros((10, 4, 4)), step=3).axes)
    4
    """
    data, spacing, unit = _unwrap(image, spacing, unit)
    labels = _labels_like(labels, data.shape)
    nz, ny, nx = data.shape
    if step is None:
        step = max(1, math.ceil(nz / 16))
    if int(step) != step or step < 1:
        raise ParameterError(f"step must be a positive integer, got {step!r}")
    step = int(step)
    planes = list(range(0, nz, step))
    n = len(planes)
    if ncols is None:
        ncols = max(1, math.ceil(math.sqrt(n)))
    if int(ncols) != ncols or ncols < 1:
        raise ParameterError(f"ncols must be a positive integer, got {ncols!r}")
    ncols = min(int(ncols), n)
    nrows = math.ceil(n / ncols)
    sz, sy, sx = spacing
    panel_w = 2.2
    panel_h = panel_w * (ny * sy) / (nx * sx) + 0.3
    fig = Figure(figsize=(panel_w * ncols, min(panel_h * nrows, 40.0)), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    lo, hi = display_range(data)
    extent = _extent(nx, sx, ny, sy)
    ul = unit_label(unit)
    for k, ax in enumerate(axes.ravel()):
        if k >= n:
            fig.delaxes(ax)
            continue
        z = planes[k]
        _grey(ax, data[z], extent, lo, hi)
        if labels is not None and overlay != "off":
            ax.imshow(_overlay_rgba(labels[z], overlay), extent=extent, interpolation="nearest")
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"z = {z}  ({z * sz:.3g} {ul})", fontsize=8)
    return fig


def histogram(image=None, *, thresholds=None, nbins=256, log=False, hist=None):
    """Grey-level histogram with threshold lines and the cumulative distribution.

    Parameters
    ----------
    image : ndarray, optional
        Any shape; non-finite values are ignored. Not needed when `hist` is given.
    thresholds : float or mapping of str to float, optional
        Vertical lines, labelled ``name = value`` in the legend.
    nbins : int
    log : bool
        Logarithmic count axis.
    hist : (counts, bin_centers), optional
        A precomputed histogram (as from :func:`skimage.exposure.histogram`,
        or a chunked computation) used instead of `image`.

    Returns
    -------
    matplotlib.figure.Figure
        The first axes holds the histogram and one line per threshold; a twin
        axes holds the cumulative fraction.

    Examples
    --------
    >>> fig = histogram(np.arange(100), thresholds={"otsu": 50})
    >>> fig.axes[0].lines[0].get_xdata()
    [50.0, 50.0]
    """
    if hist is not None:
        counts, centers = (np.asarray(a, dtype=float) for a in hist)
        if counts.shape != centers.shape or counts.ndim != 1 or counts.size == 0:
            raise ParameterError(
                f"hist must be (counts, bin_centers) of equal 1D length, got shapes "
                f"{counts.shape!r} and {centers.shape!r}"
            )
        if centers.size > 1:
            mids = (centers[1:] + centers[:-1]) / 2
            edges = np.concatenate([[2 * centers[0] - mids[0]], mids, [2 * centers[-1] - mids[-1]]])
        else:
            edges = np.array([centers[0] - 0.5, centers[0] + 0.5])
    elif image is None:
        raise ParameterError("histogram needs an image or hist=(counts, bin_centers), got neither")
    else:
        data = np.asarray(image)
        if data.dtype == bool:
            data = data.astype(np.uint8)
        data = data.reshape(-1)
        if np.issubdtype(data.dtype, np.floating):
            data = data[np.isfinite(data)]
        if int(nbins) != nbins or nbins < 1:
            raise ParameterError(f"nbins must be a positive integer, got {nbins!r}")
        counts, edges = np.histogram(data, bins=int(nbins))
        counts = counts.astype(float)
    if thresholds is None:
        thresholds = {}
    elif not isinstance(thresholds, Mapping):
        thresholds = {"threshold": thresholds}

    fig = Figure(figsize=(6.0, 3.2), layout="constrained")
    _draw_histogram(fig.add_subplot(), counts, edges, thresholds, log=log)
    return fig


def _draw_histogram(ax, counts, edges, thresholds, *, log=False):
    """Histogram bars, threshold lines and the cumulative fraction (on a twin axes) in `ax`."""
    ax.stairs(counts, edges, fill=True, color="0.6", label="voxels")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("grey level")
    ax.set_ylabel("voxels")
    for k, (name, value) in enumerate(thresholds.items()):
        ax.axvline(float(value), color=f"C{(k + 1) % 10}", lw=1.5, label=f"{name} = {format_number(value)}")
    ax2 = ax.twinx()
    total = counts.sum()
    cdf = np.cumsum(counts) / total if total > 0 else np.zeros_like(counts)
    ax2.plot(edges[1:], cdf, color="C0", lw=1.2)
    ax2.set_ylim(0, 1.02)
    ax2.set_ylabel("cumulative fraction", color="C0")
    ax2.tick_params(axis="y", colors="C0")
    ax.set_xlim(edges[0], edges[-1])
    if thresholds:
        ax.legend(fontsize=8, loc="upper right", frameon=False)


def inspection(image, *, spacing=None, unit="um", nbins=256):
    """Orthogonal planes in physical proportions beside the histogram: what ``voxseg inspect`` draws.

    Examples
    --------
    >>> fig = inspection(np.arange(4 * 8 * 8).reshape(4, 8, 8), spacing=(2, 1, 1))
    >>> [ax.get_title() for ax in fig.axes[:3]]
    ['xy  (z = 2)', 'zy  (x = 4)', 'xz  (y = 4)']
    """
    data, spacing, unit = _unwrap(image, spacing, unit)
    flat = data.reshape(-1)
    if flat.dtype == bool:
        flat = flat.astype(np.uint8)
    if np.issubdtype(flat.dtype, np.floating):
        flat = flat[np.isfinite(flat)]
    counts, edges = np.histogram(flat, bins=int(nbins)) if flat.size else (np.zeros(1), np.array([0.0, 1.0]))
    nz, ny, nx = data.shape
    sz, sy, sx = spacing
    height = min(7.0 * (ny * sy + nz * sz) / (nx * sx + nz * sz), 12.0) + 0.6
    fig = Figure(figsize=(11.0, height), layout="constrained")
    planes, hist = fig.subfigures(1, 2, width_ratios=[7, 4])
    ax_xy, _, _ = _draw_orthogonal(planes, data, _position(None, data.shape), spacing, display_range(data),
                                   unit=unit)
    _add_scale_bar(ax_xy, nx * sx, unit)
    _draw_histogram(hist.add_subplot(), counts.astype(float), edges, {})
    return fig


def surface_3d(labels, *, spacing=None, label_ids=None, max_objects=50, step_size=1, unit="um"):
    """Objects as shaded 3D surfaces (marching cubes) in physical coordinates.

    Parameters
    ----------
    labels : ndarray of int, shape (z, y, x), or Volume
    spacing : sequence of 3 float, optional
    label_ids : sequence of int, optional
        Objects to draw; all by default.
    max_objects : int, optional
        Draw at most this many objects, the largest ones (None for all).
    step_size : int
        Marching-cubes step in voxels (coarser and faster when larger).
    unit : str

    Returns
    -------
    matplotlib.figure.Figure
        One 3D axes (x, y, z) with one ``Poly3DCollection`` per object.

    Examples
    --------
    >>> lab = np.zeros((5, 6, 6), np.uint8); lab[1:4, 1:4, 1:4] = 1
    >>> len(surface_3d(lab).axes[0].collections)
    1
    """
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    from ._meshes import object_ids, object_meshes

    data, spacing, unit = _unwrap(labels, spacing, unit, name="labels")
    data = _labels_like(data, data.shape)
    ids, _, total = object_ids(data, label_ids=label_ids, max_objects=max_objects)
    meshes = object_meshes(data, spacing=spacing, label_ids=ids, step_size=step_size)
    nz, ny, nx = data.shape
    sz, sy, sx = spacing
    bounds = [(-0.5 * s, (n - 0.5) * s) for n, s in ((nx, sx), (ny, sy), (nz, sz))]

    fig = Figure(figsize=(6.5, 5.5), layout="constrained")
    ax = fig.add_subplot(projection="3d")
    light = LightSource(azdeg=315, altdeg=45)
    colors = label_colors([m[0] for m in meshes]) / 255 if meshes else np.empty((0, 3))
    for (label, verts, faces), color in zip(meshes, colors):
        tris = verts[:, ::-1][faces]  # (z, y, x) -> (x, y, z)
        coll = Poly3DCollection(
            tris, facecolors=[color], edgecolor="none", shade=True, lightsource=light,
            antialiased=False,
        )
        coll.set_label(f"label {label}")
        ax.add_collection3d(coll)
    ax.set_xlim(*bounds[0])
    ax.set_ylim(*bounds[1])
    ax.set_zlim(*bounds[2])
    ax.set_box_aspect([hi - lo for lo, hi in bounds])
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_major_locator(MaxNLocator(nbins=4 if axis is ax.zaxis else 6))
    ul = unit_label(unit)
    ax.set_xlabel(f"x ({ul})")
    ax.set_ylabel(f"y ({ul})")
    ax.set_zlabel(f"z ({ul})")
    shown = len(meshes)
    ax.set_title(f"{shown} objects" if shown == total else f"{shown} largest of {total} objects")
    return fig


def distributions(table, *, unit="um", bins="auto", orientation="horizontal"):
    """Histograms of the objects' volumes and sphericities.

    Parameters
    ----------
    table : pandas.DataFrame
        The objects table; uses its ``volume`` and ``sphericity`` columns when present.
    unit : str
        Unit of the spacing the volumes were measured with.
    bins : int or str
        Passed to :func:`numpy.histogram_bin_edges`, at most 40 bins.
    orientation : {"horizontal", "vertical"}
        Panels side by side or stacked.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: volume, sphericity.

    Examples
    --------
    >>> import pandas as pd
    >>> fig = distributions(pd.DataFrame({"volume": [1.0, 2.0], "sphericity": [0.9, 0.8]}))
    >>> [ax.get_xlabel() for ax in fig.axes]
    ['volume (µm³)', 'sphericity']
    """
    if orientation == "horizontal":
        fig = Figure(figsize=(6.0, 2.6), layout="constrained")
        axes = fig.subplots(1, 2)
    elif orientation == "vertical":
        fig = Figure(figsize=(3.6, 4.8), layout="constrained")
        axes = fig.subplots(2, 1)
    else:
        raise ParameterError(f"orientation must be 'horizontal' or 'vertical', got {orientation!r}")
    ul = unit_label(unit)
    for ax, column, xlabel, color in (
        (axes[0], "volume", f"volume ({ul}³)", "C0"),
        (axes[1], "sphericity", "sphericity", "C2"),
    ):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("objects")
        values = None
        if table is not None and column in getattr(table, "columns", ()):
            values = np.asarray(table[column], dtype=float)
            values = values[np.isfinite(values)]
        if values is None or values.size == 0:
            ax.text(0.5, 0.5, f"no {column} values", ha="center", va="center", transform=ax.transAxes)
            ax.set_yticks([])
            continue
        edges = np.histogram_bin_edges(values, bins=bins)
        if edges.size > 41:
            edges = np.histogram_bin_edges(values, bins=40)
        counts, edges = np.histogram(values, bins=edges)
        ax.stairs(counts, edges, fill=True, color=color, alpha=0.8)
        ax.axvline(float(np.median(values)), color="k", lw=1, ls="--", label="median")
        ax.legend(fontsize=7, frameon=False)
    return fig


def threshold_comparison(image, results, *, spacing=None, unit="um", position=None, ncols=None):
    """Several thresholds side by side: the binarised orthogonal planes of each.

    The first panel shows the image; then one panel per method with the
    binary mask's xy, zy and xz planes through `position`, titled with the
    threshold value, the foreground fraction and the object count.

    Parameters
    ----------
    image : ndarray, shape (z, y, x), or Volume
    results : sequence of dict
        Each with ``name`` and ``value``, and optionally ``foreground_fraction``,
        ``object_count`` and ``mask`` (``image > value`` when missing).
    spacing : sequence of 3 float, optional
    unit : str
    position : sequence of 3 int, optional
        Voxel indices (z, y, x) of the planes; the centre by default.
    ncols : int, optional
        Panels per row (at most 4 by default).

    Returns
    -------
    matplotlib.figure.Figure
        One subfigure per panel (image first), each with three image axes.

    Examples
    --------
    >>> img = np.arange(64.0).reshape(4, 4, 4)
    >>> fig = threshold_comparison(img, [{"name": "mean", "value": 31.5}])
    >>> len(fig.axes), fig.subfigs[1].get_suptitle()
    (6, 'mean\\nthreshold 31.5')
    """
    data, spacing, unit = _unwrap(image, spacing, unit)
    position = _position(position, data.shape)
    nz, ny, nx = data.shape
    sz, sy, sx = spacing
    results = list(results)
    panels = [("image", None, data, display_range(data))]
    for r in results:
        if not isinstance(r, Mapping) or "name" not in r or "value" not in r:
            raise ParameterError(f"each result must be a dict with 'name' and 'value', got {r!r}")
        mask = r.get("mask")
        mask = data > r["value"] if mask is None else np.asarray(mask)
        if mask.shape != data.shape:
            raise ParameterError(
                f"mask of {r['name']!r} must have the image's shape {data.shape!r}, got {mask.shape!r}"
            )
        panels.append((str(r["name"]), r, mask.astype(np.uint8), (0, 1)))
    n = len(panels)
    if ncols is None:
        ncols = min(n, 4)
    if int(ncols) != ncols or ncols < 1:
        raise ParameterError(f"ncols must be a positive integer, got {ncols!r}")
    ncols = min(int(ncols), n)
    nrows = math.ceil(n / ncols)
    panel_w = 3.2
    panel_h = panel_w * (ny * sy + nz * sz) / (nx * sx + nz * sz) + 0.55
    fig = Figure(figsize=(panel_w * ncols, min(panel_h * nrows, 60.0)), layout="constrained")
    subfigs = np.asarray(fig.subfigures(nrows, ncols, squeeze=False)).ravel()
    for k, sub in enumerate(subfigs):
        if k >= n:
            continue
        name, r, volume, vrange = panels[k]
        _draw_orthogonal(sub, volume, position, spacing, vrange, crosshair=False, ticks=False, fontsize=7)
        if r is None:
            title = f"image\nspacing {sz:g} × {sy:g} × {sx:g} {unit_label(unit)}"
        else:
            parts = [f"threshold {format_number(r['value'])}"]
            if r.get("foreground_fraction") is not None:
                parts.append(f"foreground {float(r['foreground_fraction']):.1%}")
            if r.get("object_count") is not None:
                parts.append(f"{int(r['object_count'])} objects")
            title = f"{name}\n" + ", ".join(parts)
        sub.suptitle(title, fontsize=9)
    return fig


def save_figure(fig, path, *, dpi=150):
    """Write `fig` to `path` (PNG, or the format named by the suffix), byte-for-byte reproducibly.

    Metadata that would change from run to run (software version, dates) is
    left out.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or os.PathLike
    dpi : float

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    OutputError
        If the file cannot be written.
    """
    import pathlib

    path = pathlib.Path(os.fspath(path))
    fmt = path.suffix.lower().lstrip(".") or "png"
    metadata = {
        "png": {"Software": None},
        "svg": {"Date": None, "Creator": None},
        "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None},
    }.get(fmt)
    try:
        fig.savefig(path, dpi=dpi, format=fmt, metadata=metadata)
    except OSError as exc:
        raise OutputError(f"cannot write figure to {str(path)!r}: {exc}") from exc
    return path
