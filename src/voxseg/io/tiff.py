"""TIFF files: plain multi-page stacks, ImageJ hyperstacks and OME-TIFF (via tifffile).

Reading describes the first image series of a file (axes, voxel size,
unit) and hands :func:`voxseg.io.read` a :class:`TiffPages` view that reads
only the pages an index selects. tifffile reports damaged files partly by
logging instead of raising (and then returns zeros or a shorter series),
so its log records are watched while a file is parsed and read, and the
serious ones become :class:`~voxseg.errors.FormatError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import re
import threading
import uuid
from xml.etree import ElementTree

import numpy as np
import tifffile

from .._version import __version__
from ..errors import FormatError, ParameterError, VoxsegError
from . import KNOWN_AXES, _common_unit, _exception_text, _is_dask, _Source, normalise_unit

__all__ = ["open_tiff", "write_tiff", "TiffPages"]

#: Data types an ImageJ hyperstack can hold.
IMAGEJ_DTYPES = tuple(np.dtype(t) for t in ("uint8", "uint16", "float32"))
#: Data types OME-TIFF can hold (OME pixel types).
OME_DTYPES = tuple(
    np.dtype(t) for t in ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "float32", "float64")
)

_OME_UNITS = {"um": "\u00b5m", "angstrom": "\u00c5"}
_IMAGEJ_UNITS = {"um": "micron"}
# tifffile warnings that mean the data cannot be trusted (its errors always do)
_DAMAGE = re.compile(r"corrupt|truncat|missing|zeroed|incomplet|invalid|failed|not match|expected", re.I)


# -- reading -----------------------------------------------------------------


def open_tiff(path: str) -> _Source:
    """Describe the first image series of the TIFF file at `path`.

    Raises
    ------
    FormatError
        If the file is not a TIFF, or is damaged or truncated.
    """
    with _tiff_errors(path):
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise FormatError(f"{path}: the TIFF file holds no image")
            series = tif.series[0]
            axes = _axes(series.axes)
            if series.kind == "imagej":
                sizes, unit, kind = *_imagej_sizes(tif), "imagej-tiff"
            elif series.kind == "ome":
                sizes, unit, kind = *_ome_sizes(path, tif), "ome-tiff"
            elif series.kind == "shaped":
                sizes, unit, kind = *_shaped_sizes(tif, series), "tiff"
            else:
                sizes, unit, kind = {}, None, "tiff"
            pages = TiffPages.from_series(path, tif, series)
            n_series = len(tif.series)
    scale = tuple(sizes.get(a) if a in "ZYX" else None for a in axes)
    return _Source(
        pages,
        axes,
        scale,
        unit,
        kind,
        page_ndim=len(pages.page_shape),
        # sizes of axes the series squeezed away (a one-plane stack's z spacing)
        metadata={"sizes": sizes, **({"series": n_series} if n_series > 1 else {})},
    )


class TiffPages:
    """Array-like view of a TIFF series that reads only the pages an index needs.

    Indexing (integers and slices, one per axis) opens the file, reads the
    selected pages and closes it again: no file handle is held, and the
    object pickles to a few numbers, so dask can read blocks in threads or
    other processes. Uncompressed contiguous data are read through a
    read-only memory map; anything else through tifffile.
    """

    def __init__(self, path, shape, dtype, page_shape, *, offset=None, file_dtype=None, by_page=True):
        self.path = path
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self.page_shape = tuple(page_shape)
        self.offset = offset
        self.file_dtype = np.dtype(file_dtype or dtype)
        self.by_page = by_page
        stat = os.stat(path)
        self._stamp = (stat.st_mtime_ns, stat.st_size)

    @classmethod
    def from_series(cls, path, tif, series) -> "TiffPages":
        shape = tuple(series.shape)
        page_shape = tuple(series.keyframe.shape)
        lead = len(shape) - len(page_shape)
        by_page = lead >= 0 and shape[lead:] == page_shape and math.prod(shape[:lead]) == len(series)
        if not by_page:  # pages do not tile the series (volumetric tiles ...): read it whole
            page_shape = shape
        offset = None
        if by_page and series.dataoffset is not None and series.keyframe.is_memmappable:
            offset = series.dataoffset
            if offset + series.nbytes > os.path.getsize(path):
                raise FormatError(
                    f"{path}: truncated TIFF file (the image data end at byte "
                    f"{offset + series.nbytes}, the file has {os.path.getsize(path)} bytes)"
                )
        file_dtype = np.dtype(series.dtype).newbyteorder(tif.byteorder)
        return cls(path, shape, series.dtype, page_shape, offset=offset, file_dtype=file_dtype, by_page=by_page)

    def __getitem__(self, index):
        if not isinstance(index, tuple):
            index = (index,)
        index = index + (slice(None),) * (self.ndim - len(index))
        lead = self.ndim - len(self.page_shape)
        grid = np.arange(math.prod(self.shape[:lead]), dtype=np.intp).reshape(self.shape[:lead])
        grid = grid[index[:lead]]
        pages = self._read(grid.ravel())
        return pages.reshape(grid.shape + self.page_shape)[(Ellipsis, *index[lead:])]

    def _read(self, keys: np.ndarray) -> np.ndarray:
        expected = (len(keys), *self.page_shape)
        if not len(keys):
            return np.empty(expected, self.dtype)
        if self.offset is not None and np.array_equal(keys, np.arange(keys[0], keys[0] + len(keys))):
            # consecutive pages: one read into the result (a memory map would copy page fault by page fault)
            data = np.empty(expected, self.file_dtype)
            with _tiff_errors(self.path), open(self.path, "rb") as f:
                f.seek(self.offset + int(keys[0]) * math.prod(self.page_shape) * self.file_dtype.itemsize)
                if f.readinto(memoryview(data).cast("B")) != data.nbytes:
                    raise FormatError(f"{self.path}: truncated TIFF file")
            return data.view(self.dtype) if data.dtype.isnative else data.astype(self.dtype)
        if self.offset is not None:
            n_pages = math.prod(self.shape) // math.prod(self.page_shape)
            with _tiff_errors(self.path):
                mapped = np.memmap(
                    self.path, dtype=self.file_dtype, mode="r", offset=self.offset, shape=(n_pages, *self.page_shape)
                )
                data = mapped[keys]  # a copy: the map is released with `mapped`
                del mapped
            return data.view(self.dtype) if data.dtype.isnative else data.astype(self.dtype)
        with _tiff_errors(self.path), tifffile.TiffFile(self.path) as tif:
            if self.by_page:
                data = tif.asarray(key=keys.tolist(), series=0)
            else:
                data = tif.series[0].asarray()
        if data.size != math.prod(expected):
            raise FormatError(
                f"{self.path}: truncated or damaged TIFF file (read {data.size} values, "
                f"expected {math.prod(expected)})"
            )
        return data.reshape(expected)

    def __dask_tokenize__(self):
        return (type(self).__name__, os.path.abspath(self.path), self._stamp, self.shape, self.dtype.str)

    def __repr__(self):
        return f"TiffPages({self.path!r}, shape={self.shape}, dtype={self.dtype})"


def _axes(axes: str) -> str:
    """tifffile axes -> voxseg letters; axes voxseg has no name for become 'Q' (unknown)."""
    return "".join(a if a in KNOWN_AXES else "Q" for a in axes)


def _imagej_sizes(tif) -> tuple[dict, str | None]:
    """Voxel size from ImageJ metadata: z from 'spacing', y/x from the resolution tags."""
    meta = tif.imagej_metadata or {}
    page = tif.pages.first
    xres, yres = _resolution(page, "XResolution"), _resolution(page, "YResolution")
    unit = normalise_unit(str(meta["unit"])) if meta.get("unit") else None
    calibrated = unit not in (None, "pixel") or "spacing" in meta or xres != 1 or yres != 1
    if not calibrated:
        return {}, None
    sizes = {"Z": float(meta.get("spacing", 1.0)), "Y": 1.0 / yres, "X": 1.0 / xres}
    return sizes, unit


def _resolution(page, name: str) -> float:
    """Pixels per unit from a rational resolution tag (1 when missing or invalid)."""
    tag = page.tags.get(name)
    if tag is None:
        return 1.0
    value = tag.value
    numerator, denominator = value if isinstance(value, tuple) else (value, 1)
    if not numerator or not denominator:
        return 1.0
    return numerator / denominator


def _ome_sizes(path: str, tif) -> tuple[dict, str | None]:
    """Voxel size from the PhysicalSizeX/Y/Z attributes of the first OME image."""
    try:
        root = ElementTree.fromstring(tif.ome_metadata)
    except ElementTree.ParseError as exc:
        raise FormatError(f"{path}: invalid OME-XML metadata ({exc})") from exc
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return {}, None
    sizes, units = {}, {}
    for a in "ZYX":
        value = pixels.get(f"PhysicalSize{a}")
        if value is not None:
            sizes[a] = float(value)
            units[a] = normalise_unit(pixels.get(f"PhysicalSize{a}Unit", "\u00b5m"))  # OME default
    return _common_unit(path, sizes, units)


def _shaped_sizes(tif, series) -> tuple[dict, str | None]:
    """Voxel size stored by write_tiff in the JSON description of a "shaped" TIFF."""
    meta = (tif.shaped_metadata or ({},))[0]
    spacing = meta.get("spacing")
    if series.axes != "ZYX" or not isinstance(spacing, list) or len(spacing) != 3:
        return {}, None
    unit = meta.get("unit")
    return dict(zip("ZYX", map(float, spacing))), normalise_unit(unit) if isinstance(unit, str) else None


class _DamageLog(logging.Handler):
    """Collect tifffile log records of this thread that say the file is damaged."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.problems: list[str] = []

    def emit(self, record):
        if record.thread != self.thread:
            return
        message = record.getMessage()
        if record.levelno >= logging.ERROR or _DAMAGE.search(message):
            self.problems.append(message)


