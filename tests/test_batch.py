"""Batch runs: inputs, per-input results, combined tables, failures, resume, determinism, the CLI."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from voxseg.batching import BATCH_FILES, SUMMARY_COLUMNS, expand_inputs, output_names, run_batch
from voxseg.errors import InputNotFoundError, OutputExistsError, ParameterError
from voxseg.testing import invoke_cli

SPACING = (2.0, 1.0, 1.0)
DIAMETER = 10.0
PER_INPUT = ["labels.tif", "objects.csv", "pipeline.toml", "provenance.json", "summary.json"]


def write_grains(path, seed, shape=(24, 32, 32), overwrite=False):
    from voxseg import io
    from voxseg.testing import sphere_pack

    vol = sphere_pack(shape=shape, spacing=SPACING, diameter=DIAMETER, attempts=300, seed=seed)
    io.write_volume(path, vol.image, spacing=SPACING, overwrite=overwrite)
    return vol


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder of three small volumes (two TIFF, one .npy) and a corrupt TIFF."""
    folder = tmp_path_factory.mktemp("batch-inputs")
    write_grains(folder / "b10.tif", seed=1)
    write_grains(folder / "b2.tif", seed=2)
    write_grains(folder / "a.npy", seed=3)
    (folder / "corrupt.tif").write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    (folder / "notes.txt").write_text("not an input")
    return folder


#: natural order of the inputs' names
ORDER = ["a.npy", "b2.tif", "b10.tif", "corrupt.tif"]


@pytest.fixture(scope="module")
def two_workers(inputs, tmp_path_factory):
    """A batch of the inputs folder over two worker processes."""
    outdir = tmp_path_factory.mktemp("batch-runs") / "two"
    table = run_batch(inputs, outdir, workers=2, diameter=DIAMETER, report=False)
    return outdir, table


def statuses(outdir):
    summary = pd.read_csv(outdir / "summary.csv")
    return dict(zip(summary["source"].map(lambda s: Path(s).name), summary["status"]))


def mtimes(outdir):
    return {p.parent.name: p.stat().st_mtime_ns for p in outdir.glob("*/provenance.json")}


# -- inputs ------------------------------------------------------------------


