"""Known-answer tests of mock observation of idealised maps."""

from __future__ import annotations

from dataclasses import replace

import galsim
import numpy as np
import pandas as pd
import pytest
from astropy.cosmology import Planck18

from galrate.imageset import GalrateDataWarning
from galrate.mock import arcsec_per_kpc, draw_redshift, mock_observe
from galrate.mock.photometry import sb_to_nmgy_per_pixel
from galrate.survey import SDSS, nmgy_to_mag


def _profile(flux: float = 50.0):
    """A bulge + disc galaxy as the synthetic sky makes them (arcsec, nanomaggies)."""
    bulge = galsim.DeVaucouleurs(half_light_radius=0.8, flux=0.3 * flux)
    disc = galsim.Exponential(half_light_radius=2.0, flux=0.7 * flux)
    return galsim.Add(bulge, disc.shear(q=0.6, beta=30 * galsim.degrees))


def _ideal(profile, scale: float = 0.1, npix: int = 400) -> np.ndarray:
    """The profile drawn without PSF on a fine grid (nanomaggies per pixel)."""
    return profile.drawImage(nx=npix, ny=npix, scale=scale, method="auto").array


def _fit_moffat_fwhm(image: np.ndarray, survey, beta: float) -> float:
    """FWHM (arcsec) of the pixel-integrated Moffat that best matches ``image``."""
    from scipy.optimize import minimize_scalar

    n = image.shape[0]

    def cost(fwhm):
        model = galsim.Moffat(beta=beta, fwhm=fwhm, flux=image.sum())
        m = model.drawImage(nx=n, ny=n, scale=survey.pixel_scale, method="auto").array
        return float(((m - image) ** 2).sum())

    return float(minimize_scalar(cost, bounds=(0.5, 3.0), method="bounded",
                                 options={"xatol": 1e-4}).x)


def test_flux_is_conserved_through_resampling_and_psf(rng):
    maps = {b: _ideal(_profile(f)) for b, f in zip("gri", (20.0, 40.0, 55.0))}
    res = mock_observe(maps, unit="nmgy/pixel", survey=SDSS, redshift=0.05, rng=rng,
                       pixel_scale_arcsec=0.1)
    got = nmgy_to_mag(res.noiseless.sum(axis=(1, 2)))
    want = nmgy_to_mag([maps[b].sum() for b in "gri"])
    np.testing.assert_allclose(got, want, atol=0.01)
    assert res.flux.shape == res.noiseless.shape == (3, 64, 64)
    assert res.rgb.shape == (64, 64, 3) and res.rgb.dtype == np.uint8


def test_blank_pixel_noise_matches_survey_sigma(rng):
    survey = replace(SDSS, cutout_size=128)
    maps = {b: np.zeros((50, 50)) for b in "gri"}
    res = mock_observe(maps, unit="nmgy/pixel", survey=survey, redshift=0.05, rng=rng,
                       pixel_scale_arcsec=0.2)
    for k, band in enumerate("gri"):
        np.testing.assert_allclose(res.flux[k].std(), survey.noise_sigma(band), rtol=0.03)
        assert abs(res.flux[k].mean()) < 4 * survey.noise_sigma(band) / 128


def test_point_source_has_the_survey_psf_fwhm(rng):
    point = np.zeros((101, 101))
    point[50, 50] = 100.0
    res = mock_observe({b: point for b in "gri"}, unit="nmgy/pixel", survey=SDSS,
                       redshift=0.05, rng=rng, pixel_scale_arcsec=0.02)
    for k, band in enumerate("gri"):
        fwhm = _fit_moffat_fwhm(res.noiseless[k], SDSS, SDSS.psf_beta)
        np.testing.assert_allclose(fwhm, SDSS.band(band).psf_fwhm, rtol=0.05)


def test_psf_fwhm_factor_broadens_the_psf(rng):
    point = np.zeros((101, 101))
    point[50, 50] = 100.0
    res = mock_observe({"r": point}, unit="nmgy/pixel", survey=SDSS, redshift=0.05,
                       rng=rng, pixel_scale_arcsec=0.02, psf_fwhm_factor=1.5)
    fwhm = _fit_moffat_fwhm(res.noiseless[1], SDSS, SDSS.psf_beta)
    np.testing.assert_allclose(fwhm, 1.5 * SDSS.band("r").psf_fwhm, rtol=0.05)


