"""The synthetic population: ranges, scaling relations, null-suite agreement."""

import numpy as np
import pytest
from scipy import stats

from galrate.synth import PROPERTY_COLUMNS, apply_deviation, draw_images, draw_population
from galrate.synth.population import (MAG_LIMIT_R, Z_RANGE, derive_properties,
                                      sersic_index_of_composite)


@pytest.fixture(scope="module")
def observed():
    gal = draw_population(400, seed=11, stream="observed")
    return draw_images(gal, 11, "observed", 1)


@pytest.fixture(scope="module")
def null():
    gal = draw_population(400, seed=11, stream="suite")
    return draw_images(gal, 11, "suite", 1)


def test_null_suite_matches_observed_in_every_property(observed, null):
    for col in PROPERTY_COLUMNS:
        p = stats.ks_2samp(observed[col], null[col]).pvalue
        assert p > 0.01, f"{col}: KS p = {p:.2g}"


def test_ks_detects_a_deviation(observed, null):
    compact = apply_deviation(null, "compact", 3)
    assert stats.ks_2samp(observed["r_half_kpc"], compact["r_half_kpc"]).pvalue < 1e-4


def test_observed_and_suite_are_independent_draws(observed, null):
    assert not np.allclose(observed["log_mstar"], null["log_mstar"])


def test_flux_limited_sample_ranges(observed):
    assert observed["log_mstar"].between(9.0, 12.0).all()
    assert observed["redshift"].between(*Z_RANGE).all()
    assert (observed["mag_r"] <= MAG_LIMIT_R + 1e-6).all()
    assert 10.2 < observed["log_mstar"].median() < 10.9
    # a flux-limited sample: massive galaxies lie farther away
    rho = stats.spearmanr(observed["log_mstar"], observed["redshift"]).statistic
    assert rho > 0.4


def test_quenched_galaxies_are_redder_bulgier_and_older(observed):
    q = observed["quenched"].to_numpy(bool)
    assert 0.2 < q.mean() < 0.8
    for col in ("g_r", "bt", "age", "sersic_n"):
        assert observed.loc[q, col].median() > observed.loc[~q, col].median(), col
    assert observed.loc[q, "sfr_100"].median() < 0.1 * observed.loc[~q, "sfr_100"].median()


def test_galaxy_draw_does_not_depend_on_sample_size():
    small = draw_population(5, seed=3)
    large = draw_population(20, seed=3)
    cols = ["log_mstar", "redshift", "g_r", "r_half_kpc", "bt"]
    np.testing.assert_array_equal(small[cols].to_numpy(), large[cols].head(5).to_numpy())


def test_angular_size_follows_cosmology():
    gal = draw_population(50, seed=5)
    # 1 arcsec at z = 0.1 is 1.84 proper kpc for H0 = 70, Om = 0.3
    one = gal.head(1).copy()
    one["redshift"], one["r_half_kpc"] = 0.1, 1.8446
    np.testing.assert_allclose(derive_properties(one)["r_half_arcsec"], 1.0, atol=2e-3)


def test_global_sersic_index_limits():
    np.testing.assert_allclose(sersic_index_of_composite(0.0, 4.0, 0.5), 1.0, atol=0.02)
    np.testing.assert_allclose(sersic_index_of_composite(1.0, 4.0, 0.5), 4.0, atol=0.02)
    mid = sersic_index_of_composite(0.5, 4.0, 0.5)
    assert 1.5 < mid < 4.0


def test_composite_half_light_radius_is_the_catalogue_radius():
    from galrate.synth.population import _sersic_enclosed

    gal = draw_population(30, seed=2)
    x = gal["r_half_arcsec"] / gal["r_disc_arcsec"]
    enc = ((1 - gal["bt"]) * _sersic_enclosed(x, 1.0)
           + gal["bt"] * _sersic_enclosed(gal["r_half_arcsec"] / gal["r_bulge_arcsec"],
                                          gal["n_bulge"]))
    np.testing.assert_allclose(enc, 0.5, atol=1e-6)


def test_projections_share_the_galaxy_but_not_the_orientation():
    gal = draw_population(3, seed=4, stream="suite")
    im = draw_images(gal, 4, "suite", n_projections=4)
    assert len(im) == 12
    assert im.groupby("galaxy_id")["log_mstar"].nunique().eq(1).all()
    assert im.groupby("galaxy_id")["inclination"].nunique().eq(4).all()
    assert im["inclination"].between(0, 90).all()
    assert (im["q_disc"] >= im["disc_q0"] - 1e-12).all()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="stream must be one of"):
        draw_population(3, seed=1, stream="nope")
    with pytest.raises(ValueError, match="n must be a non-negative integer"):
        draw_population(-1, seed=1)
    with pytest.raises(ValueError, match="neighbour_fraction must be in"):
        draw_images(draw_population(2, 1), 1, "observed", 1, neighbour_fraction=2.0)
