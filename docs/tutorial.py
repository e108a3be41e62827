# %% [markdown]
# # voxseg tutorial: from raw voxels to measured objects
#
# This tutorial walks the workflow of the EuroSciPy 2019 tutorial "3D image processing with
# scikit-image" with voxseg, on its two kinds of data: nuclei in a confocal z-stack, and beads in a
# micro-CT scan of a bead pack. Every length below is in the unit of the voxel spacing (um), every
# volume in um^3: voxseg converts them to voxels per axis, so a filter or a size limit means the same
# thing along the coarse z axis as along x and y.
#
# It is a plain Python script in the "percent" format: run it whole,
#
#     python docs/tutorial.py [FIGURES_DIR [RESULTS_DIR]]
#
# or cell by cell (`# %%`) in VS Code, Spyder or Jupyter (with jupytext). Figures go to FIGURES_DIR,
# else `$VOXSEG_TUTORIAL_FIGURES`, else `docs/_build/figures`; the files the command-line steps write
# go to RESULTS_DIR, else `$VOXSEG_TUTORIAL_RESULTS`, else a `results` folder beside the figures.
# Every number it prints is computed as it runs; `tests/test_docs.py` runs it on every test run.

# %%
import os
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy import ndimage as ndi

import voxseg
from voxseg import edges, exposure, filters, morphology, samples, testing, transform
from voxseg.measurements import measure, summarize
from voxseg.pipeline import Pipeline
from voxseg.report import figures
from voxseg.segmentation import clear_border, distance_transform, relabel_canonical, segment, split_touching
from voxseg.threshold import compare_thresholds, threshold
from voxseg.volume import length_to_voxels, voxel_volume

started = time.perf_counter()
as_script = "__file__" in globals()  # not in a notebook or an interactive window
if as_script:
    HERE = Path(__file__).resolve().parent
else:
    HERE = Path.cwd() / "docs" if (Path.cwd() / "docs").is_dir() else Path.cwd()
arguments = sys.argv[1:] if as_script and __name__ == "__main__" else []
FIGURES = Path(arguments[0] if arguments else
               os.environ.get("VOXSEG_TUTORIAL_FIGURES") or HERE / "_build" / "figures")
RESULTS = Path(arguments[1] if len(arguments) > 1 else
               os.environ.get("VOXSEG_TUTORIAL_RESULTS") or FIGURES.parent / "results")
FIGURES.mkdir(parents=True, exist_ok=True)
RESULTS.mkdir(parents=True, exist_ok=True)
# the example pipelines installed with voxseg
PIPELINES = resources.files("voxseg") / "pipelines"
written = []


def save(fig, name):
    """Write a figure into FIGURES (reproducibly: no date in the file)."""
    path = figures.save_figure(fig, FIGURES / name, dpi=100)
    written.append(path)
    print(f"figure: {path}")


def score(labels, truth):
    """One line of object-level agreement with a reference labelling."""
    m = testing.match_labels(labels, truth)
    return (f"{m['predicted']:3d} objects for {m['truth']} true, {m['true_positives']} matched (IoU >= 0.5): "
            f"F1 {m['f1']:.3f}, mean IoU {m['mean_iou']:.3f}")


