"""Connected components of a chunked mask, stitched exactly across block faces.

Each block is labelled on its own (``cc3d``, 6-connectivity, the
connectivity of every in-memory step that labels a mask); its six face
planes are kept. Two pieces in face-adjacent blocks belong to one component
when a voxel of one faces a voxel of the other across the common face;
6-connected voxels never meet across an edge or a corner only, so faces are
all there is to compare. The equivalences go to
:func:`scipy.sparse.csgraph.connected_components`, which gives every piece
its component without any serial chain over the blocks.

Components are numbered 1..N in the raster order of their first voxel, as
``cc3d`` numbers the components of a whole volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["label_block", "Components", "stitch"]

_AXES = 3


def label_block(mask, *, background, origin, shape):
    """Label the pieces of one block and describe them.

    Parameters
    ----------
    mask : ndarray of bool
        The block of the mask.
    background : bool
        Label the background (``~mask``) instead of the foreground.
    origin : tuple of int
        Position of the block in the volume.
    shape : tuple of int
        Shape of the volume.

    Returns
    -------
    labels : ndarray of uint32
        Pieces 1..n (0: not labelled), in raster order of their first voxel.
    info : dict
        ``n``; per piece (index 0 = piece 1): ``count``, ``box`` (global
        z0, z1, y0, y1, x0, x1, stops exclusive) and ``first`` (global
        raster index of the first voxel); ``faces``: the label planes at the
        low and high end of each axis.
    """
    import cc3d
    import fastremap

    target = ~mask if background else mask
    labels, n = cc3d.connected_components(np.ascontiguousarray(target), connectivity=6, return_N=True)
    labels = labels.astype(np.uint32, copy=False)
    info = {"n": int(n)}
    if n:
        stats = cc3d.statistics(labels, no_slice_conversion=True)
        counts = np.asarray(stats["voxel_counts"], dtype=np.int64)[1:n + 1]
        box = np.asarray(stats["bounding_boxes"], dtype=np.int64)[1:n + 1].copy()
        box[:, 1::2] += 1  # inclusive stops -> exclusive
        box += np.repeat(np.asarray(origin, dtype=np.int64), 2)
        values, first = fastremap.unique(labels, return_index=True)
        first = np.asarray(first, dtype=np.int64)[np.asarray(values) > 0]
        local = np.unravel_index(first, labels.shape)
        first = np.ravel_multi_index(tuple(c + o for c, o in zip(local, origin)), shape)
    else:
        counts = np.zeros(0, np.int64)
        box = np.zeros((0, 6), np.int64)
        first = np.zeros(0, np.int64)
    info.update(count=counts, box=box, first=np.asarray(first, dtype=np.int64))
    planes = {}
    face_dtype = np.uint16 if n < 2**16 else np.uint32
    for axis in range(_AXES):
        planes[f"lo{axis}"] = np.take(labels, 0, axis=axis).astype(face_dtype)
        planes[f"hi{axis}"] = np.take(labels, -1, axis=axis).astype(face_dtype)
    info["faces"] = planes
    return labels, info


@dataclass
class Components:
    """Components of a chunked mask, stitched from the pieces of its blocks.

    Attributes
    ----------
    n : int
        Number of components (ids 1..n, in raster order of the first voxel).
    count, first : ndarray of int64, shape (n + 1,)
        Voxels and raster index of the first voxel of each component (index 0 unused).
    box : ndarray of int64, shape (n + 1, 6)
        Bounding box z0, z1, y0, y1, x0, x1 (stops exclusive).
    offsets : ndarray of int64
        Where each block's pieces start in `piece_component`.
    piece_component : ndarray of int64
        Component of each piece, blocks in grid order.
    """

    n: int
    count: np.ndarray
    first: np.ndarray
    box: np.ndarray
    offsets: np.ndarray
    piece_component: np.ndarray

    def block_table(self, block: int, values=None) -> np.ndarray:
        """Look-up table from a block's piece labels (0..n_b) to `values` of their components (default: ids)."""
        start, stop = self.offsets[block], self.offsets[block + 1]
        ids = np.concatenate([[0], self.piece_component[start:stop]])
        return ids if values is None else np.asarray(values)[ids]

    def touches_border(self, shape) -> np.ndarray:
        """Whether each component has a voxel on a face of the volume (index 0: False)."""
        box = self.box
        out = (box[:, 0::2] == 0).any(axis=1) | (box[:, 1::2] == np.asarray(shape)).any(axis=1)
        out[0] = False
        return out


def stitch(infos, grid_shape, load_faces) -> Components:
    """Join the pieces of all blocks into components.

    Parameters
    ----------
    infos : list of dict
        :func:`label_block` info of each block (without ``faces``), blocks in
        C order of the block grid.
    grid_shape : tuple of int
        Number of blocks per axis.
    load_faces : callable
        ``load_faces(block)`` returns the ``faces`` of a block.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    counts = np.array([info["n"] for info in infos], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    total = int(offsets[-1])
    sources, targets = [], []
    grid = np.arange(len(infos)).reshape(grid_shape)
    cache = {}

    def faces(block):
        if block not in cache:
            cache[block] = load_faces(block)
        return cache[block]

    for block in range(len(infos)):
        position = np.unravel_index(block, grid_shape)
        for axis in range(_AXES):
            if counts[block] == 0 or position[axis] + 1 >= grid_shape[axis]:
                continue
            neighbour_position = list(position)
            neighbour_position[axis] += 1
            neighbour = int(grid[tuple(neighbour_position)])
            if counts[neighbour] == 0:
                continue
            a = faces(block)[f"hi{axis}"]
            b = faces(neighbour)[f"lo{axis}"]
            both = (a > 0) & (b > 0)
            if not both.any():
                continue
            pair = np.unique((a[both].astype(np.int64) << 32) | b[both].astype(np.int64))
            sources.append(offsets[block] + (pair >> 32) - 1)
            targets.append(offsets[neighbour] + (pair & 0xFFFFFFFF) - 1)
        # blocks go in C order: once done, a block's faces are not needed again
        cache.pop(block, None)
    if sources:
        sources, targets = np.concatenate(sources), np.concatenate(targets)
    else:
        sources = targets = np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(sources.size, np.int8), (sources, targets)), shape=(total, total))
    n, root = connected_components(graph, directed=False) if total else (0, np.zeros(0, np.int64))
    piece_count = np.concatenate([info["count"] for info in infos]) if total else np.zeros(0, np.int64)
    piece_first = np.concatenate([info["first"] for info in infos]) if total else np.zeros(0, np.int64)
    piece_box = np.concatenate([info["box"] for info in infos]) if total else np.zeros((0, 6), np.int64)
    first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, root, piece_first)
    # number the components by their first voxel (raster order), whatever scipy's numbering
    order = np.argsort(first, kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(1, n + 1)
    component = rank[root] if total else np.zeros(0, np.int64)
    count = np.zeros(n + 1, np.int64)
    np.add.at(count, component, piece_count)
    box = np.zeros((n + 1, 6), np.int64)
    box[1:, 0::2] = np.iinfo(np.int64).max
    np.minimum.at(box[:, 0::2], component, piece_box[:, 0::2])
    np.maximum.at(box[:, 1::2], component, piece_box[:, 1::2])
    box[0] = 0
    first_out = np.zeros(n + 1, np.int64)
    first_out[1:] = first[order]
    return Components(int(n), count, first_out, box, offsets, component)
