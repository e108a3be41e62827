"""Tests of voxseg.measure: analytic truth at anisotropic spacing, edge cases, meshes."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from scipy.special import ellipeinc, ellipkinc

from voxseg.errors import OutputExistsError, ParameterError
from voxseg.measurements import (
    COLUMNS,
    INTENSITY_STATISTICS,
    export_meshes,
    measure,
    object_mesh,
    summarize,
)
from voxseg.volume import Volume

SPACING = (2.0, 0.5, 0.5)


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def digitised_ellipsoid(semi_axes, spacing, centre_index, shape):
    """Voxels whose centre lies in the ellipsoid (physical semi-axes, centre in voxel indices)."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    q = sum(((g - c) * s / a) ** 2 for g, c, s, a in zip(grids, centre_index, spacing, semi_axes))
    return q <= 1.0


def ellipsoid_area(a, b, c):
    """Exact surface area of an ellipsoid (Legendre's form with elliptic integrals)."""
    a, b, c = sorted((a, b, c), reverse=True)
    if a == c:
        return 4 * math.pi * a * a
    phi = math.acos(c / a)
    m = (a * a * (b * b - c * c)) / (b * b * (a * a - c * c))
    return 2 * math.pi * c * c + 2 * math.pi * a * b / math.sin(phi) * (
        ellipeinc(phi, m) * math.sin(phi) ** 2 + ellipkinc(phi, m) * math.cos(phi) ** 2
    )


def thomsen_area(a, b, c, p=1.6075):
    return 4 * math.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)


def mc_reference(mask, spacing):
    """skimage's marching cubes + mesh_surface_area on the 1-voxel zero-padded mask."""
    from skimage.measure import marching_cubes, mesh_surface_area

    verts, faces, _, _ = marching_cubes(np.pad(mask, 1).astype(np.float32), 0.5, spacing=spacing)
    verts = verts.astype(np.float64)  # at unit spacing skimage keeps float32
    return verts, faces, mesh_surface_area(verts, faces)


# ---------------------------------------------------------------- analytic truth


def test_sphere_at_anisotropic_spacing():
    radius = 10.0  # physical; 20 voxels along y and x, 5 along z
    shape = (14, 46, 46)
    centre = (6.5, 22.5, 22.5)  # a voxel corner: the digitisation is symmetric about it
    labels = digitised_ellipsoid((radius,) * 3, SPACING, centre, shape).astype(np.uint16)
    row = measure(labels, spacing=SPACING).iloc[0]

    volume = 4 / 3 * math.pi * radius**3
    assert row.volume == pytest.approx(volume, rel=0.01)
    assert row.volume == row.voxels * 0.5
    assert row.equivalent_diameter == pytest.approx(2 * radius, rel=0.01)
    for axis, c in zip("zyx", centre):
        assert row[f"centroid_{axis}"] == pytest.approx(c * SPACING["zyx".index(axis)], abs=1e-6)
    assert row.axis_major_length == pytest.approx(2 * radius, rel=0.02)
    assert row.axis_minor_length == pytest.approx(2 * radius, rel=0.02)
    assert row.elongation == pytest.approx(1.0, abs=0.03)
    area = 4 * math.pi * radius**2
    assert row.surface_area == pytest.approx(area, rel=0.03)
    assert row.sphericity == pytest.approx(area / row.surface_area * (row.volume / volume) ** (2 / 3))
    assert row.sphericity == pytest.approx(1.0, abs=0.03)
    # solidity is that of the binary (terraced) marching-cubes mesh
    assert 0.85 < row.solidity <= 1.0
    # the mesh spans one voxel more than the outermost voxel centres along z
    assert 2 * radius <= row.feret_max <= 2 * radius + 2.0
    assert not row.touches_border


def test_sphere_isotropic_shape_factors():
    radius = 15.0
    shape = (33, 33, 33)
    centre = (16, 16, 16)
    labels = digitised_ellipsoid((radius,) * 3, (1, 1, 1), centre, shape).astype(np.uint8)
    row = measure(labels).iloc[0]
    assert row.volume == pytest.approx(4 / 3 * math.pi * radius**3, rel=0.01)
    assert row.surface_area == pytest.approx(4 * math.pi * radius**2, rel=0.01)
    assert row.sphericity == pytest.approx(1.0, abs=0.015)
    assert row.solidity == pytest.approx(0.955, abs=0.02)  # of the binary mesh
    assert row.feret_max == pytest.approx(2 * radius + 1, abs=1.0)