def test_surface_brightness_dims_as_one_plus_z_to_the_fourth(rng):
    sb = np.full((40, 40), 21.0)  # mag/arcsec^2, rest frame
    totals = []
    for z in (0.02, 0.2):
        res = mock_observe({"r": sb}, unit="mag/arcsec2", survey=SDSS, redshift=z,
                           rng=rng, pixel_scale_arcsec=0.2)
        totals.append(res.meta["input_flux_nmgy"]["r"])
        np.testing.assert_allclose(res.noiseless[1].sum(), totals[-1], rtol=1e-3)
    np.testing.assert_allclose(totals[1] / totals[0], (1.02 / 1.2) ** 4, rtol=1e-9)
    area = (40 * 0.2) ** 2
    np.testing.assert_allclose(totals[0], 10 ** (-0.4 * (21.0 - 22.5)) * area / 1.02 ** 4,
                               rtol=1e-9)


def test_luminosity_map_gives_the_distance_modulus():
    lum = np.zeros((11, 11))
    lum[5, 5] = 1e10  # Lsun/kpc^2 in one 1-kpc pixel: 1e10 Lsun
    z = 0.08
    flux = sb_to_nmgy_per_pixel(lum, "Lsun/kpc2", "r", redshift=z,
                                pixel_scale_arcsec=1.0, pixel_scale_kpc=1.0).sum()
    d_l_pc = Planck18.luminosity_distance(z).to_value("pc")
    want = 4.65 - 2.5 * 10 + 5 * np.log10(d_l_pc / 10.0)
    np.testing.assert_allclose(nmgy_to_mag(flux), want, atol=1e-9)


def test_rest_frame_units_agree_with_each_other(rng):
    """A map in Lsun/kpc^2 and the same map in mag/arcsec^2 give the same flux."""
    lum = np.full((20, 20), 1e8)  # Lsun/kpc^2 in g
    # Lsun/kpc^2 -> rest-frame mag/arcsec^2: M_sun + 21.572 - 2.5 log10(Sigma / (Lsun/pc^2))
    mu = 5.11 + 21.572 - 2.5 * np.log10(lum / 1e6)
    z, kpc = 0.1, 0.5
    a = mock_observe({"g": lum}, unit="Lsun/kpc2", survey=SDSS, redshift=z, rng=rng,
                     pixel_scale_kpc=kpc)
    b = mock_observe({"g": mu}, unit="mag/arcsec2", survey=SDSS, redshift=z, rng=rng,
                     pixel_scale_kpc=kpc)
    np.testing.assert_allclose(a.meta["input_flux_nmgy"]["g"],
                               b.meta["input_flux_nmgy"]["g"], rtol=1e-3)


@pytest.mark.parametrize("z", [0.03, 0.12])
def test_angular_size_follows_the_angular_diameter_distance(rng, z):
    sigma_kpc = 1.5
    scale_kpc = 0.1
    n = 301
    gal = galsim.Gaussian(sigma=sigma_kpc, flux=30.0)  # kpc units
    ideal = gal.drawImage(nx=n, ny=n, scale=scale_kpc, method="no_pixel").array
    res = mock_observe({"r": ideal}, unit="nmgy/pixel", survey=SDSS, redshift=z, rng=rng,
                       pixel_scale_kpc=scale_kpc)
    d_a_kpc = Planck18.angular_diameter_distance(z).to_value("kpc")
    arcsec_kpc = 180 / np.pi * 3600 / d_a_kpc
    np.testing.assert_allclose(arcsec_per_kpc(z), arcsec_kpc, rtol=1e-6)
    direct = SDSS.draw({"r": galsim.Gaussian(sigma=sigma_kpc * arcsec_kpc, flux=30.0)})
    resid = np.abs(res.noiseless[1] - direct[1]).max() / direct[1].max()
    assert resid < 0.01