@contextlib.contextmanager
def _tiff_errors(path: str):
    """Turn tifffile exceptions and damage reports into FormatError naming `path`."""
    logger = logging.getLogger("tifffile")
    log = _DamageLog()
    logger.addHandler(log)
    try:
        yield
    except (VoxsegError, MemoryError, KeyboardInterrupt):
        raise
    except OSError as exc:  # permissions, I/O errors: not a format problem, but still a one-line message
        raise FormatError(f"{path}: cannot read the file ({exc.strerror or _exception_text(exc)})") from exc
    except Exception as exc:
        text = " ".join(str(exc).split())
        if text.startswith("not a TIFF file"):
            detail = text.removeprefix("not a TIFF file").strip(": ")
            raise FormatError(f"{path}: not a TIFF file ({detail or 'no TIFF header'})") from exc
        raise FormatError(f"{path}: unreadable or damaged TIFF file ({_exception_text(exc)})") from exc
    finally:
        logger.removeHandler(log)
    if log.problems:
        raise FormatError(f"{path}: damaged or truncated TIFF file ({_strip_repr(log.problems[0])})")


def _strip_repr(message: str) -> str:
    """Drop tifffile's object tags ('<tifffile.TiffPages @8>') from a log message."""
    return re.sub(r"\s+", " ", re.sub(r"<[^<>]*>", "", message)).strip()


