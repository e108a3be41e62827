"""Intensity statistics and contrast adjustment of 3D images.

Integer images are never silently rescaled: statistics are computed from the
raw values, and functions that must produce fractional values return
``float32``. Percentiles and histograms of integer images are exact and come
from a bincount (one bin per integer value), which needs no sort and no float
copy of the volume; the same numbers can be obtained from a precomputed
histogram (``hist=``), so that a chunked caller gets the answer without
holding the volume.
"""

from __future__ import annotations

import numpy as np

from .errors import ParameterError
from .volume import as_spacing, length_to_voxels

__all__ = [
    "histogram",
    "percentile",
    "rescale_intensity",
    "cumulative_distribution",
    "adjust_gamma",
    "equalize_hist",
    "equalize_adapthist",
    "clahe",
]

# Largest span (max - min + 1) of an integer image that is histogrammed with
# one bin per value. Wider spans (32/64-bit data) fall back to other methods.
_MAX_BINCOUNT_SPAN = 1 << 24
# Number of voxels handed to np.bincount at once; bounds the intp temporary (8 MB, which the next slab
# reuses while it is in cache: 4x larger slabs took 1.5x longer on a fresh process's 16-bit histogram)
_SLAB = 1 << 20


def _as_array(image, name="image"):
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.view(np.uint8)
    if image.dtype.kind not in "uif":
        raise ParameterError(f"{name} must be a real numeric array, got dtype {image.dtype!r}")
    return image


def _int_range(image):
    """(min, max) of an integer array as Python ints."""
    return int(image.min()), int(image.max())


def _bincount(image, lo, hi, *, where=None):
    """Counts of every integer value in [lo, hi] of an integer array (of its voxels in `where`, if given).

    Slabs of :data:`_SLAB` voxels are counted on all cores (NumPy releases the GIL
    while it converts them for counting) and summed: exact, whatever the thread count.
    """
    from ._threads import thread_map

    nb = hi - lo + 1
    flat = image.reshape(-1)
    inside = None if where is None else np.asarray(where).reshape(-1)

    def count(start):
        part = flat[start:start + _SLAB]
        if inside is not None:
            part = part[inside[start:start + _SLAB]]
        if lo != 0 or part.dtype.kind == "i":
            part = np.subtract(part, lo, dtype=np.intp)
        return np.bincount(part, minlength=nb)

    counts = np.zeros(nb, dtype=np.int64)
    for part in thread_map(count, range(0, flat.size, _SLAB)):
        counts += part
    return counts


def _small_int_counts(image):
    """Exact histogram of 8/16-bit integers over the full dtype range, no extra pass.

    Returns (counts, lo) where counts[i] is the number of voxels equal to lo + i.
    Signed data are counted through their unsigned view (two's complement):
    the negative values land in the upper half, and are rotated to the front.
    """
    bits = 8 * image.dtype.itemsize
    flat = image.reshape(-1)
    if image.dtype.kind == "i":
        flat = flat.view(f"u{image.dtype.itemsize}")
    size = 1 << bits
    counts = _bincount(flat, 0, size - 1)
    if image.dtype.kind == "i":
        half = size // 2
        counts = np.concatenate([counts[half:], counts[:half]])
        return counts, -half
    return counts, 0


def _int_histogram(image, source_range="image"):
    """(counts, lo) of an integer image, one bin per value, or None if the span is too wide."""
    if image.dtype.itemsize <= 2:
        counts, lo = _small_int_counts(image)
        if source_range == "dtype":
            return counts, lo
        nonzero = np.flatnonzero(counts)
        first, last = int(nonzero[0]), int(nonzero[-1])
        return counts[first:last + 1], lo + first
    lo, hi = _int_range(image)
    if hi - lo + 1 > _MAX_BINCOUNT_SPAN:
        return None
    return _bincount(image, lo, hi), lo


