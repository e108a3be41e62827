"""The HTML report: self-contained, data round trip, size, determinism, escaping."""

import base64
import io
import json
import math
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from voxseg.errors import OutputError, ParameterError
from voxseg.report import build_report, write_report
from voxseg.report.figures import display_range, label_colors

SPACING = (2.0, 0.5, 0.6)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def balls(shape, spacing, centres, radii, dtype=np.uint16):
    """Labels of physical balls: centres in voxels, radii in the unit of spacing."""
    labels = np.zeros(shape, dtype)
    for i, (c, r) in enumerate(zip(centres, radii), start=1):
        lo = [max(0, int(math.floor(ci - r / s))) for ci, s in zip(c, spacing)]
        hi = [min(n, int(math.ceil(ci + r / s)) + 1) for ci, s, n in zip(c, spacing, shape)]
        grid = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
        d2 = sum(((g - ci) * s) ** 2 for g, ci, s in zip(grid, c, spacing))
        region = labels[tuple(slice(a, b) for a, b in zip(lo, hi))]
        region[d2 <= r**2] = i
    return labels


def objects_table(labels, spacing):
    ids = np.unique(labels)
    ids = ids[ids != 0]
    rows = []
    for i in ids:
        pts = np.argwhere(labels == i)
        vox = len(pts)
        volume = vox * np.prod(spacing)
        d = (6 * volume / np.pi) ** (1 / 3)
        c = pts.mean(axis=0) * spacing
        rows.append({
            "label": int(i), "voxels": vox, "volume": volume, "surface_area": 1.1 * np.pi * d**2,
            "equivalent_diameter": d, "sphericity": 1 / 1.1, "centroid_z": c[0], "centroid_y": c[1],
            "centroid_x": c[2], "touches_border": bool((pts == 0).any()), "mean_intensity": float("nan"),
        })
    return pd.DataFrame(rows)


@pytest.fixture
def sample(rng):
    shape = (20, 40, 40)
    labels = balls(shape, SPACING, [(10, 10, 10), (8, 25, 28), (14, 30, 8)], [6.0, 5.0, 4.0])
    image = ((labels > 0) * 500 + rng.normal(100, 30, shape)).astype(np.float32)
    table = objects_table(labels, SPACING)
    summary = {
        "input": "synthetic.tif",
        "spacing": list(SPACING),
        "unit": "um",
        "parameters": {"sigma": 0.5, "diameter": 6.0},
        "threshold": {"method": "otsu", "value": 312.5},
        "object_count": 3,
        "volume": {"count": 3, "total": float(table.volume.sum()), "mean": float(table.volume.mean())},
        "versions": {"voxseg": "0.0", "numpy": np.__version__},
        "run_time_s": 1.25,
    }
    return image, labels, table, summary


def data_block(document):
    blocks = re.findall(r'<script type="application/json" id="voxseg-data">(.*?)</script>', document, re.S)
    assert len(blocks) == 1
    return json.loads(blocks[0])


def decode_atlas(url, shape, columns):
    """Inverse of the report's atlas: data URL of tiled z planes -> (z, y, x[, c]) array."""
    header, payload = url.split(",", 1)
    assert header in ("data:image/png;base64", "data:image/jpeg;base64")
    atlas = np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))))
    nz, ny, nx = shape
    planes = []
    for z in range(nz):
        r, c = divmod(z, columns)
        planes.append(atlas[r * ny:(r + 1) * ny, c * nx:(c + 1) * nx])
    return np.stack(planes)


class ResourceCollector(HTMLParser):
    """Every tag, and the attributes through which a page loads something."""

    def __init__(self):
        super().__init__()
        self.tags = []
        self.urls = []  # (tag, attribute, value)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data", "action", "formaction", "background"):
                self.urls.append((tag, name, value or ""))
            if name == "style" and value and "url(" in value:
                self.urls.append((tag, name, value))


def test_report_loads_nothing_from_outside(sample):
    document = build_report(*sample, spacing=SPACING)
    parser = ResourceCollector()
    parser.feed(document)
    assert "link" not in parser.tags and "iframe" not in parser.tags
    for tag, attr, value in parser.urls:
        if attr == "href" and tag == "a":
            assert value.startswith("#"), (tag, attr, value)
        else:
            assert value.startswith("data:"), (tag, attr, value[:80])
    # every <script> is inline
    assert not re.search(r"<script[^>]*\ssrc\s*=", document, re.I)
    # no external URL in the markup (plotly.min.js holds URL strings in its code, which load nothing)
    markup = re.sub(r"(<script[^>]*>).*?(</script>)", r"\1\2", document, flags=re.S)
    assert len(markup) < 100_000
    assert not re.search(r"(?:https?|ftp|wss?):", markup, re.I)
    assert not re.search(r"""[=("']\s*//""", markup)  # protocol-relative URLs
    css = "".join(re.findall(r"<style>(.*?)</style>", document, re.S))
    assert "url(" not in css and "@import" not in css
    # and the browser is told to refuse anything else
    assert "default-src 'none'" in document
    assert document.count("<script") == 3 and document.count("</script>") == 3


