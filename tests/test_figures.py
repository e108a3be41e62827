"""Figures: physical proportions, overlays, thresholds and meshes checked on rendered pixels."""

import math
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from voxseg.errors import ParameterError
from voxseg.report import figures
from voxseg.report._meshes import object_mesh
from voxseg.volume import Volume


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def balls(shape, spacing, centres, radii):
    """Labels of physical balls (centres in voxels, radii in the unit of spacing)."""
    grid = np.indices(shape, dtype=float)
    labels = np.zeros(shape, np.uint16)
    for i, (c, r) in enumerate(zip(centres, radii), start=1):
        d2 = sum(((g - ci) * s) ** 2 for g, ci, s in zip(grid, c, spacing))
        labels[d2 <= r**2] = i
    return labels


def volume_with_balls(rng, shape=(20, 40, 40), spacing=(1.0, 1.0, 1.0)):
    nz, ny, nx = shape
    centres = [(nz / 2, ny / 4, nx / 4), (nz / 2, ny / 2, 3 * nx / 4), (nz / 3, 3 * ny / 4, nx / 2)]
    r = 0.18 * min(n * s for n, s in zip(shape, spacing))
    labels = balls(shape, spacing, centres, [r, 0.8 * r, 0.6 * r])
    image = (labels > 0) * 200.0 + rng.normal(50, 10, shape)
    return image.astype(np.float32), labels


def render(fig):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def box(ax):
    bb = ax.get_window_extent()
    return bb.width, bb.height


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.5, 0.5), (0.29, 0.26, 0.26)])
@pytest.mark.parametrize("shape", [(20, 40, 30), (12, 64, 48)])
def test_orthogonal_planes_have_physical_proportions(rng, shape, spacing):
    image = rng.random(shape, dtype=np.float32)
    fig = figures.orthogonal_planes(image, spacing=spacing)
    render(fig)
    ax_xy, ax_zy, ax_xz = image_axes(fig)
    (nz, ny, nx), (sz, sy, sx) = shape, spacing
    X, Y, Z = nx * sx, ny * sy, nz * sz
    (w_xy, h_xy), (w_zy, h_zy), (w_xz, h_xz) = box(ax_xy), box(ax_zy), box(ax_xz)
    # each panel's aspect is its physical aspect (1 % for pixel rounding)
    assert w_xy / h_xy == pytest.approx(X / Y, rel=0.01)
    assert w_zy / h_zy == pytest.approx(Z / Y, rel=0.01)
    assert w_xz / h_xz == pytest.approx(X / Z, rel=0.01)
    # and all panels share one scale, so sizes compare like physical lengths
    assert w_xy / w_zy == pytest.approx(X / Z, rel=0.02)
    assert h_xy / h_xz == pytest.approx(Y / Z, rel=0.02)
    # the image extents are the physical extents, voxel centres at i * spacing
    assert ax_xy.images[0].get_extent() == pytest.approx([-sx / 2, (nx - 0.5) * sx, (ny - 0.5) * sy, -sy / 2])


def test_orthogonal_planes_show_the_requested_planes(rng):
    image = rng.random((10, 12, 14))
    fig = figures.orthogonal_planes(image, position=(3, 4, 5), scale_bar=False)
    ax_xy, ax_zy, ax_xz = image_axes(fig)
    np.testing.assert_array_equal(ax_xy.images[0].get_array(), image[3])
    np.testing.assert_array_equal(ax_zy.images[0].get_array(), image[:, :, 5].T)
    np.testing.assert_array_equal(ax_xz.images[0].get_array(), image[:, 4, :])
    with pytest.raises(ParameterError, match="position"):
        figures.orthogonal_planes(image, position=(10, 0, 0))


def test_orthogonal_planes_take_a_volume_spacing(rng):
    image = rng.random((10, 20, 20))
    fig = figures.orthogonal_planes(Volume(image, spacing=(3.0, 1.0, 1.0), unit="nm"))
    render(fig)
    w, h = box(image_axes(fig)[2])  # xz
    assert w / h == pytest.approx(20 / 30, rel=0.01)
    assert "nm" in image_axes(fig)[0].get_xlabel()


def test_overlay_changes_pixels_only_where_there_are_labels(rng):
    image, labels = volume_with_balls(rng)
    plain = render(figures.orthogonal_planes(image, scale_bar=False))
    empty = render(figures.orthogonal_planes(image, labels=np.zeros_like(labels), scale_bar=False))
    outlined = render(figures.orthogonal_planes(image, labels=labels, scale_bar=False))
    filled = render(figures.orthogonal_planes(image, labels=labels, overlay="filled", scale_bar=False))
    np.testing.assert_array_equal(plain, empty)
    changed = np.any(outlined != plain, axis=-1)
    assert changed.sum() > 200
    # filled paints the insides too: more pixels, covering the outlines
    filled_changed = np.any(filled != plain, axis=-1)
    assert filled_changed.sum() > 1.5 * changed.sum()
    assert (filled_changed & changed).sum() >= 0.95 * changed.sum()
    # outline pixels carry label colours: saturated, unlike the grey image
    rgb = outlined[changed][:, :3].astype(int)
    assert np.median(rgb.max(axis=1) - rgb.min(axis=1)) > 60


