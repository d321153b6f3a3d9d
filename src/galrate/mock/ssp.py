"""Single-stellar-population (SSP) tables: magnitude per solar mass by age and metallicity.

Two sources:

* :class:`PynbodySSP` (default) -- the tables bundled with pynbody 2 (CMD 3.7,
  PARSEC v1.2S + COLIBRI isochrones, Kroupa IMF, single burst of 1 Msun).
  ``lsst_ssp.txt`` gives AB magnitudes in the LSST ``u g r i z y`` bands;
  ``default_ssp.txt`` gives Vega magnitudes in Johnson-Cousins
  ``U B V R I J H K``. galrate uses LSST g, r, i for SDSS g, r, i and B, V for
  B-V. The LSST and SDSS g, r, i filters have similar effective wavelengths
  (LSST about g 4830, r 6220, i 7550 A; SDSS g 4686, r 6165, i 7481 A), so for
  the smooth spectra of stellar populations the two systems are expected to
  differ by a few hundredths of a magnitude, most in g for red populations;
  this is neither measured nor corrected here. Ages and metallicities outside
  the grid (log age/yr 6.6-10.1; Z 1.6e-4 to 0.0095 for LSST) are clamped to
  its edge.
* :class:`CSVSSP` -- a user table in CSV with columns ``age_gyr``,
  ``metallicity`` (metal mass fraction Z) and one column per band (absolute
  AB magnitude of 1 Msun formed), on a full age x metallicity grid.
  Interpolated linearly in (log age, log Z), clamped at the edges.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["SSP", "PynbodySSP", "CSVSSP", "load_ssp"]


class SSP:
    """Interface: ``mag_per_msun(age_yr, metallicity, band)`` and ``bands``."""

    bands: tuple[str, ...] = ()
    name: str = ""

    def mag_per_msun(self, age_yr: np.ndarray, metallicity: np.ndarray,
                     band: str) -> np.ndarray:
        """Absolute magnitude of 1 Msun formed, per particle, shape (N,)."""
        raise NotImplementedError

    def check_bands(self, bands) -> None:
        missing = [b for b in bands if b not in self.bands]
        if missing:
            raise ValueError(f"SSP table {self.name!r} lacks band(s) {missing}; it has "
                             f"{list(self.bands)}")


class PynbodySSP(SSP):
    """pynbody's bundled CMD tables (AB LSST ugrizy + Vega UBVRIJHK)."""

    name = "pynbody-cmd3.7"

    def __init__(self):
        import os

        from pynbody.analysis import luminosity

        here = os.path.dirname(luminosity.__file__)
        self._table = luminosity.MultiSSPTable(
            luminosity.StevSSPTable(os.path.join(here, "default_ssp.txt"),
                                    ignore_bands=["mbol"]),
            luminosity.StevSSPTable(os.path.join(here, "lsst_ssp.txt"),
                                    ignore_bands=["mbol"]))
        self.bands = tuple(self._table.bands)

    def mag_per_msun(self, age_yr, metallicity, band):
        self.check_bands([band])
        age = np.log10(np.clip(np.asarray(age_yr, dtype=np.float64), 1.0, None))
        with np.errstate(divide="ignore"):
            logz = np.log10(np.clip(np.asarray(metallicity, dtype=np.float64), 1e-10, None))
        return np.asarray(self._table.interpolate(age, logz, band), dtype=np.float64)


class CSVSSP(SSP):
    """A user SSP grid from CSV (see module docstring for the columns)."""

    def __init__(self, path: str | Path):
        import pandas as pd
        from scipy.interpolate import RegularGridInterpolator

        path = Path(path)
        self.name = str(path)
        try:
            df = pd.read_csv(path, comment="#")
        except Exception as exc:  # pandas raises several types
            raise ValueError(f"{path}: cannot read SSP table: {exc}") from exc
        for col in ("age_gyr", "metallicity"):
            if col not in df.columns:
                raise ValueError(f"{path}: SSP table needs column {col!r}; has "
                                 f"{list(df.columns)}")
        if (df["age_gyr"] <= 0).any() or (df["metallicity"] <= 0).any():
            raise ValueError(f"{path}: ages and metallicities must be > 0")
        ages = np.unique(np.log10(df["age_gyr"].to_numpy(float) * 1e9))
        mets = np.unique(np.log10(df["metallicity"].to_numpy(float)))
        if len(df) != len(ages) * len(mets) or len(ages) < 2 or len(mets) < 2:
            raise ValueError(f"{path}: rows must form a full age x metallicity grid of "
                             f"at least 2 x 2; got {len(df)} rows for {len(ages)} ages "
                             f"and {len(mets)} metallicities")
        df = df.sort_values(["age_gyr", "metallicity"])
        self.bands = tuple(c for c in df.columns if c not in ("age_gyr", "metallicity"))
        self._grid = (ages, mets)
        self._interp = {b: RegularGridInterpolator(
            self._grid, df[b].to_numpy(float).reshape(len(ages), len(mets)))
            for b in self.bands}

    def mag_per_msun(self, age_yr, metallicity, band):
        self.check_bands([band])
        ages, mets = self._grid
        age = np.log10(np.clip(np.asarray(age_yr, dtype=np.float64), 1.0, None))
        with np.errstate(divide="ignore"):
            logz = np.log10(np.clip(np.asarray(metallicity, dtype=np.float64), 1e-10, None))
        points = np.column_stack([np.clip(age, ages[0], ages[-1]),
                                  np.clip(logz, mets[0], mets[-1])])
        return self._interp[band](points)


def load_ssp(spec: str | Path | SSP | None = None) -> SSP:
    """``None`` or ``"pynbody"`` -> :class:`PynbodySSP`; a path -> :class:`CSVSSP`."""
    if isinstance(spec, SSP):
        return spec
    if spec is None or str(spec).lower() in ("pynbody", "default"):
        return PynbodySSP()
    return CSVSSP(spec)