# -- writing -----------------------------------------------------------------


def write_tiff(path, data, *, spacing=None, unit="um", ome=False, compression=None) -> None:
    """Write a (z, y, x) array as an ImageJ hyperstack, an OME-TIFF or a shaped TIFF.

    The flavour is ImageJ when the type allows it (uint8, uint16, float32)
    and `ome` is false; OME-TIFF for the other OME pixel types; else a
    tifffile "shaped" TIFF whose JSON description holds the spacing. A dask
    array is written plane by plane, one block of planes in memory at a time.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create (normally the temporary path of an atomic write).
    data : numpy.ndarray or dask.array.Array
        Shape (z, y, x).
    spacing : tuple of 3 floats, optional
        Voxel size (z, y, x) in `unit`; None writes no calibration.
    unit : str
        Normalised unit name.
    ome : bool
        Write OME-TIFF even for ImageJ-compatible types.
    compression : {None, "zlib"}
        Deflate compression (read by ImageJ, Fiji, Bio-Formats and tifffile).

    Notes
    -----
    The output is deterministic: no DateTime tag, a fixed Software tag and,
    for OME-TIFF, a UUID derived from the content instead of a random one.
    """
    dtype = np.dtype(data.dtype)
    if ome and dtype not in OME_DTYPES:
        raise ParameterError(f"OME-TIFF cannot hold data of type {dtype}; write .tif, .zarr or .npy, got {path!r}")
    planes = _planes(data) if _is_dask(data) else data
    options = dict(shape=tuple(data.shape), dtype=dtype, photometric="minisblack", software="voxseg", datetime=None,
                   compression=compression)
    if compression:
        from .._threads import thread_count

        # strips of about 512 kB, compressed on all cores (the bytes do not depend on the thread count), at
        # deflate level 3: on label images 35 % less CPU time than the default level 6 for 7 % more bytes
        options.update(rowsperstrip=max(1, (1 << 19) // max(1, data.shape[-1] * dtype.itemsize)),
                       maxworkers=thread_count(), compressionargs={"level": 3})
    # ImageJ hyperstacks lose axes of length 1 (a one-pixel-wide plane comes back transposed): use OME there
    if dtype in IMAGEJ_DTYPES and not ome and min(data.shape) > 1:
        metadata = {"axes": "ZYX"}
        if spacing is not None:
            metadata.update(spacing=spacing[0], unit=_IMAGEJ_UNITS.get(unit, unit))
            options["resolution"] = (1.0 / spacing[2], 1.0 / spacing[1])
        tifffile.imwrite(path, planes, imagej=True, metadata=metadata, **options)
    elif dtype in OME_DTYPES:
        metadata = {"axes": "ZYX", "UUID": _content_uuid(data, spacing, unit), "Creator": f"voxseg {__version__}"}
        if spacing is not None:
            for a, size in zip("ZYX", spacing):
                metadata[f"PhysicalSize{a}"] = size
                metadata[f"PhysicalSize{a}Unit"] = _OME_UNITS.get(unit, unit)
        tifffile.imwrite(path, planes, ome=True, metadata=metadata, **options)
    else:
        metadata = {"axes": "ZYX"}
        if spacing is not None:
            metadata.update(spacing=list(spacing), unit=unit)
        tifffile.imwrite(path, planes, ome=False, shaped=True, metadata=metadata, **options)


def _planes(data):
    """Yield the z planes of a dask array, computing one block of planes at a time."""
    data = data.rechunk({1: -1, 2: -1})
    for i in range(data.numblocks[0]):
        yield from np.asarray(data.blocks[i])


def _content_uuid(data, spacing, unit) -> str:
    """A UUID that depends only on the content (for byte-identical OME-TIFF output)."""
    if _is_dask(data):
        digest = data.name  # dask names are content tokens
    else:
        digest = hashlib.blake2b(np.ascontiguousarray(data).data, digest_size=16).hexdigest()
    text = f"voxseg:{data.shape}:{np.dtype(data.dtype).str}:{spacing}:{unit}:{digest}"
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, text)}"