def test_scale_bar_has_a_round_length(rng):
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    fig = figures.orthogonal_planes(rng.random((10, 50, 73)), spacing=(1, 0.26, 0.26), unit="um")
    bars = [a for a in image_axes(fig)[0].artists if isinstance(a, AnchoredSizeBar)]
    assert len(bars) == 1
    text = bars[0].txt_label.get_text()
    value = float(text.split()[0])
    assert text.endswith("µm")
    mantissa = value / 10 ** math.floor(math.log10(value))
    assert min(abs(mantissa - m) for m in (1, 2, 5)) < 1e-9
    assert 73 * 0.26 / 10 < value <= 73 * 0.26 / 5


@pytest.mark.parametrize("nz, step", [(10, 3), (12, 4), (7, 1), (5, 10)])
def test_montage_shows_every_step_plane(rng, nz, step):
    image = rng.random((nz, 8, 9))
    fig = figures.montage(image, step=step)
    assert len(fig.axes) == math.ceil(nz / step)
    for ax, z in zip(fig.axes, range(0, nz, step)):
        np.testing.assert_array_equal(ax.images[0].get_array(), image[z])
        assert ax.get_title().startswith(f"z = {z} ")


def test_montage_outlines_planes_with_objects(rng):
    image, labels = volume_with_balls(rng)
    raw = figures.montage(image, step=5, spacing=(1, 1, 1))
    over = figures.montage(image, labels=labels, step=5, spacing=(1, 1, 1))
    assert [len(ax.images) for ax in raw.axes] == [1, 1, 1, 1]
    assert [len(ax.images) for ax in over.axes] == [2, 2, 2, 2]
    # the overlay of plane 0 (no objects) is empty, of plane 10 not
    assert over.axes[0].images[1].get_array()[..., 3].max() == 0
    assert over.axes[2].images[1].get_array()[..., 3].max() == 1
    assert np.any(render(over) != render(raw))


def test_montage_aspect_follows_spacing(rng):
    fig = figures.montage(rng.random((4, 10, 20)), step=1, spacing=(1, 2.0, 0.5))
    render(fig)
    w, h = box(fig.axes[0])
    assert w / h == pytest.approx((20 * 0.5) / (10 * 2.0), rel=0.02)


def test_histogram_threshold_lines_and_cumulative(rng):
    data = rng.normal(100, 20, 5000)
    fig = figures.histogram(data, thresholds={"otsu": 97.5, "li": 80}, nbins=64)
    ax, twin = fig.axes
    assert [line.get_xdata()[0] for line in ax.lines] == [97.5, 80]
    assert [line.get_xdata()[1] for line in ax.lines] == [97.5, 80]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "otsu = 97.5" in texts and "li = 80" in texts
    cdf = twin.lines[0].get_ydata()
    assert cdf[-1] == pytest.approx(1.0)
    assert np.all(np.diff(cdf) >= 0)
    counts = ax.patches[0].get_data().values
    assert counts.sum() == 5000 and len(counts) == 64


def test_histogram_accepts_a_precomputed_histogram(rng):
    from skimage.exposure import histogram as skhist

    data = rng.integers(0, 50, 1000)
    counts, centres = skhist(data)
    fig = figures.histogram(hist=(counts, centres), thresholds=25, log=True)
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.patches[0].get_data().values, counts)
    assert ax.get_yscale() == "log"
    assert ax.lines[0].get_xdata()[0] == 25
    with pytest.raises(ParameterError, match="hist"):
        figures.histogram()


def test_surface_3d_one_mesh_per_object_inside_the_volume(rng):
    spacing = (2.0, 0.5, 0.7)
    shape = (12, 40, 36)
    _, labels = volume_with_balls(rng, shape, spacing)
    fig = figures.surface_3d(labels, spacing=spacing)
    ax = fig.axes[0]
    meshes = [c for c in ax.collections if isinstance(c, Poly3DCollection)]
    assert len(meshes) == 3
    assert sorted(c.get_label() for c in meshes) == ["label 1", "label 2", "label 3"]
    (nz, ny, nx), (sz, sy, sx) = shape, spacing
    hi = np.array([(nx - 0.5) * sx, (ny - 0.5) * sy, (nz - 0.5) * sz])
    for coll in meshes:
        verts = np.asarray(coll._faces)[..., :3].reshape(-1, 3)  # (x, y, z) triangles
        assert verts.size
        assert np.all(verts >= -0.5 * np.array([sx, sy, sz]) - 1e-6)
        assert np.all(verts <= hi + 1e-6)
    # the axes box has physical proportions
    physical = np.array([nx * sx, ny * sy, nz * sz])
    aspect = np.asarray(ax.get_box_aspect())
    np.testing.assert_allclose(aspect / aspect[0], physical / physical[0], rtol=1e-6)
    colors = {tuple(np.round(c.get_facecolor()[0][:3], 2)) for c in meshes}
    assert len(colors) == 3


