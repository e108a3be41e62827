"""Global thresholds computed from a histogram of the whole volume.

Every method works on a :class:`Histogram`, so that the chunked path can
reduce one histogram over all blocks and get exactly the threshold of the
in-memory run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ParameterError

__all__ = ["METHODS", "Histogram", "histogram", "histogram_of_mapped", "threshold", "compare_thresholds"]

METHODS = ("li", "otsu", "yen", "triangle", "mean", "isodata", "minimum")

#: bins used for floating-point data; integer data of a small range is binned exactly
FLOAT_BINS = 1024


@dataclass(frozen=True)
class Histogram:
    """Counts of values in bins; ``centers[i]`` stands for bin ``i``."""

    counts: np.ndarray
    centers: np.ndarray

    def __add__(self, other: "Histogram") -> "Histogram":
        if not np.array_equal(self.centers, other.centers):
            raise ValueError("histograms must share their bins to be added")
        return Histogram(self.counts + other.counts, self.centers)


def histogram(image, *, nbins: int = FLOAT_BINS, value_range=None) -> Histogram:
    """Histogram of `image` for threshold computation.

    Integer data whose range spans at most 65536 values is counted exactly
    (one bin per value); other data uses `nbins` equal bins over
    `value_range` (default: the data's minimum and maximum). NaN values are
    not counted.

    Examples
    --------
    >>> h = histogram(np.array([0, 1, 1, 3], dtype=np.uint8))
    >>> h.counts.tolist(), h.centers.tolist()
    ([1, 2, 0, 1], [0.0, 1.0, 2.0, 3.0])
    """
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.view(np.uint8)
    if np.issubdtype(image.dtype, np.integer):
        lo, hi = (int(image.min()), int(image.max())) if value_range is None else map(int, value_range)
        if image.size and hi - lo < 65536:
            from .exposure import _bincount

            return Histogram(_bincount(image, lo, hi), np.arange(lo, hi + 1, dtype=np.float64))
    finite = image
    if np.issubdtype(image.dtype, np.floating) and image.size:
        low, high = image.min(), image.max()  # NaN propagates
        if not (np.isfinite(low) and np.isfinite(high)):
            finite = image[np.isfinite(image)]
        elif value_range is None:
            value_range = (float(low), float(high))
    if value_range is None:
        value_range = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    lo, hi = (float(v) for v in value_range)
    if hi <= lo:
        hi = lo + 1.0
    counts, edges = np.histogram(finite, bins=nbins, range=(lo, hi))
    return Histogram(counts.astype(np.int64), (edges[:-1] + edges[1:]) / 2)


def histogram_of_mapped(hist: Histogram, mapped, *, nbins: int = FLOAT_BINS) -> Histogram:
    """:func:`histogram` of ``f(image)`` from the histogram of an integer `image`.

    `hist` counts each integer value of the image exactly (one bin per value,
    as :func:`histogram` gives for 8/16-bit data) and ``mapped[i]`` is the
    value ``f`` gives to ``hist.centers[i]``, computed the way ``f`` computes
    it on the voxels. The result is identical to ``histogram(f(image))``
    without the pass over the voxels: NumPy bins the weighted values as it
    would bin the voxels.

    Examples
    --------
    >>> image = np.array([[0, 3, 3, 7]], dtype=np.uint8)
    >>> f = lambda x: (x.astype(np.float32) / np.float32(7))
    >>> h = histogram_of_mapped(histogram(image), f(histogram(image).centers), nbins=4)
    >>> bool(np.array_equal(h.counts, histogram(f(image), nbins=4).counts))
    True
    """
    present = hist.counts > 0
    values, weights = np.asarray(mapped)[present], hist.counts[present]
    finite = np.isfinite(values)
    values, weights = values[finite], weights[finite]
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    counts, edges = np.histogram(values, bins=nbins, range=(lo, hi), weights=weights)
    return Histogram(np.rint(counts).astype(np.int64), (edges[:-1] + edges[1:]) / 2)


def _li(counts, centers):
    # Li & Tam (1998) minimum cross-entropy, iterated on the histogram
    # (scikit-image's threshold_li iterates on the voxels themselves).
    p = counts.astype(np.float64)
    c = centers - centers[0]  # Li needs non-negative values; shift back at the end
    total = p.sum()
    t = float((p * c).sum() / total)
    tolerance = (c[1] - c[0]) / 2 if len(c) > 1 else 0.0
    for _ in range(1000):
        fg = c > t
        n_fg, n_bg = p[fg].sum(), p[~fg].sum()
        if n_fg == 0 or n_bg == 0:
            break
        mean_fg = (p[fg] * c[fg]).sum() / n_fg
        mean_bg = (p[~fg] * c[~fg]).sum() / n_bg
        if mean_bg <= 0:
            new = mean_fg / 2
        else:
            new = (mean_bg - mean_fg) / (np.log(mean_bg) - np.log(mean_fg))
        if abs(new - t) <= tolerance:
            t = new
            break
        t = new
    return float(t + centers[0])


def _triangle(counts, centers):
    # Zack et al. (1977): the bin farthest from the line joining the peak and
    # the far end of the histogram's longer tail.
    nonzero = np.flatnonzero(counts)
    first, last = nonzero[0], nonzero[-1]
    peak = int(np.argmax(counts))
    flip = peak - first < last - peak
    h = counts[::-1] if flip else counts
    if flip:
        first, peak = len(counts) - 1 - last, len(counts) - 1 - peak
    width = peak - first
    if width <= 0:
        return float(centers[peak if not flip else len(counts) - 1 - peak])
    x = np.arange(width)
    y = h[first : first + width].astype(np.float64)
    peak_height = float(h[peak])
    # distance to the line from (first, 0) to (peak, peak_height), up to a constant factor
    distance = peak_height * x - width * y
    arg = int(np.argmax(distance)) + first
    if flip:
        arg = len(counts) - 1 - arg
    return float(centers[arg])


def threshold(image=None, method: str = "li", *, hist: Histogram | None = None) -> float:
    """Global threshold of a volume by `method`, computed from its histogram.

    Parameters
    ----------
    image : ndarray, optional
        The volume. Not needed when `hist` is given.
    method : {'li', 'otsu', 'yen', 'triangle', 'mean', 'isodata', 'minimum'}
        Thresholding method, as in ``skimage.filters.threshold_<method>``.
    hist : Histogram, optional
        Precomputed histogram (e.g. reduced over the blocks of a chunked
        volume).

    Returns
    -------
    float
        Voxels strictly above this value are foreground.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> image = np.concatenate([rng.normal(10, 1, 500), rng.normal(30, 1, 500)])
    >>> 12 < threshold(image, "otsu") < 28
    True
    """
    if method not in METHODS:
        raise ParameterError(f"threshold method must be one of {', '.join(METHODS)}; got {method!r}")
    if hist is None:
        if image is None:
            raise ParameterError("threshold needs an image or a histogram")
        hist = histogram(image)
    counts, centers = hist.counts, hist.centers
    nonzero = np.flatnonzero(counts)
    if nonzero.size == 0:
        raise ParameterError("cannot threshold an empty image")
    if nonzero.size == 1:  # constant image: everything is at the threshold, nothing above
        return float(centers[nonzero[0]])
    # trim empty bins at both ends: they carry no information and upset some methods
    counts, centers = counts[nonzero[0] : nonzero[-1] + 1], centers[nonzero[0] : nonzero[-1] + 1]
    if method == "li":
        return _li(counts, centers)
    if method == "triangle":
        return _triangle(counts, centers)
    if method == "mean":
        return float((counts * centers).sum() / counts.sum())
    from skimage import filters

    func = getattr(filters, f"threshold_{method}")
    try:
        return float(func(hist=(counts, centers)))
    except RuntimeError as err:  # threshold_minimum on a histogram without two peaks
        raise ParameterError(f"threshold method {method!r} failed: {err}") from None


def compare_thresholds(image, methods=METHODS, *, count_objects: bool = True) -> list[dict]:
    """Apply several threshold methods to the same volume (3D ``try_all_threshold``).

    Returns one dict per method with ``method``, ``value``,
    ``foreground_fraction``, ``object_count`` (6-connected components) and
    ``mask``; a method that fails on this histogram gets ``value`` None and
    an ``error``.
    """
    hist = histogram(image)
    results = []
    for method in methods:
        try:
            value = threshold(method=method, hist=hist)
        except ParameterError as err:
            results.append({"method": method, "value": None, "error": str(err)})
            continue
        mask = np.asarray(image) > value
        entry = {"method": method, "value": value, "foreground_fraction": float(mask.mean()), "mask": mask}
        if count_objects:
            import cc3d

            entry["object_count"] = int(cc3d.connected_components(mask, connectivity=6, return_N=True)[1])
        results.append(entry)
    return results
