import numpy as np
import pytest
from scipy import ndimage as ndi

from voxseg import filters
from voxseg.errors import ParameterError
from voxseg.volume import ellipsoid_footprint

DTYPES = [np.uint8, np.uint16, np.float32]
SPACINGS = [None, (1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (4.0, 0.5, 0.5)]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _image(rng, dtype, shape=(8, 24, 20)):
    data = ndi.gaussian_filter(rng.random(shape), 1.5)
    data = (data - data.min()) / (data.max() - data.min())
    if np.issubdtype(dtype, np.integer):
        return (data * np.iinfo(dtype).max).astype(dtype)
    return data.astype(dtype)


# ---------------------------------------------------------------- gaussian


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spacing", SPACINGS)
def test_gaussian_equals_scipy_with_voxel_sigma(rng, dtype, spacing):
    image = _image(rng, dtype)
    sigma = 2.0
    out = filters.gaussian(image, sigma, spacing=spacing)
    sp = np.ones(3) if spacing is None else np.asarray(spacing)
    ref = ndi.gaussian_filter(image.astype(np.float64), sigma / sp, mode="nearest")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-3 * max(1, float(image.max())) * 1e-3)


def test_gaussian_4_to_1_stack_voxel_sigma_by_hand(rng):
    image = _image(rng, np.uint16)
    # sigma 1 um on a stack with 2 um planes and 0.5 um pixels: (0.5, 2, 2) voxels
    out = filters.gaussian(image, 1.0, spacing=(2.0, 0.5, 0.5))
    ref = ndi.gaussian_filter(image, (0.5, 2.0, 2.0), mode="nearest", output=np.float32)
    np.testing.assert_array_equal(out, ref)


def test_gaussian_isotropic_matches_skimage(rng):
    from skimage.filters import gaussian as sk_gaussian

    image = _image(rng, np.float32)
    ref = sk_gaussian(image, sigma=1.5, mode="nearest", preserve_range=True)
    np.testing.assert_allclose(filters.gaussian(image, 1.5), ref, atol=1e-6)


def test_gaussian_per_axis_sigma_and_planewise(rng):
    image = _image(rng, np.float32)
    out = filters.gaussian(image, (0.0, 1.0, 2.0), spacing=(3.0, 1.0, 2.0))
    np.testing.assert_allclose(out, ndi.gaussian_filter(image, (0, 1, 1), mode="nearest"), atol=1e-6)
    planewise = filters.gaussian(image, 1.5, spacing=(3.0, 1.0, 1.0), planewise=True)
    per_plane = np.stack([ndi.gaussian_filter(p, 1.5, mode="nearest") for p in image])
    np.testing.assert_allclose(planewise, per_plane, atol=1e-6)


def test_gaussian_sigma_zero_is_float32_copy(rng):
    image = _image(rng, np.uint16)
    out = filters.gaussian(image, 0)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, image.astype(np.float32))


def test_gaussian_no_rescaling_of_integers():
    image = np.full((3, 5, 5), 1000, dtype=np.uint16)
    np.testing.assert_allclose(filters.gaussian(image, 1.0), 1000)


def test_gaussian_2d(rng):
    image = _image(rng, np.float32, (20, 20))
    out = filters.gaussian(image, 1.0, spacing=(1.0, 0.5))
    np.testing.assert_allclose(out, ndi.gaussian_filter(image, (1, 2), mode="nearest"), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sigma": -1}, "sigma"),
        ({"sigma": (1, 2)}, "sigma"),
        ({"sigma": 1, "spacing": (1, 0, 1)}, "spacing"),
        ({"sigma": 1, "truncate": 0}, "truncate"),
    ],
)
def test_gaussian_errors(rng, kwargs, match):
    with pytest.raises(ParameterError, match=match):
        filters.gaussian(_image(rng, np.float32), **kwargs)


def test_gaussian_planewise_needs_3d():
    with pytest.raises(ParameterError, match="planewise"):
        filters.gaussian(np.zeros((4, 4)), 1, planewise=True)


# ---------------------------------------------------------------- median


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spacing", SPACINGS)
def test_median_keeps_dtype_and_equals_scipy(rng, dtype, spacing):
    image = _image(rng, dtype)
    out = filters.median(image, 2.0, spacing=spacing)
    assert out.dtype == image.dtype
    fp = ellipsoid_footprint(2.0, spacing if spacing is not None else (1.0, 1.0, 1.0))
    np.testing.assert_array_equal(out, ndi.median_filter(image, footprint=fp, mode="nearest"))


