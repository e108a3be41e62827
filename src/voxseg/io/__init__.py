"""Read volumes and write results, keeping the voxel spacing.

:func:`read` turns a TIFF stack (plain, ImageJ hyperstack, OME-TIFF), a Zarr
or OME-Zarr store, a ``.npy`` file, or a folder / glob pattern of 2D slices
into a :class:`~voxseg.volume.Volume` with (z, y, x) data and its spacing.
:func:`write_labels` and :func:`write_volume` write arrays back in a form
:func:`read` (and ImageJ/Fiji, napari, other OME readers) understand, through
:func:`~voxseg.io.atomic.atomic_path`, so a failed write leaves nothing behind.

The format modules (:mod:`.tiff`, :mod:`.zarr`, :mod:`.npy`, :mod:`.slices`)
only describe what a file holds (a :class:`_Source`); this module decides
what that means: axes, channel, spacing, memory, laziness. dask and zarr are
imported only when needed, so importing this module stays cheap.
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    FormatError,
    InputNotFoundError,
    ParameterError,
    VolumeTooLargeError,
)
from ..volume import Volume, as_spacing
from .atomic import atomic_directory, atomic_path

__all__ = ["read", "write_labels", "write_volume", "atomic_path", "atomic_directory"]

#: Axis letters voxseg understands (tifffile's names): time, channel, space, RGB samples.
KNOWN_AXES = "TCZYXS"
#: Refuse to load eagerly a volume larger than this fraction of the available memory.
MEMORY_FRACTION = 0.5
#: Target size of one chunk when a file is read lazily page by page.
_CHUNK_BYTES = 64 * 2**20

_GLOB_CHARS = re.compile(r"[*?[]")
_TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray", ".zattrs")


@dataclass
class _Source:
    """What a format module found in a file, before any interpretation.

    Attributes
    ----------
    array : array-like
        ``shape``, ``dtype`` and basic indexing (ints and slices), in the
        file's axis order: a zarr array, or a small reader object that reads
        only the part an index asks for. Never the whole data in memory.
    axes : str
        One letter per axis of `array`, from :data:`KNOWN_AXES`; ``"Q"`` for
        an axis whose meaning the file does not say.
    scale : tuple of (float or None)
        Voxel size per axis of `array` from the file's metadata; ``None``
        where the file says nothing.
    unit : str or None
        Unit of `scale` (normalised, see :func:`normalise_unit`).
    kind : str
        Format, for :attr:`Volume.metadata` (``"imagej-tiff"``, ``"ome-zarr"`` ...).
    page_ndim : int
        Number of trailing axes that are read as one unit (a TIFF page, an
        image slice). Lazy chunks span whole pages; 0 means the array has
        its own chunks (zarr).
    metadata : dict
        Extra facts for :attr:`Volume.metadata`.
    """

    array: Any
    axes: str
    scale: tuple
    unit: str | None
    kind: str
    page_ndim: int = 2
    metadata: dict = field(default_factory=dict)


def read(path, *, spacing=None, channel=None, axes=None, unit=None, lazy=None) -> Volume:
    """Read a 3D image as a :class:`~voxseg.volume.Volume` with (z, y, x) data.

    Parameters
    ----------
    path : str or os.PathLike
        One of:

        - a TIFF file (``.tif``, ``.tiff``, ``.ome.tif``): a plain multi-page
          stack, an ImageJ hyperstack or an OME-TIFF;
        - a Zarr store (``.zarr`` directory): an OME-Zarr image (NGFF 0.4 or
          0.5; level 0 of the first multiscale is read), a plain array, or
          the path of an array inside a store (``image.zarr/0``);
        - a ``.npy`` file;
        - a directory of 2D image slices (``.tif``, ``.png``, ``.jpg``,
          ``.bmp``) or a glob pattern (``"slices/*.png"``), stacked along z in
          natural order (``z1, z2, z10``);
        - a single 2D image.
    spacing : float or sequence of 3 floats, optional
        Voxel size (z, y, x). Overrides the file's metadata
        (``spacing_source="user"``).
    channel : int, optional
        Channel to read from a multi-channel image (axis ``C``, or ``S`` for
        RGB samples). Required when the image has more than one channel.
    axes : str, optional
        One letter per axis of the stored array, from ``T C Z Y X S``
        (e.g. ``"ZCYX"``), replacing what the file says. Needed for 4D/5D
        data whose axes the file does not name (``.npy``, plain TIFF/Zarr).
    unit : str, optional
        Unit of the spacing, replacing the file's (no conversion is done:
        this relabels the numbers).
    lazy : bool, optional
        Return a dask array instead of loading the data. By default Zarr
        stores are read lazily and everything else is loaded.

    Returns
    -------
    Volume
        ``data`` has three axes (z, y, x) and the file's data type (in
        native byte order). ``spacing_source`` is ``"user"`` when `spacing`
        is given, ``"metadata"`` when the file calibrates its axes, and
        ``"default"`` otherwise (spacing 1, unit ``"pixel"``).

    Raises
    ------
    InputNotFoundError
        If `path` does not exist (or a pattern matches no file).
    FormatError
        If the file is empty, corrupt, truncated, of an unknown type, holds
        complex data, a time series, or axes that are unknown.
    ParameterError
        If `channel` is missing for a multi-channel image or out of range,
        or `axes` / `spacing` are invalid.
    VolumeTooLargeError
        If loading needs more than half of the available memory (use
        ``lazy=True``, on the command line ``--chunks``).

    Notes
    -----
    Axes follow the file: tifffile's series axes for TIFF (``"ZCYX"``,
    ``"TZCYX"`` ...), the ``axes`` of OME-Zarr metadata. A 3D array whose
    file does not name its axes (plain TIFF stack, ``.npy``, plain Zarr) is
    taken as (z, y, x), the universal convention for an unlabelled stack.
    Axes of length 1 other than z, y, x are dropped. Data of 4 or more
    dimensions whose axes are unknown are refused rather than guessed:
    pass `axes`.

    A single 2D plane is returned as a one-plane volume of shape
    ``(1, Y, X)`` with z spacing 1, so that every later step sees 3D data.

    Spacing comes from: ImageJ metadata (``spacing`` for z, the
    XResolution/YResolution tags, in pixels per unit, for x/y, ``unit``);
    OME-XML ``PhysicalSizeX/Y/Z`` and their units; OME-Zarr ``scale``
    transforms (with the multiscale's own transform) and axis units; a
    ``spacing`` attribute on a plain Zarr array; the JSON sidecar that
    :func:`write_volume` writes next to a ``.npy``. Resolution tags of plain
    (non-ImageJ) TIFF files are ignored: they usually hold a print
    resolution (72 dpi), not a voxel size. Units are normalised
    (``"micron"``, ``"µm"``, ``"micrometer"`` -> ``"um"``); axes in
    different length units are converted to the unit of x.

    The data are not scanned for NaN or infinite values here. Input files
    are opened read-only and never modified.

    Examples
    --------
    >>> import os, shutil, tempfile
    >>> import numpy as np
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "cells.tif")
    >>> _ = write_volume(path, np.zeros((4, 8, 8), np.uint16), spacing=(2.0, 0.5, 0.5))
    >>> vol = read(path)
    >>> vol.shape, vol.dtype, vol.spacing, vol.unit, vol.spacing_source
    ((4, 8, 8), dtype('uint16'), (2.0, 0.5, 0.5), 'um', 'metadata')
    >>> read(path, spacing=1).spacing_source
    'user'
    >>> shutil.rmtree(folder)
    """
    name = os.fspath(path)
    source = _open(name)
    file_axes = _resolve_axes(name, source, axes)
    _check_dtype(name, source.array.dtype)
    index, kept, n_channels = _selection(name, file_axes, source.array.shape, channel)
    voxel, unit_out, spacing_source = _spacing(name, source, file_axes, spacing, unit)
    order = [kept.index(a) for a in "ZYX" if a in kept]
    if lazy is None:
        lazy = source.kind in ("zarr", "ome-zarr")

    if lazy:
        data = _as_dask(source, file_axes)[index]
    else:
        shape = [n for n, i in zip(source.array.shape, index) if isinstance(i, slice)]
        _check_memory(name, math.prod(shape) * source.array.dtype.itemsize)
        data = np.asarray(source.array[index])
    if order != sorted(order):
        data = data.transpose(order)
        if not lazy:
            data = np.ascontiguousarray(data)
    if "Z" not in kept:
        data = data[np.newaxis]
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))

    metadata = {"format": source.kind, "channels": n_channels, **source.metadata}
    if n_channels > 1:
        metadata["channel"] = channel
    return Volume(
        data,
        spacing=voxel,
        unit=unit_out,
        spacing_source=spacing_source,
        axes=file_axes,
        path=name,
        metadata=metadata,
    )


def write_labels(path, labels, *, spacing=None, unit="um", overwrite=False, chunks=None) -> Path:
    """Write a 3D label image, with its spacing, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; the extension picks the format:

        - ``.tif`` / ``.tiff``: an ImageJ hyperstack (axes ZYX, spacing,
          resolution tags, unit) of uint16 when the labels fit, otherwise a
          uint32 OME-TIFF (ImageJ hyperstacks cannot hold uint32);
          ``.ome.tif`` always writes OME-TIFF;
        - ``.zarr``: OME-Zarr (NGFF 0.4, Zarr format 2) with one scale
          level ``"0"`` and an ``image-label`` attribute;
        - ``.npy``: the array as is, and the spacing in a ``.npy.json``
          sidecar.
    labels : numpy.ndarray or dask.array.Array
        Integer (or boolean) labels, shape (z, y, x), 0 for background.
        A dask array is written block by block, never held in memory whole.
    spacing : float or sequence of 3 floats, optional
        Voxel size (z, y, x) in `unit`. ``None`` writes no calibration: the
        file reads back with ``spacing_source="default"``.
    unit : str
        Unit of `spacing` (``"um"``, ``"nm"``, ``"mm"``, ``"pixel"``).
    overwrite : bool
        Replace an existing output.
    chunks : int or sequence of 3 ints, optional
        Chunk shape of a Zarr output (default: the dask chunks, or up to
        64 x 256 x 256). Ignored for TIFF and ``.npy``.

    Returns
    -------
    pathlib.Path
        `path`.

    Raises
    ------
    ParameterError
        If `labels` is not a 3D integer array, has negative values, or
        values a TIFF cannot hold (above 2**32 - 1), or `path` has an
        unknown extension.
    OutputExistsError
        If `path` exists and `overwrite` is false.
    OutputError
        If the output cannot be written.

    Notes
    -----
    TIFF labels are uint16 or uint32 whatever the input type: an in-memory
    array is written as uint16 when its largest label is at most 65535; a
    dask array (whose values are unknown until written) as uint16 when its
    type is bool, uint8, int8, uint16 or int16, else uint32 (values are
    checked block by block as they are written). Zarr and ``.npy`` keep the
    input type. Writers are deterministic: the same input gives a
    byte-identical file (no timestamps; the OME UUID is derived from the
    content).

    Examples
    --------
    >>> import os, shutil, tempfile
    >>> import numpy as np
    >>> folder = tempfile.mkdtemp()
    >>> labels = np.zeros((3, 4, 4), np.int32)
    >>> labels[1, 1:3, 1:3] = 70000
    >>> path = write_labels(os.path.join(folder, "labels.tif"), labels, spacing=(1.0, 0.25, 0.25))
    >>> back = read(path)
    >>> back.dtype, int(back.data.max()), back.spacing
    (dtype('uint32'), 70000, (1.0, 0.25, 0.25))
    >>> shutil.rmtree(folder)
    """
    kind = _output_kind(path)
    labels = _output_array(labels, "labels", kinds="biu")
    voxel = None if spacing is None else as_spacing(spacing)
    unit = normalise_unit(unit)
    if kind in ("tiff", "ome-tiff"):
        labels = _labels_for_tiff(labels)
        if labels.dtype == np.uint32:
            kind = "ome-tiff"
    elif isinstance(labels, np.ndarray) and labels.dtype.kind == "i" and labels.size and labels.min() < 0:
        raise ParameterError(f"labels must be >= 0, got a minimum of {labels.min()}")
    return _write(path, labels, kind, voxel, unit, overwrite=overwrite, chunks=chunks, is_labels=True)


def write_volume(path, data, *, spacing=None, unit="um", overwrite=False) -> Path:
    """Write a 3D intensity volume, with its spacing, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Output file: ``.tif`` / ``.tiff`` (an ImageJ hyperstack for uint8,
        uint16 and float32; an OME-TIFF for bool, int8, int16, int32,
        uint32 and float64, or whenever the name ends in ``.ome.tif``; a
        tifffile "shaped" TIFF with the spacing in its JSON description
        for int64, uint64 and float16, which neither ImageJ nor OME can
        hold), ``.zarr`` (OME-Zarr NGFF 0.4) or ``.npy`` (with a
        ``.npy.json`` spacing sidecar).
    data : numpy.ndarray or dask.array.Array
        Shape (z, y, x); bool, integer or float data, written unchanged.
    spacing : float or sequence of 3 floats, optional
        Voxel size (z, y, x) in `unit`; ``None`` writes no calibration.
    unit : str
        Unit of `spacing`.
    overwrite : bool
        Replace an existing output.

    Returns
    -------
    pathlib.Path
        `path`.

    Raises
    ------
    ParameterError
        If `data` is not 3D, has an unsupported type (complex ...), or
        `path` has an unknown extension.
    OutputExistsError
        If `path` exists and `overwrite` is false.
    OutputError
        If the output cannot be written.

    Examples
    --------
    >>> import os, shutil, tempfile
    >>> import numpy as np
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "smooth.npy")
    >>> _ = write_volume(path, np.ones((2, 3, 3), np.float32), spacing=(2, 1, 1), unit="nm")
    >>> vol = read(path)
    >>> vol.dtype, vol.spacing, vol.unit
    (dtype('float32'), (2.0, 1.0, 1.0), 'nm')
    >>> sorted(os.listdir(folder))
    ['smooth.npy', 'smooth.npy.json']
    >>> shutil.rmtree(folder)
    """
    kind = _output_kind(path)
    data = _output_array(data, "data", kinds="biuf")
    voxel = None if spacing is None else as_spacing(spacing)
    unit = normalise_unit(unit)
    return _write(path, data, kind, voxel, unit, overwrite=overwrite, chunks=None, is_labels=False)


# -- opening -----------------------------------------------------------------


def _open(path: str) -> _Source:
    """Dispatch `path` to the format module that can describe it."""
    if not os.path.exists(path):
        if _GLOB_CHARS.search(path):
            from .slices import open_slices

            return open_slices(path)
        raise InputNotFoundError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        if _is_zarr(path):
            from .zarr import open_zarr

            return open_zarr(path)
        from .slices import open_slices

        return open_slices(path)
    if os.path.getsize(path) == 0:
        raise FormatError(f"{path}: empty file (0 bytes)")
    lower = path.lower()
    if lower.endswith(_TIFF_SUFFIXES):
        kind = "tiff"
    elif lower.endswith(".npy"):
        kind = "npy"
    elif lower.endswith(_IMAGE_SUFFIXES):
        kind = "image"
    else:
        kind = _sniff(path)
    if kind == "tiff":
        from .tiff import open_tiff

        return open_tiff(path)
    if kind == "npy":
        from .npy import open_npy

        return open_npy(path)
    if kind == "image":
        from .slices import open_slices

        return open_slices(path)
    suffix = Path(path).suffix or "(no extension)"
    raise FormatError(
        f"{path}: unknown file type {suffix}; voxseg reads TIFF (.tif, .tiff), Zarr (.zarr), "
        "NumPy (.npy), and folders or glob patterns of 2D slices (.tif, .png, .jpg, .bmp)"
    )


def _is_zarr(path: str) -> bool:
    here = Path(path)
    if any(part.lower().endswith(".zarr") for part in here.parts):
        return True
    return any((here / marker).exists() for marker in _ZARR_MARKERS)


def _sniff(path: str) -> str | None:
    """Recognise a TIFF or .npy file by its first bytes."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return "tiff"
    if head[:6] == b"\x93NUMPY":
        return "npy"
    return None


