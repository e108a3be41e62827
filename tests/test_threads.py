"""Results do not depend on the number of threads; derived histograms equal counted ones."""

import numpy as np
import pytest

from voxseg._threads import THREADS_VARIABLE, slabs, thread_count, thread_map
from voxseg.measurements import measure
from voxseg.pipeline import _rescale_step, default_pipeline
from voxseg.segmentation import split_touching
from voxseg.testing import sphere_pack, touching_ellipsoids
from voxseg.threshold import histogram, histogram_of_mapped, threshold


def test_thread_count_obeys_the_environment(monkeypatch):
    monkeypatch.setenv(THREADS_VARIABLE, "1")
    assert thread_count() == 1
    monkeypatch.setenv(THREADS_VARIABLE, "not a number")
    assert thread_count() >= 1
    monkeypatch.setenv(THREADS_VARIABLE, "10000")
    assert thread_count() <= 10000


def test_thread_map_keeps_order():
    assert list(thread_map(lambda v: v * v, range(50), threads=4)) == [v * v for v in range(50)]


@pytest.mark.parametrize("shape", [(7, 300, 301), (1, 5, 5), (100,)])
def test_slabs_cover_the_array_once(shape):
    seen = np.zeros(shape, np.int32)
    for part in slabs(shape, voxels=4096):
        seen[part] += 1
    assert (seen == 1).all()


def _with_threads(monkeypatch, count, func):
    monkeypatch.setenv(THREADS_VARIABLE, str(count))
    return func()


def test_split_and_measure_are_the_same_on_one_and_two_threads(monkeypatch):
    vol = touching_ellipsoids(shape=(24, 96, 96), spacing=(2.0, 0.5, 0.5), diameter=12.0, seed=3)
    mask = vol.labels > 0

    def run():
        labels = split_touching(mask, spacing=vol.spacing, diameter=12.0)
        return labels, measure(labels, vol.image, spacing=vol.spacing)

    one_labels, one_table = _with_threads(monkeypatch, 1, run)
    two_labels, two_table = _with_threads(monkeypatch, 2, run)
    assert one_labels.max() > 1
    np.testing.assert_array_equal(one_labels, two_labels)
    assert one_table.equals(two_table)


def test_segment_is_the_same_on_one_and_two_threads(monkeypatch):
    vol = sphere_pack(shape=(40, 48, 48), diameter=14, attempts=400, seed=1)
    pipeline = default_pipeline()
    one = _with_threads(monkeypatch, 1, lambda: pipeline.run(vol.image, spacing=vol.spacing).data)
    two = _with_threads(monkeypatch, 2, lambda: pipeline.run(vol.image, spacing=vol.spacing).data)
    assert one.max() > 1
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("in_range", [None, (30, 200), (0, 1)])
def test_rescale_hands_over_the_histogram_of_its_output(dtype, in_range):
    rng = np.random.default_rng(7)
    image = rng.gamma(2.0, 40.0, size=(9, 33, 35)).astype(dtype)
    out, records = _rescale_step(image, in_range=list(in_range) if in_range else None)
    derived = records["histogram"]
    counted = histogram(out)
    np.testing.assert_array_equal(derived.counts, counted.counts)
    np.testing.assert_array_equal(derived.centers, counted.centers)
    for method in ("li", "otsu", "triangle"):
        assert threshold(hist=derived, method=method) == threshold(out, method)


def test_mapped_histogram_ignores_absent_and_non_finite_values():
    image = np.array([[1, 1, 5, 9]], dtype=np.uint8)
    hist = histogram(image)
    mapped = hist.centers.astype(np.float32)
    mapped[-1] = np.nan  # value 9 maps to NaN: not counted, as histogram() skips NaN voxels
    result = histogram_of_mapped(hist, mapped, nbins=4)
    assert result.counts.sum() == 3
    assert result.centers[0] == pytest.approx(1.5)