def histogram(image, *, nbins=256, source_range="image", normalize=False):
    """Histogram of all the voxels of an image.

    Parameters
    ----------
    image : ndarray
        Image of any dimension.
    nbins : int
        Number of bins for floating-point images. Ignored for integer images
        whose value span is at most 2**24: these get one bin per integer value,
        so the histogram is exact (as in :func:`skimage.exposure.histogram`).
    source_range : {"image", "dtype"}
        Range covered by the bins: the image's minimum and maximum, or the
        whole range of its data type (integer types up to 16 bits only; this
        lets chunks of one volume be histogrammed onto the same bins and
        summed).
    normalize : bool
        Divide the counts by their sum.

    Returns
    -------
    counts : ndarray
        Counts per bin (int64, or float64 when `normalize`).
    bin_centers : ndarray
        The value at the centre of each bin; for exact integer histograms the
        integer values themselves.

    See Also
    --------
    percentile : uses the same histogram for integer images.

    Notes
    -----
    NaN voxels of floating-point images are ignored.

    Examples
    --------
    >>> import numpy as np
    >>> counts, values = histogram(np.array([[1, 1], [3, 4]], dtype=np.uint8))
    >>> counts.tolist(), values.tolist()
    ([2, 0, 1, 1], [1, 2, 3, 4])
    """
    image = _as_array(image)
    if source_range not in ("image", "dtype"):
        raise ParameterError(f"source_range must be 'image' or 'dtype', got {source_range!r}")
    if image.size == 0:
        raise ParameterError(f"image must not be empty, got shape {image.shape!r}")
    if image.dtype.kind in "ui":
        if source_range == "dtype" and image.dtype.itemsize > 2:
            raise ParameterError(
                f"source_range='dtype' needs an integer type of at most 16 bits, got {image.dtype}"
            )
        result = _int_histogram(image, source_range)
        if result is not None:
            counts, lo = result
            values = np.arange(lo, lo + counts.size)
            if normalize:
                counts = counts / counts.sum()
            return counts, values
    nbins = _check_nbins(nbins)
    finite = image
    if image.dtype.kind == "f" and np.isnan(image).any():
        finite = image[~np.isnan(image)]
        if finite.size == 0:
            raise ParameterError("image must contain at least one value that is not NaN")
    if source_range == "dtype" and image.dtype.kind == "f":
        rng = (-1.0, 1.0) if finite.min() < 0 else (0.0, 1.0)
    else:
        rng = (float(finite.min()), float(finite.max()))
    counts, edges = np.histogram(finite, bins=nbins, range=rng)
    centers = (edges[:-1] + edges[1:]) / 2
    if normalize:
        counts = counts / counts.sum()
    return counts, centers


def _check_nbins(nbins):
    if isinstance(nbins, bool) or not isinstance(nbins, (int, np.integer)) or nbins < 1:
        raise ParameterError(f"nbins must be a positive integer, got {nbins!r}")
    return int(nbins)


def _check_hist(hist):
    try:
        counts, values = hist
        counts = np.asarray(counts)
        values = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ParameterError(
            f"hist must be a pair (counts, values) or (counts, bin_edges), got {hist!r}"
        ) from None
    if counts.ndim != 1 or values.ndim != 1 or values.size not in (counts.size, counts.size + 1):
        raise ParameterError(
            "hist must be a pair (counts, values) of equal length or (counts, bin_edges) "
            f"with one more edge than counts, got lengths {counts.size} and {values.size}"
        )
    if values.size == counts.size + 1:
        values = (values[:-1] + values[1:]) / 2
    if counts.dtype.kind not in "ui" and not np.array_equal(counts, np.round(counts)):
        raise ParameterError("hist counts must be whole numbers of voxels (not a normalised histogram)")
    if np.any(counts < 0) or counts.sum() == 0:
        raise ParameterError("hist counts must be >= 0 and not all zero")
    if values.size > 1 and np.any(np.diff(values) <= 0):
        raise ParameterError("hist values (or bin edges) must be strictly increasing")
    return counts.astype(np.int64, copy=False), values


def _percentile_from_hist(counts, values, q):
    """np.percentile(..., method='linear') of the sample described by a histogram."""
    nonzero = counts > 0
    if not nonzero.all():
        counts, values = counts[nonzero], values[nonzero]
    n = int(counts.sum())
    # Same arithmetic as numpy's "linear" method so that results are identical.
    quantiles = np.true_divide(q, 100)
    virtual = np.asanyarray((n - 1) * quantiles)
    previous = np.floor(virtual)
    gamma = np.asanyarray(virtual - previous, dtype=virtual.dtype)
    lo_idx = previous.astype(np.int64)
    hi_idx = np.minimum(lo_idx + 1, n - 1)
    lo_idx = np.minimum(lo_idx, n - 1)
    gamma = np.where(virtual >= n - 1, 0.0, gamma)
    cum = np.cumsum(counts)
    a = values[np.searchsorted(cum, lo_idx, side="right")]
    b = values[np.searchsorted(cum, hi_idx, side="right")]
    diff = b - a
    out = a + diff * gamma
    out = np.where(gamma >= 0.5, b - diff * (1 - gamma), out)
    return out


