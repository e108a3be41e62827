"""The documentation runs: the tutorial, the shipped example pipelines, the operator reference, the links."""

import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from voxseg.testing import invoke_cli as run_cli

DOCS = Path(__file__).resolve().parent.parent / "docs"
TUTORIAL = DOCS / "tutorial.py"
PIPELINES = resources.files("voxseg") / "pipelines"
EXAMPLES = ("nuclei.toml", "beads.toml")

#: figures the tutorial writes
TUTORIAL_FIGURES = [
    "01_orthogonal_planes.png", "02_montage.png", "03_histogram.png", "04_exposure.png", "05_edges.png",
    "06_denoising.png", "07_thresholds.png", "08_li_vs_otsu.png", "09_cleanup.png", "10_distance.png",
    "11_labels.png", "12_labels_montage.png", "13_distributions.png", "14_surface_3d.png", "15_beads.png",
    "16_beads_3d.png",
]


def scores(stdout, label):
    """(F1, mean IoU) of the tutorial's printed line that starts with `label`."""
    match = re.search(rf"^{re.escape(label)}.*F1 ([0-9.]+), mean IoU ([0-9.]+)", stdout, re.MULTILINE)
    assert match, f"no score line starting with {label!r} in the tutorial's output"
    return float(match[1]), float(match[2])


# --------------------------------------------------------------------------- the tutorial


