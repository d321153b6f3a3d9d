"""A synthetic tipsy disc through the whole particle chain."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.cosmology import Planck18

from galrate.mock import (galaxy_properties, load_stars, mock_particles, orientations,
                          project_light)
from galrate.mock.dust import cardelli_a_lambda_over_a_v, slab_transmission
from galrate.mock.ssp import CSVSSP, load_ssp
from galrate.survey import SDSS, nmgy_to_mag

from mock_disc import DISC_AGE_GYR, DISC_SCALE_KPC, DISC_Z, write_disc_tipsy

Z = 0.05


@pytest.fixture(scope="module")
def tilted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tilted")
    stars, _ = load_stars(write_disc_tipsy(folder, tilt_deg=50.0))
    return stars


@pytest.fixture(scope="module")
def ssp():
    return load_ssp()


def _axis_ratio(image: np.ndarray) -> float:
    """b/a from the flux-weighted second moments of a positive image."""
    img = np.clip(image, 0, None)
    y, x = np.indices(img.shape)
    w = img / img.sum()
    xc, yc = (w * x).sum(), (w * y).sum()
    cov = np.array([[(w * (x - xc) ** 2).sum(), (w * (x - xc) * (y - yc)).sum()],
                    [(w * (x - xc) * (y - yc)).sum(), (w * (y - yc) ** 2).sum()]])
    lo, hi = np.linalg.eigvalsh(cov)
    return float(np.sqrt(lo / hi))


def _half_light_radius_pix(image: np.ndarray) -> float:
    y, x = np.indices(image.shape)
    c = (image.shape[0] - 1) / 2
    r = np.hypot(x - c, y - c).ravel()
    order = np.argsort(r)
    cum = np.cumsum(image.ravel()[order])
    return float(np.interp(0.5 * cum[-1], cum, r[order]))


def test_tipsy_disc_is_read_centred_with_its_properties(tilted, ssp):
    assert len(tilted) == 4000
    np.testing.assert_allclose(np.median(tilted.pos_kpc, axis=0), 0.0, atol=0.3)
    np.testing.assert_allclose(tilted.age_yr / 1e9, DISC_AGE_GYR, rtol=1e-3)
    props = galaxy_properties(tilted, ssp)
    np.testing.assert_allclose(props["log_mstar"], 10.0, atol=0.02)
    np.testing.assert_allclose(props["metallicity"], np.log10(DISC_Z / 0.0134), atol=1e-3)
    np.testing.assert_allclose(props["age"], DISC_AGE_GYR, rtol=1e-3)
    assert props["sfr_100"] == 0.0 and props["sfr_500"] == 0.0
    assert 0.5 < props["b_v"] < 1.0 and 0.3 < props["g_r"] < 0.8


def test_faceon_and_edgeon_follow_the_spin(tilted):
    views = {name: (rot, incl) for name, rot, incl in orientations(
        tilted, ["faceon", "edgeon"])}
    assert views["faceon"][1] == pytest.approx(0.0, abs=0.5)
    assert views["edgeon"][1] == pytest.approx(90.0, abs=0.5)
    z_faceon = tilted.pos_kpc @ views["faceon"][0].T
    assert np.std(z_faceon[:, 2]) < 0.3  # the disc plane is the sky plane


def test_whole_chain_orientation_size_and_magnitude(tilted, ssp):
    rng = np.random.default_rng(11)
    views = orientations(tilted, ["faceon", "edgeon"])
    res = {name: mock_particles(tilted, survey=SDSS, redshift=Z, rng=rng, rotation=rot,
                                inclination_deg=incl, ssp=ssp)
           for name, rot, incl in views}
    q_face = _axis_ratio(res["faceon"].noiseless[1])
    q_edge = _axis_ratio(res["edgeon"].noiseless[1])
    assert q_face > 0.85
    assert q_edge < 0.4

    # exponential disc: half-light radius 1.678 scale lengths
    want_arcsec = 1.678 * DISC_SCALE_KPC * Planck18.arcsec_per_kpc_proper(Z).value
    got_arcsec = _half_light_radius_pix(res["faceon"].noiseless[1]) * SDSS.pixel_scale
    np.testing.assert_allclose(got_arcsec, want_arcsec, rtol=0.15)

    props = galaxy_properties(tilted, ssp)
    dist_mod = 5 * np.log10(Planck18.luminosity_distance(Z).to_value("pc") / 10)
    for k, band in enumerate("gri"):
        got = nmgy_to_mag(res["faceon"].noiseless[k].sum())
        np.testing.assert_allclose(got, props[f"abs_mag_{band}"] + dist_mod, atol=0.1)


def test_random_projections_are_seeded(tilted):
    a = orientations(tilted, "random", n_random=3, rng=np.random.default_rng(4))
    b = orientations(tilted, "random", n_random=3, rng=np.random.default_rng(4))
    assert len(a) == 3
    for (_, ra, ia), (_, rb, ib) in zip(a, b):
        np.testing.assert_array_equal(ra, rb)
        assert ia == ib
        np.testing.assert_allclose(ra @ ra.T, np.eye(3), atol=1e-12)


def test_adaptive_smoothing_conserves_light():
    rng = np.random.default_rng(0)
    pos = rng.normal(0, 1.0, (3000, 3))
    light = {"r": rng.uniform(1, 2, 3000)}
    sigma = rng.uniform(0.01, 0.5, 3000)
    maps = project_light(pos, light, npix=200, pixel_scale_kpc=0.1, smoothing_kpc=sigma)
    raw = project_light(pos, light, npix=200, pixel_scale_kpc=0.1)
    inside = (np.abs(pos[:, :2]) < 10).all(axis=1)
    np.testing.assert_allclose(raw["r"].sum() * 0.01, light["r"][inside].sum(), rtol=1e-9)
    np.testing.assert_allclose(maps["r"].sum() * 0.01, light["r"].sum(), rtol=1e-3)
    assert maps["r"].max() < raw["r"].max()


def test_dust_slab_known_answers():
    np.testing.assert_allclose(cardelli_a_lambda_over_a_v(5495.0), 1.0, atol=0.01)
    assert slab_transmission("g", 0.0, 60.0) == 1.0
    np.testing.assert_allclose(slab_transmission("V", 1e-4, 0.0), 1 - 0.5e-4, rtol=1e-6)
    assert slab_transmission("g", 1.0, 80.0) < slab_transmission("g", 1.0, 0.0)
    assert slab_transmission("g", 1.0, 0.0) < slab_transmission("i", 1.0, 0.0)
    with pytest.raises(ValueError, match="tau_v must be >= 0"):
        slab_transmission("g", -1.0, 0.0)


def test_user_csv_ssp_table(tmp_path, tilted):
    rows = ["age_gyr,metallicity,g,r,i"]
    for age in (0.1, 1.0, 10.0):
        for z in (0.001, 0.02):
            rows.append(f"{age},{z},6.0,5.5,5.0")
    path = tmp_path / "ssp.csv"
    path.write_text("\n".join(rows) + "\n")
    table = CSVSSP(path)
    np.testing.assert_allclose(table.mag_per_msun(np.array([3e9]), np.array([0.01]), "r"),
                               5.5)
    props = galaxy_properties(tilted, table)
    np.testing.assert_allclose(props["abs_mag_r"], 5.5 - 2.5 * 10.0, atol=0.02)
    np.testing.assert_allclose(props["b_v"], (0.5 + 0.22) / 1.02)
    (tmp_path / "bad.csv").write_text("age,metallicity,g\n1,0.02,5\n")
    with pytest.raises(ValueError, match="needs column 'age_gyr'"):
        CSVSSP(tmp_path / "bad.csv")


def test_unreadable_snapshot_is_refused(tmp_path):
    bad = tmp_path / "junk"
    bad.write_bytes(b"not a snapshot")
    with pytest.raises(ValueError, match="pynbody cannot read it"):
        load_stars(bad)