def test_triaxial_ellipsoid_at_anisotropic_spacing():
    semi = (12.0, 7.0, 5.0)  # physical; 6, 14 and 10 voxels
    shape = (16, 34, 26)
    centre = (7.5, 16.5, 12.5)
    labels = np.zeros(shape, np.int32)
    labels[digitised_ellipsoid(semi, SPACING, centre, shape)] = 3
    row = measure(labels, spacing=SPACING).iloc[0]

    assert row.label == 3
    assert row.volume == pytest.approx(4 / 3 * math.pi * np.prod(semi), rel=0.01)
    assert row.centroid_z == pytest.approx(centre[0] * 2.0, abs=1e-6)
    assert row.centroid_y == pytest.approx(centre[1] * 0.5, abs=1e-6)
    assert row.centroid_x == pytest.approx(centre[2] * 0.5, abs=1e-6)
    assert row.axis_major_length == pytest.approx(2 * semi[0], rel=0.02)
    assert row.axis_minor_length == pytest.approx(2 * semi[2], rel=0.02)
    assert row.elongation == pytest.approx(semi[0] / semi[2], rel=0.03)
    exact = ellipsoid_area(*semi)
    assert thomsen_area(*semi) == pytest.approx(exact, rel=0.011)
    assert row.surface_area == pytest.approx(exact, rel=0.03)


def digitised_solid(semi, spacing, offset, rotation=None):
    """A digitised ellipsoid (physical semi-axes, rotated by `rotation`) centred `offset` voxels from a voxel centre."""
    half = [int(math.ceil(max(semi) / s)) + 2 for s in spacing]
    axes = [(np.arange(2 * h + 1) - h - o) * s for h, o, s in zip(half, offset, spacing)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    if rotation is not None:
        points = points @ rotation
    return (((points / np.asarray(semi)) ** 2).sum(-1) <= 1).astype(np.uint8)


def random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


SHAPES = {  # semi-axes in units of the radius along the fine axes
    "ball": (1.0, 1.0, 1.0),
    "ellipsoid flat along z": (1.0, 1.5, 2.0),
    "ellipsoid long along z": (2.0, 1.5, 1.0),
    "ellipsoid rotated": (1.0, 1.5, 2.0),
}


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.5, 0.5), (4.0, 1.0, 1.0), (1.0, 3.0, 1.0)])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("radius", [15, 30])
def test_surface_area_of_balls_and_triaxial_ellipsoids(rng, spacing, shape, radius):
    """Within 3 % of the exact area at a random sub-voxel position (and orientation)."""
    semi = np.array(SHAPES[shape]) * radius * min(spacing)
    rotation = random_rotation(rng) if shape == "ellipsoid rotated" else None
    for _ in range(2):
        labels = digitised_solid(semi, spacing, rng.uniform(-0.5, 0.5, 3), rotation)
        row = measure(labels, spacing=spacing).iloc[0]
        assert row.surface_area == pytest.approx(ellipsoid_area(*semi), rel=0.03)
        if shape == "ball":
            assert row.sphericity == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.5, 0.5)])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_surface_area_at_radius_10(rng, spacing, shape):
    """Radius 10 voxels: on 4:1 voxels that is 2.5 slices, and the voxels themselves
    miss up to 4 % of the volume at some positions; the area is then within 3 %
    of that of the same shape with the voxels' volume."""
    semi = np.array(SHAPES[shape]) * 10 * min(spacing)
    rotation = random_rotation(rng) if shape == "ellipsoid rotated" else None
    for _ in range(3):
        labels = digitised_solid(semi, spacing, rng.uniform(-0.5, 0.5, 3), rotation)
        row = measure(labels, spacing=spacing).iloc[0]
        scale = (row.volume / (4 / 3 * math.pi * np.prod(semi))) ** (2 / 3)
        assert row.surface_area == pytest.approx(ellipsoid_area(*semi) * scale, rel=0.03)
        if spacing == (1.0, 1.0, 1.0):
            assert row.surface_area == pytest.approx(ellipsoid_area(*semi), rel=0.03)
        if shape == "ball":
            assert row.sphericity == pytest.approx(1.0, abs=0.03)