def test_inputs_expand_folders_globs_and_files_in_natural_order(inputs, tmp_path):
    names = [Path(p).name for p in expand_inputs(inputs)]
    assert names == ORDER  # notes.txt is not a volume; b2 before b10
    # a glob is many inputs, as if the shell had expanded it; a file listed twice is one input
    assert [Path(p).name for p in expand_inputs([str(inputs / "b*.tif"), inputs / "b2.tif"])] == ["b2.tif", "b10.tif"]
    # a Zarr store is one input; a folder of only 2D images is one stack; hidden names are skipped
    (tmp_path / "store.zarr").mkdir()
    (tmp_path / "store.zarr" / "zarr.json").write_text("{}")
    (tmp_path / "slices").mkdir()
    for z in range(3):
        (tmp_path / "slices" / f"z{z}.png").write_bytes(b"")
    (tmp_path / ".hidden.tif").write_bytes(b"")
    assert expand_inputs(tmp_path) == [str(tmp_path / "store.zarr")]
    assert expand_inputs(tmp_path / "slices") == [str(tmp_path / "slices")]


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.tif", "no such file or directory"),
    (lambda d: str(d / "*.tiff"), "no file matches this pattern"),
    (lambda d: d, "holds no volume"),
])
def test_a_wrong_input_path_stops_the_batch_before_any_work(tmp_path, make, message):
    (tmp_path / "readme.md").write_text("")
    with pytest.raises(InputNotFoundError, match=message):
        run_batch([make(tmp_path)], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_output_names_are_unique_and_deterministic():
    sources = ["x/cells.ome.tif", "y/cells.tif", "z/CELLS.npy", "objects.csv.tif", "cells-2.tif", "stack.zarr"]
    assert output_names(sources) == ["cells", "cells-2", "CELLS-3", "objects.csv-2", "cells-2-2", "stack"]
    assert output_names(sources) == output_names(list(sources))
    assert not {n.casefold() for n in output_names(sources)} & {n.casefold() for n in BATCH_FILES}


@pytest.mark.parametrize("options, message", [
    ({"workers": 0}, "workers must be a positive integer, got 0"),
    ({"threads_per_worker": 1.5}, "threads_per_worker must be a positive integer"),
    ({"resume": True, "overwrite": True}, "exclude each other"),
    ({"diameter": -3.0}, "diameter must be a positive length"),
    ({"threshold": "magic"}, "threshold method must be one of"),
    ({"channel": -1}, "channel must be a non-negative integer, got -1"),
    ({"spacing": (1.0, 0.0, 1.0)}, "spacing"),
])
def test_wrong_options_are_refused_before_any_work(inputs, tmp_path, options, message):
    with pytest.raises(ParameterError, match=message):
        run_batch(inputs, tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


# -- outputs -----------------------------------------------------------------


def test_each_input_gets_the_outputs_of_segment(two_workers, inputs):
    outdir, _ = two_workers
    assert sorted(p.name for p in outdir.iterdir()) == sorted(["a", "b2", "b10", *BATCH_FILES])
    for name in ("a", "b2", "b10"):
        assert sorted(p.name for p in (outdir / name).iterdir()) == PER_INPUT
        summary = json.loads((outdir / name / "summary.json").read_text())
        assert summary["spacing"] == list(SPACING)
        assert summary["diameter"] == {"value": DIAMETER, "estimated": False}
    assert not (outdir / "corrupt").exists()  # a failed input leaves no folder


def test_combined_table_holds_every_object_with_its_source_in_input_order(two_workers, inputs):
    outdir, table = two_workers
    expected = pd.concat(
        [pd.read_csv(outdir / name / "objects.csv").assign(source=str(inputs / src))
         for name, src in [("a", "a.npy"), ("b2", "b2.tif"), ("b10", "b10.tif")]], ignore_index=True)
    assert list(table.columns) == ["source", *[c for c in expected.columns if c != "source"]]
    pd.testing.assert_frame_equal(table, expected[table.columns], check_dtype=False)
    assert list(dict.fromkeys(table["source"].map(lambda s: Path(s).name))) == ORDER[:3]
    on_disk = pd.read_csv(outdir / "objects.csv")
    pd.testing.assert_frame_equal(on_disk, table, check_dtype=False, check_exact=False, rtol=1e-5)
    pd.testing.assert_frame_equal(pd.read_parquet(outdir / "objects.parquet"), table, check_dtype=False)


def test_summary_has_one_row_per_input_and_batch_json_lists_the_failure(two_workers, inputs):
    from voxseg.workflow import sha256_of

    outdir, table = two_workers
    summary = pd.read_csv(outdir / "summary.csv")
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert [Path(s).name for s in summary["source"]] == ORDER
    assert list(summary["status"]) == ["ok", "ok", "ok", "failed"]
    ok = summary[summary["status"] == "ok"]
    assert ok["object_count"].sum() == len(table) > 0
    assert ok["threshold_value"].notna().all() and (ok["diameter"] == DIAMETER).all()
    assert ok["error"].isna().all() and ok["run_time_s"].gt(0).all()
    assert "corrupt" not in summary["error"].iloc[-1] and summary["error"].iloc[-1]  # the message, not the path

    record = json.loads((outdir / "batch.json").read_text())
    assert record["counts"] == {"inputs": 4, "ok": 3, "reused": 0, "failed": 1}
    assert record["failures"] == [{"source": str(inputs / "corrupt.tif"), "output": "corrupt",
                                   "error": summary["error"].iloc[-1]}]
    assert table.attrs["batch"]["failures"] == [{"source": str(inputs / "corrupt.tif"),
                                                 "error": summary["error"].iloc[-1]}]
    # provenance: checksum, resolved pipeline, versions, times
    first = record["inputs"][0]
    assert first["input_sha256"] == sha256_of(inputs / "a.npy")
    assert [s["op"] for s in first["pipeline"]["steps"]][:2] == ["rescale_intensity", "threshold"]
    assert first["pipeline"]["pipeline"]["diameter"] == DIAMETER
    assert {"voxseg", "numpy", "scipy", "scikit-image"} <= set(first["versions"])
    assert record["started"] <= first["started"] <= first["finished"] <= record["finished"]
    assert record["settings"]["pipeline"]["pipeline"]["diameter"] == DIAMETER
    provenance = json.loads((outdir / "a" / "provenance.json").read_text())
    assert provenance["input_sha256"] == first["input_sha256"]
    assert provenance["settings_sha256"] == record["settings_sha256"]


def test_one_and_two_workers_give_the_same_results(two_workers, inputs, tmp_path, digest):
    outdir, table = two_workers
    one = tmp_path / "one"
    table1 = run_batch(inputs, one, workers=1, diameter=DIAMETER, report=False)
    pd.testing.assert_frame_equal(table1, table)
    assert digest(one / "objects.csv") == digest(outdir / "objects.csv")
    for name in ("a", "b2", "b10"):
        assert digest(one / name / "labels.tif") == digest(outdir / name / "labels.tif")
    timeless = [c for c in SUMMARY_COLUMNS if c != "run_time_s"]
    pd.testing.assert_frame_equal(pd.read_csv(one / "summary.csv")[timeless],
                                  pd.read_csv(outdir / "summary.csv")[timeless])


# -- resume ------------------------------------------------------------------


def test_resume_reuses_complete_results_and_recomputes_what_changed(inputs, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(inputs, data)
    outdir = tmp_path / "out"
    run_batch(data, outdir, workers=1, diameter=DIAMETER, report=False)
    first = mtimes(outdir)

    table = run_batch(data, outdir, workers=1, diameter=DIAMETER, report=False, resume=True)
    assert statuses(outdir) == {"a.npy": "reused", "b2.tif": "reused", "b10.tif": "reused",
                                "corrupt.tif": "failed"}
    assert mtimes(outdir) == first  # nothing rewritten
    assert table.attrs["batch"]["counts"]["reused"] == 3

    write_grains(data / "b2.tif", seed=7, overwrite=True)  # new content under the same name
    run_batch(data, outdir, workers=1, diameter=DIAMETER, report=False, resume=True)
    assert statuses(outdir)["b2.tif"] == "ok" and statuses(outdir)["a.npy"] == "reused"
    changed = mtimes(outdir)
    assert changed["b2"] != first["b2"] and changed["a"] == first["a"] and changed["b10"] == first["b10"]

    # the .npy spacing sidecar is part of the input
    sidecar = data / "a.npy.json"
    sidecar.write_text(sidecar.read_text().replace("2.0", "3.0", 1))
    run_batch(data, outdir, workers=1, diameter=DIAMETER, report=False, resume=True)
    assert statuses(outdir)["a.npy"] == "ok"

    # other pipeline settings: everything is recomputed
    pipeline = tmp_path / "otsu.toml"
    pipeline.write_text('[pipeline]\ndiameter = 10.0\n\n[[steps]]\nop = "rescale_intensity"\n\n'
                        '[[steps]]\nop = "threshold"\nmethod = "otsu"\n\n[[steps]]\nop = "split_touching"\n')
    run_batch(data, outdir, workers=1, pipeline=pipeline, report=False, resume=True)
    assert set(statuses(outdir).values()) == {"ok", "failed"}
    record = json.loads((outdir / "batch.json").read_text())
    assert record["inputs"][0]["pipeline"]["steps"][1] == {"op": "threshold", "method": "otsu"}


def test_leftovers_of_an_interrupted_run_are_not_trusted(two_workers, tmp_path, inputs):
    outdir = tmp_path / "out"
    shutil.copytree(two_workers[0], outdir)
    # a temporary folder left behind, a result folder without summary.json, a batch.json of another run
    leftover = outdir / ".b2.tmp-0123abcd"
    shutil.copytree(outdir / "b2", leftover)
    (outdir / "b10" / "summary.json").unlink()
    (outdir / "a" / "provenance.json").write_text("{ truncated")
    before = mtimes(outdir)
    run_batch(inputs, outdir, workers=1, diameter=DIAMETER, report=False, resume=True)
    assert statuses(outdir) == {"a.npy": "ok", "b2.tif": "reused", "b10.tif": "ok", "corrupt.tif": "failed"}
    assert mtimes(outdir)["b2"] == before["b2"]
    assert not leftover.exists()
    assert sorted(p.name for p in outdir.iterdir()) == sorted(["a", "b2", "b10", *BATCH_FILES])
    assert sorted(p.name for p in (outdir / "b10").iterdir()) == PER_INPUT


def test_an_existing_outdir_needs_resume_or_overwrite(two_workers, inputs, digest):
    outdir, _ = two_workers
    before = digest(outdir)
    with pytest.raises(OutputExistsError, match="--resume"):
        run_batch(inputs, outdir, workers=1)
    assert digest(outdir) == before


# -- command line ------------------------------------------------------------


def test_cli_batch_end_to_end(inputs, tmp_path):
    outdir = tmp_path / "out"
    args = ["batch", inputs, "-o", outdir, "--workers", "2", "--diameter", DIAMETER, "--no-report"]
    status, out, err = invoke_cli(*args)
    assert status == 2, err
    assert "3 of 4 inputs segmented" in out
    assert f"1 of 4 inputs failed (also listed in {outdir / 'batch.json'})" in err
    assert f"  {inputs / 'corrupt.tif'}: " in err
    assert f"{inputs / 'b10.tif'}: " in err and " objects, " in err  # a line per finished input
    assert (outdir / "batch.json").is_file() and (outdir / "b10" / "labels.tif").is_file()

    status, _, err = invoke_cli(*args)
    assert status == 2 and "already exists" in err and err.count("\n") == 1

    status, out, err = invoke_cli(*args, "--resume")
    assert status == 2 and "(3 reused)" in out

    good = [inputs / "a.npy", str(inputs / "b*.tif")]
    status, out, err = invoke_cli("batch", *good, "-o", tmp_path / "good", "--workers", "1", "--no-report",
                                  "--spacing", 2, 1, 1, "--threshold", "otsu")
    assert status == 0, err
    assert "3 of 3 inputs segmented" in out
    assert pd.read_csv(tmp_path / "good" / "summary.csv")["threshold_method"].eq("otsu").all()

    status, _, err = invoke_cli("batch", inputs / "nothing*.tif", "-o", tmp_path / "none")
    assert status == 2 and err == f"voxseg: error: {inputs / 'nothing*.tif'}: no file matches this pattern\n"
    status, out, _ = invoke_cli("batch", "--help")
    assert status == 0 and "--resume" in out and "--workers" in out


# -- faults ------------------------------------------------------------------

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="signals as on Linux")

CRASH_ON_INPUT = """
import os, signal, multiprocessing
import voxseg.batching as batch

_write_result = batch._write_result

def crashing(task, *args):
    if "crash" in task.source and multiprocessing.parent_process() is not None:
        os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer would
    return _write_result(task, *args)

batch._write_result = crashing
"""


@linux_only
def test_a_worker_that_dies_fails_only_its_input(inputs, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.npy", "a.npy.json", "b2.tif", "b10.tif"):
        shutil.copy(inputs / name, data / name)
    shutil.copy(inputs / "b2.tif", data / "crash.tif")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(CRASH_ON_INPUT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "voxseg.cli", "batch", data, "-o", tmp_path / "out",
                           "--workers", "2", "--no-report", "--diameter", str(DIAMETER)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert statuses(tmp_path / "out") == {"a.npy": "ok", "b2.tif": "ok", "b10.tif": "ok", "crash.tif": "failed"}
    assert f"  {data / 'crash.tif'}: the worker process died" in proc.stderr


@linux_only
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_batch_leaves_only_complete_results(tmp_path, nuclei_path, sig):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        shutil.copy(nuclei_path, data / f"n{i}.tif")
    outdir = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "voxseg.cli", "batch", data, "-o", outdir, "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (outdir.is_dir() and any(".tmp-" in p.name for p in outdir.iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    # no temporary folder, no batch.json: only whole results (if a worker had just finished one)
    left = sorted(p.name for p in outdir.iterdir())
    assert set(left) <= {"n0", "n1"}, left
    for name in left:
        assert sorted(p.name for p in (outdir / name).iterdir()) == sorted([*PER_INPUT, "report.html"])
