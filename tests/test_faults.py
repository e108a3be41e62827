"""Faults: interrupted runs, memory limits, unchanged inputs, deterministic outputs."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile

from voxseg.testing import invoke_cli

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="signals and rlimits as on Linux")


def cli(*args):
    code, out, err = invoke_cli(*args)
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A volume large enough that a run lasts a few seconds."""
    from voxseg.samples import load_sample

    data = load_sample("nuclei").data
    data = np.concatenate([data, data[:, ::-1]], axis=1)
    data = np.concatenate([data, data[:, :, ::-1]], axis=2)
    path = tmp_path_factory.mktemp("faults") / "big.tif"
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / 0.26, 1 / 0.26),
                     metadata={"spacing": 0.29, "unit": "um", "axes": "ZYX"})
    return path


def start(args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "voxseg.cli", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def wait_until_working(proc, outdir, timeout=60):
    """Wait until the run has created its temporary results folder."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.name.startswith(f".{outdir.name}.tmp-") for p in outdir.parent.iterdir()):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("the run never started writing")


RESULTS = ["labels.tif", "objects.csv", "pipeline.toml", "report.html", "summary.json"]


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 130)], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_removes_its_partial_output(tmp_path, stack, sig, status):
    outdir = tmp_path / "out"
    proc = start(["segment", stack, "-o", outdir])
    wait_until_working(proc, outdir)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    if proc.returncode == 0:
        # the run finished its last write before the signal came: then it is complete
        assert sorted(os.listdir(tmp_path)) == ["out"]
        assert sorted(os.listdir(outdir)) == RESULTS
    else:
        assert proc.returncode == status, err
        assert sorted(os.listdir(tmp_path)) == []


def test_killed_run_leaves_the_previous_results_whole(tmp_path, stack, digest):
    outdir = tmp_path / "out"
    cli("segment", stack, "-o", outdir)
    before = {name: digest(outdir / name) for name in RESULTS}
    proc = start(["segment", stack, "-o", outdir, "--overwrite"])
    wait_until_working(proc, outdir)
    proc.kill()
    proc.communicate(timeout=60)
    # the previous results, or (if the rename won the race) the new ones, which differ only in run times
    assert sorted(os.listdir(outdir)) == RESULTS
    after = {name: digest(outdir / name) for name in RESULTS}
    assert {k: v for k, v in after.items() if k != "summary.json"} == {
        k: v for k, v in before.items() if k != "summary.json"}
    # the leftover temporary folder is hidden, never read, and does not stop a new run
    cli("segment", stack, "-o", outdir, "--overwrite", "--no-report")
    assert sorted(os.listdir(outdir)) == ["labels.tif", "objects.csv", "pipeline.toml", "summary.json"]


def test_run_under_a_memory_limit_refuses_with_a_clear_message(tmp_path, stack):
    import resource

    limit = 1_200_000_000  # bytes of address space: enough to start, not to segment in memory

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    big = tmp_path / "bigger.tif"
    data = tifffile.imread(stack)
    # 240 x 512 x 512 voxels: an in-memory run needs more than the limit
    tifffile.imwrite(big, np.concatenate([data, data[::-1], data, data[::-1]], axis=0), imagej=True,
                     metadata={"spacing": 0.29, "unit": "um", "axes": "ZYX"})
    proc = start(["segment", big, "-o", tmp_path / "out"], preexec_fn=limit_memory,
                 env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "--chunks" in err and "bigger.tif" in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_no_command_modifies_its_inputs(tmp_path, stack, digest):
    from voxseg import io

    labels = tmp_path / "labels.tif"
    small = tmp_path / "small.tif"
    io.write_volume(small, tifffile.imread(stack)[:, :128, :128], spacing=(0.29, 0.26, 0.26))
    pipeline = tmp_path / "p.toml"
    pipeline.write_text('[[steps]]\nop = "rescale_intensity"\n[[steps]]\nop = "threshold"\n'
                        '[[steps]]\nop = "split_touching"\ndiameter = 11.0\n')
    inputs = [small, pipeline]
    before = {p: digest(p) for p in inputs}
    cli("inspect", small, "--figure", tmp_path / "i.png")
    cli("thresholds", small, "-o", tmp_path / "t.png")
    cli("segment", small, "-o", tmp_path / "seg")
    io.write_labels(labels, io.read(tmp_path / "seg" / "labels.tif").data, spacing=(0.29, 0.26, 0.26))
    inputs.append(labels)
    before[labels] = digest(labels)
    cli("measure", labels, "--intensity", small, "-o", tmp_path / "m.csv")
    cli("run", pipeline, small, "-o", tmp_path / "run")
    cli("report", tmp_path / "seg")
    assert {p: digest(p) for p in inputs} == before


def test_repeated_runs_are_bit_identical(tmp_path, stack, digest):
    small = tmp_path / "small.tif"
    from voxseg import io

    io.write_volume(small, tifffile.imread(stack)[:, 64:192, 64:192], spacing=(0.29, 0.26, 0.26))
    cli("segment", small, "-o", tmp_path / "a")
    cli("segment", small, "-o", tmp_path / "b")
    for name in ["labels.tif", "objects.csv", "pipeline.toml", "report.html"]:
        assert digest(tmp_path / "a" / name) == digest(tmp_path / "b" / name), name
