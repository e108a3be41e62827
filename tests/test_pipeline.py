import numpy as np
import pytest

from voxseg.errors import PipelineError
from voxseg.pipeline import OPERATORS, Pipeline, default_pipeline

GOOD = """
[pipeline]
diameter = 10.0

[[steps]]
op = "rescale_intensity"
low = 1.0
high = 99.0

[[steps]]
op = "gaussian"
sigma = 0.5
save = true

[[steps]]
op = "threshold"
method = "otsu"

[[steps]]
op = "split_touching"
"""


def write(tmp_path, text, name="p.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_pipeline_file_runs_and_saves_marked_steps(tmp_path):
    from voxseg.testing import sphere_pack

    vol = sphere_pack(shape=(32, 32, 32), diameter=10.0, attempts=300)
    pipeline = Pipeline.from_toml(write(tmp_path, GOOD))
    result = pipeline.run(vol.image, spacing=vol.spacing)
    assert result.kind == "labels"
    assert result.data.max() > 3
    assert list(result.saved) == [1]
    assert result.saved[1].dtype == np.float32
    assert result.pipeline.steps[3]["diameter"] == 10.0
    assert result.records["threshold"]["value"] > 0


def test_saved_pipeline_round_trips(tmp_path):
    pipeline = default_pipeline(diameter=7.5, threshold="otsu", clear_border=True)
    path = tmp_path / "out.toml"
    pipeline.save(path, header="a comment")
    again = Pipeline.from_toml(path)
    assert again.steps == pipeline.steps
    assert again.diameter == 7.5
    assert path.read_text().startswith("# a comment")


@pytest.mark.parametrize("text, message", [
    ('[[steps]]\nop = "gausian"\n', r"p.toml:2: unknown step 'gausian'; did you mean 'gaussian'\?"),
    ('[[steps]]\nop = "gaussian"\nsigmaa = 1.0\n', r"p.toml:3: unknown parameter 'sigmaa' for gaussian; did you mean 'sigma'\?"),
    ('[[steps]]\nop = "threshold"\ndark_objects = "yes"\n', r"p.toml:3: threshold: dark_objects has the wrong type"),
    ('[[steps]]\nop = "split_touching"\n', r"step 'split_touching' takes mask, but the step before gives image"),
    ('[pipeline]\ndiameter = -3\n', r"diameter must be a positive number"),
    ('[pipeline]\ndiametre = 3\n', r"unknown setting"),
    ('[[steps]]\nop = \n', r"invalid TOML"),
    ('[[steps]]\nmethod = "li"\n', r'each step needs op'),
], ids=["step-typo", "param-typo", "wrong-type", "wrong-kind", "bad-diameter", "unknown-setting", "bad-toml", "no-op"])
def test_invalid_pipeline_files_name_the_line_and_problem(tmp_path, text, message):
    with pytest.raises(PipelineError, match=message):
        Pipeline.from_toml(write(tmp_path, text))


def test_every_operator_taking_images_validates_as_a_first_step():
    from voxseg.pipeline import _operators

    operators = _operators()
    assert {"gaussian", "median", "threshold", "split_touching", "clear_border"} <= set(operators)
    for name, op in operators.items():
        if "image" in op.takes:
            assert Pipeline([{"op": name}]).steps[0]["op"] == name
        else:
            with pytest.raises(PipelineError, match="takes"):
                Pipeline([{"op": name}])


def test_pipeline_from_python():
    pipeline = Pipeline([{"op": "threshold", "method": "otsu"}, {"op": "fill_holes"}])
    image = np.zeros((5, 9, 9), np.uint8)
    image[1:4, 2:7, 2:7] = 200
    image[2, 4, 4] = 0
    result = pipeline.run(image)
    assert result.kind == "mask"
    assert result.data[1:4, 2:7, 2:7].all()


@pytest.mark.parametrize("step", [
    '[[steps]]\nop = "rescale_intensity"\nin_range = "abc"\n',
    '[[steps]]\nop = "threshold"\nvalue = "high"\n',
], ids=["in_range-text", "value-text"])
def test_values_of_the_wrong_type_are_caught_before_running(tmp_path, step):
    with pytest.raises(PipelineError, match="wrong type"):
        Pipeline.from_toml(write(tmp_path, step))


def test_rescale_in_range_needs_two_numbers(tmp_path):
    pipeline = Pipeline.from_toml(write(tmp_path, '[[steps]]\nop = "rescale_intensity"\nin_range = [1, 2, 3]\n'))
    with pytest.raises(PipelineError, match="in_range must be two numbers"):
        pipeline.run(np.zeros((2, 4, 4), np.uint8))


@pytest.mark.parametrize("dtype, in_range, dark_objects, method", [
    (np.uint16, None, False, "li"),
    (np.uint16, None, True, "otsu"),
    (np.uint8, None, False, "otsu"),
    (np.int16, None, False, "li"),
    (np.uint16, [900, 1100], False, "li"),      # most levels clipped to 0 or 1
    (np.uint16, [5000, 6000], False, "mean"),   # every level clipped to 0: an empty mask
])
def test_a_rescale_read_through_its_levels_gives_the_same_mask(rng, dtype, in_range, dark_objects, method):
    # the threshold after a rescale of 8/16-bit data reads the raw grey levels it puts in the foreground
    # (the rescaled volume is not made): the same mask and value as thresholding the rescaled volume
    from voxseg import threshold as th
    from voxseg.exposure import rescale_intensity
    from voxseg.segmentation import foreground

    info = np.iinfo(dtype)
    image = rng.normal(0.4 * info.min + 0.6 * info.max, 0.08 * (int(info.max) - int(info.min)), (12, 40, 40))
    image[3:9, 10:30, 10:30] += 0.2 * info.max
    image = np.clip(image, info.min, info.max).astype(dtype)
    rescale = {"op": "rescale_intensity", **({"in_range": in_range} if in_range else {})}
    steps = [rescale, {"op": "threshold", "method": method, "dark_objects": dark_objects}]
    result = Pipeline(steps).run(image)
    saved = Pipeline([{**rescale, "save": True}, steps[1]]).run(image)  # a saved rescale is made
    rescaled = saved.saved[0]
    assert rescaled is not None and rescaled.dtype == np.float32
    value = th.threshold(rescaled, method)
    assert result.records["threshold"]["value"] == pytest.approx(value, abs=1e-6)
    np.testing.assert_array_equal(result.data, foreground(rescaled, result.records["threshold"]["value"],
                                                          dark_objects=dark_objects))
    np.testing.assert_array_equal(result.data, saved.data)
    if in_range is None:
        np.testing.assert_array_equal(rescaled, rescale_intensity(image, in_range=result.records[
            "rescale_intensity"]["in_range"]))


def test_a_mask_of_levels_takes_any_table():
    from voxseg.pipeline import _mask_of_levels

    raw = np.array([[-2, -1, 0, 1, 2, 3]], dtype=np.int16)
    for table in ([0, 0, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [0, 1, 0, 1, 1, 0], [0] * 6, [1] * 6):
        table = np.array(table, bool)
        np.testing.assert_array_equal(_mask_of_levels(raw, -2, table), table[raw - (-2)])


def test_components_handed_to_the_split_give_the_same_labels(rng):
    # remove_small_objects hands its labelled components to split_touching: same result as without
    from scipy import ndimage as ndi

    from voxseg.morphology import remove_small_objects
    from voxseg.segmentation import split_touching

    field = ndi.gaussian_filter(rng.normal(size=(20, 48, 48)), 2.0)
    image = (field > np.quantile(field, 0.6)).astype(np.float32)
    image[::2, ::3, ::3] = 1.0  # specks the size filter removes
    pipeline = Pipeline([{"op": "threshold", "value": 0.5},
                         {"op": "remove_small_objects", "min_volume": 20},
                         {"op": "split_touching"}], diameter=8.0)
    result = pipeline.run(image, spacing=(1.0, 1.0, 1.0))
    expected = split_touching(remove_small_objects(image > 0.5, 20), diameter=8.0)
    np.testing.assert_array_equal(result.data, expected)
    assert "remove_small_objects" not in result.records


@pytest.mark.parametrize("min_volume", [1.5, 60.0, 400.0])
def test_sizes_handed_from_the_split_give_the_same_labels(rng, min_volume):
    # split_touching hands its objects' sizes to remove_small_objects and relabel: no counting pass,
    # same labels as the functions give without them (objects removed or not)
    from scipy import ndimage as ndi

    from voxseg.morphology import remove_small_objects
    from voxseg.segmentation import relabel_canonical, split_touching

    field = ndi.gaussian_filter(rng.normal(size=(20, 48, 48)), 2.0)
    image = (field > np.quantile(field, 0.6)).astype(np.float32)
    pipeline = Pipeline([{"op": "threshold", "value": 0.5},
                         {"op": "remove_small_objects", "min_volume": 5},
                         {"op": "split_touching"},
                         {"op": "remove_small_objects", "min_volume": min_volume},
                         {"op": "relabel"}], diameter=6.0)
    result = pipeline.run(image, spacing=(1.0, 1.0, 1.0))
    split = split_touching(remove_small_objects(image > 0.5, 5), diameter=6.0)
    expected = relabel_canonical(remove_small_objects(split, min_volume))
    assert 0 < expected.max() < split.max() or min_volume == 1.5
    np.testing.assert_array_equal(result.data, expected)
    assert result.data.dtype == expected.dtype
    # what the last step hands on: each label's voxels and bounding box
    np.testing.assert_array_equal(result.handed["sizes"][1:], np.bincount(expected.ravel())[1:])
    assert result.handed["boxes"] == [None, *ndi.find_objects(expected)]