# -- interpreting ------------------------------------------------------------


def _resolve_axes(path: str, source: _Source, axes) -> str:
    """Return one letter from :data:`KNOWN_AXES` (or ``Q`` of length 1) per axis."""
    shape = source.array.shape
    if axes is not None:
        return _check_axes(path, axes, shape)
    file_axes = source.axes
    unknown = [i for i, a in enumerate(file_axes) if a not in KNOWN_AXES]
    if not unknown:
        return file_axes
    long = [i for i in unknown if shape[i] > 1]
    planes = "Y" in file_axes and "X" in file_axes and max(unknown) < file_axes.index("Y")
    if planes and len(long) <= 1 and "Z" not in file_axes:
        # an unlabelled stack of planes: the axis that is not y or x is z
        z = long[0] if long else unknown[-1]
        return "".join("Z" if i == z else ("Q" if i in unknown else a) for i, a in enumerate(file_axes))
    raise FormatError(
        f"{path}: the axes of this {len(shape)}D image (shape {tuple(shape)}) are unknown; "
        f'name them with axes="ZCYX" (CLI: --axes ZCYX), one letter per axis from T, C, Z, Y, X'
    )


def _check_axes(path: str, axes, shape) -> str:
    letters = axes.upper() if isinstance(axes, str) else None
    ndim = len(shape)
    if (
        letters is None
        or len(letters) != ndim
        or any(a not in KNOWN_AXES for a in letters)
        or len(set(letters)) != ndim
        or "Y" not in letters
        or "X" not in letters
    ):
        raise ParameterError(
            f"axes must name each of the {ndim} axes of {path} (shape {tuple(shape)}) once, "
            f"with letters from T, C, Z, Y, X, S and at least Y and X, got {axes!r}"
        )
    return letters


