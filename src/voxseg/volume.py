"""The :class:`Volume` container and helpers that turn physical lengths into voxels."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .errors import ParameterError

__all__ = [
    "Volume",
    "as_spacing",
    "length_to_voxels",
    "ellipsoid_footprint",
    "voxel_volume",
]


def as_spacing(spacing, ndim: int = 3) -> tuple[float, ...]:
    """Return `spacing` as a tuple of ``ndim`` positive finite floats.

    Parameters
    ----------
    spacing : None, float or sequence of float
        Voxel size per axis (z, y, x). ``None`` means 1 per axis, a scalar is
        used for every axis.
    ndim : int
        Number of axes.

    Raises
    ------
    ParameterError
        If the count is wrong or a value is zero, negative, NaN or infinite.

    Examples
    --------
    >>> as_spacing([2, 0.5, 0.5])
    (2.0, 0.5, 0.5)
    >>> as_spacing(None, ndim=2)
    (1.0, 1.0)
    """
    if spacing is None:
        return (1.0,) * ndim
    if np.ndim(spacing) == 0:
        spacing = (spacing,) * ndim
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise ParameterError(
            f"spacing must have one positive value per axis, got {spacing!r}"
        ) from None
    if len(values) != ndim or not all(math.isfinite(s) and s > 0 for s in values):
        raise ParameterError(
            f"spacing must have {ndim} positive finite values (z, y, x), got {spacing!r}"
        )
    return values


def length_to_voxels(length, spacing) -> np.ndarray:
    """Convert a physical length (scalar or per axis) to a length in voxels per axis.

    Examples
    --------
    >>> length_to_voxels(2.0, (2.0, 0.5, 0.5))
    array([1., 4., 4.])
    """
    spacing = np.asarray(as_spacing(spacing, ndim=len(spacing) if np.ndim(spacing) else 3))
    length = np.broadcast_to(np.asarray(length, dtype=float), spacing.shape)
    if not np.all(np.isfinite(length)) or np.any(length < 0):
        raise ParameterError(f"lengths must be finite and >= 0, got {length.tolist()!r}")
    return length / spacing


def ellipsoid_footprint(radius, spacing) -> np.ndarray:
    """Boolean footprint of the ellipsoid with physical `radius` on a voxel grid.

    A voxel belongs to the footprint when its centre lies inside the
    ellipsoid; the centre voxel always does. On an anisotropic grid the
    footprint is flatter along the coarse axis, so that it covers the same
    physical ball.

    Examples
    --------
    >>> ellipsoid_footprint(1.0, (2.0, 1.0, 1.0)).shape
    (1, 3, 3)
    """
    radii = length_to_voxels(radius, spacing)
    half = np.floor(radii + 1e-9).astype(int)
    grids = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    dist2 = sum((g / r) ** 2 if r > 0 else np.where(g == 0, 0.0, np.inf) for g, r in zip(grids, radii))
    return np.asarray(dist2 <= 1.0 + 1e-9)


def voxel_volume(spacing) -> float:
    """Physical volume of one voxel."""
    return float(np.prod(as_spacing(spacing, ndim=len(spacing))))


@dataclass(frozen=True)
class Volume:
    """A volumetric image with its voxel spacing.

    Attributes
    ----------
    data : numpy.ndarray or dask.array.Array
        The voxels, axes ordered (z, y, x).
    spacing : tuple of float
        Voxel size along (z, y, x), in `unit`.
    unit : str
        Unit of `spacing` (``"um"``, ``"nm"``, ``"pixel"`` when unknown, ...).
    spacing_source : str
        Where the spacing comes from: ``"metadata"``, ``"user"`` or
        ``"default"`` (no metadata, 1 per axis assumed).
    axes : str
        Axes of the original file, for information (``"ZCYX"`` ...).
    path : str or None
        The file the volume was read from.
    """

    data: Any
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    unit: str = "pixel"
    spacing_source: str = "default"
    axes: str = "ZYX"
    path: str | None = None
    metadata: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "spacing", as_spacing(self.spacing, ndim=self.data.ndim))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def is_lazy(self) -> bool:
        return not isinstance(self.data, np.ndarray)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def with_data(self, data, **changes) -> "Volume":
        """Return a copy holding `data` (and any other changed attribute)."""
        return replace(self, data=data, **changes)