def box_area(dims):
    a, b, c = dims
    return 2 * (a * b + b * c + c * a)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.5, 0.5)])
@pytest.mark.parametrize("shape", [(2, 40, 40), (40, 40, 2), (40, 2, 40)])
def test_plate_two_voxels_thick(spacing, shape):
    """Thin parts follow the voxels: within 10 % of the box (measured 2 to 8 % below)."""
    labels = np.zeros(tuple(n + 4 for n in shape), np.uint8)
    labels[2:-2, 2:-2, 2:-2] = 1
    area = measure(labels, spacing=spacing).surface_area[0]
    assert area == pytest.approx(box_area(np.multiply(shape, spacing)), rel=0.10)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.5, 0.5)])
@pytest.mark.parametrize("axis", [0, 2])
def test_rod_one_voxel_wide(spacing, axis):
    """Marching cubes gives a one-voxel rod a diamond cross-section: 20 to 35 % below
    its voxel box, within 15 % of the elliptic cylinder inscribed in that box."""
    shape = [1, 1, 1]
    shape[axis] = 40
    labels = np.zeros(tuple(n + 4 for n in shape), np.uint8)
    labels[2:-2, 2:-2, 2:-2] = 1
    area = measure(labels, spacing=spacing).surface_area[0]
    dims = np.multiply(shape, spacing)
    a, b = (dims[k] / 2 for k in range(3) if k != axis)
    h = ((a - b) / (a + b)) ** 2
    perimeter = math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))  # Ramanujan
    cylinder = perimeter * dims[axis] + 2 * math.pi * a * b
    assert area == pytest.approx(cylinder, rel=0.15)
    assert 0.6 * box_area(dims) < area < 0.85 * box_area(dims)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.3, 1.7, 2.9)])
def test_one_voxel_thin_objects_keep_the_binary_mesh(rng, spacing):
    """Where every part is one voxel thin, the mesh is plain marching cubes."""
    for _ in range(5):
        mask = np.zeros((6, 7, 8), bool)
        k = rng.integers(3)
        index = [slice(1, -1)] * 3
        index[k] = rng.integers(1, mask.shape[k] - 1)
        mask[tuple(index)] = rng.random(mask[tuple(index)].shape) < 0.5  # a sheet one voxel thick
        if spacing == (0.3, 1.7, 2.9) and k != 2:
            continue  # thin across slices (x here) is rounded
        if not mask.any():
            continue
        row = measure(mask.astype(np.uint8), spacing=spacing).iloc[0]
        assert row.surface_area == pytest.approx(mc_reference(mask, spacing)[2], rel=1e-6)


def test_axis_lengths_follow_the_solid_ellipsoid_convention():
    # variance of a solid ellipsoid along a semi-axis a is a^2 / 5, so the
    # moments of a finely digitised ellipsoid give back 2a
    semi = (20.0, 30.0, 12.0)
    shape = (44, 64, 28)
    centre = (21.5, 31.5, 13.5)
    labels = digitised_ellipsoid(semi, (1, 1, 1), centre, shape).astype(np.uint8)
    row = measure(labels).iloc[0]
    assert row.axis_major_length == pytest.approx(60.0, rel=0.005)
    assert row.axis_minor_length == pytest.approx(24.0, rel=0.005)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), SPACING, (0.7, 1.3, 0.9)])