def _selection(path: str, axes: str, shape, channel) -> tuple[tuple, str, int]:
    """Return the index that reduces the array to its z, y, x axes, the axes kept, the channel count."""
    channel_axes = [i for i, a in enumerate(axes) if a in "CS" and shape[i] > 1]
    if len(channel_axes) > 1:
        raise FormatError(
            f"{path}: both a channel axis (C={shape[axes.index('C')]}) and RGB samples "
            f"(S={shape[axes.index('S')]}) are present; this is not supported"
        )
    n_channels = shape[channel_axes[0]] if channel_axes else 1
    channel = _check_channel(path, channel, n_channels)
    index, kept = [], ""
    for a, n in zip(axes, shape):
        if a in "ZYX":
            index.append(slice(None))
            kept += a
        elif n == 1:
            index.append(0)
        elif a in "CS":
            index.append(channel)
        else:  # T (or an unknown axis, which _resolve_axes only lets through with length 1)
            raise FormatError(
                f"{path}: time series are not supported (T axis of length {n}); "
                "save the time point to analyse as its own file"
            )
    return tuple(index), kept, n_channels


def _check_channel(path: str, channel, n_channels: int) -> int:
    if channel is None:
        if n_channels > 1:
            raise ParameterError(
                f"{path}: the image has {n_channels} channels; choose one with channel=N "
                f"(CLI: --channel N), N from 0 to {n_channels - 1}"
            )
        return 0
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)):
        raise ParameterError(f"channel must be an integer, got {channel!r}")
    if not 0 <= channel < n_channels:
        plural = "s" if n_channels > 1 else ""
        raise ParameterError(
            f"{path}: channel must be from 0 to {n_channels - 1} (the image has {n_channels} "
            f"channel{plural}), got {channel!r}"
        )
    return int(channel)


