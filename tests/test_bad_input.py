"""Bad input through the command line: a one-line error (exit 2) or a valid result, never a traceback.

Every case also checks that no output is left behind, and the input is unchanged.
"""

import json

import numpy as np
import pytest
import tifffile

from voxseg.testing import invoke_cli


cli = invoke_cli


def assert_user_error(code, err, *fragments):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("voxseg: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def small_volume(dtype=np.uint16):
    from voxseg.testing import sphere_pack

    vol = sphere_pack(shape=(24, 24, 24), diameter=8.0, attempts=300, seed=1)
    image = vol.image.astype(np.float64)
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        image = np.clip(image / 255 * min(info.max, 60000), info.min, info.max)
    return image.astype(dtype)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- files that are not volumes ------------------------------------------------------------

@pytest.mark.parametrize("name, content, fragment", [
    ("empty.tif", b"", "empty.tif"),
    ("text.tif", b"hello, not a tiff\n" * 10, "text.tif"),
    ("data.xyz", b"\x00\x01\x02", "data.xyz"),
    ("empty.npy", b"", "empty.npy"),
], ids=["empty", "text-as-tif", "unknown-extension", "empty-npy"])
def test_unreadable_files(workdir, name, content, fragment):
    (workdir / name).write_bytes(content)
    code, _, err = cli("segment", name, "-o", "out")
    assert_user_error(code, err, fragment)
    assert not (workdir / "out").exists()


def test_truncated_tiff(workdir):
    tifffile.imwrite("full.tif", small_volume())
    data = (workdir / "full.tif").read_bytes()
    (workdir / "cut.tif").write_bytes(data[: len(data) // 2])
    code, _, err = cli("segment", "cut.tif", "-o", "out")
    assert_user_error(code, err, "cut.tif")
    assert not (workdir / "out").exists()


def test_zarr_store_without_array(workdir):
    import zarr

    zarr.open_group("empty.zarr", mode="w")
    code, _, err = cli("segment", "empty.zarr", "-o", "out")
    assert_user_error(code, err, "empty.zarr")


def test_missing_input(workdir):
    code, _, err = cli("segment", "nope.tif", "-o", "out")
    assert_user_error(code, err, "nope.tif", "no such file")


# -- shapes and channels --------------------------------------------------------------------

def test_2d_image_is_a_one_plane_volume(workdir):
    image = small_volume()[12]
    tifffile.imwrite("plane.tif", image)
    code, _, err = cli("segment", "plane.tif", "-o", "out", "--diameter", "8")
    assert code == 0, err
    summary = json.loads((workdir / "out" / "summary.json").read_text())
    assert summary["shape"] == [1, 24, 24]


def test_4d_without_channel_and_channel_out_of_range(workdir):
    data = np.stack([small_volume(), small_volume()], axis=1)  # Z C Y X
    tifffile.imwrite("two.tif", data, imagej=True, metadata={"axes": "ZCYX"})
    code, _, err = cli("segment", "two.tif", "-o", "out")
    assert_user_error(code, err, "two.tif", "channel")
    code, _, err = cli("segment", "two.tif", "-o", "out", "--channel", "5")
    assert_user_error(code, err, "two.tif", "channel")
    code, _, err = cli("segment", "two.tif", "-o", "out", "--channel", "1", "--diameter", "8")
    assert code == 0, err


def test_4d_npy_needs_axes(workdir):
    np.save("four.npy", np.zeros((2, 3, 8, 8), np.uint8))
    code, _, err = cli("segment", "four.npy", "-o", "out")
    assert_user_error(code, err, "four.npy", "--axes")


# -- dtypes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                                   np.int64, np.uint64, np.float16, np.float32, np.float64])
def test_every_real_dtype_gives_a_valid_result(workdir, dtype):
    image = small_volume(np.float64)
    if dtype is np.bool_:
        image = image > image.mean()
    elif np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        image = np.clip(image / 255 * min(info.max, 2**20), info.min, info.max)
    np.save("vol.npy", image.astype(dtype))
    code, out, err = cli("segment", "vol.npy", "-o", "out", "--diameter", "8", "--no-report")
    assert code == 0, err
    summary = json.loads((workdir / "out" / "summary.json").read_text())
    assert summary["object_count"] >= 5
    assert summary["dtype"] == np.dtype(dtype).name


def test_complex_is_rejected(workdir):
    np.save("c.npy", np.zeros((4, 8, 8), np.complex64))
    code, _, err = cli("segment", "c.npy", "-o", "out")
    assert_user_error(code, err, "c.npy", "complex")


def test_nan_and_inf_are_background(workdir):
    image = small_volume(np.float32)
    image[:, :, :3] = np.nan
    image[0, 0, 5] = np.inf
    image[0, 1, 5] = -np.inf
    np.save("nan.npy", image)
    code, _, err = cli("segment", "nan.npy", "-o", "out", "--diameter", "8", "--no-report")
    assert code == 0, err
    summary = json.loads((workdir / "out" / "summary.json").read_text())
    assert summary["non_finite_voxels"] == 24 * 24 * 3 + 2
    labels = tifffile.imread(workdir / "out" / "labels.tif")
    assert labels[:, :, :3].max() == 0


def test_all_nan_is_an_error(workdir):
    np.save("nan.npy", np.full((4, 8, 8), np.nan, np.float32))
    code, _, err = cli("segment", "nan.npy", "-o", "out")
    assert_user_error(code, err, "nan.npy", "NaN")
    assert not (workdir / "out").exists()


# -- sizes, spacing, diameter --------------------------------------------------------------------

def test_header_larger_than_memory_is_refused_before_allocating(workdir):
    # a TIFF header that promises 2 TB of voxels: read must refuse, not allocate
    import voxseg.io as vio

    tifffile.imwrite("huge.tif", shape=(20000, 20000, 2500), dtype=np.uint16, compression=None)
    code, _, err = cli("segment", "huge.tif", "-o", "out")
    assert_user_error(code, err, "huge.tif", "--chunks")
    del vio


@pytest.mark.parametrize("spacing, fragment", [
    (["0", "1", "1"], "spacing"), (["-1", "1", "1"], "spacing"), (["nan", "1", "1"], "spacing"),
], ids=["zero", "negative", "nan"])
def test_bad_spacing(workdir, spacing, fragment):
    tifffile.imwrite("v.tif", small_volume())
    code, _, err = cli("segment", "v.tif", "-o", "out", "--spacing", *spacing)
    assert_user_error(code, err, fragment)


def test_wrong_spacing_count_is_a_usage_error(workdir):
    tifffile.imwrite("v.tif", small_volume())
    code, _, err = cli("segment", "v.tif", "-o", "out", "--spacing", "1", "1")
    assert code == 2
    assert "Traceback" not in err


@pytest.mark.parametrize("diameter", ["0", "-3", "nan", "1e9"], ids=["zero", "negative", "nan", "absurd"])
def test_bad_diameter(workdir, diameter):
    tifffile.imwrite("v.tif", small_volume())
    code, _, err = cli("segment", "v.tif", "-o", "out", "--diameter", diameter)
    assert_user_error(code, err, "diameter")
    assert not (workdir / "out").exists()


# -- pipelines ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, fragment", [
    ("[[steps]\nop = 1", "invalid TOML"),
    ('[[steps]]\nop = "blur"\n', "unknown step 'blur'"),
    ('[[steps]]\nop = "gaussian"\nsigma = "big"\n', "wrong type"),
    ('[[steps]]\nop = "gaussian"\nradius = 1\n', "unknown parameter 'radius'"),
], ids=["invalid-toml", "unknown-step", "wrong-type", "unknown-parameter"])
def test_bad_pipeline_files(workdir, text, fragment):
    tifffile.imwrite("v.tif", small_volume())
    (workdir / "p.toml").write_text(text)
    code, _, err = cli("run", "p.toml", "v.tif", "-o", "out")
    assert_user_error(code, err, "p.toml", fragment)
    assert not (workdir / "out").exists()


def test_pipeline_that_does_not_end_in_labels(workdir):
    tifffile.imwrite("v.tif", small_volume())
    (workdir / "p.toml").write_text('[[steps]]\nop = "gaussian"\nsigma = 1.0\n')
    code, _, err = cli("run", "p.toml", "v.tif", "-o", "out")
    assert_user_error(code, err, "p.toml", "labels")
    assert not (workdir / "out").exists()


# -- outputs -----------------------------------------------------------------------------------

def test_output_folder_not_writable(workdir):
    import os

    if os.geteuid() == 0:
        # root writes anywhere: make the parent a file instead, which nobody can write into
        (workdir / "blocker").write_text("a file, not a folder")
        target = workdir / "blocker" / "out"
    else:
        (workdir / "ro").mkdir(mode=0o500)
        target = workdir / "ro" / "out"
    tifffile.imwrite("v.tif", small_volume())
    code, _, err = cli("segment", "v.tif", "-o", target, "--diameter", "8")
    assert_user_error(code, err, str(target.parent))


def test_disk_full_mid_write_leaves_nothing(workdir, monkeypatch):
    import errno

    import voxseg.io as vio

    tifffile.imwrite("v.tif", small_volume())
    real = vio.write_labels

    def full_disk(path, *args, **kwargs):
        real(path, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(vio, "write_labels", full_disk)
    code, _, err = cli("segment", "v.tif", "-o", "out", "--diameter", "8")
    assert_user_error(code, err, "out")
    assert sorted(p.name for p in workdir.iterdir()) == ["v.tif"]


# -- degenerate volumes: valid empty results -------------------------------------------------------

@pytest.mark.parametrize("fill", ["zeros", "constant", "everything"])
def test_degenerate_volumes_give_valid_empty_or_single_results(workdir, fill):
    image = np.zeros((8, 16, 16), np.uint16)
    if fill == "constant":
        image[:] = 1234
    elif fill == "everything":
        image[:] = 1000
        image[0, 0, 0] = 0  # one dark voxel: the rest is all foreground
    np.save("v.npy", image)
    code, out, err = cli("segment", "v.npy", "-o", "out", "--diameter", "4")
    assert code == 0, err
    summary = json.loads((workdir / "out" / "summary.json").read_text())
    table = (workdir / "out" / "objects.csv").read_text().splitlines()
    assert table[0].startswith("label,voxels,volume")
    assert len(table) - 1 == summary["object_count"]
    if fill != "everything":
        assert summary["object_count"] == 0
        assert tifffile.imread(workdir / "out" / "labels.tif").max() == 0
