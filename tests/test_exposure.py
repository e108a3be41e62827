import numpy as np
import pytest

from voxseg import exposure
from voxseg.errors import ParameterError

INT_DTYPES = [np.uint8, np.uint16, np.int16]
QS = [0, 0.5, 1, 2.5, 10, 33.3, 50, 66.7, 90, 99, 99.5, 99.9, 100]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _int_image(rng, dtype, shape=(7, 33, 29)):
    if dtype == np.uint8:
        lo, hi = 0, 255
    elif dtype == np.uint16:
        lo, hi = 0, 65535
    else:
        # numpy's own int16 percentile overflows when two neighbouring order
        # statistics differ by more than 32767; stay in a range where it is exact.
        lo, hi = -2000, 2000
    return rng.integers(lo, hi, shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("shape", [(1,), (2,), (5, 7), (7, 33, 29)])
def test_percentile_equals_numpy_for_integers(rng, dtype, shape):
    image = _int_image(rng, dtype, shape)
    got = exposure.percentile(image, QS)
    np.testing.assert_array_equal(got, np.percentile(image, QS))
    for q in QS:
        value = exposure.percentile(image, q)
        assert isinstance(value, float)
        assert value == np.percentile(image, q)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_percentile_equals_numpy_on_fine_grid(rng, dtype):
    image = _int_image(rng, dtype, (3, 17, 19))
    qs = np.linspace(0, 100, 2001)
    np.testing.assert_array_equal(exposure.percentile(image, qs), np.percentile(image, qs))


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_percentile_skewed_integer_data(rng, dtype):
    # mostly background with a few bright voxels: many repeated values
    image = np.zeros((10, 40, 40), dtype=dtype)
    image[rng.random(image.shape) < 0.01] = 100
    np.testing.assert_array_equal(exposure.percentile(image, QS), np.percentile(image, QS))


def test_percentile_keeps_q_shape(rng):
    image = _int_image(rng, np.uint16)
    q = np.array([[1, 2], [50, 99]])
    out = exposure.percentile(image, q)
    assert out.shape == (2, 2)
    np.testing.assert_array_equal(out, np.percentile(image, q))


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_percentile_from_hist_equals_image(rng, dtype):
    image = _int_image(rng, dtype)
    hist = exposure.histogram(image)
    np.testing.assert_array_equal(exposure.percentile(None, QS, hist=hist), exposure.percentile(image, QS))


def test_percentile_from_summed_chunk_histograms(rng):
    image = _int_image(rng, np.uint16, (8, 20, 20))
    total = None
    for chunk in (image[:3], image[3:]):
        counts, values = exposure.histogram(chunk, source_range="dtype")
        total = counts if total is None else total + counts
    np.testing.assert_array_equal(
        exposure.percentile(None, QS, hist=(total, values)), np.percentile(image, QS)
    )


def test_percentile_hist_with_edges():
    counts = np.array([1, 0, 3])
    edges = np.array([0.0, 1.0, 2.0, 3.0])  # centres 0.5, 1.5, 2.5
    assert exposure.percentile(None, 0, hist=(counts, edges)) == 0.5
    assert exposure.percentile(None, 100, hist=(counts, edges)) == 2.5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_percentile_float_matches_numpy(rng, dtype):
    image = rng.normal(size=(4, 20, 20)).astype(dtype)
    np.testing.assert_array_equal(exposure.percentile(image, QS), np.percentile(image, QS))


def test_percentile_float_ignores_nan(rng):
    image = rng.normal(size=(4, 20, 20)).astype(np.float32)
    with_nan = image.copy()
    with_nan[0, 0, :5] = np.nan
    np.testing.assert_array_equal(
        exposure.percentile(with_nan, QS), np.nanpercentile(with_nan, QS)
    )


def test_percentile_bool():
    image = np.array([True, False, False, True])
    assert exposure.percentile(image, 50) == 0.5


@pytest.mark.parametrize("q", [-1, 100.5, [5, 101], "50"])
def test_percentile_rejects_bad_q(q):
    with pytest.raises(ParameterError, match="q must"):
        exposure.percentile(np.arange(5, dtype=np.uint8), q)


def test_percentile_errors():
    with pytest.raises(ParameterError, match="empty"):
        exposure.percentile(np.zeros(0, dtype=np.uint8), 5)
    with pytest.raises(ParameterError, match="image must be an array"):
        exposure.percentile(None, 5)
    with pytest.raises(ParameterError, match="hist"):
        exposure.percentile(None, 5, hist=([1, 2], [1, 2, 3, 4]))
    with pytest.raises(ParameterError, match="dtype"):
        exposure.percentile(np.array(["a"]), 5)
    with pytest.raises(ParameterError, match="whole numbers"):
        exposure.percentile(None, 5, hist=([0.25, 0.75], [1, 2]))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64])