def test_median_footprint_flatter_in_z_on_2_to_1_spacing():
    # a thin bright slab one plane thick survives a median that barely reaches
    # the neighbouring planes on a 2:1 stack, but not the isotropic one.
    image = np.zeros((7, 15, 15), dtype=np.uint16)
    image[3] = 100
    iso = filters.median(image, 2.0)
    aniso = filters.median(image, 2.0, spacing=(2.0, 1.0, 1.0))
    assert iso[3, 7, 7] == 0
    assert aniso[3, 7, 7] == 100
    fp = ellipsoid_footprint(2.0, (2.0, 1.0, 1.0))
    assert fp.shape == (3, 5, 5) and fp[0].sum() == 1


def test_median_matches_skimage_isotropic(rng):
    from skimage.filters import median as sk_median
    from skimage.morphology import ball

    image = _image(rng, np.uint16)
    ref = sk_median(image, ball(2), mode="nearest")
    np.testing.assert_array_equal(filters.median(image, 2), ref)


def test_median_planewise(rng):
    image = _image(rng, np.uint8)
    out = filters.median(image, 1.0, planewise=True)
    disk = ellipsoid_footprint(1.0, (1.0, 1.0))
    ref = np.stack([ndi.median_filter(p, footprint=disk, mode="nearest") for p in image])
    np.testing.assert_array_equal(out, ref)


def test_median_radius_smaller_than_voxel_is_copy(rng):
    image = _image(rng, np.uint16)
    out = filters.median(image, 0.4)
    np.testing.assert_array_equal(out, image)
    assert out is not image


def test_median_errors(rng):
    with pytest.raises(ParameterError, match="radius"):
        filters.median(_image(rng, np.uint8), -2)
    with pytest.raises(ParameterError, match="dtype"):
        filters.median(np.zeros((3, 3), dtype=complex), 1)


# ---------------------------------------------------------------- bilateral


def test_bilateral_huge_range_sigma_is_normalised_gaussian_window(rng):
    image = _image(rng, np.float32)
    out = filters.bilateral(image, sigma_spatial=1.0, sigma_range=1e6, spacing=(2.0, 1.0, 1.0))
    fp = ellipsoid_footprint(2.0, (2.0, 1.0, 1.0))
    half = np.array(fp.shape) // 2
    zz, yy, xx = np.mgrid[tuple(slice(-h, h + 1) for h in half)]
    weights = np.exp(-0.5 * ((2 * zz) ** 2 + yy**2 + xx**2)) * fp
    weights /= weights.sum()
    ref = ndi.correlate(image.astype(np.float64), weights)
    inner = (slice(1, -1), slice(2, -2), slice(2, -2))  # away from the border
    np.testing.assert_allclose(out[inner], ref[inner], atol=1e-5)


def test_bilateral_preserves_step_and_constant():
    image = np.zeros((5, 10, 10), dtype=np.uint16)
    image[:, :, 5:] = 1000
    out = filters.bilateral(image, sigma_spatial=1.5, sigma_range=50)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, image, atol=1e-3)


def test_bilateral_planewise_does_not_mix_planes(rng):
    image = _image(rng, np.float32)
    image[3] += 10
    out = filters.bilateral(image, sigma_spatial=1.0, sigma_range=0.2, planewise=True)
    ref = np.stack([filters.bilateral(p, sigma_spatial=1.0, sigma_range=0.2) for p in image])
    np.testing.assert_allclose(out, ref, atol=1e-6)


def _bilateral_reference(image, sigma_spatial, sigma_range, spacing, truncate=2.0):
    """Direct per-voxel definition, for small images."""
    image = image.astype(np.float64)
    sp = np.asarray(spacing, dtype=float)
    fp = ellipsoid_footprint(truncate * sigma_spatial, tuple(sp))
    offsets = np.argwhere(fp) - np.array(fp.shape) // 2
    out = np.empty_like(image)
    for p in np.ndindex(image.shape):
        num = den = 0.0
        for o in offsets:
            q = np.array(p) + o
            if np.any(q < 0) or np.any(q >= image.shape):
                continue
            d2 = np.sum((o * sp) ** 2)
            w = np.exp(-d2 / (2 * sigma_spatial**2)) * np.exp(
                -((image[tuple(q)] - image[p]) ** 2) / (2 * sigma_range**2)
            )
            num += w * image[tuple(q)]
            den += w
        out[p] = num / den
    return out


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.7, 0.7)])
def test_bilateral_equals_direct_definition(rng, spacing):
    image = _image(rng, np.float32, (4, 7, 6))
    out = filters.bilateral(image, sigma_spatial=1.0, sigma_range=0.1, spacing=spacing)
    ref = _bilateral_reference(image, 1.0, 0.1, spacing)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_bilateral_errors(rng):
    with pytest.raises(ParameterError, match="sigma_range"):
        filters.bilateral(_image(rng, np.float32), sigma_spatial=1, sigma_range=0)


