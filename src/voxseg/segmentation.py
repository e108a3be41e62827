"""From a volume to separated objects: foreground, declumping watershed, clean-up.

Every length (diameter, smoothing, marker separation, size limits) is in the
physical unit of `spacing`. The functions know nothing of files or of the
command line; :func:`segment` chains them in the default recipe, and the
pipeline layer runs the same functions step by step.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ParameterError
from .morphology import bounding_boxes, component_sizes, label
from .volume import as_spacing, voxel_volume

__all__ = [
    "DEFAULTS",
    "foreground",
    "estimate_diameter",
    "sphere_volume",
    "distance_transform",
    "basin_graph",
    "merge_shallow_basins",
    "split_touching",
    "split_component",
    "split_component_reduced",
    "split_factor",
    "reduced_crop",
    "clear_border",
    "relabel_canonical",
    "segment",
]

#: The default recipe's settings, as fractions of the expected object diameter D.
DEFAULTS = {
    "smoothing": 0.08,  # sigma of the Gaussian applied to the distance map, x D
    "h": 0.05,  # minimum depth of a distance-map maximum to seed an object, x D
    "merge_distance": 0.5,  # seeds closer than this (x D) belong to one object
    "noise_volume": 0.05,  # components below this fraction of a D-sphere's volume are noise
    "min_volume": 0.2,  # objects below this fraction of a D-sphere's volume are removed
}


#: components of fewer voxels are one object each, without a watershed
TINY_COMPONENT = 27

#: the diameter is estimated on a mask reduced to at most about this many voxels
ESTIMATE_VOXELS = 2**21

#: at most this many connected components are split to estimate the diameter
ESTIMATE_COMPONENTS = 48

#: smooth the whole distance map at once when the crops cover more than this fraction of it
GLOBAL_SMOOTHING_FRACTION = 0.5

#: truncation of the Gaussian smoothing of the distance map, in sigmas
SMOOTHING_TRUNCATE = 4.0

#: objects many voxels wide are split on the mask reduced by an integer factor per axis that leaves them
#: about this many voxels across (at least 3/4 of it): distance map, smoothing, seeds and watershed then
#: cost 1/factor**3 of the full-resolution work, and the objects' boundaries are placed to within a block
REDUCED_DIAMETER_VOXELS = 16


def sphere_volume(diameter: float) -> float:
    """Volume of the sphere of `diameter`."""
    return float(np.pi / 6 * diameter**3)


def foreground(image, value: float, *, dark_objects: bool = False) -> np.ndarray:
    """Voxels above `value` (below it with `dark_objects`), NaN voxels excluded."""
    image = np.asarray(image)
    with np.errstate(invalid="ignore"):
        return image < value if dark_objects else image > value


def distance_transform(mask, *, spacing=None) -> np.ndarray:
    """Euclidean distance of each foreground voxel to the background, in physical units.

    Uses the `edt` package, which honours anisotropic spacing exactly and is
    several times faster than ``scipy.ndimage.distance_transform_edt``.
    The volume border is not background: an object cut by the border keeps
    the distances it would have inside a larger volume.

    Examples
    --------
    >>> mask = np.zeros((1, 1, 7), bool); mask[..., 1:6] = True
    >>> distance_transform(mask, spacing=(1, 1, 0.5))[0, 0].tolist()
    [0.0, 0.5, 1.0, 1.5, 1.0, 0.5, 0.0]
    """
    import edt

    from ._threads import thread_count

    mask = np.asarray(mask, dtype=bool)
    spacing = as_spacing(spacing, mask.ndim)
    # edt is several times faster on uint8 than on bool input, and its threads then scale
    return edt.edt(mask.view(np.uint8), anisotropy=spacing, black_border=False,
                   parallel=thread_count()).astype(np.float32, copy=False)


def estimate_diameter(mask, *, spacing=None, distance=None) -> float:
    """Estimate the typical object diameter of a foreground mask.

    A first, conservative split of the mask (distance-map watershed with a
    diameter guessed from the distance maxima of the connected components)
    gives candidate objects; the estimate is the equivalent diameter of the
    median volume of those that do not touch the volume border (at most
    :data:`ESTIMATE_COMPONENTS` connected components, evenly spread, are
    split). A mask of more than :data:`ESTIMATE_VOXELS` voxels is first
    reduced by an integer factor per axis (majority vote per block), which
    bounds the cost and lets a chunked caller compute the same estimate
    from a reduced mask. Returns ``nan`` for an empty mask.

    Examples
    --------
    >>> from voxseg.testing import sphere_pack
    >>> vol = sphere_pack(shape=(40, 40, 40), diameter=12, attempts=300)
    >>> round(estimate_diameter(vol.labels > 0, spacing=vol.spacing))
    12
    """
    import cc3d

    mask = np.asarray(mask, dtype=bool)
    spacing = as_spacing(spacing, mask.ndim)
    if not mask.any():
        return float("nan")
    factor = int(np.ceil((mask.size / ESTIMATE_VOXELS) ** (1 / mask.ndim)))
    if factor > 1:
        # a statistic of object sizes needs no full resolution: estimate on a majority-vote reduced mask
        mask = _reduce_mask(mask, factor)
        spacing = tuple(s * factor for s in spacing)
        distance = None
    if distance is None:
        distance = distance_transform(mask, spacing=spacing)
    components, n = label(mask)
    sizes = component_sizes(components, n)[1:]
    # each component's highest distance lies at one of the map's regional maxima: look only there
    where = np.flatnonzero(_regional_maxima(distance) & mask)
    peaks = np.zeros(n + 1, dtype=np.float64)
    np.maximum.at(peaks, components.flat[where], distance.flat[where])
    peaks = peaks[1:]
    guess = 2 * float(np.median(peaks[sizes >= 0.01 * sizes.max()]))
    guess = max(guess, 2 * max(spacing))
    # noise specks are not candidate objects (and would each cost a crop below)
    noise = DEFAULTS["noise_volume"] * sphere_volume(guess) / voxel_volume(spacing)
    keep = component_sizes(components, n) >= int(noise)
    keep[0] = False
    components, n = label(keep[components])
    if n > ESTIMATE_COMPONENTS:
        # a median needs no more than a sample: components spread evenly through the volume
        chosen = np.unique(np.linspace(1, n, ESTIMATE_COMPONENTS).round().astype(np.int64))
        keep = np.zeros(n + 1, dtype=bool)
        keep[chosen] = True
        mask = keep[components]
    objects = split_touching(mask, spacing=spacing, diameter=guess, smoothing=0.1, h=0.1, merge_distance=0,
                             distance=distance)
    stats = cc3d.statistics(objects)
    volumes = stats["voxel_counts"][1:] * voxel_volume(spacing)
    inside = np.array([
        box is not None and all(s.start > 0 and s.stop < dim for s, dim in zip(box, mask.shape))
        for box in stats["bounding_boxes"][1:]
    ], dtype=bool)
    candidates = volumes[(volumes > 0) & (volumes >= DEFAULTS["noise_volume"] * sphere_volume(guess))]
    if inside[: len(volumes)].any():
        interior = volumes[inside & (volumes >= DEFAULTS["noise_volume"] * sphere_volume(guess))]
        if interior.size:
            candidates = interior
    if candidates.size == 0:
        return guess
    return float(np.cbrt(6 * np.median(candidates) / np.pi))


def _reduce_mask(mask, factor):
    """Majority vote over blocks of factor^ndim voxels (the incomplete blocks at the far faces are dropped)."""
    shape = [n // factor for n in mask.shape]
    if min(shape) == 0:
        return mask
    counts = mask[tuple(slice(0, n * factor) for n in shape)].view(np.uint8)
    dtype = np.uint8 if factor**mask.ndim < 256 else np.int32
    for axis in range(mask.ndim):
        # add the `factor` interleaved slices along each axis in turn: a few contiguous passes
        index = [slice(None)] * mask.ndim
        total = None
        for k in range(factor):
            index[axis] = slice(k, None, factor)
            part = counts[tuple(index)]
            total = part.astype(dtype) if total is None else np.add(total, part, out=total, dtype=dtype)
        counts = total
    return counts.astype(np.int32) * 2 > factor**mask.ndim


def basin_graph(basins, distance):
    """Adjacent basin pairs and the highest pass between them.

    Parameters
    ----------
    basins : ndarray of int
        Watershed basins (0 = background).
    distance : ndarray of float
        The map the basins were grown on (as heights: seeds at its maxima).

    Returns
    -------
    pairs : ndarray of shape (K, 2)
        Face-adjacent basin ids, smaller id first, each pair once.
    passes : ndarray of shape (K,)
        For each pair, the highest value of ``min(distance[a], distance[b])``
        over the face-adjacent voxel pairs (a, b) on their common border: the
        saddle a flood from one peak must cross to reach the other.
    """
    n = int(basins.max()) + 1
    keys, values = [], []
    for axis in range(basins.ndim):
        lo = [slice(None)] * basins.ndim
        hi = [slice(None)] * basins.ndim
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        a, b = basins[tuple(lo)], basins[tuple(hi)]
        border = (a != b) & (a > 0) & (b > 0)
        la, lb = a[border].astype(np.int64), b[border].astype(np.int64)
        keys.append(np.minimum(la, lb) * n + np.maximum(la, lb))
        values.append(np.minimum(distance[tuple(lo)][border], distance[tuple(hi)][border]))
    keys = np.concatenate(keys)
    values = np.concatenate(values)
    if keys.size == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0, distance.dtype)
    order = np.lexsort((-values, keys))  # by pair, highest pass first
    keys, values = keys[order], values[order]
    first = np.r_[True, keys[1:] != keys[:-1]]
    keys, values = keys[first], values[first]
    return np.stack([keys // n, keys % n], axis=1), values


def merge_shallow_basins(basins, distance, *, depth, peaks=None) -> np.ndarray:
    """Merge the basins whose peak is less than `depth` above the pass to a higher peak.

    This is the h-maxima criterion ("dynamics") evaluated on the basin
    graph, which is much faster than morphological reconstruction: passes
    are visited from the highest down (Kruskal order); when two groups meet,
    the one with the lower peak survives as a separate object only if its
    peak stands at least `depth` above the pass, else it joins the object
    across the pass.

    Returns
    -------
    ndarray of int64
        Look-up table from basin id to object id (0 stays 0); objects are
        numbered by their basin of highest peak.
    """
    from scipy import ndimage as ndi

    n = int(basins.max())
    if peaks is None:
        peaks = np.zeros(n + 1, dtype=np.float64)
        peaks[1:] = ndi.maximum(distance, basins, index=np.arange(1, n + 1))
    pairs, passes = basin_graph(basins, distance)
    parent = np.arange(n + 1)
    top = np.arange(n + 1)  # basin of the highest peak in each group
    obj = np.arange(n + 1)  # object each basin belongs to

    def find(i):
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    members = {i: [i] for i in range(1, n + 1)}
    for k in np.argsort(-passes, kind="stable"):
        a, b = int(pairs[k, 0]), int(pairs[k, 1])
        ra, rb = find(a), find(b)
        if ra == rb:
            continue
        # the group whose top peak is lower, and its depth below that peak
        if (peaks[top[ra]], -top[ra]) < (peaks[top[rb]], -top[rb]):
            low_root, high_root, low_end, high_end = ra, rb, a, b
        else:
            low_root, high_root, low_end, high_end = rb, ra, b, a
        if peaks[top[low_root]] - passes[k] < depth:
            # too shallow: the whole lower group (all of it shallow, see docstring) joins the object across the pass
            target = obj[high_end]
            for basin in members[low_root]:
                obj[basin] = target
        parent[low_root] = high_root
        members[high_root].extend(members.pop(low_root))
    return obj


def _merge_close_objects(lut, peaks, seed_positions, spacing, radius):
    """Join objects whose highest seeds are closer than `radius` (physical units)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    basin_ids = np.arange(1, len(lut))
    # each object's top basin: sort basins by object, then by peak (highest first)
    order = np.lexsort((-peaks[1:], lut[1:]))
    objects, first = np.unique(lut[1:][order], return_index=True)
    if objects.size < 2:
        return lut
    positions = seed_positions[basin_ids[order][first]].astype(np.float64)
    pairs = cKDTree(positions * np.asarray(spacing)).query_pairs(radius, output_type="ndarray")
    if len(pairs) == 0:
        return lut
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(objects.size, objects.size))
    _, group = connected_components(graph, directed=False)
    # each group is represented by its smallest object id (deterministic, whatever scipy's numbering)
    representative = np.full(group.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(representative, group, objects)
    remap = np.zeros(int(lut.max()) + 1, dtype=np.int64)
    remap[objects] = representative[group]
    return remap[lut]


def _regional_maxima(distance):
    from skimage.morphology import local_maxima

    return local_maxima(distance, connectivity=distance.ndim, allow_borders=True).astype(bool)


def split_touching(
    mask,
    *,
    spacing=None,
    diameter: float,
    smoothing: float | None = None,
    h: float | None = None,
    merge_distance: float | None = None,
    distance=None,
    overwrite_distance: bool = False,
    reduce: bool = True,
    components=None,
) -> np.ndarray:
    """Separate touching objects of a mask by a marker-controlled distance watershed.

    The distance map honours the spacing, so an anisotropic stack is treated
    as the physical volume it is. It is smoothed (sigma = `smoothing` x
    `diameter`) to remove the ridges a rough surface leaves; a watershed of
    the inverted map from each of its regional maxima gives basins, and the
    basins are merged into objects where a peak stands less than ``h x
    diameter`` above the pass to a higher one (the h-maxima criterion, see
    :func:`merge_shallow_basins`) or lies closer than ``merge_distance x
    diameter`` to a higher object's peak. Every connected component of the
    mask holds at least one object, and every object is face-connected.

    Objects many voxels wide are split at reduced resolution (`reduce`): each
    connected component is reduced by the integer factor per axis of
    :func:`split_factor` (a block is foreground when any of its voxels is),
    split there (:func:`split_component_reduced`), and each of its voxels
    takes the object of its block. Boundaries between touching objects are
    then placed to within a block (about 1/16 of the diameter) and the split
    costs a fraction of the full-resolution one.

    Parameters
    ----------
    mask : ndarray of bool
        Foreground.
    spacing : sequence of float, optional
        Voxel size per axis.
    diameter : float
        Expected object diameter, in the unit of `spacing`.
    smoothing, h, merge_distance : float, optional
        Fractions of `diameter`; defaults in :data:`DEFAULTS`.
    distance : ndarray, optional
        Precomputed distance map of `mask` (unsmoothed).
    overwrite_distance : bool
        Allow smoothing `distance` in place, to save a volume-sized copy.
    reduce : bool
        Split objects many voxels wide at reduced resolution (see above);
        False splits every object at full resolution.
    components : (labels, sizes), optional
        The face-connected components of a mask that held `mask`, as
        :func:`voxseg.morphology.label` numbers them, and the voxel count of
        each label (0 for the labels not in `mask`): saves labelling the mask
        again. `labels` may be overwritten.

    Returns
    -------
    ndarray of uint16 (uint32 from 65536 objects)
        Labels 1..N in the order of each object's first voxel (raster order).

    Examples
    --------
    Two overlapping balls become two objects:

    >>> from voxseg.testing import sphere_pack
    >>> z, y, x = np.ogrid[:20, :20, :36]
    >>> mask = ((z - 10)**2 + (y - 10)**2 + (x - 10)**2 < 64) | ((z - 10)**2 + (y - 10)**2 + (x - 24)**2 < 64)
    >>> int(split_touching(mask, diameter=16).max())
    2
    """
    return _split_touching(mask, spacing=spacing, diameter=diameter, smoothing=smoothing, h=h,
                           merge_distance=merge_distance, distance=distance, overwrite_distance=overwrite_distance,
                           reduce=reduce, components=components)[0]


def _split_touching(mask, *, spacing, diameter, smoothing, h, merge_distance, distance, overwrite_distance, reduce,
                    components):
    """:func:`split_touching`, and when the components' sizes are known, the voxels and box of each label.

    Returns ``(labels, voxels, boxes)``: ``voxels[i]`` (int64) and
    ``boxes[i]`` (a tuple of slices, as :func:`scipy.ndimage.find_objects`
    gives) of label ``i``, 0 and None for the background; both None when
    `components` is not given.
    """
    from scipy import ndimage as ndi

    mask = np.asarray(mask, dtype=bool)
    spacing = as_spacing(spacing, mask.ndim)
    if not np.isfinite(diameter) or diameter <= 0:
        raise ParameterError(f"diameter must be a positive length, got {diameter!r}")
    smoothing = DEFAULTS["smoothing"] if smoothing is None else smoothing
    h = DEFAULTS["h"] if h is None else h
    merge_distance = DEFAULTS["merge_distance"] if merge_distance is None else merge_distance
    if not mask.any():
        return np.zeros(mask.shape, dtype=np.uint16), np.zeros(1, dtype=np.int64), [None]
    sigma = smoothing * diameter / np.asarray(spacing)
    # a crop this much larger than a component smooths its inside exactly as the whole volume would
    margin = np.ceil(SMOOTHING_TRUNCATE * sigma).astype(int) + 1 if smoothing > 0 else np.ones(mask.ndim, int)
    factor = split_factor(diameter, spacing) if reduce else (1,) * mask.ndim
    reduced = max(factor) > 1

    if components is None:
        components, n = label(mask)
        sizes = None
    else:
        components, sizes = components
        n = len(sizes) - 1
    if n < np.iinfo(np.uint16).max and components.dtype != np.uint16:
        components = components.astype(np.uint16)  # half the memory while the distance map exists
    boxes = bounding_boxes(components, n)
    present = np.flatnonzero(sizes[1:]) + 1 if sizes is not None else np.arange(1, n + 1)
    shape = np.asarray(mask.shape)
    crops, cropped = {}, 0
    for component in present.tolist():
        start = np.array([s.start for s in boxes[component - 1]], dtype=np.int64)
        stop = np.array([s.stop for s in boxes[component - 1]], dtype=np.int64)
        extent = (stop - start) * np.asarray(spacing)
        # every peak of a small component lies within merge distance of the highest: one object
        if np.linalg.norm(extent) < merge_distance * diameter:
            continue
        # a face-connected component spanning these extents has at least this many voxels
        if int((stop - start).sum()) - (mask.ndim - 1) < TINY_COMPONENT:
            size = sizes[component] if sizes is not None else \
                np.count_nonzero(components[boxes[component - 1]] == component)
            if size < TINY_COMPONENT:
                continue
        if reduced:
            lo, hi = reduced_crop(start, stop, factor, shape)
        else:
            lo, hi = np.maximum(start - margin, 0), np.minimum(stop + margin, shape)
        crops[component] = (tuple(slice(int(a), int(b)) for a, b in zip(lo, hi)),
                            tuple(slice(int(a), int(b)) for a, b in zip(start - lo, stop - lo)))
        cropped += int(np.prod(hi - lo))
    if reduced:
        distance = None  # each component gets the distance map of its reduced mask
    elif distance is None and crops:
        distance, overwrite_distance = distance_transform(mask, spacing=spacing), True
    smoothed = None
    if crops and not reduced and smoothing > 0 and cropped > GLOBAL_SMOOTHING_FRACTION * mask.size:
        # the crops cover much of the volume: smooth it once (the crops' insides are the same either way)
        from .filters import gaussian_filter_threaded

        smoothed = gaussian_filter_threaded(distance, sigma, mode="nearest", truncate=SMOOTHING_TRUNCATE,
                                            output=distance if overwrite_distance else np.empty_like(distance))

    def split_one(component):
        crop, box = crops[component]
        inside = components[crop] == component
        if reduced:
            faces = tuple((c.start == 0, c.stop == size) for c, size in zip(crop, mask.shape))
            objects = split_component_reduced(inside, spacing, factor, sigma=smoothing * diameter,
                                              depth=h * diameter, merge_radius=merge_distance * diameter,
                                              faces=faces)
        else:
            if smoothed is not None:
                local = smoothed[crop]
            elif smoothing > 0:
                local = ndi.gaussian_filter(distance[crop], sigma, mode="nearest", truncate=SMOOTHING_TRUNCATE)
            else:
                local = distance[crop]
            objects = split_component(local, inside, spacing, depth=h * diameter,
                                       merge_radius=merge_distance * diameter, box=box)
        count = int(objects.max())
        if count <= 1:
            return None, None, None, None
        origin = [c.start for c in crop]
        found = ndi.find_objects(objects, count)
        firsts = [_first_voxel(objects, k + 1, box, origin, mask.shape) for k, box in enumerate(found)]
        objects = objects[inside]
        boxes = [tuple(slice(o + b.start, o + b.stop) for o, b in zip(origin, box)) for box in found]
        return objects, np.array(firsts, dtype=np.int64), np.bincount(objects, minlength=count + 1), boxes

    from ._threads import thread_map

    # the watershed and the filters release the GIL: components are split on all cores
    results = dict(zip(crops, thread_map(split_one, crops)))
    del smoothed, distance
    return _write_objects(components, present, boxes, crops, results, mask.shape, sizes)


def _first_voxel(labels, value, box, origin, shape) -> int:
    """Raster index, in a volume of `shape`, of the first voxel of `value` in `labels` (a crop at `origin`).

    The first voxel lies in the first plane of the label's bounding box `box`.
    """
    plane = labels[(box[0].start,) + tuple(box[1:])] == value
    local = np.unravel_index(int(np.argmax(plane)), plane.shape)
    coords = [box[0].start] + [s.start + i for s, i in zip(box[1:], local)]
    return int(np.ravel_multi_index(tuple(int(o) + c for o, c in zip(origin, coords)), shape))


def _write_objects(components, ids, boxes, crops, results, shape, sizes=None):
    """The label image of the split components: objects numbered in raster order of their first voxel.

    The components are numbered in raster order of their first voxel (as
    :func:`voxseg.morphology.label` does); a split component's object that
    holds that voxel keeps the component's place, its other objects are put
    among the components by their own first voxel. One pass over the volume
    (a look-up table) then writes every component, and the split ones are
    overwritten within their crops: no renumbering pass. Returns the labels
    and, when the components' `sizes` are given, the voxels and the box of
    each label (else None and None).
    """
    from bisect import bisect_left

    n = len(boxes)  # `ids`: the components present, in raster order of their first voxels
    cache = {}

    def first_of(component):
        if component not in cache:
            cache[component] = _first_voxel(components, component, boxes[component - 1], (0,) * len(shape), shape)
        return cache[component]

    # (first voxel, component, object) of the objects that do not hold their component's first voxel
    extras = []
    for component, (_, firsts, _, _) in results.items():
        if firsts is not None:
            lead = int(np.argmin(firsts))
            extras += [(int(f), component, k + 1) for k, f in enumerate(firsts) if k != lead]
    extras.sort()
    present = ids.tolist()
    # how many components come before each extra object (components are in order of their first voxels)
    before = np.array([bisect_left(present, f, key=first_of) for f, _, _ in extras], dtype=np.int64)
    rank = np.zeros(n + 1, dtype=np.int64)
    rank[ids] = np.arange(1, ids.size + 1) + np.searchsorted(before, np.arange(ids.size), side="right")
    extra_rank = before + np.arange(1, len(extras) + 1)
    total = ids.size + len(extras)
    if total > np.iinfo(components.dtype).max:
        components = components.astype(np.uint32)
    labels = _apply_lut(components, rank)
    object_rank = {}
    for (_, component, k), value in zip(extras, extra_rank.tolist()):
        object_rank.setdefault(component, {})[k] = value
    voxels = labelled = None
    if sizes is not None:
        voxels = np.zeros(total + 1, dtype=np.int64)
        voxels[rank[ids]] = sizes[ids]
        labelled = [None] * (total + 1)
        for component, place in zip(present, rank[ids].tolist()):
            labelled[place] = boxes[component - 1]
    for component, (objects, firsts, counts, object_boxes) in results.items():
        if objects is None:
            continue
        lead = int(np.argmin(firsts)) + 1
        table = np.zeros(len(firsts) + 1, dtype=labels.dtype)
        table[lead] = rank[component]
        for k, value in object_rank[component].items():
            table[k] = value
        crop, _ = crops[component]
        view = labels[crop]
        # the component's voxels hold rank[component]: no other voxel can (ids never overlap)
        view[view == rank[component]] = table[objects]
        if voxels is not None:
            voxels[table[1:]] = counts[1:]
            for place, box in zip(table[1:].tolist(), object_boxes):
                labelled[place] = box
    if labels.dtype != np.uint16 and total < 2**16:
        labels = labels.astype(np.uint16)
    return labels, voxels, labelled


def _apply_lut(labels, lut):
    """``lut[labels]``, in place (the values of `lut` fit the dtype of `labels`, C-contiguous)."""
    from .morphology import _look_up

    return _look_up(np.asarray(lut).astype(labels.dtype), labels, out=labels)


def split_component(distance, inside, spacing, *, depth, merge_radius, box=None):
    """Objects 1..k of one connected component, from a crop of the (smoothed) distance map around it.

    This is :func:`split_touching`'s work on one component, which the chunked
    path calls on the same crops: seeds at the regional maxima of `distance`
    inside the component, a watershed of ``-distance`` from them, then the
    merges of :func:`merge_shallow_basins` (`depth`) and of seeds closer than
    `merge_radius` (both in the unit of `spacing`).

    Parameters
    ----------
    distance : ndarray of float
        The map on a crop around the component.
    inside : ndarray of bool
        The component's voxels in that crop.
    spacing : sequence of float
        Voxel size per axis.
    depth, merge_radius : float
        Lengths in the unit of `spacing`.
    box : tuple of slice, optional
        The component's bounding box in the crop (found from `inside` when not given).

    Returns
    -------
    ndarray
        Object ids 1..k on the crop (uint32), 0 outside the component; `inside` as uint8 when the
        component is one object.
    """
    import cc3d
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    # everything happens in the component's bounding box: the flood order (by height, then by age in
    # raster order) and the seeds' raster order are the same as on the crop, so is the result; the
    # maxima are judged one voxel further out, with all the neighbours of the component's voxels
    if box is None:
        box = ndi.find_objects(inside.view(np.uint8))[0]
    offset = np.array([s.start for s in box], dtype=np.int64)
    grown = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, size)) for s, size in zip(box, inside.shape))
    within = tuple(slice(s.start - g.start, s.stop - g.start) for s, g in zip(box, grown))
    seeds = (_regional_maxima(distance[grown]) & inside[grown])[within]
    seeds, n = cc3d.connected_components(seeds, connectivity=26, return_N=True)
    if n <= 1:
        return inside.view(np.uint8)
    distance, inside_box = distance[box], inside[box]
    basins = watershed(-distance, seeds, mask=inside_box)
    # a basin's peak is its seed (a higher point would have been another maximum)
    where = np.flatnonzero(seeds)
    peaks = np.zeros(n + 1, dtype=np.float64)
    peaks[seeds.flat[where]] = distance.flat[where]
    # positions in the crop's coordinates, so that distances between them are computed as on the crop
    seed_positions = np.zeros((n + 1, inside.ndim), dtype=np.int64)
    seed_positions[seeds.flat[where[::-1]]] = np.column_stack(np.unravel_index(where[::-1], seeds.shape)) + offset
    lut = merge_shallow_basins(basins, distance, depth=depth, peaks=peaks)
    if merge_radius > 0:
        lut = _merge_close_objects(lut, peaks, seed_positions, spacing, merge_radius)
    # objects numbered 1..k
    _, compact = np.unique(lut, return_inverse=True)
    objects = np.zeros(inside.shape, dtype=np.uint32)
    objects[box] = compact.reshape(lut.shape).astype(np.uint32)[basins]
    return objects


