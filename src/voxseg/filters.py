"""Smoothing, denoising and background filters for 3D images, spacing-aware.

Every length (sigma, radius, patch size) is in the unit of `spacing`
(``spacing=None`` means 1 per axis, i.e. voxels), and is converted to voxels
per axis, so that a filter covers the same physical neighbourhood along a
coarse z axis as along fine x and y axes. Linear filters return ``float32``
(``float32`` in gives ``float32`` out; integer data are filtered as they are,
never rescaled); order-statistics filters keep the input dtype.

``planewise=True`` applies the 2D filter to each z plane independently (the
z entry of a per-axis length is then ignored).
"""

from __future__ import annotations

import numpy as np

from .errors import ParameterError
from .volume import as_spacing, ellipsoid_footprint, length_to_voxels

__all__ = [
    "gaussian",
    "median",
    "bilateral",
    "non_local_means",
    "unsharp_mask",
    "white_tophat",
    "subtract_background",
]


def _as_image(image, name="image"):
    image = np.asarray(image)
    if image.dtype.kind not in "buif":
        raise ParameterError(f"{name} must be a real numeric array, got dtype {image.dtype!r}")
    if image.ndim < 2:
        raise ParameterError(f"{name} must be 2D or 3D, got {image.ndim} dimension(s)")
    return image


def _check_planewise(image, planewise):
    if planewise and image.ndim != 3:
        raise ParameterError(f"planewise=True needs a 3D image, got {image.ndim} dimensions")


def _per_axis(value, ndim, name):
    """A length given as a scalar or one value per axis, as a float array of ndim."""
    arr = np.asarray(value, dtype=float) if not isinstance(value, str) else None
    if arr is None or arr.ndim > 1 or (arr.ndim == 1 and arr.size != ndim):
        raise ParameterError(f"{name} must be a number or {ndim} numbers (one per axis), got {value!r}")
    arr = np.broadcast_to(arr, (ndim,)).copy()
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ParameterError(f"{name} must be finite and >= 0, got {value!r}")
    return arr


def _lengths_to_voxels(value, image, spacing, planewise, name):
    """Physical length(s) -> voxels per axis; z set to 0 when planewise."""
    spacing = as_spacing(spacing, image.ndim)
    length = _per_axis(value, image.ndim, name)
    if planewise:
        length[0] = 0.0
    return length_to_voxels(length, spacing)


def _footprint(radius, image, spacing, planewise, name="radius"):
    spacing = as_spacing(spacing, image.ndim)
    length = _per_axis(radius, image.ndim, name)
    if planewise:
        length[0] = 0.0
    return ellipsoid_footprint(length, spacing)


def gaussian(image, sigma, *, spacing=None, planewise=False, truncate=4.0):
    """Gaussian smoothing with a physical standard deviation.

    Parameters
    ----------
    image : ndarray
        2D or 3D image of any real dtype.
    sigma : float or sequence of float
        Standard deviation in the unit of `spacing`, one value for all axes
        or one per axis. 0 leaves an axis unsmoothed.
    spacing : float or sequence of float, optional
        Voxel size per axis (z, y, x); ``None`` means 1 (sigma in voxels).
    planewise : bool
        Smooth each z plane independently (no smoothing along z). The 3D
        version also smooths along z, by ``sigma / spacing_z`` voxels.
    truncate : float
        Truncate the kernel at this many standard deviations.

    Returns
    -------
    ndarray of float32
        The smoothed image, same shape; values are not rescaled.

    Notes
    -----
    Per axis the voxel sigma is ``sigma / spacing``; the filter is
    :func:`scipy.ndimage.gaussian_filter` with ``mode="nearest"``, writing
    into a float32 output (no float64 copy of the volume, unlike
    :func:`skimage.filters.gaussian`).

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((5, 9, 9), dtype=np.uint16)
    >>> image[2, 4, 4] = 1000
    >>> out = gaussian(image, 1.0, spacing=(2.0, 1.0, 1.0))
    >>> out.dtype
    dtype('float32')
    >>> round(float(out.sum()), 1)
    1000.0
    """
    image = _as_image(image)
    _check_planewise(image, planewise)
    if not np.isscalar(truncate) or not truncate > 0:
        raise ParameterError(f"truncate must be a positive number, got {truncate!r}")
    sigma_vox = _lengths_to_voxels(sigma, image, spacing, planewise, "sigma")
    if image.dtype == bool:
        image = image.view(np.uint8)
    out = np.empty(image.shape, dtype=np.float32)
    if not np.any(sigma_vox > 0):
        out[...] = image
        return out
    gaussian_filter_threaded(image, sigma_vox.tolist(), output=out, mode="nearest", truncate=truncate)
    return out


