"""End-to-end synthetic sky: image sets, sky.json, reproducibility, CLI."""

import json

import numpy as np
import pandas as pd
import pytest

from galrate.cli import main
from galrate.imageset import ImageSet
from galrate.synth import PROPERTY_COLUMNS, SynthConfig, synth


def _tiny(**kw):
    base = dict(n_observed=6, n_suite=2, projections=2, families=("blue",), levels=(0, 1),
                n_sanity=0, seed=5, workers=1, contact_sheet=False)
    base.update(kw)
    return SynthConfig(**base)


def _pixels(root, name):
    s = ImageSet.open(root / name)
    try:
        return s.rgb(), s.flux()
    finally:
        s.close()


def test_cli_end_to_end(tmp_path):
    out = tmp_path / "sky"
    rc = main(["synth", str(out), "--n-observed", "12", "--n-suite", "4", "--projections",
               "2", "--families", "compact,blue", "--levels", "0,3", "--n-sanity", "2",
               "--seed", "1", "--workers", "1", "--no-progress"])
    assert rc == 0
    sky = json.loads((out / "sky.json").read_text())
    names = [s["name"] for s in sky["sets"]]
    assert names == ["observed", "null", "compact-3", "blue-3", "sanity-photo",
                     "sanity-blank", "sanity-trail", "sanity-bleed", "sanity-column"]
    assert (out / "contact_sheet.png").stat().st_size > 1000
    assert (out / "run-synth.json").exists()
    for entry in sky["sets"]:
        s = ImageSet.open(out / entry["path"])
        assert len(s) == entry["n_images"]
        assert s.rgb().shape == (len(s), 64, 64, 3)
        assert s.metadata["kind"] == "rgb8" and s.metadata["source"] == entry["name"]
        assert (s.manifest["source"] == entry["name"]).all()
        s.close()

    obs = ImageSet.open(out / "observed").manifest
    assert len(obs) == 12 and set(obs["split"]) <= {"train", "val", "test"}
    assert (obs["split"] == "train").sum() == 10
    assert set(PROPERTY_COLUMNS) <= set(obs.columns)
    null = ImageSet.open(out / "null").manifest
    compact = ImageSet.open(out / "compact-3").manifest
    assert len(null) == 8 and sorted(null["projection"].unique()) == [0, 1]
    pd.testing.assert_series_equal(null["galaxy_id"], compact["galaxy_id"])
    np.testing.assert_allclose(compact["r_half_kpc"], 0.5 * null["r_half_kpc"])
    assert (compact["family"] == "compact").all() and (compact["level"] == 3).all()
    assert ImageSet.open(out / "sanity-photo").metadata["has_flux"] is False


def test_pixels_do_not_depend_on_the_number_of_workers(tmp_path):
    sky1 = synth(tmp_path / "w1", _tiny(workers=1, chunk=3))
    synth(tmp_path / "w2", _tiny(workers=2, chunk=2))
    for entry in sky1["sets"]:
        rgb1, flux1 = _pixels(tmp_path / "w1", entry["path"])
        rgb2, flux2 = _pixels(tmp_path / "w2", entry["path"])
        np.testing.assert_array_equal(rgb1, rgb2)
        np.testing.assert_array_equal(flux1, flux2)


def test_same_noise_and_orientation_across_suites(tmp_path):
    synth(tmp_path / "s", _tiny(families=("blue",), levels=(0, 1)))
    null_rgb, null_flux = _pixels(tmp_path / "s", "null")
    blue_rgb, blue_flux = _pixels(tmp_path / "s", "blue-1")
    # blue moves g and i only: the r band is the same image, noise included
    np.testing.assert_array_equal(null_flux[:, 1], blue_flux[:, 1])
    assert not np.array_equal(null_flux[:, 0], blue_flux[:, 0])


def test_seed_changes_pixels(tmp_path):
    synth(tmp_path / "a", _tiny(n_suite=0))
    synth(tmp_path / "b", _tiny(n_suite=0, seed=6))
    assert not np.array_equal(_pixels(tmp_path / "a", "observed")[0],
                              _pixels(tmp_path / "b", "observed")[0])


def test_config_from_toml_and_errors(tmp_path):
    path = tmp_path / "synth.toml"
    path.write_text("[synth]\nn_observed = 5\nfamilies = ['red']\n")
    cfg = SynthConfig.from_toml(path, seed=9)
    assert cfg.n_observed == 5 and cfg.families == ("red",) and cfg.seed == 9
    path.write_text("n_galaxies = 5\n")
    with pytest.raises(ValueError, match="unknown synth settings \\['n_galaxies'\\]"):
        SynthConfig.from_toml(path)
    with pytest.raises(ValueError, match="levels must be among 0, 1, 2, 3"):
        SynthConfig(levels=(5,))
    with pytest.raises(ValueError, match="split must be three non-negative fractions"):
        SynthConfig(split=(0.5, 0.1, 0.1))
