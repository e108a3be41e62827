"""Global statistics of a chunked volume, bit-identical to the in-memory ones.

The in-memory steps take percentiles (:func:`voxseg.exposure.percentile`) and
threshold histograms (:func:`voxseg.threshold.histogram`) from the whole
image. Here the same numbers come from reductions over blocks:

- a volume of 8- or 16-bit integers is summarised exactly by the multiset of
  its values (one count per value of the type, :class:`Multiset`); every
  pointwise step maps that multiset, and every statistic of the image is a
  statistic of the multiset;
- other volumes (floating point, 32/64-bit integers) get their order
  statistics by selection over the blocks (:func:`order_statistics`) and
  their histograms by summing the histograms of the blocks on shared bins.

Percentiles then go through the arithmetic NumPy uses (:func:`numpy_percentile`),
so that ``low`` / ``high`` of ``rescale_intensity`` are the same floats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Multiset", "numpy_percentile", "order_key", "order_statistics", "select_block", "combine_selections"]

#: integer images spanning more than this are not histogrammed one bin per value by exposure.percentile
MAX_BINCOUNT_SPAN = 1 << 24
#: values gathered at once when selecting an order statistic
GATHER_LIMIT = 1 << 22
#: bins of one selection round
SELECT_BINS = 1 << 16


def numpy_percentile(n, q, order_statistic, dtype):
    """``np.percentile(x, q)`` (method "linear") of `n` values of `dtype`, from their order statistics.

    `order_statistic(ranks)` returns the values at the given 0-based positions
    of the sorted sample. The arithmetic is NumPy's (``_lerp``): the difference
    of the two neighbours is taken in `dtype`, the interpolation in float64.
    Pass float64 as `dtype` for integers that :func:`voxseg.exposure.percentile`
    takes from its one-bin-per-value histogram (interpolated in float64).
    """
    q = np.asanyarray(q)
    scalar = q.ndim == 0
    quantiles = np.atleast_1d(np.true_divide(q, 100))
    virtual = (n - 1) * quantiles
    previous = np.floor(virtual)
    following = previous + 1
    above = virtual >= n - 1
    previous[above] = -1
    following[above] = -1
    below = virtual < 0
    previous[below] = 0
    following[below] = 0
    previous = previous.astype(np.intp)
    following = following.astype(np.intp)
    gamma = np.asanyarray(virtual - previous, dtype=virtual.dtype)
    ranks = np.concatenate([previous, following])
    ranks = np.where(ranks < 0, n + ranks, ranks)
    values = np.asarray(order_statistic(ranks)).astype(dtype)
    a, b = values[: len(previous)], values[len(previous):]
    diff = b - a
    out = np.add(a, diff * gamma)
    np.subtract(b, diff * (1 - gamma), out=out, where=gamma >= 0.5, casting="unsafe", dtype=type(out.dtype))
    out = np.asarray(out, dtype=np.float64)
    return float(out[0]) if scalar else out


@dataclass
class Multiset:
    """Sorted distinct values of an image and how many voxels hold each.

    NaN values (if any) are kept apart in `nan_count`; they take part in no
    statistic, as in the in-memory functions.
    """

    values: np.ndarray
    counts: np.ndarray
    nan_count: int = 0

    @classmethod
    def from_histogram(cls, counts, lo, dtype) -> "Multiset":
        """The multiset of an integer image from counts of the values ``lo, lo + 1, ...``."""
        counts = np.asarray(counts, dtype=np.int64)
        present = np.flatnonzero(counts)
        values = (present + int(lo)).astype(dtype)
        return cls(values, counts[present])

    @property
    def dtype(self):
        return self.values.dtype

    @property
    def size(self) -> int:
        return int(self.counts.sum())

    def map(self, func) -> "Multiset":
        """The multiset of ``func(image)`` for a pointwise `func`."""
        mapped = np.asarray(func(self.values))
        nan_count = self.nan_count
        if mapped.dtype.kind == "f":
            nan = np.isnan(mapped)
            if nan.any():
                nan_count += int(self.counts[nan].sum())
                mapped, counts = mapped[~nan], self.counts[~nan]
            else:
                counts = self.counts
        else:
            counts = self.counts
        values, inverse = np.unique(mapped, return_inverse=True)
        summed = np.zeros(values.size, dtype=np.int64)
        np.add.at(summed, inverse.reshape(-1), counts)
        return Multiset(values, summed, nan_count)

    def order_statistic(self, ranks) -> np.ndarray:
        cumulative = np.cumsum(self.counts)
        return self.values[np.searchsorted(cumulative, np.asarray(ranks), side="right")]

    def percentile(self, q):
        """:func:`voxseg.exposure.percentile` of the image."""
        from .. import exposure

        if self.values.size == 0:
            from ..errors import ParameterError

            raise ParameterError("image must contain at least one value that is not NaN")
        if self.dtype.kind in "ui" and self.dtype.itemsize <= 2:
            # exposure counts 8/16-bit images one bin per value: the same histogram
            return exposure.percentile(None, q, hist=(self.counts, self.values.astype(np.float64)))
        return numpy_percentile(self.size, q, self.order_statistic, self.dtype)

    def threshold_histogram(self, nbins):
        """:func:`voxseg.threshold.histogram` of the image."""
        from ..threshold import Histogram

        values, counts = self.values, self.counts
        if values.dtype == bool:
            values = values.view(np.uint8)
        if values.dtype.kind in "ui" and values.size:
            lo, hi = int(values.min()), int(values.max())
            if hi - lo < 65536:
                binned = np.bincount(values.astype(np.int64) - lo, weights=counts, minlength=hi - lo + 1)
                return Histogram(np.rint(binned).astype(np.int64), np.arange(lo, hi + 1, dtype=np.float64))
        if values.dtype.kind == "f":
            finite = np.isfinite(values)
            values, counts = values[finite], counts[finite]
        value_range = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
        return _weighted_histogram(values, counts, nbins, value_range)


def _weighted_histogram(values, counts, nbins, value_range):
    """threshold.histogram's float branch for values with counts (np.histogram with weights bins alike)."""
    from ..threshold import Histogram

    lo, hi = (float(v) for v in value_range)
    if hi <= lo:
        hi = lo + 1.0
    binned, edges = np.histogram(values, bins=nbins, range=(lo, hi), weights=counts)
    return Histogram(np.rint(binned).astype(np.int64), (edges[:-1] + edges[1:]) / 2)