def gaussian_filter_threaded(image, sigma, *, output, mode="nearest", truncate=4.0, workers=None):
    """``scipy.ndimage.gaussian_filter`` computed by several threads, with the identical result.

    The filter is separable: each 1D pass along one axis is split into slabs along
    another axis, and SciPy releases the GIL while it filters, so the slabs run in
    parallel. `output` (float) receives the result and may be `image` itself.

    Examples
    --------
    >>> from scipy import ndimage as ndi
    >>> image = np.random.default_rng(0).random((6, 20, 30)).astype(np.float32)
    >>> out = np.empty_like(image)
    >>> _ = gaussian_filter_threaded(image, [1.0, 2.0, 0.5], output=out)
    >>> bool(np.array_equal(out, ndi.gaussian_filter(image, [1.0, 2.0, 0.5], mode="nearest")))
    True
    """
    from concurrent.futures import ThreadPoolExecutor

    from scipy import ndimage as ndi

    from ._threads import thread_count

    sigma = np.broadcast_to(np.asarray(sigma, dtype=float), (image.ndim,))
    workers = workers or min(thread_count(), 8)
    source = image
    for axis in range(image.ndim):
        if sigma[axis] <= 0:
            continue
        others = [a for a in range(image.ndim) if a != axis]
        split = max(others, key=lambda a: image.shape[a]) if others else None
        if split is None or workers == 1 or image.shape[split] < 2 * workers:
            ndi.gaussian_filter1d(source, sigma[axis], axis=axis, output=output, mode=mode, truncate=truncate)
        else:
            bounds = np.linspace(0, image.shape[split], workers + 1).astype(int)

            def band(k, source=source, axis=axis, split=split, bounds=bounds):
                index = [slice(None)] * image.ndim
                index[split] = slice(bounds[k], bounds[k + 1])
                index = tuple(index)
                ndi.gaussian_filter1d(source[index], sigma[axis], axis=axis, output=output[index], mode=mode,
                                      truncate=truncate)

            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(band, range(workers)))
        source = output
    if source is image and output is not image:  # no axis was filtered
        output[...] = image
    return output


def median(image, radius, *, spacing=None, planewise=False):
    """Median filter over an ellipsoid of physical radius.

    Parameters
    ----------
    image : ndarray
        2D or 3D image.
    radius : float or sequence of float
        Radius of the neighbourhood in the unit of `spacing` (one value, or
        one per axis).
    spacing : float or sequence of float, optional
        Voxel size per axis; ``None`` means 1 (radius in voxels).
    planewise : bool
        Filter each z plane with a disk. The 3D version uses an ellipsoid
        that is flatter along a coarse z axis (``radius / spacing`` voxels
        per axis, see :func:`voxseg.volume.ellipsoid_footprint`).

    Returns
    -------
    ndarray
        Same shape and dtype as `image`.

    Notes
    -----
    :func:`scipy.ndimage.median_filter` with the footprint, ``mode="nearest"``.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.full((3, 5, 5), 10, dtype=np.uint16)
    >>> image[1, 2, 2] = 60000
    >>> out = median(image, 1.0)
    >>> out.dtype, int(out[1, 2, 2])
    (dtype('uint16'), 10)
    """
    from scipy import ndimage as ndi

    image = _as_image(image)
    _check_planewise(image, planewise)
    footprint = _footprint(radius, image, spacing, planewise)
    if footprint.size == 1:
        return image.copy()
    return ndi.median_filter(image, footprint=footprint, mode="nearest")


def _overlap_slices(offset, shape):
    """Slices (dst, src) such that dst voxel p pairs with src voxel p + offset."""
    dst, src = [], []
    for o, n in zip(offset, shape):
        o = int(o)
        dst.append(slice(max(0, -o), n - max(0, o)))
        src.append(slice(max(0, o), n - max(0, -o)))
    return tuple(dst), tuple(src)