def planes(images, spacing, *, unit="um", z=None, y=None, histograms=False):
    """An xy plane (top) and an xz plane (below) of each image, side by side, in true proportions.

    `images` maps a title to a 3D array; with `histograms` a third row shows each grey-level histogram.
    """
    first = next(iter(images.values()))
    nz, ny, nx = first.shape
    sz, sy, sx = spacing
    z = nz // 2 if z is None else z
    y = ny // 2 if y is None else y
    ratios = [ny * sy, nz * sz] + ([0.45 * nx * sx] if histograms else [])
    fig = Figure(figsize=(2.6 * len(images), 2.6 * sum(ratios) / (nx * sx) + 0.8), layout="constrained")
    axes = fig.subplots(len(ratios), len(images), squeeze=False, height_ratios=ratios)
    ul = figures.unit_label(unit)
    for column, (name, data) in enumerate(images.items()):
        lo, hi = figures.display_range(data)
        cmap = "magma" if name.startswith(("sobel", "distance")) else "gray"
        for row, (plane, extent, label) in enumerate([
            (data[z], (0, nx * sx, ny * sy, 0), f"xy, z = {z * sz:.1f} {ul}"),
            (data[:, y], (0, nx * sx, nz * sz, 0), f"xz, y = {y * sy:.1f} {ul}"),
        ]):
            ax = axes[row, column]
            if name.startswith("labels"):  # each object in its colour (as in every voxseg figure), background black
                plane = np.where(plane[..., None] > 0, figures.label_colors(plane), 0).astype(np.uint8)
            ax.imshow(plane, cmap=cmap, vmin=lo, vmax=hi, extent=extent, interpolation="nearest")
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if column == 0:
                ax.set_ylabel(label, fontsize=8)
        axes[0, column].set_title(name, fontsize=9)
        if histograms:
            ax = axes[2, column]
            values = data[np.isfinite(data)] if data.dtype.kind == "f" else data
            ax.hist(values.ravel(), bins=128, color="0.4", log=True)
            ax.set_xlabel("grey level", fontsize=8)
            ax.tick_params(labelsize=7)
    return fig


# %% [markdown]
# ## 1. Load the nuclei stack with its spacing
#
# voxseg ships the nuclei channel of the Allen Institute cells3d stack (the scikit-image tutorial's
# `cells.tif`) with its reference segmentation. `voxseg.read` takes the voxel spacing from the
# file's metadata (ImageJ, OME) and says where it came from; `--spacing Z Y X` on the command line, or
# `spacing=` here, overrides it. `samples.load_sample("nuclei")` gives the same volume.

# %%
volume = voxseg.read(samples.sample_path("nuclei"))
image = np.asarray(volume.data)
spacing = volume.spacing
truth = np.asarray(samples.load_sample("nuclei_labels").data)
extent = [n * s for n, s in zip(volume.shape, spacing)]
print(f"shape {volume.shape} (z, y, x), {volume.dtype}, spacing {spacing} {volume.unit} "
      f"(from the {volume.spacing_source}), axes {volume.axes}")
print(f"extent {extent[0]:.1f} x {extent[1]:.1f} x {extent[2]:.1f} um; one voxel is {voxel_volume(spacing):.4f} um^3")
print(f"reference segmentation: {int(truth.max())} nuclei")

# %% [markdown]
# ## 2. Inspect: planes in true proportions, a montage, the histogram
#
# `orthogonal_planes` draws the xy, zy and xz planes through one voxel with physical extents, so a
# stack keeps its shape whatever its spacing; `montage` shows every n-th plane. The histogram shows
# the range the detector used: the nuclei (a sixth of the voxels) are a long bright tail above the
# peak of the dark background.

# %%
save(figures.orthogonal_planes(image, spacing=spacing, unit=volume.unit), "01_orthogonal_planes.png")
save(figures.montage(image, spacing=spacing, step=4), "02_montage.png")
lo, hi = exposure.percentile(image, [0.5, 99.5])
print(f"grey levels {image.min()} .. {image.max()}; 0.5 % and 99.5 % percentiles {lo:g} and {hi:g}")
save(figures.histogram(image, thresholds={"0.5 %": lo, "99.5 %": hi}, log=True), "03_histogram.png")

# %% [markdown]
# ## 3. Exposure
#
# Contrast adjustments never change the data silently: each returns a new array, float32 in [0, 1]
# where the result is fractional. The percentile rescale maps the 0.5th and 99.5th percentiles to 0
# and 1 (the first step of every voxseg pipeline); gamma < 1 brightens the dim voxels, gamma > 1
# darkens them; histogram equalisation spreads the grey levels evenly; CLAHE equalises locally, in
# regions whose size is a length (10 um, about one nucleus) converted to voxels per axis.

