"""Property-based tests and a bounded fuzz run of the readers and the pipeline parser.

Whatever the bytes, reading gives a Volume or a VoxsegError; never another exception.
"""

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from voxseg import io
from voxseg.errors import VoxsegError
from voxseg.pipeline import Pipeline

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

dtypes = st.sampled_from([np.uint8, np.uint16, np.int16, np.float32, np.uint32])
shapes = st.tuples(st.integers(1, 6), st.integers(1, 9), st.integers(1, 9))
spacings = st.tuples(*[st.floats(0.01, 100, allow_nan=False, allow_infinity=False)] * 3)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), dtype=dtypes, shape=shapes, spacing=spacings,
       suffix=st.sampled_from([".tif", ".npy", ".zarr"]))
def test_write_then_read_keeps_data_dtype_and_spacing(tmp_path_factory, data, dtype, shape, spacing, suffix):
    array = data.draw(hnp.arrays(dtype, shape, elements=hnp.from_dtype(np.dtype(dtype), allow_nan=False,
                                                                          allow_infinity=False)))
    path = tmp_path_factory.mktemp("rt") / f"v{suffix}"
    io.write_volume(path, array, spacing=spacing)
    volume = io.read(path, lazy=False)
    np.testing.assert_array_equal(np.asarray(volume.data), array)
    assert volume.dtype == array.dtype
    np.testing.assert_allclose(volume.spacing, spacing, rtol=1e-6)


@pytest.fixture(scope="module")
def valid_tiff(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "ok.tif"
    data = np.arange(3 * 16 * 16, dtype=np.uint16).reshape(3, 16, 16)
    tifffile.imwrite(path, data, imagej=True, resolution=(2.0, 2.0), metadata={"spacing": 0.5, "axes": "ZYX"})
    return path.read_bytes()


@FUZZ
@given(data=st.data())
def test_mutated_tiffs_read_or_fail_cleanly(tmp_path_factory, valid_tiff, data):
    blob = bytearray(valid_tiff)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    path = tmp_path_factory.mktemp("m") / "mutant.tif"
    path.write_bytes(bytes(blob[:cut] if data.draw(st.booleans()) else blob))
    try:
        volume = io.read(path, lazy=False)
    except VoxsegError as err:
        assert str(path) in str(err)
    else:
        assert volume.data.ndim == 3


@FUZZ
@given(blob=st.binary(max_size=512))
def test_random_bytes_are_never_a_crash(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("b") / "random.tif"
    path.write_bytes(b"II*\x00" + blob if blob[:1] == b"\x00" else blob)
    try:
        io.read(path, lazy=False)
    except VoxsegError:
        pass


toml_values = st.recursive(
    st.none().map(lambda _: 1) | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True)
    | st.text(max_size=8) | st.just("auto"),
    lambda children: st.lists(children, max_size=3),
    max_leaves=5,
)
step_names = st.sampled_from(["threshold", "gaussian", "median", "split_touching", "fill_holes", "relabel",
                              "clear_border", "remove_small_objects", "gausian", "", "rescale_intensity"])
parameter_names = st.sampled_from(["method", "sigma", "radius", "diameter", "low", "high", "min_volume",
                                   "dark_objects", "value", "save", "sigmaa", "h"])


@FUZZ
@given(steps=st.lists(st.dictionaries(parameter_names, toml_values, max_size=3).flatmap(
    lambda params: step_names.map(lambda name: {"op": name, **params})), max_size=5),
       diameter=st.one_of(st.just("auto"), st.floats(allow_nan=True), st.integers(-3, 30), st.text(max_size=3)))
def test_pipeline_dicts_validate_or_fail_cleanly(steps, diameter):
    try:
        pipeline = Pipeline.from_dict({"pipeline": {"diameter": diameter}, "steps": steps})
    except VoxsegError:
        return
    # a pipeline that validated can be written and read back unchanged
    import tomllib

    again = Pipeline.from_dict(tomllib.loads(pipeline.to_toml()))
    assert again.steps == pipeline.steps


@FUZZ
@given(text=st.text(max_size=300))
def test_pipeline_text_parses_or_fails_cleanly(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("p") / "p.toml"
    path.write_text(text, encoding="utf-8")
    try:
        Pipeline.from_toml(path)
    except VoxsegError as err:
        assert str(path) in str(err)