def test_embedded_data_round_trips(sample):
    image, labels, table, summary = sample
    data = data_block(build_report(image, labels, table, summary, spacing=SPACING))
    assert data["shape"] == [20, 40, 40]
    assert data["spacing"] == list(SPACING)
    assert data["display"]["shape"] == [20, 40, 40] and data["display"]["factors"] == [1, 1, 1]
    assert data["label_ids"] == [1, 2, 3]
    assert data["colors"] == ["#%02x%02x%02x" % tuple(c) for c in label_colors([1, 2, 3])]
    # the planes: 8-bit display image and lossless label ids
    lo, hi = display_range(image)
    assert data["display"]["range"] == pytest.approx([lo, hi])
    grey = decode_atlas(data["image"], data["display"]["shape"], data["display"]["columns"])
    expected = np.clip(np.rint((image.astype(float) - lo) * 255 / (hi - lo)), 0, 255)
    np.testing.assert_array_equal(grey, expected)
    rgb = decode_atlas(data["labels"], data["display"]["shape"], data["display"]["columns"]).astype(np.int64)
    index = rgb[..., 0] | (rgb[..., 1] << 8) | (rgb[..., 2] << 16)
    ids = np.concatenate([[0], data["label_ids"]])
    np.testing.assert_array_equal(ids[index], labels)
    # the table, with units, NaN as null
    assert data["table"]["columns"] == list(table.columns)
    assert len(data["table"]["rows"]) == 3
    units = dict(zip(data["table"]["columns"], data["table"]["units"]))
    assert units["volume"] == "µm³" and units["surface_area"] == "µm²" and units["centroid_x"] == "µm"
    assert units["voxels"] == "" and units["sphericity"] == ""
    for row, (_, expected_row) in zip(data["table"]["rows"], table.iterrows()):
        got = dict(zip(data["table"]["columns"], row))
        assert got["label"] == expected_row["label"]
        assert got["volume"] == pytest.approx(expected_row["volume"])
        assert got["touches_border"] is bool(expected_row["touches_border"])
        assert got["mean_intensity"] is None
    # one mesh per object, in physical coordinates inside the volume
    assert [m["label"] for m in data["meshes"]] == [1, 2, 3]
    bounds = np.array([(n - 0.5) * s for n, s in zip(labels.shape, SPACING)])
    for mesh in data["meshes"]:
        verts = np.frombuffer(base64.b64decode(mesh["verts"]), "<f4").reshape(-1, 3)
        faces = np.frombuffer(base64.b64decode(mesh["faces"]), "<" + mesh["faces_dtype"]).reshape(-1, 3)
        assert faces.max() < len(verts) and len(faces) > 20
        assert np.all(verts >= -0.5 * np.array(SPACING) - 1e-5) and np.all(verts <= bounds + 1e-5)
    # anchors lie inside their objects
    for label, anchor in zip(data["label_ids"], data["anchors"]):
        assert labels[tuple(anchor)] == label


def test_summary_is_rendered_as_a_definition_list(sample):
    document = build_report(*sample, spacing=SPACING, title="Nuclei & co")
    assert "<title>Nuclei &amp; co</title>" in document
    summary_html = document.split('<div class="summary-list">', 1)[1].split("</div>", 1)[0]
    assert "<dt>input</dt><dd>synthetic.tif</dd>" in summary_html
    assert "<dt>run time s</dt><dd>1.25</dd>" in summary_html
    assert "<dt>method</dt><dd>otsu</dd>" in summary_html  # nested threshold dict
    assert "<dt>spacing</dt><dd>2, 0.5, 0.6</dd>" in summary_html


def test_report_is_small_and_deterministic(sample):
    first = build_report(*sample, spacing=SPACING)
    second = build_report(*sample, spacing=SPACING)
    assert first == second
    plotly_bytes = 5_000_000
    assert len(first.encode()) < plotly_bytes + 400_000


def test_embedded_text_cannot_break_out(sample):
    image, labels, table, summary = sample
    table = table.assign(note=["</script><script>alert(1)</script>", "<!-- x", "a&b"])
    summary = dict(summary, input="</script><img src=x onerror=alert(1)>")
    document = build_report(image, labels, table, summary, spacing=SPACING)
    assert document.count("</script>") == 3
    assert "<img src=x" not in document and "<!-- x" not in document
    data = data_block(document)
    assert data["table"]["rows"][0][-1] == "</script><script>alert(1)</script>"