def _check_dtype(path: str, dtype) -> None:
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise FormatError(f"{path}: complex data ({dtype}) are not supported")
    if not (dtype.kind in "biu" or (dtype.kind == "f" and dtype.itemsize <= 8)):
        raise FormatError(f"{path}: data of type {dtype} are not supported")


def _spacing(path: str, source: _Source, axes: str, spacing, unit) -> tuple[tuple, str, str]:
    """Return (spacing, unit, spacing_source) for the (z, y, x) axes."""
    known = {a: s for a, s in zip(axes, source.scale) if a in "ZYX" and s is not None}
    for axis, size in (source.metadata or {}).get("sizes", {}).items():
        if axis in "ZYX" and axis not in known and size is not None:
            known[axis] = size  # an axis of length 1 that the file's series squeezed away
    if spacing is not None:
        voxel, spacing_source = as_spacing(spacing), "user"
    elif known:
        voxel, spacing_source = tuple(float(known.get(a, 1.0)) for a in "ZYX"), "metadata"
        if not all(math.isfinite(s) and s > 0 for s in voxel):
            raise FormatError(
                f"{path}: the voxel size in the file's metadata is invalid ({voxel}); "
                "pass spacing= (CLI: --spacing)"
            )
    else:
        voxel, spacing_source = (1.0, 1.0, 1.0), "default"
    if unit is not None:
        unit_out = normalise_unit(unit)
    elif spacing_source != "default" and source.unit:
        unit_out = source.unit
    else:
        unit_out = "pixel"
    return voxel, unit_out, spacing_source


