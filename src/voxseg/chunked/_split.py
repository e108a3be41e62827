"""Declumping whole connected components, and measuring their objects, one group at a time.

:func:`voxseg.segmentation.split_touching` splits each connected component of
the mask on its own: objects many voxels wide on the component's own
reduced mask (its crop aligned to the blocks of the reduction), others on
the crop of the (smoothed) distance map around it (its bounding box plus
``ceil(4 sigma) + 1`` voxels). Its result for a component depends on
nothing outside that crop. Here every component is split by the same
function on the same crop (the distance map read from the exact one of the
run's stores), and its objects are measured on the same crops of
labels and intensities that :func:`voxseg.measurements.measure` would take.
Components are grouped by the work block holding their first corner, so
that one read of the stores serves many of them.
"""

from __future__ import annotations

import os

import numpy as np

from ._blocks import load, save

__all__ = ["split_group", "paint"]

#: bytes per crop voxel that splitting one component holds (maps, seeds, watershed, basin graph)
SPLIT_BYTES_PER_VOXEL = 64


def _box_slices(box, origin=(0, 0, 0)):
    return tuple(slice(int(box[2 * a]) - origin[a], int(box[2 * a + 1]) - origin[a]) for a in range(3))


def split_group(layout, key, spec):
    """Split the components of one group; save their objects, statistics and measurements.

    `spec` holds, per component: ``ids``, ``box`` and ``crop`` (z0, z1, y0,
    y1, x0, x1), ``first`` (raster index of the first voxel) and ``small``
    (one object, no watershed); and the settings ``mode`` ("reduced": split
    each component on its reduced mask, by ``factor``, with a smoothing of
    ``smoothing_length``, as split_touching does for objects many voxels
    wide; "smoothed": the field store holds the smoothed map; "crop": smooth
    each crop as split_touching does when it does not smooth the whole
    volume; "plain": no smoothing), ``sigma``, ``depth``, ``merge_radius``,
    the object filters ``min_voxels`` and ``clear_border``, and ``measure``.
    """
    import cc3d
    import fastremap
    from scipy import ndimage as ndi

    from ..segmentation import SMOOTHING_TRUNCATE, split_component, split_component_reduced

    path = layout.result("split", key)
    done = load(path)
    if done is not None:
        return _meta(done)
    ids, boxes, crops = spec["ids"], spec["box"], spec["crop"]
    first, small = spec["first"], spec["small"]
    lo = crops[:, 0::2].min(axis=0)
    hi = crops[:, 1::2].max(axis=0)
    region = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    state = layout.read("state", region)
    mask = state == 2
    del state
    components = cc3d.connected_components(mask, connectivity=6)
    reduced = spec["mode"] == "reduced"
    field = layout.read("field", region) if not small.all() and not reduced else None
    raw = layout.read("raw", region) if spec["measure"] else None
    shape = layout.shape
    spacing = layout.spacing
    objects_out, rows = {}, []
    # the live objects of the group, numbered 1.. in one label image, measured at once
    group_labels = np.zeros(mask.shape, np.uint32) if spec["measure"] else None
    measured = []  # (component, local id) of each group label
    measured_boxes = [None]  # the bounding box of each group label in the group's region (0: none)
    for i, component in enumerate(ids.tolist()):
        crop = _box_slices(crops[i], lo)
        seed = tuple(int(c) - int(o) for c, o in zip(np.unravel_index(int(first[i]), shape), lo))
        inside = components[crop] == components[seed]
        # the component's bounding box in its crop
        box_origin = boxes[i, 0::2]
        in_crop = tuple(slice(int(b0) - int(c0), int(b1) - int(c0))
                        for b0, b1, c0 in zip(boxes[i, 0::2], boxes[i, 1::2], crops[i, 0::2]))
        if small[i]:
            objects = inside.astype(np.uint32)
        elif reduced:
            faces = tuple((int(crops[i, 2 * a]) == 0, int(crops[i, 2 * a + 1]) == shape[a]) for a in range(3))
            objects = split_component_reduced(inside, spacing, spec["factor"], sigma=spec["smoothing_length"],
                                              depth=spec["depth"], merge_radius=spec["merge_radius"], faces=faces)
        else:
            local = field[crop]
            if spec["mode"] == "crop":
                local = ndi.gaussian_filter(local, spec["sigma"], mode="nearest", truncate=SMOOTHING_TRUNCATE)
            objects = split_component(local, inside, spacing, depth=spec["depth"],
                                       merge_radius=spec["merge_radius"], box=in_crop)
        # the objects within the component's bounding box
        objects = np.ascontiguousarray(objects[in_crop])
        count = int(objects.max())
        voxels = np.bincount(objects.reshape(-1), minlength=count + 1)[1:].astype(np.int64)
        values, index = fastremap.unique(objects, return_index=True)
        index = np.asarray(index, np.int64)[np.asarray(values) > 0]
        local_first = np.unravel_index(index, objects.shape)
        first_voxel = np.ravel_multi_index(tuple(c + int(o) for c, o in zip(local_first, box_origin)), shape)
        object_boxes = np.zeros((count, 6), np.int64)
        for k, found in enumerate(ndi.find_objects(objects)):
            for axis, s in enumerate(found):
                object_boxes[k, 2 * axis] = s.start + box_origin[axis]
                object_boxes[k, 2 * axis + 1] = s.stop + box_origin[axis]
        alive = np.ones(count, bool)
        for threshold in spec["min_voxels"]:
            alive &= voxels >= threshold
        if spec["clear_border"]:
            alive &= ~((object_boxes[:, 0::2] == 0).any(axis=1)
                       | (object_boxes[:, 1::2] == np.asarray(shape)).any(axis=1))
        objects_out[f"c{component}"] = objects.astype(_small_type(count), copy=False)
        rows.append(np.column_stack([
            np.full(count, component, np.int64), np.arange(1, count + 1, dtype=np.int64), voxels,
            np.asarray(first_voxel, np.int64), object_boxes, alive.astype(np.int64),
        ]))
        if spec["measure"] and alive.any():
            numbers = np.zeros(count + 1, np.uint32)
            numbers[1:][alive] = np.arange(len(measured) + 1, len(measured) + 1 + int(alive.sum()))
            measured += [(component, k + 1) for k in np.flatnonzero(alive)]
            measured_boxes += [tuple(slice(int(a) - int(o), int(b) - int(o))
                                     for a, b, o in zip(object_boxes[k, 0::2], object_boxes[k, 1::2], lo))
                               for k in np.flatnonzero(alive)]
            target = group_labels[_box_slices(boxes[i], lo)]
            np.maximum(target, numbers[objects], out=target)
    meta = np.concatenate(rows) if rows else np.zeros((0, 11), np.int64)
    save(layout.path("split", f"{key}.objects.npz"), **objects_out)
    if measured:
        target = layout.path("split", f"{key}.table.pkl")
        tmp = f"{target}.tmp-{os.getpid()}"
        _measure(group_labels, raw, lo, spacing, shape, measured, measured_boxes).to_pickle(tmp)
        os.replace(tmp, target)
    save(path, meta=meta)
    return {"meta": meta}


