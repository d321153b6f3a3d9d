"""Rendering: flux against the catalogue, noise against the survey, sanity sets."""

import numpy as np
import pytest

from galrate.survey import SDSS, mag_to_nmgy, nmgy_to_mag
from galrate.synth import (SANITY_SETS, draw_images, draw_population, render_image,
                           render_noiseless, sanity_set)
from galrate.synth.render import component_fluxes
from galrate.synth.sanity import add_bad_column, saturate_with_bleed


@pytest.fixture(scope="module")
def rows():
    gal = draw_population(60, seed=8)
    im = draw_images(gal, 8, "observed", 1, neighbour_fraction=0.0, star_fraction=0.0)
    return im


def _fits(row, survey=SDSS):
    """Small enough that the cutout holds all but a sliver of the light."""
    return row["r_disc_arcsec"] < 0.12 * survey.cutout_size * survey.pixel_scale


def test_total_flux_matches_catalogue_magnitudes(rows):
    small = rows[rows.apply(_fits, axis=1)].head(6)
    assert len(small) >= 3
    for row in small.to_dict("records"):
        flux = render_noiseless(row)
        for k, band in enumerate(SDSS.band_names):
            mag = nmgy_to_mag(flux[k].sum())
            assert abs(mag - row[f"mag_{band}"]) < 0.05, (band, mag, row[f"mag_{band}"])


def test_knots_and_bulge_carry_their_share_of_the_light(rows):
    row = dict(rows[rows.apply(_fits, axis=1)].iloc[0])
    row.update(bt=0.4, knot_frac=0.5, n_knots=20)
    flux = render_noiseless(row)
    np.testing.assert_allclose(flux[1].sum(), mag_to_nmgy(row["mag_r"]), rtol=0.03)


def test_component_fluxes_conserve_totals_and_colour_order():
    total = {"g": 1.0, "r": 2.0, "i": 2.6}
    parts = component_fluxes(total, {"bulge": 0.3, "disc": 0.5, "knots": 0.2})
    for band in total:
        np.testing.assert_allclose(sum(p[band] for p in parts.values()), total[band],
                                   rtol=1e-12)
    np.testing.assert_allclose(parts["bulge"]["r"], 0.6, rtol=1e-12)
    g_r = {c: nmgy_to_mag(p["g"]) - nmgy_to_mag(p["r"]) for c, p in parts.items()}
    np.testing.assert_allclose(g_r["bulge"] - g_r["disc"], 0.15, atol=1e-9)
    np.testing.assert_allclose(g_r["knots"] - g_r["disc"], -0.30, atol=1e-9)


def test_sky_noise_matches_survey_sigma():
    flux = SDSS.add_noise(np.zeros((3, 256, 256)), np.random.default_rng(3))
    for k, band in enumerate(SDSS.band_names):
        np.testing.assert_allclose(flux[k].std(), SDSS.noise_sigma(band), rtol=0.02)


def test_blank_sanity_cutout_noise_matches_survey_sigma():
    _, _, flux = sanity_set("sanity-blank", 2, seed=1)
    for k, band in enumerate(SDSS.band_names):
        np.testing.assert_allclose(flux[0, k].std(), SDSS.noise_sigma(band), rtol=0.05)
    assert not flux[1].any()


def test_render_image_is_deterministic_and_noise_seeded(rows):
    row = rows.iloc[0].to_dict()
    f1, rgb1 = render_image(row)
    f2, rgb2 = render_image(row)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(rgb1, rgb2)
    f3, _ = render_image({**row, "noise_seed": row["noise_seed"] + 1})
    assert not np.array_equal(f1, f3)
    assert rgb1.shape == (64, 64, 3) and rgb1.dtype == np.uint8


def test_galaxy_is_centred(rows):
    row = {**rows[rows.apply(_fits, axis=1)].iloc[0].to_dict(), "knot_frac": 0.0}
    img = render_noiseless(row)[1]
    yy, xx = np.mgrid[:64, :64]
    cy, cx = (img * yy).sum() / img.sum(), (img * xx).sum() / img.sum()
    # the true centre of an even GalSim image lies between pixels 31 and 32 (0-based)
    np.testing.assert_allclose([cx, cy], [31.5 + row["offset_x"], 31.5 + row["offset_y"]],
                               atol=0.02)


@pytest.mark.parametrize("name", list(SANITY_SETS))
def test_sanity_sets_have_the_right_shapes(name):
    rows, rgb, flux = sanity_set(name, 3, seed=2)
    assert len(rows) == 3 and rgb.shape == (3, 64, 64, 3) and rgb.dtype == np.uint8
    if name == "sanity-photo":
        assert flux is None and rgb.std() > 10
    else:
        assert flux.shape == (3, 3, 64, 64) and flux.dtype == np.float32
        assert np.isfinite(flux).all()


def test_bleed_trail_extends_saturation_along_the_column():
    img = np.zeros((3, 64, 64))
    sat_r = 55_000 * SDSS.band("r").nmgy_per_count
    img[1, 32, 20] = 5 * sat_r
    out = saturate_with_bleed(img)
    col = out[1, :, 20]
    assert col.max() == pytest.approx(sat_r)
    assert (col >= sat_r).sum() == 5  # the pixel plus 2 above and 2 below
    assert not out[1, :, 19].any()


def test_bad_column_spans_the_image():
    out = add_bad_column(np.zeros((3, 64, 64)), np.random.default_rng(0))
    k, _, cols = np.nonzero(out)
    assert len(np.unique(k)) == 1
    assert len(np.unique(cols)) in (1, 2)
    assert (out != 0).sum() in (64, 128)


def test_unknown_sanity_set_is_refused():
    with pytest.raises(ValueError, match="unknown sanity set 'sanity-x'"):
        sanity_set("sanity-x", 1, seed=0)
