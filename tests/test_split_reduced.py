"""split_touching at reduced resolution: objects many voxels wide are split on each component's reduced mask."""

import cc3d
import numpy as np
import pytest
from scipy import ndimage as ndi

import voxseg.segmentation as seg
from voxseg.segmentation import reduced_crop, split_component_reduced, split_factor, split_touching
from voxseg.testing import match_labels, touching_ellipsoids


def balls(radius, gap, spacing=(1.0, 1.0, 1.0)):
    """Two overlapping balls of physical `radius`, centres `gap` apart along x."""
    spacing = np.asarray(spacing)
    shape = np.ceil(np.array([2.5 * radius, 2.5 * radius, 2 * radius + gap + 8]) / spacing).astype(int)
    z, y, x = np.indices(shape) * spacing[:, None, None, None]
    centre = 1.25 * radius
    a = (z - centre) ** 2 + (y - centre) ** 2 + (x - radius - 4) ** 2 < radius**2
    b = (z - centre) ** 2 + (y - centre) ** 2 + (x - radius - 4 - gap) ** 2 < radius**2
    return a | b


def assert_objects_face_connected(labels):
    pieces, n = cc3d.connected_components(labels, connectivity=6, return_N=True)
    assert n == int(labels.max()), "an object is in several face-connected pieces"


def test_split_factor_leaves_objects_about_16_voxels_across():
    assert seg.REDUCED_DIAMETER_VOXELS == 16
    assert split_factor(20.0, (1.0, 1.0, 1.0)) == (1, 1, 1)  # 1.25 rounds down: 20 voxels across stay
    assert split_factor(24.0, (1.0, 1.0, 1.0)) == (2, 2, 2)  # 12 voxels across at least
    assert split_factor(48.0, (1.0, 1.0, 1.0)) == (3, 3, 3)
    assert split_factor(12.0, (3.0, 0.25, 0.25)) == (1, 3, 3)  # only the fine axes are reduced
    for diameter in np.linspace(1, 400, 97):
        factor = np.asarray(split_factor(diameter, (1.0, 1.0, 1.0)))
        across = diameter / factor
        assert factor.min() >= 1
        assert (factor == 1).all() or (across >= 0.75 * seg.REDUCED_DIAMETER_VOXELS).all()


def test_reduced_crop_is_aligned_one_block_wider_and_clipped():
    lo, hi = reduced_crop((5, 0, 7), (9, 4, 20), (2, 3, 1), (12, 10, 20))
    assert lo.tolist() == [2, 0, 6] and hi.tolist() == [12, 9, 20]
    assert (lo % np.array([2, 3, 1]) == 0).all()


