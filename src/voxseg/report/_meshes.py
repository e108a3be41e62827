"""Surface meshes of labelled objects, for the 3D figure and the HTML report's 3D view.

:func:`object_mesh` is the one place where meshes are made: it calls
:func:`voxseg.measurements.object_mesh` (the mesh behind the measured surface
areas), coarsened by a marching-cubes step and retried at full resolution
when a coarse step misses a small object.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from ..volume import as_spacing

__all__ = ["object_mesh", "object_meshes", "object_ids", "largest"]

_EMPTY = (np.empty((0, 3), np.float32), np.empty((0, 3), np.int32))

#: objects meshed first to estimate the faces of all, when there are many
_FACE_SAMPLE = 16

#: coarsen from the sample's estimate only when it exceeds the budget by this factor (else mesh and check)
_FACE_MARGIN = 1.2


def object_mesh(labels, label, *, spacing, bbox=None, step_size=1):
    """Triangle mesh of one object, vertices in physical (z, y, x) coordinates.

    Voxel ``i`` has its centre at ``i * spacing``; the mesh is the 0.5
    iso-surface of the object's mask padded with zeros, so objects touching
    the border are closed. Triangles are counter-clockwise seen from outside
    when the vertices are read as (x, y, z).

    Parameters
    ----------
    labels : ndarray of int, shape (z, y, x)
    label : int
        The object to mesh.
    spacing : sequence of 3 float
    bbox : tuple of 3 slices, optional
        The object's bounding box (as from :func:`scipy.ndimage.find_objects`).
    step_size : int
        Marching-cubes step in voxels; larger gives coarser meshes. When the
        coarse mesh is empty, the object is meshed at step 1.

    Returns
    -------
    verts : ndarray of float32, shape (n, 3)
    faces : ndarray of int32, shape (m, 3)
        Both empty when `label` is not in `labels`.
    """
    try:
        from ..measurements import object_mesh as mesh
    except ImportError:  # pragma: no cover - a tree without voxseg.measure
        mesh = _marching_cubes_mesh
    for step in dict.fromkeys((max(1, int(step_size)), 1)):
        try:
            verts, faces = mesh(labels, label, spacing=spacing, bbox=bbox, step_size=step)
        except (RuntimeError, ValueError):  # no surface at this step, or no such label
            continue
        if len(faces):
            return np.asarray(verts, np.float32), np.asarray(faces, np.int32)
    return _EMPTY


def _marching_cubes_mesh(labels, label, *, spacing, bbox=None, step_size=1):
    """Stand-in for :func:`voxseg.measurements.object_mesh`, same signature and conventions."""
    from skimage.measure import marching_cubes

    spacing = np.asarray(as_spacing(spacing), dtype=float)
    if bbox is None:
        found = ndi.find_objects(np.asarray(labels == label, dtype=np.uint8))
        if not found:
            return _EMPTY
        bbox = found[0]
    start = np.array([s.start for s in bbox], dtype=float)
    mask = np.pad(np.asarray(labels[bbox] == label, dtype=np.float32), step_size)
    verts, faces, _, _ = marching_cubes(mask, level=0.5, spacing=tuple(spacing), step_size=step_size)
    verts += (start - step_size) * spacing
    return verts, faces


def object_ids(labels, *, label_ids=None, max_objects=None):
    """Label ids present in `labels` (or the given ones), largest first when capped.

    Returns ``(ids, counts, total)``: the chosen ids in increasing order, their
    voxel counts, and how many objects there were before capping.
    """
    present, counts = np.unique(np.asarray(labels), return_counts=True)
    keep = present != 0
    present, counts = present[keep], counts[keep]
    if label_ids is not None:
        wanted = np.unique(np.asarray(label_ids, dtype=present.dtype if present.size else np.int64))
        sel = np.isin(present, wanted)
        present, counts = present[sel], counts[sel]
    return largest(present, counts, max_objects)


def largest(ids, counts, max_objects=None):
    """The `max_objects` ids with most voxels (ties to the smaller id), in increasing order.

    Returns ``(ids, counts, total)`` like :func:`object_ids`.
    """
    total = int(ids.size)
    if max_objects is not None and ids.size > max_objects:
        order = np.lexsort((ids, -counts))[: int(max_objects)]
        order.sort()
        ids, counts = ids[order], counts[order]
    return ids, counts, total


def object_meshes(labels, *, spacing, label_ids, max_faces=None, step_size=1):
    """Meshes of several objects, coarsened together to stay near `max_faces` in total.

    Returns a list of ``(label, verts, faces)`` with the objects in the order of
    `label_ids`; objects without a surface are left out.
    """
    labels = np.asarray(labels)
    label_ids = [int(i) for i in label_ids]
    if not label_ids:
        return []
    # find_objects indexes by label - 1; crop to the ids we want to stay small
    boxes = _bounding_boxes(labels, label_ids)

    wanted = [label for label in label_ids if label in boxes]

    def run(step, ids):
        from .._threads import thread_map

        meshes = thread_map(lambda label: object_mesh(labels, label, spacing=spacing, bbox=boxes[label],
                                                      step_size=step), ids)
        return [(label, verts, faces) for label, (verts, faces) in zip(ids, meshes) if len(faces)]

    def coarser(step, faces):
        # faces scale with 1 / step**2
        return max(step + 1, math.ceil(step * math.sqrt(faces / max_faces)))

    step = step_size
    if max_faces is not None and len(wanted) >= 2 * _FACE_SAMPLE:
        # the faces of a sample of the objects, spread evenly, tell whether all of them would be too many
        sample = wanted[:: len(wanted) // _FACE_SAMPLE]
        estimate = sum(len(f) for _, _, f in run(step_size, sample)) * len(wanted) / len(sample)
        if estimate > _FACE_MARGIN * max_faces:
            step = coarser(step_size, estimate)
    meshes = run(step, wanted)
    total = sum(len(f) for _, _, f in meshes)
    if max_faces is not None and total > max_faces:
        meshes = run(coarser(step, total), wanted)
    return meshes


def _bounding_boxes(labels, label_ids):
    """``{label: tuple of slices}`` for the wanted ids."""
    max_id = int(max(label_ids))
    if max_id <= 4 * labels.size + 1_000_000:
        found = ndi.find_objects(labels, max_label=max_id)
        return {i: found[i - 1] for i in label_ids if found[i - 1] is not None}
    boxes = {}
    for i in label_ids:  # pragma: no cover - very sparse huge ids
        sl = ndi.find_objects((labels == i).astype(np.uint8))
        if sl:
            boxes[i] = sl[0]
    return boxes