def bilateral(image, *, sigma_spatial, sigma_range, spacing=None, planewise=False, truncate=2.0):
    """Edge-preserving bilateral filter in 3D (or planewise).

    Each voxel becomes the weighted mean of its neighbours within
    ``truncate * sigma_spatial`` (an ellipsoid in voxels, spacing-aware),
    with weight ``exp(-d**2 / (2 sigma_spatial**2)) * exp(-(I_q - I_p)**2 /
    (2 sigma_range**2))``, where ``d`` is the physical distance.

    Parameters
    ----------
    image : ndarray
        2D or 3D image.
    sigma_spatial : float or sequence of float
        Spatial standard deviation, in the unit of `spacing` (one value or
        one per axis).
    sigma_range : float
        Intensity standard deviation, in the image's own intensity units
        (integer data are not rescaled to [0, 1], unlike
        :func:`skimage.restoration.denoise_bilateral`).
    spacing : float or sequence of float, optional
        Voxel size per axis; ``None`` means 1.
    planewise : bool
        Filter each z plane with the 2D bilateral filter; the 3D version also
        averages over neighbouring planes (within ``truncate *
        sigma_spatial / spacing_z`` planes).
    truncate : float
        Neighbourhood radius in spatial standard deviations.

    Returns
    -------
    ndarray of float32

    Notes
    -----
    scikit-image's bilateral filter is 2D only; this is a vectorised NumPy
    implementation that visits each symmetric pair of neighbour offsets once
    (the weight of p -> q equals that of q -> p). Neighbours outside the image
    are ignored (weights renormalised). Memory: about five float32 copies of
    the image. Time grows with the number of voxels in the neighbourhood.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((4, 8, 8), dtype=np.float32)
    >>> image[:, :, 4:] = 100.0
    >>> noisy = image + np.random.default_rng(0).normal(0, 2, image.shape).astype(np.float32)
    >>> out = bilateral(noisy, sigma_spatial=1.0, sigma_range=10.0)
    >>> out.dtype, bool(np.abs(out - image).std() < np.abs(noisy - image).std())
    (dtype('float32'), True)
    >>> round(float(out[:, :, :3].mean())), round(float(out[:, :, 5:].mean()))   # edge kept
    (0, 100)
    """
    image = _as_image(image)
    _check_planewise(image, planewise)
    if not np.isscalar(sigma_range) or not np.isfinite(sigma_range) or sigma_range <= 0:
        raise ParameterError(f"sigma_range must be a positive number, got {sigma_range!r}")
    if not np.isscalar(truncate) or not truncate > 0:
        raise ParameterError(f"truncate must be a positive number, got {truncate!r}")
    sp = np.asarray(as_spacing(spacing, image.ndim))
    sig = _per_axis(sigma_spatial, image.ndim, "sigma_spatial")
    if planewise:
        sig[0] = 0.0
    if not np.any(sig > 0):
        return image.astype(np.float32)
    fp = ellipsoid_footprint(truncate * sig, tuple(sp))
    half = np.array(fp.shape) // 2
    offsets = np.argwhere(fp) - half
    # keep one offset of each symmetric pair (lexicographically positive)
    positive = [o for o in offsets if tuple(o) > (0,) * image.ndim]
    img = image.astype(np.float32)
    num = img.copy()
    den = np.ones(image.shape, dtype=np.float32)
    coef = np.float32(-0.5 / float(sigma_range) ** 2)
    with np.errstate(divide="ignore"):
        inv_sig = np.where(sig > 0, 1.0 / np.where(sig > 0, sig, 1.0), 0.0)
    for o in positive:
        spatial = np.float32(np.exp(-0.5 * np.sum((o * sp * inv_sig) ** 2)))
        dst, src = _overlap_slices(o, image.shape)
        a, b = img[dst], img[src]
        w = np.subtract(a, b)
        np.multiply(w, w, out=w)
        w *= coef
        np.exp(w, out=w)
        w *= spatial
        den[dst] += w
        den[src] += w
        num[dst] += w * b
        w *= a
        num[src] += w
    num /= den
    return num