# %%
rescaled = exposure.rescale_intensity(image, low=0.5, high=99.5)
clahe_kernel = 10.0  # um
print(f"CLAHE regions of {clahe_kernel} um = {np.round(length_to_voxels(clahe_kernel, spacing), 1)} voxels (z, y, x)")
variants = {
    "raw": image,
    "rescaled 0.5-99.5 %": rescaled,
    "gamma 0.5": exposure.adjust_gamma(rescaled, 0.5),
    "gamma 2": exposure.adjust_gamma(rescaled, 2.0),
    "equalised": exposure.equalize_hist(image),
    "CLAHE 10 um": exposure.equalize_adapthist(image, kernel_size=clahe_kernel, spacing=spacing, clip_limit=0.01),
}
for name, data in variants.items():
    print(f"{name:20s} {str(data.dtype):8s} range {float(data.min()):8.3f} .. {float(data.max()):8.3f}, "
          f"median {float(np.median(data)):8.3f}")
save(planes(variants, spacing, histograms=True), "04_exposure.png")

# %% [markdown]
# ## 4. Edges: Sobel in 3D or plane by plane
#
# voxseg's edge filters divide each axis derivative by the voxel size along that axis: the response is
# a gradient per um, the same for the same physical edge along z as along x. The planewise version
# uses only the in-plane derivatives of each z plane: on the tops and bottoms of the nuclei, where the
# intensity changes mostly along z, its response drops relative to the sides (compare the xz planes,
# and the mean responses on the reference nuclei's z faces and side faces).

# %%
sobel_3d = edges.sobel(rescaled, spacing=spacing)
sobel_planes = edges.sobel(rescaled, spacing=spacing, planewise=True)
inside = truth > 0
z_faces = np.zeros_like(inside)
z_faces[1:] |= inside[1:] & ~inside[:-1]    # top faces: foreground above background
z_faces[:-1] |= inside[:-1] & ~inside[1:]   # bottom faces
surface = inside & ~ndi.binary_erosion(inside, structure=ndi.generate_binary_structure(3, 1))
side_faces = surface & ~z_faces  # surface voxels with background beside them along y or x only
for name, magnitude in (("3D", sobel_3d), ("planewise", sobel_planes)):
    top, side = magnitude[z_faces].mean(), magnitude[side_faces].mean()
    print(f"sobel {name:9s}: mean gradient on the nuclei's z faces {top:.3f} /um, on their sides {side:.3f} /um "
          f"(ratio {top / side:.2f})")
save(planes({"rescaled": rescaled, "sobel 3D": sobel_3d, "sobel planewise": sobel_planes}, spacing), "05_edges.png")

# %% [markdown]
# ## 5. Denoising with lengths in um
#
# A Gaussian of sigma 0.5 um, a median over a ball of radius 0.5 um and a bilateral filter (spatial
# sigma 0.5 um, range sigma 0.1 of the rescaled grey levels, which keeps edges), on the central
# 128 x 128 pixels of the rescaled stack (the median and the bilateral filter take a second or two on
# the whole of it). The Gaussian's sigma is 0.5 / 0.29 = 1.7 planes along z and 0.5 / 0.26 = 1.9 pixels
# along y and x. The background's standard deviation measures the noise left.

# %%
crop = (slice(None), slice(64, 192), slice(64, 192))
part = rescaled[crop]
background = ~ndi.binary_dilation(inside, iterations=3)[crop]
denoised = {"rescaled": part}
for name, run_filter in (
    ("gaussian 0.5 um", lambda: filters.gaussian(part, 0.5, spacing=spacing)),
    ("median 0.5 um", lambda: filters.median(part, 0.5, spacing=spacing)),
    ("bilateral 0.5 um", lambda: filters.bilateral(part, sigma_spatial=0.5, sigma_range=0.1, spacing=spacing)),
):
    start = time.perf_counter()
    denoised[name] = run_filter()
    print(f"{name:17s} {time.perf_counter() - start:5.2f} s")
for name, data in denoised.items():
    print(f"{name:17s} background std {data[background].std():.4f}, nuclei mean {data[inside[crop]].mean():.3f}")
save(planes(denoised, spacing), "06_denoising.png")

# %% [markdown]
# ## 6. Thresholds: compare them all, then Li against Otsu
#
# Every global threshold is computed from the histogram of the whole volume (so that the chunked
# path can get the same value from a histogram reduced over blocks). `compare_thresholds` is a 3D
# `try_all_threshold`: value, foreground fraction and number of connected components of each. Li
# (the default of `voxseg segment`) sits lower than Otsu and takes in the dim rim around the nuclei;
# the reference outlines are closer to Otsu's.

