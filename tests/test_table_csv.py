"""objects.csv is written without pandas, byte for byte as pandas' to_csv would write it."""

import io

import numpy as np
import pandas as pd
import pytest

from voxseg.io.table import write_csv
from voxseg.measurements import measure, measure_columns, summarize


def pandas_csv(table):
    out = io.StringIO()
    pd.DataFrame(table).to_csv(out, index=False, float_format="%.6g", lineterminator="\n")
    return out.getvalue()


def our_csv(table):
    out = io.StringIO()
    write_csv(out, table)
    return out.getvalue()


@pytest.fixture
def labels(rng):
    labels = np.zeros((12, 20, 24), np.uint16)
    labels[1:5, 2:9, 3:12] = 3
    labels[6:11, 10:19, 4:6] = 7  # a flat plate: NaN elongation is not expected, its axes are non-zero
    labels[0, 0, 0:5] = 9  # a rod on the border: a zero minor axis, NaN elongation
    labels[8, 3, 20] = 12  # one voxel
    return labels


@pytest.mark.parametrize("channels", [None, 1, 2])
def test_measurement_table_is_written_as_pandas_writes_it(labels, rng, channels):
    shape = labels.shape + ((channels,) if channels else ())
    intensity = rng.normal(100, 30, shape).astype(np.float32) if channels is not None else None
    columns, spacing, _ = measure_columns(labels, intensity, spacing=(0.29, 0.26, 0.26))
    assert np.isnan(columns["elongation"]).any()  # NaN fields are part of the check
    assert our_csv(columns) == pandas_csv(columns)
    assert our_csv(measure(labels, intensity, spacing=spacing)) == pandas_csv(columns)


def test_awkward_values_are_written_as_pandas_writes_them():
    table = {
        "label": np.array([1, 2, 3, 4], np.int64),
        "tiny": np.array([1e-12, -0.0, 123456789.0, np.inf]),
        "big": np.array([-np.inf, 2.5e300, np.float32(1 / 3), np.nan]),
        "flag": np.array([True, False, True, False]),
        "name": np.array(["a,b", 'say "hi"', "plain", "line"], dtype=object),
    }
    assert our_csv(table) == pandas_csv(table)
    assert our_csv({k: v[:0] for k, v in table.items()}) == pandas_csv({k: v[:0] for k, v in table.items()})


def test_summary_of_columns_equals_summary_of_the_table(labels):
    columns, _, _ = measure_columns(labels, spacing=0.5)
    assert summarize(columns, unit="um") == summarize(measure(labels, spacing=0.5), unit="um")


def test_known_boxes_give_the_same_columns(labels):
    from scipy import ndimage as ndi

    expected, _, _ = measure_columns(labels, spacing=0.5)
    boxes = [None, *ndi.find_objects(labels)]  # labels 1..12, some absent
    assert any(box is None for box in boxes[1:])
    columns, _, _ = measure_columns(labels, spacing=0.5, boxes=boxes)
    assert list(columns) == list(expected)
    for name in expected:
        np.testing.assert_array_equal(columns[name], expected[name])


def test_a_crop_measured_with_its_offset_gives_the_whole_volume_columns(labels, rng):
    intensity = rng.normal(100, 30, labels.shape).astype(np.float32)
    whole, _, _ = measure_columns(labels, intensity, spacing=(0.29, 0.26, 0.26))
    crop = (slice(2, labels.shape[0]), slice(1, labels.shape[1]), slice(0, labels.shape[2]))
    inside = np.isin(whole["label"], np.unique(labels[crop]))
    inside &= (whole["bbox_z0"] >= 2) & (whole["bbox_y0"] >= 1)  # objects the crop holds whole
    assert inside.any() and not inside.all()
    keep = np.isin(labels[crop], whole["label"][inside])
    part, _, _ = measure_columns(np.where(keep, labels[crop], 0), intensity[crop], spacing=(0.29, 0.26, 0.26),
                                 offset=[2, 1, 0], shape=labels.shape)
    for name in whole:
        np.testing.assert_array_equal(part[name], whole[name][inside], err_msg=name)
