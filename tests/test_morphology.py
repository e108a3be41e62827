import numpy as np
import pytest
from scipy import ndimage as ndi

from voxseg import morphology
from voxseg.errors import ParameterError
from voxseg.volume import ellipsoid_footprint

SPACINGS = [None, (2.0, 1.0, 1.0), (3.0, 0.7, 0.5)]
OPS = ["erosion", "dilation", "opening", "closing"]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _grey(rng, dtype=np.uint16, shape=(10, 26, 24)):
    data = ndi.gaussian_filter(rng.random(shape), 1.0)
    data = (data - data.min()) / (data.max() - data.min())
    if np.issubdtype(dtype, np.integer):
        return (data * 1000).astype(dtype)
    return data.astype(dtype)


def _mask(rng, shape=(10, 26, 24), level=0.55):
    return _grey(rng, np.float32, shape) > level


def _scipy_ref(op, image, fp):
    funcs = {
        "erosion": ndi.grey_erosion,
        "dilation": ndi.grey_dilation,
        "opening": ndi.grey_opening,
        "closing": ndi.grey_closing,
    }
    return funcs[op](image, footprint=fp)


# ---------------------------------------------------------------- fill_holes


def test_fill_holes_equals_scipy(rng):
    for _ in range(10):
        mask = rng.random((12, 20, 20)) < rng.uniform(0.3, 0.8)
        np.testing.assert_array_equal(morphology.fill_holes(mask), ndi.binary_fill_holes(mask))


def test_fill_holes_planewise_equals_scipy_per_plane(rng):
    for _ in range(10):
        mask = rng.random((6, 20, 20)) < rng.uniform(0.3, 0.8)
        ref = np.stack([ndi.binary_fill_holes(p) for p in mask])
        np.testing.assert_array_equal(morphology.fill_holes(mask, planewise=True), ref)


def test_fill_holes_tube_filled_only_planewise():
    tube = np.zeros((6, 9, 9), dtype=bool)
    tube[:, 2:7, 2:7] = True
    tube[:, 4, 4] = False  # a channel open at both ends
    assert not morphology.fill_holes(tube)[3, 4, 4]
    assert morphology.fill_holes(tube, planewise=True)[3, 4, 4]


def test_fill_holes_border_background_is_not_a_hole():
    mask = np.ones((3, 5, 5), dtype=bool)
    mask[0, 0, 2] = False  # on an edge of the volume
    out = morphology.fill_holes(mask)
    assert not out[0, 0, 2]


def test_fill_holes_accepts_integers_and_2d():
    mask = np.zeros((5, 5), dtype=np.uint8)
    mask[1:4, 1:4] = 1
    mask[2, 2] = 0
    out = morphology.fill_holes(mask)
    assert out.dtype == bool and out[2, 2]


# ---------------------------------------------------------------- small objects


def test_remove_small_objects_physical_volume_anisotropic():
    # an object of 100 voxels at voxel volume 0.5 has volume 50
    spacing = (2.0, 0.5, 0.5)
    mask = np.zeros((10, 30, 30), dtype=bool)
    mask[1:5, 1:6, 1:6] = True  # 100 voxels -> 50 unit^3
    mask[6:9, 10:20, 10:20] = True  # 300 voxels -> 150 unit^3
    assert morphology.remove_small_objects(mask, 50, spacing=spacing).sum() == 400
    assert morphology.remove_small_objects(mask, 50.001, spacing=spacing).sum() == 300
    assert morphology.remove_small_objects(mask, 150.001, spacing=spacing).sum() == 0
    # without spacing, the threshold is in voxels
    assert morphology.remove_small_objects(mask, 101).sum() == 300


@pytest.mark.parametrize("connectivity", [1, 2, 3])
@pytest.mark.parametrize("min_size", [2, 5, 20])
def test_remove_small_objects_mask_equals_skimage(rng, connectivity, min_size):
    from skimage.morphology import remove_small_objects as sk_rso

    mask = rng.random((8, 20, 20)) < 0.3
    out = morphology.remove_small_objects(mask, min_size, connectivity=connectivity)
    # scikit-image 0.26: max_size removes objects of size <= max_size
    ref = sk_rso(mask, max_size=min_size - 1, connectivity=connectivity)
    assert out.dtype == bool
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.uint32])
def test_remove_small_objects_labels(rng, dtype):
    labels = np.zeros((6, 10, 10), dtype=dtype)
    labels[0, 0, :3] = 1  # 3 voxels
    labels[2:4, 2:4, 2:4] = 7  # 8 voxels
    labels[5, 9, 9] = 3  # 1 voxel
    labels[5, 0, 0] = 7  # label 7 disconnected: 9 voxels in all
    out = morphology.remove_small_objects(labels, 4.0)
    assert out.dtype == dtype
    assert set(np.unique(out).tolist()) == {0, 7}
    assert (out == 7).sum() == 9
    # physical: voxel volume 2 -> label 1 has volume 6
    out = morphology.remove_small_objects(labels, 6.0, spacing=(2, 1, 1))
    assert set(np.unique(out).tolist()) == {0, 1, 7}


