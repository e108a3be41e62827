"""Stacks of 2D image slices: a folder of images or a glob pattern, one file per z plane.

This is scikit-image's ``imread_collection`` for volumes: the files are
sorted naturally (``z1, z2, z10``), must all be 2D (grey or RGB) with one
shape and type, and are stacked along z. TIFF slices are read with
tifffile, other formats (PNG, JPEG, BMP) with imageio, which scikit-image
depends on. Slice files carry no voxel size: the spacing is the default
unless given to :func:`voxseg.io.read`.
"""

from __future__ import annotations

import glob
import os
import re

import numpy as np

from ..errors import FormatError, InputNotFoundError, VoxsegError
from . import _exception_text, _Source

__all__ = ["open_slices", "natural_key", "SliceStack"]

#: File types read as slices.
SLICE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")


def natural_key(name: str) -> list:
    """Sort key that orders the numbers inside names by value.

    Examples
    --------
    >>> sorted(["z10.png", "z2.png", "z1.png"], key=natural_key)
    ['z1.png', 'z2.png', 'z10.png']
    """
    return [int(part) if part.isdigit() else part.casefold() for part in re.split(r"(\d+)", name)]


def open_slices(path: str) -> _Source:
    """Describe the stack of 2D images in the folder, glob pattern or single file `path`.

    Raises
    ------
    InputNotFoundError
        If a pattern matches no file.
    FormatError
        If there is no slice, or a slice is not 2D, or differs in shape or
        type from the first one.
    """
    files = _list_files(path)
    first = _read_slice(files[0])
    if first.ndim == 3 and first.shape[-1] in (3, 4):
        axes = "ZYXS"
    elif first.ndim == 2:
        axes = "ZYX"
    else:
        raise FormatError(f"{files[0]}: a slice must be a 2D image, got shape {first.shape}")
    stack = SliceStack(files, first.shape, first.dtype)
    metadata = {"slices": len(files), "first_slice": files[0]}
    return _Source(stack, axes, (None,) * len(axes), None, "slices", page_ndim=len(axes) - 1, metadata=metadata)


def _list_files(path: str) -> list[str]:
    if os.path.isdir(path):
        names = [
            n
            for n in os.listdir(path)
            if not n.startswith(".") and n.lower().endswith(SLICE_SUFFIXES) and os.path.isfile(os.path.join(path, n))
        ]
        if not names:
            raise FormatError(
                f"{path}: the folder holds no 2D image slices ({', '.join(SLICE_SUFFIXES)}) and is not a Zarr store"
            )
        kinds = {_family(n) for n in names}
        if len(kinds) > 1:
            raise FormatError(
                f"{path}: the folder mixes image types ({', '.join(sorted(kinds))}); "
                f"choose one with a pattern such as {os.path.join(path, '*.tif')!r}"
            )
        return sorted((os.path.join(path, n) for n in names), key=natural_key)
    if os.path.isfile(path):
        return [path]
    files = [f for f in glob.glob(path, recursive=True) if os.path.isfile(f)]
    if not files:
        raise InputNotFoundError(f"{path}: no file matches this pattern")
    return sorted(files, key=natural_key)


def _family(name: str) -> str:
    suffix = os.path.splitext(name)[1].lower()
    return {".tiff": ".tif", ".jpeg": ".jpg"}.get(suffix, suffix)


def _read_slice(path: str) -> np.ndarray:
    """Read one 2D image file."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix in (".tif", ".tiff"):
        from .tiff import _tiff_errors

        import tifffile

        with _tiff_errors(path):
            return tifffile.imread(path)
    if suffix not in SLICE_SUFFIXES:
        raise FormatError(f"{path}: unknown slice type {suffix or '(no extension)'}; use {', '.join(SLICE_SUFFIXES)}")
    import imageio.v3 as iio

    try:
        return np.asarray(iio.imread(path))
    except (VoxsegError, MemoryError):
        raise
    except Exception as exc:
        raise FormatError(f"{path}: unreadable image ({_exception_text(exc)})") from exc


class SliceStack:
    """Array-like (z, y, x[, s]) view of slice files that reads only the slices an index needs."""

    def __init__(self, files, plane_shape, dtype):
        self.files = list(files)
        self.plane_shape = tuple(plane_shape)
        self.shape = (len(self.files), *self.plane_shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, index):
        if not isinstance(index, tuple):
            index = (index,)
        index = index + (slice(None),) * (self.ndim - len(index))
        chosen = np.arange(len(self.files))[index[0]]
        planes = [self._plane(self.files[i]) for i in np.atleast_1d(chosen)]
        stack = np.stack(planes) if planes else np.empty((0, *self.plane_shape), self.dtype)
        if np.ndim(chosen) == 0:
            stack = stack[0]
        return stack[(Ellipsis, *index[1:])]

    def _plane(self, path: str) -> np.ndarray:
        plane = _read_slice(path)
        if plane.shape != self.plane_shape or plane.dtype != self.dtype:
            raise FormatError(
                f"{path}: slice of shape {plane.shape} and type {plane.dtype} differs from the "
                f"first slice ({self.plane_shape}, {self.dtype})"
            )
        return plane

    def __dask_tokenize__(self):
        stamps = [os.stat(f).st_mtime_ns for f in self.files]
        return (type(self).__name__, [os.path.abspath(f) for f in self.files], stamps, self.dtype.str)

    def __repr__(self):
        return f"SliceStack({len(self.files)} files, shape={self.shape}, dtype={self.dtype})"