# %%
smoothed = filters.gaussian(rescaled, 0.4, spacing=spacing)  # the light denoising of nuclei.toml
results = [r for r in compare_thresholds(smoothed) if r.get("value") is not None]
print(f"reference foreground: {inside.mean():.1%} of the voxels")
for r in results:
    print(f"{r['method']:9s} threshold {r['value']:.3f}  foreground {r['foreground_fraction']:6.1%}  "
          f"{r['object_count']:4d} components")
save(figures.threshold_comparison(smoothed, [{"name": r["method"], **r} for r in results], spacing=spacing),
     "07_thresholds.png")
li, otsu = threshold(smoothed, "li"), threshold(smoothed, "otsu")
save(figures.histogram(smoothed, thresholds={"li": li, "otsu": otsu}, log=True), "08_li_vs_otsu.png")

# %% [markdown]
# ## 7. Morphology and clean-up
#
# The mask above Otsu's threshold has holes (nucleoli darker than the rest of a nucleus) and specks.
# `fill_holes` fills the background enclosed in 3D; `remove_small_objects` takes a volume in um^3
# (35 um^3, 5 % of an 11 um nucleus), not a number of voxels. An opening with a ball of radius
# 0.5 um smooths the outlines (not needed for these nuclei, shown for its units).

# %%
mask = smoothed > otsu
filled = morphology.fill_holes(mask)
cleaned = morphology.remove_small_objects(filled, 35.0, spacing=spacing)
opened = morphology.opening(cleaned, 0.5, spacing=spacing)
print(f"35 um^3 is {35.0 / voxel_volume(spacing):.0f} voxels of {voxel_volume(spacing):.4f} um^3")
for name, data in (("threshold", mask), ("fill holes", filled), ("remove < 35 um^3", cleaned),
                   ("opening 0.5 um", opened)):
    components = ndi.label(data)[1]
    print(f"{name:17s} {int(data.sum()):8d} voxels, {components:4d} connected components")
save(planes({"threshold": mask, "fill holes": filled, "remove small": cleaned, "opening 0.5 um": opened},
            spacing), "09_cleanup.png")

# %% [markdown]
# ## 8. Separating touching nuclei
#
# Touching nuclei are one connected component of the mask. `split_touching` runs a watershed of the
# Euclidean distance map from its maxima; the map honours the spacing (`distance_transform` gives um),
# and an expected diameter of 11 um sets the seeds' merging rules. Small fragments left at the volume
# border (under 140 um^3) are dropped, and the labels numbered in raster order. These are exactly the
# steps of the example pipeline `nuclei.toml`, which gives the same labels; `segment()` runs the default
# recipe (no smoothing, Li, diameter estimated from the data).

# %%
distance = distance_transform(cleaned, spacing=spacing)
print(f"largest distance to the background {distance.max():.2f} um (a nucleus radius)")
split = split_touching(cleaned, spacing=spacing, diameter=11.0)
labels = relabel_canonical(morphology.remove_small_objects(split, 140.0, spacing=spacing))
print(f"{ndi.label(cleaned)[1]} components split into {int(split.max())} objects, {int(labels.max())} kept")

nuclei_pipeline = Pipeline.from_toml(PIPELINES / "nuclei.toml")
from_file = nuclei_pipeline.run(image, spacing=spacing)
assert np.array_equal(from_file.data, labels), "the pipeline file should run the same functions"
print("nuclei.toml gives the same labels as the steps above")

li_steps = [dict(s, method="li") if s["op"] == "threshold" else s for s in nuclei_pipeline.steps]
with_li = Pipeline(li_steps, diameter=nuclei_pipeline.diameter).run(image, spacing=spacing)
default = segment(image, spacing=spacing)
print(f"step by step / nuclei.toml: {score(labels, truth)}")
print(f"nuclei.toml with Li:        {score(with_li.data, truth)}")
print(f"default segment() recipe:   {score(default.data, truth)} "
      f"(diameter estimated {default.pipeline.diameter} um)")