def test_moments_match_skimage_regionprops(rng, spacing):
    from skimage.measure import regionprops

    labels = ndi.label(ndi.gaussian_filter(rng.random((20, 24, 22)), 2) > 0.5)[0]
    table = measure(labels, spacing=spacing)
    props = regionprops(labels, spacing=spacing)
    assert list(table.label) == [p.label for p in props]
    for (_, row), p in zip(table.iterrows(), props):
        assert row.voxels == p.num_pixels
        assert row.volume == pytest.approx(p.area)
        # with spacing, skimage's centroid is in physical units too
        np.testing.assert_allclose(row[["centroid_z", "centroid_y", "centroid_x"]].to_numpy(float),
                                   p.centroid, atol=1e-9)
        assert row.axis_major_length == pytest.approx(p.axis_major_length, rel=1e-9, abs=1e-12)
        assert row.axis_minor_length == pytest.approx(p.axis_minor_length, rel=1e-9, abs=1e-9)
        assert (row.bbox_z0, row.bbox_y0, row.bbox_x0, row.bbox_z1, row.bbox_y1, row.bbox_x1) == p.bbox


def mesh_area(verts, faces):
    tri = verts[faces]
    return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum()


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), SPACING, (0.3, 1.7, 2.9)])
def test_mesh_columns_match_their_meshes(rng, spacing):
    """surface_area is the area of object_mesh, which has marching cubes' triangles;
    solidity and feret_max are those of the binary marching-cubes mesh."""
    from scipy.spatial import ConvexHull
    from scipy.spatial.distance import pdist

    for _ in range(15):
        shape = tuple(rng.integers(1, 12, 3))
        mask = rng.random(shape) < rng.uniform(0.1, 0.9)
        mask = ndi.binary_opening(mask) if rng.random() < 0.5 and ndi.binary_opening(mask).any() else mask
        if not mask.any():
            continue
        row = measure(mask.astype(np.uint8), spacing=spacing).iloc[0]
        verts, faces = object_mesh(mask.astype(np.uint8), 1, spacing=spacing)
        assert row.surface_area == pytest.approx(mesh_area(verts, faces), rel=1e-5)  # float32 sums
        ref_verts, ref_faces, _ = mc_reference(mask, spacing)
        assert len(faces) == len(ref_faces)
        # every vertex stays on its voxel edge: within half a voxel of the binary one
        assert np.abs(np.sort(verts, 0) - np.sort(ref_verts - spacing, 0)).max() <= 0.5 * max(spacing) + 1e-9
        tri = ref_verts[ref_faces]
        mesh_volume = abs(np.einsum("ij,ij->", tri[:, 0], np.cross(tri[:, 1], tri[:, 2]))) / 6
        # the hull is computed on joggled points: exact to ~1e-9
        assert row.solidity == pytest.approx(min(mesh_volume / ConvexHull(ref_verts).volume, 1.0), rel=1e-7)
        assert row.feret_max == pytest.approx(pdist(ref_verts).max(), rel=1e-9)


# ---------------------------------------------------------------- labels and edge cases


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64])
def test_non_consecutive_labels_any_integer_dtype(dtype):
    labels = np.zeros((6, 7, 8), dtype)
    labels[1:3, 1:3, 1:3] = 100
    labels[4, 5, 6] = 3
    labels[1:5, 5, 1:4] = 17
    table = measure(labels, spacing=(1.0, 2.0, 3.0))
    assert list(table.label) == [3, 17, 100]
    assert list(table.voxels) == [1, 12, 8]
    assert list(table.volume) == [6.0, 72.0, 48.0]
    for name, dtype_name in COLUMNS.items():
        assert str(table[name].dtype) == dtype_name, name


def test_huge_label_values_are_renumbered_internally():
    labels = np.zeros((5, 5, 5), np.uint64)
    labels[1:3, 1:3, 1:3] = 2**40
    labels[4, 4, 4] = 7
    small = np.where(labels == 2**40, 8, labels).astype(np.uint8)
    big, ref = measure(labels), measure(small)
    assert list(big.label) == [7, 2**40]
    pd.testing.assert_frame_equal(big.drop(columns="label"), ref.drop(columns="label"))


