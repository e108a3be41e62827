"""Gradient-magnitude edge filters (Sobel, Scharr, Prewitt) in 3D, spacing-aware.

Each filter differentiates along one axis with ``[1, 0, -1]`` and smooths
along the other axes with the operator's normalised weights, for every axis
in turn; the magnitude is ``sqrt(sum_i (d_i / spacing_i)**2 / ndim)``. With
``spacing=None`` this is exactly :func:`skimage.filters.sobel` (and
``scharr``, ``prewitt``) on the raw values, computed with separable
element-wise passes in float32 (2-4 times faster than scikit-image's 3x3x3
convolutions in float64). With a spacing each axis derivative is divided by the voxel size
along that axis, so the response is per unit length and the same physical
edge gives the same response along z as along x. For a ramp of slope ``g``
(intensity per unit length) along any one axis the response is
``2 * g / sqrt(ndim)``.
"""

from __future__ import annotations

import numpy as np
from .errors import ParameterError
from .volume import as_spacing

__all__ = ["sobel", "scharr", "prewitt"]

_EDGE = np.array([1.0, 0.0, -1.0])
_SMOOTH = {
    "sobel": np.array([1.0, 2.0, 1.0]) / 4,
    "scharr": np.array([3.0, 10.0, 3.0]) / 16,
    "prewitt": np.full(3, 1.0 / 3),
}


def _edge_magnitude(image, spacing, planewise, smooth):
    image = np.asarray(image)
    if image.dtype.kind not in "buif":
        raise ParameterError(f"image must be a real numeric array, got dtype {image.dtype!r}")
    if image.ndim not in (2, 3):
        raise ParameterError(f"image must be 2D or 3D, got {image.ndim} dimensions")
    if planewise and image.ndim != 3:
        raise ParameterError(f"planewise=True needs a 3D image, got {image.ndim} dimensions")
    spacing = as_spacing(spacing, image.ndim)
    if image.dtype == bool:
        image = image.view(np.uint8)
    axes = list(range(1, image.ndim)) if planewise else list(range(image.ndim))
    # float32 arithmetic (float64 input stays float64); SciPy's "reflect"
    # boundary is NumPy's "symmetric" padding.
    work_dtype = np.float64 if image.dtype == np.float64 else np.float32
    pad = [(1, 1) if axis in axes else (0, 0) for axis in range(image.ndim)]
    padded = np.pad(image.astype(work_dtype, copy=False), pad, mode="symmetric")
    w_centre = work_dtype(smooth[1])
    ratio = work_dtype(smooth[0] / smooth[1])

    def shifted(arr, axis, start):
        index = [slice(None)] * arr.ndim
        index[axis] = slice(start, start + arr.shape[axis] - 2)
        return arr[tuple(index)]

    def smooth_along(arr, axis):
        # 3-tap symmetric smoothing with element-wise passes: much faster than
        # scipy.ndimage.correlate1d along non-contiguous axes
        out = np.add(shifted(arr, axis, 0), shifted(arr, axis, 2))
        out *= ratio
        out += shifted(arr, axis, 1)
        out *= w_centre
        return out

    out = None
    for edge_axis in axes:
        others = [a for a in axes if a != edge_axis]
        arr = padded
        for axis in others:
            arr = smooth_along(arr, axis)
        deriv = np.subtract(shifted(arr, edge_axis, 2), shifted(arr, edge_axis, 0))
        scale = 1.0 / spacing[edge_axis]
        if scale != 1.0:
            deriv *= work_dtype(scale)
        deriv *= deriv
        if out is None:
            out = deriv
        else:
            out += deriv
    out /= work_dtype(len(axes))
    np.sqrt(out, out=out)
    return out


def sobel(image, *, spacing=None, planewise=False):
    """Sobel gradient magnitude, per unit length of `spacing`.

    Parameters
    ----------
    image : ndarray
        2D or 3D image of any real dtype (values are not rescaled).
    spacing : float or sequence of float, optional
        Voxel size per axis; ``None`` means 1 (gradient per voxel).
    planewise : bool
        Use the 2D operator in each z plane (the z derivative is left out
        and the magnitude averages over 2 axes instead of 3).

    Returns
    -------
    ndarray of float32
        Gradient magnitude (float64 for float64 input).

    Notes
    -----
    See the module documentation for the exact definition. With
    ``spacing=None`` the result equals :func:`skimage.filters.sobel` applied
    to the image converted to float.

    Examples
    --------
    A ramp of 3 intensity units per um along z, sampled every 2 um:

    >>> import numpy as np
    >>> image = np.broadcast_to(6.0 * np.arange(5)[:, None, None], (5, 4, 4)).astype(np.float32)
    >>> mag = sobel(image, spacing=(2.0, 0.5, 0.5))
    >>> mag.dtype, round(float(mag[2, 2, 2]), 4), round(2 * 3 / 3 ** 0.5, 4)
    (dtype('float32'), 3.4641, 3.4641)
    """
    return _edge_magnitude(image, spacing, planewise, _SMOOTH["sobel"])


def scharr(image, *, spacing=None, planewise=False):
    """Scharr gradient magnitude, per unit length of `spacing`.

    Same as :func:`sobel` with the smoothing weights ``[3, 10, 3] / 16``
    (better rotation invariance).

    Parameters
    ----------
    image : ndarray
        2D or 3D image.
    spacing : float or sequence of float, optional
        Voxel size per axis; ``None`` means 1.
    planewise : bool
        Use the 2D operator in each z plane.

    Returns
    -------
    ndarray of float32

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((3, 5, 5), dtype=np.uint8)
    >>> image[:, :, 3:] = 100
    >>> scharr(image, planewise=True)[1, 2].astype(float).round(2).tolist()
    [0.0, 0.0, 70.71, 70.71, 0.0]
    """
    return _edge_magnitude(image, spacing, planewise, _SMOOTH["scharr"])


def prewitt(image, *, spacing=None, planewise=False):
    """Prewitt gradient magnitude, per unit length of `spacing`.

    Same as :func:`sobel` with the smoothing weights ``[1, 1, 1] / 3``.

    Parameters
    ----------
    image : ndarray
        2D or 3D image.
    spacing : float or sequence of float, optional
        Voxel size per axis; ``None`` means 1.
    planewise : bool
        Use the 2D operator in each z plane.

    Returns
    -------
    ndarray of float32

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((4, 4), dtype=np.float32)
    >>> image[:, 2:] = 1
    >>> prewitt(image)[1].astype(float).round(3).tolist()
    [0.0, 0.707, 0.707, 0.0]
    """
    return _edge_magnitude(image, spacing, planewise, _SMOOTH["prewitt"])
