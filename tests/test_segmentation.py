import numpy as np
import pytest

from voxseg.errors import ParameterError
from voxseg.segmentation import (
    clear_border,
    distance_transform,
    estimate_diameter,
    relabel_canonical,
    segment,
    split_touching,
)
from voxseg.testing import assert_equivalent_labeling, match_labels, sphere_pack, touching_ellipsoids


def two_balls(spacing=(1.0, 1.0, 1.0), radius=8.0, gap=14.0):
    """Two overlapping balls of `radius` whose centres are `gap` apart along x (physical units)."""
    spacing = np.asarray(spacing)
    shape = np.ceil(np.array([2.5 * radius, 2.5 * radius, 2 * radius + gap + 6]) / spacing).astype(int)
    z, y, x = (np.indices(shape) * spacing[:, None, None, None])
    cz, cy = 1.25 * radius, 1.25 * radius
    cx = radius + 3
    a = (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 < radius**2
    b = (z - cz) ** 2 + (y - cy) ** 2 + (x - cx - gap) ** 2 < radius**2
    return a | b


def test_distance_transform_honours_spacing():
    mask = np.ones((5, 5, 5), bool)
    mask[2, 2, 2] = False
    d = distance_transform(mask, spacing=(4.0, 1.0, 0.5))
    assert d[2, 2, 3] == pytest.approx(0.5)
    assert d[2, 3, 2] == pytest.approx(1.0)
    assert d[3, 2, 2] == pytest.approx(4.0)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (4.0, 1.0, 1.0), (2.0, 0.5, 0.5)])
def test_split_touching_separates_two_balls_at_any_spacing(spacing):
    mask = two_balls(spacing)
    labels = split_touching(mask, spacing=spacing, diameter=16.0)
    assert labels.max() == 2
    # the cut lies between the two centres, near the midpoint (x = 3 + 8 + 7 = 18)
    xs = np.indices(mask.shape)[2] * spacing[2]
    left = xs[labels == 1].mean()
    right = xs[labels == 2].mean()
    assert left < 18 < right


def test_split_touching_keeps_one_ball_whole():
    z, y, x = np.ogrid[-12:13, -12:13, -12:13]
    mask = z**2 + y**2 + x**2 < 100
    assert split_touching(mask, diameter=20.0).max() == 1


def test_a_component_without_a_deep_maximum_still_becomes_an_object():
    mask = two_balls()
    mask[0:2, 0:2, 0:2] = True  # a tiny separate component
    labels = split_touching(mask, diameter=16.0, h=0.5)
    assert labels[0, 0, 0] != 0
    assert len(np.unique(labels)) - 1 >= 2


def test_estimate_diameter_on_a_sphere_pack():
    vol = sphere_pack(shape=(48, 48, 48), diameter=14.0, attempts=500, seed=2)
    estimate = estimate_diameter(vol.labels > 0, spacing=vol.spacing)
    assert estimate == pytest.approx(14.0, rel=0.15)


def test_estimate_diameter_of_nothing_is_nan():
    assert np.isnan(estimate_diameter(np.zeros((4, 4, 4), bool)))


def test_relabel_canonical_orders_by_first_voxel():
    labels = np.array([[[0, 9, 9], [4, 0, 2]]], dtype=np.uint32)
    out = relabel_canonical(labels)
    assert out.tolist() == [[[0, 1, 1], [2, 0, 3]]]
    assert out.dtype == np.uint16


def test_relabel_canonical_is_independent_of_the_input_ids(rng):
    labels = rng.integers(0, 30, (6, 7, 8)).astype(np.uint32)
    permuted = np.concatenate([[0], rng.permutation(np.arange(1, 30)) + 100])[labels]
    np.testing.assert_array_equal(relabel_canonical(labels), relabel_canonical(permuted))


def test_clear_border_drops_touching_objects():
    labels = np.zeros((5, 6, 7), np.uint16)
    labels[0, 1:3, 1:3] = 1
    labels[2, 2:4, 2:4] = 2
    labels[3, 5, 3] = 3
    out = clear_border(labels)
    assert set(np.unique(out)) == {0, 2}


