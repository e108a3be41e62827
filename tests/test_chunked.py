"""The chunked path gives exactly the in-memory result: labels voxel for voxel, pipeline, records, table."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from voxseg import exposure, segmentation
from voxseg.chunked import _engine, _stats, segment_chunked, segment_file_chunked
from voxseg.errors import PipelineError, VolumeTooLargeError
from voxseg.measurements import measure
from voxseg.pipeline import Pipeline
from voxseg.segmentation import segment
from voxseg.testing import sphere_pack, touching_ellipsoids


def assert_same(image, spacing, chunks, **options):
    """Run both paths; labels, resolved pipeline, records and table must agree."""
    ref = segment(image, spacing=spacing, **options)
    result = segment_chunked(image, spacing=spacing, chunks=chunks, progress=False, **options)
    labels = result.data.compute()
    assert labels.dtype == ref.data.dtype
    np.testing.assert_array_equal(labels, ref.data)
    assert result.pipeline.to_dict() == ref.pipeline.to_dict()
    assert result.records == ref.records
    expected = measure(ref.data, image, spacing=spacing)
    table = result.table
    assert list(table.columns) == list(expected.columns)
    assert len(table) == len(expected)
    for column in expected.columns:
        got, want = table[column].to_numpy(), expected[column].to_numpy()
        if want.dtype.kind in "biu":
            np.testing.assert_array_equal(got, want, err_msg=column)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=0, equal_nan=True, err_msg=column)
    return ref


@pytest.fixture
def small_work_blocks(monkeypatch):
    """Work blocks of one chunk: the distance halos and component groups cross many blocks."""
    monkeypatch.setattr(_engine, "WORK_BLOCK", 1)


@pytest.fixture(params=["full", "reduced"])
def resolution(request, monkeypatch):
    """Split at full resolution, or these small objects at reduced resolution (blocks of about 3 voxels)."""
    if request.param == "reduced":
        monkeypatch.setattr(segmentation, "REDUCED_DIAMETER_VOXELS", 2.5)
    return request.param


def blobs(shape, seed, sigma=2.0, fraction=0.55, dtype=np.uint16):
    """Random smooth blobs: objects of every shape, touching the border, with holes and bridges."""
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.normal(size=shape), sigma)
    field -= np.quantile(field, fraction)
    return np.clip(1000 + 3000 * field / np.abs(field).max(), 0, 4000).astype(dtype)


def paint(shape, masks, dtype=np.uint8):
    image = np.full(shape, 20, dtype)
    for mask in masks:
        image[mask] = 200
    return image


# -- the property: any volume, any chunks, same answer ---------------------------------------------------


volumes = st.sampled_from(["spheres", "ellipsoids", "blobs"])
spacings = st.sampled_from([(1.0, 1.0, 1.0), (2.0, 0.5, 0.5), (0.7, 0.3, 0.45)])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=volumes, seed=st.integers(0, 10**6), spacing=spacings,
       chunks=st.tuples(st.integers(5, 14), st.integers(5, 14), st.integers(5, 14)),
       given_diameter=st.booleans(), clear_border=st.booleans(), work=st.sampled_from([1, 256]),
       reduced=st.sampled_from([None, 3.0, 2.0]))
def test_chunked_equals_in_memory(monkeypatch, kind, seed, spacing, chunks, given_diameter, clear_border, work,
                                  reduced):
    monkeypatch.setattr(_engine, "WORK_BLOCK", work)
    if reduced:  # split these small objects at reduced resolution (blocks of 2 to 4 voxels)
        monkeypatch.setattr(segmentation, "REDUCED_DIAMETER_VOXELS", reduced)
    if kind == "spheres":
        vol = sphere_pack(shape=(20, 24, 22), spacing=spacing, diameter=7.0 * np.cbrt(np.prod(spacing)),
                          attempts=200, seed=seed)
        image, diameter = vol.image, vol.diameter
    elif kind == "ellipsoids":
        vol = touching_ellipsoids(shape=(10, 30, 28), diameter=6.0, seed=seed)
        image, spacing, diameter = vol.image, vol.spacing, vol.diameter
    else:
        image, diameter = blobs((18, 22, 20), seed), 5.0 * max(spacing)
    options = {"clear_border": clear_border}
    if given_diameter:
        options["diameter"] = diameter
    assert_same(image, spacing, chunks, **options)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int8, bool])
def test_other_types_take_exact_statistics(small_work_blocks, dtype):
    # 8/16-bit data are summarised by their histogram; other types by order statistics over blocks
    image = blobs((14, 20, 18), seed=3, dtype=np.uint16).astype(np.float64)
    if dtype is bool:
        image = image > 1100
    elif np.dtype(dtype).kind == "f":
        image = (image / 7.3 + np.random.default_rng(1).normal(0, 0.01, image.shape)).astype(dtype)
    else:
        image = (image - 1000).astype(np.int64) * (3 if dtype == np.int32 else 1)
        image = np.clip(image, np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)
    assert_same(image, (2.0, 0.5, 0.5), (5, 7, 6), diameter=3.0)


def test_float_volume_with_nan_and_inf():
    image = blobs((14, 18, 16), seed=5).astype(np.float32)
    rng = np.random.default_rng(0)
    image[rng.random(image.shape) < 0.02] = np.nan
    image[0, 0, :3] = np.inf
    with np.errstate(invalid="ignore"):
        assert_same(image, (1.0, 1.0, 1.0), (5, 7, 6))


# -- shapes that stitching and exactness must survive ----------------------------------------------------


def test_u_shaped_and_spiral_objects_leave_and_reenter_chunks(small_work_blocks, resolution):
    shape = (12, 40, 40)
    u = np.zeros(shape, bool)
    u[3:9, 4:30, 4:8] = True  # down
    u[3:9, 26:30, 4:30] = True  # across
    u[3:9, 4:30, 26:30] = True  # back up: leaves the 8 x 8 chunk at (0, 0) and comes back
    spiral = np.zeros(shape, bool)
    y, x, step = 33, 33, 0
    for length in (5, 5, 3, 3):
        dy, dx = [(0, 1), (1, 0), (0, -1), (-1, 0)][step % 4]
        for _ in range(length):
            spiral[4:8, y - 1:y + 1, x - 1:x + 1] = True
            y, x = min(max(y + dy, 1), 39), min(max(x + dx, 1), 39)
        step += 1
    image = paint(shape, [u, spiral])
    assert_same(image, (1.0, 1.0, 1.0), (4, 8, 8), diameter=6.0)


def test_object_spanning_many_chunks_and_border_objects(small_work_blocks, resolution):
    shape = (16, 30, 60)
    z, y, x = np.indices(shape)
    rod = ((z - 8) ** 2 + (y - 15) ** 2 < 16) & (x > 2) & (x < 57)  # crosses 5 chunks along x
    half = (z - 8) ** 2 + y**2 + (x - 30) ** 2 < 49  # cut by the volume face y = 0
    corner = z**2 + y**2 + x**2 < 36  # in a corner of the volume
    image = paint(shape, [rod, half, corner])
    for clear_border in (False, True):
        assert_same(image, (1.0, 1.0, 1.0), (6, 10, 12), diameter=8.0, clear_border=clear_border)


def test_contact_only_at_a_chunk_corner():
    # cubes meeting at a corner, or along an edge, exactly where chunks meet: not 6-connected, separate objects
    shape = (16, 16, 32)
    image = np.full(shape, 10, np.uint8)
    image[2:8, 2:8, 2:8] = 200
    image[8:14, 8:14, 8:14] = 200  # touches the first at the corner (8, 8, 8)
    image[2:8, 2:8, 18:24] = 200
    image[8:14, 8:14, 18:24] = 200  # touches the third along the edge z = y = 8
    ref = assert_same(image, (1.0, 1.0, 1.0), (8, 8, 8), diameter=6.0)
    assert ref.data.max() == 4


def test_touching_spheres_with_centres_in_different_chunks(small_work_blocks, resolution):
    shape = (24, 24, 40)
    z, y, x = np.indices(shape)
    a = (z - 12) ** 2 + (y - 12) ** 2 + (x - 12) ** 2 < 64
    b = (z - 12) ** 2 + (y - 12) ** 2 + (x - 26) ** 2 < 64
    image = paint(shape, [a, b])
    ref = assert_same(image, (1.0, 1.0, 1.0), (9, 9, 9), diameter=16.0)
    if resolution == "full":  # blocks of 6 voxels leave these spheres too few to split
        assert ref.data.max() == 2
    assert_same(image, (1.0, 1.0, 1.0), (9, 9, 9))  # diameter estimated


def test_distance_plateaus_and_holes(small_work_blocks, resolution):
    shape = (20, 30, 30)
    slabs = np.zeros(shape, bool)
    slabs[4:10, 3:27, 3:13] = True  # flat boxes: plateaus of the distance map
    slabs[4:10, 3:27, 13:23] = True
    shell = np.zeros(shape, bool)
    z, y, x = np.indices(shape)
    r = np.sqrt((z - 14) ** 2 + (y - 15) ** 2 + (x - 15) ** 2)
    shell = (r < 6) & (r >= 3)  # hollow ball: its hole crosses chunk faces and is filled
    shell &= z >= 11
    cave = np.zeros(shape, bool)
    cave[12:19, 20:29, 1:10] = True
    cave[14:17, 22:27, 0:8] = False  # a cavity open to the volume face x = 0: not a hole
    image = paint(shape, [slabs, shell, cave])
    assert_same(image, (1.0, 1.0, 1.0), (6, 7, 8), diameter=10.0)


def test_nested_shells_merge_when_the_gap_is_filled(small_work_blocks):
    shape = (26, 26, 26)
    z, y, x = np.indices(shape)
    r = np.sqrt((z - 13) ** 2 + (y - 13) ** 2 + (x - 13) ** 2)
    image = paint(shape, [(r < 11) & (r >= 9), r < 5])
    ref = assert_same(image, (1.0, 1.0, 1.0), (7, 7, 7), diameter=20.0)
    assert ref.data.max() >= 1


# -- global statistics -----------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(dtype=st.sampled_from(["float32", "float64", "float16", "int32", "int64", "uint64"]),
       n=st.integers(1, 400), seed=st.integers(0, 10**6), low=st.floats(0, 100), high=st.floats(0, 100),
       blocks=st.integers(1, 6), small=st.booleans())
def test_percentiles_from_order_statistics_equal_numpy(dtype, n, seed, low, high, blocks, small):
    rng = np.random.default_rng(seed)
    if dtype.startswith("float"):
        values = (rng.normal(size=n) * rng.choice([1e-3, 1.0, 1e3])).astype(dtype)
        values[rng.random(n) < 0.05] = np.inf
        values[rng.random(n) < 0.05] = -0.0
    else:
        values = rng.integers(-50 if dtype != "uint64" else 0, 10**6, n).astype(dtype)
    parts = np.array_split(values, blocks)

    def select(requests):
        return _stats.combine_selections([_stats.select_block(p, requests) for p in parts], requests)

    q = [low, high]
    arithmetic = values.dtype if values.dtype.kind == "f" else np.float64
    with pytest.MonkeyPatch.context() as patch, np.errstate(invalid="ignore"):
        if small:  # many rounds of narrowing
            patch.setattr(_stats, "SELECT_BINS", 4)
            patch.setattr(_stats, "GATHER_LIMIT", 5)
        got = _stats.numpy_percentile(
            n, q, lambda ranks: _stats.order_statistics(ranks, (values.min(), values.max()), select, values.dtype),
            arithmetic)
        want = exposure.percentile(values, q)
    np.testing.assert_array_equal(got, want)


# -- pipelines ----------------------------------------------------------------------------------------------


def test_custom_pipeline_of_chunkable_steps(small_work_blocks):
    pipeline = Pipeline([
        {"op": "adjust_gamma", "gamma": 0.5},
        {"op": "rescale_intensity", "low": 2, "high": 98},
        {"op": "threshold", "method": "otsu"},
        {"op": "remove_small_objects", "min_volume": "auto"},
        {"op": "remove_small_holes", "max_volume": 30},
        {"op": "fill_holes"},
        {"op": "split_touching", "smoothing": 0.0},
        {"op": "relabel"},
        {"op": "remove_small_objects", "min_volume": 40},
    ])
    image = sphere_pack(shape=(18, 22, 22), diameter=8, attempts=200, seed=2).image
    assert_same(image, (1.0, 1.0, 1.0), (6, 7, 8), pipeline=pipeline)


def test_steps_that_cannot_run_chunked_are_named():
    image = np.zeros((4, 4, 4), np.uint8)
    pipeline = Pipeline([{"op": "gaussian", "sigma": 1.0}, {"op": "threshold"}, {"op": "split_touching"}])
    with pytest.raises(PipelineError, match="step 1: step 'gaussian' cannot run chunked"):
        segment_chunked(image, pipeline=pipeline, progress=False)
    pipeline = Pipeline([{"op": "threshold"}, {"op": "fill_holes", "planewise": True}, {"op": "split_touching"}])
    with pytest.raises(PipelineError, match="planewise"):
        segment_chunked(image, pipeline=pipeline, progress=False)
    with pytest.raises(PipelineError, match="no split_touching"):
        segment_chunked(image, pipeline=Pipeline([{"op": "threshold"}]), progress=False)


def test_component_larger_than_the_budget_is_an_error_never_a_split_object():
    image = paint((20, 20, 20), [np.pad(np.ones((16, 16, 16), bool), 2)])
    with pytest.raises(VolumeTooLargeError, match=r"connected component of 4096 voxels .* memory="):
        segment_chunked(image, diameter=6.0, chunks=8, memory=2**16, progress=False)


# -- schedulers and files -------------------------------------------------------------------------------------


def test_distributed_local_cluster_gives_the_same_labels():
    distributed = pytest.importorskip("distributed")
    vol = sphere_pack(shape=(16, 20, 20), diameter=7, attempts=150, seed=4)
    ref = segment(vol.image, spacing=vol.spacing)
    with distributed.LocalCluster(n_workers=2, processes=False, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        result = segment_chunked(vol.image, spacing=vol.spacing, chunks=(8, 10, 10), scheduler=client,
                                 progress=False)
        labels = result.data.compute(scheduler=client)
    np.testing.assert_array_equal(labels, ref.data)


def test_segment_file_chunked_writes_the_in_memory_results(tmp_path):
    from voxseg import io
    from voxseg.workflow import segment_file

    vol = sphere_pack(shape=(20, 24, 24), diameter=8, attempts=200, seed=6, dtype=np.uint16)
    path = io.write_volume(tmp_path / "in.zarr", vol.image, spacing=(1.0, 0.5, 0.5))
    memory = segment_file(path, tmp_path / "memory", report=False)
    summary = segment_file_chunked(path, tmp_path / "chunked", chunks=(8, 12, 12), progress=False)
    labels = io.read(tmp_path / "chunked" / "labels.zarr").data.compute()
    np.testing.assert_array_equal(labels, io.read(tmp_path / "memory" / "labels.tif").data)
    expected = pd.read_csv(tmp_path / "memory" / "objects.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "chunked" / "objects.csv"), expected)
    assert len(pd.read_parquet(tmp_path / "chunked" / "objects.parquet")) == len(expected)
    for key in ("object_count", "threshold", "diameter", "shape", "spacing", "statistics"):
        assert summary[key] == memory[key]
    assert json.loads((tmp_path / "chunked" / "summary.json").read_text())["chunked"]["chunks"] == [8, 12, 12]
    assert (tmp_path / "chunked" / "report.html").exists()
    assert (tmp_path / "chunked" / "pipeline.toml").read_text().split("\n", 2)[2] == \
        (tmp_path / "memory" / "pipeline.toml").read_text().split("\n", 2)[2]
    assert not any(p.name.endswith("voxseg-chunked") for p in tmp_path.iterdir())  # work folder removed


def test_killed_run_resumes_without_recomputing_finished_blocks(tmp_path, monkeypatch):
    from voxseg import io
    from voxseg.chunked import _blocks, _split

    vol = sphere_pack(shape=(16, 20, 20), diameter=7, attempts=150, seed=8)
    path = io.write_volume(tmp_path / "in.tif", vol.image)
    original = _split.split_group

    def killed(*args):
        raise RuntimeError("killed")

    monkeypatch.setattr(_split, "split_group", killed)
    with pytest.raises(RuntimeError, match="killed"):
        segment_file_chunked(path, tmp_path / "out", chunks=8, report=False, progress=False)
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(_split, "split_group", original)
    labelled = []
    original_label = _blocks.label_block
    monkeypatch.setattr(_blocks, "label_block", lambda *a, **k: labelled.append(1) or original_label(*a, **k))
    summary = segment_file_chunked(path, tmp_path / "out", chunks=8, report=False, progress=False)
    assert summary["chunked"]["resumed"] and not labelled
    labels = io.read(tmp_path / "out" / "labels.zarr").data.compute()
    np.testing.assert_array_equal(labels, segment(vol.image, spacing=summary["spacing"]).data)


@pytest.mark.parametrize("limit, shape, chunks", [
    (2**12, (20, 30, 28), (5, 7, 6)),  # reduced by 2 per axis: blocks cut the majority-vote cells
    (2**10, (19, 31, 29), (7, 8, 9)),  # by 3, with incomplete cells dropped at the far faces
    (64, (2, 40, 40), (2, 9, 11)),  # a reduction estimate_diameter skips (an axis would vanish)
])
def test_diameter_estimated_on_the_same_reduced_mask(monkeypatch, limit, shape, chunks):
    import voxseg.segmentation

    monkeypatch.setattr(voxseg.segmentation, "ESTIMATE_VOXELS", limit)
    image = sphere_pack(shape=shape, diameter=8, attempts=300, seed=1).image
    ref = assert_same(image, (1.0, 0.6, 0.5), chunks)
    assert ref.records["diameter_estimated"]


def test_cli_segment_with_chunks_writes_labels_zarr(tmp_path):
    from voxseg import io
    from voxseg.testing import invoke_cli

    vol = sphere_pack(shape=(16, 20, 20), diameter=7, attempts=150, seed=9)
    path = io.write_volume(tmp_path / "in.tif", vol.image, spacing=(1.0, 0.5, 0.5))
    status, out, err = invoke_cli("segment", path, "-o", tmp_path / "out", "--chunks", "8,10,10", "--no-report")
    assert status == 0, err
    assert "objects" in out
    labels = io.read(tmp_path / "out" / "labels.zarr").data.compute()
    np.testing.assert_array_equal(labels, segment(vol.image, spacing=(1.0, 0.5, 0.5)).data)
    status, _, err = invoke_cli("segment", path, "-o", tmp_path / "bad", "--chunks", "8,10")
    assert status == 2 and "--chunks" in err
    pipeline = tmp_path / "p.toml"
    pipeline.write_text('[[steps]]\nop = "gaussian"\nsigma = 1.0\n[[steps]]\nop = "threshold"\n'
                        '[[steps]]\nop = "split_touching"\n')
    status, _, err = invoke_cli("run", pipeline, path, "-o", tmp_path / "run", "--chunks", "8")
    assert status == 2 and "'gaussian' cannot run chunked" in err
    assert not (tmp_path / "run").exists()


def test_temporary_work_folder_lives_as_long_as_the_labels():
    import gc
    import os

    vol = sphere_pack(shape=(12, 16, 16), diameter=6, attempts=100, seed=4)
    result = segment_chunked(vol.image, spacing=vol.spacing, chunks=8, progress=False)
    folder, labels = result.workdir, result.data
    del result
    gc.collect()
    assert labels.compute().max() > 0
    del labels
    gc.collect()
    assert not os.path.exists(folder)
