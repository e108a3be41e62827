"""Zarr stores: OME-Zarr (NGFF 0.4 and 0.5) images and plain arrays (zarr-python v3).

Stores are always opened read-only. Of an OME-Zarr image, level 0 of the
first multiscale is read, with its voxel size from the ``scale``
coordinate transformations and its axis names and units from ``axes``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import FormatError, ParameterError, VoxsegError
from . import NGFF_UNITS, _common_unit, _exception_text, _is_dask, _Source, normalise_unit

__all__ = ["open_zarr", "write_zarr"]

#: Default chunk shape (z, y, x) of written arrays.
DEFAULT_CHUNKS = (64, 256, 256)
_TYPE_LETTERS = {"channel": "C", "time": "T"}


def open_zarr(path: str) -> _Source:
    """Describe the image of the Zarr store (or array inside a store) at `path`.

    Raises
    ------
    FormatError
        If `path` is not a readable Zarr store, or holds no array (or
        several, none of them described by OME-Zarr metadata).
    """
    import zarr

    try:
        node = zarr.open(store=path, mode="r")
    except (VoxsegError, MemoryError):
        raise
    except Exception as exc:
        raise FormatError(f"{path}: not a readable Zarr store ({_exception_text(exc)})") from exc

    if isinstance(node, zarr.Array):
        found = _parent_multiscale(path)
        if found is not None:
            multiscale, dataset = found
            return _ngff_source(path, node, multiscale, dataset)
        return _plain_source(path, node)

    attrs = node.attrs.asdict()
    ome = attrs["ome"] if isinstance(attrs.get("ome"), dict) else attrs
    multiscales = ome.get("multiscales")
    if multiscales:
        multiscale = multiscales[0]
        try:
            dataset = multiscale["datasets"][0]
            array = node[dataset["path"]]
        except (KeyError, IndexError, TypeError) as exc:
            raise FormatError(f"{path}: invalid OME-Zarr metadata, level 0 not found ({exc!r})") from exc
        return _ngff_source(path, array, multiscale, dataset, version=ome.get("version"))
    arrays = sorted(node.array_keys())
    if len(arrays) == 1:
        return _plain_source(path, node[arrays[0]])
    if not arrays:
        groups = sorted(node.group_keys())
        inside = f" (groups: {', '.join(groups)}; pass the path of an image inside it)" if groups else ""
        raise FormatError(f"{path}: Zarr store holds no array{inside}")
    raise FormatError(
        f"{path}: Zarr group holds several arrays ({', '.join(arrays)}) and no OME-Zarr "
        f"metadata; pass the path of one of them, e.g. {os.path.join(path, arrays[0])}"
    )


def _parent_multiscale(path: str):
    """Find the OME-Zarr multiscale of a parent group that lists the array at `path`."""
    import zarr

    here = Path(path).resolve()
    for parent in list(here.parents)[:4]:
        if not any((parent / marker).exists() for marker in ("zarr.json", ".zgroup", ".zattrs")):
            break
        try:
            attrs = zarr.open_group(store=str(parent), mode="r").attrs.asdict()
        except Exception:
            break
        ome = attrs["ome"] if isinstance(attrs.get("ome"), dict) else attrs
        relative = here.relative_to(parent).as_posix()
        for multiscale in ome.get("multiscales") or ():
            for dataset in multiscale.get("datasets", ()):
                if str(dataset.get("path", "")).strip("/") == relative:
                    return multiscale, dataset
    return None


def _ngff_source(path, array, multiscale, dataset, version=None) -> _Source:
    ndim = array.ndim
    axes_meta = multiscale.get("axes")
    if axes_meta is None:  # NGFF 0.1 / 0.2: always 5D t, c, z, y, x
        axes_meta = list("tczyx")[-ndim:] if ndim == 5 else []
    names = [a if isinstance(a, str) else a.get("name", "") for a in axes_meta]
    if len(names) != ndim:
        raise FormatError(f"{path}: OME-Zarr metadata name {len(names)} axes for a {ndim}D array")
    letters = "".join(_letter(a) for a in axes_meta)

    scale = np.ones(ndim)
    for transforms in (dataset.get("coordinateTransformations"), multiscale.get("coordinateTransformations")):
        for transform in transforms or ():
            if transform.get("type") == "scale" and "scale" in transform:
                values = np.asarray(transform["scale"], dtype=float)
                if values.shape != (ndim,):
                    raise FormatError(f"{path}: OME-Zarr scale {transform['scale']} does not match {ndim} axes")
                scale = scale * values
    spatial = [i for i, a in enumerate(letters) if a in "ZYX"]
    units = {
        i: normalise_unit(axes_meta[i]["unit"])
        for i in spatial
        if isinstance(axes_meta[i], dict) and axes_meta[i].get("unit")
    }
    sizes = {i: float(scale[i]) for i in spatial}
    if not units and all(s == 1.0 for s in sizes.values()):
        sizes = {}  # no unit and unit scale: nothing is known
    sizes, unit = _common_unit(path, sizes, units)
    metadata = {"level": dataset.get("path")}
    version = version or multiscale.get("version")
    if version:
        metadata["ngff_version"] = str(version)
    return _Source(
        array,
        letters,
        tuple(sizes.get(i) for i in range(ndim)),
        unit,
        "ome-zarr",
        page_ndim=0,
        metadata=metadata,
    )


def _letter(axis) -> str:
    if isinstance(axis, str):
        name, kind = axis, None
    else:
        name, kind = str(axis.get("name", "")), axis.get("type")
    if name.lower() in ("z", "y", "x") and kind in (None, "space"):
        return name.upper()
    if kind in _TYPE_LETTERS:
        return _TYPE_LETTERS[kind]
    return {"c": "C", "t": "T"}.get(name.lower(), "Q")


def _plain_source(path, array) -> _Source:
    """A Zarr array without OME metadata: axes from its dimension names, else unknown."""
    ndim = array.ndim
    attrs = array.attrs.asdict()
    names = getattr(array.metadata, "dimension_names", None) or attrs.get("_ARRAY_DIMENSIONS")
    if names and len(names) == ndim and all(isinstance(n, str) for n in names):
        letters = "".join(_letter(n) for n in names)
    else:
        letters = "Q" * (ndim - 2) + "YX" if ndim >= 2 else "Q" * ndim
    spacing = attrs.get("spacing")
    scale = (None,) * ndim
    if isinstance(spacing, (list, tuple)) and len(spacing) == ndim:
        scale = tuple(float(s) for s in spacing)
        if "Q" in letters and ndim == 3:
            letters = "ZYX"  # a spacing for each of 3 axes: voxseg's (z, y, x) convention
    unit = attrs.get("unit")
    return _Source(
        array,
        letters,
        scale,
        normalise_unit(unit) if isinstance(unit, str) else None,
        "zarr",
        page_ndim=0,
    )


# -- writing -----------------------------------------------------------------


def write_zarr(path, data, *, spacing=None, unit="um", chunks=None, is_labels=False, name=None) -> None:
    """Write a (z, y, x) array as a one-level OME-Zarr image (NGFF 0.4, Zarr format 2).

    Parameters
    ----------
    path : str or os.PathLike
        The store to create (normally the temporary path of an atomic write).
    data : numpy.ndarray or dask.array.Array
        Shape (z, y, x); a dask array is stored block by block.
    spacing : tuple of 3 floats, optional
        Voxel size (z, y, x) in `unit`; None writes a unit scale and no unit.
    unit : str
        Normalised unit, written under its NGFF name (``"um"`` ->
        ``"micrometer"``); ``"pixel"`` writes no unit.
    chunks : int or sequence of 3 ints, optional
        Chunk shape; default: the dask chunks, else up to 64 x 256 x 256.
    is_labels : bool
        Add the ``image-label`` attribute of an NGFF label image.
    name : str, optional
        Name of the multiscale.
    """
    import zarr

    shape = tuple(int(n) for n in data.shape)
    chunks = _chunks(data, chunks)
    axes = []
    for a in "zyx":
        axis = {"name": a, "type": "space"}
        if spacing is not None and unit in NGFF_UNITS:
            axis["unit"] = NGFF_UNITS[unit]
        elif spacing is not None and unit != "pixel":
            axis["unit"] = unit
        axes.append(axis)
    multiscale = {
        "version": "0.4",
        "name": name or Path(path).stem,
        "axes": axes,
        "datasets": [
            {
                "path": "0",
                "coordinateTransformations": [
                    {"type": "scale", "scale": [float(s) for s in (spacing or (1.0, 1.0, 1.0))]}
                ],
            }
        ],
    }
    attrs = {"multiscales": [multiscale]}
    if is_labels:
        attrs["image-label"] = {"version": "0.4"}
    root = zarr.open_group(store=str(path), mode="w-", zarr_format=2)
    root.attrs.update(attrs)
    array = root.create_array(
        "0",
        shape=shape,
        dtype=data.dtype,
        chunks=chunks,
        fill_value=0,
        chunk_key_encoding={"name": "v2", "separator": "/"},
    )
    if _is_dask(data):
        import dask.array as da

        # One dask block per Zarr chunk, so blocks never share a chunk and can be
        # written in parallel without a lock. (da.to_zarr would rechunk to "auto"
        # blocks, and warns when those are not multiples of the Zarr chunks.)
        da.store(data.rechunk(chunks), array, lock=False)
    else:
        array[...] = data


def _chunks(data, chunks) -> tuple[int, int, int]:
    if chunks is None:
        if _is_dask(data) and all(len(set(c[:-1])) <= 1 for c in data.chunks):
            return tuple(c[0] for c in data.chunks)
        return tuple(max(1, min(n, c)) for n, c in zip(data.shape, DEFAULT_CHUNKS))
    values = (chunks,) * 3 if np.ndim(chunks) == 0 else tuple(chunks)
    if len(values) != 3 or not all(isinstance(c, (int, np.integer)) and c > 0 for c in values):
        raise ParameterError(f"chunks must be a positive integer or 3 positive integers (z, y, x), got {chunks!r}")
    return tuple(int(c) for c in values)