def test_segment_finds_anisotropic_touching_ellipsoids():
    vol = touching_ellipsoids(shape=(16, 64, 64), spacing=(2.0, 0.5, 0.5), diameter=10.0, seed=3)
    result = segment(vol.image, spacing=vol.spacing, diameter=vol.diameter)
    score = match_labels(result.data, vol.labels)
    assert score["f1"] >= 0.9
    assert result.kind == "labels"


def test_segment_separates_a_bead_pack():
    vol = sphere_pack(shape=(48, 48, 48), diameter=14.0, attempts=3000, seed=1)
    result = segment(vol.image, spacing=vol.spacing, diameter=vol.diameter)
    assert match_labels(result.data, vol.labels)["f1"] >= 0.95


def test_segment_dark_objects_equals_segmenting_the_inverted_image():
    vol = sphere_pack(shape=(32, 32, 32), diameter=10.0, attempts=300, seed=4)
    bright = segment(vol.image, spacing=vol.spacing, diameter=10.0).data
    dark = segment(255 - vol.image, spacing=vol.spacing, diameter=10.0, dark_objects=True).data
    assert match_labels(dark, bright)["f1"] >= 0.95


def test_segment_is_deterministic():
    vol = sphere_pack(shape=(32, 32, 32), diameter=10.0, attempts=300, seed=5)
    a = segment(vol.image, spacing=vol.spacing).data
    b = segment(vol.image, spacing=vol.spacing).data
    np.testing.assert_array_equal(a, b)


def test_resolved_pipeline_reproduces_the_labels_exactly():
    from voxseg.pipeline import Pipeline

    vol = touching_ellipsoids(shape=(12, 48, 48), diameter=9.0, seed=6)
    first = segment(vol.image, spacing=vol.spacing)
    assert first.records["diameter_estimated"]
    again = Pipeline.from_dict(__import__("tomllib").loads(first.pipeline.to_toml()))
    second = segment(vol.image, spacing=vol.spacing, pipeline=again)
    np.testing.assert_array_equal(first.data, second.data)
    assert not second.records["diameter_estimated"]


@pytest.mark.parametrize("image", [
    np.zeros((4, 8, 8), np.uint16),
    np.full((4, 8, 8), 300, np.uint16),
], ids=["zeros", "constant"])
def test_segment_of_an_empty_or_constant_volume_has_no_objects(image):
    result = segment(image, spacing=(1, 1, 1))
    assert result.data.shape == image.shape
    assert result.data.max() == 0


def test_segment_of_an_all_nan_volume_is_an_error():
    from voxseg.errors import VoxsegError

    with pytest.raises(VoxsegError, match="NaN"):
        segment(np.full((4, 8, 8), np.nan, np.float32))


def test_segment_treats_nan_as_background():
    vol = sphere_pack(shape=(32, 32, 32), diameter=10.0, attempts=300, seed=7)
    image = vol.image.astype(np.float32)
    image[:, :, :4] = np.nan
    labels = segment(image, spacing=vol.spacing, diameter=10.0).data
    assert labels[:, :, :4].max() == 0
    assert labels.max() > 3


def test_segment_rejects_2d_and_bad_diameter():
    with pytest.raises(ParameterError, match="3D"):
        segment(np.zeros((8, 8)))
    with pytest.raises(ParameterError, match="diameter"):
        segment(np.zeros((2, 8, 8)), diameter=-1)


def test_equivalent_labeling_assert_detects_a_merge():
    a = np.array([0, 1, 1, 2, 2])
    assert_equivalent_labeling(a, np.array([0, 5, 5, 3, 3]))
    with pytest.raises(AssertionError):
        assert_equivalent_labeling(a, np.array([0, 5, 5, 5, 5]))


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.5, 0.5)])
def test_smoothing_per_crop_equals_smoothing_the_whole_map(monkeypatch, spacing):
    import voxseg.segmentation as seg

    vol = touching_ellipsoids(shape=(16, 64, 64), spacing=spacing, diameter=9.0, seed=8)
    mask = vol.labels > 0
    monkeypatch.setattr(seg, "GLOBAL_SMOOTHING_FRACTION", 0.0)
    whole = split_touching(mask, spacing=spacing, diameter=9.0)
    monkeypatch.setattr(seg, "GLOBAL_SMOOTHING_FRACTION", float("inf"))
    per_crop = split_touching(mask, spacing=spacing, diameter=9.0)
    np.testing.assert_array_equal(whole, per_crop)
