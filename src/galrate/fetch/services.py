"""Cutout services: how to ask for one galaxy's pixels and how to check the answer.

Two services are built in:

* :class:`SkyServerJPEG` - the SDSS SkyServer ``ImgCutout/getjpeg`` service,
  which serves the colour JPEG cutouts used by Jin et al. (2024): one
  request per galaxy, ``ra``, ``dec`` (degrees), ``scale`` (arcsec/pixel),
  ``width`` and ``height`` (pixels).
* :class:`Hips2Fits` - a hips2fits-like service cutting FITS images out of
  HiPS surveys: one request per band (``hips=CDS/P/SDSS9/g`` ...), ``ra``,
  ``dec``, ``fov`` (degrees), ``width``, ``height``, ``projection=TAN``,
  ``format=fits``. The band images feed the FITS path of the image set.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..imageset.readers import ImageReadError, decode_fits, decode_picture, sniff_text
from ..imageset.validate import check_flux, check_rgb

__all__ = ["CutoutRequest", "Verdict", "SkyServerJPEG", "Hips2Fits", "make_service",
           "SERVICES"]


@dataclass(frozen=True)
class CutoutRequest:
    """One HTTP request of a galaxy: ``key`` is "" or the band, ``filename``
    is relative to the cutouts folder."""

    key: str
    url: str
    params: dict
    filename: str


@dataclass(frozen=True)
class Verdict:
    """The check of a body: ``reason`` None when good; ``retry`` when a later
    run may get a good answer (server error pages), False when the content
    itself is unusable (blank, wrong size, undecodable)."""

    reason: str | None
    retry: bool = False


def _text_reason(body: bytes, content_type: str) -> str | None:
    reason = sniff_text(body[:1024])
    ctype = (content_type or "").split(";")[0].strip().lower()
    if reason:
        return f"{reason} (content-type {ctype or 'missing'})"
    if ctype.startswith("text/") or "html" in ctype or "json" in ctype:
        return f"content-type {ctype}, not an image"
    return None


class SkyServerJPEG:
    """The SkyServer JPEG cutout service (SDSS DR17 by default).

    Parameters
    ----------
    base_url : str, optional
        Service endpoint; default
        ``https://skyserver.sdss.org/{release}/SkyServerWS/ImgCutout/getjpeg``.
    release : str
        Data release in the default URL (``"DR17"``).
    size : int
        Cutout side in pixels (``width`` = ``height``).
    scale : float
        Arcsec per pixel; 0.396 is the native SDSS scale.
    """

    name = "skyserver"
    kind = "jpeg"

    def __init__(self, base_url: str | None = None, release: str = "DR17", size: int = 64,
                 scale: float = 0.396):
        self.base_url = base_url or (f"https://skyserver.sdss.org/{release.lower()}/"
                                     f"SkyServerWS/ImgCutout/getjpeg")
        self.release, self.size, self.scale = release, int(size), float(scale)
        self.keys = ("",)

    def requests(self, stem: str, ra: float, dec: float) -> list[CutoutRequest]:
        params = {"ra": f"{ra:.7f}", "dec": f"{dec:.7f}", "scale": f"{self.scale:g}",
                  "width": self.size, "height": self.size}
        return [CutoutRequest("", self.base_url, params, f"{stem}.jpg")]

    def check(self, body: bytes, content_type: str, key: str = "") -> Verdict:
        reason = _text_reason(body, content_type)
        if reason:
            return Verdict(reason, retry=True)
        try:
            image = decode_picture(body)
        except ImageReadError as exc:
            return Verdict(str(exc), retry="truncated" in str(exc))
        reason = check_rgb(image.rgb, self.size)
        return Verdict(reason)

    def describe(self) -> dict:
        return {"service": self.name, "base_url": self.base_url, "release": self.release,
                "size": self.size, "scale_arcsec": self.scale}


class Hips2Fits:
    """A hips2fits-like FITS cutout service, one request per band.

    Parameters
    ----------
    base_url : str, optional
        Service endpoint; default
        ``https://alasky.cds.unistra.fr/hips-image-services/hips2fits``.
    hips : str
        HiPS identifier with ``{band}`` standing for the band name.
    bands : sequence of str
        Bands to fetch (the survey's).
    size : int
        Cutout side in pixels.
    scale : float
        Arcsec per pixel; the field of view is ``size * scale / 3600`` degrees.
    """

    name = "hips2fits"
    kind = "fits"

    def __init__(self, base_url: str | None = None, hips: str = "CDS/P/SDSS9/{band}",
                 bands=("g", "r", "i"), size: int = 64, scale: float = 0.396):
        self.base_url = base_url or "https://alasky.cds.unistra.fr/hips-image-services/hips2fits"
        self.hips, self.size, self.scale = hips, int(size), float(scale)
        self.keys = tuple(bands)

    def requests(self, stem: str, ra: float, dec: float) -> list[CutoutRequest]:
        fov = self.size * self.scale / 3600.0
        out = []
        for band in self.keys:
            params = {"hips": self.hips.format(band=band), "ra": f"{ra:.7f}",
                      "dec": f"{dec:.7f}", "fov": f"{fov:.8f}", "width": self.size,
                      "height": self.size, "projection": "TAN", "format": "fits"}
            out.append(CutoutRequest(band, self.base_url, params, f"{stem}_{band}.fits"))
        return out

    def check(self, body: bytes, content_type: str, key: str = "") -> Verdict:
        reason = _text_reason(body, content_type)
        if reason:
            return Verdict(reason, retry=True)
        try:
            image = decode_fits(body, key or None)
        except ImageReadError as exc:
            return Verdict(str(exc), retry="truncated" in str(exc))
        return Verdict(check_flux(image.flux, 1, self.size))

    def describe(self) -> dict:
        return {"service": self.name, "base_url": self.base_url, "hips": self.hips,
                "bands": list(self.keys), "size": self.size, "scale_arcsec": self.scale}


SERVICES = ("skyserver", "hips2fits")


def make_service(name: str, *, base_url: str | None = None, release: str = "DR17",
                 size: int = 64, scale: float = 0.396, bands=("g", "r", "i"),
                 hips: str = "CDS/P/SDSS9/{band}"):
    """The service called ``name`` (one of :data:`SERVICES`)."""
    if name == "skyserver":
        return SkyServerJPEG(base_url, release=release, size=size, scale=scale)
    if name == "hips2fits":
        return Hips2Fits(base_url, hips=hips, bands=bands, size=size, scale=scale)
    raise ValueError(f"service must be one of {SERVICES}; got {name!r}")
