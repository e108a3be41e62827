"""The HTML report in headless Chromium: offline load, slice explorer, overlay, 3D view, selection.

Needs the ``playwright`` Python package and ``/usr/bin/chromium`` (never a
downloaded browser). Without them the tests are skipped, except on CI
(``CI=true``), where they fail so that a broken setup cannot pass silently.
"""

import io
import math
import os
import shutil

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--use-gl=swiftshader",
    "--enable-unsafe-swiftshader",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
]
SPACING = (1.5, 0.5, 0.5)
MESH_TRACES = "document.getElementById('plot3d').data.filter(t => t.type === 'mesh3d')"
ROWS = "#objects-table tbody tr"


def _need(condition, reason):
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: browser tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def sync_api():
    try:
        from playwright import sync_api
    except ImportError:
        sync_api = None
    _need(sync_api is not None, "the playwright package is not installed (pip install playwright)")
    _need(os.path.exists(CHROMIUM) or shutil.which("chromium") == CHROMIUM, f"{CHROMIUM} is missing")
    return sync_api


def balls(shape, spacing, centres, radii):
    labels = np.zeros(shape, np.uint16)
    grid = np.indices(shape, dtype=float)
    for i, (c, r) in enumerate(zip(centres, radii), start=1):
        d2 = sum(((g - ci) * s) ** 2 for g, ci, s in zip(grid, c, spacing))
        labels[d2 <= r**2] = i
    return labels


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from voxseg.report import write_report

    rng = np.random.default_rng(3)
    shape = (16, 64, 72)
    centres = [(8, 16, 18), (6, 40, 20), (9, 22, 50), (10, 48, 52)]
    labels = balls(shape, SPACING, centres, [6.0, 5.0, 7.0, 4.5])
    image = ((labels > 0) * 400 + rng.normal(100, 25, shape)).astype(np.float32)
    rows = []
    for i in range(1, 5):
        vox = int((labels == i).sum())
        rows.append({"label": i, "voxels": vox, "volume": round(vox * float(np.prod(SPACING)), 2),
                     "sphericity": 0.9 - 0.05 * i, "touches_border": False})
    table = pd.DataFrame(rows)
    summary = {"input": "balls.tif", "threshold": {"method": "otsu", "value": 300.0}, "object_count": 4}
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_report(path, image, labels, table, summary, spacing=SPACING)
    return path, image, labels, table


@pytest.fixture(scope="module")
def loaded(sync_api, report):
    path = report[0]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors, requests = [], []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.as_uri())
            page.wait_for_selector("body[data-ready=true]", timeout=60_000)
            yield page, errors, requests
        finally:
            browser.close()


def canvas_pixels(page, name):
    data = page.evaluate(
        """(name) => { const c = document.getElementById('canvas-' + name);
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }""",
        name,
    )
    return np.array(data, dtype=np.uint8)


def png_pixels(png):
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(float)


def test_page_loads_offline_without_errors(loaded, tmp_path):
    page, errors, requests = loaded
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert errors == []
    outside = [u for u in requests if not u.startswith(("file:", "data:", "blob:"))]
    assert outside == []
    assert page.locator("#error").is_hidden()
    assert page.locator("#objects-table tbody tr").count() == 4


def test_z_slider_changes_the_plane(loaded, report):
    page = loaded[0]
    labels = report[2]
    # canvases have one pixel per displayed voxel
    size = page.evaluate("(c => [c.width, c.height])(document.getElementById('canvas-z'))")
    assert size == [72, 64]
    page.locator("#slider-z").fill("8")
    before = canvas_pixels(page, "z")
    page.locator("#slider-z").fill("2")
    after = canvas_pixels(page, "z")
    assert np.mean(before != after) > 0.3
    assert "2 / 15" in page.locator("#out-z").inner_text()
    # the displayed aspect is the physical one: 72 x 0.5 wide, 64 x 0.5 high; zy is 16 x 1.5 wide
    w_z, h_z, w_x = page.evaluate(
        """() => { const z = document.getElementById('canvas-z').getBoundingClientRect();
        const x = document.getElementById('canvas-x').getBoundingClientRect();
        return [z.width, z.height, x.width]; }"""
    )
    assert w_z / h_z == pytest.approx(72 / 64, rel=0.03)
    assert w_x / w_z == pytest.approx((16 * 1.5) / (72 * 0.5), rel=0.03)
    assert labels.shape == (16, 64, 72)


