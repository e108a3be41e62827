"""Time each voxseg operator against the scikit-image / SciPy call it replaces.

Both run in the same process on the same input: a 60 x 256 x 256 uint16
volume from a seeded generator, smoothed (or a mask / label image derived
from it). Each timing is the best of ``--repeat`` runs. Usage::

    python benchmarks/bench_operators.py [--repeat 3] [--only gaussian,median]

Prints a table ``name | voxseg s | baseline s | ratio`` (ratio = voxseg /
baseline: below 1 means voxseg is faster).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from scipy import ndimage as ndi


def make_volume(shape=(60, 256, 256), seed=0):
    rng = np.random.default_rng(seed)
    noise = rng.random(shape, dtype=np.float32)
    smooth = ndi.gaussian_filter(noise, (1.0, 3.0, 3.0))
    smooth -= smooth.min()
    smooth /= smooth.max()
    blobs = ndi.gaussian_filter((rng.random(shape) > 0.9995).astype(np.float32), 3.0)
    blobs /= blobs.max()
    data = 0.6 * smooth + 0.4 * blobs
    return (data * 60000 + 1000).astype(np.uint16)


def best_time(func, repeat):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - t0)
    return best


def cases(volume):
    import skimage.exposure as ske
    import skimage.filters as skf
    import skimage.morphology as skm
    import skimage.restoration as skr
    import skimage.transform as skt

    from voxseg import edges, exposure, filters, morphology, transform
    from voxseg.volume import ellipsoid_footprint

    spacing = (2.0, 0.5, 0.5)  # a 4:1 confocal stack
    iso = (1.0, 1.0, 1.0)
    vol_f = volume.astype(np.float32)
    vol_unit = vol_f / 65535.0
    mask = volume > np.percentile(volume, 70)
    labels = ndi.label(mask)[0].astype(np.uint32)
    ball3 = ellipsoid_footprint(3.0, iso)
    ball_aniso = ellipsoid_footprint(1.5, spacing)  # sigma/radius 1.5 um -> (1, 3, 3) voxels
    crop = vol_f[:20, :128, :128]
    hole_mask = ~mask  # background blobs enclosed by foreground become holes

    def sk_percentile_rescale():
        lo, hi = np.percentile(volume, (0.5, 99.5))
        return ske.rescale_intensity(volume, in_range=(lo, hi), out_range=(0.0, 1.0))

    def sk_planes(func, image, **kw):
        return np.stack([func(p, **kw) for p in image])

    # name, voxseg call, baseline call (None: no baseline), note
    return [
        ("percentile", lambda: exposure.percentile(volume, [0.5, 99.5]),
         lambda: np.percentile(volume, [0.5, 99.5]), "np.percentile"),
        ("histogram", lambda: exposure.histogram(volume),
         lambda: ske.histogram(volume), "skimage"),
        ("rescale_intensity", lambda: exposure.rescale_intensity(volume),
         sk_percentile_rescale, "np.percentile + skimage"),
        ("adjust_gamma", lambda: exposure.adjust_gamma(volume, 0.5),
         lambda: ske.adjust_gamma(volume, 0.5), "skimage"),
        ("equalize_hist", lambda: exposure.equalize_hist(volume),
         lambda: ske.equalize_hist(volume), "skimage"),
        ("equalize_adapthist", lambda: exposure.equalize_adapthist(volume, 16.0, spacing=spacing),
         lambda: ske.equalize_adapthist(volume, kernel_size=(8, 32, 32)), "skimage"),
        ("gaussian", lambda: filters.gaussian(volume, 1.5, spacing=spacing),
         lambda: skf.gaussian(volume, sigma=(0.75, 3, 3), mode="nearest", preserve_range=True),
         "skimage"),
        ("gaussian float32", lambda: filters.gaussian(vol_f, 1.5, spacing=spacing),
         lambda: skf.gaussian(vol_f, sigma=(0.75, 3, 3), mode="nearest", preserve_range=True),
         "skimage"),
        ("median", lambda: filters.median(volume, 1.5, spacing=spacing),
         lambda: skf.median(volume, ball_aniso, mode="nearest"), "skimage"),
        ("bilateral planewise", lambda: filters.bilateral(
            vol_unit, sigma_spatial=1.0, sigma_range=0.05, planewise=True, truncate=2.83),
         lambda: sk_planes(skr.denoise_bilateral, vol_unit, sigma_color=0.05, sigma_spatial=1.0,
                           win_size=5, mode="edge"), "skimage per plane"),
        ("bilateral 3D", lambda: filters.bilateral(
            vol_unit, sigma_spatial=1.0, sigma_range=0.05, spacing=spacing), None, "no 3D baseline"),
        ("non_local_means (20x128x128)", lambda: filters.non_local_means(
            crop, patch_size=3, patch_distance=3, h=2000.0),
         lambda: skr.denoise_nl_means(crop, patch_size=3, patch_distance=3, h=2000.0,
                                      preserve_range=True), "skimage"),
        ("unsharp_mask", lambda: filters.unsharp_mask(volume, radius=1.5, spacing=spacing),
         lambda: skf.unsharp_mask(volume, radius=(0.75, 3, 3), preserve_range=True), "skimage"),
        ("white_tophat", lambda: filters.white_tophat(volume, 3.0),
         lambda: skm.white_tophat(volume, ball3), "skimage"),
        ("subtract_background rolling_ball (20x128x128)",
         lambda: filters.subtract_background(crop, 3.0, method="rolling_ball"),
         lambda: crop - skr.rolling_ball(crop, radius=3), "skimage"),
        ("sobel", lambda: edges.sobel(volume, spacing=spacing),
         lambda: skf.sobel(volume), "skimage"),
        ("scharr", lambda: edges.scharr(volume, spacing=spacing),
         lambda: skf.scharr(volume), "skimage"),
        ("prewitt", lambda: edges.prewitt(volume, spacing=spacing),
         lambda: skf.prewitt(volume), "skimage"),
        ("erosion grey ball r3", lambda: morphology.erosion(volume, 3.0),
         lambda: skm.erosion(volume, ball3), "skimage"),
        ("dilation grey ball r3", lambda: morphology.dilation(volume, 3.0),
         lambda: skm.dilation(volume, ball3), "skimage"),
        ("opening grey ball r3", lambda: morphology.opening(volume, 3.0),
         lambda: skm.opening(volume, ball3), "skimage"),
        ("closing grey ball r3", lambda: morphology.closing(volume, 3.0),
         lambda: skm.closing(volume, ball3), "skimage"),
        ("erosion grey aniso", lambda: morphology.erosion(volume, 1.5, spacing=spacing),
         lambda: skm.erosion(volume, ball_aniso), "skimage"),
        ("erosion grey cube", lambda: morphology.erosion(volume, 2.0, footprint="cube"),
         lambda: skm.erosion(volume, np.ones((5, 5, 5), bool)), "skimage"),
        ("erosion binary ball r3", lambda: morphology.erosion(mask, 3.0),
         lambda: ndi.binary_erosion(mask, ball3, border_value=1), "scipy"),
        ("dilation binary ball r3", lambda: morphology.dilation(mask, 3.0),
         lambda: ndi.binary_dilation(mask, ball3), "scipy"),
        ("opening binary ball r3", lambda: morphology.opening(mask, 3.0),
         lambda: ndi.binary_dilation(ndi.binary_erosion(mask, ball3, border_value=1), ball3),
         "scipy"),
        ("despeckle grey r1", lambda: morphology.despeckle(volume, 1.0),
         lambda: skm.closing(skm.opening(volume, skm.ball(1)), skm.ball(1)), "skimage"),
        ("fill_holes", lambda: morphology.fill_holes(hole_mask),
         lambda: ndi.binary_fill_holes(hole_mask), "scipy"),
        ("fill_holes planewise", lambda: morphology.fill_holes(hole_mask, planewise=True),
         lambda: np.stack([ndi.binary_fill_holes(p) for p in hole_mask]), "scipy per plane"),
        ("remove_small_objects mask", lambda: morphology.remove_small_objects(mask, 50),
         lambda: skm.remove_small_objects(mask, max_size=49), "skimage"),
        ("remove_small_objects labels", lambda: morphology.remove_small_objects(labels, 50),
         lambda: skm.remove_small_objects(labels, max_size=49), "skimage"),
        ("remove_small_holes", lambda: morphology.remove_small_holes(mask, 50),
         lambda: skm.remove_small_holes(mask, max_size=50), "skimage"),
        ("downscale_local_mean", lambda: transform.downscale_local_mean(volume, (1, 2, 2)),
         lambda: skt.downscale_local_mean(volume, (1, 2, 2)), "skimage"),
        ("rescale", lambda: transform.rescale(volume, (1, 0.5, 0.5)),
         lambda: skt.rescale(volume, (1, 0.5, 0.5), preserve_range=True), "skimage"),
        ("resample_isotropic (z x2)", lambda: transform.resample_isotropic(
            volume, spacing=(1.0, 0.5, 0.5)),
         lambda: skt.rescale(volume, (2, 1, 1), preserve_range=True), "skimage"),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per call; the best is kept")
    parser.add_argument("--only", default="", help="comma-separated substrings of case names")
    args = parser.parse_args(argv)

    volume = make_volume()
    print(f"input: {volume.shape} {volume.dtype}, numpy {np.__version__}")
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, ours, baseline, note in cases(volume):
            if wanted and not any(w in name for w in wanted):
                continue
            ours()  # warm-up (imports, caches)
            t_ours = best_time(ours, args.repeat)
            if baseline is None:
                t_base = float("nan")
            else:
                baseline()
                t_base = best_time(baseline, args.repeat)
            rows.append((name, t_ours, t_base, note))
            print(f"  {name}: {t_ours:.3f} s vs {t_base:.3f} s", flush=True)

    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'name':<{width}} | voxseg s | baseline s | ratio | baseline")
    print(f"{'-' * width}-|----------|------------|-------|---------")
    for name, t_ours, t_base, note in rows:
        ratio = t_ours / t_base if np.isfinite(t_base) else float("nan")
        print(f"{name:<{width}} | {t_ours:8.3f} | {t_base:10.3f} | {ratio:5.2f} | {note}")


if __name__ == "__main__":
    main()