def test_bool_labels_are_one_object():
    mask = np.zeros((4, 4, 4), bool)
    mask[1:3, 1:3, 1:3] = True
    table = measure(mask)
    assert list(table.label) == [1] and table.voxels[0] == 8


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), SPACING])
def test_single_voxel_object(spacing):
    labels = np.zeros((3, 3, 3), np.uint8)
    labels[1, 1, 1] = 5
    row = measure(labels, spacing=spacing).iloc[0]
    a, b, c = (s / 2 for s in spacing)
    octahedron = 4 * math.sqrt(a * a * b * b + b * b * c * c + a * a * c * c)
    assert row.voxels == 1
    assert row.volume == pytest.approx(np.prod(spacing))
    assert row.surface_area == pytest.approx(octahedron)
    assert math.isfinite(row.sphericity) and row.sphericity > 1
    assert row.solidity == pytest.approx(1.0)
    assert row.feret_max == pytest.approx(max(spacing))
    assert row.axis_major_length == 0 and row.axis_minor_length == 0
    assert math.isnan(row.elongation)
    assert row.centroid_z == pytest.approx(spacing[0])


def test_diagonal_plate_has_zero_minor_axis():
    labels = np.zeros((6, 8, 8), np.uint8)
    for k in range(1, 7):
        labels[1:5, k, k] = 1  # a plate in the plane y == x
    row = measure(labels, spacing=(0.3, 0.7, 0.7)).iloc[0]
    assert row.axis_minor_length == 0
    assert math.isnan(row.elongation)


def test_flat_and_line_objects():
    labels = np.zeros((5, 9, 9), np.uint8)
    labels[2, 1:8, 1:8] = 1  # one voxel thick plate
    labels[4, 0, 2:7] = 2  # a line of 5 voxels along x
    table = measure(labels, spacing=(1.0, 1.0, 0.5)).set_index("label")
    assert table.loc[1, "solidity"] == pytest.approx(1.0)
    assert math.isnan(table.loc[1, "elongation"])
    assert table.loc[2, "feret_max"] == pytest.approx(5 * 0.5)
    assert table.loc[2, "axis_minor_length"] == 0


@pytest.mark.parametrize("face", range(6))
def test_touches_border(face):
    labels = np.zeros((8, 9, 10), np.uint16)
    labels[3:5, 3:5, 3:5] = 1
    index = [slice(3, 5)] * 3
    axis, end = divmod(face, 2)
    index[axis] = slice(0, 2) if end == 0 else slice(labels.shape[axis] - 2, None)
    labels[tuple(index)] = 2
    table = measure(labels).set_index("label")
    assert not table.loc[1, "touches_border"]
    assert table.loc[2, "touches_border"]
    assert table["touches_border"].dtype == bool


def test_empty_label_image_gives_empty_table_with_header():
    table = measure(np.zeros((4, 5, 6), np.uint32), spacing=SPACING)
    assert len(table) == 0
    assert list(table.columns) == list(COLUMNS)
    assert {c: str(t) for c, t in table.dtypes.items()} == COLUMNS

    intensity = np.zeros((4, 5, 6, 2), np.float32)
    table = measure(np.zeros((4, 5, 6), np.uint8), intensity)
    expected = list(COLUMNS) + [f"intensity_{s}_c{c}" for s in INTENSITY_STATISTICS for c in range(2)]
    assert list(table.columns) == expected
    assert all(table[c].dtype == np.float64 for c in expected[len(COLUMNS):])


def test_volume_input_brings_spacing_and_unit():
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[1:3, 1:3, 1:3] = 1
    table = measure(Volume(labels, spacing=SPACING, unit="um"))
    assert table.volume[0] == 8 * 0.5
    assert table.attrs == {"spacing": SPACING, "unit": "um"}
    assert summarize(table)["volume_unit"] == "um^3"


# ---------------------------------------------------------------- intensity


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_intensity_statistics_match_numpy_on_crops(rng, dtype):
    labels = ndi.label(ndi.gaussian_filter(rng.random((16, 20, 18)), 2) > 0.52)[0]
    labels[labels > 0] += 10  # non-consecutive
    intensity = (rng.random(labels.shape) * 1000).astype(dtype)
    table = measure(labels, intensity, spacing=SPACING)
    assert len(table) > 1
    for _, row in table.iterrows():
        values = intensity[labels == row.label].astype(np.float64)
        assert row.intensity_mean == pytest.approx(values.mean(), rel=1e-12)
        assert row.intensity_min == values.min()
        assert row.intensity_max == values.max()
        assert row.intensity_std == pytest.approx(values.std(), rel=1e-9)
        assert row.intensity_median == np.median(values)
        assert row.intensity_sum == pytest.approx(values.sum(), rel=1e-12)