def order_key(values):
    """An order-preserving map of the values to uint64 (NaN must be removed first)."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        bits = values.astype(np.float64).view(np.uint64)
        negative = (bits >> np.uint64(63)).astype(bool)
        return np.where(negative, ~bits, bits | np.uint64(1 << 63))
    if values.dtype.kind == "i":
        return values.astype(np.int64).view(np.uint64) ^ np.uint64(1 << 63)
    return values.astype(np.uint64)


def _bins(keys, lo, hi):
    """Bin of each key in ``[lo, hi]``: the top bits of ``key - lo``, at most :data:`SELECT_BINS` bins."""
    shift = max(0, int(hi - lo).bit_length() - int(SELECT_BINS).bit_length() + 1)
    return ((keys - np.uint64(lo)) >> np.uint64(shift)).astype(np.int64), (int(hi - lo) >> shift) + 1


def select_block(values, requests):
    """One block's share of each :func:`order_statistics` request (see there)."""
    keys = order_key(values)
    out = []
    for kind, lo, hi, *rest in requests:
        inside = (keys >= np.uint64(lo)) & (keys <= np.uint64(hi))
        k, v = keys[inside], values[inside]
        bins, count = _bins(k, lo, hi)
        if kind == "count":
            out.append(np.bincount(bins, minlength=count))
            continue
        chosen = bins == rest[0]
        k, v = k[chosen], v[chosen]
        if kind == "gather":
            out.append(v)
        elif k.size:  # "range": smallest and largest key, and the value of the smallest
            out.append((int(k.min()), int(k.max()), v[np.argmin(k)]))
        else:
            out.append(None)
    return out


def combine_selections(parts, requests):
    """Reduce the per-block results of :func:`select_block`."""
    out = []
    for i, (kind, *_) in enumerate(requests):
        items = [p[i] for p in parts]
        if kind == "count":
            out.append(np.sum(items, axis=0))
        elif kind == "gather":
            out.append(np.concatenate(items))
        else:
            items = [x for x in items if x is not None]
            low = min(items, key=lambda x: x[0])
            out.append((low[0], max(x[1] for x in items), low[2]))
    return out


def order_statistics(ranks, value_range, select, dtype):
    """Values at 0-based `ranks` of the sorted non-NaN voxels of a chunked image, exactly.

    Parameters
    ----------
    ranks : sequence of int
        Positions in the sorted sample.
    value_range : (min, max)
        Smallest and largest non-NaN value, of the image's type.
    select : callable
        ``select(requests)`` runs one pass over the blocks with
        :func:`select_block` and returns :func:`combine_selections` of the parts.
    dtype : numpy dtype
        Type of the image.

    Notes
    -----
    Values are compared through an order-preserving integer key
    (:func:`order_key`). Each round counts the keys of the interval that
    holds a rank into at most :data:`SELECT_BINS` bins (their top bits: one
    pass), so each bin holds a run of the sorted sample; once the bin of the
    rank holds at most :data:`GATHER_LIMIT` voxels they are gathered and
    sorted (a second pass), otherwise the interval narrows to that bin's
    smallest and largest key. The result does not depend on the blocks.
    """
    bounds = np.asarray(value_range, dtype=dtype)
    if bounds.dtype.kind == "f":
        # min() and max() may return either zero: the interval must hold -0.0 and +0.0
        bounds = np.array([-0.0 if bounds[0] == 0 else bounds[0], 0.0 if bounds[1] == 0 else bounds[1]], dtype)
    lo, hi = (int(k) for k in order_key(bounds))
    todo = {int(r): (lo, hi, int(r)) for r in ranks}
    known = {lo: bounds[0]}
    answers = {}
    while todo:
        for r, (a, b, k) in list(todo.items()):
            if a == b:
                answers[r] = known[a]
                del todo[r]
        if not todo:
            break
        intervals = sorted({(a, b) for a, b, _ in todo.values()})
        counts = dict(zip(intervals, select([("count", a, b) for a, b in intervals])))
        picks = {}
        for r, (a, b, k) in todo.items():
            cumulative = np.cumsum(counts[(a, b)])
            j = int(np.searchsorted(cumulative, k, side="right"))
            before = int(cumulative[j - 1]) if j else 0
            picks[r] = (a, b, j, k - before, int(cumulative[j]) - before <= GATHER_LIMIT)
        keys = sorted({(a, b, j, small) for a, b, j, _, small in picks.values()})
        results = dict(zip(keys, select([("gather" if small else "range", a, b, j) for a, b, j, small in keys])))
        for r, (a, b, j, k, small) in picks.items():
            found = results[(a, b, j, small)]
            if small:
                answers[r] = np.sort(found)[k]
                del todo[r]
            else:
                known[found[0]] = found[2]
                todo[r] = (found[0], found[1], k)
    return np.asarray([answers[int(r)] for r in ranks], dtype=dtype)