save(planes({"mask": cleaned, "distance map (um)": distance, "labels": labels}, spacing), "10_distance.png")
save(figures.orthogonal_planes(image, spacing=spacing, labels=labels), "11_labels.png")
save(figures.montage(image, spacing=spacing, labels=labels, step=6), "12_labels_montage.png")

# %% [markdown]
# ## 9. Clear the border
#
# Nuclei cut by the faces of the volume have wrong volumes and shapes; `clear_border` drops them (then
# renumber). Keep them to count nuclei, drop them to measure shapes.

# %%
inner = relabel_canonical(clear_border(labels))
print(f"{int(labels.max())} nuclei, {int(labels.max()) - int(inner.max())} touch the border, "
      f"{int(inner.max())} lie wholly inside")

# %% [markdown]
# ## 10. Measure
#
# `measure` gives one row per object, in um, um^2 and um^3, with intensity statistics when an image is
# given; `summarize` the volume and area statistics. The reference nuclei measured the same way show
# how close the segmentation comes.

# %%
table = measure(labels, image, spacing=spacing)
columns = ["label", "volume", "surface_area", "equivalent_diameter", "sphericity", "touches_border",
           "intensity_mean"]
print(table[columns].head(8).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
stats = summarize(table, unit=volume.unit)
reference = measure(truth, spacing=spacing)
print(f"{stats['count']} nuclei, volume {stats['volume_mean']:.0f} +- {stats['volume_std']:.0f} "
      f"{stats['volume_unit']} (min {stats['volume_min']:.0f}, max {stats['volume_max']:.0f})")
for name, t in (("segmented", table), ("reference", reference)):
    whole = t[~t["touches_border"]]
    print(f"{name}: {len(whole)} nuclei inside the volume, median volume {whole['volume'].median():.0f} um^3, "
          f"median equivalent diameter {whole['equivalent_diameter'].median():.2f} um")
table.to_csv(RESULTS / "nuclei-objects.csv", index=False, float_format="%.6g")
save(figures.distributions(table, unit=volume.unit), "13_distributions.png")

# %% [markdown]
# ## 11. 3D view
#
# Marching-cubes surfaces in physical coordinates (a coarser step of 2 voxels is fast and looks the same).

# %%
save(figures.surface_3d(labels, spacing=spacing, step_size=2), "14_surface_3d.png")

# %% [markdown]
# ## 12. A micro-CT bead pack: bright or dark objects
#
# `voxseg.testing.sphere_pack` makes a dense random pack of touching beads with its exact labels (the
# `beads` sample is this pack: 96^3 voxels of 1 um, beads of 16 um). In a scan the beads may be brighter
# than the pores (glass in air) or darker (beads in a contrast fluid): a threshold keeps the voxels
# above it unless `dark_objects` is set. Thresholding the dark version as if the beads were bright
# selects the pore space instead of the beads.

# %%
pack = testing.sphere_pack(shape=(96, 96, 96), spacing=(1.0, 1.0, 1.0), diameter=16.0, seed=0)
bead_truth = pack.labels
print(f"bead pack {pack.image.shape}, {pack.image.dtype}, spacing {pack.spacing} um, "
      f"{int(bead_truth.max())} beads of about {pack.diameter:g} um")
dark = np.iinfo(pack.image.dtype).max - pack.image  # the same pack, beads dark
value = threshold(dark, "otsu")
for name, selected in (("bright (default)", dark > value), ("dark_objects", dark < value)):
    agreement = np.mean(selected == (bead_truth > 0))
    print(f"dark beads thresholded as {name:16s}: {selected.mean():6.1%} of the volume, "
          f"{ndi.label(selected)[1]:4d} components; agrees with the beads on {agreement:.1%}")

# %% [markdown]
# ## 13. The beads pipeline
#
# `beads.toml` (shipped with voxseg, see `docs/pipelines.md`) gives the diameter (16 um) and denoises
# with a median of radius 1 um before Otsu's threshold. For the dark version only `dark_objects`
# changes. The same file runs unchanged on a copy with twice the z spacing, because every length in it
# is in um. Last, on a noisier scan (three times the noise), the pipeline with and without its median.

# %%
beads_pipeline = Pipeline.from_toml(PIPELINES / "beads.toml")
bright = beads_pipeline.run(pack.image, spacing=pack.spacing)
dark_steps = [dict(s, dark_objects=True) if s["op"] == "threshold" else s for s in beads_pipeline.steps]
dark_result = Pipeline(dark_steps, diameter=beads_pipeline.diameter).run(dark, spacing=pack.spacing)
print(f"beads.toml, bright beads:       {score(bright.data, bead_truth)}")
print(f"beads.toml, dark_objects=true:  {score(dark_result.data, bead_truth)}")
print(f"default segment() recipe:       {score(segment(pack.image, spacing=pack.spacing).data, bead_truth)}")

coarse, coarse_spacing = transform.downscale_local_mean(pack.image, (2, 1, 1), spacing=pack.spacing)
coarse_result = beads_pipeline.run(coarse, spacing=coarse_spacing)
print(f"beads.toml at spacing {coarse_spacing} um: {int(coarse_result.data.max())} beads "
      f"(the full-resolution run found {int(bright.data.max())})")

noisy = testing.sphere_pack(shape=(64, 64, 64), diameter=16.0, noise=0.15, seed=2, attempts=5000)
no_median = Pipeline([s for s in beads_pipeline.steps if s["op"] != "median"], diameter=beads_pipeline.diameter)
for name, pipeline in (("beads.toml:        ", beads_pipeline), ("without the median:", no_median)):
    print(f"noisy pack, {name} {score(pipeline.run(noisy.image, spacing=noisy.spacing).data, noisy.labels)}")
save(figures.orthogonal_planes(pack.image, spacing=pack.spacing, labels=bright.data), "15_beads.png")
save(figures.surface_3d(bright.data, spacing=pack.spacing, step_size=2, max_objects=60), "16_beads_3d.png")

# %% [markdown]
# ## 14. The same from the command line
#
# Everything above has a command-line equivalent that writes a results folder: labels (ImageJ TIFF with
# the spacing), objects table (CSV, um), summary, the resolved pipeline and an HTML report.
#
#     voxseg sample nuclei -o nuclei.tif
#     voxseg segment nuclei.tif -o segment-results             # the default recipe
#     voxseg run nuclei.toml nuclei.tif -o nuclei-results       # an example pipeline
#
# The cell runs these commands (as `python -m voxseg.cli`, which is the `voxseg` command) and scores
# the labels they write.

# %%
def voxseg_command(*args):
    """Run `voxseg ARGS...` and show it and what it printed."""
    args = [str(a) for a in args]
    print("$ voxseg " + " ".join(args))
    done = subprocess.run([sys.executable, "-m", "voxseg.cli", *args], capture_output=True, text=True)
    print((done.stdout + done.stderr).rstrip())
    if done.returncode != 0:
        raise SystemExit(f"voxseg {' '.join(args)} failed with exit status {done.returncode}")


nuclei_tif = RESULTS / "nuclei.tif"
voxseg_command("sample", "nuclei", "-o", nuclei_tif, "--overwrite")
voxseg_command("segment", nuclei_tif, "-o", RESULTS / "segment-results", "--overwrite")
voxseg_command("run", PIPELINES / "nuclei.toml", nuclei_tif, "-o", RESULTS / "nuclei-results", "--overwrite")
beads_tif = RESULTS / "beads.tif"
voxseg.io.write_volume(beads_tif, pack.image, spacing=pack.spacing, unit="um", overwrite=True)
voxseg_command("run", PIPELINES / "beads.toml", beads_tif, "-o", RESULTS / "beads-results", "--overwrite",
               "--no-report")
for folder, reference_labels in (("segment-results", truth), ("nuclei-results", truth), ("beads-results", bead_truth)):
    written_labels = voxseg.read(RESULTS / folder / "labels.tif")
    print(f"{folder:16s} labels.tif, spacing {written_labels.spacing}: "
          f"{score(np.asarray(written_labels.data), reference_labels)}")

# %%
print(f"\n{len(written)} figures in {FIGURES}; results in {RESULTS}; "
      f"{time.perf_counter() - started:.0f} s")