def _as_dask(source: _Source, axes: str):
    import dask.array as da

    if source.page_ndim == 0:
        return da.from_zarr(source.array)
    shape, page_ndim = source.array.shape, source.page_ndim
    lead = len(shape) - page_ndim
    page_bytes = math.prod(shape[lead:]) * source.array.dtype.itemsize
    depth = max(1, _CHUNK_BYTES // max(page_bytes, 1))
    chunks = tuple(
        (min(n, depth) if a == "Z" else 1) if i < lead else n for i, (a, n) in enumerate(zip(axes, shape))
    )
    return da.from_array(source.array, chunks=chunks, asarray=True, fancy=False, lock=False)


def _exception_text(exc: BaseException) -> str:
    """One line naming an exception, for the messages of errors that wrap it."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_memory(path: str, nbytes: int) -> None:
    available = _available_memory()
    if available is not None and nbytes > MEMORY_FRACTION * available:
        raise VolumeTooLargeError(
            f"{path}: loading needs {nbytes / 1e9:.1f} GB but only {available / 1e9:.1f} GB "
            "of memory is available; process it in chunks with --chunks (lazy=True)"
        )


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation, or None if unknown.

    The smallest of the system's available memory, what the cgroup's memory
    limit leaves (containers, batch schedulers) and what the address-space
    limit (``ulimit -v``) leaves of this process.
    """
    candidates = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    candidates.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    if not candidates:
        try:
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, ValueError, OSError):
            pass
    try:  # cgroup v2
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                candidates.append(int(limit) - int(f.read().strip()))
    except (OSError, ValueError):
        pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/status") as f:
                size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
            candidates.append(soft - size)
    except (ImportError, OSError, ValueError, StopIteration):
        pass
    return max(min(candidates), 0) if candidates else None


