"""Readers: every supported file type decodes to the pixels it was made from."""

import logging

import numpy as np
import pytest
from PIL import Image

from galrate.imageset.core import ImageSetError
from galrate.imageset.readers import (ImageReadError, decode_fits, decode_picture,
                                      read_band_files, read_image, read_image_file,
                                      sniff_text)
from galrate.survey import SDSS


def test_png_rgb_round_trip_is_exact(tmp_path, make):
    rgb = make.rgb(1)
    (tmp_path / "a.png").write_bytes(make.png(rgb))
    image = read_image(tmp_path / "a.png")
    assert image.kind == "rgb" and image.notes == []
    np.testing.assert_array_equal(image.rgb, rgb)


def test_opaque_rgba_drops_alpha(make):
    rgb = make.rgb(2)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    image = decode_picture(make.png(rgba))
    np.testing.assert_array_equal(image.rgb, rgb)
    assert image.notes == ["opaque alpha channel dropped"]


def test_transparent_rgba_is_logged_and_noted(make, caplog):
    rgb = make.rgb(2)
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:16] = 0  # a quarter of the rows transparent
    with caplog.at_level(logging.WARNING, logger="galrate"):
        image = decode_picture(make.png(np.dstack([rgb, alpha])), name="t.png")
    np.testing.assert_array_equal(image.rgb, rgb)
    assert image.notes == ["alpha dropped (25.0% of pixels not opaque)"]
    assert "t.png: alpha channel is not opaque in 25.0% of pixels" in caplog.text


def test_greyscale_is_replicated_with_a_note(make):
    grey = make.rgb(3)[..., 1]
    image = decode_picture(make.png(grey))
    assert image.rgb.shape == (64, 64, 3)
    for c in range(3):
        np.testing.assert_array_equal(image.rgb[..., c], grey)
    assert image.notes == ["greyscale replicated to 3 channels"]


def test_16bit_png_is_scaled_to_8_bits(make):
    values = np.array([[0, 257, 128, 65535], [32896, 32767, 1000, 60000]], np.uint16)
    image = decode_picture(make.png(np.tile(values, (8, 8))))
    # round(v / 257): 0, 1, 0 (0.498), 255, 128, 127 (127.5 - 1/514), 4 (3.89), 233 (233.46)
    expected = np.array([[0, 1, 0, 255], [128, 127, 4, 233]], np.uint8)
    np.testing.assert_array_equal(image.rgb[:2, :4, 0], expected)
    assert "16-bit greyscale scaled to 8 bits" in image.notes[0]


def test_palette_png_is_expanded(make):
    rgb = make.rgb(4)
    pal = Image.fromarray(rgb).quantize(colors=16)
    expected = np.asarray(pal.convert("RGB"))
    import io

    buf = io.BytesIO()
    pal.save(buf, format="PNG")
    image = decode_picture(buf.getvalue())
    np.testing.assert_array_equal(image.rgb, expected)
    assert image.notes == ["palette image expanded to RGB"]


def test_jpeg_round_trip_within_tolerance(tmp_path, make):
    rgb = make.rgb(5)
    (tmp_path / "a.jpg").write_bytes(make.jpeg(rgb, quality=95))
    image = read_image(tmp_path / "a.jpg")
    diff = np.abs(image.rgb.astype(int) - rgb.astype(int))
    # quality 95, no chroma subsampling, on a noisy 64x64 picture: measured mean
    # error 2.6 levels of 255 and 99th percentile 11
    assert diff.mean() < 4.0
    assert np.percentile(diff, 99) < 16
    assert diff.mean() > 0.5  # it did go through the lossy codec


def test_fits_cube_with_header_bands_is_put_in_survey_order(tmp_path, make):
    flux = make.flux(6)  # g, r, i
    cube = flux[[1, 2, 0]]  # stored r, i, g
    make.fits(tmp_path / "c.fits", cube, BAND1="r", BAND2="i", BAND3="g",
              BUNIT="nanomaggy")
    image = read_image(tmp_path / "c.fits", survey="sdss")
    assert image.kind == "flux" and image.bands == ("g", "r", "i")
    np.testing.assert_array_equal(image.flux, flux)
    np.testing.assert_array_equal(image.rgb, SDSS.to_rgb(flux))
    assert image.notes == ["BUNIT=nanomaggy (taken as nanomaggies per pixel)"]


def test_fits_cube_channel_last_gzipped_with_given_bands(tmp_path, make):
    flux = make.flux(7)
    make.fits(tmp_path / "c.fits.gz", np.moveaxis(flux, 0, -1))
    with pytest.raises(ImageReadError, match="no band names"):
        read_image(tmp_path / "c.fits.gz")
    image = read_image(tmp_path / "c.fits.gz", survey=SDSS, bands=["g", "r", "i"])
    np.testing.assert_array_equal(image.flux, flux)


def test_fits_per_band_takes_band_from_header(tmp_path, make):
    flux = make.flux(8)
    paths = {}
    for k, band in enumerate("gri"):
        paths[band] = tmp_path / f"x_{band}.fits"
        make.fits(paths[band], flux[k], FILTER=band)
    # the mapping's order does not matter: the survey order is restored
    image = read_band_files({b: paths[b] for b in "irg"}, survey="sdss")
    np.testing.assert_array_equal(image.flux, flux)
    np.testing.assert_array_equal(image.rgb, SDSS.to_rgb(flux))


def test_fits_header_band_conflict_is_an_error(tmp_path, make):
    make.fits(tmp_path / "x.fits", make.flux(0)[0], FILTER="r")
    with pytest.raises(ImageReadError, match="header band 'r' differs from the given "
                                             "band 'g'"):
        decode_fits(tmp_path / "x.fits", "g")


def test_npy_picture_and_flux(tmp_path, make):
    np.save(tmp_path / "p.npy", make.rgb(9))
    np.save(tmp_path / "f.npy", make.flux(9))
    np.testing.assert_array_equal(read_image(tmp_path / "p.npy").rgb, make.rgb(9))
    flux = read_image(tmp_path / "f.npy", survey="sdss")
    assert flux.kind == "flux"
    np.testing.assert_array_equal(flux.flux, make.flux(9))
    np.testing.assert_array_equal(flux.rgb, make.rgb(9))


def test_read_image_file_kinds(tmp_path, make):
    (tmp_path / "a.png").write_bytes(make.png(make.rgb(1)))
    with pytest.raises(ImageSetError, match=r"a\.png: a \.png picture has no flux"):
        read_image_file(tmp_path / "a.png", kind="flux")
    make.fits(tmp_path / "c.fits", make.flux(1), BAND1="g", BAND2="r", BAND3="i")
    with pytest.raises(ImageSetError, match="needs the image set's survey"):
        read_image_file(tmp_path / "c.fits", kind="rgb")
    np.testing.assert_array_equal(
        read_image_file(tmp_path / "c.fits", kind="rgb", survey=SDSS.to_dict()),
        make.rgb(1))


@pytest.mark.parametrize("head, reason", [
    (b"<!DOCTYPE html><html><body>503</body></html>", "HTML page"),
    (b"  <html>", "HTML page"),
    (b"<?xml version='1.0'?><error/>", "XML"),
    (b"", "empty file"),
    (b"\x89PNG\r\n\x1a\n", None),
])
def test_sniff_text(head, reason):
    got = sniff_text(head)
    assert (got is None) if reason is None else (reason in got)


def test_reader_refuses_to_run_when_pil_accepts_truncated_files(make, monkeypatch):
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(ImageSetError, match="LOAD_TRUNCATED_IMAGES is True"):
        decode_picture(make.png(make.rgb(0)))