def percentile(image, q, *, hist=None):
    """Percentiles of the voxel values, with NumPy's ``"linear"`` interpolation.

    Parameters
    ----------
    image : ndarray or None
        Image of any dimension. May be ``None`` when `hist` is given.
    q : float or sequence of float
        Percentile(s) in [0, 100].
    hist : tuple (counts, values), optional
        A precomputed histogram, e.g. from :func:`histogram` or summed over the
        chunks of a volume. ``values`` holds the value of each bin (or the
        ``len(counts) + 1`` bin edges, whose centres are then used). With the
        one-bin-per-integer histogram of an integer image the result is
        identical to the one computed from the image.

    Returns
    -------
    float or ndarray
        A float for a scalar `q`, else a float64 array shaped like `q`.

    Notes
    -----
    For integer images (and booleans) the percentiles come from a bincount
    histogram: one pass over the data, no sort and no floating-point copy;
    the result equals ``np.percentile(image, q)`` (method ``"linear"``)
    exactly. For images of 32/64-bit integers spanning more than 2**24 values
    :func:`numpy.percentile` is used. For floating-point images NaN voxels are
    ignored (as :func:`numpy.nanpercentile`); otherwise the result is
    ``np.percentile(image, q)``.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.arange(11, dtype=np.uint16).reshape(1, 1, 11)
    >>> percentile(image, 50)
    5.0
    >>> percentile(image, [10, 95]).tolist()
    [1.0, 9.5]
    >>> percentile(None, 50, hist=histogram(image))
    5.0
    """
    q_arr = np.asanyarray(q)
    if q_arr.dtype.kind not in "uif" or not np.all((q_arr >= 0) & (q_arr <= 100)):
        raise ParameterError(f"q must be percentiles in [0, 100], got {q!r}")
    if hist is not None:
        counts, values = _check_hist(hist)
        out = _percentile_from_hist(counts, values, q_arr)
    else:
        if image is None:
            raise ParameterError("image must be an array when hist is not given, got None")
        image = _as_array(image)
        if image.size == 0:
            raise ParameterError(f"image must not be empty, got shape {image.shape!r}")
        if image.dtype.kind in "ui":
            result = _int_histogram(image)
            if result is not None:
                counts, lo = result
                values = np.arange(lo, lo + counts.size, dtype=np.float64)
                out = _percentile_from_hist(counts, values, q_arr)
            else:
                out = np.percentile(image, q_arr)
        elif np.isnan(image).any():
            if np.isnan(image).all():
                raise ParameterError("image must contain at least one value that is not NaN")
            out = np.nanpercentile(image, q_arr)
        else:
            out = np.percentile(image, q_arr)
    out = np.asarray(out, dtype=np.float64)
    return float(out) if out.ndim == 0 else out


def rescale_intensity(image, *, low=0.5, high=99.5, in_range=None, hist=None):
    """Stretch intensities linearly to [0, 1] between two percentiles, clipping outside.

    Parameters
    ----------
    image : ndarray
        Image of any dimension and real dtype.
    low, high : float
        Percentiles (in [0, 100]) mapped to 0 and 1; used when `in_range` is
        not given.
    in_range : tuple (lo, hi), optional
        Explicit intensity values mapped to 0 and 1, instead of percentiles.
    hist : tuple (counts, values), optional
        Precomputed histogram from which the percentiles are taken (see
        :func:`percentile`), for chunked callers.

    Returns
    -------
    ndarray of float32
        Values in [0, 1]. A constant image (or ``hi <= lo``) gives zeros.
        NaN voxels stay NaN.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.array([0, 10, 20, 30, 1000], dtype=np.uint16)
    >>> rescale_intensity(image, in_range=(10, 30)).tolist()
    [0.0, 0.0, 0.5, 1.0, 1.0]
    >>> [round(v, 3) for v in rescale_intensity(image, low=0, high=75).tolist()]
    [0.0, 0.333, 0.667, 1.0, 1.0]
    """
    image = _as_array(image)
    if in_range is not None:
        try:
            lo, hi = (float(v) for v in in_range)
        except (TypeError, ValueError):
            raise ParameterError(f"in_range must be a pair (lo, hi) of numbers, got {in_range!r}") from None
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ParameterError(f"in_range must hold finite values, got {in_range!r}")
    else:
        for name, value in (("low", low), ("high", high)):
            if not np.isscalar(value) or not 0 <= value <= 100:
                raise ParameterError(f"{name} must be a percentile in [0, 100], got {value!r}")
        if low > high:
            raise ParameterError(f"low must not exceed high, got low={low!r}, high={high!r}")
        lo, hi = percentile(image, [low, high], hist=hist).tolist()
    if not hi > lo:
        out = image.astype(np.float32)  # always a new array
        nan = np.isnan(out)
        out[...] = 0
        out[nan] = np.nan
        return out
    out = np.empty(image.shape, dtype=np.float32)
    offset, scale = np.float32(lo), np.float32(1.0 / (hi - lo))

    def stretch(part):
        # slab by slab, while the slab is in cache; float32 arithmetic as in out = (x - lo) * scale
        np.subtract(image[part], offset, out=out[part], dtype=np.float32)
        np.multiply(out[part], scale, out=out[part])
        np.clip(out[part], 0, 1, out=out[part])

    from ._threads import slabs, thread_map

    for _ in thread_map(stretch, slabs(image.shape)):
        pass
    return out


