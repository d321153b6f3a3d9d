"""Survey profiles: calibration, noise and the colour recipe against known answers."""

import math

import numpy as np
import pytest

from galrate.survey import SDSS, Survey, asinh_composite, load_survey, mag_to_nmgy, nmgy_to_mag


def test_nanomaggy_zero_point():
    assert mag_to_nmgy(22.5) == pytest.approx(1.0)
    assert mag_to_nmgy(20.0) == pytest.approx(10.0)
    np.testing.assert_allclose(nmgy_to_mag([1.0, 100.0]), [22.5, 17.5])
    assert np.isnan(nmgy_to_mag(-1.0))


def test_sdss_profile_numbers():
    assert SDSS.band_names == ("g", "r", "i")
    assert SDSS.pixel_scale == 0.396
    assert SDSS.cutout_size == 64
    assert SDSS.colour.rgb_bands == ("i", "r", "g")
    for b in SDSS.bands:
        assert 1.2 <= b.psf_fwhm <= 1.6
    # sky per pixel: 10**(-0.4 (mu - 22.5)) * 0.396**2 nanomaggies
    expected = 10 ** (-0.4 * (20.9 - 22.5)) * 0.396 ** 2
    assert SDSS.sky_level("r") == pytest.approx(expected, rel=1e-12)


def test_noise_sigma_matches_poisson_theory():
    # r band by hand: sky in DN = 0.6845 / 0.0051 = 134.2; var = 134.2 / 4.72 + 1.0
    sky_dn = SDSS.sky_level("r") / 0.0051
    sigma = math.sqrt(sky_dn / 4.72 + 1.0) * 0.0051
    assert SDSS.noise_sigma("r") == pytest.approx(sigma, rel=1e-12)


def test_add_noise_variance_on_blank_sky(rng):
    blank = np.zeros((3, 200, 200), dtype=np.float32)
    noisy = SDSS.add_noise(blank, rng)
    for k, band in enumerate(SDSS.band_names):
        assert abs(noisy[k].mean()) < 3 * SDSS.noise_sigma(band) / 200
        np.testing.assert_allclose(noisy[k].std(), SDSS.noise_sigma(band), rtol=0.02)


def test_draw_conserves_flux():
    import galsim

    prof = {b: galsim.Exponential(half_light_radius=1.5, flux=100.0) for b in "gri"}
    img = SDSS.draw(prof)
    assert img.shape == (3, 64, 64)
    np.testing.assert_allclose(img.sum(axis=(1, 2)), 100.0, rtol=2e-3)


def test_asinh_composite_hand_values():
    # grey pixel x in every channel: X = asinh(Q x / s) / Q
    Q, s = 8.0, 0.35
    x = np.array([0.0, 0.01, 0.1, 1.0])
    rgb = np.broadcast_to(x[None, None, None, :], (1, 3, 1, 4))
    out = asinh_composite(rgb, Q=Q, stretch=s)[0, 0, 0]
    # asinh(8*0.01/0.35)/8 = 0.028335 -> 7.23 -> 7
    # asinh(8*0.1/0.35)/8 = 0.195574 -> 49.87 -> 50
    # asinh(8*1.0/0.35)/8 = 0.477864 -> 121.86 -> 122
    np.testing.assert_array_equal(out, [0, 7, 50, 122])


def test_asinh_composite_keeps_hue_when_saturated():
    rgb = np.array([100.0, 50.0, 25.0])[None, :, None, None]
    out = asinh_composite(rgb, Q=8.0, stretch=0.35)[0, :, 0, 0]
    assert out[0] == 255
    np.testing.assert_allclose(out[1:] / 255.0, [0.5, 0.25], atol=1 / 255)


def test_colour_recipe_agrees_with_astropy_lupton():
    """Same stretch as astropy's, up to astropy's constant normalisation.

    astropy scales asinh(Q I / s) by 0.1 / asinh(0.1 Q) where Lupton et al.
    (2004) use 1 / Q; below saturation the two differ by that factor only.
    """
    from astropy.visualization import make_lupton_rgb

    gen = np.random.default_rng(3)
    flux = gen.gamma(0.5, 0.05, size=(3, 16, 16))
    c = SDSS.colour
    ours = SDSS.to_rgb(flux).astype(int)
    i, r, g = flux[2] * c.scales[0], flux[1] * c.scales[1], flux[0] * c.scales[2]
    theirs = make_lupton_rgb(i, r, g, minimum=0, stretch=c.stretch, Q=c.Q,
                             output_dtype=np.float64)
    k = c.Q * 0.1 / np.arcsinh(0.1 * c.Q)
    unsaturated = (theirs.max(axis=-1) < 1.0) & (ours.max(axis=-1) < 255)
    assert unsaturated.mean() > 0.9
    expected = np.floor(255 * theirs / k + 0.5)
    np.testing.assert_allclose(ours[unsaturated], expected[unsaturated], atol=1)


def test_rgb_band_order_is_i_r_g():
    flux = np.zeros((3, 4, 4))
    flux[2] = 1.0  # i only -> red channel only
    rgb = SDSS.to_rgb(flux)
    assert rgb[..., 0].min() > 0
    assert rgb[..., 1].max() == 0 and rgb[..., 2].max() == 0


def test_jpeg_option_changes_pixels_slightly():
    from dataclasses import replace

    jpeg = replace(SDSS, colour=replace(SDSS.colour, jpeg_quality=75))
    import galsim

    flux = SDSS.draw({b: galsim.Exponential(half_light_radius=3.0, flux=300.0)
                      for b in "gri"})
    a, b = SDSS.to_rgb(flux).astype(int), jpeg.to_rgb(flux).astype(int)
    assert 0 < np.abs(a - b).mean() < 10


def test_survey_from_toml_round_trip(tmp_path):
    toml = tmp_path / "mini.toml"
    toml.write_text(
        'name = "mini"\npixel_scale = 0.2\ncutout_size = 32\n'
        '[[bands]]\nname = "r"\npsf_fwhm = 0.8\nsky_mag = 21.0\ngain = 2.0\n'
        'nmgy_per_count = 0.01\n'
        '[[bands]]\nname = "g"\npsf_fwhm = 0.9\nsky_mag = 22.0\ngain = 2.0\n'
        'nmgy_per_count = 0.01\n'
        '[[bands]]\nname = "z"\npsf_fwhm = 0.7\nsky_mag = 19.5\ngain = 2.0\n'
        'nmgy_per_count = 0.01\n'
        '[colour]\nrgb_bands = ["z", "r", "g"]\nQ = 10.0\nstretch = 0.5\n')
    s = load_survey(toml)
    assert s.name == "mini" and s.band_names == ("r", "g", "z")
    assert s.colour.rgb_bands == ("z", "r", "g")
    assert Survey.from_dict(s.to_dict()) == s


def test_bad_survey_specs(tmp_path):
    with pytest.raises(ValueError, match="neither a built-in"):
        load_survey("hubble-deep")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [")
    with pytest.raises(ValueError, match="bad.toml: not valid TOML"):
        load_survey(bad)
    partial = tmp_path / "partial.toml"
    partial.write_text('name = "x"\npixel_scale = 0.2\n')
    with pytest.raises(ValueError, match="partial.toml"):
        load_survey(partial)
    with pytest.raises(ValueError, match="has no band 'u'"):
        SDSS.band("u")