def non_local_means(image, *, patch_size, patch_distance, h, spacing=None, planewise=False,
                    sigma=0.0, fast_mode=True):
    """Non-local means denoising (scikit-image), with physical patch sizes.

    Parameters
    ----------
    image : ndarray
        2D or 3D single-channel image.
    patch_size : float
        Side of the patches compared, in the unit of `spacing`.
    patch_distance : float
        Largest distance searched for similar patches, in the unit of `spacing`.
    h : float
        Cut-off distance in the image's intensity units (higher: smoother).
    spacing : float or sequence of float, optional
        Voxel size per axis; ``None`` means 1.
    planewise : bool
        Denoise each z plane with the 2D algorithm (only in-plane spacing used).
    sigma : float
        Noise standard deviation (intensity units), subtracted from the patch
        distances as in scikit-image.
    fast_mode : bool
        scikit-image's fast (box-weighted) variant.

    Returns
    -------
    ndarray of float32

    Notes
    -----
    Wraps :func:`skimage.restoration.denoise_nl_means` with
    ``preserve_range=True`` (no rescaling). It only supports cubic patches
    and search windows in voxels, so the physical sizes are converted per axis
    and averaged: ``round(mean(patch_size / spacing))`` voxels (at least 1).
    On strongly anisotropic data (z step several times the pixel size) the
    patches are then physically elongated along z; resample to isotropic
    voxels first (:func:`voxseg.transform.resample_isotropic`) or use
    ``planewise=True``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> clean = np.zeros((6, 12, 12), dtype=np.float32)
    >>> clean[:, :, 6:] = 100
    >>> noisy = clean + rng.normal(0, 5, clean.shape).astype(np.float32)
    >>> out = non_local_means(noisy, patch_size=3, patch_distance=2, h=10)
    >>> out.dtype, bool(np.abs(out - clean).mean() < np.abs(noisy - clean).mean())
    (dtype('float32'), True)
    """
    from skimage.restoration import denoise_nl_means

    image = _as_image(image)
    _check_planewise(image, planewise)
    for name, value in (("patch_size", patch_size), ("patch_distance", patch_distance), ("h", h)):
        if not np.isscalar(value) or not np.isfinite(value) or value <= 0:
            raise ParameterError(f"{name} must be a positive number, got {value!r}")
    sp = as_spacing(spacing, image.ndim)
    axes_sp = sp[1:] if planewise else sp
    ps = max(1, int(round(float(np.mean([patch_size / s for s in axes_sp])))))
    pd = max(1, int(round(float(np.mean([patch_distance / s for s in axes_sp])))))
    img = image.astype(np.float32)
    kwargs = dict(patch_size=ps, patch_distance=pd, h=float(h), sigma=float(sigma),
                  fast_mode=fast_mode, preserve_range=True)
    if planewise:
        out = np.empty(img.shape, dtype=np.float32)
        for z in range(img.shape[0]):
            out[z] = denoise_nl_means(img[z], **kwargs)
        return out
    return np.asarray(denoise_nl_means(img, **kwargs), dtype=np.float32)


def unsharp_mask(image, *, radius, amount=1.0, spacing=None, planewise=False):
    """Sharpen: ``image + amount * (image - gaussian(image, radius))``.

    Parameters
    ----------
    image : ndarray
        2D or 3D image.
    radius : float or sequence of float
        Standard deviation of the Gaussian blur, in the unit of `spacing`.
    amount : float
        Strength of the sharpening.
    spacing : float or sequence of float, optional
        Voxel size per axis; ``None`` means 1.
    planewise : bool
        Blur each z plane in 2D (see :func:`gaussian`).

    Returns
    -------
    ndarray of float32
        Not clipped and not rescaled (unlike
        :func:`skimage.filters.unsharp_mask`, which clips to [0, 1] or [-1, 1]
        unless ``preserve_range=True``).

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((3, 1, 6), dtype=np.float32)
    >>> image[..., 3:] = 10
    >>> (unsharp_mask(image, radius=1.0, amount=1.0)[1, 0].astype(float).round(1) + 0.0).tolist()
    [0.0, -0.6, -3.0, 13.0, 10.6, 10.0]
    """
    if not np.isscalar(amount) or not np.isfinite(amount):
        raise ParameterError(f"amount must be a finite number, got {amount!r}")
    image = _as_image(image)
    blurred = gaussian(image, radius, spacing=spacing, planewise=planewise)
    out = image.astype(np.float32)
    # out + amount * (out - blurred), in place
    blurred -= out
    blurred *= np.float32(-amount)
    out += blurred
    return out


