"""Pixel readers: PNG/JPEG, FITS and NumPy arrays.

Every reader returns a :class:`DecodedImage`: an 8-bit RGB picture
``(H, W, 3)`` and, for flux inputs, the band images ``(n_bands, H, W)`` in
nanomaggies per pixel, plus the notes that record every conversion made on
the way (greyscale replicated, 16 bits scaled to 8, alpha dropped...).

Two kinds of input exist:

* ``"rgb"``: PNG, JPEG and ``(H, W, 3)`` uint8 ``.npy`` files. The picture
  is used as it is; there is no flux.
* ``"flux"``: FITS files and float ``(C, H, W)`` ``.npy`` files. The band
  images are kept, and the RGB picture is made with the survey's colour
  recipe (:meth:`galrate.survey.Survey.to_rgb`), so that it matches the
  synthetic sky and the mock observer pixel for pixel.

A file that cannot be decoded raises :class:`ImageReadError`; its message is
the reason recorded in the rejects table.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..survey import Survey, load_survey
from .core import ImageSetError

log = logging.getLogger(__name__)

__all__ = ["DecodedImage", "ImageReadError", "IMAGE_SUFFIXES", "FLUX_SUFFIXES",
           "image_suffix", "input_kind", "sniff_text", "decode_picture",
           "decode_fits", "read_image", "read_band_files", "read_image_file"]

#: file endings the readers understand (lower case)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".fits", ".fits.gz", ".fit", ".fts", ".npy")
#: file endings whose content is flux (band images), not a picture
FLUX_SUFFIXES = (".fits", ".fits.gz", ".fit", ".fts")

#: header keywords that name the band of a single-band FITS image, in order of trust
_BAND_KEYS = ("FILTER", "BAND", "FILTNAME")


class ImageReadError(ValueError):
    """A file that is not a usable image; the message is the reason."""


@dataclass
class DecodedImage:
    """One decoded image.

    Attributes
    ----------
    rgb : ndarray of uint8, shape (H, W, 3), or None
        The picture; None for a flux image read without a survey.
    flux : ndarray of float32, shape (n_bands, H, W), or None
        Band images in nanomaggies per pixel, in the order of ``bands``.
    kind : str
        ``"rgb"`` or ``"flux"``.
    bands : tuple of str
        Band names of ``flux`` (empty for pictures).
    notes : list of str
        Conversions applied while reading, for the manifest's ``notes``.
    """

    rgb: np.ndarray | None
    flux: np.ndarray | None = None
    kind: str = "rgb"
    bands: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------
# helpers

def image_suffix(path: str | Path) -> str:
    """The reader-relevant ending of ``path`` in lower case (``.fits.gz`` kept whole)."""
    name = Path(path).name.lower()
    if name.endswith(".fits.gz"):
        return ".fits.gz"
    return Path(name).suffix


def input_kind(path: str | Path) -> str:
    """``"rgb"`` or ``"flux"`` for a file, from its ending (and a .npy's dtype).

    Raises
    ------
    ImageReadError
        Unknown ending or unreadable .npy header.
    """
    suffix = image_suffix(path)
    if suffix in FLUX_SUFFIXES:
        return "flux"
    if suffix == ".npy":
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ImageReadError(f"not a readable .npy array: {exc}") from exc
        return "rgb" if arr.dtype == np.uint8 else "flux"
    if suffix in IMAGE_SUFFIXES:
        return "rgb"
    raise ImageReadError(f"unsupported file type {suffix or '(none)'!r}; "
                         f"supported: {', '.join(IMAGE_SUFFIXES)}")


def sniff_text(head: bytes) -> str | None:
    """Describe ``head`` if it is HTML, XML or plain text rather than image bytes.

    Parameters
    ----------
    head : bytes
        The first few hundred bytes of a file or HTTP body.

    Returns
    -------
    str or None
        A reason such as ``"HTML page, not an image"``, or None.
    """
    start = head.lstrip()[:512].lower()
    if not start:
        return "empty file"
    if start.startswith((b"<!doctype html", b"<html")) or b"<html" in start \
            or b"<body" in start:
        return "HTML page, not an image"
    if start.startswith(b"<?xml") or start.startswith(b"<"):
        return "XML/markup text, not an image"
    if start.startswith(b"{") or start.startswith(b"["):
        return "JSON text, not an image"
    return None


def _survey_or_none(survey) -> Survey | None:
    return None if survey is None else load_survey(survey)


# ----------------------------------------------------------------------
# pictures (PNG, JPEG)

def decode_picture(data: bytes | str | Path, name: str = "image") -> DecodedImage:
    """Decode a PNG or JPEG into an 8-bit RGB picture.

    Parameters
    ----------
    data : bytes or path
        The encoded image, or the file holding it.
    name : str
        What to call it in log lines.

    Returns
    -------
    DecodedImage
        ``kind="rgb"``, ``rgb`` ``(H, W, 3)`` uint8.

    Raises
    ------
    ImageReadError
        Not an image, truncated, corrupt or of an unsupported pixel mode.
    ImageSetError
        PIL is configured to accept truncated files
        (``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is True): a truncated image
        would then pass as valid, so reading refuses to run.

    Notes
    -----
    Conversions, each recorded in ``notes``:

    * RGBA / LA: the alpha channel is dropped (logged as a warning when it
      is not fully opaque, since transparent pixels then carry colours the
      survey never recorded);
    * greyscale (L, 1): the grey level is replicated to the three channels;
    * 16-bit greyscale (I;16, I): scaled to 8 bits as ``round(v / 257)``,
      which maps 0..65535 onto 0..255;
    * palette (P): expanded to RGB through the palette.
    """
    from PIL import Image, ImageFile, UnidentifiedImageError

    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise ImageSetError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True: truncated "
                            "images would be accepted; set it back to False")
    if isinstance(data, (str, Path)):
        try:
            data = Path(data).read_bytes()
        except OSError as exc:
            raise ImageReadError(f"cannot read file: {exc}") from exc
    reason = sniff_text(data[:1024])
    if reason:
        raise ImageReadError(reason)

    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format
            if fmt == "PNG":
                probe.verify()  # chunk CRCs and the IEND marker
        img = Image.open(io.BytesIO(data))
        img.load()
    except UnidentifiedImageError:
        raise ImageReadError("not a recognised image format") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if "truncated" in str(exc).lower() or isinstance(exc, EOFError):
            raise ImageReadError(f"truncated {fmt or 'image'} file ({exc})") from exc
        raise ImageReadError(f"corrupt {fmt or 'image'} data: {exc}") from exc
    if fmt not in ("PNG", "JPEG"):
        log.debug("%s: decoding %s image with PIL", name, fmt)
    return _picture_to_rgb(img, name)


def _picture_to_rgb(img, name: str) -> DecodedImage:
    notes: list[str] = []
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        notes.append("palette image expanded to RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA"):
        arr = np.asarray(img)
        alpha = arr[..., -1]
        if alpha.min() < 255:
            frac = float(np.mean(alpha < 255))
            log.warning("%s: alpha channel is not opaque in %.1f%% of pixels; "
                        "alpha dropped", name, 100 * frac)
            notes.append(f"alpha dropped ({100 * frac:.1f}% of pixels not opaque)")
        else:
            notes.append("opaque alpha channel dropped")
        arr = arr[..., :-1]
        if arr.shape[-1] == 1:
            arr = np.repeat(arr, 3, axis=-1)
            notes.append("greyscale replicated to 3 channels")
        return DecodedImage(rgb=np.ascontiguousarray(arr, dtype=np.uint8), notes=notes)
    if mode == "RGB":
        return DecodedImage(rgb=np.asarray(img, dtype=np.uint8).copy(), notes=notes)
    if mode in ("L", "1"):
        grey = np.asarray(img.convert("L"), dtype=np.uint8)
        notes.append("greyscale replicated to 3 channels")
        return DecodedImage(rgb=np.repeat(grey[..., None], 3, axis=-1), notes=notes)
    if mode.startswith("I;16") or mode == "I":
        grey = np.asarray(img).astype(np.int64)
        if grey.min() < 0 or grey.max() > 65535:
            raise ImageReadError(f"integer image with values outside 0..65535 "
                                 f"(mode {mode})")
        grey8 = np.floor(grey / 257.0 + 0.5).astype(np.uint8)
        notes.append("16-bit greyscale scaled to 8 bits (v / 257) and replicated "
                     "to 3 channels")
        return DecodedImage(rgb=np.repeat(grey8[..., None], 3, axis=-1), notes=notes)
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        notes.append(f"{mode} converted to RGB")
        return DecodedImage(rgb=np.asarray(img.convert("RGB"), dtype=np.uint8).copy(),
                            notes=notes)
    raise ImageReadError(f"unsupported pixel mode {mode!r}")


# ----------------------------------------------------------------------
# FITS

def _header_band(header) -> str | None:
    for key in _BAND_KEYS:
        value = header.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _cube_bands(header, n: int) -> tuple[str, ...] | None:
    for stem in ("BAND", "FILTER"):
        names = [header.get(f"{stem}{k + 1}") for k in range(n)]
        if all(isinstance(v, str) and v.strip() for v in names):
            return tuple(v.strip() for v in names)
    value = _header_band(header)
    if value and len(value.replace(",", " ").split()) == n:
        return tuple(value.replace(",", " ").split())
    return None


def decode_fits(data: bytes | str | Path, bands: Sequence[str] | str | None = None
                ) -> DecodedImage:
    """Read band images from a FITS file (a cube or a single band).

    Parameters
    ----------
    data : bytes or path
        FITS content or file (``.fits``, ``.fits.gz``).
    bands : str or sequence of str, optional
        Band names when the header does not give them: one name for a
        single-band image, one per plane for a cube. Header keywords win;
        a header that disagrees with ``bands`` is an error.

    Returns
    -------
    DecodedImage
        ``kind="flux"``, ``flux`` ``(n_bands, H, W)`` float32 (no RGB yet).

    Raises
    ------
    ImageReadError
        No image HDU, unsupported shape, unknown or conflicting band names.

    Notes
    -----
    The first HDU holding a 2-D or 3-D array is used. A cube may be stored
    ``(C, H, W)`` or ``(H, W, C)`` with C <= 5; band names come from
    ``BAND1..BANDn`` or ``FILTER1..FILTERn`` (or a ``FILTER`` value listing
    them). A 2-D image's band comes from ``FILTER``, ``BAND`` or ``FILTNAME``.
    Pixel values are taken as nanomaggies per pixel, the unit of SDSS
    corrected frames; ``BUNIT``, when present, is recorded in the notes and
    not converted.
    """
    from astropy.io import fits

    given = (bands,) if isinstance(bands, str) else \
        (tuple(bands) if bands is not None else None)
    try:
        src = io.BytesIO(data) if isinstance(data, bytes) else str(data)
        with fits.open(src, memmap=False) as hdul:
            hdu = next((h for h in hdul if h.data is not None
                        and getattr(h.data, "ndim", 0) in (2, 3)), None)
            if hdu is None:
                raise ImageReadError("FITS file has no 2-D or 3-D image HDU")
            array = np.array(hdu.data, dtype=np.float32)
            header = hdu.header.copy()
    except ImageReadError:
        raise
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError...
        text = str(exc)
        reason = "truncated FITS file" if "truncat" in text.lower() else "corrupt FITS"
        raise ImageReadError(f"{reason}: {text}") from exc

    notes: list[str] = []
    if header.get("BUNIT"):
        notes.append(f"BUNIT={header['BUNIT']!s} (taken as nanomaggies per pixel)")
    if array.ndim == 2:
        found = _header_band(header)
        names = (found,) if found else given
        if names is None or len(names) != 1:
            raise ImageReadError("single-band FITS without a FILTER/BAND keyword; "
                                 "give the band name")
        if found and given and given != (found,):
            raise ImageReadError(f"header band {found!r} differs from the given "
                                 f"band {given[0]!r}")
        return DecodedImage(rgb=None, flux=array[None], kind="flux", bands=names,
                            notes=notes)

    if array.shape[0] <= 5 and array.shape[0] < array.shape[-1]:
        cube = array
    elif array.shape[-1] <= 5:
        cube = np.moveaxis(array, -1, 0)
        notes.append("FITS cube (H, W, C) moved to (C, H, W)")
    else:
        raise ImageReadError(f"FITS cube of shape {array.shape}: expected (C, H, W) or "
                             f"(H, W, C) with C <= 5 bands")
    n = cube.shape[0]
    found = _cube_bands(header, n)
    names = found or given
    if names is None or len(names) != n:
        raise ImageReadError(f"FITS cube with {n} planes but no band names "
                             f"(BAND1..BAND{n} or FILTER1..FILTER{n}); give them")
    if found and given and tuple(given) != tuple(found):
        raise ImageReadError(f"header bands {found} differ from the given {given}")
    return DecodedImage(rgb=None, flux=np.ascontiguousarray(cube), kind="flux",
                        bands=tuple(names), notes=notes)


# ----------------------------------------------------------------------
# NumPy arrays

def _decode_npy(path: Path, bands: Sequence[str] | None) -> DecodedImage:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ImageReadError(f"not a readable .npy array: {exc}") from exc
    if arr.dtype == np.uint8:
        if arr.ndim == 3 and arr.shape[-1] == 3:
            return DecodedImage(rgb=np.ascontiguousarray(arr))
        if arr.ndim == 2:
            return DecodedImage(rgb=np.repeat(arr[..., None], 3, axis=-1),
                                notes=["greyscale replicated to 3 channels"])
        raise ImageReadError(f"uint8 array of shape {arr.shape}: expected (H, W, 3)")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ImageReadError(f"array of dtype {arr.dtype}: expected uint8 (H, W, 3) "
                             f"pictures or float (C, H, W) flux")
    if arr.ndim != 3 or arr.shape[0] > 5:
        raise ImageReadError(f"float array of shape {arr.shape}: expected flux "
                             f"(C, H, W) with C <= 5 bands")
    names = tuple(bands) if bands is not None else ()
    if names and len(names) != arr.shape[0]:
        raise ImageReadError(f"{arr.shape[0]} planes but {len(names)} band names")
    return DecodedImage(rgb=None, flux=arr.astype(np.float32), kind="flux", bands=names)


# ----------------------------------------------------------------------
# survey order and colour

def _to_survey(image: DecodedImage, survey: Survey | None) -> DecodedImage:
    """Reorder flux to the survey's bands and add the survey RGB picture."""
    if image.kind != "flux" or survey is None:
        return image
    names = image.bands or survey.band_names[:image.flux.shape[0]]
    if len(names) != len(survey.bands) or set(names) != set(survey.band_names):
        raise ImageReadError(f"bands {tuple(names)} do not match the survey "
                             f"{survey.name!r} bands {survey.band_names}")
    order = [list(names).index(b) for b in survey.band_names]
    flux = np.ascontiguousarray(image.flux[order])
    bad = ~np.isfinite(flux)
    if bad.any():
        # the colour recipe is undefined there; validation rejects such images
        rgb = survey.to_rgb(np.where(bad, 0.0, flux))
    else:
        rgb = survey.to_rgb(flux)
    return DecodedImage(rgb=rgb, flux=flux, kind="flux", bands=survey.band_names,
                        notes=image.notes)


def read_image(path: str | Path, *, survey: Survey | str | Mapping | None = None,
               bands: Sequence[str] | str | None = None) -> DecodedImage:
    """Read one image file of any supported type.

    Parameters
    ----------
    path : path
        PNG, JPEG, FITS (``.fits``, ``.fits.gz``) or ``.npy`` file.
    survey : Survey, name or dict, optional
        For flux inputs: the bands are put in the survey's order and the RGB
        picture is made with the survey's colour recipe. Without a survey a
        flux image has ``rgb=None``.
    bands : str or sequence of str, optional
        Band names of a flux input whose file does not name them.

    Raises
    ------
    ImageReadError
        The file is not a usable image (the message is the reason).
    """
    path = Path(path)
    suffix = image_suffix(path)
    if not path.is_file():
        raise ImageReadError("file not found")
    if suffix in (".png", ".jpg", ".jpeg"):
        return decode_picture(path, name=str(path))
    if suffix in FLUX_SUFFIXES:
        image = decode_fits(path, bands)
    elif suffix == ".npy":
        image = _decode_npy(path, None if isinstance(bands, str) else bands)
    else:
        raise ImageReadError(f"unsupported file type {suffix or '(none)'!r}; "
                             f"supported: {', '.join(IMAGE_SUFFIXES)}")
    return _to_survey(image, _survey_or_none(survey))


def read_band_files(paths: Mapping[str, str | Path], *,
                    survey: Survey | str | Mapping | None = None) -> DecodedImage:
    """Read one galaxy stored as one single-band FITS file per band.

    Parameters
    ----------
    paths : mapping of band name -> path
        The band name is used when the header has no FILTER/BAND keyword;
        a header naming another band is an error.
    survey : Survey, name or dict, optional
        Puts the bands in survey order and adds the survey RGB picture.

    Raises
    ------
    ImageReadError
        A file is unreadable, not single-band, or the images differ in shape.
    """
    planes, names, notes = [], [], []
    for band, p in paths.items():
        try:
            image = decode_fits(p, band) if image_suffix(p) in FLUX_SUFFIXES \
                else _decode_npy(Path(p), (band,))
        except ImageReadError as exc:
            raise ImageReadError(f"band {band} ({Path(p).name}): {exc}") from exc
        if image.flux is None or image.flux.shape[0] != 1:
            raise ImageReadError(f"band {band} ({Path(p).name}): expected one band, "
                                 f"got {0 if image.flux is None else image.flux.shape[0]}")
        planes.append(image.flux[0])
        names.append(image.bands[0] if image.bands else band)
        notes += [f"{band}: {n}" for n in image.notes]
    shapes = {pl.shape for pl in planes}
    if len(shapes) != 1:
        raise ImageReadError(f"band images differ in shape: {sorted(shapes)}")
    merged = DecodedImage(rgb=None, flux=np.stack(planes), kind="flux",
                          bands=tuple(names), notes=notes)
    return _to_survey(merged, _survey_or_none(survey))


def read_image_file(path: str | Path, kind: str = "rgb", *,
                    survey: Survey | str | Mapping | None = None) -> np.ndarray:
    """Pixels of one file, as stored in an image set.

    Parameters
    ----------
    path : path
        The image file.
    kind : {"rgb", "flux"}
        ``"rgb"``: uint8 ``(H, W, 3)``; ``"flux"``: float32 ``(n_bands, H, W)``
        nanomaggies per pixel, survey band order when ``survey`` is given.
    survey : Survey, name or dict, optional
        Needed for the RGB picture of a flux file (the image set's survey).

    Raises
    ------
    ImageSetError
        The file cannot be read, or the requested kind is not in it.
    """
    if kind not in ("rgb", "flux"):
        raise ValueError(f"kind must be 'rgb' or 'flux'; got {kind!r}")
    try:
        image = read_image(path, survey=survey)
    except ImageReadError as exc:
        raise ImageSetError(f"{path}: {exc}") from exc
    if kind == "flux":
        if image.flux is None:
            raise ImageSetError(f"{path}: a {image_suffix(path)} picture has no flux "
                                f"images; only FITS and float .npy files do")
        return image.flux
    if image.rgb is None:
        raise ImageSetError(f"{path}: a flux image needs the image set's survey to "
                            f"make its RGB picture; none was given")
    return image.rgb
