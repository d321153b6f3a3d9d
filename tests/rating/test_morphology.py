"""Morphology features: known answers, agreement with statmorph, failures counted."""

import math

import galsim
import numpy as np
import pandas as pd
import pytest

from galrate.rating import morphology as mo
from galrate.survey import SDSS, mag_to_nmgy


def render(profile, mag_r=16.0, colours=(0.7, 0.3), rng=None, psf=True, size=64):
    """(3, H, W) g, r, i nanomaggies of one profile; noise when ``rng`` is given."""
    f_r = float(mag_to_nmgy(mag_r))
    # g - r = colours[0], r - i = colours[1]
    fluxes = {"g": f_r * 10 ** (-0.4 * colours[0]), "r": f_r,
              "i": f_r * 10 ** (0.4 * colours[1])}
    if psf:
        img = SDSS.draw({b: profile.withFlux(f) for b, f in fluxes.items()}, size=size)
    else:
        img = np.stack([profile.withFlux(fluxes[b]).drawImage(
            nx=size, ny=size, scale=SDSS.pixel_scale, method="no_pixel").array
            for b in "gri"]).astype(np.float32)
    return SDSS.add_noise(img, rng) if rng is not None else img


@pytest.fixture(scope="module")
def galaxies():
    """Six SDSS-like galaxies (exponential and n=3 Sersic), noisy, with truths."""
    rng = np.random.default_rng(7)
    imgs, truth = [], []
    for k in range(6):
        hlr = 1.2 + 0.4 * k
        base = galsim.Exponential(half_light_radius=hlr) if k % 2 == 0 \
            else galsim.Sersic(n=3, half_light_radius=hlr)
        prof = base.shear(q=0.55 + 0.08 * k, beta=(25 * k) * galsim.degrees)
        imgs.append(render(prof, mag_r=15.5 + 0.3 * k, rng=rng))
        hlr_obs = galsim.Convolve(prof, SDSS.psf("r")).calculateHLR(scale=0.05)
        truth.append({"hlr_obs": hlr_obs, "exponential": k % 2 == 0})
    return np.stack(imgs), pd.DataFrame(truth)


@pytest.fixture(scope="module")
def both_methods(galaxies):
    flux, _ = galaxies
    return (mo.measure_morphology(flux, SDSS, method="fast"),
            mo.measure_morphology(flux, SDSS, method="statmorph"))


# ----------------------------------------------------------------------
# agreement with statmorph (the reference implementation)

#: absolute tolerances of fast vs statmorph on these galaxies (S/N > 100)
TOLERANCE = {"concentration": 0.1, "gini": 0.03, "m20": 0.05, "ellipticity": 0.02,
             "smoothness": 0.05, "asymmetry": 0.2, "g_r": 0.01, "r_i": 0.01,
             "mag_r": 0.02}


@pytest.mark.parametrize("column", sorted(TOLERANCE))
def test_fast_agrees_with_statmorph(both_methods, column):
    fast, ref = both_methods
    assert (ref["flag_statmorph"] < 2).all(), ref["error"].tolist()
    np.testing.assert_allclose(fast[column], ref[column], rtol=0, atol=TOLERANCE[column])


def test_fast_radii_agree_with_statmorph(both_methods):
    # r_half: SDSS Petrosian R50 (fast: half the flux inside 2 Petrosian radii) vs
    # statmorph's rhalf_circ (half the flux inside rmax): within 5% for exponential
    # discs, 12% for n = 3 profiles whose wings both totals miss, differently;
    # Petrosian radius within 8% (different centres and aperture weights)
    fast, ref = both_methods
    np.testing.assert_allclose(fast["r_half_arcsec"][::2], ref["r_half_arcsec"][::2],
                               rtol=0.05)
    np.testing.assert_allclose(fast["r_half_arcsec"], ref["r_half_arcsec"], rtol=0.12)
    np.testing.assert_allclose(fast["r_petro_arcsec"], ref["r_petro_arcsec"], rtol=0.08)


# ----------------------------------------------------------------------
# known answers

def test_gini_of_uniform_image_is_zero_and_of_one_pixel_is_one():
    seg = np.zeros((20, 20), bool)
    seg[5:15, 5:15] = True
    gini, _ = mo._gini_m20(np.ones((20, 20)), seg)
    assert gini == pytest.approx(0.0, abs=1e-12)
    spike = np.zeros((20, 20))
    spike[9, 9] = 5.0
    gini, _ = mo._gini_m20(spike, seg)
    assert gini == pytest.approx(1.0, abs=1e-12)