def test_null_pipeline_direct_draw_equals_mock_of_ideal_image():
    """Survey.draw of a profile == mock_observe of its PSF-free 0.1" image."""
    prof = {b: _profile(f) for b, f in zip("gri", (15.0, 30.0, 40.0))}
    direct = SDSS.draw(prof)
    ideal = {b: _ideal(p) for b, p in prof.items()}
    res = mock_observe(ideal, unit="nmgy/pixel", survey=SDSS, redshift=0.05,
                       rng=np.random.default_rng(5), pixel_scale_arcsec=0.1)
    np.testing.assert_allclose(nmgy_to_mag(res.noiseless.sum(axis=(1, 2))),
                               nmgy_to_mag(direct.sum(axis=(1, 2))), atol=0.01)
    for k in range(3):
        assert np.abs(res.noiseless[k] - direct[k]).max() < 0.02 * direct[k].max()
    noisy_direct = SDSS.add_noise(direct, np.random.default_rng(5))
    np.testing.assert_allclose(res.flux.std(axis=(1, 2)), noisy_direct.std(axis=(1, 2)),
                               rtol=0.01)
    np.testing.assert_allclose(res.flux.mean(axis=(1, 2)), noisy_direct.mean(axis=(1, 2)),
                               rtol=0.02)


def test_blank_sky_replaces_synthetic_noise(rng):
    blank = rng.normal(0, 0.01, (3, 48, 48)).astype(np.float32)
    maps = {b: _ideal(_profile(), npix=200) for b in "gri"}
    res = mock_observe(maps, unit="nmgy/pixel", survey=SDSS, redshift=0.05, rng=rng,
                       pixel_scale_arcsec=0.1, blank_sky=blank)
    assert res.flux.shape == (3, 48, 48)
    np.testing.assert_allclose(res.flux - res.noiseless, blank, atol=1e-6)


def test_coarse_map_warns(rng):
    with pytest.warns(GalrateDataWarning, match="coarser than the survey pixel"):
        mock_observe({"r": np.ones((10, 10))}, unit="nmgy/pixel", survey=SDSS,
                     redshift=0.05, rng=rng, pixel_scale_arcsec=0.6)


@pytest.mark.parametrize("kwargs, match", [
    ({"pixel_scale_arcsec": 0.1, "pixel_scale_kpc": 0.1}, "exactly one"),
    ({}, "exactly one"),
    ({"pixel_scale_arcsec": -1.0}, "positive"),
    ({"pixel_scale_arcsec": 0.1, "unit": "Jy"}, "not supported"),
    ({"pixel_scale_kpc": 0.1, "redshift": 0.0}, "redshift must be > 0"),
])
def test_bad_arguments_are_refused(rng, kwargs, match):
    args = {"unit": "nmgy/pixel", "redshift": 0.05, **kwargs}
    with pytest.raises(ValueError, match=match):
        mock_observe({"r": np.ones((10, 10))}, survey=SDSS, rng=rng, **args)


def test_unknown_band_and_mismatched_shapes_are_refused(rng):
    with pytest.raises(ValueError, match="no band 'u'"):
        mock_observe({"u": np.ones((4, 4))}, unit="nmgy/pixel", survey=SDSS,
                     redshift=0.1, rng=rng, pixel_scale_arcsec=0.1)
    with pytest.raises(ValueError, match="one pixel grid"):
        mock_observe({"g": np.ones((4, 4)), "r": np.ones((5, 5))}, unit="nmgy/pixel",
                     survey=SDSS, redshift=0.1, rng=rng, pixel_scale_arcsec=0.1)


def test_redshift_is_drawn_from_galaxies_of_similar_mass():
    cat = pd.DataFrame({"log_mstar": np.r_[np.full(30, 10.05), np.full(30, 11.0)],
                        "redshift": np.r_[np.linspace(0.02, 0.04, 30),
                                          np.linspace(0.10, 0.15, 30)]})
    draws = [draw_redshift(10.0, cat, np.random.default_rng(s)) for s in range(50)]
    assert all(0.02 <= z <= 0.04 for z in draws)
    assert draw_redshift(10.0, cat, np.random.default_rng(3)) == draws[3]
    # too few at 10.6 within 0.1 dex: the window widens to take in both groups
    wide = {draw_redshift(10.5, cat, np.random.default_rng(s), min_count=40)
            for s in range(60)}
    assert min(wide) < 0.05 and max(wide) > 0.09
    with pytest.raises(ValueError, match="lacks column 'redshift'"):
        draw_redshift(10.0, cat[["log_mstar"]], np.random.default_rng(0))