def test_surface_3d_caps_the_object_count(rng):
    _, labels = volume_with_balls(rng)
    fig = figures.surface_3d(labels, max_objects=2)
    assert len(fig.axes[0].collections) == 2
    assert fig.axes[0].get_title() == "2 largest of 3 objects"
    fig = figures.surface_3d(labels, label_ids=[3])
    assert [c.get_label() for c in fig.axes[0].collections] == ["label 3"]


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.5, 0.5)])
def test_object_mesh_encloses_the_ball_volume(spacing):
    radius = 6.0
    shape = tuple(int(2 * radius / s) + 5 for s in spacing)
    centre = tuple(n // 2 for n in shape)
    labels = balls(shape, spacing, [centre], [radius])
    verts, faces = object_mesh(labels, 1, spacing=spacing)
    tri = verts[faces].astype(float)
    volume = abs(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum()) / 6
    assert volume == pytest.approx(4 / 3 * np.pi * radius**3, rel=0.1)
    centroid = verts.mean(axis=0)
    np.testing.assert_allclose(centroid, np.array(centre) * spacing, atol=max(spacing))


def test_distributions_count_every_object():
    table = pd.DataFrame({"label": [1, 2, 3, 4], "volume": [10.0, 20.0, 30.0, 35.0],
                          "sphericity": [0.9, 0.8, np.nan, 0.7]})
    fig = figures.distributions(table, unit="um")
    vol_ax, sph_ax = fig.axes
    assert vol_ax.patches[0].get_data().values.sum() == 4
    assert sph_ax.patches[0].get_data().values.sum() == 3  # NaN left out
    assert vol_ax.get_xlabel() == "volume (µm³)"
    empty = figures.distributions(table[["label"]])
    assert [t.get_text() for t in empty.axes[0].texts] == ["no volume values"]


def test_threshold_comparison_shows_each_mask(rng):
    image, labels = volume_with_balls(rng)
    results = [
        {"name": "otsu", "value": 150.0, "foreground_fraction": 0.1, "object_count": 3},
        {"name": "li", "value": 80.0, "foreground_fraction": 0.25, "object_count": 7, "mask": labels > 0},
    ]
    fig = figures.threshold_comparison(image, results, spacing=(1, 1, 1))
    assert len(fig.axes) == 9
    titles = [sf.get_suptitle() for sf in fig.subfigs]
    assert titles[1] == "otsu\nthreshold 150, foreground 10.0%, 3 objects"
    assert titles[2] == "li\nthreshold 80, foreground 25.0%, 7 objects"
    pz = image.shape[0] // 2
    np.testing.assert_array_equal(fig.subfigs[1].axes[0].images[0].get_array(), image[pz] > 150)
    np.testing.assert_array_equal(fig.subfigs[2].axes[0].images[0].get_array(), labels[pz] > 0)
    with pytest.raises(ParameterError, match="name"):
        figures.threshold_comparison(image, [{"value": 1}])


def test_save_figure_is_reproducible(tmp_path, rng):
    image, labels = volume_with_balls(rng)
    paths = []
    for name in ("a.png", "b.png"):
        fig = figures.orthogonal_planes(image, labels=labels)
        paths.append(figures.save_figure(fig, tmp_path / name, dpi=60))
    a, b = (p.read_bytes() for p in paths)
    assert a[:8] == b"\x89PNG\r\n\x1a\n"
    assert a == b
    assert b"Software" not in a and b"matplotlib" not in a.lower()
    from voxseg.errors import OutputError

    with pytest.raises(OutputError):
        figures.save_figure(fig, tmp_path / "missing" / "c.png")


def test_label_colors_are_distinct_and_stable():
    colors = figures.label_colors(np.arange(1, 41))
    assert colors.dtype == np.uint8 and colors.shape == (40, 3)
    assert len({tuple(c) for c in colors}) == 40
    np.testing.assert_array_equal(figures.label_colors([5, 1])[0], colors[4])


@pytest.mark.parametrize("axis, expected", [("z", 30 / 40), ("y", 30 / 20), (2, 40 / 20)])
def test_show_plane_aspect(rng, axis, expected):
    shape = (10, 20, 15)
    fig = figures.show_plane(rng.random(shape), axis=axis, spacing=(2, 2, 2), labels=np.zeros(shape, int))
    render(fig)
    w, h = box(fig.axes[0])
    assert w / h == pytest.approx(expected, rel=0.01)


def test_explore_without_ipywidgets_says_what_to_install(monkeypatch):
    from voxseg import viz

    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    with pytest.raises(ImportError, match=r"pip install voxseg\[notebook\]"):
        viz.explore(np.zeros((3, 4, 4)))


def test_figures_reject_wrong_shapes():
    with pytest.raises(ParameterError, match="3D"):
        figures.orthogonal_planes(np.zeros((4, 4)))
    with pytest.raises(ParameterError, match="labels must have"):
        figures.montage(np.zeros((4, 4, 4)), labels=np.zeros((4, 4, 5), int))