def test_m20_of_two_point_sources():
    # two equal pixels at distance 2 from the centroid and 8 faint ones at 1:
    # the brightest 20% of the flux are one bright pixel (ties take both):
    # M_20 = log10(sum_bright f r^2 / M_tot)
    img = np.zeros((11, 11))
    img[5, 3] = img[5, 7] = 10.0
    for dy, dx in [(-1, 0), (1, 0), (0, -1), (0, 1)]:
        img[5 + dy, 5 + dx] = 1.0
    seg = img > 0
    _, m20 = mo._gini_m20(img, seg)
    m_tot = 2 * 10 * 4 + 4 * 1 * 1
    assert m20 == pytest.approx(math.log10(2 * 10 * 4 / m_tot), abs=1e-12)


def test_half_light_radius_of_exponential_matches_galsim(galaxies, both_methods):
    # exponential discs: the Petrosian aperture holds > 99% of the light, so R50
    # equals the half-light radius of the PSF-convolved profile within 5%
    _, truth = galaxies
    fast, _ = both_methods
    exp = truth["exponential"].to_numpy()
    np.testing.assert_allclose(fast["r_half_arcsec"][exp], truth["hlr_obs"][exp],
                               rtol=0.05)


def test_gaussian_known_concentration_and_ellipticity():
    # a round Gaussian, no PSF, noiseless: r_f = sigma sqrt(-2 ln(1 - f)), so
    # C = 5 log10(r80 / r20) = 5 log10(sqrt(ln 5 / ln 1.25)) = 2.145;
    # a Gaussian sheared to b/a = 0.5 has second-moment ellipticity 0.5
    sigma = 3.0 * SDSS.pixel_scale
    round_ = render(galsim.Gaussian(sigma=sigma), psf=False)
    flat = render(galsim.Gaussian(sigma=2 * sigma).shear(q=0.5, beta=0 * galsim.degrees),
                  psf=False)
    df = mo.measure_morphology(np.stack([round_, flat]), SDSS)
    expect_c = 5 * math.log10(math.sqrt(math.log(5) / math.log(1.25)))
    assert df.loc[0, "concentration"] == pytest.approx(expect_c, abs=0.06)
    assert df.loc[0, "ellipticity"] == pytest.approx(0.0, abs=0.01)
    assert df.loc[1, "ellipticity"] == pytest.approx(0.5, abs=0.03)
    # Gaussian half-light radius: sigma sqrt(2 ln 2)
    assert df.loc[0, "r_half_arcsec"] == pytest.approx(sigma * math.sqrt(2 * math.log(2)),
                                                       rel=0.03)
    assert df.loc[0, "asymmetry"] == pytest.approx(0.0, abs=0.01)


def test_colours_and_magnitude_recover_the_input():
    img = render(galsim.Exponential(half_light_radius=1.5), mag_r=16.2,
                 colours=(0.8, 0.35))
    df = mo.measure_morphology(img, SDSS)
    # the aperture (2 Petrosian radii) holds ~99% of an exponential's light
    assert df.loc[0, "mag_r"] == pytest.approx(16.2, abs=0.03)
    assert df.loc[0, "g_r"] == pytest.approx(0.8, abs=0.02)
    assert df.loc[0, "r_i"] == pytest.approx(0.35, abs=0.02)
    assert df.loc[0, "flag"] == 0


def test_asymmetry_and_clumpiness_rise_with_an_off_centre_clump():
    rng = np.random.default_rng(3)
    disc = galsim.Exponential(half_light_radius=2.0)
    clump = galsim.Gaussian(sigma=0.3).shift(2.0, 1.0)
    smooth = render(disc.withFlux(1.0), rng=rng)
    clumpy = render(galsim.Add(disc.withFlux(0.8), clump.withFlux(0.2)), rng=rng)
    df = mo.measure_morphology(np.stack([smooth, clumpy]), SDSS)
    assert df.loc[1, "asymmetry"] > df.loc[0, "asymmetry"] + 0.1
    assert df.loc[1, "smoothness"] > df.loc[0, "smoothness"] + 0.02


# ----------------------------------------------------------------------
# failures are counted, not dropped