def test_remove_small_objects_2d_and_noop(rng):
    mask = rng.random((30, 30)) < 0.3
    np.testing.assert_array_equal(morphology.remove_small_objects(mask, 0), mask)
    out = morphology.remove_small_objects(mask, 3, connectivity=2)
    labels, n = ndi.label(out, structure=np.ones((3, 3)))
    assert np.bincount(labels.ravel())[1:].min() >= 3


def test_remove_small_objects_errors():
    mask = np.zeros((4, 4, 4), bool)
    with pytest.raises(ParameterError, match="min_volume"):
        morphology.remove_small_objects(mask, -1)
    with pytest.raises(ParameterError, match="connectivity"):
        morphology.remove_small_objects(mask, 1, connectivity=5)
    with pytest.raises(ParameterError, match="labels must be >= 0"):
        morphology.remove_small_objects(np.array([[-1, 2]]), 2)
    with pytest.raises(ParameterError, match="boolean mask or integer labels"):
        morphology.remove_small_objects(np.zeros((3, 3), np.float32), 2)


def test_remove_small_holes_physical():
    spacing = (2.0, 0.5, 0.5)  # voxel volume 0.5
    mask = np.zeros((8, 12, 12), dtype=bool)
    mask[1:7, 1:11, 1:11] = True
    mask[2, 2:4, 2:4] = False  # hole of 4 voxels = 2 unit^3
    mask[4:6, 5:9, 5:9] = False  # hole of 32 voxels = 16 unit^3
    out = morphology.remove_small_holes(mask, 2.0, spacing=spacing)
    assert out[2, 2, 2] and not out[4, 5, 5]
    out = morphology.remove_small_holes(mask, 16.0, spacing=spacing)
    expected = mask.copy()
    expected[1:7, 1:11, 1:11] = True
    np.testing.assert_array_equal(out, expected)
    assert not morphology.remove_small_holes(mask, 15.9, spacing=spacing)[4, 5, 5]


def test_remove_small_holes_interior_equals_skimage(rng):
    from skimage.morphology import remove_small_holes as sk_rsh

    mask = rng.random((8, 20, 20)) < 0.7
    mask[[0, -1]] = True
    mask[:, [0, -1]] = True
    mask[:, :, [0, -1]] = True  # no background on the border: all are holes
    out = morphology.remove_small_holes(mask, 4)
    ref = sk_rsh(mask, max_size=4)
    np.testing.assert_array_equal(out, ref)


def test_remove_small_holes_keeps_border_background():
    mask = np.ones((4, 6, 6), dtype=bool)
    mask[0, 0, 0] = False
    assert not morphology.remove_small_holes(mask, 10)[0, 0, 0]


# ---------------------------------------------------------------- footprints


def test_footprint_shapes():
    fp = morphology.footprint(2.0, spacing=(2.0, 1.0, 1.0))
    np.testing.assert_array_equal(fp, ellipsoid_footprint(2.0, (2.0, 1.0, 1.0)))
    assert fp.shape == (3, 5, 5)
    cube = morphology.footprint((2.0, 1.0, 3.0), spacing=(2.0, 1.0, 1.0), shape="cube")
    assert cube.shape == (3, 3, 7) and cube.all()
    assert morphology.footprint(1.0, ndim=2).shape == (3, 3)
    with pytest.raises(ParameterError, match="shape"):
        morphology.footprint(1.0, shape="diamond")
    with pytest.raises(ParameterError, match="radius"):
        morphology.footprint((1.0, 2.0))


# ---------------------------------------------------------------- grey / binary ops


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("radius", [1.0, 2.0, 3.5])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_grey_ops_equal_scipy(rng, op, spacing, radius, dtype):
    image = _grey(rng, dtype)
    out = getattr(morphology, op)(image, radius, spacing=spacing)
    fp = ellipsoid_footprint(radius, spacing or (1.0, 1.0, 1.0))
    assert out.dtype == image.dtype
    np.testing.assert_array_equal(out, _scipy_ref(op, image, fp))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("spacing", SPACINGS)
def test_binary_ops_equal_skimage(rng, op, spacing):
    import skimage.morphology as skm

    mask = _mask(rng)
    out = getattr(morphology, op)(mask, 2.0, spacing=spacing)
    fp = ellipsoid_footprint(2.0, spacing or (1.0, 1.0, 1.0))
    ref = getattr(skm, op)(mask, fp)
    assert out.dtype == bool
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("op", OPS)
def test_cube_footprint_equals_scipy_box(rng, op):
    image = _grey(rng)
    out = getattr(morphology, op)(image, 2.0, spacing=(2.0, 1.0, 1.0), footprint="cube")
    np.testing.assert_array_equal(out, _scipy_ref(op, image, np.ones((3, 5, 5), bool)))


