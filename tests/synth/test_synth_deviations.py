"""Each deviation moves exactly its quantity, by the stated amount."""

import numpy as np
import pandas as pd
import pytest

from galrate.synth import DEVIATIONS, FAMILIES, apply_deviation, deviation_table
from galrate.synth import draw_images, draw_population

#: columns recomputed from each moved column
DERIVED = {"r_half_kpc": {"r_half_arcsec", "r_disc_arcsec", "r_bulge_arcsec"},
           "g_r": {"b_v", "mag_g"}, "r_i": {"mag_i"},
           "bt": {"sersic_n", "r_disc_arcsec", "r_bulge_arcsec"},
           "knot_frac": set(), "smoothing_kpc": set()}


@pytest.fixture(scope="module")
def galaxies():
    return draw_population(200, seed=21, stream="suite")


def test_table_has_every_family_with_three_levels_and_a_motivation():
    assert set(FAMILIES) >= {"compact", "extended", "blue", "red", "bulgeless",
                             "clumpy", "smooth"}
    for dev in DEVIATIONS.values():
        assert dev.motivation and all(len(m.per_level) == 3 for m in dev.moves)
    assert len(deviation_table()) == sum(len(d.moves) for d in DEVIATIONS.values())


@pytest.mark.parametrize("family", FAMILIES)
def test_level_zero_is_the_null_suite(galaxies, family):
    pd.testing.assert_frame_equal(apply_deviation(galaxies, family, 0), galaxies)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("level", [1, 2, 3])
def test_only_the_named_quantities_move(galaxies, family, level):
    dev = apply_deviation(galaxies, family, level)
    moved = {m.column for m in DEVIATIONS[family].moves}
    allowed = moved.union(*(DERIVED[c] for c in moved))
    for col in galaxies.columns:
        if col not in allowed:
            pd.testing.assert_series_equal(dev[col], galaxies[col], obj=col)
    assert any(not np.allclose(dev[c], galaxies[c]) for c in moved)


@pytest.mark.parametrize("level,factor", [(1, 0.85), (2, 0.70), (3, 0.50)])
def test_compact_shrinks_radii_by_its_factor(galaxies, level, factor):
    dev = apply_deviation(galaxies, "compact", level)
    np.testing.assert_allclose(dev["r_half_kpc"].median() / galaxies["r_half_kpc"].median(),
                               factor, rtol=1e-12)
    np.testing.assert_allclose(dev["r_half_arcsec"], factor * galaxies["r_half_arcsec"],
                               rtol=1e-12)


@pytest.mark.parametrize("level,factor", [(1, 1.2), (2, 1.45), (3, 1.8)])
def test_extended_grows_radii_by_its_factor(galaxies, level, factor):
    dev = apply_deviation(galaxies, "extended", level)
    np.testing.assert_allclose(dev["r_half_kpc"], factor * galaxies["r_half_kpc"],
                               rtol=1e-12)


@pytest.mark.parametrize("family,sign", [("blue", -1), ("red", 1)])
@pytest.mark.parametrize("level", [1, 2, 3])
def test_colour_shift_in_every_colour(galaxies, family, sign, level):
    dev = apply_deviation(galaxies, family, level)
    shift = sign * 0.1 * level
    np.testing.assert_allclose(dev["g_r"] - galaxies["g_r"], shift, atol=1e-12)
    np.testing.assert_allclose(dev["r_i"] - galaxies["r_i"], shift / 2, atol=1e-12)
    np.testing.assert_allclose(dev["b_v"] - galaxies["b_v"], shift / 1.02, atol=1e-12)
    np.testing.assert_array_equal(dev["mag_r"], galaxies["mag_r"])


def test_bulgeless_level_three_has_no_bulge(galaxies):
    dev = apply_deviation(galaxies, "bulgeless", 3)
    assert (dev["bt"] == 0).all()
    np.testing.assert_allclose(dev["sersic_n"], 1.0, atol=0.02)
    np.testing.assert_allclose(dev["r_disc_arcsec"], dev["r_half_arcsec"], rtol=1e-6)
    half = apply_deviation(galaxies, "bulgeless", 2)
    np.testing.assert_allclose(half["bt"], galaxies["bt"] / 3, rtol=1e-12)


def test_clumpy_raises_knot_fraction_and_smooth_removes_it(galaxies):
    clumpy = apply_deviation(galaxies, "clumpy", 3)
    assert (clumpy["knot_frac"] >= 0.5).all()
    smooth = apply_deviation(galaxies, "smooth", 3)
    assert (smooth["knot_frac"] == 0).all() and (smooth["smoothing_kpc"] == 1.0).all()


def test_deviated_images_keep_orientation_scene_and_noise(galaxies):
    null = draw_images(galaxies, 21, "suite", 2)
    dev = draw_images(apply_deviation(galaxies, "compact", 3), 21, "suite", 2)
    for col in ("galaxy_id", "projection", "inclination", "position_angle", "offset_x",
                "nb_present", "star_present", "knot_seed", "noise_seed"):
        pd.testing.assert_series_equal(dev[col], null[col], obj=col)


def test_bad_family_or_level_is_refused(galaxies):
    with pytest.raises(ValueError, match="unknown deviation family 'tiny'"):
        apply_deviation(galaxies, "tiny", 1)
    with pytest.raises(ValueError, match="level must be 0, 1, 2 or 3; got 4"):
        apply_deviation(galaxies, "blue", 4)
