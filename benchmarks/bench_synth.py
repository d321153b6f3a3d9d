"""Speed of the synthetic sky: galaxies per second, and where the time goes.

Target: 10,000 observed galaxies in under 3 minutes on a 2-core machine
(about 56 galaxies/s with 2 workers). Quick mode renders 300.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path


def _profile(n: int = 80) -> dict:
    """Per-galaxy draw time (3 bands, no noise) under two GalSim accuracy settings."""
    from galrate.survey import SDSS
    from galrate.synth import draw_images, draw_population, galaxy_profiles
    from galrate.synth.render import gsparams

    rows = draw_images(draw_population(n, 99), 99, "observed", 1, 0.0, 0.0)
    rows = rows.to_dict("records")
    out = {}
    for label, gsp in (("relaxed (used)", gsparams()), ("galsim default", None)):
        for knots in (True, False):
            t0 = time.perf_counter()
            for row in rows:
                if not knots:
                    row = {**row, "knot_frac": 0.0}
                SDSS.draw(galaxy_profiles(row), gsparams=gsp)
            key = f"{label}, {'with' if knots else 'no'} knots"
            out[key] = round(1e3 * (time.perf_counter() - t0) / n, 2)
    return {"ms_per_galaxy_noiseless": out}


def run(workdir: Path, quick: bool) -> dict:
    from galrate.synth import SynthConfig, synth

    n = 300 if quick else 10_000
    workers = min(2, os.cpu_count() or 1)
    out = Path(workdir) / "sky"
    shutil.rmtree(out, ignore_errors=True)
    config = SynthConfig(n_observed=n, n_suite=0, n_sanity=0, workers=workers, seed=0,
                         contact_sheet=False)
    t0 = time.perf_counter()
    synth(out, config)
    wall = time.perf_counter() - t0
    rate = n / wall
    result = {"n_galaxies": n, "workers": workers, "wall_s": round(wall, 2),
              "galaxies_per_s": round(rate, 1),
              "projected_10k_minutes": round(10_000 / rate / 60, 2),
              "target_galaxies_per_s": 56.0, "meets_target": bool(rate >= 56.0)}
    result.update(_profile(40 if quick else 150))
    shutil.rmtree(out, ignore_errors=True)
    return result
