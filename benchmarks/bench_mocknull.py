"""Null test of the mock observer with the detector's scores.

The same synthetic-sky galaxies are observed two ways:

* directly, as the synthetic sky renders them (``Survey.draw`` of the GalSim
  profiles, then noise and the colour recipe);
* as an idealised, PSF-free image at 0.1"/px (what a simulation's renderer
  would hand over: the profile blurred by a Gaussian of sigma 0.05", the
  resolution of such a map, which widens the 1.4" PSF by under 1%), then
  through ``galrate.mock.mock_observe``.

If the mock observer adds nothing of its own, a detector trained on the
synthetic sky scores the two sets alike. Reported: the distributions of the
three scores on both sides, the two-sample KS test and the per-galaxy paired
difference of A, and the pixel statistics of the noiseless images.

The detector is the first one of the detection benchmark when it exists
(``benchmarks/work/detection/model-seed0``); otherwise a small one is trained
here on 600 synthetic observed galaxies.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FINE_SCALE = 0.1     # arcsec per pixel of the idealised images
FINE_SIZE = 320      # pixels: 32" across, the 25" cutout plus margin
FINE_BLUR = 0.05     # arcsec, Gaussian sigma of the idealised renderer's resolution


def _idealised(row, survey) -> dict:
    import galsim

    from galrate.synth.render import galaxy_profiles

    maps = {}
    blur = galsim.Gaussian(sigma=FINE_BLUR)
    for band, prof in galaxy_profiles(row, survey).items():
        img = galsim.ImageF(FINE_SIZE, FINE_SIZE, scale=FINE_SCALE)
        galsim.Convolve(prof, blur).drawImage(img, method="auto")
        maps[band] = img.array.astype(np.float64)
    return maps


def _model(workdir: Path, quick: bool) -> Path:
    from galrate.detector import TrainConfig, train
    from galrate.synth import SynthConfig, synth

    shared = workdir.parent / "detection" / "model-seed0"
    if (shared / "model.json").exists():
        return shared
    sky = workdir / "sky"
    if not (sky / "sky.json").exists():
        synth(sky, SynthConfig(n_observed=200 if quick else 600, n_suite=0, n_sanity=0,
                               contact_sheet=False, seed=7))
    model = workdir / "model"
    if not (model / "model.json").exists():
        train([sky / "observed"], model, TrainConfig(epochs=1 if quick else 3, ngf=16,
                                                    ndf=16, nz=64, seed=0))
    return model


def run(workdir: Path, quick: bool) -> dict:
    from scipy import stats

    from galrate.detector import load_model
    from galrate.mock import mock_observe
    from galrate.survey import SDSS
    from galrate.synth.population import draw_images, draw_population
    from galrate.synth.render import render_noiseless

    n = 60 if quick else 300
    rows = draw_images(draw_population(n, seed=11, stream="suite"), seed=11,
                       stream="suite", neighbour_fraction=0.0, star_fraction=0.0)
    rows = rows.assign(offset_x=0.0, offset_y=0.0)
    direct, mocked, flux_err, pix_err = [], [], [], []
    for k, row in enumerate(rows.to_dict("records")):
        clean = render_noiseless(row, SDSS, scene=False)
        res = mock_observe(_idealised(row, SDSS), unit="nmgy/pixel", survey=SDSS,
                           redshift=float(row["redshift"]), pixel_scale_arcsec=FINE_SCALE,
                           rng=np.random.default_rng(1000 + k))
        direct.append(SDSS.to_rgb(SDSS.add_noise(clean, np.random.default_rng(k))))
        mocked.append(res.rgb)
        flux_err.append(2.5 * np.log10(res.noiseless.sum(axis=(1, 2))
                                       / clean.sum(axis=(1, 2))))
        pix_err.append(np.abs(res.noiseless - clean).max() / clean.max())

    det = load_model(_model(workdir, quick))
    a = det.score_arrays(np.stack(direct))
    b = det.score_arrays(np.stack(mocked))
    out = {"n_galaxies": n, "detector": str(det.metadata.get("architecture", {})),
           "noiseless_flux_difference_mag": {"max_abs": float(np.abs(flux_err).max())},
           "noiseless_max_pixel_difference_over_peak": float(np.max(pix_err)),
           "scores": {}}
    for name in ("score_latent", "score_recon", "score_feature"):
        ks = stats.ks_2samp(a[name], b[name])
        w = stats.wilcoxon(a[name] - b[name])
        out["scores"][name] = {
            "direct_median": float(np.median(a[name])),
            "mock_median": float(np.median(b[name])),
            "ks_stat": float(ks.statistic), "ks_p": float(ks.pvalue),
            "paired_median_difference": float(np.median(b[name] - a[name])),
            "wilcoxon_p": float(w.pvalue)}
    return out