def test_planewise_uses_disks(rng):
    image = _grey(rng)
    out = morphology.erosion(image, 2.0, planewise=True)
    disk = ellipsoid_footprint(2.0, (1.0, 1.0))
    ref = np.stack([ndi.grey_erosion(p, footprint=disk) for p in image])
    np.testing.assert_array_equal(out, ref)


def test_ops_2d(rng):
    image = _grey(rng, shape=(30, 31))
    out = morphology.dilation(image, 2.5, spacing=(1.0, 0.5))
    fp = ellipsoid_footprint(2.5, (1.0, 0.5))
    np.testing.assert_array_equal(out, ndi.grey_dilation(image, footprint=fp))


def test_despeckle_is_opening_then_closing(rng):
    mask = _mask(rng)
    out = morphology.despeckle(mask, 1.5, spacing=(2, 1, 1))
    ref = morphology.closing(morphology.opening(mask, 1.5, spacing=(2, 1, 1)), 1.5, spacing=(2, 1, 1))
    np.testing.assert_array_equal(out, ref)
    image = _grey(rng)
    out = morphology.despeckle(image, 1.0)
    fp = ellipsoid_footprint(1.0, (1.0, 1.0, 1.0))
    np.testing.assert_array_equal(out, ndi.grey_closing(ndi.grey_opening(image, footprint=fp), footprint=fp))


def test_small_radius_is_identity(rng):
    image = _grey(rng)
    out = morphology.erosion(image, 0.5)
    np.testing.assert_array_equal(out, image)
    assert out is not image


def test_ops_errors(rng):
    with pytest.raises(ParameterError, match="radius"):
        morphology.erosion(_grey(rng), -1)
    with pytest.raises(ParameterError, match="2D or 3D"):
        morphology.dilation(np.zeros(4), 1)
    with pytest.raises(ParameterError, match="planewise"):
        morphology.opening(np.zeros((4, 4)), 1, planewise=True)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.int16])
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("width", [1, 3, 5, 7, 9, 15, 41])
def test_extreme1d_equals_scipy(rng, dtype, axis, width):
    image = _grey(rng, dtype, (9, 13, 17))
    out_min = morphology._extreme1d(image, width, axis, "min")
    out_max = morphology._extreme1d(image, width, axis, "max")
    np.testing.assert_array_equal(out_min, ndi.minimum_filter1d(image, width, axis=axis, mode="nearest"))
    np.testing.assert_array_equal(out_max, ndi.maximum_filter1d(image, width, axis=axis, mode="nearest"))


def test_non_symmetric_footprint_falls_back_to_scipy(rng):
    image = _grey(rng)
    fp = np.zeros((3, 3, 3), bool)
    fp[1, 1, 1:] = True
    fp[1, 1, 0] = False
    fp[0, 1, 1] = True
    np.testing.assert_array_equal(
        morphology._extreme(image, fp, "min"), ndi.grey_erosion(image, footprint=fp, mode="reflect")
    )


def test_component_sizes_read_through_the_mask_equal_the_full_count(rng):
    from voxseg.morphology import component_sizes, label

    mask = rng.random((30, 40, 50)) > 0.7
    labels, n = label(mask)
    np.testing.assert_array_equal(component_sizes(labels, n, mask=mask), component_sizes(labels, n))
    np.testing.assert_array_equal(component_sizes(labels, n), np.bincount(labels.ravel(), minlength=n + 1))


@pytest.mark.parametrize("shape", [(40, 30, 20), (5, 7, 9), (2, 3, 4), (60, 50)])
def test_bounding_boxes_on_slabs_equal_find_objects(rng, shape):
    from voxseg.morphology import bounding_boxes

    labels = (rng.random(shape) * 9).astype(np.uint16) * (rng.random(shape) > 0.6)
    labels[labels == 4] = 0  # an absent label
    assert bounding_boxes(labels) == ndi.find_objects(labels)
    assert bounding_boxes(labels, 12) == ndi.find_objects(labels, 12)


def test_look_up_on_slabs_equals_numpy_indexing(rng):
    from voxseg.morphology import _look_up

    labels = rng.integers(0, 5000, size=(70, 250, 250), dtype=np.uint32)  # above the threaded size
    for table in (rng.random(5000) > 0.5, rng.integers(0, 60000, 5000).astype(np.uint16)):
        np.testing.assert_array_equal(_look_up(table, labels), table[labels])
    # in place, on every thread count (2 and more slabs than threads)
    table = rng.integers(0, 2**32 - 1, 5000, dtype=np.uint32)
    expected = table[labels]
    for labels_in in (labels.copy(), labels[:3].copy()):
        out = _look_up(table, labels_in, out=labels_in)
        assert out is labels_in
        np.testing.assert_array_equal(out, expected[:len(labels_in)])