def test_rescale_intensity_range_and_dtype(rng, dtype):
    image = _int_image(rng, dtype if dtype in INT_DTYPES else np.int16).astype(dtype)
    out = exposure.rescale_intensity(image)
    assert out.dtype == np.float32
    assert out.shape == image.shape
    assert out.min() == 0 and out.max() == 1
    lo, hi = np.percentile(image, [0.5, 99.5])
    expected = np.clip((image.astype(np.float64) - lo) / (hi - lo), 0, 1)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_rescale_intensity_in_range():
    image = np.array([0, 50, 100, 200], dtype=np.uint16)
    out = exposure.rescale_intensity(image, in_range=(50, 150))
    np.testing.assert_allclose(out, [0, 0, 0.5, 1])


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_rescale_intensity_constant_image_gives_zeros(dtype):
    image = np.full((3, 4, 5), 7, dtype=dtype)
    out = exposure.rescale_intensity(image)  # warnings are errors in this test run
    assert out.dtype == np.float32
    assert not out.any()


def test_rescale_intensity_does_not_modify_input(rng):
    image = rng.random((3, 4, 5)).astype(np.float32)
    before = image.copy()
    exposure.rescale_intensity(image)
    np.testing.assert_array_equal(image, before)


def test_rescale_intensity_keeps_nan():
    image = np.array([0.0, np.nan, 1.0, 2.0], dtype=np.float32)
    out = exposure.rescale_intensity(image, low=0, high=100)
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2, 3]], [0, 0.5, 1])


def test_rescale_intensity_errors():
    image = np.arange(10, dtype=np.uint8)
    with pytest.raises(ParameterError, match="low"):
        exposure.rescale_intensity(image, low=-1)
    with pytest.raises(ParameterError, match="low must not exceed high"):
        exposure.rescale_intensity(image, low=90, high=10)
    with pytest.raises(ParameterError, match="in_range"):
        exposure.rescale_intensity(image, in_range=(1,))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16])
def test_histogram_matches_skimage_for_integers(rng, dtype):
    from skimage.exposure import histogram as sk_histogram

    image = _int_image(rng, dtype)
    counts, values = exposure.histogram(image)
    ref_counts, ref_values = sk_histogram(image)
    np.testing.assert_array_equal(counts, ref_counts)
    np.testing.assert_array_equal(values, ref_values)


def test_histogram_float_matches_skimage(rng):
    from skimage.exposure import histogram as sk_histogram

    image = rng.random((4, 10, 10)).astype(np.float32)
    counts, centers = exposure.histogram(image, nbins=32)
    ref_counts, ref_centers = sk_histogram(image, nbins=32)
    np.testing.assert_array_equal(counts, ref_counts)
    np.testing.assert_allclose(centers, ref_centers, rtol=1e-6)


def test_histogram_dtype_range_and_normalize():
    image = np.array([0, 1, 1, 255], dtype=np.uint8)
    counts, values = exposure.histogram(image, source_range="dtype", normalize=True)
    assert counts.size == 256 and values[0] == 0 and values[-1] == 255
    assert counts.sum() == pytest.approx(1.0)
    assert counts[1] == pytest.approx(0.5)
    with pytest.raises(ParameterError, match="source_range"):
        exposure.histogram(image, source_range="full")
    with pytest.raises(ParameterError, match="nbins"):
        exposure.histogram(image.astype(np.float32), nbins=0)


def test_cumulative_distribution_matches_skimage(rng):
    from skimage.exposure import cumulative_distribution as sk_cdf

    image = _int_image(rng, np.uint8)
    cdf, values = exposure.cumulative_distribution(image)
    ref_cdf, ref_values = sk_cdf(image)
    np.testing.assert_allclose(cdf, ref_cdf)
    np.testing.assert_array_equal(values, ref_values)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("gamma", [0.5, 1, 2.2])
def test_adjust_gamma_integer_matches_skimage(rng, dtype, gamma):
    from skimage.exposure import adjust_gamma as sk_gamma

    image = _int_image(rng, dtype)
    out = exposure.adjust_gamma(image, gamma)
    assert out.dtype == dtype
    ref = sk_gamma(image, gamma)
    assert np.abs(out.astype(np.int64) - ref.astype(np.int64)).max() <= 1