@pytest.mark.slow
def test_tutorial_runs_and_writes_its_figures(tmp_path):
    figures, results = tmp_path / "figures", tmp_path / "results"
    # a fresh interpreter, warnings as errors like the test run
    done = subprocess.run([sys.executable, "-W", "error", str(TUTORIAL), str(figures), str(results)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, f"the tutorial failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.stderr == "", done.stderr
    for name in TUTORIAL_FIGURES:
        path = figures / name
        assert path.is_file(), f"the tutorial did not write {name}"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000, name
    assert sorted(p.name for p in figures.iterdir()) == sorted(TUTORIAL_FIGURES)
    for folder in ("segment-results", "nuclei-results", "beads-results"):
        assert (results / folder / "labels.tif").is_file()
    assert (results / "nuclei-results" / "report.html").is_file()
    out = done.stdout
    assert "nuclei.toml gives the same labels as the steps above" in out
    # the claims of the pipeline files and docs/pipelines.md, as the tutorial measured them
    nuclei_f1, nuclei_iou = scores(out, "step by step / nuclei.toml:")
    default_f1, default_iou = scores(out, "default segment() recipe:   ")
    assert nuclei_f1 >= default_f1 and nuclei_iou >= default_iou
    assert (nuclei_f1, nuclei_iou) == scores(out, "nuclei-results")  # the command line gives the same
    beads_f1, beads_iou = scores(out, "beads.toml, bright beads:")
    assert beads_f1 == 1.0 and beads_iou >= scores(out, "default segment() recipe:       ")[1]
    assert scores(out, "beads.toml, dark_objects=true:")[0] == 1.0
    assert scores(out, "noisy pack, beads.toml:")[0] >= scores(out, "noisy pack, without the median:")[0]


# --------------------------------------------------------------------------- the example pipelines


def test_example_pipelines_are_installed_and_commented():
    from voxseg.pipeline import Pipeline

    for name in EXAMPLES:
        resource = PIPELINES / name
        assert resource.is_file(), f"{name} is not installed with the package"
        pipeline = Pipeline.from_toml(resource)
        assert isinstance(pipeline.diameter, float) and pipeline.diameter > 0
        assert pipeline.steps[-1]["op"] == "relabel"
        lines = resource.read_text(encoding="utf-8").splitlines()
        # every step is explained by a comment right below its [[steps]] header
        for index, line in enumerate(lines):
            if line.strip() == "[[steps]]":
                assert lines[index + 1].startswith("# "), f"{name}:{index + 2}: step without a comment"


def test_nuclei_pipeline_runs_from_the_command_line(tmp_path):
    from voxseg import io as vio
    from voxseg.samples import load_sample, sample_path
    from voxseg.testing import match_labels

    outdir = tmp_path / "nuclei-results"
    code, out, err = run_cli("run", PIPELINES / "nuclei.toml", sample_path("nuclei"), "-o", outdir, "--no-report")
    assert code == 0, err
    labels = vio.read(outdir / "labels.tif")
    assert labels.spacing == (0.29, 0.26, 0.26)
    scores_ = match_labels(np.asarray(labels.data), np.asarray(load_sample("nuclei_labels").data))
    # documented in nuclei.toml and docs/pipelines.md: 19 of the 20 reference nuclei, F1 0.974, mean IoU 0.954
    assert scores_["predicted"] == scores_["true_positives"] == 19
    assert scores_["f1"] >= 0.97 and scores_["mean_iou"] >= 0.95
    assert "19 objects; threshold otsu" in out


def test_beads_pipeline_runs_from_the_command_line(tmp_path):
    from voxseg import io as vio
    from voxseg.testing import match_labels, sphere_pack

    # a small anisotropic pack: the file's lengths are in um, whatever the spacing
    pack = sphere_pack(shape=(24, 48, 48), spacing=(2.0, 1.0, 1.0), diameter=16.0, seed=1, attempts=3000)
    path = vio.write_volume(tmp_path / "beads.tif", pack.image, spacing=pack.spacing, unit="um")
    outdir = tmp_path / "beads-results"
    code, out, err = run_cli("run", PIPELINES / "beads.toml", path, "-o", outdir, "--no-report")
    assert code == 0, err
    labels = np.asarray(vio.read(outdir / "labels.tif").data)
    scores_ = match_labels(labels, pack.labels)
    assert abs(scores_["predicted"] - scores_["truth"]) <= 1
    assert scores_["f1"] >= 0.97


def test_a_typo_in_a_pipeline_file_is_one_line_naming_file_line_and_the_fix(tmp_path):
    from voxseg.samples import sample_path

    text = (PIPELINES / "nuclei.toml").read_text(encoding="utf-8")
    assert text.count('op = "gaussian"') == 1
    edited = tmp_path / "my-nuclei.toml"
    edited.write_text(text.replace('op = "gaussian"', 'op = "gausian"'), encoding="utf-8")
    line = text.splitlines().index('op = "gaussian"') + 1
    outdir = tmp_path / "out"
    code, out, err = run_cli("run", edited, sample_path("nuclei"), "-o", outdir)
    assert code == 2
    assert err == f"voxseg: error: {edited}:{line}: unknown step 'gausian'; did you mean 'gaussian'?\n"
    assert out == "" and not outdir.exists()


# --------------------------------------------------------------------------- the operator reference


def documented_operators():
    """{operator: set of parameters} from the '#### `name`' sections of docs/pipelines.md."""
    text = (DOCS / "pipelines.md").read_text(encoding="utf-8")
    _, _, reference = text.partition("\n## Operators\n")
    assert reference, "docs/pipelines.md has no '## Operators' section"
    documented = {}
    for section in re.split(r"^#### ", reference, flags=re.MULTILINE)[1:]:
        heading, _, body = section.partition("\n")
        name = re.fullmatch(r"`(\w+)`", heading.strip())
        assert name, f"operator heading {heading!r} is not a `name`"
        assert name[1] not in documented, f"{name[1]} is documented twice"
        documented[name[1]] = set(re.findall(r"^\| `(\w+)` \|", body, flags=re.MULTILINE))
    return documented


def test_every_operator_is_documented_with_its_parameters():
    from voxseg.pipeline import OPERATORS, Pipeline

    Pipeline([])  # fills the registry
    documented = documented_operators()
    assert sorted(documented) == sorted(OPERATORS), "docs/pipelines.md and the operator registry differ"
    for name, op in OPERATORS.items():
        assert documented[name] == set(op.parameters()), (
            f"docs/pipelines.md: parameters of {name}: documented {sorted(documented[name])}, "
            f"accepted {sorted(op.parameters())}")


def test_the_documented_example_steps_are_valid():
    """The TOML snippets of docs/pipelines.md parse and validate."""
    import tomllib

    from voxseg.pipeline import Pipeline

    text = (DOCS / "pipelines.md").read_text(encoding="utf-8")
    snippets = re.findall(r"```toml\n(.*?)```", text, flags=re.DOTALL)
    assert snippets
    for snippet in snippets:
        Pipeline.from_dict(tomllib.loads(snippet))


# --------------------------------------------------------------------------- links


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading."""
    anchor = heading.strip().lower().replace(" ", "-")
    return re.sub(r"[^\w\-]", "", anchor)


@pytest.mark.parametrize("page", ["index.md", "pipelines.md"])
def test_relative_links_resolve(page):
    path = DOCS / page
    text = path.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue
        target, _, anchor = link.partition("#")
        resolved = (path.parent / target).resolve() if target else path
        assert resolved.is_file(), f"{page}: broken link {link!r}"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", resolved.read_text(encoding="utf-8"), flags=re.MULTILINE)
            assert anchor in {github_anchor(h) for h in headings}, f"{page}: no heading for {link!r}"