# ---------------------------------------------------------------- non-local means


def test_non_local_means_equals_skimage_isotropic(rng):
    from skimage.restoration import denoise_nl_means

    image = _image(rng, np.float32, (6, 16, 16))
    out = filters.non_local_means(image, patch_size=3, patch_distance=2, h=0.05)
    ref = denoise_nl_means(image, patch_size=3, patch_distance=2, h=0.05, preserve_range=True)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_non_local_means_physical_sizes(rng):
    from skimage.restoration import denoise_nl_means

    image = _image(rng, np.float32, (6, 16, 16))
    out = filters.non_local_means(image, patch_size=1.5, patch_distance=1.0, h=0.05, spacing=0.5)
    ref = denoise_nl_means(image, patch_size=3, patch_distance=2, h=0.05, preserve_range=True)
    np.testing.assert_allclose(out, ref, atol=1e-6)
    planes = filters.non_local_means(image, patch_size=3, patch_distance=2, h=0.05, planewise=True)
    ref = np.stack([denoise_nl_means(p, patch_size=3, patch_distance=2, h=0.05, preserve_range=True) for p in image])
    np.testing.assert_allclose(planes, ref, atol=1e-6)


def test_non_local_means_errors(rng):
    with pytest.raises(ParameterError, match="h must"):
        filters.non_local_means(_image(rng, np.float32), patch_size=3, patch_distance=2, h=0)


# ---------------------------------------------------------------- unsharp mask


@pytest.mark.parametrize("spacing", SPACINGS)
def test_unsharp_mask_definition(rng, spacing):
    image = _image(rng, np.uint16)
    out = filters.unsharp_mask(image, radius=1.0, amount=2.0, spacing=spacing)
    blurred = filters.gaussian(image, 1.0, spacing=spacing).astype(np.float64)
    ref = image + 2.0 * (image - blurred)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=0.05)


def test_unsharp_mask_matches_skimage_on_floats(rng):
    from skimage.filters import unsharp_mask as sk_unsharp

    image = _image(rng, np.float32, (20, 24, 24))
    ref = sk_unsharp(image, radius=1.5, amount=1.0, preserve_range=True)
    # scikit-image blurs with mode "reflect", we with "nearest": compare away from the border
    inner = (slice(7, -7),) * 3
    np.testing.assert_allclose(filters.unsharp_mask(image, radius=1.5)[inner], ref[inner], atol=1e-5)


# ---------------------------------------------------------------- top-hat / background


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spacing", [None, (2.0, 1.0, 1.0)])
def test_white_tophat_equals_scipy(rng, dtype, spacing):
    image = _image(rng, dtype)
    out = filters.white_tophat(image, 2.0, spacing=spacing)
    fp = ellipsoid_footprint(2.0, spacing or (1.0, 1.0, 1.0))
    assert out.dtype == image.dtype
    np.testing.assert_array_equal(out, ndi.white_tophat(image, footprint=fp))


def test_subtract_background_tophat_is_white_tophat(rng):
    image = _image(rng, np.uint16)
    np.testing.assert_array_equal(
        filters.subtract_background(image, 3.0, spacing=(2, 1, 1)),
        filters.white_tophat(image, 3.0, spacing=(2, 1, 1)),
    )


def test_subtract_background_rolling_ball_matches_skimage(rng):
    from skimage.restoration import rolling_ball

    image = _image(rng, np.float32, (6, 20, 20)) * 100
    out = filters.subtract_background(image, 3.0, method="rolling_ball")
    ref = image - rolling_ball(image, radius=3)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-4)


def test_subtract_background_rolling_ball_anisotropic_kernel():
    kernel = filters._rolling_ball_kernel(2.0, (2.0, 0.5, 0.5), planewise=False)
    assert kernel.shape == (3, 9, 9)
    assert kernel[1, 4, 4] == 4.0  # height = radius in finest voxels
    assert np.isinf(kernel[0, 0, 0])


def test_subtract_background_errors(rng):
    with pytest.raises(ParameterError, match="method"):
        filters.subtract_background(_image(rng, np.uint8), 2, method="median")
