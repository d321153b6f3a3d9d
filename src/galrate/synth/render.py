"""Render synthetic galaxies into survey cutouts with GalSim.

An image row (from :func:`~galrate.synth.population.draw_images`) becomes
GalSim profiles per band: an exponential disc, a Sersic bulge and star-forming
knots (``galsim.RandomKnots``) carrying a fraction of the disc light, each
component with its own colour, all projected with the image's inclination and
position angle. Neighbours and stars are drawn at their offsets. Everything
goes through :meth:`Survey.draw` (PSF convolution, pixelisation),
:meth:`Survey.add_noise` and :meth:`Survey.to_rgb`, the path the mock observer
uses as well.
"""

from __future__ import annotations

import functools
from typing import Mapping, Sequence

import numpy as np

from ..survey import SDSS, Survey, mag_to_nmgy
from .population import kpc_per_arcsec

__all__ = ["galaxy_profiles", "render_noiseless", "render_image", "render_rows",
           "component_fluxes", "gsparams", "COMPONENT_COLOURS"]

#: colour offsets (mag) of each component relative to the disc, in g-r and r-i:
#: bulges are redder (older stars), knots bluer (young stars)
COMPONENT_COLOURS = {"disc": (0.0, 0.0), "bulge": (0.15, 0.05), "knots": (-0.30, -0.10)}

_BANDS = ("g", "r", "i")


@functools.lru_cache(maxsize=1)
def gsparams():
    """GalSim accuracy settings of the synthetic sky.

    Folding and k-space thresholds are relaxed from GalSim's defaults
    (5e-3, 1e-3) to 2e-2 and 1e-2: the FFTs shrink by about half, and the
    change in total flux stays below 1e-3 of the flux, far under the sky noise
    of a cutout.
    """
    import galsim

    return galsim.GSParams(folding_threshold=2e-2, maxk_threshold=1e-2,
                           kvalue_accuracy=1e-4, maximum_fft_size=8192)


def _check_survey(survey: Survey) -> None:
    missing = [b for b in _BANDS if b not in survey.band_names]
    if missing:
        raise ValueError(f"the synthetic sky needs bands g, r, i; survey {survey.name!r} "
                         f"has {survey.band_names}")


def component_fluxes(total: Mapping[str, float], weights_r: Mapping[str, float],
                     ) -> dict[str, dict[str, float]]:
    """Split band fluxes between components of different colour.

    Parameters
    ----------
    total : mapping band -> float
        Total flux of the galaxy per band (nanomaggies).
    weights_r : mapping component -> float
        Share of each component in the r band (sums to 1).

    Returns
    -------
    dict component -> dict band -> float
        Fluxes that sum to ``total`` in every band, with the r-band shares
        ``weights_r`` and component colours offset by :data:`COMPONENT_COLOURS`.
    """
    out: dict[str, dict[str, float]] = {c: {} for c in weights_r}
    for band in total:
        rel = {}
        for comp, w in weights_r.items():
            d_gr, d_ri = COMPONENT_COLOURS[comp]
            offset = {"g": d_gr, "r": 0.0, "i": -d_ri}.get(band, 0.0)
            rel[comp] = w * 10 ** (-0.4 * offset)
        norm = sum(rel.values())
        for comp in weights_r:
            out[comp][band] = total[band] * rel[comp] / norm if norm > 0 else 0.0
    return out


def _band_totals(mag_r: float, g_r: float, r_i: float, zero_point: float) -> dict:
    return {"g": float(mag_to_nmgy(mag_r + g_r, zero_point)),
            "r": float(mag_to_nmgy(mag_r, zero_point)),
            "i": float(mag_to_nmgy(mag_r - r_i, zero_point))}


def galaxy_profiles(row: Mapping, survey: Survey = SDSS) -> dict[str, object]:
    """GalSim profiles of the central galaxy of an image row, per band.

    Parameters
    ----------
    row : mapping
        An image row: ``mag_r``, ``g_r``, ``r_i``, ``bt``, ``knot_frac``,
        ``n_knots``, ``r_disc_arcsec``, ``r_bulge_arcsec``, ``n_bulge``,
        ``q_disc``, ``q_bulge``, ``position_angle`` (deg), ``knot_seed``,
        ``smoothing_kpc``, ``redshift``.
    survey : Survey
        Supplies the zero point and band names.

    Returns
    -------
    dict band -> galsim.GSObject
        Surface brightness in arcsec units and nanomaggies; the half-light
        radius of the disc and bulge is ``r_*_arcsec`` along the major axis.
    """
    import galsim

    _check_survey(survey)
    gsp = gsparams()
    totals = _band_totals(row["mag_r"], row["g_r"], row["r_i"], survey.zero_point)
    bt, kf = float(row["bt"]), float(row["knot_frac"])
    weights = {"bulge": bt, "disc": (1 - bt) * (1 - kf), "knots": (1 - bt) * kf}
    fluxes = component_fluxes(totals, weights)
    beta = float(row["position_angle"]) * galsim.degrees

    shapes = {}
    q_d, q_b = float(row["q_disc"]), float(row["q_bulge"])
    r_d = float(row["r_disc_arcsec"])
    if weights["disc"] > 0:
        shapes["disc"] = galsim.Exponential(half_light_radius=r_d * np.sqrt(q_d),
                                            gsparams=gsp).shear(q=q_d, beta=beta)
    if weights["bulge"] > 0:
        r_b = float(row["r_bulge_arcsec"]) * np.sqrt(q_b)
        shapes["bulge"] = galsim.Sersic(n=float(row["n_bulge"]), half_light_radius=r_b,
                                        gsparams=gsp).shear(q=q_b, beta=beta)
    if weights["knots"] > 0:
        knots = galsim.RandomKnots(int(row["n_knots"]), half_light_radius=r_d * np.sqrt(q_d),
                                   rng=galsim.BaseDeviate(int(row["knot_seed"])),
                                   gsparams=gsp)
        shapes["knots"] = knots.shear(q=q_d, beta=beta)

    smoothing = float(row.get("smoothing_kpc", 0.0) or 0.0)
    kernel = None
    if smoothing > 0:
        fwhm = smoothing / float(kpc_per_arcsec(float(row["redshift"])))
        kernel = galsim.Gaussian(fwhm=fwhm, gsparams=gsp)

    out = {}
    for band in _BANDS:
        parts = [shape.withFlux(fluxes[c][band]) for c, shape in shapes.items()]
        prof = galsim.Add(parts, gsparams=gsp) if len(parts) > 1 else parts[0]
        out[band] = galsim.Convolve(prof, kernel, gsparams=gsp) if kernel else prof
    return out