def split_factor(diameter, spacing) -> tuple[int, ...]:
    """The integer factor per axis by which :func:`split_touching` reduces objects of `diameter`.

    It leaves about :data:`REDUCED_DIAMETER_VOXELS` voxels (at least 3/4 of
    that) across an object along each axis; 1 along axes where objects are
    narrower.

    Examples
    --------
    >>> split_factor(12.0, (0.29, 0.26, 0.26)), split_factor(10.0, (2.0, 0.2, 0.2))
    ((3, 3, 3), (1, 3, 3))
    """
    return tuple(max(1, math.floor(diameter / (s * REDUCED_DIAMETER_VOXELS) + 0.5)) for s in spacing)


def reduced_crop(start, stop, factor, shape):
    """The crop (lo, hi) that :func:`split_touching` reduces around a component's bounding box [start, stop).

    One block wider than the box on each side (so the reduced component has
    background around it), aligned to the volume's grid of blocks, clipped
    to the volume.
    """
    start, stop, factor = (np.asarray(v, dtype=np.int64) for v in (start, stop, factor))
    lo = np.maximum((start // factor - 1) * factor, 0)
    hi = np.minimum((-(-stop // factor) + 1) * factor, np.asarray(shape, dtype=np.int64))
    return lo, hi


def _reduce_any(mask, factor):
    """Blocks of `factor` voxels that hold any voxel of `mask` (partial blocks at the far faces count)."""
    pad = [(0, -n % f) for n, f in zip(mask.shape, factor)]
    if any(after for _, after in pad):
        mask = np.pad(mask, pad)
    reduced = np.ascontiguousarray(mask).view(np.uint8)
    # OR of the interleaved slices, last axis first: each pass reads the previous pass's smaller output
    for axis in reversed(range(mask.ndim)):
        f = factor[axis]
        if f == 1:
            continue
        index = [slice(None)] * mask.ndim
        index[axis] = slice(0, None, f)
        out = reduced[tuple(index)].copy()
        for k in range(1, f):
            index[axis] = slice(k, None, f)
            np.bitwise_or(out, reduced[tuple(index)], out=out)
        reduced = out
    return reduced.view(bool)


def _expand(reduced, factor, shape):
    """Each block's value on its voxels, cut to `shape`."""
    view = reduced.reshape([v for n in reduced.shape for v in (n, 1)])
    full = np.broadcast_to(view, [v for n, f in zip(reduced.shape, factor) for v in (n, f)])
    full = full.reshape([n * f for n, f in zip(reduced.shape, factor)])
    return full[tuple(slice(0, n) for n in shape)]


def _join_fragments(objects, count):
    """Make each object face-connected: its largest piece keeps it, other pieces join a neighbour.

    A piece that is not the largest of its object joins the neighbouring
    piece it shares the most faces with (ties: the piece found first in
    raster order), once that piece's object is settled.
    """
    import cc3d
    import fastremap

    volume = objects.reshape((1,) * (3 - objects.ndim) + objects.shape)
    pieces, n = cc3d.connected_components(volume, connectivity=6, return_N=True)
    if n == count:
        return objects
    flat = pieces.reshape(-1)
    owner = np.zeros(n + 1, dtype=np.int64)
    owner[flat] = volume.reshape(-1)  # every voxel of a piece belongs to the same object
    sizes = np.bincount(flat, minlength=n + 1)
    # the largest piece of each object (first in raster order among equals) keeps the object
    order = np.lexsort((np.arange(n + 1), -sizes, owner))
    first = np.r_[True, owner[order][1:] != owner[order][:-1]]
    settled = np.zeros(n + 1, dtype=np.int64)
    settled[order[first]] = owner[order[first]]
    settled[0] = 0
    neighbours = {}
    for (a, b), faces in cc3d.contacts(pieces, connectivity=6, surface_area=False).items():
        if a and b:
            neighbours.setdefault(int(a), []).append((float(faces), -int(b)))
            neighbours.setdefault(int(b), []).append((float(faces), -int(a)))
    waiting = [p for p in range(1, n + 1) if settled[p] == 0]
    while waiting:
        before = settled.copy()  # each round sees the pieces settled before it
        still = []
        for piece in waiting:
            choices = [choice for choice in neighbours.get(piece, []) if before[-choice[1]]]
            if choices:
                settled[piece] = before[-max(choices)[1]]
            else:
                still.append(piece)
        if len(still) == len(waiting):  # cannot happen in a connected component; never loop forever
            break
        waiting = still
    out = fastremap.remap(pieces, dict(enumerate(settled.tolist())), preserve_missing_labels=True, in_place=True)
    return out.astype(objects.dtype, copy=False).reshape(objects.shape)


def split_component_reduced(inside, spacing, factor, *, sigma, depth, merge_radius, faces=None):
    """Objects 1..k of one connected component, split on its mask reduced by `factor`.

    This is :func:`split_touching`'s work on one component when it reduces,
    which the chunked path calls on the same crops. The component is reduced
    (a block belongs to it when any of its voxels does), its distance map is
    computed and smoothed by a Gaussian of physical `sigma` (zero outside
    the component, the nearest value beyond the volume's faces), and
    :func:`split_component` splits it; each voxel of the component takes the
    object of its block, and pieces an object holds apart from its largest
    one join a neighbouring object, so every object is face-connected.

    Parameters
    ----------
    inside : ndarray of bool
        The component's voxels on a crop whose origin lies on the grid of
        blocks (see :func:`reduced_crop`).
    spacing : sequence of float
        Voxel size per axis.
    factor : sequence of int
        Reduction per axis (see :func:`split_factor`).
    sigma, depth, merge_radius : float
        Lengths in the unit of `spacing`.
    faces : sequence of (bool, bool), optional
        Per axis, whether the crop's low and high sides lie on the volume's
        faces (where the volume border is not background).

    Returns
    -------
    ndarray
        Object ids 1..k on the crop (uint32), 0 outside the component; `inside` as uint8 when the
        component is one object.
    """
    import edt
    from scipy import ndimage as ndi

    factor = tuple(int(f) for f in factor)
    spacing = tuple(float(s) * f for s, f in zip(spacing, factor))
    faces = faces if faces is not None else ((False, False),) * inside.ndim
    small = _reduce_any(inside, factor)
    distance = edt.edt(small.view(np.uint8), anisotropy=spacing, black_border=False, parallel=1)
    distance = distance.astype(np.float32, copy=False)
    if sigma > 0:
        scale = sigma / np.asarray(spacing)
        reach = [int(SMOOTHING_TRUNCATE * s + 0.5) for s in scale]
        # beyond a volume face the map goes on as at the face; elsewhere the component ends in background
        pad = [(r if lo else 0, r if hi else 0) for r, (lo, hi) in zip(reach, faces)]
        padded = np.pad(distance, pad, mode="edge") if any(a or b for a, b in pad) else distance
        smoothed = ndi.gaussian_filter(padded, scale, mode="constant", truncate=SMOOTHING_TRUNCATE)
        distance = smoothed[tuple(slice(a, n - b) for (a, b), n in zip(pad, padded.shape))]
    objects = split_component(distance, small, spacing, depth=depth, merge_radius=merge_radius)
    count = int(objects.max())
    if count <= 1:
        return inside.view(np.uint8)
    full = np.where(inside, _expand(objects, factor, inside.shape), np.uint32(0))
    return _join_fragments(full, count)


def clear_border(labels) -> np.ndarray:
    """Remove the objects that touch any face of the volume (0 elsewhere unchanged)."""
    import fastremap

    labels = np.asarray(labels)
    faces = []
    for axis in range(labels.ndim):
        faces.append(np.take(labels, 0, axis=axis).ravel())
        faces.append(np.take(labels, -1, axis=axis).ravel())
    touching = np.unique(np.concatenate(faces))
    touching = touching[touching != 0]
    if touching.size == 0:
        return labels.copy()
    return fastremap.mask(labels, touching.tolist(), in_place=False, value=0)


def relabel_canonical(labels) -> np.ndarray:
    """Renumber labels 1..N in the order of each object's first voxel in raster order.

    The numbering depends only on the partition, not on the ids it had, so
    two runs that find the same objects (in memory or chunked) give
    identical label volumes. The dtype is uint16 when N < 65536, else uint32.

    Examples
    --------
    >>> relabel_canonical(np.array([[0, 7, 7, 3], [5, 0, 3, 3]])).tolist()
    [[0, 1, 1, 2], [3, 0, 2, 2]]
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "ui":
        raise ParameterError(f"labels must be integers, got dtype {labels.dtype}")
    return _relabel_in_place(np.array(labels, order="C"))


def _relabel_in_place(labels):
    """:func:`relabel_canonical` that may overwrite `labels` (C-contiguous, unsigned or non-negative)."""
    import fastremap

    # fastremap numbers ids in the order it meets them in memory: C order is raster order
    renumbered, mapping = fastremap.renumber(labels, preserve_zero=True, in_place=True)
    count = len(mapping) - (1 if 0 in mapping else 0)
    return renumbered.astype(np.uint16 if count < 2**16 else np.uint32, copy=False)


def check_diameter(diameter, shape, spacing) -> float:
    """`diameter` if it is a length objects in this volume can have, else a ParameterError saying why."""
    spacing = as_spacing(spacing, len(shape))
    unit_note = "in the unit of the spacing"
    if not np.isfinite(diameter) or diameter <= 0:
        raise ParameterError(f"diameter must be a positive length {unit_note}, got {diameter!r}")
    extent = max(n * s for n, s in zip(shape, spacing))
    if diameter > 2 * extent:
        raise ParameterError(
            f"diameter {diameter:g} is more than twice the volume's largest extent ({extent:g}); "
            f"is it {unit_note}?")
    if diameter < min(spacing):
        raise ParameterError(
            f"diameter {diameter:g} is smaller than one voxel ({min(spacing):g}); is it {unit_note}?")
    return float(diameter)


def segment(image, *, spacing=None, diameter=None, threshold="li", dark_objects=False, clear_border=False,
            pipeline=None, progress=None):
    """Segment a volume into separated objects with the default recipe (or `pipeline`).

    Parameters
    ----------
    image : ndarray
        3D intensity volume (z, y, x).
    spacing : sequence of float, optional
        Voxel size per axis; every length below is in its unit.
    diameter : float, optional
        Expected object diameter. Estimated from the data when not given.
    threshold : str
        Threshold method (see :mod:`voxseg.threshold`).
    dark_objects : bool
        Objects are darker than the background (pores, dark grains).
    clear_border : bool
        Drop the objects that touch the volume border.
    pipeline : Pipeline, optional
        Run this pipeline instead of the default recipe (the other options
        are then ignored, except `spacing`).
    progress : callable, optional
        Called with (step index, step count, step name) before each step.

    Returns
    -------
    PipelineResult
        ``.data`` is the label volume (uint16 or uint32, 0 = background,
        objects 1..N in raster order of their first voxel), ``.pipeline`` the
        resolved pipeline, ``.records`` the threshold value and whether the
        diameter was estimated.

    Examples
    --------
    >>> from voxseg.testing import sphere_pack
    >>> vol = sphere_pack(shape=(32, 32, 32), diameter=10, attempts=200)
    >>> result = segment(vol.image, spacing=vol.spacing, diameter=10)
    >>> int(result.data.max()) == int(vol.labels.max())
    True
    """
    from .pipeline import default_pipeline

    image = np.asarray(image)
    if image.ndim != 3:
        raise ParameterError(f"image must be 3D (z, y, x), got shape {image.shape}")
    if diameter is not None:
        check_diameter(diameter, image.shape, spacing)
    if pipeline is None:
        pipeline = default_pipeline(diameter="auto" if diameter is None else float(diameter),
                                    threshold=threshold, dark_objects=dark_objects, clear_border=clear_border)
    elif diameter is not None:
        pipeline = type(pipeline)(pipeline.steps, diameter=float(diameter))
    return pipeline.run(image, spacing=spacing, progress=progress)
