"""A simple dust model: a uniform slab of stars and dust mixed, seen at an inclination.

Each band is attenuated by one factor for the whole galaxy,

.. math::  f_\\lambda = \\frac{1 - e^{-\\tau_\\lambda}}{\\tau_\\lambda}, \\qquad
           \\tau_\\lambda = \\frac{\\tau_V}{\\max(\\cos i, \\cos 85^\\circ)}
           \\frac{A_\\lambda}{A_V},

with :math:`\\tau_V` the face-on V-band optical depth through the whole slab,
:math:`i` the inclination (0 face-on) and :math:`A_\\lambda/A_V` the Milky Way
law of Cardelli, Clayton & Mathis (1989, ApJ 345, 245), R_V = 3.1, at the
rest-frame wavelength of the band.

.. warning::
   The attenuation is uniform over the image: no dust lanes, no radial
   gradient, no scattering, no dependence on the gas of the snapshot. It
   reproduces the inclination dependence of total colours to first order
   only; the cap at 85 degrees keeps edge-on discs finite.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["cardelli_a_lambda_over_a_v", "slab_transmission", "BAND_WAVELENGTH_A"]

#: Effective wavelengths of the SDSS bands in Angstrom (Fukugita et al. 1996,
#: AJ 111, 1748), and of Johnson B, V.
BAND_WAVELENGTH_A = {"u": 3551.0, "g": 4686.0, "r": 6165.0, "i": 7481.0, "z": 8931.0,
                     "B": 4380.0, "V": 5450.0}


def cardelli_a_lambda_over_a_v(wavelength_a: float, r_v: float = 3.1) -> float:
    """A_lambda / A_V of Cardelli et al. (1989) for 1250 A <= lambda <= 3.3 um."""
    x = 1e4 / wavelength_a  # inverse microns
    if 0.3 <= x < 1.1:
        a, b = 0.574 * x ** 1.61, -0.527 * x ** 1.61
    elif 1.1 <= x <= 3.3:
        y = x - 1.82
        a = (1 + 0.17699 * y - 0.50447 * y ** 2 - 0.02427 * y ** 3 + 0.72085 * y ** 4
             + 0.01979 * y ** 5 - 0.77530 * y ** 6 + 0.32999 * y ** 7)
        b = (1.41338 * y + 2.28305 * y ** 2 + 1.07233 * y ** 3 - 5.38434 * y ** 4
             - 0.62251 * y ** 5 + 5.30260 * y ** 6 - 2.09002 * y ** 7)
    elif 3.3 < x <= 8.0:
        fa = fb = 0.0
        if x >= 5.9:
            fa = -0.04473 * (x - 5.9) ** 2 - 0.009779 * (x - 5.9) ** 3
            fb = 0.2130 * (x - 5.9) ** 2 + 0.1207 * (x - 5.9) ** 3
        a = 1.752 - 0.316 * x - 0.104 / ((x - 4.67) ** 2 + 0.341) + fa
        b = -3.090 + 1.825 * x + 1.206 / ((x - 4.62) ** 2 + 0.263) + fb
    else:
        raise ValueError(f"wavelength {wavelength_a} A outside the Cardelli law's "
                         "range 1250 A - 3.3 um")
    return a + b / r_v


def slab_transmission(band: str, tau_v: float, inclination_deg: float,
                      redshift: float = 0.0, r_v: float = 3.1) -> float:
    """Fraction of a band's light that leaves a mixed dusty slab (see module Notes).

    Parameters
    ----------
    band : str
        Observed band (key of :data:`BAND_WAVELENGTH_A`).
    tau_v : float
        Face-on V-band optical depth through the slab (>= 0).
    inclination_deg : float
        0 face-on, 90 edge-on.
    redshift : float
        The band samples rest-frame wavelength ``lambda / (1 + z)``.
    """
    if tau_v < 0:
        raise ValueError(f"tau_v must be >= 0; got {tau_v}")
    if band not in BAND_WAVELENGTH_A:
        raise ValueError(f"no wavelength for band {band!r}; known "
                         f"{sorted(BAND_WAVELENGTH_A)}")
    if tau_v == 0:
        return 1.0
    cos_i = max(abs(math.cos(math.radians(inclination_deg))), math.cos(math.radians(85)))
    ratio = cardelli_a_lambda_over_a_v(BAND_WAVELENGTH_A[band] / (1 + redshift), r_v)
    tau = tau_v * ratio / cos_i
    return float(-np.expm1(-tau) / tau)
