"""Measurements of labelled objects in physical units, and their surface meshes.

Every length is in the unit of the voxel spacing, areas in unit^2 and
volumes in unit^3; ``spacing=None`` means 1 per axis, i.e. voxels. The
axes are (z, y, x) throughout.

The work is done per object on its bounding-box crop: one pass over the
label image finds the boxes (:func:`scipy.ndimage.find_objects`), then each
object's boolean crop gives its moments (from three 2-D projections), its
marching-cubes mesh (area, enclosed volume), its convex hull (solidity,
Feret diameter) and its intensity statistics. No full-volume float
temporary is ever made.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

from .errors import OutputError, OutputExistsError, ParameterError
from .volume import Volume, as_spacing, voxel_volume

__all__ = [
    "measure",
    "summarize",
    "object_mesh",
    "export_meshes",
    "COLUMNS",
    "INTENSITY_STATISTICS",
]

#: Columns of :func:`measure` without an intensity image, with their dtypes.
COLUMNS = {
    "label": "int64",
    "voxels": "int64",
    "volume": "float64",
    "surface_area": "float64",
    "equivalent_diameter": "float64",
    "sphericity": "float64",
    "centroid_z": "float64",
    "centroid_y": "float64",
    "centroid_x": "float64",
    "bbox_z0": "int64",
    "bbox_y0": "int64",
    "bbox_x0": "int64",
    "bbox_z1": "int64",
    "bbox_y1": "int64",
    "bbox_x1": "int64",
    "axis_major_length": "float64",
    "axis_minor_length": "float64",
    "elongation": "float64",
    "solidity": "float64",
    "feret_max": "float64",
    "touches_border": "bool",
}

#: Statistics computed per object (and per channel) from an intensity image.
INTENSITY_STATISTICS = ("mean", "min", "max", "std", "median", "sum")

# Above this largest label, labels are renumbered first so that the
# per-label tables of find_objects stay small.
_MAX_DIRECT_LABEL = 1 << 22

_MESH_FORMATS = ("ply", "stl")


# --------------------------------------------------------------------------
# input checking


def _as_labels(labels):
    """Return (labels as a 3-D non-negative integer ndarray, spacing or None, unit or None)."""
    spacing = unit = None
    if isinstance(labels, Volume):
        spacing, unit = labels.spacing, labels.unit
        labels = labels.data
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ParameterError(
            f"labels must be a 3-D (z, y, x) array, got shape {labels.shape!r}"
        )
    if labels.dtype == bool:
        labels = labels.view(np.uint8)
    elif not np.issubdtype(labels.dtype, np.integer):
        raise ParameterError(
            f"labels must have an integer dtype, got dtype {labels.dtype}"
        )
    if labels.size and np.issubdtype(labels.dtype, np.signedinteger):
        low = labels.min()
        if low < 0:
            raise ParameterError(f"labels must be >= 0 (0 is background), got minimum {low}")
    return labels, spacing, unit


def _as_intensity(intensity, shape):
    """Return (intensity ndarray with a trailing channel axis, multichannel flag)."""
    if isinstance(intensity, Volume):
        intensity = intensity.data
    intensity = np.asarray(intensity)
    if not (np.issubdtype(intensity.dtype, np.integer)
            or np.issubdtype(intensity.dtype, np.floating)
            or intensity.dtype == bool):
        raise ParameterError(
            f"intensity must be a real numeric array, got dtype {intensity.dtype}"
        )
    if intensity.shape == shape:
        return intensity[..., np.newaxis], False
    if intensity.ndim == 4 and intensity.shape[:3] == shape and intensity.shape[3] >= 1:
        return intensity, True
    raise ParameterError(
        f"intensity must have the labels' shape {shape!r} or that shape plus a "
        f"trailing channel axis, got shape {intensity.shape!r}"
    )


def _bounding_boxes(labels):
    """Return (sorted object labels as int64, list of slice tuples), one pass over `labels`."""
    from scipy import ndimage as ndi

    if labels.size == 0:
        return np.zeros(0, np.int64), []
    top = int(labels.max())
    if top == 0:
        return np.zeros(0, np.int64), []
    if top <= _MAX_DIRECT_LABEL:
        boxes = ndi.find_objects(labels)
        present = [i for i, box in enumerate(boxes) if box is not None]
        return np.asarray(present, np.int64) + 1, [boxes[i] for i in present]
    # Sparse huge labels: one renumbering copy, then map the boxes back.
    import fastremap

    renumbered, mapping = fastremap.renumber(labels, preserve_zero=True, in_place=False)
    boxes = ndi.find_objects(renumbered)
    back = sorted((int(orig), new) for orig, new in mapping.items() if new != 0)
    return np.asarray([orig for orig, _ in back], np.int64), [boxes[new - 1] for _, new in back]


# --------------------------------------------------------------------------
# per-object geometry on a crop


def _padded(mask, pad=1, step=1):
    """`mask` as float32 with `pad` zero voxels around it, so that its mesh is closed.

    With ``step > 1`` the far side gets extra zeros so that the last sampled
    plane (an index multiple of `step`) still lies outside the object.
    """
    shape = np.asarray(mask.shape) + 2 * pad
    shape += (-(shape - 1)) % step
    out = np.zeros(tuple(shape), np.float32)
    out[pad:pad + mask.shape[0], pad:pad + mask.shape[1], pad:pad + mask.shape[2]] = mask
    return out


def _crop_mesh(mask, step_size=1):
    """Marching-cubes mesh (level 0.5) of a boolean crop, in voxel units.

    Returns float64 vertices (z, y, x) in the crop's index coordinates (a
    vertex at ``-0.5`` lies half a voxel before the crop) and int64 faces,
    wound counter-clockwise seen from outside when read as (x, y, z).
    """
    from skimage.measure import marching_cubes

    pad = step_size
    verts, faces, _, _ = marching_cubes(_padded(mask, pad, step_size), 0.5, step_size=step_size)
    verts = verts.astype(np.float64)
    verts -= pad
    return verts, faces.astype(np.int64, copy=False)


# Surface area and enclosed volume of the marching-cubes mesh, without the mesh.
#
# On a binary mask at level 0.5, the triangles that marching cubes puts in a
# cube of 2x2x2 voxel centres depend only on which of its 8 corners are
# inside (Lewiner's tests see only those 8 values). So the mesh area is a sum
# over cubes of a per-configuration area, and the enclosed volume
# (1/6) sum_tri v0 . (v1 x v2) splits per cube with origin o into
# L0[config] + o . N[config], where L0 is the triple-product sum in cube
# coordinates and N the sum of the triangles' doubled area vectors. The
# tables are built once by running scikit-image's marching cubes on each of
# the 254 non-trivial 2x2x2 configurations, and rescaled per spacing.

_CONFIG_TRIANGLES = None


def _config_triangles():
    global _CONFIG_TRIANGLES
    if _CONFIG_TRIANGLES is None:
        from skimage.measure import marching_cubes

        triangles = {}
        for code in range(1, 255):
            cube = np.array([(code >> bit) & 1 for bit in range(8)], np.float32).reshape(2, 2, 2)
            verts, faces, _, _ = marching_cubes(cube, 0.5)
            triangles[code] = verts.astype(np.float64)[faces]
        _CONFIG_TRIANGLES = triangles
    return _CONFIG_TRIANGLES


@functools.lru_cache(maxsize=16)
def _config_tables(spacing):
    """(area[256], L0[256], N[256, 3]) at `spacing` (a tuple), see above."""
    area = np.zeros(256)
    l0 = np.zeros(256)
    normal = np.zeros((256, 3))
    scale = np.asarray(spacing)
    for code, tri in _config_triangles().items():
        a, b, c = (tri * scale).transpose(1, 0, 2)
        cross = np.cross(b - a, c - a)
        area[code] = 0.5 * np.sqrt((cross * cross).sum(1)).sum()
        l0[code] = (a * np.cross(b, c)).sum()
        normal[code] = cross.sum(0)
    return area, l0, normal


def _cube_configs(mask):
    """Configuration code (0..255) of every 2x2x2 cube of `mask` padded with one zero voxel."""
    padded = np.zeros(tuple(np.asarray(mask.shape) + 2), np.uint8)
    padded[1:-1, 1:-1, 1:-1] = mask
    nz, ny, nx = mask.shape[0] + 1, mask.shape[1] + 1, mask.shape[2] + 1
    codes = padded[:nz, :ny, :nx].copy()
    for bit, (dz, dy, dx) in enumerate(
        [(0, 0, 1), (0, 1, 0), (0, 1, 1), (1, 0, 0), (1, 0, 1), (1, 1, 0), (1, 1, 1)], start=1
    ):
        codes |= padded[dz:dz + nz, dy:dy + ny, dx:dx + nx] << bit
    return codes


def _mesh_area_and_volume(mask, spacing):
    """Area and enclosed volume of the marching-cubes mesh of `mask` (padded by one voxel)."""
    area, l0, normal = _config_tables(spacing)
    codes = _cube_configs(mask)
    counts = np.bincount(codes.ravel(), minlength=256)
    surface = float(counts @ area)
    volume = float(counts @ l0)
    for axis in range(3):
        profile = normal[:, axis][codes].sum(axis=tuple(k for k in range(3) if k != axis))
        volume += spacing[axis] * float(np.arange(profile.size) @ profile)
    return surface, abs(volume) / 6.0


def _hull_candidates(mask):
    """Points (crop index units) whose convex hull equals that of the mask's marching-cubes mesh.

    For a binary mask at level 0.5 every mesh vertex is a voxel centre moved
    half a voxel along one axis, so the hull of the mesh is the hull of the
    "octahedra" ``c +- 0.5 e_k`` of all voxel centres ``c``: the hull of the
    first and last voxel of every grid line, pushed out by half a voxel.

    Most of those points are not vertices of the hull and are dropped
    (dropping non-vertices leaves the hull unchanged). Take the point
    ``p = c - 0.5 e_x`` of the line starting at voxel ``c``, and the line
    next to it along y (same z). If that line starts at least one voxel
    further out, ``p`` lies in the triangle formed by that line's point,
    ``c + 0.5 e_y`` (or ``- 0.5 e_y``) and the far end of ``p``'s own line.
    If both neighbouring lines start exactly as far out as ``p``'s, or
    further in on average, ``p`` lies on or behind the segment joining their
    points. The same holds for the neighbours along z, for the line ends and
    for the other two axes.
    """
    out = []
    for axis in range(3):
        others = [k for k in range(3) if k != axis]
        n = mask.shape[axis]
        first = np.argmax(mask, axis=axis)
        last = (n - 1) - np.argmax(np.flip(mask, axis=axis), axis=axis)
        valid = mask.any(axis=axis)
        # both ends at once: outward position of the first (negated) and last voxel
        g = np.stack([-first, last])
        drop = np.zeros(g.shape, bool)
        if g.shape[1] > 1:
            v0, v1 = valid[:-1], valid[1:]
            g0, g1 = g[:, :-1], g[:, 1:]
            drop[:, 1:] |= v0 & (g0 > g1)
            drop[:, :-1] |= v1 & (g1 > g0)
        if g.shape[1] > 2:
            drop[:, 1:-1] |= valid[:-2] & valid[2:] & (2 * g[:, 1:-1] <= g[:, :-2] + g[:, 2:])
        if g.shape[2] > 1:
            v0, v1 = valid[:, :-1], valid[:, 1:]
            g0, g1 = g[:, :, :-1], g[:, :, 1:]
            drop[:, :, 1:] |= v0 & (g0 > g1)
            drop[:, :, :-1] |= v1 & (g1 > g0)
        if g.shape[2] > 2:
            drop[:, :, 1:-1] |= (valid[:, :-2] & valid[:, 2:]
                                 & (2 * g[:, :, 1:-1] <= g[:, :, :-2] + g[:, :, 2:]))
        side, i, j = np.nonzero(valid & ~drop)
        pts = np.empty((i.size, 3), np.float64)
        pts[:, others[0]] = i
        pts[:, others[1]] = j
        # side 0: first voxel - 0.5; side 1: last voxel + 0.5
        pts[:, axis] = np.abs(g[side, i, j]) + (side - 0.5)
        out.append(pts)
    return np.concatenate(out)


def _max_distance(points):
    """Largest distance between two of `points` (n, 3)."""
    from scipy.spatial.distance import cdist, pdist

    if len(points) < 2:
        return 0.0
    if len(points) <= 2048:
        return math.sqrt(float(pdist(points, "sqeuclidean").max()))
    best = 0.0
    for start in range(0, len(points), 1024):
        best = max(best, float(cdist(points[start:start + 1024], points[start:], "sqeuclidean").max()))
    return math.sqrt(best)


def _hull_volume_and_feret(points):
    """Volume of the convex hull of `points` and the largest distance between two of them.

    Qhull runs on joggled input ("QJ"): the points lie on a half-voxel
    lattice with many coplanar facets, which Qhull otherwise merges at
    twice the cost. The joggle is about 1e-11 of the extent, so the volume
    is exact to ~1e-8 relative; the vertices it reports include every true
    hull vertex, and the Feret diameter is computed on the exact points.
    """
    from scipy.spatial import ConvexHull, QhullError

    try:
        hull = ConvexHull(points, qhull_options="QJ")
    except QhullError:  # needs 4 points; a padded mask always gives at least 6
        return math.nan, _max_distance(points)
    return float(hull.volume), _max_distance(points[hull.vertices])


def _moments(mask):
    """Voxel count, mean (3,) and covariance (3, 3) of the voxel centres, in crop index units."""
    pzy = np.count_nonzero(mask, axis=2).astype(np.float64)
    pzx = np.count_nonzero(mask, axis=1).astype(np.float64)
    pyx = np.count_nonzero(mask, axis=0).astype(np.float64)
    pz = pzy.sum(1)
    py = pzy.sum(0)
    px = pzx.sum(0)
    count = pz.sum()
    z = np.arange(mask.shape[0], dtype=np.float64)
    y = np.arange(mask.shape[1], dtype=np.float64)
    x = np.arange(mask.shape[2], dtype=np.float64)
    mean = np.array([pz @ z, py @ y, px @ x]) / count
    zc, yc, xc = z - mean[0], y - mean[1], x - mean[2]
    czy = zc @ pzy @ yc
    czx = zc @ pzx @ xc
    cyx = yc @ pyx @ xc
    cov = np.array([
        [pz @ (zc * zc), czy, czx],
        [czy, py @ (yc * yc), cyx],
        [czx, cyx, px @ (xc * xc)],
    ]) / count
    return int(count), mean, cov


# --------------------------------------------------------------------------
# public API


def _empty_columns(n, channels, multichannel):
    cols = {name: np.zeros(n, dtype) for name, dtype in COLUMNS.items()}
    for stat in INTENSITY_STATISTICS:
        for c in range(channels):
            cols[_intensity_name(stat, c, multichannel)] = np.zeros(n, np.float64)
    return cols


def _intensity_name(stat, channel, multichannel):
    return f"intensity_{stat}_c{channel}" if multichannel else f"intensity_{stat}"


def measure(labels, intensity=None, *, spacing=None):
    """Measure every labelled object, in the physical units of `spacing`.

    Parameters
    ----------
    labels : (Z, Y, X) ndarray of int or Volume
        Label image; 0 is background and labels need not be consecutive.
        Any integer dtype (or bool, as one object labelled 1); negative
        values are refused. A :class:`~voxseg.volume.Volume` brings its
        spacing (used when `spacing` is None) and unit.
    intensity : (Z, Y, X) or (Z, Y, X, C) ndarray, optional
        Intensity image of the labels' shape, or with a trailing channel
        axis. With a channel axis the intensity columns get a suffix
        ``_c0``, ``_c1``, ... (even for ``C == 1``).
    spacing : float or sequence of 3 float, optional
        Voxel size along (z, y, x). Default 1 per axis (voxels).

    Returns
    -------
    pandas.DataFrame
        One row per object, sorted by label, with the columns of
        :data:`COLUMNS` (then the intensity columns) below. ``unit`` is the
        unit of `spacing`. The spacing (and the unit of a Volume) are kept
        in ``table.attrs``.

        ``label``, ``voxels`` (int64)
            The label and its number of voxels.
        ``volume`` (unit^3)
            ``voxels`` times the volume of one voxel.
        ``surface_area`` (unit^2)
            Area of the marching-cubes mesh (level 0.5) of the object's mask
            padded with one zero voxel, built at the voxel spacing (as
            ``skimage.measure.mesh_surface_area`` of it). On a binary mask
            this mesh is terraced, so it overestimates the area of a smooth
            surface: by about 8 to 9 % for a digitised ball on cubic voxels,
            and about 19 % on (2, 0.5, 0.5) voxels.
        ``equivalent_diameter`` (unit)
            Diameter of the ball of the same ``volume``.
        ``sphericity``
            ``pi^(1/3) (6 volume)^(2/3) / surface_area``. Through the mesh
            area, a digitised ball gives about 0.92 on cubic voxels and 0.84
            on (2, 0.5, 0.5) voxels; the mesh cuts voxel corners, so tiny
            objects can exceed 1 (one voxel on cubic voxels: 2.79).
        ``centroid_z``, ``centroid_y``, ``centroid_x`` (unit)
            Mean of the voxel centres, voxel ``i`` being centred at
            ``i * spacing``.
        ``bbox_z0`` ... ``bbox_x1`` (int64, voxels)
            Bounding box, half-open like slices: ``labels[z0:z1, y0:y1, x0:x1]``.
        ``axis_major_length``, ``axis_minor_length`` (unit)
            ``sqrt(20 * lambda)`` for the largest and smallest eigenvalue
            ``lambda`` of the covariance of the voxel centres in physical
            units: the full axis lengths ``2a`` of the solid ellipsoid with
            the same second moments (the variance along a semi-axis ``a``
            of a solid ellipsoid is ``a^2 / 5``). This is scikit-image's
            3-D ``regionprops`` convention; its 2-D ``4 * sqrt(lambda)`` is
            the same idea for a filled ellipse.
        ``elongation``
            ``axis_major_length / axis_minor_length``; NaN when the minor
            axis is 0 (an object one voxel thick, e.g. a single voxel).
        ``solidity``
            Volume enclosed by the marching-cubes mesh divided by the volume
            of that mesh's convex hull (at most 1). A digitised ball of
            radius 8 to 30 gives 0.94 to 0.975 on cubic voxels and 0.90 to
            0.96 on (2, 0.5, 0.5) voxels (the terraces again); a single
            voxel, whose mesh is an octahedron, gives 1.
        ``feret_max`` (unit)
            Largest distance between two vertices of the marching-cubes
            mesh (taken on its convex hull). A run of ``n`` voxels along x
            has ``feret_max = n * spacing_x``; a single voxel has the
            largest spacing.
        ``touches_border`` (bool)
            Whether the object has a voxel on a face of the volume.
        ``intensity_mean``, ``_min``, ``_max``, ``_std``, ``_median``, ``_sum`` (float64)
            Statistics of the intensity over the object's voxels, per
            channel; ``std`` is the population standard deviation (ddof=0),
            sums are accumulated in float64.

    Raises
    ------
    ParameterError
        If `labels` is not 3-D, not integer or negative, if `spacing` is
        invalid, or if `intensity` has the wrong shape or dtype.

    See Also
    --------
    summarize : count and volume / area statistics of the table.
    object_mesh : the mesh behind ``surface_area``.

    Notes
    -----
    An empty label image gives an empty table with every column and dtype.
    A single-voxel object is measured without warnings: its mesh is an
    octahedron (area ``sqrt(3)`` at unit spacing), solidity 1, feret_max
    the largest spacing, axis lengths 0 and elongation NaN.

    ``surface_area`` equals ``skimage.measure.mesh_surface_area`` of
    ``skimage.measure.marching_cubes(padded_mask, 0.5, spacing=spacing)``,
    but is computed without building the mesh: on a binary mask each
    2x2x2 cube's triangles depend only on its 8 corners, so area and
    enclosed volume are sums of per-configuration tables (made once per
    spacing with scikit-image's marching cubes). The convex hull is that of
    the mesh vertices, computed by Qhull (joggled input, volume exact to
    about 1e-8 relative) from the few line ends of the mask that can be
    hull vertices. Per object, only its bounding-box
    crop is read.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((5, 6, 6), np.uint8)
    >>> labels[1:4, 1:3, 1:4] = 7
    >>> table = measure(labels, spacing=(2.0, 0.5, 0.5))
    >>> table[["label", "voxels", "volume", "centroid_z", "bbox_x1"]]
       label  voxels  volume  centroid_z  bbox_x1
    0      7      18     9.0         4.0        4
    >>> bool(table.loc[0, "touches_border"])
    False
    """
    import pandas as pd

    labels, vol_spacing, unit = _as_labels(labels)
    if spacing is None:
        spacing = vol_spacing
    spacing_t = as_spacing(spacing, 3)
    spacing = np.asarray(spacing_t)
    shape = labels.shape

    if intensity is not None:
        intensity, multichannel = _as_intensity(intensity, shape)
        channels = intensity.shape[3]
    else:
        multichannel, channels = False, 0

    object_labels, boxes = _bounding_boxes(labels)
    n = len(object_labels)
    cols = _empty_columns(n, channels, multichannel)
    cols["label"][:] = object_labels
    stats = {s: np.zeros((n, channels)) for s in INTENSITY_STATISTICS}
    scale2 = np.outer(spacing, spacing)
    centroid = np.zeros((n, 3))
    bbox = np.zeros((n, 6), np.int64)
    eig = np.zeros((n, 2))
    geometry = np.zeros((n, 4))  # area, mesh volume, hull volume, feret

    for i, (lab, box) in enumerate(zip(object_labels.tolist(), boxes)):
        mask = labels[box] == lab
        origin = [s.start for s in box]
        bbox[i, :3] = origin
        bbox[i, 3:] = [s.stop for s in box]
        count, mean, cov = _moments(mask)
        cols["voxels"][i] = count
        centroid[i] = mean + origin
        ev = np.linalg.eigvalsh(cov * scale2)
        eig[i] = ev[-1], ev[0]

        area, mesh_volume = _mesh_area_and_volume(mask, spacing_t)
        hull_volume, feret = _hull_volume_and_feret(_hull_candidates(mask) * spacing)
        geometry[i] = area, mesh_volume, hull_volume, feret

        if channels:
            values = intensity[box][mask].astype(np.float64, copy=False)
            total = values.sum(axis=0)
            stats["sum"][i] = total
            stats["mean"][i] = total / count
            stats["min"][i] = values.min(axis=0)
            stats["max"][i] = values.max(axis=0)
            stats["std"][i] = values.std(axis=0)
            stats["median"][i] = np.median(values, axis=0)

    volume = cols["voxels"] * voxel_volume(spacing_t)
    area = geometry[:, 0]
    cols["volume"][:] = volume
    cols["surface_area"][:] = area
    cols["equivalent_diameter"][:] = np.cbrt(6.0 * volume / np.pi)
    cols["sphericity"][:] = np.cbrt(np.pi) * np.cbrt(6.0 * volume) ** 2 / area
    centroid *= spacing
    for k, axis in enumerate("zyx"):
        cols[f"centroid_{axis}"][:] = centroid[:, k]
        cols[f"bbox_{axis}0"][:] = bbox[:, k]
        cols[f"bbox_{axis}1"][:] = bbox[:, 3 + k]
    # an eigenvalue within rounding noise of 0 (a flat or straight object) is 0
    eig[eig[:, 1] <= 1e-12 * eig[:, 0], 1] = 0.0
    axes = np.sqrt(20.0 * np.clip(eig, 0.0, None))
    cols["axis_major_length"][:] = axes[:, 0]
    cols["axis_minor_length"][:] = axes[:, 1]
    cols["elongation"][:] = axes[:, 0] / np.where(axes[:, 1] > 0, axes[:, 1], np.nan)
    cols["solidity"][:] = np.minimum(geometry[:, 1] / geometry[:, 2], 1.0)
    cols["feret_max"][:] = geometry[:, 3]
    cols["touches_border"][:] = (bbox[:, :3] == 0).any(1) | (bbox[:, 3:] == shape).any(1)
    for stat in INTENSITY_STATISTICS:
        for c in range(channels):
            cols[_intensity_name(stat, c, multichannel)][:] = stats[stat][:, c]

    table = pd.DataFrame(cols)
    table.attrs["spacing"] = tuple(float(s) for s in spacing)
    if unit is not None:
        table.attrs["unit"] = unit
    return table


def summarize(table, *, unit=None) -> dict:
    """Count and volume / surface-area statistics of a :func:`measure` table.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`measure` (at least the ``volume`` and
        ``surface_area`` columns).
    unit : str, optional
        Unit of the spacing the table was measured with; default
        ``table.attrs["unit"]`` when present, else ``"pixel"``.

    Returns
    -------
    dict
        JSON-serialisable plain values: ``count`` (int), ``unit``,
        ``volume_unit`` (``unit^3``), ``surface_area_unit`` (``unit^2``),
        and for ``volume`` and ``surface_area``: ``<column>_total``,
        ``_min``, ``_max``, ``_mean`` and ``_std`` (sample standard
        deviation, ddof=1, as pandas). A statistic that is undefined (no
        object; ``std`` of one object; NaN) is ``None``; the total of no
        object is ``0.0``.

    Raises
    ------
    ParameterError
        If `table` lacks a ``volume`` or ``surface_area`` column.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((4, 4, 8), np.uint8)
    >>> labels[1:3, 1:3, 1:3] = 1
    >>> labels[1:3, 1:3, 4:7] = 2
    >>> stats = summarize(measure(labels, spacing=0.5), unit="um")
    >>> stats["count"], stats["volume_total"], stats["volume_max"], stats["volume_unit"]
    (2, 2.5, 1.5, 'um^3')
    >>> summarize(measure(np.zeros((2, 2, 2), np.uint8)))["volume_mean"] is None
    True
    """
    missing = [c for c in ("volume", "surface_area") if c not in getattr(table, "columns", ())]
    if missing:
        raise ParameterError(
            f"table must be a measure() table with columns 'volume' and 'surface_area', "
            f"missing {missing!r}"
        )
    if unit is None:
        unit = table.attrs.get("unit", "pixel")

    def plain(value):
        value = float(value)
        return value if math.isfinite(value) else None

    out = {
        "count": int(len(table)),
        "unit": str(unit),
        "volume_unit": f"{unit}^3",
        "surface_area_unit": f"{unit}^2",
    }
    for column in ("volume", "surface_area"):
        values = table[column].to_numpy(dtype=np.float64)
        n = values.size
        out[f"{column}_total"] = plain(values.sum()) if n else 0.0
        out[f"{column}_min"] = plain(values.min()) if n else None
        out[f"{column}_max"] = plain(values.max()) if n else None
        out[f"{column}_mean"] = plain(values.mean()) if n else None
        out[f"{column}_std"] = plain(values.std(ddof=1)) if n > 1 else None
    return out


def _as_bbox(bbox, shape):
    """A (z, y, x) tuple of slices from slices or ``(z0, y0, x0, z1, y1, x1)``."""
    try:
        if len(bbox) == 3 and all(isinstance(s, slice) for s in bbox):
            box = tuple(slice(*s.indices(n)[:2]) for s, n in zip(bbox, shape))
        elif len(bbox) == 6:
            lo, hi = [int(v) for v in bbox[:3]], [int(v) for v in bbox[3:]]
            box = tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(lo, hi, shape))
        else:
            raise ValueError
    except (TypeError, ValueError):
        raise ParameterError(
            f"bbox must be 3 slices or (z0, y0, x0, z1, y1, x1), got {bbox!r}"
        ) from None
    if any(s.stop <= s.start for s in box):
        raise ParameterError(f"bbox must not be empty, got {bbox!r}")
    return box


def object_mesh(labels, label, *, spacing, bbox=None, step_size=1):
    """Closed surface mesh of one labelled object, in physical coordinates.

    The marching-cubes mesh (level 0.5) of the object's mask padded with
    zeros, the mesh behind ``surface_area`` in :func:`measure`.

    Parameters
    ----------
    labels : (Z, Y, X) ndarray of int or Volume
        Label image.
    label : int
        The object.
    spacing : float or sequence of 3 float or None
        Voxel size along (z, y, x); None means 1 (or the Volume's spacing).
    bbox : tuple of 3 slices or (z0, y0, x0, z1, y1, x1), optional
        The object's bounding box (``scipy.ndimage.find_objects`` slices or
        the ``bbox_*`` columns of :func:`measure`) to skip searching it.
    step_size : int
        Marching-cubes step in voxels; larger is coarser and faster.

    Returns
    -------
    verts : (V, 3) float64 ndarray
        Vertices (z, y, x) in the physical coordinates of the whole volume,
        voxel ``i`` being centred at ``i * spacing``.
    faces : (F, 3) int64 ndarray
        Triangles, counter-clockwise seen from outside when the vertices
        are read as (x, y, z), i.e. ``verts[:, ::-1]``.

    Raises
    ------
    ParameterError
        If `label` is not in `labels` (or not in `bbox`), or `bbox` or
        `step_size` is invalid.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((3, 3, 3), np.uint8)
    >>> labels[1, 1, 1] = 4
    >>> verts, faces = object_mesh(labels, 4, spacing=(2.0, 1.0, 1.0))
    >>> verts.min(axis=0), verts.max(axis=0), len(faces)
    (array([1. , 0.5, 0.5]), array([3. , 1.5, 1.5]), 8)
    """
    labels, vol_spacing, _ = _as_labels(labels)
    if spacing is None:
        spacing = vol_spacing
    spacing = np.asarray(as_spacing(spacing, 3))
    if isinstance(step_size, bool) or not isinstance(step_size, (int, np.integer)) or step_size < 1:
        raise ParameterError(f"step_size must be an integer >= 1, got {step_size!r}")
    if bbox is None:
        mask = labels == label
        box = []
        for axis in range(3):
            hits = np.flatnonzero(mask.any(axis=tuple(k for k in range(3) if k != axis)))
            if hits.size == 0:
                raise ParameterError(f"label {label!r} is not in labels")
            box.append(slice(int(hits[0]), int(hits[-1]) + 1))
        box = tuple(box)
        mask = mask[box]
    else:
        box = _as_bbox(bbox, labels.shape)
        mask = labels[box] == label
        if not mask.any():
            raise ParameterError(f"label {label!r} is not in labels within bbox {bbox!r}")
    return _box_mesh(mask, box, spacing, int(step_size))


def _box_mesh(mask, box, spacing, step_size=1):
    """Mesh of the boolean crop `mask` taken at `box`, in whole-volume physical coordinates."""
    verts, faces = _crop_mesh(mask, step_size)
    verts += [s.start for s in box]
    verts *= spacing
    return verts, faces


def export_meshes(labels, directory, *, spacing=None, format="ply", overwrite=False):
    """Write one surface mesh file per object, and a scene with all of them.

    Files are ``label_<id>.<format>`` and ``scene.glb`` (every object as a
    node named ``label_<id>``), written with trimesh. Vertices are in
    physical units (the unit of `spacing`) in the frame of the whole
    volume, and are written in (x, y, z) order - the order mesh viewers
    expect - with outward-facing triangles. No object, no file.

    Parameters
    ----------
    labels : (Z, Y, X) ndarray of int or Volume
        Label image.
    directory : str or path-like
        Output folder, created if needed.
    spacing : float or sequence of 3 float, optional
        Voxel size along (z, y, x); default 1 (or the Volume's spacing).
    format : {"ply", "stl"}
        Format of the per-object files (binary).
    overwrite : bool
        Replace existing files instead of raising.

    Returns
    -------
    list of pathlib.Path
        The files written, per object in label order, then ``scene.glb``.

    Raises
    ------
    ParameterError
        If `format` is unknown.
    OutputExistsError
        If a file exists and `overwrite` is False (nothing is written).
    OutputError
        If a file cannot be written.
    """
    import trimesh

    fmt = str(format).lower().lstrip(".")
    if fmt not in _MESH_FORMATS:
        raise ParameterError(f"format must be one of {_MESH_FORMATS!r}, got {format!r}")
    labels, vol_spacing, _ = _as_labels(labels)
    if spacing is None:
        spacing = vol_spacing
    spacing = as_spacing(spacing, 3)
    directory = Path(directory)
    object_labels, boxes = _bounding_boxes(labels)
    if not len(object_labels):
        _make_dir(directory)
        return []
    paths = [directory / f"label_{lab}.{fmt}" for lab in object_labels.tolist()]
    scene_path = directory / "scene.glb"
    if not overwrite:
        for path in [*paths, scene_path]:
            if path.exists():
                raise OutputExistsError(
                    f"{str(path)!r} exists; pass overwrite=True to replace it"
                )
    _make_dir(directory)
    scene = trimesh.Scene()
    try:
        for lab, box, path in zip(object_labels.tolist(), boxes, paths):
            verts, faces = _box_mesh(labels[box] == lab, box, np.asarray(spacing))
            mesh = trimesh.Trimesh(vertices=verts[:, ::-1], faces=faces, process=False)
            mesh.export(path, file_type=fmt)
            scene.add_geometry(mesh, geom_name=f"label_{lab}", node_name=f"label_{lab}")
        scene.export(scene_path, file_type="glb")
    except OSError as exc:
        raise OutputError(f"cannot write meshes to {str(directory)!r}: {exc}") from exc
    return [*paths, scene_path]


def _make_dir(directory):
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create directory {str(directory)!r}: {exc}") from exc
