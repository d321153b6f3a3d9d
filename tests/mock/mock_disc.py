"""A synthetic star-particle disc written as a tipsy snapshot (test helper)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

#: exponential disc used throughout: scale length, scale height (kpc), stars
DISC_SCALE_KPC = 2.0
DISC_HEIGHT_KPC = 0.15
DISC_AGE_GYR = 5.0
DISC_Z = 0.008


def write_disc_tipsy(folder: Path, name: str = "disc", n: int = 4000, seed: int = 7,
                     mass_msun: float = 1e10, tilt_deg: float = 0.0) -> Path:
    """Write an exponential stellar disc as a tipsy file with a .param file.

    Radii follow ``R exp(-R/h)`` (surface density ``exp(-R/h)``), heights a
    Gaussian of ``DISC_HEIGHT_KPC``, circular velocity 200 km/s, one age and
    metallicity; the disc is tilted by ``tilt_deg`` about the x axis.
    Units: kpc, 1e10 Msun, G = 1 (the tipsy convention of ``dKpcUnit``
    and ``dMsolUnit``).
    """
    import pynbody
    from pynbody import units

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.param").write_text("dKpcUnit = 1.0\ndMsolUnit = 1e10\nbComove = 0\n")
    t_unit_gyr = float((units.kpc ** (3, 2) * (1e10 * units.Msol) ** (-1, 2)
                        * units.G ** (-1, 2)).in_units("Gyr"))
    v_unit_kms = float((units.kpc / (t_unit_gyr * units.Gyr)).in_units("km s^-1"))
    radius = rng.gamma(2.0, DISC_SCALE_KPC, n)
    phi = rng.uniform(0, 2 * np.pi, n)
    pos = np.column_stack([radius * np.cos(phi), radius * np.sin(phi),
                           rng.normal(0, DISC_HEIGHT_KPC, n)])
    vel = 200.0 * np.column_stack([-np.sin(phi), np.cos(phi), np.zeros(n)])
    tilt = np.radians(tilt_deg)
    rot = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)],
                    [0, np.sin(tilt), np.cos(tilt)]])
    pos, vel = pos @ rot.T, vel @ rot.T
    sim = pynbody.new(star=n)
    sim["pos"] = pos + np.array([5.0, -3.0, 1.0])
    sim["vel"] = vel / v_unit_kms
    sim["mass"] = np.full(n, mass_msun / n / 1e10)
    now_gyr = 13.0
    sim["tform"] = np.full(n, (now_gyr - DISC_AGE_GYR) / t_unit_gyr)
    sim["metals"] = np.full(n, DISC_Z)
    sim["eps"] = np.full(n, 0.05)
    sim.properties["time"] = now_gyr / t_unit_gyr
    path = folder / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim.write(fmt=pynbody.snapshot.tipsy.TipsySnap, filename=str(path))
    return path