def _scene_draws(row: Mapping, survey: Survey) -> list[tuple[dict, tuple[float, float]]]:
    """Neighbour and star profiles of an image row with their pixel offsets."""
    import galsim

    gsp = gsparams()
    out = []
    ox, oy = float(row.get("offset_x", 0.0)), float(row.get("offset_y", 0.0))
    if bool(row.get("nb_present", False)):
        g_r = float(row["nb_g_r"])
        totals = _band_totals(row["nb_mag_r"], g_r, 0.14 + 0.34 * g_r, survey.zero_point)
        q = float(row["nb_q"])
        shape = galsim.Sersic(n=float(row["nb_sersic_n"]),
                              half_light_radius=float(row["nb_r_half_arcsec"]) * np.sqrt(q),
                              gsparams=gsp).shear(q=q, beta=float(row["nb_position_angle"])
                                                  * galsim.degrees)
        out.append(({b: shape.withFlux(totals[b]) for b in _BANDS},
                    (ox + float(row["nb_x"]), oy + float(row["nb_y"]))))
    if bool(row.get("star_present", False)):
        g_r = float(row["star_g_r"])
        totals = _band_totals(row["star_mag_r"], g_r, 0.4 * g_r, survey.zero_point)
        out.append(({b: galsim.DeltaFunction(flux=totals[b], gsparams=gsp) for b in _BANDS},
                    (ox + float(row["star_x"]), oy + float(row["star_y"]))))
    return out


def render_noiseless(row: Mapping, survey: Survey = SDSS, scene: bool = True) -> np.ndarray:
    """Noiseless band images of an image row.

    Parameters
    ----------
    row : mapping
        An image row (see :func:`galaxy_profiles`), with ``offset_x``,
        ``offset_y`` (pixels) and, when ``scene``, the neighbour and star columns.
    survey : Survey
    scene : bool
        Also draw the neighbour and the star of the row.

    Returns
    -------
    ndarray, float32, shape (n_bands, H, W)
        Nanomaggies per pixel in the survey's band order.
    """
    offset = (float(row.get("offset_x", 0.0)), float(row.get("offset_y", 0.0)))
    flux = survey.draw(galaxy_profiles(row, survey), offset=offset, gsparams=gsparams())
    if scene:
        for profiles, off in _scene_draws(row, survey):
            flux += survey.draw(profiles, offset=off, gsparams=gsparams())
    return flux


def render_image(row: Mapping, survey: Survey = SDSS) -> tuple[np.ndarray, np.ndarray]:
    """Observed cutout of an image row: noisy flux and its RGB picture.

    Returns
    -------
    flux : ndarray, float32, shape (n_bands, H, W)
        Sky-subtracted nanomaggies per pixel with sky, Poisson and read noise
        drawn from ``numpy.random.default_rng(row["noise_seed"])``.
    rgb : ndarray, uint8, shape (H, W, 3)
    """
    noiseless = render_noiseless(row, survey)
    flux = survey.add_noise(noiseless, np.random.default_rng(int(row["noise_seed"])))
    return flux, survey.to_rgb(flux)


def render_rows(rows: Sequence[Mapping], survey: Survey = SDSS
                ) -> tuple[np.ndarray, np.ndarray]:
    """Render several image rows; the unit of work of a worker process.

    Returns
    -------
    rgb : ndarray, uint8, shape (N, H, W, 3)
    flux : ndarray, float32, shape (N, n_bands, H, W)
    """
    n, size = len(rows), survey.cutout_size
    rgb = np.empty((n, size, size, 3), dtype=np.uint8)
    flux = np.empty((n, len(survey.bands), size, size), dtype=np.float32)
    for k, row in enumerate(rows):
        flux[k], rgb[k] = render_image(row, survey)
    return rgb, flux
