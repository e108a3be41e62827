"""Interactive viewing in Jupyter: a plane explorer with a label overlay.

:func:`explore` needs ``ipywidgets`` (``pip install voxseg[notebook]``),
imported only when called. :func:`show_plane` (from
:mod:`voxseg.report.figures`) draws one plane as a matplotlib figure and
works anywhere.
"""

from __future__ import annotations

import io

import numpy as np

from .errors import ParameterError
from .report.figures import montage, orthogonal_planes, show_plane, unit_label
from .volume import Volume, as_spacing

__all__ = ["explore", "show_plane", "orthogonal_planes", "montage"]

_AXES = ("z", "y", "x")


def _ipywidgets():
    try:
        import ipywidgets
    except ImportError as exc:
        raise ImportError(
            "voxseg.viz.explore needs ipywidgets; install it with `pip install voxseg[notebook]`"
        ) from exc
    return ipywidgets


def explore(volume, labels=None, *, spacing=None, unit="um", overlay="outlines", dpi=80):
    """A notebook widget to browse the planes of a volume along any axis.

    A slider moves through the planes, buttons choose the axis (z, y, x) and
    the label overlay (off, outlines, filled). Planes are drawn in physical
    proportions with a scale bar (see :func:`show_plane`).

    Parameters
    ----------
    volume : ndarray, shape (z, y, x), or Volume
    labels : ndarray of int, optional
        Same shape as `volume`.
    spacing : sequence of 3 float, optional
        Voxel size (z, y, x); a Volume's own spacing is used when omitted.
    unit : str
    overlay : {"outlines", "filled", "off"}
        The initial overlay.
    dpi : float
        Resolution of the drawn planes.

    Returns
    -------
    ipywidgets.VBox
        Display it by making it the last expression of a cell.

    Raises
    ------
    ImportError
        If ipywidgets is not installed.
    """
    widgets = _ipywidgets()
    if isinstance(volume, Volume):
        if spacing is None:
            spacing, unit = volume.spacing, volume.unit
        volume = volume.data
    data = np.asarray(volume)
    if data.ndim != 3:
        raise ParameterError(f"volume must be a 3D array (z, y, x), got shape {data.shape!r}")
    spacing = as_spacing(spacing, 3)
    if labels is not None:
        labels = np.asarray(labels.data if isinstance(labels, Volume) else labels)
        if labels.shape != data.shape:
            raise ParameterError(
                f"labels must have the volume's shape {data.shape!r}, got {labels.shape!r}"
            )

    axis = widgets.ToggleButtons(options=[("z", 0), ("y", 1), ("x", 2)], value=0, description="axis")
    plane = widgets.IntSlider(
        min=0, max=data.shape[0] - 1, value=data.shape[0] // 2, description="plane", continuous_update=True
    )
    mode = widgets.ToggleButtons(
        options=["off", "outlines", "filled"], value=overlay if labels is not None else "off",
        description="labels", disabled=labels is None,
    )
    image = widgets.Image(format="png")
    caption = widgets.Label()

    def redraw(*_):
        a, i = axis.value, plane.value
        fig = show_plane(data, axis=a, index=i, labels=labels, overlay=mode.value, spacing=spacing, unit=unit)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
        image.value = buf.getvalue()
        caption.value = f"{_AXES[a]} = {i} of {data.shape[a] - 1}  ({i * spacing[a]:.4g} {unit_label(unit)})"

    def change_axis(_):
        n = data.shape[axis.value]
        plane.unobserve(redraw, names="value")
        try:
            plane.value = min(plane.value, n - 1)
            plane.max = n - 1
            plane.value = n // 2
        finally:
            plane.observe(redraw, names="value")
        redraw()

    axis.observe(change_axis, names="value")
    plane.observe(redraw, names="value")
    mode.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([axis, mode]), plane, caption, image])
