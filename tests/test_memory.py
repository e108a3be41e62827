import os
import sys

import numpy as np
import pytest

from voxseg._memory import peak_memory, process_peak_memory, release_free_memory, reset_peak_memory
from voxseg.morphology import component_sizes, label

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")


@linux_only
def test_process_peak_survives_a_reset():
    block = np.ones(200 * 2**20, dtype=np.uint8)  # touched: 200 MiB resident
    del block
    release_free_memory()
    before_reset = peak_memory()
    reset_peak_memory()
    assert process_peak_memory() >= before_reset
    assert peak_memory() < before_reset - 150 * 2**20
    assert process_peak_memory() - peak_memory() > 150 * 2**20


def test_label_matches_scipy_and_counts_components():
    from scipy import ndimage as ndi

    rng = np.random.default_rng(5)
    mask = rng.random((12, 30, 31)) > 0.6
    for connectivity in (1, 2, 3):
        ours, count = label(mask, connectivity=connectivity)
        theirs, expected = ndi.label(mask, ndi.generate_binary_structure(3, connectivity))
        assert count == expected
        np.testing.assert_array_equal(ours, theirs)  # both number in raster order of first voxel
        np.testing.assert_array_equal(component_sizes(ours, count), np.bincount(theirs.ravel()))


@linux_only
def test_summary_records_the_process_peak_and_per_step_peaks(tmp_path):
    import json

    import tifffile

    from voxseg.testing import invoke_cli, sphere_pack

    vol = sphere_pack(shape=(32, 48, 48), diameter=12, attempts=300, seed=2)
    tifffile.imwrite(tmp_path / "in.tif", vol.image)
    status, _, err = invoke_cli("segment", str(tmp_path / "in.tif"), "-o", str(tmp_path / "out"), "--no-report")
    assert status == 0, err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    step_peaks = [step["peak_mb"] for step in summary["steps"]]
    assert all(peak > 0 for peak in step_peaks)
    assert summary["peak_memory_mb"] >= max(step_peaks)


@linux_only
@pytest.mark.parametrize("exact", [False, True])
def test_freed_memory_is_kept_for_the_next_step_unless_exact_peaks_are_asked(exact):
    import os
    import subprocess

    script = (
        "import numpy as np\n"
        "from voxseg._memory import configure_allocator, end_step, peak_memory, reset_peak_memory\n"
        "configure_allocator()\n"
        "block = np.ones(300 * 2**20, dtype=np.uint8)\n"
        "del block\n"
        "end_step()\n"
        "reset_peak_memory()\n"
        "small = np.ones(2**20, dtype=np.uint8)\n"
        "print(peak_memory())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "VOXSEG_STEP_MEMORY"}
    if exact:
        env["VOXSEG_STEP_MEMORY"] = "1"
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    next_step_peak = int(out.stdout)
    if exact:
        assert next_step_peak < 250 * 2**20
    else:
        assert next_step_peak > 300 * 2**20  # the freed block is still resident, ready for reuse


def test_the_command_line_gives_blas_one_thread_unless_told_otherwise(monkeypatch):
    from voxseg import cli

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "")  # recorded, so that the test's setting is undone
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    cli._one_blas_thread()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    cli._one_blas_thread()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "3"