def _small_type(count):
    return np.uint8 if count < 2**8 else np.uint16 if count < 2**16 else np.uint32


def _meta(done):
    return {"meta": done["meta"]}


def _measure(labels, intensity, origin, spacing, shape, measured, boxes):
    """measure() of a group's live objects (labelled 1.. in a crop at `origin`), as on the whole volume.

    Each object's crop (its bounding box, ``boxes[i]`` in the group's crop) of
    labels and intensities is the one measure() takes on the whole volume,
    and the boxes, centroids and border flags are those of the volume: every
    column has the same value.
    """
    import pandas as pd

    from ..measurements import measure_columns

    columns, _, _ = measure_columns(labels, intensity, spacing=spacing, boxes=boxes, offset=origin, shape=shape)
    table = pd.DataFrame(columns)
    keys = np.asarray(measured, np.int64)[table["label"].to_numpy() - 1]
    table.insert(0, "_component", keys[:, 0])
    table["label"] = keys[:, 1]
    return table


def paint(workdir_holder, region, items, dtype):
    """One block of the final label volume, painted from the saved objects of the components crossing it."""
    shape = tuple(s.stop - s.start for s in region)
    out = np.zeros(shape, dtype)
    files = {}
    try:
        for group, component, box, table in items:
            if group not in files:
                files[group] = np.load(os.path.join(workdir_holder.path, "split", f"{group}.objects.npz"))
            objects = files[group][f"c{component}"]
            parts_out, parts_in = [], []
            for axis in range(3):
                a = max(int(box[2 * axis]), region[axis].start)
                b = min(int(box[2 * axis + 1]), region[axis].stop)
                parts_out.append(slice(a - region[axis].start, b - region[axis].start))
                parts_in.append(slice(a - int(box[2 * axis]), b - int(box[2 * axis])))
            piece = objects[tuple(parts_in)]
            target = out[tuple(parts_out)]
            target += np.asarray(table, dtype=dtype)[piece]
    finally:
        for f in files.values():
            f.close()
    return out
