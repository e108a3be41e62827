"""The command line end to end: outputs, exit statuses and one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tifffile

from voxseg.testing import invoke_cli


def run(*args, expect=0):
    """Run the CLI in-process; assert its exit status; return (stdout, stderr)."""
    code, out, err = invoke_cli(*args)
    assert code == expect, f"exit {code}, stderr: {err}"
    return out, err


@pytest.fixture(scope="module")
def beads_tif(tmp_path_factory):
    from voxseg.testing import sphere_pack

    vol = sphere_pack(shape=(40, 40, 40), spacing=(2.0, 1.0, 1.0), diameter=12.0, attempts=800, seed=3)
    path = tmp_path_factory.mktemp("in") / "beads.tif"
    tifffile.imwrite(path, vol.image, imagej=True, resolution=(1.0, 1.0), metadata={"spacing": 2.0, "unit": "um", "axes": "ZYX"})
    return path, vol


def test_version_and_help():
    out, _ = run("--version")
    assert "voxseg" in out
    for command in ["inspect", "sample", "segment", "thresholds", "measure", "run", "report"]:
        out, _ = run(command, "--help")
        assert "Usage" in out


def test_segment_writes_every_output(tmp_path, beads_tif, digest):
    path, vol = beads_tif
    before = digest(path)
    outdir = tmp_path / "res"
    out, _ = run("segment", path, "-o", outdir, "--diameter", "12")
    assert digest(path) == before  # the input is never modified
    assert sorted(p.name for p in outdir.iterdir()) == sorted(
        ["labels.tif", "objects.csv", "summary.json", "pipeline.toml", "report.html"])
    from voxseg import io
    from voxseg.testing import match_labels

    labels = io.read(outdir / "labels.tif")
    assert labels.spacing == (2.0, 1.0, 1.0)
    assert match_labels(labels.data, vol.labels)["f1"] >= 0.95
    table = pd.read_csv(outdir / "objects.csv")
    summary = json.loads((outdir / "summary.json").read_text())
    assert len(table) == summary["object_count"] == labels.data.max()
    assert {"label", "volume", "centroid_z", "centroid_y", "centroid_x", "touches_border"} <= set(table.columns)
    assert summary["diameter"] == {"value": 12.0, "estimated": False}
    assert summary["threshold"]["method"] == "li"
    assert f"{summary['object_count']} objects" in out


def test_segment_with_its_own_pipeline_reproduces_the_labels(tmp_path, beads_tif, digest):
    path, _ = beads_tif
    run("segment", path, "-o", tmp_path / "a", "--no-report", "--clear-border")
    run("segment", path, "-o", tmp_path / "b", "--no-report", "--pipeline", tmp_path / "a" / "pipeline.toml")
    assert digest(tmp_path / "a" / "labels.tif") == digest(tmp_path / "b" / "labels.tif")
    assert digest(tmp_path / "a" / "objects.csv") == digest(tmp_path / "b" / "objects.csv")


def test_existing_output_is_not_overwritten(tmp_path, beads_tif):
    path, _ = beads_tif
    outdir = tmp_path / "res"
    outdir.mkdir()
    (outdir / "keep.txt").write_text("precious")
    _, err = run("segment", path, "-o", outdir, expect=2)
    assert str(outdir) in err and "--overwrite" in err
    assert len(err.strip().splitlines()) == 1
    assert (outdir / "keep.txt").read_text() == "precious"
    run("segment", path, "-o", outdir, "--overwrite", "--no-report")
    assert not (outdir / "keep.txt").exists()
    assert (outdir / "labels.tif").exists()


@pytest.mark.parametrize("args, message", [
    (["segment", "missing.tif", "-o", "out"], "missing.tif: no such file"),
    (["segment", "{bad}", "-o", "out"], "bad.tif"),
    (["segment", "{beads}", "-o", "out", "--spacing", "0", "1", "1"], "spacing"),
    (["segment", "{beads}", "-o", "out", "--diameter", "-2"], "diameter"),
    (["segment", "{beads}", "-o", "out", "--channel", "3"], "channel"),
    (["run", "{badpipe}", "{beads}", "-o", "out"], "unknown step 'gausian'; did you mean 'gaussian'"),
], ids=["missing", "not-an-image", "zero-spacing", "negative-diameter", "channel", "pipeline-typo"])
def test_user_mistakes_end_with_one_line_and_status_2(tmp_path, beads_tif, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.tif").write_text("this is not a TIFF")
    (tmp_path / "badpipe.toml").write_text('[[steps]]\nop = "gausian"\n')
    args = [a.format(bad=tmp_path / "bad.tif", beads=beads_tif[0], badpipe=tmp_path / "badpipe.toml") for a in args]
    _, err = run(*args, expect=2)
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_debug_shows_the_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "voxseg.cli", "--debug", "inspect", str(tmp_path / "nope.tif")],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


def test_console_script_error_exit_status(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "voxseg.cli", "inspect", str(tmp_path / "nope.tif")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"voxseg: error: {tmp_path / 'nope.tif'}: no such file or directory"


def test_console_script_ends_like_the_interpreter_after_success(tmp_path, beads_tif):
    # the process ends without the interpreter's teardown, but with its threads, exit handlers and streams
    script = (
        "import atexit, pathlib, sys, threading, time\n"
        f"done = pathlib.Path({str(tmp_path)!r})\n"
        "atexit.register(lambda: (done / 'atexit').write_text('ran'))\n"
        "threading.Thread(target=lambda: (time.sleep(1.5), (done / 'thread').write_text('ran'))).start()\n"
        "sys.stdout.write('buffered ')\n"
        "from voxseg.cli import main\n"
        "main()\n"
        "print('not reached')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, "segment", str(beads_tif[0]), "-o", str(tmp_path / "out"),
                           "--no-report"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("buffered ") and "objects" in proc.stdout
    assert "not reached" not in proc.stdout
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "ran"
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"labels.tif", "objects.csv", "summary.json"}


def test_inspect_reports_the_sample_spacing(tmp_path, nuclei_path):
    figure = tmp_path / "planes.png"
    out, _ = run("inspect", nuclei_path, "--figure", figure)
    assert "0.29 x 0.26 x 0.26 um (metadata)" in out
    assert "60 x 256 x 256" in out
    assert figure.stat().st_size > 10_000


def test_inspect_says_when_it_assumes_unit_spacing(tmp_path):
    path = tmp_path / "plain.npy"
    np.save(path, np.zeros((3, 4, 5), np.uint8))
    out, err = run("inspect", path)
    assert "assumed 1 x 1 x 1" in err
    assert "1 x 1 x 1 pixel (default)" in out


def test_sample_writes_a_calibrated_volume(tmp_path):
    out_path = tmp_path / "nuclei.tif"
    run("sample", "nuclei", "-o", out_path)
    from voxseg import io

    vol = io.read(out_path)
    assert vol.shape == (60, 256, 256) and vol.spacing == (0.29, 0.26, 0.26) and vol.unit == "um"
    _, err = run("sample", "nuclei", "-o", out_path, expect=2)
    assert "already exists" in err
    _, err = run("sample", "bogus", "-o", tmp_path / "x.tif", expect=2)
    assert "unknown sample 'bogus'" in err


def test_thresholds_prints_every_method_and_writes_the_figure(tmp_path, beads_tif):
    out, _ = run("thresholds", beads_tif[0], "-o", tmp_path / "t.png")
    for method in ["li", "otsu", "yen", "triangle", "mean", "isodata", "minimum"]:
        assert method in out
    assert (tmp_path / "t.png").stat().st_size > 10_000


def test_measure_writes_csv_and_parquet(tmp_path, beads_tif):
    path, vol = beads_tif
    labels = tmp_path / "labels.tif"
    from voxseg import io

    io.write_labels(labels, vol.labels, spacing=(2.0, 1.0, 1.0))
    run("measure", labels, "--intensity", path, "-o", tmp_path / "t.csv")
    run("measure", labels, "-o", tmp_path / "t.parquet")
    csv = pd.read_csv(tmp_path / "t.csv")
    parquet = pd.read_parquet(tmp_path / "t.parquet")
    assert len(csv) == len(parquet) == vol.labels.max()
    assert "intensity_mean" in csv.columns
    np.testing.assert_allclose(csv["volume"], parquet["volume"], rtol=1e-5)
    _, err = run("measure", labels, "-o", tmp_path / "t.xlsx", expect=2)
    assert ".csv or .parquet" in err


def test_report_rebuilds_the_page(tmp_path, beads_tif):
    outdir = tmp_path / "res"
    run("segment", beads_tif[0], "-o", outdir, "--diameter", "12", "--no-report")
    assert not (outdir / "report.html").exists()
    run("report", outdir)
    assert (outdir / "report.html").stat().st_size > 100_000


def test_shipped_pipelines_by_name(tmp_path, beads_tif):
    run("sample", "beads.toml", "-o", tmp_path / "beads.toml")
    assert "[[steps]]" in (tmp_path / "beads.toml").read_text()
    _, err = run("sample", "cells.toml", "-o", tmp_path / "x.toml", expect=2)
    assert "nuclei.toml, beads.toml" in err
    out, _ = run("run", "beads", beads_tif[0], "-o", tmp_path / "out", "--no-report")
    assert "objects" in out


@pytest.mark.parametrize("terminal", [False, True])
def test_the_step_progress_bar_shows_on_a_terminal_only(monkeypatch, terminal):
    import io

    from voxseg.cli import _StepProgress

    class Stream(io.StringIO):
        def isatty(self):
            return terminal

    stream = Stream()
    monkeypatch.setattr(sys, "stderr", stream)
    progress = _StepProgress("in.tif")
    for index, name in enumerate(["threshold", "fill_holes"]):
        progress(index, 2, name)
    assert (progress.bar is not None) == terminal
    progress.close()
    assert ("in.tif" in stream.getvalue()) == terminal
