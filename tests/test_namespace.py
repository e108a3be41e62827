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