def test_blank_cutouts_are_flagged_and_kept(galaxies):
    flux, _ = galaxies
    rng = np.random.default_rng(11)
    blank = SDSS.add_noise(np.zeros((3, 64, 64), np.float32), rng)
    stack = np.stack([flux[0], blank, np.zeros((3, 64, 64), np.float32)])
    for method in ("fast", "statmorph"):
        df = mo.measure_morphology(stack, SDSS, method=method)
        assert len(df) == 3
        assert df.loc[0, "flag"] & mo.NO_SOURCE == 0
        assert (df.loc[1:, "flag"] & mo.NO_SOURCE != 0).all()
        assert df.loc[1:, list(mo.FEATURES)].isna().all().all()
        assert df.loc[1, "error"] == "no source above the detection threshold"
    summary = mo.failure_summary(df)
    assert summary["n_images"] == 3 and summary[mo.FLAGS[mo.NO_SOURCE]] == 2


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="n_bands=3"):
        mo.measure_morphology(np.zeros((2, 64, 64)), SDSS)
    with pytest.raises(ValueError, match="needs method='statmorph'"):
        mo.measure_morphology(np.zeros((1, 3, 64, 64)), SDSS, sersic=True)
    with pytest.raises(ValueError, match="method must be"):
        mo.measure_morphology(np.zeros((1, 3, 64, 64)), SDSS, method="magic")
    with pytest.raises(ValueError, match="band 'z'"):
        mo.measure_morphology(np.zeros((1, 3, 64, 64)), SDSS, band="z")


def test_rgb_morphology_ranks_sizes_and_has_no_calibrated_colours():
    rng = np.random.default_rng(5)
    small = render(galsim.Exponential(half_light_radius=1.0), rng=rng)
    large = render(galsim.Exponential(half_light_radius=3.0), rng=rng)
    rgb = SDSS.to_rgb(np.stack([small, large]))
    df = mo.measure_rgb_morphology(rgb)
    assert df.loc[1, "r_half_px"] > 1.5 * df.loc[0, "r_half_px"]
    assert df[["g_r", "r_i", "mag_r"]].isna().all().all()
    assert np.isfinite(df["colour_rg"]).all()


# ----------------------------------------------------------------------
# feature differences in words

def test_feature_differences_and_sentences():
    rng = np.random.default_rng(2)
    n = 300
    ref = pd.DataFrame({"r_half_arcsec": rng.lognormal(np.log(2.0), 0.2, n),
                        "g_r": rng.normal(0.7, 0.05, n),
                        "concentration": rng.normal(3.0, 0.3, n)})
    sim = pd.DataFrame({"r_half_arcsec": rng.lognormal(np.log(1.2), 0.2, n),
                        "g_r": rng.normal(0.4, 0.05, n),
                        "concentration": rng.normal(3.0, 0.3, n)})
    sim.loc[:9, "r_half_arcsec"] = np.nan            # flagged measurements
    g_ref = np.arange(n).astype(str)
    g_sim = np.repeat(np.arange(n // 3), 3).astype(str)
    df = mo.feature_differences(ref, sim, g_ref, g_sim, n_boot=100).set_index("feature")
    assert df.loc["r_half_arcsec", "ratio"] == pytest.approx(0.6, abs=0.04)
    assert df.loc["r_half_arcsec", "ratio_lo"] < 0.6 < df.loc["r_half_arcsec", "ratio_hi"]
    assert df.loc["g_r", "diff"] == pytest.approx(-0.3, abs=0.02)
    assert df.loc["g_r", "effect"] == pytest.approx(-1.0, abs=0.01)
    assert df.loc["r_half_arcsec", "n_sim"] == n - 10
    assert df["significant"].to_dict() == {"concentration": False,
                                           "r_half_arcsec": True, "g_r": True}
    text = mo.describe_differences(df.reset_index())
    assert len(text) == 2
    assert "g-r 0.30 mag bluer" in text
    assert any(t.startswith("half-light radius 40% smaller") for t in text)


@pytest.mark.slow
def test_statmorph_sersic_and_workers(galaxies):
    flux, truth = galaxies
    one = mo.measure_morphology(flux[:2], SDSS, method="statmorph", sersic=True)
    two = mo.measure_morphology(flux[:2], SDSS, method="statmorph", sersic=True,
                                workers=2)
    pd.testing.assert_frame_equal(one, two)
    assert one.loc[0, "sersic_n"] == pytest.approx(1.0, abs=0.25)   # exponential
    assert one.loc[1, "sersic_n"] == pytest.approx(3.0, abs=0.8)