def test_adjust_gamma_float32_preserved(rng):
    image = rng.random((3, 8, 8)).astype(np.float32)
    out = exposure.adjust_gamma(image, 2.0, gain=3.0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 3 * image.astype(np.float64) ** 2, rtol=1e-6)


def test_adjust_gamma_errors():
    with pytest.raises(ParameterError, match="gamma"):
        exposure.adjust_gamma(np.ones(3), -1)
    with pytest.raises(ParameterError, match="non-negative values"):
        exposure.adjust_gamma(np.array([-1.0, 1.0]), 2)


def test_equalize_hist_3d(rng):
    image = _int_image(rng, np.uint16)
    out = exposure.equalize_hist(image)
    assert out.dtype == np.float32 and out.shape == image.shape
    # monotone: the order of the voxels is kept
    order = np.argsort(image, axis=None, kind="stable")
    assert np.all(np.diff(out.reshape(-1)[order]) >= 0)
    # roughly uniform output
    assert abs(float(out.mean()) - 0.5) < 0.02
    assert out.max() == 1


def test_equalize_hist_float_close_to_skimage(rng):
    from skimage.exposure import equalize_hist as sk_eq

    image = rng.normal(size=(6, 20, 20)).astype(np.float32)
    np.testing.assert_allclose(exposure.equalize_hist(image), sk_eq(image), atol=1e-5)


def test_equalize_hist_mask(rng):
    image = _int_image(rng, np.uint8)
    mask = np.zeros(image.shape, bool)
    mask[:3] = True
    out = exposure.equalize_hist(image, mask=mask)
    assert abs(float(out[mask].mean()) - 0.5) < 0.02
    with pytest.raises(ParameterError, match="mask"):
        exposure.equalize_hist(image, mask=mask[0])


def test_clahe_isotropic_matches_skimage(rng):
    from skimage.exposure import equalize_adapthist as sk_clahe

    image = rng.random((16, 32, 32)).astype(np.float32)
    out = exposure.equalize_adapthist(image, 8)
    ref = sk_clahe(image, kernel_size=8)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-5)
    assert exposure.clahe is exposure.equalize_adapthist


def test_clahe_anisotropic_kernel_in_voxels(rng):
    from skimage.exposure import equalize_adapthist as sk_clahe

    image = rng.random((8, 32, 32)).astype(np.float32)
    out = exposure.equalize_adapthist(image, 8.0, spacing=(2.0, 0.5, 0.5))
    ref = sk_clahe(image, kernel_size=[4, 16, 16])
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_clahe_constant_and_errors():
    assert not exposure.equalize_adapthist(np.ones((4, 8, 8))).any()
    with pytest.raises(ParameterError, match="clip_limit"):
        exposure.equalize_adapthist(np.ones((4, 8, 8)), clip_limit=2)


def test_percentile_int16_full_range_is_correct(rng):
    # numpy's int16 interpolation overflows here (b - a computed in int16);
    # voxseg computes in float64, i.e. the exact linear interpolation.
    image = np.array([-30000, 30000], dtype=np.int16)
    assert exposure.percentile(image, 50) == 0.0
    assert exposure.percentile(image, 25) == np.percentile(image.astype(np.float64), 25)


def test_percentile_int32_wide_span_falls_back_to_numpy(rng):
    image = rng.integers(-(2**30), 2**30, 1000).astype(np.int32)
    np.testing.assert_array_equal(exposure.percentile(image, QS), np.percentile(image.astype(np.int64), QS))


@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_histogram_signed_values(dtype):
    image = np.array([-3, -3, 0, 5], dtype=dtype)
    counts, values = exposure.histogram(image)
    assert values[0] == -3 and values[-1] == 5
    assert counts.tolist() == [2, 0, 0, 1, 0, 0, 0, 0, 1]
    counts, values = exposure.histogram(image, source_range="dtype")
    info = np.iinfo(dtype)
    assert values[0] == info.min and values[-1] == info.max
    assert counts[values.tolist().index(-3)] == 2


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.uint8])
def test_equalize_hist_integer_types_agree(rng, dtype):
    image = rng.integers(-50 if dtype != np.uint8 else 0, 200, (4, 10, 10)).astype(dtype)
    out = exposure.equalize_hist(image)
    # the CDF at each voxel's value
    flat = image.ravel()
    expected = np.searchsorted(np.sort(flat), flat, side="right") / flat.size
    np.testing.assert_allclose(out.ravel(), expected, rtol=1e-6)
