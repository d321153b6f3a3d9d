"""Mock observation of idealised band maps through a :class:`~galrate.survey.Survey`.

The maps become GalSim ``InterpolatedImage`` profiles in arcsec with fluxes in
nanomaggies and go through :meth:`Survey.draw`, :meth:`Survey.add_noise` and
:meth:`Survey.to_rgb`: the very code path of the synthetic sky, so a
simulated galaxy and a synthetic observed one differ only in their light.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..imageset.core import GalrateDataWarning
from ..survey import Survey, load_survey, nmgy_to_mag
from .photometry import arcsec_per_kpc, normalise_unit, resolve_cosmology, \
    sb_to_nmgy_per_pixel

log = logging.getLogger(__name__)

__all__ = ["MockResult", "mock_observe", "draw_redshift", "band_profiles"]


@dataclass
class MockResult:
    """One mock-observed cutout.

    Attributes
    ----------
    flux : ndarray, shape (n_bands, H, W)
        float32 nanomaggies per pixel with sky noise (or on the blank sky
        cutout), survey band order.
    noiseless : ndarray, shape (n_bands, H, W)
        float32 nanomaggies per pixel, PSF-convolved, before noise.
    rgb : ndarray, shape (H, W, 3)
        uint8 colour composite by the survey's recipe.
    meta : dict
        Redshift, angular pixel scale of the input, total input flux and
        magnitude per band, and the other numbers of the placement.
    """

    flux: np.ndarray
    noiseless: np.ndarray
    rgb: np.ndarray
    meta: dict = field(default_factory=dict)


def band_profiles(maps_nmgy: Mapping[str, np.ndarray], pixel_scale_arcsec: float):
    """GalSim profiles of observed-frame band maps (nanomaggies per pixel).

    Each map becomes a ``galsim.InterpolatedImage`` whose flux is the sum of the
    map, centred on the map's centre, in arcsec units.
    """
    import galsim

    profiles = {}
    for band, arr in maps_nmgy.items():
        arr = np.ascontiguousarray(arr, dtype=np.float64)
        total = float(arr.sum())
        if total == 0.0:
            continue
        image = galsim.ImageD(arr, scale=pixel_scale_arcsec)
        profiles[band] = galsim.InterpolatedImage(image, flux=total)
    return profiles


def _check_maps(maps: Mapping[str, np.ndarray], survey: Survey) -> dict[str, np.ndarray]:
    if not maps:
        raise ValueError("maps is empty; give one 2-d array per band, e.g. "
                         f"{{'g': ..., 'r': ..., 'i': ...}} for bands {survey.band_names}")
    out = {}
    shape = None
    for band, arr in maps.items():
        survey.band(band)
        arr = np.asarray(arr, dtype=np.float64)
        if arr.ndim != 2:
            raise ValueError(f"maps[{band!r}] must be a 2-d array; got shape {arr.shape}")
        if shape is not None and arr.shape != shape:
            raise ValueError(f"maps[{band!r}] has shape {arr.shape}, other bands "
                             f"{shape}; all bands must share one pixel grid")
        shape = arr.shape
        out[band] = arr
    missing = [b for b in survey.band_names if b not in out]
    if missing:
        log.warning("no map for band(s) %s: drawn empty", missing)
    return out


def mock_observe(maps: Mapping[str, np.ndarray], *, unit: str, survey: Survey | str,
                 redshift: float, rng: np.random.Generator,
                 pixel_scale_kpc: float | None = None,
                 pixel_scale_arcsec: float | None = None, cosmology=None,
                 blank_sky: np.ndarray | None = None, psf_fwhm_factor: float = 1.0,
                 offset: tuple[float, float] = (0.0, 0.0)) -> MockResult:
    """Observe idealised band maps as the survey would.

    Parameters
    ----------
    maps : mapping of band -> ndarray, shape (H, W)
        One PSF-free map per survey band on a common pixel grid, centred on
        the galaxy.
    unit : str
        ``"mag/arcsec2"`` or ``"Lsun/kpc2"`` (rest frame) or ``"nmgy/pixel"``
        (observed); see :mod:`galrate.mock.photometry`.
    survey : Survey or str
        The survey model (``"sdss"`` or a Survey).
    redshift : float
        Redshift at which the galaxy is placed (> 0 for rest-frame units or
        a physical pixel scale).
    rng : numpy.random.Generator
        Source of noise (and nothing else).
    pixel_scale_kpc : float, optional
        Physical size of a map pixel in kpc. The map is placed at
        ``redshift``: its angular pixel is ``pixel_scale_kpc`` times the
        angular scale (arcsec/kpc, angular-diameter distance of ``cosmology``).
    pixel_scale_arcsec : float, optional
        Angular size of a map pixel: the map is already on the sky and is not
        rescaled. Give exactly one of the two scales.
    cosmology : astropy cosmology or str, optional
        Planck18 by default.
    blank_sky : ndarray, shape (n_bands, H, W), optional
        A real blank-sky flux cutout (nanomaggies per pixel, sky-subtracted,
        survey band order) to which the noiseless galaxy is added instead of
        synthetic noise; its H, W set the cutout size.
    psf_fwhm_factor : float
        Multiplies the survey PSF FWHM in every band.
    offset : (float, float)
        Shift of the galaxy from the cutout centre in survey pixels.

    Returns
    -------
    MockResult

    Raises
    ------
    ValueError
        Bad shapes, unknown band or unit, missing or doubled pixel scale,
        non-positive redshift where one is needed.

    Warns
    -----
    GalrateDataWarning
        When a map pixel is coarser than the survey pixel: the map cannot
        carry the survey's resolution.

    Notes
    -----
    The maps must be free of any PSF at the survey's resolution: the survey
    PSF is applied here. Flux is conserved by construction (the interpolated
    profile carries the map's sum); what falls outside the cutout is lost, as
    in a real cutout. Placement: :math:`(1+z)^{-4}` surface-brightness dimming
    and the luminosity distance for rest-frame units, the angular-diameter
    distance for sizes, no K-correction (see :mod:`galrate.mock.photometry`).
    """
    survey = load_survey(survey)
    if (pixel_scale_kpc is None) == (pixel_scale_arcsec is None):
        raise ValueError("give exactly one of pixel_scale_kpc and pixel_scale_arcsec; "
                         f"got {pixel_scale_kpc!r} and {pixel_scale_arcsec!r}")
    scale = pixel_scale_kpc if pixel_scale_kpc is not None else pixel_scale_arcsec
    if not (scale is not None and np.isfinite(scale) and scale > 0):
        raise ValueError(f"pixel scale must be a positive number; got {scale!r}")
    if not np.isfinite(redshift) or redshift < 0:
        raise ValueError(f"redshift must be >= 0; got {redshift!r}")
    if psf_fwhm_factor <= 0:
        raise ValueError(f"psf_fwhm_factor must be > 0; got {psf_fwhm_factor}")
    unit = normalise_unit(unit)
    maps = _check_maps(maps, survey)
    cosmo = resolve_cosmology(cosmology)

    kpc_scale = None
    if pixel_scale_kpc is not None:
        kpc_scale = arcsec_per_kpc(redshift, cosmo)
        pixel_arcsec = pixel_scale_kpc * kpc_scale
    else:
        pixel_arcsec = float(pixel_scale_arcsec)
        if unit != "nmgy/pixel" and not redshift > 0:
            raise ValueError(f"unit {unit!r} is rest frame: redshift must be > 0")
    if pixel_arcsec > survey.pixel_scale:
        warnings.warn(f"map pixel is {pixel_arcsec:.3f} arcsec at z={redshift:g}, "
                      f"coarser than the survey pixel {survey.pixel_scale} arcsec: the "
                      "mock cutout is less sharp than the survey", GalrateDataWarning,
                      stacklevel=2)

    nmgy = {b: sb_to_nmgy_per_pixel(m, unit, b, redshift=redshift,
                                    pixel_scale_arcsec=pixel_arcsec,
                                    pixel_scale_kpc=pixel_scale_kpc, cosmology=cosmo,
                                    zero_point=survey.zero_point)
            for b, m in maps.items()}
    size = survey.cutout_size
    if blank_sky is not None:
        blank_sky = np.asarray(blank_sky, dtype=np.float32)
        if (blank_sky.ndim != 3 or blank_sky.shape[0] != len(survey.bands)
                or blank_sky.shape[1] != blank_sky.shape[2]):
            raise ValueError(f"blank_sky must be (n_bands={len(survey.bands)}, H, H); "
                             f"got {blank_sky.shape}")
        size = blank_sky.shape[1]

    profiles = band_profiles(nmgy, pixel_arcsec)
    noiseless = survey.draw(profiles, psf_fwhm_factor=psf_fwhm_factor, offset=offset,
                            size=size)
    if blank_sky is None:
        flux = survey.add_noise(noiseless, rng)
    else:
        flux = (blank_sky + noiseless).astype(np.float32)
    rgb = survey.to_rgb(flux)

    totals = {b: float(nmgy[b].sum()) for b in nmgy}
    meta = {"redshift": float(redshift), "unit": unit,
            "input_pixel_scale_arcsec": pixel_arcsec,
            "input_pixel_scale_kpc": pixel_scale_kpc,
            "arcsec_per_kpc": kpc_scale, "psf_fwhm_factor": psf_fwhm_factor,
            "blank_sky": blank_sky is not None,
            "input_flux_nmgy": totals,
            "input_mag": {b: float(nmgy_to_mag(v, survey.zero_point))
                          for b, v in totals.items()},
            "cosmology": getattr(cosmo, "name", str(cosmo))}
    return MockResult(flux=flux.astype(np.float32), noiseless=noiseless, rgb=rgb,
                      meta=meta)


def draw_redshift(log_mstar: float, catalogue, rng: np.random.Generator, *,
                  half_width_dex: float = 0.1, min_count: int = 20,
                  max_half_width_dex: float = 1.0) -> float:
    """Draw a redshift from observed galaxies of similar stellar mass.

    Parameters
    ----------
    log_mstar : float
        log10 of the simulated galaxy's stellar mass in Msun.
    catalogue : pandas.DataFrame
        Observed manifest with ``log_mstar`` and ``redshift`` columns.
    rng : numpy.random.Generator
        Seeded source of the draw.
    half_width_dex : float
        Starting half-width of the mass window in dex (0.1).
    min_count : int
        Fewest observed galaxies to draw from; the window doubles until it
        holds that many or reaches ``max_half_width_dex``.
    max_half_width_dex : float
        Widest window; with fewer galaxies inside, the nearest ``min_count``
        in mass are used instead.

    Returns
    -------
    float
        A redshift of one observed galaxy of similar mass.
    """
    for col in ("log_mstar", "redshift"):
        if col not in catalogue.columns:
            raise ValueError(f"redshift catalogue lacks column {col!r}; it needs "
                             "'log_mstar' and 'redshift'")
    table = catalogue[["log_mstar", "redshift"]].dropna()
    table = table[table["redshift"] > 0]
    if table.empty:
        raise ValueError("redshift catalogue has no rows with log_mstar and a "
                         "redshift > 0")
    mass = table["log_mstar"].to_numpy(float)
    z = table["redshift"].to_numpy(float)
    width = half_width_dex
    while True:
        inside = np.abs(mass - log_mstar) <= width
        if inside.sum() >= min(min_count, len(z)) or width >= max_half_width_dex:
            break
        width = min(2 * width, max_half_width_dex)
    if inside.sum() < min(min_count, len(z)):
        inside = np.argsort(np.abs(mass - log_mstar))[:min_count]
        log.info("log_mstar %.2f: fewer than %d observed galaxies within %.2f dex; "
                 "drawing from the nearest in mass", log_mstar, min_count, width)
    return float(rng.choice(z[inside]))
