"""Tests of voxseg.io.atomic: outputs appear whole or not at all."""

import errno
import os

import pytest

from voxseg.errors import OutputError, OutputExistsError, VoxsegError
from voxseg.io.atomic import atomic_directory, atomic_path


class Boom(Exception):
    pass


def _listing(directory):
    """Every entry under `directory`, hidden ones included."""
    return sorted(
        os.path.relpath(os.path.join(root, name), directory)
        for root, dirs, files in os.walk(directory)
        for name in dirs + files
    )


def _write_dir(path, files):
    path.mkdir()
    for name, text in files.items():
        (path / name).write_text(text)


def test_success_renames_temporary_file(tmp_path):
    target = tmp_path / "out.csv"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".out.csv.tmp-")
        assert tmp.suffix == ".csv"  # writers that pick a format by extension still work
        assert not tmp.exists()
        tmp.write_text("a,b\n")
        assert not target.exists()
    assert target.read_text() == "a,b\n"
    assert _listing(tmp_path) == ["out.csv"]


def test_temporary_names_differ(tmp_path):
    with atomic_path(tmp_path / "a") as first, atomic_path(tmp_path / "a", overwrite=True) as second:
        assert first != second
        first.write_text("1")
        second.write_text("2")
    assert (tmp_path / "a").read_text() == "1"  # the last one to finish (the outer one) wins
    assert _listing(tmp_path) == ["a"]


@pytest.mark.parametrize("error", [Boom("failed"), KeyboardInterrupt(), ValueError("bad value")])
@pytest.mark.parametrize("make", ["file", "directory", "nothing"])
def test_exception_leaves_nothing_behind(tmp_path, error, make):
    target = tmp_path / "labels.tif"
    with pytest.raises(type(error)):
        with atomic_path(target) as tmp:
            if make == "file":
                tmp.write_bytes(b"partial")
            elif make == "directory":
                _write_dir(tmp, {"chunk": "partial"})
            raise error
    assert _listing(tmp_path) == []


def test_existing_output_is_refused_before_writing(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    entered = []
    with pytest.raises(OutputExistsError) as info:
        with atomic_path(target) as tmp:
            entered.append(tmp)
    assert str(info.value) == f"{target}: already exists (use --overwrite to replace it)"
    assert isinstance(info.value, FileExistsError)
    assert entered == []
    assert target.read_text() == "old"
    assert _listing(tmp_path) == ["out.txt"]


def test_existing_directory_is_refused(tmp_path):
    target = tmp_path / "results"
    _write_dir(target, {"a.txt": "old"})
    with pytest.raises(OutputExistsError, match="results: already exists"):
        with atomic_directory(target):
            pass


def test_overwrite_replaces_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_path(target, overwrite=True) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert _listing(tmp_path) == ["out.txt"]


def test_failed_overwrite_keeps_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(Boom):
        with atomic_path(target, overwrite=True) as tmp:
            tmp.write_text("half")
            raise Boom
    assert target.read_text() == "old"
    assert _listing(tmp_path) == ["out.txt"]


def test_overwrite_replaces_directory_tree(tmp_path):
    target = tmp_path / "store.zarr"
    _write_dir(target, {"old.txt": "old", "keep-not.txt": "x"})
    with atomic_path(target, overwrite=True) as tmp:
        _write_dir(tmp, {"new.txt": "new"})
        assert (target / "old.txt").exists()  # the old tree stays until the new one is complete
    assert _listing(tmp_path) == ["store.zarr", os.path.join("store.zarr", "new.txt")]


def test_failed_directory_overwrite_keeps_old_tree(tmp_path):
    target = tmp_path / "results"
    _write_dir(target, {"old.txt": "old"})
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(target, overwrite=True) as tmp:
            (tmp / "new.txt").write_text("new")
            raise KeyboardInterrupt
    assert _listing(tmp_path) == ["results", os.path.join("results", "old.txt")]


@pytest.mark.parametrize("old_is_dir", [True, False])
def test_overwrite_across_file_and_directory(tmp_path, old_is_dir):
    target = tmp_path / "out"
    if old_is_dir:
        _write_dir(target, {"x": "old"})
    else:
        target.write_text("old")
    with atomic_path(target, overwrite=True) as tmp:
        if old_is_dir:
            tmp.write_text("new")
        else:
            _write_dir(tmp, {"x": "new"})
    assert target.is_dir() is (not old_is_dir)
    assert len(os.listdir(tmp_path)) == 1


def test_atomic_directory_yields_empty_directory(tmp_path):
    target = tmp_path / "results"
    with atomic_directory(target) as tmp:
        assert tmp.is_dir()
        assert list(tmp.iterdir()) == []
        (tmp / "labels.tif").write_bytes(b"x")
        (tmp / "table.csv").write_text("label\n")
    assert sorted(os.listdir(target)) == ["labels.tif", "table.csv"]
    assert os.listdir(tmp_path) == ["results"]


def test_atomic_directory_failure_removes_partial_folder(tmp_path):
    with pytest.raises(Boom):
        with atomic_directory(tmp_path / "results") as tmp:
            (tmp / "labels.tif").write_bytes(b"x")
            raise Boom
    assert _listing(tmp_path) == []


def test_missing_parents_are_created(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("ok")
    assert target.read_text() == "ok"


def test_created_parents_are_removed_on_failure(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise Boom
    assert _listing(tmp_path) == []


def test_parent_that_is_a_file_is_an_output_error(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    target = blocker / "sub" / "out.txt"
    with pytest.raises(OutputError, match="out.txt: cannot create the output directory"):
        with atomic_path(target):
            pass
    assert _listing(tmp_path) == ["file.txt"]


@pytest.mark.parametrize(
    "error",
    [
        PermissionError(errno.EACCES, "Permission denied"),
        OSError(errno.ENOSPC, "No space left on device"),
    ],
)
def test_permission_and_full_disk_become_output_error(tmp_path, error):
    target = tmp_path / "labels.tif"
    with pytest.raises(OutputError) as info:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise error
    message = str(info.value)
    assert message.startswith(f"{target}: ")
    assert error.strerror in message
    assert info.value.__cause__ is error
    assert _listing(tmp_path) == []


def test_other_os_errors_pass_through(tmp_path):
    with pytest.raises(OSError) as info:
        with atomic_path(tmp_path / "x"):
            raise OSError(errno.EIO, "I/O error")
    assert not isinstance(info.value, VoxsegError)


def test_writing_nothing_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match="nothing was written"):
        with atomic_path(tmp_path / "x"):
            pass
    assert _listing(tmp_path) == []


def test_accepts_str_paths(tmp_path):
    target = str(tmp_path / "out.txt")
    with atomic_path(target) as tmp:
        tmp.write_text("ok")
    assert os.path.isfile(target)
    with open(target) as f:
        assert f.read() == "ok"