def test_multichannel_intensity_gets_suffixes(rng):
    labels = np.zeros((6, 6, 6), np.uint8)
    labels[1:3, 1:4, 1:4] = 1
    labels[4:6, 2:5, 0:2] = 2
    channels = rng.random((6, 6, 6, 3)).astype(np.float32)
    table = measure(labels, channels)
    for c in range(3):
        single = measure(labels, channels[..., c])
        for stat in INTENSITY_STATISTICS:
            np.testing.assert_allclose(table[f"intensity_{stat}_c{c}"], single[f"intensity_{stat}"],
                                       rtol=1e-12)
    assert "intensity_mean" not in table


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("shape", [(5, 5), (2, 3, 4, 5), ()])
def test_wrong_ndim_names_the_shape(shape):
    with pytest.raises(ParameterError, match=re_escape(repr(shape))):
        measure(np.zeros(shape, np.uint8))


def re_escape(text):
    import re

    return re.escape(text)


def test_bad_inputs_raise_parameter_error():
    labels = np.zeros((3, 3, 3), np.int16)
    with pytest.raises(ParameterError, match="integer dtype"):
        measure(labels.astype(float))
    with pytest.raises(ParameterError, match="-1"):
        measure(np.full((3, 3, 3), -1, np.int16))
    with pytest.raises(ParameterError, match=re_escape("(3, 3)")):
        measure(labels, np.zeros((3, 3)))
    with pytest.raises(ParameterError, match="spacing"):
        measure(labels, spacing=(1, 0, 1))
    with pytest.raises(ValueError):  # ParameterError is also a ValueError
        measure(labels, spacing=(1, 1))


# ---------------------------------------------------------------- summarize


def test_summarize_values_and_json():
    labels = np.zeros((4, 4, 12), np.uint8)
    labels[1:3, 1:3, 1:3] = 1
    labels[1:3, 1:3, 4:7] = 2
    labels[1:3, 1:3, 8:11] = 4
    table = measure(labels, spacing=0.5)
    stats = summarize(table, unit="um")
    assert stats["count"] == 3 and stats["unit"] == "um"
    for column in ("volume", "surface_area"):
        values = table[column].to_numpy()
        assert stats[f"{column}_total"] == pytest.approx(values.sum())
        assert stats[f"{column}_min"] == values.min()
        assert stats[f"{column}_max"] == values.max()
        assert stats[f"{column}_mean"] == pytest.approx(values.mean())
        assert stats[f"{column}_std"] == pytest.approx(values.std(ddof=1))
    assert all(type(v) in (int, float, str) for v in stats.values())
    json.dumps(stats, allow_nan=False)


def test_summarize_zero_and_one_object():
    empty = summarize(measure(np.zeros((3, 3, 3), np.uint8)))
    assert empty["count"] == 0 and empty["unit"] == "pixel"
    assert empty["volume_total"] == 0.0 and empty["surface_area_total"] == 0.0
    assert empty["volume_mean"] is None and empty["surface_area_std"] is None
    json.dumps(empty, allow_nan=False)

    labels = np.zeros((3, 3, 3), np.uint8)
    labels[1, 1, 1] = 1
    one = summarize(measure(labels))
    assert one["count"] == 1 and one["volume_mean"] == 1.0 and one["volume_std"] is None


def test_summarize_rejects_other_tables():
    with pytest.raises(ParameterError, match="surface_area"):
        summarize(pd.DataFrame({"volume": [1.0]}))


# ---------------------------------------------------------------- meshes