def available_memory() -> int | None:
    """Bytes of memory this process can still allocate, or None if unknown (see ``_available_memory``)."""
    return _available_memory()


# -- units -------------------------------------------------------------------

_UNIT_NAMES = {
    "um": "um",
    "\u00b5m": "um",  # micro sign
    "\u03bcm": "um",  # Greek mu
    "\\u00b5m": "um",  # ImageJ writes the escape literally
    "micron": "um",
    "microns": "um",
    "micrometer": "um",
    "micrometre": "um",
    "nm": "nm",
    "nanometer": "nm",
    "nanometre": "nm",
    "mm": "mm",
    "millimeter": "mm",
    "millimetre": "mm",
    "cm": "cm",
    "centimeter": "cm",
    "centimetre": "cm",
    "m": "m",
    "meter": "m",
    "metre": "m",
    "pm": "pm",
    "picometer": "pm",
    "picometre": "pm",
    "a": "angstrom",
    "\u00e5": "angstrom",
    "\u212b": "angstrom",
    "angstrom": "angstrom",
    "pixel": "pixel",
    "pixels": "pixel",
    "px": "pixel",
    "": "pixel",
}
_METRES = {"pm": 1e-12, "angstrom": 1e-10, "nm": 1e-9, "um": 1e-6, "mm": 1e-3, "cm": 1e-2, "m": 1.0}
#: voxseg unit -> NGFF (UDUNITS-2) unit name
NGFF_UNITS = {
    "pm": "picometer",
    "angstrom": "angstrom",
    "nm": "nanometer",
    "um": "micrometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
}


def normalise_unit(unit) -> str:
    """Return the short name of a length unit (``"micron"`` -> ``"um"``).

    Unknown names are returned stripped but otherwise unchanged.

    Examples
    --------
    >>> normalise_unit("micron"), normalise_unit("\u00b5m"), normalise_unit("nanometer")
    ('um', 'um', 'nm')
    """
    if not isinstance(unit, str):
        raise ParameterError(f"unit must be a string such as 'um', got {unit!r}")
    text = unit.strip()
    return _UNIT_NAMES.get(text.lower(), _UNIT_NAMES.get(text, text))