def white_tophat(image, radius, *, spacing=None, footprint="ball", planewise=False):
    """White top-hat: the image minus its opening; keeps bright details smaller than `radius`.

    Parameters
    ----------
    image : ndarray
        2D or 3D image.
    radius : float or sequence of float
        Radius of the structuring element in the unit of `spacing`.
    spacing : float or sequence of float, optional
        Voxel size per axis; ``None`` means 1.
    footprint : {"ball", "ellipsoid", "cube"}
        Shape of the element (see :func:`voxseg.morphology.footprint`).
    planewise : bool
        Use the 2D element in each z plane.

    Returns
    -------
    ndarray
        Same dtype as `image` (the opening never exceeds the image, so an
        unsigned result cannot wrap around).

    Notes
    -----
    Equal to :func:`scipy.ndimage.white_tophat` with the same footprint, but
    uses the fast decomposed morphology of :mod:`voxseg.morphology`.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.full((5, 9, 9), 100, dtype=np.uint16)
    >>> image[2, 4, 4] = 150
    >>> out = white_tophat(image, 1.0)
    >>> int(out[2, 4, 4]), int(out.sum())
    (50, 50)
    """
    from .morphology import opening

    image = _as_image(image)
    opened = opening(image, radius, spacing=spacing, footprint=footprint, planewise=planewise)
    if image.dtype == bool:
        return image & ~opened
    np.subtract(image, opened, out=opened)
    return opened


def _rolling_ball_kernel(radius, spacing, planewise):
    sp = np.asarray(spacing, dtype=float)
    r = np.broadcast_to(np.asarray(radius, dtype=float), sp.shape) / sp
    if planewise:
        r = r.copy()
        r[0] = 0.0
    half = np.floor(r + 1e-9).astype(int)
    grids = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    scaling = 1.0 - sum((g / ri) ** 2 if ri > 0 else np.zeros_like(g, dtype=float) for g, ri in zip(grids, r))
    height = float(np.max(r))
    kernel = height * np.sqrt(np.clip(scaling, 0, None))
    kernel[scaling < -1e-12] = np.inf
    return kernel


def subtract_background(image, radius, *, spacing=None, method="tophat", planewise=False):
    """Remove a slowly varying background with features larger than `radius`.

    Parameters
    ----------
    image : ndarray
        2D or 3D image.
    radius : float
        Radius in the unit of `spacing`; objects smaller than this are kept,
        larger structures go to the background.
    spacing : float or sequence of float, optional
        Voxel size per axis; ``None`` means 1.
    method : {"tophat", "rolling_ball"}
        ``"tophat"``: subtract the grey opening by a ball (flat element),
        see :func:`white_tophat`. ``"rolling_ball"``: subtract
        :func:`skimage.restoration.rolling_ball` with an ellipsoidal kernel of
        the physical radius (semi-axes ``radius / spacing`` voxels, height
        ``radius / min(spacing)`` intensity units, i.e. scikit-image's ball of
        that many voxels when the spacing is isotropic).
    planewise : bool
        Estimate the background of each z plane in 2D.

    Returns
    -------
    ndarray
        ``"tophat"``: same dtype as `image`. ``"rolling_ball"``: float32
        (float64 for float64 input), since the ball's surface is fractional.

    Examples
    --------
    >>> import numpy as np
    >>> z, y, x = np.mgrid[:6, :20, :20]
    >>> image = (1000 + x // 4).astype(np.uint16)    # slowly varying background
    >>> image[3, 10, 10] += 500                     # a small bright spot
    >>> out = subtract_background(image, 2.0)
    >>> int(out[3, 10, 10]), int(out[0, 0, 0])
    (500, 0)
    >>> out = subtract_background(image, 2.0, method="rolling_ball")
    >>> out.dtype, round(float(out[3, 10, 10]))
    (dtype('float32'), 500)
    """
    if method not in ("tophat", "rolling_ball"):
        raise ParameterError(f"method must be 'tophat' or 'rolling_ball', got {method!r}")
    image = _as_image(image)
    _check_planewise(image, planewise)
    if method == "tophat":
        return white_tophat(image, radius, spacing=spacing, planewise=planewise)
    from skimage.restoration import rolling_ball

    if not np.isscalar(radius) or not np.isfinite(radius) or radius <= 0:
        raise ParameterError(f"radius must be a positive number, got {radius!r}")
    sp = as_spacing(spacing, image.ndim)
    kernel = _rolling_ball_kernel(radius, sp, planewise)
    work = np.float64 if image.dtype == np.float64 else np.float32
    img = image.astype(work, copy=False)
    background = rolling_ball(img, kernel=kernel)
    return np.subtract(img, background, dtype=work)
