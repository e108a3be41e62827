"""voxseg: 3D image analysis from raw voxels to separated, measured objects.

Every length is in the unit of the volume's voxel spacing. The public
names below are imported lazily, so that ``import voxseg`` (and the
command-line start-up) stays fast.
"""

import importlib

from ._version import __version__

# public name -> module that defines it (None: the name is a submodule), or (module, attribute)
_LAZY = {
    "Volume": "volume",
    "as_spacing": "volume",
    "read": "io",
    "write_labels": "io",
    "write_volume": "io",
    "segment": "segmentation",
    "measure": "measurements",
    "measurements": None,
    "batch": ("batching", "run_batch"),
    "segment_chunked": "chunked",
    "Pipeline": "pipeline",
    "errors": None,
    "io": None,
    "testing": None,
    "filters": None,
    "morphology": None,
    "exposure": None,
    "edges": None,
    "transform": None,
    "threshold": None,
    "segmentation": None,
    "batching": None,
    "chunked": None,
    "pipeline": None,
    "samples": None,
    "viz": None,
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'voxseg' has no attribute {name!r}")
    target = _LAZY[name]
    if target is None:
        return importlib.import_module(f".{name}", __name__)
    module_name, attribute = target if isinstance(target, tuple) else (target, name)
    return getattr(importlib.import_module(f".{module_name}", __name__), attribute)


def __dir__():
    return __all__
