"""Surface-brightness units, the Sun's magnitudes and cosmological placement.

Idealised band maps come in one of three units (:data:`UNITS`):

``"mag/arcsec2"``
    AB magnitudes per square arcsec, *rest frame*: the surface brightness the
    galaxy has at its own position, before cosmological dimming.
``"Lsun/kpc2"``
    Solar luminosities in the band per square kpc (rest frame); converted
    with the absolute AB magnitude of the Sun in that band
    (:data:`SUN_ABS_MAG_AB`).
``"nmgy/pixel"``
    Nanomaggies per pixel, *as observed*: the values are fluxes already at
    the redshift of the galaxy; no dimming is applied.

Notes
-----
The K-correction is not modelled: the rest-frame band is observed through
the same band, so a galaxy at redshift :math:`z` has
:math:`m = M + 5 \\log_{10}(D_L / 10\\,\\mathrm{pc})` and its surface
brightness dims as :math:`(1+z)^{-4}`. For typical galaxy colours the
neglected K-correction at z ~ 0.1 is about 0.1-0.2 mag in g and below
0.1 mag in r and i (Blanton & Roweis 2007, AJ 133, 734; Chilingarian et al.
2010, MNRAS 405, 1409): galaxies come out slightly too bright and too blue
in g at the redshifts of SDSS spectroscopic galaxies.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

__all__ = ["UNITS", "SUN_ABS_MAG_AB", "ZSUN", "arcsec_per_kpc", "sb_to_nmgy_per_pixel",
           "resolve_cosmology"]

UNITS = ("mag/arcsec2", "Lsun/kpc2", "nmgy/pixel")

#: Absolute AB magnitude of the Sun in SDSS bands: Willmer 2018, ApJS 236, 47,
#: table 3 (g 5.11, r 4.65, i 4.53; u and z for completeness).
SUN_ABS_MAG_AB: Mapping[str, float] = {"u": 6.39, "g": 5.11, "r": 4.65, "i": 4.53,
                                        "z": 4.50}

#: Solar metal mass fraction (Asplund et al. 2009, ARA&A 47, 481, present-day
#: photosphere), used for ``log Z/Zsun``.
ZSUN = 0.0134

_UNIT_ALIASES = {"mag/arcsec2": "mag/arcsec2", "mag/arcsec^2": "mag/arcsec2",
                 "mag arcsec-2": "mag/arcsec2", "lsun/kpc2": "Lsun/kpc2",
                 "lsun/kpc^2": "Lsun/kpc2", "lsun kpc-2": "Lsun/kpc2",
                 "nmgy/pixel": "nmgy/pixel", "nmgy/pix": "nmgy/pixel",
                 "nanomaggy": "nmgy/pixel", "nanomaggies": "nmgy/pixel",
                 "nmgy": "nmgy/pixel"}


def normalise_unit(unit: str) -> str:
    """Map a unit spelling (FITS ``BUNIT`` or user input) to one of :data:`UNITS`.

    Raises
    ------
    ValueError
        The unit is not one of the documented set.
    """
    key = str(unit).strip().lower().replace(" ", "") if unit is not None else ""
    key = {k.replace(" ", ""): v for k, v in _UNIT_ALIASES.items()}.get(key)
    if key is None:
        raise ValueError(f"unit {unit!r} is not supported; use one of {UNITS}")
    return key


def resolve_cosmology(cosmology=None):
    """An astropy cosmology: an instance, a name in ``astropy.cosmology`` or Planck18."""
    from astropy import cosmology as cosmo_mod

    if cosmology is None:
        return cosmo_mod.Planck18
    if isinstance(cosmology, str):
        try:
            return getattr(cosmo_mod.realizations, cosmology)
        except AttributeError:
            raise ValueError(f"cosmology {cosmology!r} is not one of astropy's "
                             f"realizations {cosmo_mod.realizations.available}") from None
    return cosmology


def arcsec_per_kpc(redshift: float, cosmology=None) -> float:
    """Proper angular scale in arcsec per kpc at ``redshift`` (angular-diameter distance)."""
    if not redshift > 0:
        raise ValueError(f"redshift must be > 0 to place a galaxy at a distance; "
                         f"got {redshift}")
    cosmo = resolve_cosmology(cosmology)
    return float(cosmo.arcsec_per_kpc_proper(redshift).value)


def luminosity_distance_pc(redshift: float, cosmology=None) -> float:
    """Luminosity distance in parsec."""
    cosmo = resolve_cosmology(cosmology)
    return float(cosmo.luminosity_distance(redshift).to_value("pc"))


def sb_to_nmgy_per_pixel(values: np.ndarray, unit: str, band: str, *, redshift: float,
                         pixel_scale_arcsec: float, pixel_scale_kpc: float | None,
                         cosmology=None, zero_point: float = 22.5) -> np.ndarray:
    """Convert a band map to observed nanomaggies per pixel at ``redshift``.

    Parameters
    ----------
    values : ndarray, shape (H, W)
        The map in ``unit``.
    unit : str
        One of :data:`UNITS`.
    band : str
        Band name (for the Sun's magnitude with ``"Lsun/kpc2"``).
    redshift : float
        Where the galaxy is placed.
    pixel_scale_arcsec : float
        Observed angular size of one map pixel.
    pixel_scale_kpc : float or None
        Physical size of one map pixel (needed for ``"Lsun/kpc2"``; derived
        from ``pixel_scale_arcsec`` when None).
    cosmology : astropy cosmology, optional
        Planck18 by default.

    Returns
    -------
    ndarray, shape (H, W)
        float64 nanomaggies per pixel; non-finite inputs (e.g. an infinite
        magnitude for an empty pixel) become 0.
    """
    unit = normalise_unit(unit)
    values = np.asarray(values, dtype=np.float64)
    if unit == "nmgy/pixel":
        out = values
    elif unit == "mag/arcsec2":
        with np.errstate(over="ignore", invalid="ignore"):
            intensity = 10.0 ** (-0.4 * (values - zero_point))  # nmgy / arcsec^2
        out = intensity * pixel_scale_arcsec ** 2 * (1.0 + redshift) ** -4
    else:
        if band not in SUN_ABS_MAG_AB:
            raise ValueError(f"band {band!r}: no solar absolute magnitude for unit "
                             f"Lsun/kpc2; known bands {sorted(SUN_ABS_MAG_AB)}")
        if pixel_scale_kpc is None:
            pixel_scale_kpc = pixel_scale_arcsec / arcsec_per_kpc(redshift, cosmology)
        lum = values * pixel_scale_kpc ** 2  # Lsun per pixel
        d_l = luminosity_distance_pc(redshift, cosmology)
        sun_nmgy = 10.0 ** (-0.4 * (SUN_ABS_MAG_AB[band] - zero_point)) * (10.0 / d_l) ** 2
        out = lum * sun_nmgy
    return np.where(np.isfinite(out), out, 0.0)