@pytest.mark.parametrize("factor", [(2, 2, 2), (1, 3, 2), (3, 1, 1)])
def test_reduced_mask_holds_every_block_with_a_voxel(rng, factor):
    mask = rng.random((7, 11, 10)) > 0.93
    got = seg._reduce_any(mask, factor)
    pad = [(0, -n % f) for n, f in zip(mask.shape, factor)]
    blocks = np.pad(mask, pad).reshape(
        [v for n, f in zip(np.pad(mask, pad).shape, factor) for v in (n // f, f)])
    np.testing.assert_array_equal(got, blocks.any(axis=(1, 3, 5)))


def test_wide_touching_balls_split_as_at_full_resolution():
    mask = balls(radius=30.0, gap=48.0)
    assert split_factor(60.0, (1.0, 1.0, 1.0)) == (4, 4, 4)
    reduced = split_touching(mask, diameter=60.0)
    full = split_touching(mask, diameter=60.0, reduce=False)
    assert reduced.max() == full.max() == 2
    np.testing.assert_array_equal(reduced > 0, mask)  # every voxel of the mask belongs to an object
    score = match_labels(reduced, full)
    assert score["f1"] == 1.0 and score["mean_iou"] > 0.97
    assert_objects_face_connected(reduced)


def test_one_wide_ball_stays_whole():
    z, y, x = np.ogrid[-40:41, -40:41, -40:41]
    mask = z**2 + y**2 + x**2 < 35**2
    labels = split_touching(mask, diameter=70.0)
    assert labels.max() == 1 and (labels > 0).sum() == mask.sum()


@pytest.mark.parametrize("shape, spacing, diameter, factor", [
    ((60, 200, 200), (1.0, 1.0, 1.0), 36.0, (2, 2, 2)),
    ((40, 220, 220), (2.0, 0.5, 0.5), 40.0, (1, 5, 5)),
])
def test_reduced_split_of_touching_ellipsoids_is_as_accurate(shape, spacing, diameter, factor):
    vol = touching_ellipsoids(shape=shape, spacing=spacing, diameter=diameter, seed=3)
    mask = vol.labels > 0
    assert split_factor(diameter, spacing) == factor
    reduced = split_touching(mask, spacing=spacing, diameter=diameter)
    full = split_touching(mask, spacing=spacing, diameter=diameter, reduce=False)
    got, want = match_labels(reduced, vol.labels), match_labels(full, vol.labels)
    assert got["f1"] == want["f1"] == 1.0
    assert got["mean_iou"] > want["mean_iou"] - 0.02
    assert_objects_face_connected(reduced)
    np.testing.assert_array_equal(reduced > 0, mask)


def test_rough_blobs_give_face_connected_objects_covering_the_mask(monkeypatch, rng):
    field = ndi.gaussian_filter(rng.normal(size=(30, 40, 40)), 2.5)
    mask = field > np.quantile(field, 0.5)
    monkeypatch.setattr(seg, "REDUCED_DIAMETER_VOXELS", 3)  # blocks of 3: many fragments to join
    labels = split_touching(mask, diameter=9.0)
    assert split_factor(9.0, (1.0, 1.0, 1.0)) == (3, 3, 3)
    np.testing.assert_array_equal(labels > 0, mask)
    assert_objects_face_connected(labels)
    # every connected component of the mask holds at least one object
    components, n = ndi.label(mask)
    assert len(np.unique(components[labels > 0])) == n
    np.testing.assert_array_equal(labels, split_touching(mask, diameter=9.0))  # deterministic


def test_fragments_join_the_neighbour_they_touch_most():
    objects = np.zeros((1, 5, 8), np.uint32)
    objects[0, :, :4] = 1
    objects[0, :, 4:] = 2
    objects[0, 2, 1] = 2  # a piece of object 2 inside object 1
    joined = seg._join_fragments(objects, 2)
    assert joined[0, 2, 1] == 1
    assert (joined[0, :, 4:] == 2).all()


def test_component_cut_by_the_volume_face_keeps_its_distance_there():
    mask = balls(radius=30.0, gap=48.0)
    cut = mask[:, :, 20:]  # the left ball cut by the x = 0 face
    crop_inside = np.zeros((cut.shape[0], cut.shape[1], cut.shape[2] + 3), bool)
    crop_inside[:, :, :cut.shape[2]] = cut
    common = dict(sigma=0.08 * 60, depth=0.05 * 60, merge_radius=0.5 * 60)
    open_face = split_component_reduced(crop_inside, (1.0, 1.0, 1.0), (4, 4, 4),
                                        faces=((True, True), (True, True), (True, False)), **common)
    assert open_face.max() == 2  # the cut ball is still an object of its own


@pytest.mark.parametrize("reduce", [True, False])
def test_objects_are_numbered_in_raster_order_across_components(monkeypatch, rng, reduce):
    # many components, each split into several objects whose first voxels interleave with other components'
    field = ndi.gaussian_filter(rng.normal(size=(24, 60, 60)), 2.0)
    mask = field > np.quantile(field, 0.6)
    mask[0, 0, ::3] = True  # tiny components first in raster order
    if reduce:
        monkeypatch.setattr(seg, "REDUCED_DIAMETER_VOXELS", 3)
    labels = split_touching(mask, diameter=6.0, reduce=reduce)
    assert labels.max() > ndi.label(mask)[1]  # components were split
    np.testing.assert_array_equal(labels, seg.relabel_canonical(labels))
    assert labels.dtype == np.uint16


def test_handed_components_give_the_labels_of_the_mask(rng):
    from voxseg.morphology import _remove_small_components

    field = ndi.gaussian_filter(rng.normal(size=(20, 50, 50)), 2.0)
    mask = field > np.quantile(field, 0.55)
    kept, labels, sizes = _remove_small_components(mask, 40, 1, numbered=True)
    expected = split_touching(kept, diameter=8.0)
    got = split_touching(kept, diameter=8.0, components=(labels, sizes))
    np.testing.assert_array_equal(got, expected)


def test_many_removed_specks_leave_16_bit_components():
    from voxseg.morphology import _remove_small_components

    mask = np.zeros((8, 300, 300), bool)
    mask[::2, ::2, ::2] = True  # 90,000 single voxels: more than 16-bit ids
    mask[2:7, 10:40, 10:40] = True
    kept, labels, sizes = _remove_small_components(mask, 27, 1, numbered=True)
    assert labels.dtype == np.uint16 and labels.max() == 1 and sizes.tolist() == [0, int(kept.sum())]
    np.testing.assert_array_equal(labels > 0, kept)
