"""Throughput of mock observation.

* idealised maps: 3 bands of 500 x 500 pixels at 0.1 kpc/pixel (Lsun/kpc^2),
  placed at z = 0.05 and observed through SDSS (draw + noise + colour);
* particles: a tipsy disc of ~1e5 star particles through the whole chain
  (load, centre, SSP light, projection, observation), face-on, adaptive
  smoothing off and on.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np


def _per_second(fn, repeat: int) -> float:
    fn()  # warm-up: imports, galsim caches
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return repeat / (time.perf_counter() - t0)


def run(workdir: Path, quick: bool) -> dict:
    from galrate.mock import load_stars, mock_observe, mock_particles, orientations
    from galrate.mock.ssp import load_ssp
    from galrate.survey import SDSS

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "mock"))
    from mock_disc import write_disc_tipsy

    n = 500
    y, x = (np.indices((n, n)) - (n - 1) / 2) * 0.1
    disc = 1e8 * np.exp(-np.hypot(x, y) / 3.0)
    maps = {"g": 0.6 * disc, "r": disc, "i": 1.2 * disc}
    rng = np.random.default_rng(0)
    repeat = 3 if quick else 20
    images_per_s = _per_second(lambda: mock_observe(
        maps, unit="Lsun/kpc2", survey=SDSS, redshift=0.05, rng=rng,
        pixel_scale_kpc=0.1), repeat)

    n_stars = 20_000 if quick else 100_000
    path = write_disc_tipsy(workdir / "disc", n=n_stars)
    ssp = load_ssp()
    results = {"idealised_maps": f"3 x {n} x {n} at 0.1 kpc/px, z=0.05",
               "idealised_images_per_s": round(images_per_s, 2),
               "n_star_particles": n_stars}
    for smoothing in ("none", "adaptive"):
        def one():
            stars, _ = load_stars(path)
            (_, rot, incl), = orientations(stars, "faceon")
            mock_particles(stars, survey=SDSS, redshift=0.05, rng=rng, rotation=rot,
                           inclination_deg=incl, ssp=ssp, smoothing=smoothing)
        results[f"particle_galaxies_per_s_{smoothing}"] = round(
            _per_second(one, 2 if quick else 5), 3)
    return results
