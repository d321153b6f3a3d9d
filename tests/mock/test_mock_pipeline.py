"""The folder pipeline and ``galrate mock``: image set, rejects, reproducibility."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits

from galrate.cli import main
from galrate.imageset import ImageSet
from galrate.mock import load_config
from galrate.mock.fitsmaps import read_band_maps
from galrate.survey import SDSS

from mock_disc import write_disc_tipsy


def _write_cube(path, scale_kpc=0.2, n=121):
    y, x = np.indices((n, n)) - (n - 1) / 2
    disc = 1e8 * np.exp(-np.hypot(x, y) * scale_kpc / 2.0)  # Lsun/kpc^2
    hdu = fits.PrimaryHDU(np.stack([0.6 * disc, disc, 1.2 * disc]).astype(np.float32))
    hdu.header["BANDS"] = "g,r,i"
    hdu.header["PIXKPC"] = scale_kpc
    hdu.header["BUNIT"] = "Lsun/kpc2"
    hdu.header["LOGMSTAR"] = 10.2
    hdu.writeto(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sims")
    write_disc_tipsy(folder, name="g1", n=2000, seed=1)
    write_disc_tipsy(folder, name="g2", n=2000, seed=2, tilt_deg=30)
    _write_cube(folder / "cube7.fits")
    (folder / "broken.bin").write_bytes(b"\x00" * 64)
    return folder


def _config(tmp_path, **extra):
    text = ("seed = 3\nsource = \"toy\"\n[redshift]\nvalue = 0.06\n"
            "[projections]\norientation = [\"faceon\", \"random\"]\nn_random = 2\n")
    text += "".join(f"{k} = {v}\n" for k, v in extra.items())
    path = tmp_path / "mock.toml"
    path.write_text(text)
    return path


def test_cli_writes_an_image_set_with_rejects(inputs, tmp_path):
    out = tmp_path / "out"
    rc = main(["mock", str(inputs), "--out", str(out), "--config",
               str(_config(tmp_path)), "--workers", "2", "--no-progress"])
    assert rc == 0
    s = ImageSet.open(out)
    meta = json.loads((out / "imageset.json").read_text())
    assert meta["kind"] == "rgb8" and meta["has_flux"] is True
    assert meta["survey"] == json.loads(json.dumps(SDSS.to_dict()))
    assert meta["size"] == 64 and meta["bands"] == ["g", "r", "i"]
    assert meta["rgb_bands"] == ["i", "r", "g"]
    # two snapshots x 3 projections + one FITS cube
    assert len(s) == 7
    assert sorted(s.manifest["galaxy_id"].unique()) == ["cube7", "g1", "g2"]
    assert set(s.manifest.loc[s.manifest.galaxy_id == "g1", "projection"]) == {0, 1, 2}
    assert (s.manifest["source"] == "toy").all()
    assert s.rgb().shape == (7, 64, 64, 3) and s.flux().shape == (7, 3, 64, 64)
    for col in ("log_mstar", "sfr_100", "sfr_500", "metallicity", "age", "b_v",
                "redshift", "inclination", "r_half_arcsec"):
        assert col in s.manifest.columns
    np.testing.assert_allclose(s.manifest["redshift"], 0.06)
    rejects = s.rejects()
    assert list(rejects["file"].str.rsplit("/", n=1).str[-1]) == ["broken.bin"]
    assert "pynbody cannot read it" in rejects["reason"].iloc[0]
    assert (out / "run-mock.json").exists()

    serial = tmp_path / "serial"
    assert main(["mock", str(inputs), "--out", str(serial), "--config",
                 str(_config(tmp_path)), "--no-progress"]) == 0
    np.testing.assert_array_equal(ImageSet.open(serial).flux(), s.flux())


def test_catalogue_redshifts_follow_stellar_mass(inputs, tmp_path):
    import pandas as pd

    cat = tmp_path / "observed.parquet"
    pd.DataFrame({"log_mstar": np.r_[np.full(40, 10.0), np.full(40, 11.5)],
                  "redshift": np.r_[np.full(40, 0.03), np.full(40, 0.15)]}).to_parquet(cat)
    cfg = load_config({"seed": 1, "redshift": {"mode": "catalogue",
                                               "catalogue": str(cat)}})
    from galrate.mock import mock_folder

    s = mock_folder(inputs, tmp_path / "out", cfg)
    np.testing.assert_allclose(s.manifest["redshift"], 0.03)


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="unknown key 'redshfit'"):
        load_config({"redshfit": 0.1})
    with pytest.raises(ValueError, match="unknown key 'valu' in \\[redshift\\]"):
        load_config({"redshift": {"valu": 0.1}})
    with pytest.raises(ValueError, match="needs \\[redshift\\] catalogue"):
        load_config({"redshift": {"mode": "catalogue"}})
    assert main(["mock", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 2


def test_fits_headers_give_scale_unit_and_bands(tmp_path):
    _write_cube(tmp_path / "c.fits", scale_kpc=0.25)
    bm = read_band_maps(tmp_path / "c.fits")
    assert sorted(bm.maps) == ["g", "i", "r"]
    assert bm.pixel_scale_kpc == 0.25 and bm.unit == "Lsun/kpc2"
    for band in "gr":
        hdu = fits.PrimaryHDU(np.ones((8, 8)))
        hdu.header["CDELT1"] = 0.1 / 3600
        hdu.header["CUNIT1"] = "deg"
        hdu.header["BUNIT"] = "nmgy/pixel"
        hdu.writeto(tmp_path / f"gal_{band}.fits")
    bm = read_band_maps([tmp_path / "gal_g.fits", tmp_path / "gal_r.fits"])
    assert sorted(bm.maps) == ["g", "r"]
    np.testing.assert_allclose(bm.pixel_scale_arcsec, 0.1)
