"""Figures and the self-contained HTML report.

``voxseg.report.figures`` draws matplotlib figures in physical units;
``voxseg.report.html`` assembles one offline HTML file with a slice
explorer, a 3D view and the objects table. Both are imported lazily.
"""

import importlib

# public name -> submodule that defines it
_LAZY = {
    "build_report": "html",
    "write_report": "html",
    "figures": None,
    "html": None,
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'voxseg.report' has no attribute {name!r}")
    module_name = _LAZY[name]
    if module_name is None:
        return importlib.import_module(f".{name}", __name__)
    return getattr(importlib.import_module(f".{module_name}", __name__), name)


def __dir__():
    return __all__
