"""NumPy ``.npy`` files, with the voxel size in a JSON sidecar (``name.npy.json``).

A ``.npy`` file has no place for metadata, so :func:`write_npy` records
the spacing next to it; :func:`open_npy` uses the sidecar only when the
shape and type it records match the array (a stale sidecar is ignored).
Files are always memory-mapped read-only, never loaded whole to describe
them and never modified.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from ..errors import FormatError
from . import _exception_text, _is_dask, _Source, normalise_unit
from .atomic import atomic_path

__all__ = ["open_npy", "write_npy", "sidecar_path", "NpyArray"]


def sidecar_path(path) -> str:
    """Path of the JSON file that holds the spacing of the ``.npy`` file `path`."""
    return os.fspath(path) + ".json"


def open_npy(path: str) -> _Source:
    """Describe the array of the ``.npy`` file at `path` (axes unknown: ZYX if 3D).

    Raises
    ------
    FormatError
        If the file is not a readable ``.npy`` file (or holds Python objects).
    """
    array = NpyArray(path)
    ndim = array.ndim
    axes = "Q" * (ndim - 2) + "YX" if ndim >= 2 else "Q" * ndim
    scale, unit = (None,) * ndim, None
    side = _read_sidecar(path, array)
    if side is not None:
        scale, unit = side
    page_ndim = min(ndim, 2)
    return _Source(array, axes, scale, unit, "npy", page_ndim=page_ndim)


class NpyArray:
    """Array-like view of a ``.npy`` file that copies out only what an index selects.

    Each indexing memory-maps the file read-only and releases it again: the
    object holds no open file and pickles to its path.
    """

    def __init__(self, path):
        self.path = path
        mapped = self._map()
        self.shape, self.dtype, self.ndim = mapped.shape, mapped.dtype, mapped.ndim
        stat = os.stat(path)
        self._stamp = (stat.st_mtime_ns, stat.st_size)

    def _map(self) -> np.ndarray:
        try:
            return np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, EOFError, OSError) as exc:
            raise FormatError(f"{self.path}: not a readable .npy file ({_exception_text(exc)})") from exc

    def __getitem__(self, index):
        mapped = self._map()
        data = np.array(mapped[index])  # a copy, so the map is released with `mapped`
        del mapped
        return data

    def __dask_tokenize__(self):
        return (type(self).__name__, os.path.abspath(self.path), self._stamp, self.shape, self.dtype.str)

    def __repr__(self):
        return f"NpyArray({self.path!r}, shape={self.shape}, dtype={self.dtype})"


def _read_sidecar(path: str, array: NpyArray):
    """Return (scale, unit) from the sidecar, or None if absent, unreadable or stale."""
    try:
        with open(sidecar_path(path), encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    spacing = meta.get("spacing")
    if (
        meta.get("shape") != list(array.shape)
        or meta.get("dtype") != array.dtype.str
        or not isinstance(spacing, list)
        or len(spacing) != array.ndim
        or not all(isinstance(s, (int, float)) and math.isfinite(s) and s > 0 for s in spacing)
    ):
        return None
    unit = meta.get("unit")
    return tuple(float(s) for s in spacing), normalise_unit(unit) if isinstance(unit, str) else None


def write_npy(path, data, *, spacing=None, unit="um", final=None) -> None:
    """Write `data` to the ``.npy`` file `path` and its spacing to the sidecar of `final`.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create (normally the temporary path of an atomic write).
    data : numpy.ndarray or dask.array.Array
        A dask array is stored block by block into a memory-mapped file.
    spacing : tuple of floats, optional
        Voxel size per axis; None writes no sidecar (and removes a stale one).
    unit : str
        Unit of `spacing`.
    final : str or os.PathLike, optional
        The path the array will finally have (default `path`); the sidecar
        is written atomically next to it.
    """
    if _is_dask(data):
        import dask.array as da

        mapped = np.lib.format.open_memmap(path, mode="w+", dtype=data.dtype, shape=tuple(data.shape))
        da.store(data, mapped, lock=False)
        mapped.flush()
        del mapped
    else:
        with open(path, "wb") as f:
            np.save(f, np.asarray(data), allow_pickle=False)
    side = sidecar_path(final if final is not None else path)
    if spacing is None:
        if os.path.lexists(side):
            os.unlink(side)
        return
    meta = {
        "spacing": [float(s) for s in spacing],
        "unit": unit,
        "shape": [int(n) for n in data.shape],
        "dtype": np.dtype(data.dtype).str,
    }
    with atomic_path(side, overwrite=True) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