def test_overlay_modes_change_the_pixels(loaded):
    page = loaded[0]
    page.locator("#slider-z").fill("8")
    shots = {}
    for mode in ("off", "outlines", "filled"):
        page.check(f"input[name=overlay][value={mode}]")
        shots[mode] = canvas_pixels(page, "z").reshape(-1, 4)[:, :3].astype(int)
    grey = shots["off"]
    assert np.all(grey[:, 0] == grey[:, 1]) and np.all(grey[:, 1] == grey[:, 2])
    outlined = np.any(shots["outlines"] != grey, axis=1)
    filled = np.any(shots["filled"] != grey, axis=1)
    assert outlined.sum() > 50
    assert filled.sum() > 2 * outlined.sum()
    page.check("input[name=overlay][value=outlines]")


def test_3d_view_draws_the_objects(loaded):
    page = loaded[0]
    plot = page.locator("#plot3d")
    plot.scroll_into_view_if_needed()
    assert page.evaluate(MESH_TRACES + ".length") == 4
    pixels = png_pixels(plot.screenshot())
    assert pixels.std() > 10
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    assert np.mean(saturation > 60) > 0.02  # coloured meshes, not just grey axes


def test_clicking_a_table_row_shows_its_measurements(loaded, report):
    page = loaded[0]
    table = report[3]
    page.click("#objects-table tbody tr[data-label='3']")
    selection = page.locator("#selection")
    assert selection.get_attribute("data-label") == "3"
    assert "Label 3" in selection.locator("h3").inner_text()
    volume = table.loc[table.label == 3, "volume"].item()
    shown = float(selection.locator("dd[data-column=volume]").inner_text().split()[0])
    assert shown == pytest.approx(volume, rel=1e-3)
    assert "selected" in page.locator("#objects-table tbody tr[data-label='3']").get_attribute("class")
    # the 3D view dims the other objects
    colors = page.evaluate(MESH_TRACES + ".map(t => t.color)")
    assert len(set(colors)) == 4 and sum(c.startswith("#") for c in colors) == 1


def test_hovering_and_clicking_an_object_in_a_plane(loaded, report):
    page = loaded[0]
    labels = report[2]
    page.click("#clear-selection")
    z, y, x = (int(v) for v in np.argwhere(labels == 2).mean(axis=0).round())
    assert labels[z, y, x] == 2
    page.locator("#slider-z").fill(str(z))
    canvas = page.locator("#canvas-z")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    pos = {"x": (x + 0.5) / 72 * box["width"], "y": (y + 0.5) / 64 * box["height"]}
    canvas.hover(position=pos)
    assert "label 2" in page.locator("#hover-info").inner_text()
    assert "hover" in page.locator("#objects-table tbody tr[data-label='2']").get_attribute("class")
    canvas.click(position=pos)
    assert page.locator("#selection").get_attribute("data-label") == "2"
    # the other planes moved to the clicked voxel
    assert page.locator("#slider-y").input_value() == str(y)
    assert page.locator("#slider-x").input_value() == str(x)


def test_table_sorts_by_a_column(loaded, report):
    page = loaded[0]
    table = report[3]
    header = page.locator("#objects-table th[data-column=volume]")
    header.click()
    order = page.eval_on_selector_all(ROWS, "rows => rows.map(r => Number(r.dataset.label))")
    assert order == table.sort_values("volume").label.tolist()
    header.click()
    order = page.eval_on_selector_all(ROWS, "rows => rows.map(r => Number(r.dataset.label))")
    assert order == table.sort_values("volume", ascending=False).label.tolist()
    assert math.isfinite(float(page.locator("#objects-table tbody tr td").nth(2).inner_text()))


def test_clicking_an_object_in_the_3d_view_selects_it(loaded):
    page = loaded[0]
    page.evaluate("window.voxsegReport.select(null, 'test')")
    page.evaluate(
        """() => { window.hoveredMesh = null;
        document.getElementById('plot3d').on('plotly_hover', (e) => {
            const p = e.points[0]; window.hoveredMesh = p.data.type === 'mesh3d' ? p.data.name : null; }); }"""
    )
    plot = page.locator("#plot3d")
    plot.scroll_into_view_if_needed()
    box = plot.bounding_box()
    name = None
    for fy in (0.5, 0.4, 0.6, 0.3, 0.7):
        for fx in (0.5, 0.4, 0.6, 0.3, 0.7):
            page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"], steps=3)
            page.wait_for_timeout(250)
            name = page.evaluate("window.hoveredMesh")
            if name:
                break
        if name:
            break
    assert name, "no object under the pointer anywhere in the middle of the 3D view"
    label = name.split()[-1]
    page.wait_for_timeout(300)
    page.mouse.down()
    page.wait_for_timeout(100)
    page.mouse.up()
    page.wait_for_function(
        "(label) => document.getElementById('selection').dataset.label === label", arg=label, timeout=15_000
    )
    assert f"Label {label}" in page.locator("#selection h3").inner_text()
    assert page.locator("#selection dd[data-column=volume]").count() == 1