def _common_unit(path: str, sizes: dict, units: dict) -> tuple[dict, str | None]:
    """Express per-axis sizes given in (possibly different) units in one unit.

    `sizes` and `units` map an axis (name or position) to a size and to a
    normalised unit (or None). The result is in the unit of the last axis
    of `sizes` that has one (x, for sizes given in z, y, x order).
    """
    named = [units[i] for i in sizes if units.get(i)]
    if len(set(named)) <= 1:
        return sizes, next(iter(named), None)
    target = named[-1]
    if not all(units.get(i) in _METRES for i in sizes):
        raise FormatError(
            f"{path}: the axes have different units ({', '.join(sorted(set(named)))}) that cannot be "
            "converted; pass spacing= and unit= (CLI: --spacing, --unit)"
        )
    return {i: s * _METRES[units[i]] / _METRES[target] for i, s in sizes.items()}, target


# -- writing -----------------------------------------------------------------


def _output_kind(path) -> str:
    lower = os.fspath(path).lower()
    if lower.endswith((".ome.tif", ".ome.tiff")):
        return "ome-tiff"
    if lower.endswith((".tif", ".tiff")):
        return "tiff"
    if lower.rstrip("/").endswith(".zarr"):
        return "zarr"
    if lower.endswith(".npy"):
        return "npy"
    raise ParameterError(f"path must end in .tif, .tiff, .zarr or .npy, got {os.fspath(path)!r}")


def _is_dask(array) -> bool:
    return "dask.array" in sys.modules and isinstance(array, sys.modules["dask.array"].Array)


def _output_array(array, name: str, *, kinds: str):
    if not _is_dask(array):
        array = np.asarray(array)
    if array.ndim != 3:
        raise ParameterError(f"{name} must be a 3D (z, y, x) array, got shape {tuple(array.shape)}")
    dtype = np.dtype(array.dtype)
    if dtype.kind not in kinds or (dtype.kind == "f" and dtype.itemsize > 8):
        wanted = "an integer" if kinds == "biu" else "a bool, integer or float"
        raise ParameterError(f"{name} must be {wanted} array, got dtype {dtype}")
    return array


def _labels_for_tiff(labels):
    """Cast labels to uint16 when they fit (ImageJ), else uint32 (see write_labels)."""
    if _is_dask(labels):
        small = labels.dtype == bool or (labels.dtype.kind in "iu" and labels.dtype.itemsize <= 2)
        target = np.dtype(np.uint16 if small else np.uint32)
        return labels.map_blocks(_cast_labels, target, dtype=target)
    low, high = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    target = np.uint16 if high <= np.iinfo(np.uint16).max else np.uint32
    return _cast_labels(labels, target, low=low, high=high)


def _cast_labels(block: np.ndarray, dtype, *, low=None, high=None) -> np.ndarray:
    """Cast labels to an unsigned TIFF type, refusing values that would wrap around."""
    if block.size and block.dtype != bool:
        low = int(block.min()) if low is None else low
        high = int(block.max()) if high is None else high
        if low < 0:
            raise ParameterError(f"labels must be >= 0, got a minimum of {low}")
        if high > np.iinfo(dtype).max:
            raise ParameterError(
                f"labels up to {high} do not fit a TIFF label image of type {np.dtype(dtype)} "
                f"(at most {np.iinfo(dtype).max}); write .zarr instead"
            )
    return block.astype(dtype, copy=False)


def _write(path, array, kind, spacing, unit, *, overwrite, chunks, is_labels) -> Path:
    target = Path(path)
    with atomic_path(target, overwrite=overwrite) as tmp:
        if kind in ("tiff", "ome-tiff"):
            from .tiff import write_tiff

            # label images are mostly runs of equal values: deflate shrinks them ~50x (ImageJ/Fiji read it)
            write_tiff(tmp, array, spacing=spacing, unit=unit, ome=kind == "ome-tiff",
                       compression="zlib" if is_labels else None)
        elif kind == "zarr":
            from .zarr import write_zarr

            write_zarr(
                tmp, array, spacing=spacing, unit=unit, chunks=chunks, is_labels=is_labels, name=target.stem
            )
        else:
            from .npy import write_npy

            write_npy(tmp, array, spacing=spacing, unit=unit, final=target)
    return target
