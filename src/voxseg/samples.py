"""Sample volumes shipped with voxseg or generated with an exact truth.

``nuclei``: the 60 x 256 x 256 nuclei channel of the Allen Institute cells3d
stack (spacing 0.29 x 0.26 x 0.26 um), the scikit-image 3D tutorial's
``cells.tif``; ``nuclei_labels`` its reference segmentation of 20 nuclei
(BSD-3-Clause, see ``data/LICENSE-sample-data.txt``). ``beads`` and
``ellipsoids`` are synthetic (see :mod:`voxseg.testing`), made on demand.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import ParameterError

__all__ = ["SAMPLES", "sample_path", "load_sample"]

SAMPLES = {
    "nuclei": "confocal nuclei stack, 60x256x256 uint16, spacing 0.29 x 0.26 x 0.26 um",
    "nuclei_labels": "reference labels of the 20 nuclei in 'nuclei'",
    "beads": "synthetic micro-CT bead pack, 96x96x96 uint8, spacing 1 um, bead diameter 16 um",
    "ellipsoids": "synthetic touching ellipsoids, 24x96x96 uint16, spacing 2 x 0.5 x 0.5 um, diameter 12 um",
}
_FILES = {"nuclei": "nuclei.tif", "nuclei_labels": "nuclei_label.tif"}


def _check(name):
    if name not in SAMPLES:
        raise ParameterError(f"unknown sample {name!r}; available: {', '.join(SAMPLES)}")


def sample_path(name: str) -> Path:
    """Path of a bundled sample file (``nuclei`` or ``nuclei_labels``)."""
    _check(name)
    if name not in _FILES:
        raise ParameterError(f"sample {name!r} is generated, not bundled; use load_sample({name!r})")
    return Path(str(resources.files("voxseg") / "data" / _FILES[name]))


def load_sample(name: str):
    """A sample as a :class:`~voxseg.volume.Volume` (with its spacing).

    Examples
    --------
    >>> vol = load_sample("nuclei")
    >>> vol.shape, vol.spacing, vol.unit
    ((60, 256, 256), (0.29, 0.26, 0.26), 'um')
    """
    _check(name)
    from .volume import Volume

    if name in _FILES:
        from .io import read

        return read(sample_path(name))
    from . import testing

    if name == "beads":
        synthetic = testing.sphere_pack(shape=(96, 96, 96), diameter=16.0, seed=0)
    else:
        synthetic = testing.touching_ellipsoids(seed=0)
    return Volume(synthetic.image, synthetic.spacing, "um", "metadata", "ZYX", None,
                  {"labels": synthetic.labels, "diameter": synthetic.diameter})
