"""Reading idealised band maps from FITS files.

A galaxy is either one cube (``NAXIS3`` = number of bands) or one 2-d image
per band. The header keywords read are:

=============  ==========================================================
``PIXKPC``     physical pixel size, kpc per pixel
``PIXSCALE``   angular pixel size, arcsec per pixel
``CDELT1``     with ``CUNIT1`` = ``kpc``, ``arcsec`` or ``deg``: the same
``BAND``       band of a 2-d image (``FILTER`` is accepted too)
``BANDS``      comma-separated bands of a cube, in plane order (or
               ``BAND1``, ``BAND2``...)
``BUNIT``      ``mag/arcsec2``, ``Lsun/kpc2`` or ``nmgy/pixel``
=============  ==========================================================

Values given in the call (or the mock configuration) override the header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..imageset.core import ImageSetError

__all__ = ["BandMaps", "read_band_maps", "FITS_SUFFIXES", "group_fits_files"]

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")


@dataclass
class BandMaps:
    """Band maps with the pixel scale and unit read from the headers."""

    maps: dict[str, np.ndarray]
    pixel_scale_kpc: float | None
    pixel_scale_arcsec: float | None
    unit: str | None


def is_fits(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in FITS_SUFFIXES)


def _strip_fits(name: str) -> str:
    for s in sorted(FITS_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(s):
            return name[: -len(s)]
    return name


def _scale_from_header(header) -> tuple[float | None, float | None]:
    kpc = header.get("PIXKPC")
    arcsec = header.get("PIXSCALE")
    if kpc is None and arcsec is None and "CDELT1" in header:
        step = abs(float(header["CDELT1"]))
        unit = str(header.get("CUNIT1", "")).strip().lower()
        if unit == "kpc":
            kpc = step
        elif unit in ("arcsec", "asec"):
            arcsec = step
        elif unit in ("deg", "degree", ""):
            arcsec = step * 3600.0
    return (float(kpc) if kpc is not None else None,
            float(arcsec) if arcsec is not None else None)


def _cube_bands(header, n: int, default: Sequence[str]) -> list[str]:
    if "BANDS" in header:
        bands = [b.strip() for b in str(header["BANDS"]).split(",") if b.strip()]
    elif "BAND1" in header:
        bands = [str(header.get(f"BAND{k + 1}", "")).strip() for k in range(n)]
    else:
        bands = list(default)
    if len(bands) != n or not all(bands):
        raise ImageSetError(f"cube has {n} planes but bands {bands}; set BANDS='g,r,i'")
    return bands


def read_band_maps(paths: str | Path | Sequence[str | Path],
                   default_bands: Sequence[str] = ("g", "r", "i")) -> BandMaps:
    """Read one galaxy's band maps from a FITS cube or per-band images.

    Parameters
    ----------
    paths : path or sequence of paths
        One cube, or one 2-d image per band (``BAND``/``FILTER`` in each
        header, or the band as the file name's last ``_`` part, e.g.
        ``gal07_r.fits``).
    default_bands : sequence of str
        Plane order of a cube whose header names no bands.

    Raises
    ------
    ImageSetError
        Unreadable file, no image data, unknown band, inconsistent scales.
    """
    from astropy.io import fits

    if isinstance(paths, (str, Path)):
        paths = [paths]
    maps: dict[str, np.ndarray] = {}
    kpc = arcsec = unit = None
    for path in map(Path, paths):
        try:
            with fits.open(path, memmap=False) as hdul:
                hdu = next((h for h in hdul if getattr(h, "data", None) is not None
                            and h.data.ndim >= 2), None)
                if hdu is None:
                    raise ImageSetError(f"{path}: no image data in any HDU")
                data = np.asarray(hdu.data, dtype=np.float64)
                header = hdu.header
        except ImageSetError:
            raise
        except Exception as exc:  # astropy raises OSError, ValueError, TypeError...
            raise ImageSetError(f"{path}: cannot read FITS: {exc}") from exc
        k, a = _scale_from_header(header)
        kpc, arcsec = kpc or k, arcsec or a
        unit = unit or header.get("BUNIT")
        if data.ndim == 3:
            for band, plane in zip(_cube_bands(header, data.shape[0], default_bands), data):
                maps[band] = plane
        elif data.ndim == 2:
            band = header.get("BAND") or header.get("FILTER")
            if band is None:
                match = re.search(r"_([A-Za-z])$", _strip_fits(path.name))
                band = match.group(1) if match else None
            if band is None:
                raise ImageSetError(f"{path}: 2-d image without BAND/FILTER keyword "
                                    "or a '_<band>' file-name suffix")
            maps[str(band).strip()] = data
        else:
            raise ImageSetError(f"{path}: image has {data.ndim} dimensions; expected 2 "
                                "(one band) or 3 (bands, y, x)")
    return BandMaps(maps=maps, pixel_scale_kpc=kpc, pixel_scale_arcsec=arcsec,
                    unit=str(unit).strip() if unit is not None else None)


def group_fits_files(paths: Sequence[Path]) -> dict[str, list[Path]]:
    """Group FITS files by galaxy: ``gal07_g.fits`` and ``gal07_r.fits`` -> ``gal07``.

    A file whose name does not end in ``_<one letter>`` is a galaxy of its own
    (a cube).
    """
    groups: dict[str, list[Path]] = {}
    for p in sorted(paths):
        stem = _strip_fits(p.name)
        match = re.fullmatch(r"(.+)_([A-Za-z])", stem)
        key = match.group(1) if match else stem
        groups.setdefault(key, []).append(p)
    return groups