def test_large_volumes_are_subsampled_for_display(rng):
    shape = (30, 64, 64)
    labels = balls(shape, (1, 1, 1), [(15, 20, 20), (15, 45, 45)], [8.0, 10.0])
    image = rng.random(shape).astype(np.float32)
    data = data_block(build_report(image, labels, objects_table(labels, (1, 1, 1)), {}, spacing=None,
                                   max_display_voxels=20_000))
    factors = data["display"]["factors"]
    assert math.prod(math.ceil(n / f) for n, f in zip(shape, factors)) <= 20_000
    assert data["display"]["shape"] == [math.ceil(n / f) for n, f in zip(shape, factors)]
    assert data["display"]["spacing"] == [float(f) for f in factors]
    rgb = decode_atlas(data["labels"], data["display"]["shape"], data["display"]["columns"]).astype(np.int64)
    ids = np.concatenate([[0], data["label_ids"]])
    np.testing.assert_array_equal(ids[rgb[..., 0]], labels[tuple(slice(None, None, f) for f in factors)])


def test_meshes_are_coarsened_to_the_face_budget(sample):
    image, labels, table, summary = sample
    full = data_block(build_report(image, labels, table, summary, spacing=SPACING))
    coarse = data_block(build_report(image, labels, table, summary, spacing=SPACING, max_faces=300))

    def faces(data):
        itemsize = {"u2": 2, "u4": 4}
        return sum(len(base64.b64decode(m["faces"])) // (3 * itemsize[m["faces_dtype"]])
                   for m in data["meshes"])

    assert faces(coarse) < faces(full) / 2
    assert [m["label"] for m in coarse["meshes"]] == [1, 2, 3]


@pytest.mark.slow
def test_report_of_a_confocal_sized_stack_stays_small(rng):
    """60 x 256 x 256 with 20 objects, a noisy image: well under 20 MB."""
    shape, spacing = (60, 256, 256), (0.29, 0.26, 0.26)
    centres = [(30, 30 + 48 * (k % 5), 30 + 48 * (k // 5)) for k in range(20)]
    labels = balls(shape, spacing, centres, [5.0] * 20, dtype=np.uint32)
    image = (labels > 0) * 2000 + rng.poisson(300, shape).astype(np.uint16)
    document = build_report(image, labels, objects_table(labels, spacing), {}, spacing=spacing)
    size = len(document.encode())
    assert size < 12_000_000
    assert len(data_block(document)["meshes"]) == 20


def test_write_report_replaces_atomically(sample, tmp_path):
    path = tmp_path / "report.html"
    path.write_text("old")
    written = write_report(path, *sample, spacing=SPACING)
    assert written == path
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<title>voxseg report — synthetic.tif</title>" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    with pytest.raises(OutputError, match="cannot write report"):
        write_report(tmp_path / "missing" / "r.html", *sample, spacing=SPACING)


def test_report_without_labels_or_table(rng):
    image = rng.random((6, 10, 12))
    data = data_block(build_report(image, None, None, {}, spacing=(1, 1, 1)))
    assert data["labels"] is None and data["meshes"] == [] and data["label_ids"] == []
    assert data["table"] == {"columns": [], "units": [], "rows": []}


def test_report_rejects_bad_inputs(sample):
    image, labels, table, summary = sample
    with pytest.raises(ParameterError, match="label"):
        build_report(image, labels, table.drop(columns="label"), summary, spacing=SPACING)
    with pytest.raises(ParameterError, match="shape"):
        build_report(image, labels[:-1], table, summary, spacing=SPACING)
    with pytest.raises(ParameterError, match="spacing"):
        build_report(image, labels, table, summary, spacing=(1, 1))
    with pytest.raises(ParameterError, match="image_quality"):
        build_report(image, labels, table, summary, spacing=SPACING, image_quality=0)


@pytest.mark.parametrize("budget_factor", [0.3, 2.0])
def test_many_objects_are_coarsened_from_a_sample_of_them(budget_factor):
    from voxseg.report._meshes import _FACE_SAMPLE, object_meshes
    from voxseg.testing import sphere_pack

    vol = sphere_pack(shape=(40, 64, 64), diameter=10, attempts=3000, seed=4)
    ids = np.unique(vol.labels)[1:]
    assert ids.size >= 2 * _FACE_SAMPLE  # the sampled path
    fine = object_meshes(vol.labels, spacing=(1, 1, 1), label_ids=ids)
    fine_faces = sum(len(f) for _, _, f in fine)
    meshes = object_meshes(vol.labels, spacing=(1, 1, 1), label_ids=ids, max_faces=int(budget_factor * fine_faces))
    assert [label for label, _, _ in meshes] == ids.tolist()
    faces = sum(len(f) for _, _, f in meshes)
    if budget_factor < 1:
        assert faces <= budget_factor * fine_faces * 1.2  # coarsened to about the budget, in one go or two
    else:
        assert faces == fine_faces  # within budget: the full-resolution meshes
