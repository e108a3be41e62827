import numpy as np
import pytest
from skimage import filters

from voxseg.errors import ParameterError
from voxseg.threshold import METHODS, Histogram, compare_thresholds, histogram, threshold


@pytest.fixture
def bimodal(rng):
    image = np.concatenate([rng.normal(60, 8, 20000), rng.normal(160, 15, 8000)])
    return np.clip(image, 0, 255).astype(np.uint8).reshape(28, 10, 100)


@pytest.mark.parametrize("method", ["otsu", "yen", "isodata", "minimum", "triangle", "li", "mean"])
def test_integer_thresholds_match_scikit_image(bimodal, method):
    ours = threshold(bimodal, method)
    theirs = getattr(filters, f"threshold_{method}")(bimodal)
    assert ours == pytest.approx(float(theirs), abs=1.0)


@pytest.mark.parametrize("method", METHODS)
def test_threshold_separates_modes(bimodal, method):
    value = threshold(bimodal, method)
    assert 60 < value < 160


def test_histogram_is_additive_across_blocks(bimodal):
    whole = histogram(bimodal, value_range=(0, 255))
    parts = histogram(bimodal[:10], value_range=(0, 255)) + histogram(bimodal[10:], value_range=(0, 255))
    np.testing.assert_array_equal(whole.counts, parts.counts)
    for method in METHODS:
        assert threshold(hist=whole, method=method) == threshold(hist=parts, method=method)


def test_float_histogram_ignores_nan():
    image = np.array([0.0, 0.2, np.nan, 0.9, 1.0], dtype=np.float32)
    h = histogram(image)
    assert h.counts.sum() == 4


def test_constant_image_has_no_foreground():
    image = np.full((3, 4, 5), 7, dtype=np.uint16)
    value = threshold(image, "otsu")
    assert not (image > value).any()


def test_unknown_method_is_named():
    with pytest.raises(ParameterError, match="'bogus'"):
        threshold(np.arange(10), "bogus")


def test_histograms_with_other_bins_cannot_be_added():
    with pytest.raises(ValueError):
        Histogram(np.ones(2), np.arange(2.0)) + Histogram(np.ones(3), np.arange(3.0))


def test_compare_thresholds_reports_every_method(bimodal):
    results = compare_thresholds(bimodal)
    assert [r["method"] for r in results] == list(METHODS)
    for r in results:
        assert 0 < r["foreground_fraction"] < 1
        assert r["object_count"] >= 1
        assert r["mask"].shape == bimodal.shape