def cumulative_distribution(image, *, nbins=256):
    """Cumulative distribution function (CDF) of the voxel values.

    Parameters
    ----------
    image : ndarray
        Image of any dimension.
    nbins : int
        Number of bins for floating-point images (integer images get one bin
        per value, see :func:`histogram`).

    Returns
    -------
    cdf : ndarray of float64
        Fraction of voxels with a value up to and including each bin.
    bin_centers : ndarray
        Centres of the bins.

    Examples
    --------
    >>> import numpy as np
    >>> cdf, values = cumulative_distribution(np.array([0, 0, 1, 3], dtype=np.uint8))
    >>> cdf.tolist(), values.tolist()
    ([0.5, 0.75, 0.75, 1.0], [0, 1, 2, 3])
    """
    counts, centers = histogram(image, nbins=nbins)
    cdf = np.cumsum(counts, dtype=np.float64)
    cdf /= cdf[-1]
    return cdf, centers


def adjust_gamma(image, gamma=1, gain=1):
    """Gamma correction ``gain * image ** gamma`` (power-law transform).

    Parameters
    ----------
    image : ndarray
        Image with non-negative values.
    gamma : float
        Non-negative exponent. Below 1 brightens, above 1 darkens.
    gain : float
        Multiplier.

    Returns
    -------
    ndarray
        For floating-point input, the same dtype (``float32`` stays
        ``float32``), computed on the values as they are. For integer input,
        the same integer dtype, as in :func:`skimage.exposure.adjust_gamma`:
        values are scaled to [0, 1] by the dtype's range, transformed, and
        scaled back (``out = gain * (image / range) ** gamma * range``, with
        ``range`` = the dtype maximum, e.g. 65535 for uint16), then rounded
        towards zero and clipped to the dtype.

    Examples
    --------
    >>> import numpy as np
    >>> adjust_gamma(np.array([0.25, 1.0], dtype=np.float32), 0.5)
    array([0.5, 1. ], dtype=float32)
    >>> adjust_gamma(np.array([0, 64, 255], dtype=np.uint8), 2).tolist()
    [0, 16, 255]
    """
    image = _as_array(image)
    if not np.isscalar(gamma) or not gamma >= 0:
        raise ParameterError(f"gamma must be a non-negative number, got {gamma!r}")
    if not np.isscalar(gain) or not np.isfinite(gain):
        raise ParameterError(f"gain must be a finite number, got {gain!r}")
    if image.dtype.kind in "ui":
        if image.dtype.kind == "i" and image.min() < 0:
            raise ParameterError("image must have non-negative values for adjust_gamma")
        info = np.iinfo(image.dtype)
        scale = float(info.max)
        if image.dtype.itemsize <= 2:
            # Look-up table over every possible value: exact and fast.
            values = np.arange(info.max + 1, dtype=np.float64)
            lut = gain * (values / scale) ** gamma * scale
            lut = np.clip(lut, 0, info.max).astype(image.dtype)
            return lut[image.view(f"u{image.dtype.itemsize}")] if image.dtype.kind == "i" else lut[image]
        out = gain * (image / scale) ** gamma * scale
        return np.clip(out, 0, info.max).astype(image.dtype)
    if image.min() < 0:
        raise ParameterError("image must have non-negative values for adjust_gamma")
    dtype = image.dtype
    out = np.power(image, dtype.type(gamma))
    if gain != 1:
        out *= dtype.type(gain)
    return out


