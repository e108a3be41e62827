import numpy as np
import pytest
from scipy import ndimage as ndi

from voxseg import transform
from voxseg.errors import ParameterError


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _image(rng, dtype=np.float32, shape=(12, 30, 32)):
    data = ndi.gaussian_filter(rng.random(shape), 1.0)
    if np.issubdtype(dtype, np.integer):
        return (data * 1000).astype(dtype)
    return data.astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("factors", [2, (1, 2, 2), (2, 3, 4)])
@pytest.mark.parametrize("spacing", [None, (2.0, 0.5, 0.5)])
def test_downscale_local_mean_equals_skimage_when_divisible(rng, dtype, factors, spacing):
    from skimage.transform import downscale_local_mean as sk_dlm

    image = _image(rng, dtype, (12, 30, 32))
    f = (factors,) * 3 if np.isscalar(factors) else factors
    data, new_spacing = transform.downscale_local_mean(image, factors, spacing=spacing)
    ref = sk_dlm(image, f)
    divisible = tuple(slice(0, n // k) for n, k in zip(image.shape, f))
    assert data.dtype == np.float32
    assert data.shape == ref.shape
    np.testing.assert_allclose(data[divisible], ref[divisible], rtol=1e-6)
    sp = (1.0, 1.0, 1.0) if spacing is None else spacing
    assert new_spacing == pytest.approx(tuple(s * k for s, k in zip(sp, f)))


def test_downscale_partial_blocks_are_not_darkened():
    image = np.full((5, 5, 5), 10, dtype=np.uint16)
    data, _ = transform.downscale_local_mean(image, 2)
    assert data.shape == (3, 3, 3)
    np.testing.assert_array_equal(data, 10)


def test_downscale_factor_one_and_errors(rng):
    image = _image(rng, np.uint16)
    data, sp = transform.downscale_local_mean(image, 1, spacing=(2, 1, 1))
    np.testing.assert_array_equal(data, image.astype(np.float32))
    assert sp == (2.0, 1.0, 1.0)
    with pytest.raises(ParameterError, match="factors"):
        transform.downscale_local_mean(image, 1.5)
    with pytest.raises(ParameterError, match="factors"):
        transform.downscale_local_mean(image, (2, 2))
    with pytest.raises(ParameterError, match="factors"):
        transform.downscale_local_mean(image, 0)


@pytest.mark.parametrize("scale", [(2, 0.5, 0.5), (0.3, 1.7, 1.0), 1.5])
@pytest.mark.parametrize("order", [1, 3])
def test_rescale_equals_skimage(rng, scale, order):
    from skimage.transform import rescale as sk_rescale

    image = _image(rng)
    data, new_spacing = transform.rescale(image, scale, order=order)
    ref = sk_rescale(image, scale, order=order, preserve_range=True)
    assert data.dtype == np.float32 and data.shape == ref.shape
    np.testing.assert_allclose(data, ref, atol=1e-5)
    expected = tuple(n / m for n, m in zip(image.shape, data.shape))
    assert new_spacing == pytest.approx(expected)


def test_rescale_order0_keeps_labels(rng):
    from skimage.transform import rescale as sk_rescale

    labels = rng.integers(0, 5, (6, 10, 10)).astype(np.uint16)
    data, new_spacing = transform.rescale(labels, (2, 0.5, 0.5), spacing=(2.0, 0.5, 0.5), order=0)
    assert data.dtype == np.uint16
    assert set(np.unique(data)) <= set(np.unique(labels))
    ref = sk_rescale(labels, (2, 0.5, 0.5), order=0, preserve_range=True, anti_aliasing=False)
    np.testing.assert_array_equal(data, ref)
    assert new_spacing == (1.0, 1.0, 1.0)
    mask = labels > 2
    out, _ = transform.rescale(mask, 2, order=0)
    assert out.dtype == bool and out.shape == (12, 20, 20)


def test_rescale_keeps_physical_extent(rng):
    image = _image(rng, shape=(7, 13, 10))
    spacing = (1.3, 0.4, 0.35)
    data, new_spacing = transform.rescale(image, (1.9, 0.77, 0.5), spacing=spacing)
    np.testing.assert_allclose(
        np.multiply(data.shape, new_spacing), np.multiply(image.shape, spacing), rtol=1e-12
    )


def test_resample_isotropic_default_target(rng):
    image = _image(rng, np.uint16, (10, 32, 32))
    data, new_spacing = transform.resample_isotropic(image, spacing=(2.0, 0.5, 0.5))
    assert data.shape == (40, 32, 32)
    assert data.dtype == np.float32
    assert new_spacing == (0.5, 0.5, 0.5)
    # in-plane untouched grid: equal to linear interpolation along z only
    ref = ndi.zoom(image.astype(np.float32), (4, 1, 1), order=1, mode="mirror", grid_mode=True)
    np.testing.assert_allclose(data, ref, rtol=1e-5, atol=1e-3)


def test_resample_isotropic_coarser_target(rng):
    image = _image(rng, shape=(10, 33, 32))
    data, new_spacing = transform.resample_isotropic(image, spacing=(2.0, 0.5, 0.5), target=1.0)
    assert data.shape == (20, 16, 16)
    assert new_spacing[0] == 1.0 and new_spacing[2] == 1.0
    assert new_spacing[1] == pytest.approx(33 * 0.5 / 16)


def test_resample_isotropic_linear_ramp_exact():
    # linear data are reproduced exactly by linear interpolation inside the volume
    z = np.arange(8, dtype=np.float32)
    image = np.broadcast_to(z[:, None, None] * 10, (8, 4, 4)).copy()
    data, _ = transform.resample_isotropic(image, spacing=(2.0, 1.0, 1.0))
    centres = (np.arange(16) + 0.5) / 2 - 0.5  # input coordinates of output voxels
    inner = (centres >= 0) & (centres <= 7)
    np.testing.assert_allclose(data[inner, 0, 0], 10 * centres[inner], atol=1e-4)


def test_transform_errors(rng):
    image = _image(rng)
    with pytest.raises(ParameterError, match="spacing"):
        transform.resample_isotropic(image, spacing=(1, 1))
    with pytest.raises(ParameterError, match="target"):
        transform.resample_isotropic(image, spacing=1, target=0)
    with pytest.raises(ParameterError, match="scale"):
        transform.rescale(image, -1)
    with pytest.raises(ParameterError, match="order"):
        transform.rescale(image, 2, order=7)


@pytest.mark.parametrize("factors", [(2, 3, 4), (3, 3, 3), (1, 5, 7)])
def test_downscale_partial_blocks_mean_of_present_voxels(rng, factors):
    image = _image(rng, np.uint16, (7, 11, 13))
    data, _ = transform.downscale_local_mean(image, factors)
    expected = np.empty(data.shape)
    for index in np.ndindex(*data.shape):
        block = image[tuple(slice(i * k, (i + 1) * k) for i, k in zip(index, factors))]
        expected[index] = block.mean()
    np.testing.assert_allclose(data, expected, rtol=1e-6)


def test_downscale_large_factors_and_bool(rng):
    image = _image(rng, np.uint16, (20, 40, 40))
    data, _ = transform.downscale_local_mean(image, (10, 20, 20))  # 4000 terms: float64 sums
    np.testing.assert_allclose(data, image.reshape(2, 10, 2, 20, 2, 20).mean(axis=(1, 3, 5)), rtol=1e-6)
    mask = image > image.mean()
    frac, _ = transform.downscale_local_mean(mask, 2)
    assert frac.min() >= 0 and frac.max() <= 1
