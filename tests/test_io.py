"""Tests of voxseg.io: reading every format with its spacing, writing round trips, errors."""

import hashlib
import json
import os
from pathlib import Path

import dask.array as da
import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import zarr

import voxseg.io as vio
from voxseg.errors import (
    FormatError,
    InputNotFoundError,
    OutputExistsError,
    ParameterError,
    VolumeTooLargeError,
)
from voxseg.io import read, write_labels, write_volume
from voxseg.volume import Volume

SAMPLE = Path("/work/shared/data/nuclei.tif")
SPACINGS = [(2.0, 0.5, 0.5), (0.29, 0.26, 0.26)]


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def _volume(rng, dtype, shape=(5, 12, 9)):
    dtype = np.dtype(dtype)
    if dtype == bool:
        return rng.random(shape) > 0.5
    if dtype.kind == "f":
        return rng.normal(size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def _labels(rng, top, dtype, shape=(4, 10, 11)):
    labels = rng.integers(0, 5, size=shape).astype(dtype)
    labels[labels == 4] = top  # a few large labels
    return labels


def _digest(path):
    """Hash of a file, or of every file under a directory."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path)).encode() if path.is_dir() else b"")
        h.update(f.read_bytes())
    return h.hexdigest()


def _entries(directory):
    return sorted(os.listdir(directory))


# -- round trips ---------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".tif", ".ome.tif", ".zarr", ".npy"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("spacing", SPACINGS)
def test_volume_round_trip(tmp_path, rng, suffix, dtype, spacing):
    data = _volume(rng, dtype)
    path = write_volume(tmp_path / f"vol{suffix}", data, spacing=spacing)
    vol = read(path, lazy=False)
    assert isinstance(vol, Volume)
    assert type(vol.data) is np.ndarray
    assert vol.dtype == data.dtype
    np.testing.assert_array_equal(vol.data, data)
    assert vol.spacing == pytest.approx(spacing, rel=1e-12)
    assert vol.unit == "um"
    assert vol.spacing_source == "metadata"
    assert vol.axes == "ZYX"
    assert vol.path == str(path)


@pytest.mark.parametrize("suffix", [".tif", ".ome.tif", ".zarr", ".npy"])
def test_lazy_read_matches_eager(tmp_path, rng, suffix):
    data = _volume(rng, "uint16", shape=(7, 16, 13))
    path = write_volume(tmp_path / f"vol{suffix}", data, spacing=(3, 1, 1))
    vol = read(path, lazy=True)
    assert isinstance(vol.data, da.Array)
    assert vol.is_lazy
    np.testing.assert_array_equal(vol.data.compute(), data)
    assert vol.spacing == (3.0, 1.0, 1.0)


@pytest.mark.parametrize("dtype", ["bool", "int8", "int16", "int32", "uint32", "float64", "int64", "uint64", "float16"])
def test_volume_round_trip_other_types_tiff(tmp_path, rng, dtype):
    data = _volume(rng, dtype)
    path = write_volume(tmp_path / "vol.tif", data, spacing=(1.5, 0.5, 0.25), unit="nm")
    vol = read(path)
    assert vol.dtype == data.dtype
    np.testing.assert_array_equal(vol.data, data)
    assert vol.spacing == (1.5, 0.5, 0.25)
    assert vol.unit == "nm"
    assert vol.spacing_source == "metadata"


@pytest.mark.parametrize("suffix", [".tif", ".zarr", ".npy"])
@pytest.mark.parametrize(
    "top, dtype", [(300, np.uint16), (65535, np.uint16), (70000, np.uint32), (2**32 - 1, np.uint32)]
)
def test_labels_round_trip(tmp_path, rng, suffix, top, dtype):
    labels = _labels(rng, top, dtype)
    path = write_labels(tmp_path / f"labels{suffix}", labels, spacing=(2.0, 0.26, 0.26))
    vol = read(path, lazy=False)
    assert vol.dtype == dtype
    np.testing.assert_array_equal(vol.data, labels)
    assert int(vol.data.max()) == top
    assert vol.spacing == (2.0, 0.26, 0.26)
    assert vol.spacing_source == "metadata"


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64, bool])
def test_tiff_labels_are_uint16_when_they_fit(tmp_path, rng, dtype):
    labels = _labels(rng, 1, dtype)
    vol = read(write_labels(tmp_path / "labels.tif", labels, spacing=1))
    assert vol.dtype == np.uint16
    np.testing.assert_array_equal(vol.data, labels.astype(np.uint16))
    with tifffile.TiffFile(tmp_path / "labels.tif") as tif:
        assert tif.is_imagej
        assert tif.series[0].axes == "ZYX"


def test_large_tiff_labels_are_uint32_ome(tmp_path, rng):
    labels = _labels(rng, 65536, np.int64)
    path = write_labels(tmp_path / "labels.tif", labels, spacing=(2, 1, 1))
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome and not tif.is_imagej
        assert tif.series[0].dtype == np.uint32
    assert read(path).dtype == np.uint32


@pytest.mark.parametrize("suffix", [".zarr", ".npy"])
def test_zarr_and_npy_labels_keep_their_type(tmp_path, rng, suffix):
    labels = _labels(rng, 7, np.int32)
    vol = read(write_labels(tmp_path / f"l{suffix}", labels), lazy=False)
    assert vol.dtype == np.int32


@pytest.mark.parametrize("suffix", [".tif", ".zarr", ".npy"])
@pytest.mark.parametrize("dtype, expected", [(np.uint16, np.uint16), (np.int32, np.uint32)])
def test_dask_labels_written_blockwise(tmp_path, rng, suffix, dtype, expected):
    labels = _labels(rng, 9, dtype, shape=(9, 20, 17))
    lazy = da.from_array(labels, chunks=(4, 7, 9))
    path = write_labels(tmp_path / f"labels{suffix}", lazy, spacing=(1, 2, 3))
    vol = read(path, lazy=False)
    np.testing.assert_array_equal(vol.data, labels)
    assert vol.dtype == (expected if suffix == ".tif" else dtype)
    assert vol.spacing == (1.0, 2.0, 3.0)


def test_dask_labels_out_of_range_for_tiff(tmp_path):
    labels = da.from_array(np.full((2, 3, 3), -1, np.int32), chunks=1)
    with pytest.raises(ParameterError, match="labels must be >= 0"):
        write_labels(tmp_path / "labels.tif", labels)
    assert _entries(tmp_path) == []


@pytest.mark.parametrize("suffix", [".tif", ".ome.tif", ".zarr", ".npy"])
def test_no_spacing_reads_back_as_default(tmp_path, rng, suffix):
    data = _volume(rng, "uint8")
    vol = read(write_volume(tmp_path / f"v{suffix}", data), lazy=False)
    assert vol.spacing == (1.0, 1.0, 1.0)
    assert vol.spacing_source == "default"
    assert vol.unit == "pixel"


@pytest.mark.parametrize("suffix", [".tif", ".ome.tif", ".zarr", ".npy"])
def test_writers_are_deterministic(tmp_path, rng, suffix):
    labels = _labels(rng, 70000, np.uint32)
    volume = _volume(rng, "uint16")
    for attempt in ("first", "second"):
        write_labels(tmp_path / attempt / f"labels{suffix}", labels, spacing=(2, 1, 1))
        write_volume(tmp_path / attempt / f"volume{suffix}", volume, spacing=(2, 1, 1))
    for name in (f"labels{suffix}", f"volume{suffix}"):
        assert _digest(tmp_path / "first" / name) == _digest(tmp_path / "second" / name)


def test_tiff_has_no_timestamp(tmp_path, rng):
    path = write_labels(tmp_path / "labels.tif", _labels(rng, 3, np.uint16), spacing=1)
    with tifffile.TiffFile(path) as tif:
        assert "DateTime" not in tif.pages.first.tags


def test_imagej_output_metadata(tmp_path, rng):
    path = write_labels(tmp_path / "labels.tif", _labels(rng, 3, np.uint16), spacing=(0.29, 0.26, 0.25))
    with tifffile.TiffFile(path) as tif:
        meta = tif.imagej_metadata
        assert meta["spacing"] == pytest.approx(0.29)
        assert meta["unit"] in ("micron", "um")
        x = tif.pages.first.tags["XResolution"].value
        y = tif.pages.first.tags["YResolution"].value
        assert x[1] / x[0] == pytest.approx(0.25)
        assert y[1] / y[0] == pytest.approx(0.26)


@pytest.mark.parametrize(
    "unit, ngff", [("um", "micrometer"), ("nm", "nanometer"), ("mm", "millimeter"), ("pixel", None)]
)
def test_ome_zarr_output_metadata(tmp_path, rng, unit, ngff):
    path = write_labels(tmp_path / "labels.zarr", _labels(rng, 3, np.uint16), spacing=(2, 0.5, 0.5), unit=unit)
    assert (path / ".zgroup").exists()  # Zarr format 2, as NGFF 0.4 requires
    attrs = json.loads((path / ".zattrs").read_text())
    multiscale = attrs["multiscales"][0]
    assert multiscale["version"] == "0.4"
    assert [a["name"] for a in multiscale["axes"]] == ["z", "y", "x"]
    assert all(a["type"] == "space" for a in multiscale["axes"])
    assert [a.get("unit") for a in multiscale["axes"]] == [ngff] * 3
    assert multiscale["datasets"] == [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [2.0, 0.5, 0.5]}]}
    ]
    assert "image-label" in attrs
    assert json.loads((path / "0" / ".zarray").read_text())["dimension_separator"] == "/"
    vol = read(path)
    assert vol.unit == unit
    assert vol.spacing == (2.0, 0.5, 0.5)


def test_ome_zarr_volume_has_no_label_attribute(tmp_path, rng):
    path = write_volume(tmp_path / "v.zarr", _volume(rng, "float32"), spacing=1)
    assert "image-label" not in json.loads((path / ".zattrs").read_text())


def test_zarr_chunks_option(tmp_path, rng):
    path = write_labels(tmp_path / "l.zarr", _labels(rng, 3, np.uint16), chunks=(2, 5, 5))
    assert zarr.open_array(str(path / "0"), mode="r").chunks == (2, 5, 5)
    with pytest.raises(ParameterError, match="chunks"):
        write_labels(tmp_path / "m.zarr", _labels(rng, 3, np.uint16), chunks=(0, 5))


# -- ImageJ, OME-TIFF, plain TIFF ------------------------------------------------


@pytest.fixture
def hyperstack(tmp_path, rng):
    data = rng.integers(0, 4000, size=(6, 3, 16, 20), dtype=np.uint16)
    path = tmp_path / "cells.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.26, 1 / 0.25),
        metadata={"axes": "ZCYX", "spacing": 0.29, "unit": "micron"},
    )
    return path, data


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("channel", [0, 2])
def test_imagej_hyperstack_channel(hyperstack, channel, lazy):
    path, data = hyperstack
    vol = read(path, channel=channel, lazy=lazy)
    np.testing.assert_array_equal(np.asarray(vol.data), data[:, channel])
    assert vol.spacing == pytest.approx((0.29, 0.25, 0.26))
    assert vol.unit == "um"
    assert vol.spacing_source == "metadata"
    assert vol.axes == "ZCYX"
    assert vol.metadata["channels"] == 3


def test_channel_required(hyperstack):
    path, _ = hyperstack
    with pytest.raises(ParameterError) as info:
        read(path)
    message = str(info.value)
    assert str(path) in message and "3 channels" in message and "channel=" in message


@pytest.mark.parametrize("channel", [3, -1, 10])
def test_channel_out_of_range(hyperstack, channel):
    path, _ = hyperstack
    with pytest.raises(ParameterError) as info:
        read(path, channel=channel)
    assert str(path) in str(info.value)
    assert repr(channel) in str(info.value)


def test_channel_of_single_channel_image(tmp_path, rng):
    path = write_volume(tmp_path / "v.tif", _volume(rng, "uint8"))
    assert read(path, channel=0).shape == (5, 12, 9)
    with pytest.raises(ParameterError, match="v.tif: channel must be from 0 to 0"):
        read(path, channel=1)
    with pytest.raises(ParameterError, match="channel must be an integer"):
        read(path, channel="1")


@pytest.mark.parametrize("unit", ["micron", "um", "\\u00B5m", "microns"])  # ImageJ escapes "µ"
def test_imagej_unit_spellings(tmp_path, rng, unit):
    path = tmp_path / "u.tif"
    tifffile.imwrite(path, _volume(rng, "uint8"), imagej=True, metadata={"axes": "ZYX", "spacing": 2.0, "unit": unit})
    vol = read(path)
    assert vol.unit == "um"
    assert vol.spacing == (2.0, 1.0, 1.0)


def test_imagej_time_series_refused(tmp_path, rng):
    path = tmp_path / "movie.tif"
    data = rng.integers(0, 9, size=(3, 4, 8, 8), dtype=np.uint8)
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZYX"})
    with pytest.raises(FormatError, match="movie.tif: time series are not supported"):
        read(path)


def test_imagej_single_time_point_is_squeezed(tmp_path, rng):
    data = rng.integers(0, 9, size=(1, 4, 2, 8, 8), dtype=np.uint8)
    path = tmp_path / "t1.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZCYX"})
    vol = read(path, channel=1)
    np.testing.assert_array_equal(vol.data, data[0, :, 1])


def test_ome_tiff_spacing_and_units(tmp_path, rng):
    data = rng.integers(0, 9, size=(4, 2, 8, 10), dtype=np.uint16)
    path = tmp_path / "cells.ome.tif"
    tifffile.imwrite(
        path,
        data,
        ome=True,
        metadata={
            "axes": "ZCYX",
            "PhysicalSizeZ": 500.0,
            "PhysicalSizeZUnit": "nm",
            "PhysicalSizeY": 0.2,
            "PhysicalSizeYUnit": "\u00b5m",
            "PhysicalSizeX": 0.1,
        },
    )
    vol = read(path, channel=1)
    np.testing.assert_array_equal(vol.data, data[:, 1])
    assert vol.spacing == pytest.approx((0.5, 0.2, 0.1))
    assert vol.unit == "um"
    assert vol.metadata["format"] == "ome-tiff"


def test_ome_tiff_rgb_samples_need_channel(tmp_path, rng):
    data = rng.integers(0, 255, size=(3, 8, 10, 3), dtype=np.uint8)
    path = tmp_path / "rgb.ome.tif"
    tifffile.imwrite(path, data, ome=True, photometric="rgb", metadata={"axes": "ZYXS"})
    with pytest.raises(ParameterError, match="3 channels"):
        read(path)
    np.testing.assert_array_equal(read(path, channel=2).data, data[..., 2])


def test_plain_stack_is_zyx_with_default_spacing(tmp_path, rng):
    data = _volume(rng, "uint16")
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, data, photometric="minisblack", resolution=(72, 72), resolutionunit="INCH")
    vol = read(path)
    np.testing.assert_array_equal(vol.data, data)
    assert vol.spacing == (1.0, 1.0, 1.0)
    assert vol.spacing_source == "default"
    assert vol.unit == "pixel"
    assert vol.axes == "ZYX"


@pytest.mark.parametrize("lazy", [False, True])
def test_compressed_tiff(tmp_path, rng, lazy):
    data = rng.integers(0, 9, size=(5, 2, 16, 12), dtype=np.uint16)
    path = tmp_path / "zlib.tif"
    tifffile.imwrite(path, data, imagej=True, compression="zlib", metadata={"axes": "ZCYX"})
    vol = read(path, channel=1, lazy=lazy)
    np.testing.assert_array_equal(np.asarray(vol.data), data[:, 1])


def test_big_endian_tiff_reads_native(tmp_path, rng):
    data = _volume(rng, "uint16")
    path = tmp_path / "be.tif"
    tifffile.imwrite(path, data, byteorder=">", photometric="minisblack")
    for lazy in (False, True):
        vol = read(path, lazy=lazy)
        assert vol.dtype.isnative and vol.dtype == np.uint16
        np.testing.assert_array_equal(np.asarray(vol.data), data)


def test_four_d_tiff_with_unknown_axes(tmp_path, rng):
    data = rng.integers(0, 9, size=(3, 2, 8, 8), dtype=np.uint8)
    path = tmp_path / "q.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    with pytest.raises(FormatError) as info:
        read(path)
    assert str(info.value).startswith(f"{path}: the axes")
    assert 'axes="ZCYX"' in str(info.value) and "--axes" in str(info.value)
    np.testing.assert_array_equal(read(path, axes="ZCYX", channel=1).data, data[:, 1])


@pytest.mark.skipif(not SAMPLE.exists(), reason="sample data not available")
def test_sample_stack():
    vol = read(SAMPLE)
    assert vol.shape == (60, 256, 256)
    assert vol.dtype == np.uint16
    assert vol.spacing_source == "default"


# -- Zarr ------------------------------------------------------------------------


@pytest.fixture
def ngff05(tmp_path, rng):
    """A hand-made OME-Zarr 0.5 image (Zarr format 3), two channels, two levels."""
    data = rng.integers(0, 100, size=(2, 6, 10, 12), dtype=np.uint16)
    path = tmp_path / "image.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    axes = [
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": "micrometer"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    datasets = [
        {"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 2.0, 0.25, 0.25]}]},
        {"path": "s1", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 2.0, 0.5, 0.5]}]},
    ]
    root.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "name": "image",
                "axes": axes,
                "datasets": datasets,
                "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.5, 1.0, 1.0]}],
            }
        ],
    }
    root.create_array("s0", shape=data.shape, dtype=data.dtype, chunks=(1, 3, 5, 6))[...] = data
    root.create_array("s1", shape=(2, 6, 5, 6), dtype=data.dtype, chunks=(1, 3, 5, 6))[...] = data[:, :, ::2, ::2]
    return path, data


def test_ngff_05_group(ngff05):
    path, data = ngff05
    vol = read(path, channel=1)
    assert isinstance(vol.data, da.Array)  # Zarr is read lazily by default
    np.testing.assert_array_equal(vol.data.compute(), data[1])
    assert vol.spacing == pytest.approx((3.0, 0.25, 0.25))  # dataset scale x multiscale scale
    assert vol.unit == "um"
    assert vol.axes == "CZYX"
    assert vol.metadata["ngff_version"] == "0.5"
    eager = read(path, channel=0, lazy=False)
    assert type(eager.data) is np.ndarray
    np.testing.assert_array_equal(eager.data, data[0])


def test_ngff_array_path_inside_store(ngff05):
    path, data = ngff05
    vol = read(path / "s1", channel=0)
    np.testing.assert_array_equal(vol.data.compute(), data[0, :, ::2, ::2])
    assert vol.spacing == pytest.approx((3.0, 0.5, 0.5))
    assert vol.spacing_source == "metadata"


def test_ngff_channel_required(ngff05):
    path, _ = ngff05
    with pytest.raises(ParameterError, match="2 channels"):
        read(path)


def test_plain_zarr_array(tmp_path, rng):
    data = _volume(rng, "float32")
    path = tmp_path / "plain.zarr"
    zarr.create_array(str(path), shape=data.shape, dtype=data.dtype, chunks=(2, 6, 9))[...] = data
    vol = read(path)
    assert isinstance(vol.data, da.Array)
    np.testing.assert_array_equal(vol.data.compute(), data)
    assert vol.spacing_source == "default"
    assert vol.axes == "ZYX"


def test_plain_zarr_array_spacing_attribute(tmp_path, rng):
    data = _volume(rng, "uint8")
    path = tmp_path / "plain.zarr"
    array = zarr.create_array(str(path), shape=data.shape, dtype=data.dtype)
    array[...] = data
    array.attrs.update({"spacing": [4, 2, 1], "unit": "nm"})
    vol = read(path, lazy=False)
    assert vol.spacing == (4.0, 2.0, 1.0)
    assert vol.unit == "nm"
    assert vol.spacing_source == "metadata"


def test_plain_zarr_4d_needs_axes(tmp_path, rng):
    data = rng.integers(0, 9, size=(2, 3, 4, 5), dtype=np.uint8)
    path = tmp_path / "q.zarr"
    zarr.create_array(str(path), shape=data.shape, dtype=data.dtype)[...] = data
    with pytest.raises(FormatError, match="axes"):
        read(path)
    np.testing.assert_array_equal(read(path, axes="czyx", channel=1).data.compute(), data[1])


def test_zarr_group_without_array(tmp_path):
    path = tmp_path / "empty.zarr"
    zarr.open_group(str(path), mode="w")
    with pytest.raises(FormatError) as info:
        read(path)
    assert str(info.value).startswith(f"{path}: Zarr store holds no array")


def test_zarr_group_with_several_arrays(tmp_path):
    path = tmp_path / "many.zarr"
    root = zarr.open_group(str(path), mode="w")
    root.create_array("a", shape=(2, 2, 2), dtype="u1")
    root.create_array("b", shape=(2, 2, 2), dtype="u1")
    with pytest.raises(FormatError, match="several arrays"):
        read(path)
    assert read(path / "a").shape == (2, 2, 2)


# -- .npy, axes, 2D, dtypes -----------------------------------------------------


def test_npy_3d_is_zyx(tmp_path, rng):
    data = _volume(rng, "int16")
    path = tmp_path / "v.npy"
    np.save(path, data)
    vol = read(path)
    assert type(vol.data) is np.ndarray  # a copy, not a memory map of the input
    np.testing.assert_array_equal(vol.data, data)
    assert vol.spacing_source == "default"


def test_npy_stale_sidecar_ignored(tmp_path, rng):
    path = write_volume(tmp_path / "v.npy", _volume(rng, "uint8"), spacing=(2, 2, 2))
    np.save(path, _volume(rng, "uint8", shape=(2, 3, 4)))  # replaced by another tool
    assert read(path).spacing_source == "default"


def test_npy_overwrite_without_spacing_removes_sidecar(tmp_path, rng):
    data = _volume(rng, "uint8")
    path = write_volume(tmp_path / "v.npy", data, spacing=(2, 2, 2))
    write_volume(path, data, overwrite=True)
    assert _entries(tmp_path) == ["v.npy"]
    assert read(path).spacing_source == "default"


def test_unknown_axes_4d_npy(tmp_path, rng):
    data = rng.integers(0, 9, size=(3, 2, 6, 7), dtype=np.uint8)
    path = tmp_path / "v.npy"
    np.save(path, data)
    with pytest.raises(FormatError) as info:
        read(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "unknown" in message and 'axes="ZCYX"' in message
    vol = read(path, axes="ZCYX", channel=1)
    np.testing.assert_array_equal(vol.data, data[:, 1])
    assert vol.axes == "ZCYX"
    vol = read(path, axes="CZYX", channel=0)
    np.testing.assert_array_equal(vol.data, data[0])


def test_axes_reorder_to_zyx(tmp_path, rng):
    data = rng.integers(0, 9, size=(6, 7, 3), dtype=np.uint8)
    path = tmp_path / "yxz.npy"
    np.save(path, data)
    for lazy in (False, True):
        vol = read(path, axes="YXZ", lazy=lazy)
        np.testing.assert_array_equal(np.asarray(vol.data), data.transpose(2, 0, 1))


def test_length_one_unknown_axes_squeezed(tmp_path, rng):
    data = rng.integers(0, 9, size=(1, 4, 6, 7), dtype=np.uint8)
    path = tmp_path / "v.npy"
    np.save(path, data)
    np.testing.assert_array_equal(read(path).data, data[0])


@pytest.mark.parametrize("axes", ["ZYX", "ZZYX", "ZCYQ", "ZCY", 3])
def test_invalid_axes(tmp_path, rng, axes):
    path = tmp_path / "v.npy"
    np.save(path, rng.integers(0, 9, size=(3, 2, 6, 7), dtype=np.uint8))
    with pytest.raises(ParameterError, match="axes must name each of the 4 axes"):
        read(path, axes=axes)


@pytest.mark.parametrize("kind", ["tif", "npy", "png", "zarr"])
def test_2d_input_is_one_plane(tmp_path, rng, kind):
    data = rng.integers(0, 255, size=(9, 11), dtype=np.uint8)
    path = tmp_path / f"plane.{kind}"
    if kind == "tif":
        tifffile.imwrite(path, data)
    elif kind == "npy":
        np.save(path, data)
    elif kind == "png":
        iio.imwrite(path, data)
    else:
        zarr.create_array(str(path), shape=data.shape, dtype=data.dtype)[...] = data
    vol = read(path, lazy=False)
    assert vol.shape == (1, 9, 11)
    np.testing.assert_array_equal(vol.data[0], data)
    assert vol.spacing[0] == 1.0


def test_2d_imagej_keeps_xy_spacing(tmp_path, rng):
    path = tmp_path / "plane.tif"
    plane = _volume(rng, "uint8", shape=(6, 5))
    tifffile.imwrite(path, plane, imagej=True, resolution=(2.0, 4.0), metadata={"unit": "um"})
    vol = read(path)
    assert vol.shape == (1, 6, 5)
    assert vol.spacing == (1.0, 0.25, 0.5)
    assert vol.spacing_source == "metadata"


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_complex_refused(tmp_path, dtype):
    path = tmp_path / "c.npy"
    np.save(path, np.zeros((2, 3, 4), dtype))
    with pytest.raises(FormatError) as info:
        read(path)
    assert str(info.value).startswith(f"{path}: complex")


@pytest.mark.parametrize("dtype", ["bool", "int8", "uint64", "float16", "float64"])
def test_dtypes_accepted_as_is(tmp_path, rng, dtype):
    data = _volume(rng, dtype)
    path = tmp_path / "v.npy"
    np.save(path, data)
    vol = read(path)
    assert vol.dtype == np.dtype(dtype)


def test_nan_is_not_refused(tmp_path):
    path = tmp_path / "nan.npy"
    np.save(path, np.full((2, 2, 2), np.nan, np.float32))
    assert np.isnan(read(path).data).all()


def test_big_endian_npy_reads_native(tmp_path, rng):
    data = _volume(rng, "uint16").astype(">u2")
    path = tmp_path / "be.npy"
    np.save(path, data)
    vol = read(path)
    assert vol.dtype.isnative
    np.testing.assert_array_equal(vol.data, data)


def test_spacing_and_unit_overrides(tmp_path, rng):
    path = write_volume(tmp_path / "v.tif", _volume(rng, "uint8"), spacing=(2, 1, 1))
    vol = read(path, spacing=(3, 0.5, 0.5))
    assert vol.spacing == (3.0, 0.5, 0.5)
    assert vol.spacing_source == "user"
    assert vol.unit == "um"
    vol = read(path, unit="nm")
    assert (vol.spacing, vol.unit, vol.spacing_source) == ((2.0, 1.0, 1.0), "nm", "metadata")
    with pytest.raises(ParameterError, match="spacing"):
        read(path, spacing=(1, 0, 1))


# -- slices ------------------------------------------------------------------------


def _write_slices(folder, stack, suffix):
    folder.mkdir(exist_ok=True)
    for z, plane in enumerate(stack, start=1):
        if suffix == ".tif":
            tifffile.imwrite(folder / f"z{z}{suffix}", plane)
        else:
            iio.imwrite(folder / f"z{z}{suffix}", plane)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("lazy", [False, True])
def test_slice_folder_natural_order(tmp_path, rng, suffix, lazy):
    stack = rng.integers(0, 255, size=(12, 8, 9), dtype=np.uint8)  # z1 ... z12: natural, not z1, z10, z11, z12, z2
    _write_slices(tmp_path / "slices", stack, suffix)
    (tmp_path / "slices" / "notes.txt").write_text("not an image")
    vol = read(tmp_path / "slices", lazy=lazy)
    np.testing.assert_array_equal(np.asarray(vol.data), stack)
    assert vol.spacing_source == "default"
    assert vol.metadata["slices"] == 12


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_slice_glob(tmp_path, rng, suffix):
    stack = rng.integers(0, 255, size=(11, 5, 6), dtype=np.uint8)
    _write_slices(tmp_path / "s", stack, suffix)
    iio.imwrite(tmp_path / "s" / "other.bmp", stack[0])
    vol = read(str(tmp_path / "s" / f"z*{suffix}"), spacing=(4, 1, 1))
    np.testing.assert_array_equal(vol.data, stack)
    assert vol.spacing == (4.0, 1.0, 1.0)


def test_slice_glob_without_match(tmp_path):
    pattern = str(tmp_path / "*.png")
    with pytest.raises(InputNotFoundError, match="no file matches"):
        read(pattern)


def test_slice_folder_mixed_types(tmp_path, rng):
    _write_slices(tmp_path / "s", rng.integers(0, 9, size=(2, 4, 4), dtype=np.uint8), ".png")
    tifffile.imwrite(tmp_path / "s" / "z3.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(FormatError, match="mixes image types"):
        read(tmp_path / "s")


def test_slice_shape_mismatch(tmp_path, rng):
    _write_slices(tmp_path / "s", rng.integers(0, 9, size=(2, 4, 4), dtype=np.uint8), ".png")
    iio.imwrite(tmp_path / "s" / "z3.png", np.zeros((5, 4), np.uint8))
    with pytest.raises(FormatError) as info:
        read(tmp_path / "s")
    assert str(info.value).startswith(str(tmp_path / "s" / "z3.png"))


def test_rgb_slices_need_channel(tmp_path, rng):
    stack = rng.integers(0, 255, size=(3, 4, 5, 3), dtype=np.uint8)
    _write_slices(tmp_path / "rgb", stack, ".png")
    with pytest.raises(ParameterError, match="3 channels"):
        read(tmp_path / "rgb")
    np.testing.assert_array_equal(read(tmp_path / "rgb", channel=1).data, stack[..., 1])


def test_folder_without_slices(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "readme.txt").write_text("x")
    with pytest.raises(FormatError, match="holds no 2D image slices"):
        read(tmp_path / "d")


# -- errors ----------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.tif"
    with pytest.raises(InputNotFoundError) as info:
        read(path)
    assert str(info.value) == f"{path}: no such file or directory"
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("name", ["empty.tif", "empty.npy", "empty.xyz"])
def test_empty_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(FormatError) as info:
        read(path)
    assert str(info.value).startswith(f"{path}: empty file")


def test_text_file_named_tif(tmp_path):
    path = tmp_path / "notes.tif"
    path.write_text("this is not an image\n" * 5)
    with pytest.raises(FormatError) as info:
        read(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a TIFF file")
    assert "\n" not in message
    assert info.value.__cause__ is not None


def test_corrupt_npy(tmp_path):
    path = tmp_path / "bad.npy"
    path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(FormatError) as info:
        read(path)
    assert str(info.value).startswith(f"{path}: not a readable .npy file")


@pytest.mark.parametrize("writer", ["plain", "imagej", "ome", "zlib"])
@pytest.mark.parametrize("fraction", [0.3, 0.9])
def test_truncated_tiff(tmp_path, rng, writer, fraction):
    data = rng.integers(0, 60000, size=(10, 40, 50), dtype=np.uint16)
    full = tmp_path / "full.tif"
    options = {
        "plain": {"photometric": "minisblack"},
        "imagej": {"imagej": True, "metadata": {"axes": "ZYX"}},
        "ome": {"ome": True, "metadata": {"axes": "ZYX"}},
        "zlib": {"compression": "zlib", "photometric": "minisblack"},
    }[writer]
    tifffile.imwrite(full, data, **options)
    content = full.read_bytes()
    path = tmp_path / "cut.tif"
    path.write_bytes(content[: int(len(content) * fraction)])
    with pytest.raises(FormatError) as info:
        read(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message


def test_corrupt_compressed_data(tmp_path, rng):
    data = rng.integers(0, 60000, size=(4, 40, 50), dtype=np.uint16)
    path = tmp_path / "bad.tif"
    tifffile.imwrite(path, data, compression="zlib", photometric="minisblack")
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages[2].dataoffsets[0]
    content = bytearray(path.read_bytes())
    content[offset : offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(content))
    with pytest.raises(FormatError) as info:
        read(path)
    assert str(info.value).startswith(f"{path}: ")


def test_unknown_extension(tmp_path):
    path = tmp_path / "volume.xyz"
    path.write_text("hello")
    with pytest.raises(FormatError) as info:
        read(path)
    assert str(info.value).startswith(f"{path}: unknown file type .xyz")


def test_content_sniffing_without_extension(tmp_path, rng):
    data = _volume(rng, "uint8")
    tifffile.imwrite(tmp_path / "stack", data, photometric="minisblack")
    np.testing.assert_array_equal(read(tmp_path / "stack").data, data)
    with open(tmp_path / "array", "wb") as f:
        np.save(f, data)
    np.testing.assert_array_equal(read(tmp_path / "array").data, data)


# -- memory --------------------------------------------------------------------------


def test_available_memory_is_positive():
    available = vio._available_memory()
    assert available is None or available > 0


@pytest.mark.parametrize("suffix", [".tif", ".npy", ".zarr"])
def test_volume_too_large(tmp_path, rng, monkeypatch, suffix):
    data = _volume(rng, "uint16", shape=(10, 100, 100))  # 200 kB
    path = write_volume(tmp_path / f"big{suffix}", data)
    monkeypatch.setattr(vio, "_available_memory", lambda: 300_000)
    with pytest.raises(VolumeTooLargeError) as info:
        read(path, lazy=False)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "GB" in message and "--chunks" in message
    assert isinstance(info.value, MemoryError)
    vol = read(path, lazy=True)  # never refused
    np.testing.assert_array_equal(vol.data.compute(), data)
    monkeypatch.setattr(vio, "_available_memory", lambda: 500_000)
    assert read(path, lazy=False).shape == data.shape


def test_memory_check_counts_selected_channel_only(hyperstack, monkeypatch):
    path, data = hyperstack
    one_channel = data[:, 0].nbytes
    monkeypatch.setattr(vio, "_available_memory", lambda: int(2.5 * one_channel))
    assert read(path, channel=0).shape == data[:, 0].shape


# -- outputs -----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".tif", ".zarr", ".npy"])
def test_no_overwrite(tmp_path, rng, suffix):
    path = write_labels(tmp_path / f"l{suffix}", _labels(rng, 3, np.uint16), spacing=1)
    before = _digest(path)
    with pytest.raises(OutputExistsError, match="already exists"):
        write_labels(path, _labels(rng, 5, np.uint16))
    assert _digest(path) == before
    new = _labels(rng, 9, np.uint16)
    write_labels(path, new, overwrite=True)
    np.testing.assert_array_equal(np.asarray(read(path).data), new)


def test_failed_tiff_write_leaves_nothing(tmp_path, rng, monkeypatch):
    def broken_imwrite(file, *args, **kwargs):
        with open(file, "wb") as f:
            f.write(b"II*\0 partial")
        raise OSError("simulated failure half way")

    monkeypatch.setattr(tifffile, "imwrite", broken_imwrite)
    with pytest.raises(OSError, match="simulated"):
        write_labels(tmp_path / "out" / "labels.tif", _labels(rng, 3, np.uint16))
    assert _entries(tmp_path) == []


def test_failed_overwrite_keeps_previous_output(tmp_path, rng, monkeypatch):
    labels = _labels(rng, 3, np.uint16)
    path = write_labels(tmp_path / "labels.tif", labels, spacing=1)
    before = _digest(path)

    def broken_imwrite(file, *args, **kwargs):
        Path(file).write_bytes(b"II*\0")
        raise KeyboardInterrupt

    monkeypatch.setattr(tifffile, "imwrite", broken_imwrite)
    with pytest.raises(KeyboardInterrupt):
        write_labels(path, labels, overwrite=True)
    assert _entries(tmp_path) == ["labels.tif"]
    assert _digest(path) == before


def test_failed_zarr_write_leaves_nothing(tmp_path, rng):
    labels = da.from_array(np.full((4, 5, 6), -1, np.int8), chunks=2).map_blocks(_raise_on_block, dtype=np.int8)
    with pytest.raises(RuntimeError, match="block failed"):
        write_labels(tmp_path / "labels.zarr", labels)
    assert _entries(tmp_path) == []


def _raise_on_block(block):
    raise RuntimeError("block failed")


@pytest.mark.parametrize(
    "labels, match",
    [
        (np.zeros((2, 3), np.uint8), "3D"),
        (np.zeros((2, 3, 4), np.float32), "integer"),
        (np.full((2, 3, 4), -2, np.int16), ">= 0"),
        (np.full((2, 3, 4), 2**33, np.int64), "do not fit"),
    ],
)
def test_invalid_labels(tmp_path, labels, match):
    with pytest.raises(ParameterError, match=match):
        write_labels(tmp_path / "l.tif", labels)
    assert _entries(tmp_path) == []


@pytest.mark.parametrize("name", ["out.png", "out", "out.h5"])
def test_unknown_output_extension(tmp_path, name):
    with pytest.raises(ParameterError, match="must end in .tif, .tiff, .zarr or .npy"):
        write_volume(tmp_path / name, np.zeros((1, 2, 2), np.uint8))


def test_write_volume_rejects_complex(tmp_path):
    with pytest.raises(ParameterError, match="complex128"):
        write_volume(tmp_path / "c.tif", np.zeros((1, 2, 2), complex))


def test_ome_name_rejects_types_ome_cannot_hold(tmp_path):
    with pytest.raises(ParameterError, match="OME-TIFF cannot hold"):
        write_volume(tmp_path / "v.ome.tif", np.zeros((1, 2, 2), np.int64))
    assert _entries(tmp_path) == []


# -- inputs are never modified -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["imagej", "zlib", "npy", "zarr", "ngff05", "slices"])
@pytest.mark.parametrize("lazy", [False, True])
def test_inputs_unchanged_by_read(tmp_path, rng, ngff05, kind, lazy):
    data = _volume(rng, "uint16")
    if kind == "imagej":
        path = write_volume(tmp_path / "in.tif", data, spacing=(2, 1, 1))
    elif kind == "zlib":
        path = tmp_path / "in.tif"
        tifffile.imwrite(path, data, compression="zlib", photometric="minisblack")
    elif kind == "npy":
        path = write_volume(tmp_path / "in.npy", data, spacing=(2, 1, 1))
    elif kind == "zarr":
        path = write_volume(tmp_path / "in.zarr", data, spacing=(2, 1, 1))
    elif kind == "ngff05":
        path = ngff05[0]
    else:
        path = tmp_path / "slices"
        _write_slices(path, data.astype(np.uint8), ".png")
    before = _digest(path)
    stamp = os.stat(path).st_mtime_ns
    vol = read(path, lazy=lazy, channel=0)
    np.asarray(vol.data).sum()  # a lazy read reads its data now
    assert _digest(path) == before
    assert os.stat(path).st_mtime_ns == stamp