def equalize_hist(image, *, nbins=256, mask=None):
    """Histogram equalisation of a 2D or 3D image.

    Parameters
    ----------
    image : ndarray
        Image of any dimension.
    nbins : int
        Number of bins for floating-point images; integer images use one bin
        per value (exact).
    mask : ndarray of bool, optional
        Only voxels where `mask` is True contribute to the histogram; the
        transform is applied to every voxel.

    Returns
    -------
    ndarray of float32
        Values in [0, 1]: the cumulative distribution evaluated at each voxel.

    Notes
    -----
    Unlike :func:`skimage.exposure.equalize_hist` the output is float32
    (float64 there) and integer images are equalised from their exact
    histogram rather than from 256 bins.

    Examples
    --------
    >>> import numpy as np
    >>> equalize_hist(np.array([[0, 0], [5, 9]], dtype=np.uint8)).tolist()
    [[0.5, 0.5], [0.75, 1.0]]
    """
    image = _as_array(image)
    sample = image
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != image.shape:
            raise ParameterError(f"mask must have the image's shape {image.shape}, got {mask.shape}")
        sample = image[mask]
        if sample.size == 0:
            raise ParameterError("mask must select at least one voxel")
    if image.dtype.kind in "ui" and image.dtype.itemsize <= 2:
        # look-up table over the whole dtype range, indexed by the raw bits
        counts, lo = _small_int_counts(sample)
        cdf = np.cumsum(counts, dtype=np.float64)
        lut = (cdf / cdf[-1]).astype(np.float32)
        if image.dtype.kind == "u":
            return lut[image]
        half = lut.size // 2
        lut = np.concatenate([lut[half:], lut[:half]])
        return lut[image.view(f"u{image.dtype.itemsize}")]
    if image.dtype.kind in "ui":
        lo, hi = _int_range(image)
        if hi - lo + 1 <= _MAX_BINCOUNT_SPAN:
            counts = _bincount(sample, lo, hi)
            cdf = np.cumsum(counts, dtype=np.float64)
            cdf /= cdf[-1]
            return cdf.astype(np.float32)[np.subtract(image, lo, dtype=np.intp)]
    cdf, centers = cumulative_distribution(sample, nbins=nbins)
    out = np.interp(image.reshape(-1), centers, cdf).astype(np.float32)
    return out.reshape(image.shape)


def equalize_adapthist(image, kernel_size=None, *, spacing=None, clip_limit=0.01, nbins=256):
    """Contrast Limited Adaptive Histogram Equalisation (CLAHE) in 2D or 3D.

    Parameters
    ----------
    image : ndarray
        2D or 3D single-channel image.
    kernel_size : float or sequence of float, optional
        Size of the contextual regions, in the unit of `spacing`, per axis or
        one value for all axes. Default: 1/8 of the image extent per axis
        (as scikit-image).
    spacing : float or sequence of float, optional
        Voxel size per axis; ``None`` means 1 (lengths in voxels).
    clip_limit : float
        Clipping limit, normalised between 0 and 1 (higher: more contrast).
    nbins : int
        Number of grey bins of the histograms.

    Returns
    -------
    ndarray of float32
        Values in [0, 1].

    Notes
    -----
    Wraps :func:`skimage.exposure.equalize_adapthist`, which works in 3D
    with a per-axis kernel size; the physical `kernel_size` is converted to
    voxels per axis (at least 1), so that the contextual regions cover the
    same physical extent on anisotropic data. As in scikit-image, the image
    is first rescaled to [0, 1] by its minimum and maximum.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.random.default_rng(0).integers(0, 1000, (4, 16, 16)).astype(np.uint16)
    >>> out = equalize_adapthist(image, 4.0, spacing=(2.0, 1.0, 1.0))
    >>> out.dtype, out.shape, bool(out.min() >= 0 and out.max() <= 1)
    (dtype('float32'), (4, 16, 16), True)
    """
    from skimage.exposure import equalize_adapthist as _sk_clahe

    image = _as_array(image)
    if image.ndim not in (2, 3):
        raise ParameterError(f"image must be 2D or 3D, got {image.ndim} dimensions")
    spacing = as_spacing(spacing, image.ndim)
    if kernel_size is None:
        ks = [max(1, s // 8) for s in image.shape]
    else:
        ks = length_to_voxels(kernel_size, spacing)
        if np.any(ks <= 0):
            raise ParameterError(f"kernel_size must be positive, got {kernel_size!r}")
        ks = [max(1, int(round(k))) for k in ks]
    if not 0 <= clip_limit <= 1:
        raise ParameterError(f"clip_limit must be in [0, 1], got {clip_limit!r}")
    nbins = _check_nbins(nbins)
    lo, hi = float(image.min()), float(image.max())
    if lo == hi:
        return np.zeros(image.shape, np.float32)
    if image.dtype.kind == "f" and lo >= 0 and hi <= 1:
        work = image  # scikit-image rescales by min and max itself
    else:
        work = ((image - lo) * (1.0 / (hi - lo))).astype(np.float32)
    out = _sk_clahe(work, kernel_size=ks, clip_limit=clip_limit, nbins=nbins)
    return out.astype(np.float32, copy=False)


clahe = equalize_adapthist
