"""Measurements of labelled objects in physical units, and their surface meshes.

Every length is in the unit of the voxel spacing, areas in unit^2 and
volumes in unit^3; ``spacing=None`` means 1 per axis, i.e. voxels. The
axes are (z, y, x) throughout.

The work is done per object on its bounding-box crop: one pass over the
label image finds the boxes (:func:`scipy.ndimage.find_objects`), then each
object's boolean crop gives its moments (from three 2-D projections), its
convex hull (solidity, Feret diameter), its intensity statistics and, in
batches of objects, its surface mesh (area; see :func:`measure` for how it
is smoothed). No full-volume float temporary is ever made.
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
    "measure_columns",
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
        from .morphology import bounding_boxes

        boxes = bounding_boxes(labels, top)
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


# The marching-cubes mesh of a binary mask, without scikit-image's mesh.
#
# On a binary mask at level 0.5, the triangles that marching cubes puts in a
# cube of 2x2x2 voxel centres depend only on which of its 8 corners are
# inside (Lewiner's tests see only those 8 values), and every vertex is the
# midpoint of a cube edge joining an inside and an outside voxel centre, or
# (in 24 ambiguous configurations) the cube's centre. The triangles of each of
# the 254 non-trivial configurations are found once by running
# scikit-image's marching cubes on that 2x2x2 cube. The volume enclosed by
# the mesh, (1/6) sum_tri v0 . (v1 x v2), then splits per cube with origin o
# into L0[config] + o . N[config], where L0 is the triple-product sum in cube
# coordinates and N the sum of the triangles' doubled area vectors.
#
# The measured surface keeps this topology (so it is closed and follows the
# voxels exactly, thin structures included) but moves each edge vertex along
# its edge to where a smoothed version of the mask says the boundary crosses
# it, see _edge_offsets; centre vertices stay at the cube centre. Its area is
# summed per triangle over many objects at once (_SurfaceBatch): per object
# only the padded crop, its Gaussian and its cube codes are made, everything
# else is one vectorised pass.

_CONFIG_TRIANGLES = None

# 2x2x2 cube corners by bit of the configuration code: bit = 4 dz + 2 dy + dx
_CORNERS = [(dz, dy, dx) for dz in (0, 1) for dy in (0, 1) for dx in (0, 1)]
# cube edges 0..11: edge 4 * axis + 2 * a + b runs along `axis` from the corner
# with offsets (a, b) along the two other axes (in order); vertex 12 is the centre
_EDGE_AXIS = np.repeat(np.arange(3), 4)


def _edge_corners():
    """Lowest corner (dz, dy, dx) of each cube edge (numbered as above)."""
    corners = np.zeros((12, 3), np.int64)
    for edge in range(12):
        axis, (a, b) = edge // 4, divmod(edge % 4, 2)
        corners[edge, [k for k in range(3) if k != axis]] = a, b
    return corners


_EDGE_CORNER = _edge_corners()

# Placement of the vertices (see _edge_offsets and the measure() notes).
_SLICE_RATIO = 2.5     # largest / smallest spacing from which the coarse axis is read as slices
_SIGMA = 0.8           # Gaussian sigma of the 3-D field, voxels along each axis
_SLICE_SIGMA = 1.0     # in-plane Gaussian sigma of the per-slice field, pixels
_THIN_INSIDE = 0.6     # the smoothed mask one voxel further in must reach this...
_THIN_OUTSIDE = 0.4    # ...and one voxel further out must stay below this
_THIN_SLICE = 0.75     # across slices: some in-plane neighbour of the inside voxel reaches this
_SLICE_CAP = 0.6       # across slices: outside distance capped at this many slice spacings
_SURFACE_PAD = 2       # zero voxels around a crop (the thin-structure tests look 2 voxels out)
_BATCH_VOXELS = 1 << 17  # padded voxels per batch of objects (small enough to stay in cache)


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
    """(L0[256], N[256, 3]) of the binary mesh at `spacing` (a tuple), see above."""
    l0 = np.zeros(256)
    normal = np.zeros((256, 3))
    scale = np.asarray(spacing)
    for code, tri in _config_triangles().items():
        a, b, c = (tri * scale).transpose(1, 0, 2)
        l0[code] = (a * np.cross(b, c)).sum()
        normal[code] = np.cross(b - a, c - a).sum(0)
    return l0, normal


@functools.lru_cache(maxsize=1)
def _triangle_rows():
    """The binary triangles by cube vertex (0..11 edges, 12 centre).

    Returns ``(rows, first, count)``: ``rows`` (R, 3) int8, one row per
    triangle, in skimage's winding; configuration ``c`` has the rows
    ``first[c]:first[c] + count[c]``.
    """
    index = {}
    for e, (axis, corner) in enumerate(zip(_EDGE_AXIS, _EDGE_CORNER)):
        midpoint = corner + 0.5 * (np.arange(3) == axis)
        index[tuple((2 * midpoint).astype(int))] = e
    index[(1, 1, 1)] = 12
    tri = _config_triangles()
    count = np.zeros(256, np.int64)
    rows = []
    for code in range(1, 255):
        keys = np.rint(2 * tri[code]).astype(int)
        rows.extend([index[tuple(v)] for v in t] for t in keys)
        count[code] = len(keys)
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    return np.asarray(rows, np.int8), first, count


@functools.lru_cache(maxsize=16)
def _row_geometry(spacing):
    """Per triangle row, at `spacing`: its edge vectors at zero offsets and how its vertices move.

    Vertex ``j`` of a row sits at ``(corner_j + s_j * unit(axis_j)) * spacing``
    in cube coordinates, ``s_j`` being its edge offset (the centre vertex
    does not move). Returns float32 arrays of shape (3, R), component first:
    ``d1 = (corner_1 - corner_0) * spacing``, ``d2 = (corner_2 - corner_0) *
    spacing`` and ``move[j] = spacing * unit(axis_j)`` (zero for the centre).
    """
    rows = _triangle_rows()[0].astype(np.int64)
    corner = np.vstack([_EDGE_CORNER, [(0.5, 0.5, 0.5)]])[rows]          # (R, 3, 3)
    scale = np.asarray(spacing)
    d1 = ((corner[:, 1] - corner[:, 0]) * scale).T
    d2 = ((corner[:, 2] - corner[:, 0]) * scale).T
    unit = np.vstack([np.eye(3)[_EDGE_AXIS], np.zeros(3)]) * scale       # (13, 3)
    move = unit[rows].transpose(1, 2, 0)                                 # (3 vertices, 3, R)
    return tuple(np.ascontiguousarray(v, np.float32) for v in (d1, d2, *move))


@functools.lru_cache(maxsize=1)
def _triangle_columns():
    """The three vertex columns of :func:`_triangle_rows`, each contiguous int8 (R,)."""
    rows = _triangle_rows()[0]
    return tuple(np.ascontiguousarray(rows[:, j]) for j in range(3))


def _surface_mode(spacing):
    """``(sigma per axis in voxels, truncate, slice axis or None)`` of the smoothed field at `spacing`."""
    spacing = np.asarray(spacing, np.float64)
    if spacing.max() >= _SLICE_RATIO * spacing.min():
        axis = int(np.argmax(spacing))
        sigma = [_SLICE_SIGMA] * 3
        sigma[axis] = 0.0
        return tuple(sigma), 4.0, axis
    return (_SIGMA,) * 3, 3.0, None


@functools.lru_cache(maxsize=16)
def _smoothing_kernels(spacing):
    """``[(axis, weights), ...]``: the 1-D Gaussian kernels of the smoothed field at `spacing`."""
    sigma, truncate, _ = _surface_mode(spacing)
    kernels = []
    for axis, sd in enumerate(sigma):
        if sd > 0:
            x = np.arange(-int(truncate * sd + 0.5), int(truncate * sd + 0.5) + 1)
            weights = np.exp(-0.5 * (x / sd) ** 2)
            kernels.append((axis, weights / weights.sum()))
    return kernels


def _edge_offsets(q, f, lo, axis, strides, obj, spacing):
    """Where the surface crosses each boundary edge, as a fraction of the edge from its lower voxel.

    `q` (uint8) and `f` (its Gaussian, float32) are the flat padded crops;
    the edge from voxel ``lo`` to ``lo + strides[obj, axis]`` joins an
    inside and an outside voxel. The crossing is the zero of the linear
    interpolation of ``g = Phi^-1(f)`` (exact for a plane, whose smoothed
    step is ``Phi(distance / sigma)``); across slices, of the in-slice
    distances ``sigma * g`` (physical units), the outside one capped at
    ``_SLICE_CAP`` slice spacings. The midpoint is kept where the smoothed
    sign disagrees with the mask, or where the structure is too thin for the
    smoothing to see: one voxel further in (out), ``f`` must reach
    ``_THIN_INSIDE`` (stay below ``_THIN_OUTSIDE``); across slices, some
    in-plane neighbour of the inside voxel must reach ``_THIN_SLICE``.
    """
    from scipy.special import ndtri

    slice_axis = _surface_mode(spacing)[2]
    step = np.take(strides.ravel(), obj * 3 + axis)
    low_inside = q[lo].astype(bool)
    step = np.where(low_inside, step, -step)              # from the inside voxel outwards
    p_in = np.where(low_inside, lo, lo - step)
    p_out = p_in + step
    eps = np.float32(1e-6)
    g_in = ndtri(np.clip(f[p_in], eps, 1 - eps))
    g_out = ndtri(np.clip(f[p_out], eps, 1 - eps))
    ok = (f[p_in - step] >= _THIN_INSIDE) & (f[p_out + step] <= _THIN_OUTSIDE)
    if slice_axis is not None:
        across = np.flatnonzero(axis == slice_axis)
        p, o = p_in[across], obj[across]
        plane = [k for k in range(3) if k != slice_axis]
        s1, s2 = strides[o, plane[0]], strides[o, plane[1]]
        deepest = np.maximum(np.maximum(f[p - s1], f[p + s1]), np.maximum(f[p - s2], f[p + s2]))
        ok[across] = deepest >= _THIN_SLICE
        scale = _SLICE_SIGMA * math.sqrt(spacing[plane[0]] * spacing[plane[1]])
        h = spacing[slice_axis]
        g_in[across] *= scale
        g_out[across] = np.maximum(g_out[across] * scale, -_SLICE_CAP * h)
    ok &= (g_in > 0) & (g_out < 0)
    t = np.where(ok, g_in / np.where(ok, g_in - g_out, 1), np.float32(0.5))
    return np.where(low_inside, t, 1 - t).astype(np.float32)


class _SurfaceBatch:
    """The smoothed surfaces of several boolean crops, computed together.

    The crops, padded with `_SURFACE_PAD` zeros, are laid end to end in flat
    arrays (about 15 bytes per padded voxel at the peak). Attributes:
    ``offsets`` (n + 1), ``shapes`` and ``strides`` (n, 3); per boundary
    edge ``lo`` (flat index of its lower voxel), ``axis``, ``s`` (offset
    from the lower voxel, a fraction of the edge); per non-trivial cube
    ``cube`` (flat index of its lowest corner), ``code``, ``obj``; per
    triangle ``tri_cube``, ``tri_obj``, ``tri_rows`` and its vertices' edge
    offsets ``tri_s`` (3, T).
    """

    def __init__(self, masks, spacing):
        from scipy import ndimage as ndi

        pad = _SURFACE_PAD
        spacing = tuple(float(s) for s in spacing)
        kernels = _smoothing_kernels(spacing)
        n = len(masks)
        shapes = np.array([m.shape for m in masks], np.int64).reshape(n, 3) + 2 * pad
        offsets = np.concatenate([[0], np.cumsum(shapes.prod(1))])
        total = int(offsets[-1])
        strides = np.stack([shapes[:, 1] * shapes[:, 2], shapes[:, 2], np.ones(n, np.int64)], 1)
        q = np.zeros(total, np.uint8)
        f = np.zeros(total, np.float32)
        codes = np.zeros(total, np.uint8)
        for mask, shape, start, stop in zip(masks, shapes.tolist(), offsets[:-1].tolist(),
                                            offsets[1:].tolist()):
            crop = q[start:stop].reshape(shape)
            crop[pad:-pad, pad:-pad, pad:-pad] = mask
            # the field and the codes are only needed within one voxel of the mask
            inner = crop[1:-1, 1:-1, 1:-1]
            field = f[start:stop].reshape(shape)[1:-1, 1:-1, 1:-1]
            source = inner
            for axis, weights in kernels:
                ndi.correlate1d(source, weights, axis, output=field, mode="constant")
                source = field
            # code = sum of corner bits 4 dz + 2 dy + dx, combined one axis at a time
            pairs = inner[:, :, :-1] | (inner[:, :, 1:] << 1)
            quads = pairs[:, :-1] | (pairs[:, 1:] << 2)
            np.bitwise_or(quads[:-1], quads[1:] << 4,
                          out=codes[start:stop].reshape(shape)[1:-2, 1:-2, 1:-2])
        self.cube = np.flatnonzero((codes - np.uint8(1)) < 254)    # neither 0 nor 255
        self.code = codes[self.cube]
        del codes
        self.obj = np.searchsorted(offsets, self.cube, side="right") - 1

        # every boundary edge once: the edge from each cube's lowest corner along each axis
        lo, axis, obj = [], [], []
        for k, bit in enumerate((4, 2, 1)):
            crossing = np.flatnonzero((self.code ^ (self.code >> bit)) & 1)
            lo.append(np.take(self.cube, crossing))
            obj.append(np.take(self.obj, crossing))
            axis.append(np.full(lo[-1].size, k))
        self.lo, self.axis = np.concatenate(lo), np.concatenate(axis)
        self.s = _edge_offsets(q, f, self.lo, self.axis, strides, np.concatenate(obj), spacing)
        del f

        rows, first, count = _triangle_rows()
        per_cube = count[self.code]
        ends = np.cumsum(per_cube)
        n_tri = int(ends[-1]) if ends.size else 0
        # the cube of each triangle: a running count of the cube starts (np.repeat would hold the GIL)
        which = np.zeros(n_tri, np.intp)
        which[ends[:-1]] = 1
        np.cumsum(which, out=which)
        self.tri_rows = np.take(first[self.code] - (ends - per_cube), which)
        self.tri_rows += np.arange(n_tri)
        self.tri_cube = np.take(self.cube, which)
        self.tri_obj = np.take(self.obj, which)
        self._row_base = self.tri_obj * 13  # row of each triangle's object in vertex_index (below), flattened
        del which
        # flat index into edge_s (below) of each cube vertex, per object: lower
        # corner of the edge + axis * total; the centre vertex reads index 0 (weight 0)
        vertex_index = np.zeros((n, 13), np.int64)
        vertex_index[:, :12] = strides @ _EDGE_CORNER.T + _EDGE_AXIS * total
        self.vertex_index = vertex_index
        edge_s = np.zeros(3 * total, np.float32)
        edge_s[self.axis * total + self.lo] = self.s
        self.tri_s = np.empty((3, n_tri), np.float32)
        for j in range(3):
            self.tri_s[j] = edge_s[self._vertex_index(j)]
        self.offsets, self.shapes, self.strides = offsets, shapes, strides
        self.spacing, self.total, self.n = spacing, total, n

    def _vertex_index(self, j):
        """Flat index (edge lower voxel + axis * total; the cube's lowest corner for the centre) of vertex `j` of each triangle."""
        vertex = _triangle_columns()[j][self.tri_rows]
        index = np.take(self.vertex_index.ravel(), self._row_base + vertex)
        index += self.tri_cube
        return index

    def areas(self):
        """Area of each object's smoothed mesh, float64 (n,)."""
        d1, d2, move0, move1, move2 = _row_geometry(self.spacing)
        rows, (s0, s1, s2) = self.tri_rows, self.tri_s
        # edge vectors a = v1 - v0 and b = v2 - v0, (3, T) each
        shift = np.take(move0, rows, axis=1)
        shift *= s0
        a = np.take(d1, rows, axis=1)
        a -= shift
        b = np.take(d2, rows, axis=1)
        b -= shift
        np.take(move1, rows, axis=1, out=shift)
        shift *= s1
        a += shift
        np.take(move2, rows, axis=1, out=shift)
        shift *= s2
        b += shift
        cross = shift
        np.multiply(a[1], b[2], out=cross[0])
        cross[0] -= a[2] * b[1]
        np.multiply(a[2], b[0], out=cross[1])
        cross[1] -= a[0] * b[2]
        np.multiply(a[0], b[1], out=cross[2])
        cross[2] -= a[1] * b[0]
        cross *= cross
        length = np.sqrt(cross.sum(0))
        # the triangles come object by object: sums over runs (in the same order as bincount's, 4x faster)
        starts = np.searchsorted(self.tri_obj, np.arange(self.n))
        if self.n and starts[-1] < length.size and (np.diff(starts) > 0).all():
            return 0.5 * np.add.reduceat(length.astype(np.float64), starts)
        return 0.5 * np.bincount(self.tri_obj, weights=length, minlength=self.n)

    def binary_volumes(self):
        """Volume enclosed by each object's binary marching-cubes mesh, float64 (n,)."""
        l0, normal = _config_tables(self.spacing)
        # the cube's (z, y, x) in its crop, as exact float64 integers: float division is several times
        # faster than int64 divmod, and (i + 0.5) / stride never rounds across an integer; 1-D gathers
        # throughout (gathering rows of a 2-D table is several times slower)
        local = (self.cube - self.offsets[self.obj]).astype(np.float64)
        plane, row = (np.take(self.strides[:, k].astype(np.float64), self.obj) for k in (0, 1))
        z = np.floor((local + 0.5) / plane)
        rest = local - z * plane
        y = np.floor((rest + 0.5) / row)
        x = rest - y * row
        c = self.code
        nz, ny, nx = (np.take(normal[:, k], c) for k in range(3))
        value = l0[c] + self.spacing[0] * z * nz + self.spacing[1] * y * ny
        value += self.spacing[2] * x * nx
        return np.abs(np.bincount(self.obj, weights=value, minlength=self.n)) / 6.0

    def mesh(self):
        """Vertices (crop index coordinates, z, y, x) and faces of the smoothed mesh of a batch of one."""
        if self.n != 1:
            raise ValueError(f"mesh() needs a batch of one crop, got {self.n}")
        lo, axis, s = self.lo, self.axis, self.s
        ids = np.full(3 * self.total, -1, np.int64)
        ids[axis * self.total + lo] = np.arange(lo.size)
        edge_verts = np.stack(np.unravel_index(lo, self.shapes[0]), 1).astype(np.float64)
        edge_verts[np.arange(lo.size), axis] += s
        rows = _triangle_rows()[0]
        faces = np.stack([ids[self._vertex_index(j)] for j in range(3)], 1)
        centre = rows[self.tri_rows] == 12
        cubes, inverse = np.unique(np.broadcast_to(self.tri_cube[:, None], centre.shape)[centre],
                                   return_inverse=True)
        faces[centre] = lo.size + inverse
        centre_verts = np.stack(np.unravel_index(cubes, self.shapes[0]), 1) + 0.5
        verts = np.concatenate([edge_verts, centre_verts]) - _SURFACE_PAD
        return verts, faces


def _smooth_surfaces(masks, spacing):
    """(area of the smoothed mesh, volume of the binary mesh) of each boolean crop, two float64 (n,)."""
    batch = _SurfaceBatch(masks, spacing)
    return batch.areas(), batch.binary_volumes()


def _smooth_mesh(mask, spacing):
    """The smoothed mesh of a boolean crop: float64 vertices (z, y, x) in crop index coordinates, int64 faces."""
    return _SurfaceBatch([mask], spacing).mesh()


def _line_ends(mask, axis):
    """Index of the first and of the last voxel of every grid line of `mask` along `axis` (garbage for empty lines)."""
    n = mask.shape[axis]
    if axis == mask.ndim - 1 or n >= 1 << 16:
        return np.argmax(mask, axis=axis), (n - 1) - np.argmax(np.flip(mask, axis=axis), axis=axis)
    # across the contiguous axis, argmax copies the crop: the largest of mask * (n - i) (of mask * (i + 1))
    # is read row by row instead
    dtype = np.uint8 if n < 1 << 8 else np.uint16
    shape = [1] * mask.ndim
    shape[axis] = n
    count_down = np.arange(n, 0, -1, dtype=dtype).reshape(shape)
    count_up = np.arange(1, n + 1, dtype=dtype).reshape(shape)
    voxels = mask.view(np.uint8)
    first = n - np.multiply(voxels, count_down, dtype=dtype).max(axis=axis).astype(np.intp)
    last = np.multiply(voxels, count_up, dtype=dtype).max(axis=axis).astype(np.intp) - 1
    return first, last


def _hull_candidates(mask, lines=None):
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

    `lines`, if given, is ``[mask.any(axis=k) for k in range(3)]``.
    """
    out = []
    for axis in range(3):
        others = [k for k in range(3) if k != axis]
        first, last = _line_ends(mask, axis)
        valid = mask.any(axis=axis) if lines is None else lines[axis]
        # both ends at once: outward position of the first (negated) and last
        # voxel, -inf for empty lines and around, so that no test needs them
        g = np.full((2, valid.shape[0] + 2, valid.shape[1] + 2), -np.inf)
        inner = g[:, 1:-1, 1:-1]
        inner[0] = np.where(valid, -first, -np.inf)
        inner[1] = np.where(valid, last, -np.inf)
        keep = np.broadcast_to(valid, inner.shape)
        twice = 2 * inner
        for before, after in ((g[:, :-2, 1:-1], g[:, 2:, 1:-1]), (g[:, 1:-1, :-2], g[:, 1:-1, 2:])):
            keep = keep & (before <= inner) & (after <= inner) & (twice > before + after)
        side, i, j = np.nonzero(keep)
        pts = np.empty((i.size, 3), np.float64)
        pts[:, others[0]] = i
        pts[:, others[1]] = j
        # side 0: first voxel - 0.5; side 1: last voxel + 0.5
        pts[:, axis] = np.abs(inner[side, i, j]) + (side - 0.5)
        out.append(pts)
    return np.concatenate(out)


@functools.cache
def _spatial():
    """``(ConvexHull, QhullError, cdist, pdist)``, imported once (an import per object costs more than its hull)."""
    from scipy.spatial import ConvexHull, QhullError
    from scipy.spatial.distance import cdist, pdist

    return ConvexHull, QhullError, cdist, pdist


def _median(values):
    """``np.median`` of a 1-D array, partitioned in its own dtype (several times faster on 16-bit data)."""
    n = values.size
    if n == 0 or (values.dtype.kind == "f" and np.isnan(values).any()):
        return math.nan
    half = n // 2
    if n % 2:
        return float(np.partition(values, half)[half])
    part = np.partition(values, (half - 1, half))
    return (float(part[half - 1]) + float(part[half])) / 2


def _max_distance(points):
    """Largest distance between two of `points` (n, 3)."""
    _, _, cdist, pdist = _spatial()
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
    ConvexHull, QhullError, _, _ = _spatial()
    try:
        hull = ConvexHull(points, qhull_options="QJ")
    except QhullError:  # needs 4 points; a padded mask always gives at least 6
        return math.nan, _max_distance(points)
    return float(hull.volume), _max_distance(points[hull.vertices])


def _projections(mask):
    """Voxel counts along x, y and z: (Z, Y), (Z, X) and (Y, X) float64."""
    return tuple(np.count_nonzero(mask, axis=k).astype(np.float64) for k in (2, 1, 0))


def _moments(mask, projections=None):
    """Voxel count, mean (3,) and covariance (3, 3) of the voxel centres, in crop index units."""
    pzy, pzx, pyx = _projections(mask) if projections is None else projections
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
            Area of the object's smoothed surface mesh (:func:`object_mesh`;
            method in the Notes). Measured on digitised balls and tri-axial
            ellipsoids (semi-axes r, 1.5 r, 2 r) with r = 10 to 30 voxels
            along the fine axes, at random sub-voxel positions and
            orientations: -1 to +0.6 % from the exact area on cubic voxels;
            on 4:1 voxels such as (2, 0.5, 0.5), -0.2 to +2.3 % for r >= 15
            and -4 to +2.2 % for r = 10 (2.5 slices, where the voxels
            themselves can miss 4 % of a ball's volume and the area follows).
            Thin parts follow the voxels: a plate two voxels thick is 2 to
            8 % below the area of its voxel box; a rod one voxel wide keeps
            the diamond cross-section of marching cubes, 20 to 31 % below its
            voxel box and 6 to 12 % below the cylinder inscribed in that box.
        ``equivalent_diameter`` (unit)
            Diameter of the ball of the same ``volume``.
        ``sphericity``
            ``pi^(1/3) (6 volume)^(2/3) / surface_area``: 0.99 to 1.02 for a
            digitised ball of radius 10 to 30 voxels (along the fine axes)
            on cubic or 4:1 voxels; the mesh cuts voxel corners, so tiny
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
            Volume enclosed by the binary marching-cubes mesh (level 0.5,
            vertices at the midpoints of the voxel edges, i.e. the mesh
            before smoothing) divided by the volume of that mesh's convex
            hull (at most 1). A digitised ball of
            radius 8 to 30 gives 0.94 to 0.975 on cubic voxels and 0.90 to
            0.96 on (2, 0.5, 0.5) voxels (the terraces again); a single
            voxel, whose mesh is an octahedron, gives 1.
        ``feret_max`` (unit)
            Largest distance between two vertices of the binary
            marching-cubes mesh (taken on its convex hull). A run of ``n`` voxels along x
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

    The surface mesh has the triangles of scikit-image's marching cubes on
    the object's zero-padded mask at level 0.5, so it is closed and follows
    the voxels, thin parts and holes included; but where marching cubes
    puts each vertex at the midpoint of the edge joining an inside and an
    outside voxel centre (a terraced surface, about 9 % too large on cubic
    voxels and 20 % on 4:1 voxels), the vertex is moved along that edge to
    where a Gaussian-smoothed mask puts the boundary:

    * on (near-)cubic voxels, the smoothed mask ``f`` has sigma 0.8 voxel
      along each axis and the boundary is the zero of the linear
      interpolation of ``Phi^-1(f)`` between the edge's two voxels, which
      is exact for a plane (``f`` is then ``Phi(distance / sigma)``);
    * when one spacing is at least 2.5 times another, the volume is read as
      slices along that axis: edges within a slice use a per-slice Gaussian
      of sigma 1 pixel the same way, and edges across slices interpolate
      the two slices' in-plane distances to the boundary (shape-based
      interpolation), the outside one capped at 0.6 slice spacing, which
      rounds the top and bottom of an object, where the slices cannot tell
      how far it reaches, like those of a ball;
    * where the object (or a gap in it) is about two voxels thin or less,
      the vertex keeps its midpoint.

    Areas are summed over the triangles of many objects at once; this
    mesh is the one :func:`object_mesh` and :func:`export_meshes` return.
    Solidity and feret_max use the binary mesh: its enclosed volume comes
    from per-configuration tables (made once per spacing with scikit-image's
    marching cubes), and its convex hull is computed by Qhull (joggled
    input, volume exact to about 1e-8 relative) from the few line ends of
    the mask that can be hull vertices. Per object, only its bounding-box
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

    columns, spacing, unit = measure_columns(labels, intensity, spacing=spacing)
    table = pd.DataFrame(columns)
    table.attrs["spacing"] = spacing
    if unit is not None:
        table.attrs["unit"] = unit
    return table


def measure_columns(labels, intensity=None, *, spacing=None, boxes=None, offset=None, shape=None):
    """:func:`measure`'s table as plain columns, without pandas (as skimage's ``regionprops_table``).

    `boxes`, when the caller knows them (a segmentation pipeline does), is the
    bounding box of every label: ``boxes[i]`` a tuple of slices (as
    :func:`scipy.ndimage.find_objects` gives) or None where label ``i`` is
    absent, for every label up to the largest; it saves a pass over `labels`.
    `offset` and `shape` say that `labels` (and `intensity`) are a crop at
    `offset` of a volume of `shape`: bounding boxes, centroids and
    ``touches_border`` are then those of the volume, computed as on the
    whole volume (the chunked path measures its objects so).

    Returns
    -------
    columns : dict of str to ndarray
        The columns of :func:`measure`, in its order.
    spacing : tuple of float
        The spacing they were measured with.
    unit : str or None
        The unit of a Volume's spacing.
    """
    labels, vol_spacing, unit = _as_labels(labels)
    if spacing is None:
        spacing = vol_spacing
    spacing_t = as_spacing(spacing, 3)
    spacing = np.asarray(spacing_t)
    offset = np.zeros(3, np.int64) if offset is None else np.asarray(offset, np.int64)
    shape = labels.shape if shape is None else tuple(int(n) for n in shape)

    if intensity is not None:
        intensity, multichannel = _as_intensity(intensity, labels.shape)
        channels = intensity.shape[3]
    else:
        multichannel, channels = False, 0

    if boxes is None:
        object_labels, boxes = _bounding_boxes(labels)
    else:
        present = [i for i, box in enumerate(boxes) if i > 0 and box is not None]
        object_labels, boxes = np.asarray(present, np.int64), [boxes[i] for i in present]
    n = len(object_labels)
    cols = _empty_columns(n, channels, multichannel)
    cols["label"][:] = object_labels
    stats = {s: np.zeros((n, channels)) for s in INTENSITY_STATISTICS}
    scale2 = np.outer(spacing, spacing)
    centroid = np.zeros((n, 3))
    bbox = np.zeros((n, 6), np.int64)
    covariance = np.zeros((n, 3, 3))
    geometry = np.zeros((n, 4))  # area, binary mesh volume, hull volume, feret

    def measure_batch(batch):
        masks = []
        for i in batch:
            lab, box = int(object_labels[i]), boxes[i]
            mask = labels[box] == lab
            origin = [s.start + o for s, o in zip(box, offset.tolist())]
            bbox[i, :3] = origin
            bbox[i, 3:] = [s.stop + o for s, o in zip(box, offset.tolist())]
            projections = _projections(mask)
            count, mean, cov = _moments(mask, projections)
            cols["voxels"][i] = count
            centroid[i] = mean + origin
            covariance[i] = cov * scale2

            lines = [projections[2] > 0, projections[1] > 0, projections[0] > 0]
            geometry[i, 2:] = _hull_volume_and_feret(_hull_candidates(mask, lines) * spacing)
            masks.append(mask)

            crop = intensity[box] if channels else None
            for c in range(channels):
                # one channel at a time: a boolean selection of (Z, Y, X) is 2-3x faster than of (Z, Y, X, C)
                raw = crop[..., c][mask]
                values = raw.astype(np.float64, copy=False)
                total = values.sum()
                stats["sum"][i, c] = total
                stats["mean"][i, c] = total / count
                stats["min"][i, c] = values.min()
                stats["max"][i, c] = values.max()
                stats["std"][i, c] = values.std()
                stats["median"][i, c] = _median(raw)
        # the surfaces of a batch are meshed together (the same batches whatever the thread count)
        geometry[batch, 0], geometry[batch, 1] = _smooth_surfaces(masks, spacing_t)

    # batches of objects whose padded crops stay small enough for the cache; threads fill disjoint rows
    batches, batch, batch_voxels = [], [], 0
    for i, box in enumerate(boxes):
        batch.append(i)
        batch_voxels += math.prod(s.stop - s.start + 2 * _SURFACE_PAD for s in box)
        if batch_voxels >= _BATCH_VOXELS:
            batches.append(batch)
            batch, batch_voxels = [], 0
    if batch:
        batches.append(batch)
    from ._threads import thread_map

    for _ in thread_map(measure_batch, batches):
        pass
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
    # all objects' eigenvalues in one call (one LAPACK call each, without NumPy's per-call overhead)
    ev = np.linalg.eigvalsh(covariance) if n else np.zeros((0, 3))
    eig = np.stack([ev[:, -1], ev[:, 0]], 1)
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

    return cols, tuple(float(s) for s in spacing), unit


def summarize(table, *, unit=None) -> dict:
    """Count and volume / surface-area statistics of a :func:`measure` table.

    Parameters
    ----------
    table : pandas.DataFrame or mapping of columns
        Output of :func:`measure` or :func:`measure_columns` (at least the
        ``volume`` and ``surface_area`` columns).
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
    names = getattr(table, "columns", table if isinstance(table, dict) else ())
    missing = [c for c in ("volume", "surface_area") if c not in names]
    if missing:
        raise ParameterError(
            f"table must be a measure() table with columns 'volume' and 'surface_area', "
            f"missing {missing!r}"
        )
    if unit is None:
        unit = getattr(table, "attrs", {}).get("unit", "pixel")

    def plain(value):
        value = float(value)
        return value if math.isfinite(value) else None

    out = {
        "count": int(np.asarray(table["volume"]).size),
        "unit": str(unit),
        "volume_unit": f"{unit}^3",
        "surface_area_unit": f"{unit}^2",
    }
    for column in ("volume", "surface_area"):
        values = np.asarray(table[column], dtype=np.float64)
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

    The mesh whose area is ``surface_area`` in :func:`measure`: the
    triangles of marching cubes (level 0.5) on the object's mask padded
    with zeros, each vertex moved along its voxel edge to the boundary of
    the smoothed mask (see the Notes of :func:`measure`). With
    ``step_size > 1`` it is instead scikit-image's plain marching-cubes mesh
    of the binary mask sampled every `step_size` voxels, a coarse mesh for
    display whose area is not the measured one.

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
        Marching-cubes step in voxels; 1 (default) gives the measured mesh,
        larger gives a coarser binary mesh, faster.

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
    if step_size == 1:
        verts, faces = _smooth_mesh(mask, tuple(float(v) for v in spacing))
    else:
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
    expect - with outward-facing triangles. Each mesh is the one of
    :func:`object_mesh`, whose area is ``surface_area`` in :func:`measure`.
    No object, no file.

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