def test_object_mesh_is_in_whole_volume_physical_coordinates():
    import trimesh

    labels = np.zeros((10, 12, 14), np.uint8)
    labels[3:6, 4:9, 2:12] = 9
    verts, faces = object_mesh(labels, 9, spacing=SPACING)
    np.testing.assert_allclose(verts.min(0), (np.array([3, 4, 2]) - 0.5) * SPACING)
    np.testing.assert_allclose(verts.max(0), (np.array([5, 8, 11]) + 0.5) * SPACING)
    mesh = trimesh.Trimesh(verts[:, ::-1], faces, process=False)
    assert mesh.is_watertight and mesh.volume > 0  # outward faces when read as (x, y, z)
    for bbox in [(slice(3, 6), slice(4, 9), slice(2, 12)), (2, 3, 1, 7, 10, 13)]:
        v2, f2 = object_mesh(labels, 9, spacing=SPACING, bbox=bbox)
        np.testing.assert_allclose(v2, verts)
        np.testing.assert_array_equal(f2, faces)
    coarse, coarse_faces = object_mesh(labels, 9, spacing=SPACING, step_size=2)
    assert trimesh.Trimesh(coarse[:, ::-1], coarse_faces).is_watertight
    assert len(coarse_faces) < len(faces)


def test_object_mesh_errors():
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[1, 1, 1] = 1
    with pytest.raises(ParameterError, match="label 2"):
        object_mesh(labels, 2, spacing=None)
    with pytest.raises(ParameterError, match="bbox"):
        object_mesh(labels, 1, spacing=None, bbox=(0, 0, 0, 1, 1, 1))
    with pytest.raises(ParameterError, match="step_size"):
        object_mesh(labels, 1, spacing=None, step_size=0)


@pytest.mark.parametrize("fmt", ["ply", "stl"])
def test_export_meshes_round_trip(tmp_path, fmt):
    import trimesh

    labels = np.zeros((8, 10, 12), np.uint16)
    labels[1:4, 2:5, 3:9] = 4
    labels[5:7, 6:9, 1:3] = 11
    paths = export_meshes(labels, tmp_path / "meshes", spacing=SPACING, format=fmt)
    names = [p.name for p in paths]
    assert names == [f"label_4.{fmt}", f"label_11.{fmt}", "scene.glb"]
    table = measure(labels, spacing=SPACING).set_index("label")
    for label in (4, 11):
        mesh = trimesh.load(tmp_path / "meshes" / f"label_{label}.{fmt}", force="mesh")
        row = table.loc[label]
        lo = (row[["bbox_z0", "bbox_y0", "bbox_x0"]].to_numpy(float) - 0.5) * SPACING
        hi = (row[["bbox_z1", "bbox_y1", "bbox_x1"]].to_numpy(float) - 0.5) * SPACING
        np.testing.assert_allclose(mesh.bounds, [lo[::-1], hi[::-1]], atol=1e-5)  # (x, y, z)
        assert mesh.is_watertight
        assert mesh.area == pytest.approx(row.surface_area, rel=1e-5)
        assert mesh.volume > 0
    scene = trimesh.load(tmp_path / "meshes" / "scene.glb", force="scene")
    assert len(scene.geometry) == 2
    lo = np.array([1, 2, 1]) - 0.5
    hi = np.array([7, 9, 9]) - 0.5
    np.testing.assert_allclose(scene.bounds, [(lo * SPACING)[::-1], (hi * SPACING)[::-1]], atol=1e-5)


def test_export_meshes_refuses_to_overwrite(tmp_path):
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[1:3, 1:3, 1:3] = 1
    export_meshes(labels, tmp_path)
    with pytest.raises(OutputExistsError, match="label_1.ply"):
        export_meshes(labels, tmp_path)
    assert len(export_meshes(labels, tmp_path, overwrite=True)) == 2
    with pytest.raises(ParameterError, match="format"):
        export_meshes(labels, tmp_path, format="obj")
    assert export_meshes(np.zeros((2, 2, 2), np.uint8), tmp_path / "none") == []


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 7, 10, 1001])
def test_median_equals_numpy(rng, dtype, n):
    from voxseg.measurements import _median

    values = (rng.random(n) * 200 - (50 if np.dtype(dtype).kind != "u" else 0)).astype(dtype)
    assert _median(values) == pytest.approx(float(np.median(values.astype(np.float64))), rel=1e-12, abs=1e-12)
    if np.dtype(dtype).kind == "f" and n > 1:
        values[n // 2] = np.nan
        assert np.isnan(_median(values))
