"""Synthetic volumes with exact truth, and scores that compare labelings.

Used by the test suite, the accuracy benchmark and the tutorial; useful to
anyone who wants to check a pipeline on data whose answer is known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .volume import as_spacing

__all__ = [
    "SyntheticVolume",
    "touching_ellipsoids",
    "sphere_pack",
    "match_labels",
    "assert_equivalent_labeling",
    "invoke_cli",
]


@dataclass(frozen=True)
class SyntheticVolume:
    """An image, its true labels and the spacing and object diameter used to make it."""

    image: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]
    diameter: float


def _render(truth, spacing, rng, *, blur, noise, dtype, background=0.1, foreground=0.8):
    """Blurred, noisy intensity image of a label volume (bright objects)."""
    image = np.where(truth > 0, foreground, background).astype(np.float32)
    image = ndi.gaussian_filter(image, np.asarray(blur) / np.asarray(spacing))
    image += rng.normal(0, noise, image.shape).astype(np.float32)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(image * info.max * 0.5 + info.max * 0.1, 0, info.max).astype(dtype)
    return image.astype(dtype)


def _assign_nearest(shape, spacing, centres, inverse_axes, rotations):
    """Label each voxel with the object whose scaled distance is smallest, if below 1."""
    spacing = np.asarray(spacing)
    best = np.full(shape, np.inf, dtype=np.float32)
    labels = np.zeros(shape, dtype=np.uint16)
    grid = np.indices(shape, dtype=np.float32)
    for index, (centre, inv_axes, rotation) in enumerate(zip(centres, inverse_axes, rotations), 1):
        # restrict the work to a box around the object
        reach = (1.0 / inv_axes.min()) / spacing + 2
        lo = np.maximum(np.floor(centre / spacing - reach).astype(int), 0)
        hi = np.minimum(np.ceil(centre / spacing + reach).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        coords = np.stack([g[box] * s - c for g, s, c in zip(grid, spacing, centre)], axis=-1)
        local = coords @ rotation  # coordinates in the object's own frame
        dist = np.sqrt(((local * inv_axes) ** 2).sum(-1))
        closer = (dist < 1.0) & (dist < best[box])
        best[box][closer] = dist[closer]
        labels[box][closer] = index
    return labels


def _random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def touching_ellipsoids(
    shape=(24, 96, 96),
    *,
    spacing=(2.0, 0.5, 0.5),
    diameter=12.0,
    count=None,
    overlap=0.15,
    seed=0,
    noise=0.05,
    dtype=np.uint16,
) -> SyntheticVolume:
    """Randomly oriented, touching ellipsoids of about `diameter` in an anisotropic stack.

    Semi-axes vary between 0.7 and 1.25 times ``diameter / 2`` (aspect up to
    about 1.8). Centres are placed so that neighbours overlap by about
    `overlap` of a diameter; the true label of a voxel in an overlap is the
    object whose surface is farthest away (its normalised distance is smallest).

    Examples
    --------
    >>> vol = touching_ellipsoids(shape=(8, 32, 32), count=3)
    >>> vol.image.shape, int(vol.labels.max()) <= 3
    ((8, 32, 32), True)
    """
    rng = np.random.default_rng(seed)
    spacing = np.asarray(as_spacing(spacing))
    extent = np.asarray(shape) * spacing
    radius = diameter / 2
    if count is None:
        count = int(0.45 * np.prod(extent) / (4 / 3 * np.pi * radius**3)) or 1
    centres, axes = [], []
    min_gap = diameter * (1 - overlap)
    for _ in range(count * 200):
        if len(centres) == count:
            break
        semi = radius * rng.uniform(0.7, 1.25, 3)
        semi *= radius / np.cbrt(np.prod(semi))  # keep the volume of a sphere of `diameter`
        centre = rng.uniform(0, extent)
        # stay mostly inside the volume: at least half a radius from z faces
        centre[0] = rng.uniform(radius * 0.5, max(extent[0] - radius * 0.5, radius * 0.5 + 1e-6))
        if centres:
            d = np.linalg.norm(np.asarray(centres) - centre, axis=1)
            if d.min() < min_gap:
                continue
            if d.min() > diameter * 1.05 and rng.uniform() < 0.7:
                continue  # favour positions that touch an existing object
        centres.append(centre)
        axes.append(semi)
    rotations = [_random_rotation(rng) for _ in centres]
    inverse_axes = [1.0 / np.asarray(a) for a in axes]
    labels = _assign_nearest(tuple(shape), spacing, np.asarray(centres), inverse_axes, rotations)
    labels = _relabel_by_first_voxel(labels)
    image = _render(labels, spacing, rng, blur=0.3 * radius / 3, noise=noise, dtype=dtype)
    return SyntheticVolume(image, labels, tuple(spacing.tolist()), float(diameter))


def sphere_pack(
    shape=(64, 64, 64),
    *,
    spacing=(1.0, 1.0, 1.0),
    diameter=16.0,
    overlap=0.1,
    attempts=20000,
    seed=0,
    noise=0.05,
    dtype=np.uint8,
) -> SyntheticVolume:
    """A dense random pack of touching spheres (bright grains, micro-CT style).

    Spheres of `diameter` (with a 10 % spread) are added at random positions
    (random sequential addition) wherever they overlap no earlier sphere by
    more than `overlap` of a diameter, until `attempts` tries are used. Where
    two spheres overlap, a voxel belongs to the nearer centre relative to its
    radius.

    Examples
    --------
    >>> vol = sphere_pack(shape=(24, 24, 24), diameter=8, attempts=200)
    >>> bool(vol.labels.max() > 3)
    True
    """
    rng = np.random.default_rng(seed)
    spacing = np.asarray(as_spacing(spacing))
    extent = np.asarray(shape) * spacing
    radii_all = diameter / 2 * rng.uniform(0.9, 1.1, attempts)
    # centres inside the volume: every grain is at least half visible
    positions = rng.uniform(0, extent, (attempts, 3))
    centres, radii = [], []
    for centre, r in zip(positions, radii_all):
        if centres:
            gap = np.linalg.norm(np.asarray(centres) - centre, axis=1) - (np.asarray(radii) + r)
            if gap.min() < -overlap * diameter:
                continue
        centres.append(centre)
        radii.append(r)
    identity = np.eye(3)
    labels = _assign_nearest(
        tuple(shape), spacing, np.asarray(centres), [np.full(3, 1.0 / r) for r in radii], [identity] * len(radii)
    )
    labels = _relabel_by_first_voxel(labels)
    image = _render(labels, spacing, rng, blur=diameter / 24, noise=noise, dtype=dtype)
    return SyntheticVolume(image, labels, tuple(spacing.tolist()), float(diameter))


def _relabel_by_first_voxel(labels):
    """Renumber 1..N in the order of each object's first voxel in raster order (0 stays 0)."""
    flat = labels.ravel()
    ids, first = np.unique(flat, return_index=True)
    keep = ids != 0
    ids, first = ids[keep], first[keep]
    order = ids[np.argsort(first)]
    lut = np.zeros(int(labels.max()) + 1, dtype=np.uint32)
    lut[order] = np.arange(1, len(order) + 1)
    out = lut[labels]
    return out.astype(np.uint16 if len(order) < 65536 else np.uint32)


