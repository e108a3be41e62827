"""Resampling of 3D images that keeps track of the voxel spacing.

Every function returns ``(data, new_spacing)``: the resampled array and the
voxel size of its grid, in the unit of the input `spacing`. Voxels are
treated as cells (``grid_mode`` in SciPy terms): the first and last cells of
the output cover the same physical extent as those of the input, so the new
voxel size along an axis is ``spacing * old_size / new_size`` exactly.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .errors import ParameterError
from .volume import as_spacing

__all__ = ["downscale_local_mean", "rescale", "resample_isotropic"]


def _as_image(image):
    image = np.asarray(image)
    if image.dtype.kind not in "buif":
        raise ParameterError(f"image must be a boolean or real numeric array, got dtype {image.dtype!r}")
    if image.ndim not in (2, 3):
        raise ParameterError(f"image must be 2D or 3D, got {image.ndim} dimensions")
    if image.size == 0:
        raise ParameterError(f"image must not be empty, got shape {image.shape!r}")
    return image


def downscale_local_mean(image, factors, *, spacing=None):
    """Downsample by integer factors, averaging each block of voxels.

    Parameters
    ----------
    image : ndarray
        2D or 3D image.
    factors : int or sequence of int
        Block size per axis (one value for all axes, or one per axis), >= 1.
    spacing : float or sequence of float, optional
        Voxel size per axis; ``None`` means 1.

    Returns
    -------
    data : ndarray of float32
        Shape ``ceil(shape / factors)``.
    new_spacing : tuple of float
        ``spacing * factors``.

    Notes
    -----
    When a size is not a multiple of its factor, the last block along that
    axis is partial and is averaged over the voxels it holds (scikit-image's
    :func:`~skimage.transform.downscale_local_mean` pads with zeros instead,
    darkening the last blocks). The centre of output voxel ``i`` lies at
    input coordinate ``(i + 0.5) * factor - 0.5``.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.arange(16, dtype=np.uint16).reshape(1, 4, 4)
    >>> data, new_spacing = downscale_local_mean(image, (1, 2, 2), spacing=(2.0, 0.5, 0.5))
    >>> data.tolist(), new_spacing
    ([[[2.5, 4.5], [10.5, 12.5]]], (2.0, 1.0, 1.0))
    """
    image = _as_image(image)
    spacing = as_spacing(spacing, image.ndim)
    f = np.asarray(factors)
    if (
        f.ndim > 1
        or (f.ndim == 1 and f.size != image.ndim)
        or f.dtype.kind not in "ui"
        or np.any(f < 1)
    ):
        raise ParameterError(
            f"factors must be positive integers, one or {image.ndim} (one per axis), got {factors!r}"
        )
    f = np.broadcast_to(f, (image.ndim,))
    f = [int(v) for v in f]
    data = image.view(np.uint8) if image.dtype == bool else image
    out_shape = tuple(-(-n // k) for n, k in zip(data.shape, f))
    # Sum the prod(f) strided sub-grids (each a view) into the output; partial
    # blocks at the far ends get fewer terms and are divided by their count.
    n_terms = int(np.prod(f))
    exact32 = data.dtype.kind in "ui" and data.dtype.itemsize <= 2 and n_terms <= 256
    acc = np.zeros(out_shape, dtype=np.float32 if exact32 else np.float64)
    for start in np.ndindex(*f):
        view = data[tuple(slice(s0, None, k) for s0, k in zip(start, f))]
        if view.size:
            acc[tuple(slice(0, m) for m in view.shape)] += view
    counts = np.ones((1,) * image.ndim)
    for axis, (n, k) in enumerate(zip(data.shape, f)):
        starts = np.arange(0, n, k)
        sizes = np.minimum(starts + k, n) - starts
        shape = [1] * image.ndim
        shape[axis] = sizes.size
        counts = counts * sizes.reshape(shape)
    acc /= counts.astype(acc.dtype)
    out = acc if acc.dtype == np.float32 else acc.astype(np.float32)
    new_spacing = tuple(s * k for s, k in zip(spacing, f))
    return out, new_spacing


def _zoom_to_shape(image, output_shape, order, anti_aliasing):
    input_shape = np.asarray(image.shape, dtype=float)
    output_shape = np.asarray(output_shape, dtype=int)
    factors = input_shape / output_shape
    if order == 0:
        out = ndi.zoom(image.view(np.uint8) if image.dtype == bool else image, 1 / factors,
                       order=0, mode="mirror", grid_mode=True)
        return out.view(bool) if image.dtype == bool else out
    if anti_aliasing is None:
        anti_aliasing = bool(np.any(factors > 1))
    work = image.view(np.uint8) if image.dtype == bool else image
    out_dtype = np.float64 if image.dtype == np.float64 else np.float32
    if anti_aliasing:
        sigma = np.maximum(0, (factors - 1) / 2)
        work = ndi.gaussian_filter(work, sigma.tolist(), mode="mirror", output=out_dtype)
    out = ndi.zoom(work, (1 / factors).tolist(), order=order, mode="mirror", grid_mode=True, output=out_dtype)
    if order > 1:
        # like scikit-image's clip=True: no overshoot beyond the input range
        np.clip(out, image.min(), image.max(), out=out)
    return out


def _check_order(order):
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or not 0 <= order <= 5:
        raise ParameterError(f"order must be an integer spline order in 0..5, got {order!r}")
    return int(order)


def rescale(image, scale, *, spacing=None, order=1, anti_aliasing=None):
    """Resample by a scale factor per axis (spline interpolation).

    Parameters
    ----------
    image : ndarray
        2D or 3D image.
    scale : float or sequence of float
        Scale factor per axis (> 1 enlarges); the output shape is
        ``round(shape * scale)`` (at least 1).
    spacing : float or sequence of float, optional
        Voxel size per axis; ``None`` means 1.
    order : int
        Spline order: 0 nearest (keeps the dtype: use it for labels and
        masks), 1 linear (default), 3 cubic...
    anti_aliasing : bool, optional
        Gaussian smoothing before downsampling, with sigma ``(factor - 1) /
        2`` voxels per axis. Default: on when an axis is downsampled and
        ``order > 0``.

    Returns
    -------
    data : ndarray
        float32 for ``order > 0`` (float64 stays float64; values not
        rescaled, clipped to the input range for ``order > 1``); same dtype as
        `image` for ``order=0``.
    new_spacing : tuple of float
        ``spacing * old_shape / new_shape`` per axis.

    Notes
    -----
    Same grid as :func:`skimage.transform.rescale` (``preserve_range=True``,
    ``mode="reflect"``), computed in float32.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.ones((4, 10, 10), dtype=np.uint16)
    >>> data, new_spacing = rescale(image, (2, 0.5, 0.5), spacing=(2.0, 0.4, 0.4))
    >>> data.shape, data.dtype, new_spacing
    ((8, 5, 5), dtype('float32'), (1.0, 0.8, 0.8))
    """
    image = _as_image(image)
    spacing = as_spacing(spacing, image.ndim)
    order = _check_order(order)
    try:
        s = np.broadcast_to(np.asarray(scale, dtype=float), (image.ndim,))
    except (TypeError, ValueError):
        raise ParameterError(f"scale must be a number or {image.ndim} numbers, got {scale!r}") from None
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ParameterError(f"scale must be positive and finite, got {scale!r}")
    output_shape = np.maximum(np.round(s * np.asarray(image.shape)), 1).astype(int)
    out = _zoom_to_shape(image, output_shape, order, anti_aliasing)
    new_spacing = tuple(float(sp * n / m) for sp, n, m in zip(spacing, image.shape, output_shape))
    return out, new_spacing


def resample_isotropic(image, *, spacing, target=None, order=1, anti_aliasing=None):
    """Resample to (nearly) cubic voxels of size `target`.

    Parameters
    ----------
    image : ndarray
        2D or 3D image.
    spacing : float or sequence of float
        Voxel size per axis of `image` (required).
    target : float, optional
        Voxel size wanted, same unit. Default: the finest spacing (no axis
        loses resolution; coarse axes are interpolated).
    order : int
        Spline order (0 for labels and masks; see :func:`rescale`).
    anti_aliasing : bool, optional
        See :func:`rescale`.

    Returns
    -------
    data : ndarray
        As in :func:`rescale`.
    new_spacing : tuple of float
        The exact voxel size of the output grid, ``spacing * old_shape /
        new_shape``: equal to `target` up to the rounding of the shape.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((10, 32, 32), dtype=np.float32)
    >>> data, new_spacing = resample_isotropic(image, spacing=(2.0, 0.5, 0.5))
    >>> data.shape, new_spacing
    ((40, 32, 32), (0.5, 0.5, 0.5))
    """
    image = _as_image(image)
    spacing = as_spacing(spacing, image.ndim)
    if target is None:
        target = min(spacing)
    if isinstance(target, bool) or not np.isscalar(target) or not np.isfinite(target) or target <= 0:
        raise ParameterError(f"target must be a positive voxel size, got {target!r}")
    scale = [s / float(target) for s in spacing]
    return rescale(image, scale, spacing=spacing, order=order, anti_aliasing=anti_aliasing)
