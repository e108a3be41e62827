"""The public namespace: functions stay functions whatever submodule is imported first."""

import subprocess
import sys

import pytest

SCRIPT = """
import importlib, types
import voxseg
importlib.import_module("voxseg." + {module!r})
for _ in range(2):
    assert callable(getattr(voxseg, {name!r})), type(getattr(voxseg, {name!r}))
    assert not isinstance(getattr(voxseg, {name!r}), types.ModuleType)
"""


@pytest.mark.parametrize("name, module", [
    ("segment", "segmentation"), ("measure", "measurements"), ("batch", "batching"), ("read", "io"),
    ("segment", "pipeline"), ("segment_chunked", "chunked"),
])
def test_public_functions_are_not_shadowed_by_modules(name, module):
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(name=name, module=module)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_lazy_names_all_resolve():
    import voxseg

    for name in voxseg.__all__:
        assert getattr(voxseg, name) is not None


def test_the_first_steps_run_without_scipy_so_that_it_imports_meanwhile():
    # workflow.import_in_background imports SciPy while the input is read and the first steps run
    script = (
        "import sys, numpy as np\n"
        "import voxseg.workflow, voxseg.segmentation, voxseg.measurements, voxseg.io\n"
        "from voxseg.pipeline import Pipeline\n"
        "image = np.random.default_rng(0).integers(0, 4000, (8, 40, 40)).astype(np.uint16)\n"
        "image[2:6, 10:30, 10:30] += 20000\n"
        "steps = [{'op': 'rescale_intensity'}, {'op': 'threshold'}, {'op': 'fill_holes'}]\n"
        "result = Pipeline(steps).run(image, spacing=(1, 1, 1))\n"
        "assert result.kind == 'mask' and result.data[4, 20, 20] and not result.data[0, 0, 0]\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'skimage')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
