"""Small image files of every supported kind, made on the fly."""

import io

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from galrate.survey import SDSS


def galaxy_flux(seed: int = 0, size: int = 64) -> np.ndarray:
    """(3, size, size) float32 nanomaggies: a round galaxy plus sky noise, g r i."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    profile = np.exp(-np.hypot(x, y) / 4.0)
    amps = np.array([0.6, 1.0, 1.3])[:, None, None]
    noise = rng.normal(0, 0.02, (3, size, size))
    return (amps * profile + noise).astype(np.float32)


def galaxy_rgb(seed: int = 0, size: int = 64) -> np.ndarray:
    """(size, size, 3) uint8 picture of :func:`galaxy_flux` with the SDSS recipe."""
    return SDSS.to_rgb(galaxy_flux(seed, size))


def png_bytes(array: np.ndarray, mode: str | None = None, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG", **kw) if mode else \
        Image.fromarray(array).save(buf, format="PNG", **kw)
    return buf.getvalue()


def jpeg_bytes(array: np.ndarray, quality: int = 95, subsampling: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=quality,
                                subsampling=subsampling)
    return buf.getvalue()


def write_fits(path, data, **header) -> None:
    hdu = fits.PrimaryHDU(np.asarray(data, dtype=np.float32))
    for key, value in header.items():
        hdu.header[key] = value
    hdu.writeto(path, overwrite=True)


@pytest.fixture
def make():
    """Namespace of the builders above, for tests."""

    class Make:
        flux = staticmethod(galaxy_flux)
        rgb = staticmethod(galaxy_rgb)
        png = staticmethod(png_bytes)
        jpeg = staticmethod(jpeg_bytes)
        fits = staticmethod(write_fits)

    return Make