def match_labels(pred, truth, *, iou_threshold: float = 0.5) -> dict:
    """Object-level agreement of two labelings (0 = background).

    Objects are paired one to one by Hungarian matching on their
    intersection over union (IoU); a pair counts as a true positive when its
    IoU is at least `iou_threshold`.

    Returns
    -------
    dict
        ``f1``, ``precision``, ``recall``, ``mean_iou`` (over the matched
        pairs), ``true_positives``, ``predicted`` and ``truth`` (object
        counts).

    Examples
    --------
    >>> a = np.array([[0, 1, 1, 2, 2]])
    >>> match_labels(a, a)["f1"]
    1.0
    """
    from scipy.optimize import linear_sum_assignment

    pred = np.asarray(pred)
    truth = np.asarray(truth)
    if pred.shape != truth.shape:
        raise ValueError(f"labelings differ in shape: {pred.shape} and {truth.shape}")
    # compact ids so the contingency table is small
    p_ids, p = np.unique(pred, return_inverse=True)
    t_ids, t = np.unique(truth, return_inverse=True)
    p_off = 1 if p_ids[0] == 0 else 0
    t_off = 1 if t_ids[0] == 0 else 0
    n_p, n_t = len(p_ids), len(t_ids)
    table = np.bincount(p.ravel().astype(np.int64) * n_t + t.ravel(), minlength=n_p * n_t).reshape(n_p, n_t)
    p_sizes, t_sizes = table.sum(1), table.sum(0)
    if p_off == 0:  # no background in pred: add an empty background row
        table = np.vstack([np.zeros((1, n_t), table.dtype), table])
        p_sizes = np.concatenate([[0], p_sizes])
    if t_off == 0:
        table = np.hstack([np.zeros((table.shape[0], 1), table.dtype), table])
        t_sizes = np.concatenate([[0], t_sizes])
    inter = table[1:, 1:].astype(np.float64)
    union = p_sizes[1:, None] + t_sizes[None, 1:] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    n_pred, n_truth = iou.shape
    if n_pred and n_truth:
        rows, cols = linear_sum_assignment(-iou)
        matched = iou[rows, cols]
        matched = matched[matched >= iou_threshold]
    else:
        matched = np.zeros(0)
    tp = len(matched)
    f1 = 2 * tp / (n_pred + n_truth) if n_pred + n_truth else 1.0
    return {
        "f1": float(f1),
        "precision": float(tp / n_pred) if n_pred else 1.0,
        "recall": float(tp / n_truth) if n_truth else 1.0,
        "mean_iou": float(matched.mean()) if tp else 0.0,
        "true_positives": tp,
        "predicted": int(n_pred),
        "truth": int(n_truth),
    }


def assert_equivalent_labeling(a, b):
    """Assert that two labelings are equal up to a permutation of the ids (0 fixed)."""
    a = np.asarray(a).ravel()
    b = np.asarray(b).ravel()
    assert a.shape == b.shape, f"shapes differ: {a.shape} != {b.shape}"
    assert np.array_equal(a == 0, b == 0), "background differs"
    pairs = np.unique(np.stack([a, b]), axis=1)
    assert len(np.unique(pairs[0])) == pairs.shape[1], "a label of the first maps to several of the second"
    assert len(np.unique(pairs[1])) == pairs.shape[1], "a label of the second maps to several of the first"


def invoke_cli(*args) -> tuple[int, str, str]:
    """Run the ``voxseg`` command line in this process; return (exit status, stdout, stderr).

    Examples
    --------
    >>> status, out, err = invoke_cli("--version")
    >>> status, out.startswith("voxseg")
    (0, True)
    """
    import contextlib
    import io

    from .cli import main

    out, err = io.StringIO(), io.StringIO()
    status = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exit_:
            status = exit_.code or 0
    return status, out.getvalue(), err.getvalue()
