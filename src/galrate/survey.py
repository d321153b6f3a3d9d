"""Survey profiles: how an instrument turns light into a cutout.

A :class:`Survey` holds everything that makes an image look as if it came
from one instrument: bands, pixel scale, cutout size, PSF per band, sky
brightness, photometric calibration, gain and read noise, and the colour
recipe that turns calibrated band images into an 8-bit RGB picture. The
synthetic sky, the mock observer and the fetcher all use the same object,
so the observed and simulated sides of a comparison differ only in the
galaxies, never in the rendering.

Fluxes are in SDSS nanomaggies throughout: a source of 1 nanomaggy has AB
magnitude ``zero_point`` (22.5).
"""

from __future__ import annotations

import io
import math
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

__all__ = ["Survey", "BandProfile", "ColourRecipe", "SDSS", "load_survey",
           "mag_to_nmgy", "nmgy_to_mag"]


def mag_to_nmgy(mag, zero_point: float = 22.5):
    """AB magnitude -> flux in nanomaggies (``10**(-0.4 (m - zp))``)."""
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=float) - zero_point))


def nmgy_to_mag(flux, zero_point: float = 22.5):
    """Flux in nanomaggies -> AB magnitude; non-positive fluxes give NaN."""
    flux = np.asarray(flux, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, zero_point - 2.5 * np.log10(flux), np.nan)


@dataclass(frozen=True)
class BandProfile:
    """Per-band instrument properties.

    Parameters
    ----------
    name : str
        Band name, e.g. ``"r"``.
    psf_fwhm : float
        PSF full width at half maximum in arcsec.
    sky_mag : float
        Sky surface brightness in AB mag/arcsec^2.
    gain : float
        Electrons per data number (e-/DN).
    nmgy_per_count : float
        Calibration: nanomaggies per data number.
    dark_variance : float
        Read noise plus dark current variance per pixel, in DN^2.
    """

    name: str
    psf_fwhm: float
    sky_mag: float
    gain: float
    nmgy_per_count: float
    dark_variance: float = 0.0


@dataclass(frozen=True)
class ColourRecipe:
    """The asinh colour composite of Lupton et al. (2004).

    Band images (nanomaggies per pixel) are multiplied by ``scales``,
    mapped to R, G, B in the order ``rgb_bands`` and stretched with

    .. math::  X_c = x_c \\, \\frac{\\operatorname{asinh}(Q I / s)}{Q I},
               \\qquad I = (x_R + x_G + x_B) / 3

    where ``s`` is ``stretch`` (nanomaggies). Where the brightest channel
    of a pixel exceeds 1, all three are divided by it so the hue is kept.
    The result is quantised to 8 bits with ``floor(255 X + 0.5)``.
    """

    rgb_bands: tuple[str, str, str] = ("i", "r", "g")
    scales: tuple[float, float, float] = (1.0, 1.0, 1.0)
    Q: float = 8.0
    stretch: float = 0.5
    jpeg_quality: int | None = None


@dataclass(frozen=True)
class Survey:
    """An imaging survey as seen by galrate.

    Parameters
    ----------
    name : str
        Short identifier, recorded in image-set metadata and model contracts.
    bands : tuple of BandProfile
        Bands in storage order (flux cubes are ``(len(bands), H, W)``).
    pixel_scale : float
        Arcsec per pixel.
    cutout_size : int
        Side of a square cutout in pixels.
    psf_beta : float
        Moffat index of the PSF profile.
    zero_point : float
        AB magnitude of 1 flux unit (22.5 for nanomaggies).
    colour : ColourRecipe
        How band images become an RGB picture.
    references : dict
        Where each number comes from, for the record.
    """

    name: str
    bands: tuple[BandProfile, ...]
    pixel_scale: float
    cutout_size: int
    psf_beta: float = 3.5
    zero_point: float = 22.5
    colour: ColourRecipe = field(default_factory=ColourRecipe)
    references: Mapping[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------------
    # lookups
    @property
    def band_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bands)

    def band(self, name: str) -> BandProfile:
        for b in self.bands:
            if b.name == name:
                return b
        raise ValueError(f"survey {self.name!r} has no band {name!r}; "
                         f"bands are {self.band_names}")

    def sky_level(self, band: str) -> float:
        """Sky flux per pixel in nanomaggies for ``band``."""
        b = self.band(band)
        return float(mag_to_nmgy(b.sky_mag, self.zero_point)) * self.pixel_scale ** 2

    def noise_sigma(self, band: str) -> float:
        """Standard deviation of blank-sky pixels in nanomaggies.

        Poisson noise of the sky in electrons plus the dark variance:
        ``sigma = c * sqrt(S / g + V)`` with ``S`` the sky in DN, ``g`` the
        gain (e-/DN), ``V`` the dark variance (DN^2) and ``c`` nanomaggies
        per DN.
        """
        b = self.band(band)
        sky_dn = self.sky_level(band) / b.nmgy_per_count
        var_dn = sky_dn / b.gain + b.dark_variance
        return math.sqrt(var_dn) * b.nmgy_per_count

    def to_dict(self) -> dict:
        """A JSON-ready description (stored in image sets and model files)."""
        d = asdict(self)
        d["references"] = dict(self.references)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "Survey":
        d = dict(d)
        try:
            bands = tuple(BandProfile(**b) for b in d.pop("bands"))
            colour = d.pop("colour", {}) or {}
            colour = ColourRecipe(**{k: tuple(v) if isinstance(v, list) else v
                                     for k, v in colour.items()})
            refs = d.pop("references", {}) or {}
            return cls(bands=bands, colour=colour, references=refs, **d)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"invalid survey description: {exc}") from exc

    # ------------------------------------------------------------------
    # rendering
    def psf(self, band: str, fwhm_factor: float = 1.0):
        """The PSF of ``band`` as a GalSim Moffat profile (arcsec units)."""
        import galsim

        fwhm = self.band(band).psf_fwhm * fwhm_factor
        return galsim.Moffat(beta=self.psf_beta, fwhm=fwhm)

    def draw(self, profiles: Mapping[str, object], *, psf_fwhm_factor: float = 1.0,
             offset: tuple[float, float] = (0.0, 0.0), size: int | None = None,
             gsparams=None) -> np.ndarray:
        """Convolve with the PSF and draw noiseless band images.

        Parameters
        ----------
        profiles : mapping of band name -> galsim.GSObject
            Surface-brightness profiles in arcsec units, fluxes in
            nanomaggies. A band missing from the mapping is drawn empty.
        psf_fwhm_factor : float
            Multiplies every band's PSF FWHM (worse seeing > 1).
        offset : (float, float)
            Shift of the profile centre from the cutout centre, in pixels.
        size : int, optional
            Cutout side in pixels; the survey's ``cutout_size`` by default.
        gsparams : galsim.GSParams, optional
            Accuracy settings for the PSF convolution (FFT size, folding
            threshold); GalSim's defaults when omitted.

        Returns
        -------
        numpy.ndarray
            ``(n_bands, size, size)`` float32, nanomaggies per pixel,
            in the survey's band order.
        """
        import galsim

        n = size or self.cutout_size
        out = np.zeros((len(self.bands), n, n), dtype=np.float32)
        for k, band in enumerate(self.band_names):
            prof = profiles.get(band)
            if prof is None:
                continue
            conv = galsim.Convolve(prof, self.psf(band, psf_fwhm_factor),
                                   gsparams=gsparams)
            img = galsim.ImageF(n, n, scale=self.pixel_scale)
            conv.drawImage(img, offset=offset, method="auto")
            out[k] = img.array
        return out

    def add_noise(self, flux: np.ndarray, rng: np.random.Generator,
                  sky_subtracted: bool = True) -> np.ndarray:
        """Add sky, Poisson and read noise to noiseless band images.

        The expected counts (source + sky) are drawn from a Gaussian with the
        Poisson variance in electrons plus the dark variance, then the sky is
        subtracted again, as in SDSS corrected frames.

        Parameters
        ----------
        flux : ndarray, shape (n_bands, H, W)
            Noiseless images in nanomaggies per pixel.
        rng : numpy.random.Generator
            Source of randomness (seeded by the caller).
        """
        flux = np.asarray(flux, dtype=np.float64)
        if flux.ndim != 3 or flux.shape[0] != len(self.bands):
            raise ValueError(f"flux must have shape (n_bands={len(self.bands)}, H, W); "
                             f"got {flux.shape}")
        out = np.empty_like(flux, dtype=np.float32)
        for k, band in enumerate(self.band_names):
            b = self.band(band)
            sky = self.sky_level(band)
            counts_e = np.clip(flux[k] + sky, 0, None) / b.nmgy_per_count * b.gain
            var_e = counts_e + b.dark_variance * b.gain ** 2
            noisy_e = counts_e + rng.standard_normal(counts_e.shape) * np.sqrt(var_e)
            img = noisy_e / b.gain * b.nmgy_per_count
            out[k] = img - sky if sky_subtracted else img
        return out

    def to_rgb(self, flux: np.ndarray) -> np.ndarray:
        """Apply the colour recipe to band images.

        Parameters
        ----------
        flux : ndarray, shape (n_bands, H, W) or (N, n_bands, H, W)
            Band images in nanomaggies per pixel, survey band order.

        Returns
        -------
        ndarray of uint8, shape (H, W, 3) or (N, H, W, 3)
        """
        flux = np.asarray(flux, dtype=np.float64)
        single = flux.ndim == 3
        if single:
            flux = flux[None]
        if flux.ndim != 4 or flux.shape[1] != len(self.bands):
            raise ValueError(f"flux must be (n_bands, H, W) or (N, n_bands, H, W) with "
                             f"n_bands={len(self.bands)}; got {flux.shape}")
        recipe = self.colour
        idx = [self.band_names.index(b) for b in recipe.rgb_bands]
        rgb = flux[:, idx] * np.asarray(recipe.scales)[None, :, None, None]
        rgb = asinh_composite(rgb, Q=recipe.Q, stretch=recipe.stretch)
        rgb = np.moveaxis(rgb, 1, -1)
        if recipe.jpeg_quality is not None:
            rgb = np.stack([jpeg_roundtrip(im, recipe.jpeg_quality) for im in rgb])
        return rgb[0] if single else rgb


def asinh_composite(rgb: np.ndarray, Q: float, stretch: float) -> np.ndarray:
    """Lupton et al. (2004) asinh stretch of scaled channel images.

    Parameters
    ----------
    rgb : ndarray, shape (N, 3, H, W)
        Scaled channel images (R, G, B), any real values.
    Q, stretch : float
        Softening parameter and linear scale (same units as ``rgb``).

    Returns
    -------
    ndarray of uint8, shape (N, 3, H, W)
    """
    rgb = np.clip(rgb, 0.0, None)
    intensity = rgb.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.arcsinh(Q * intensity / stretch) / (Q * intensity)
    factor = np.where(intensity > 0, factor, 0.0)
    x = rgb * factor
    peak = x.max(axis=1, keepdims=True)
    x = np.where(peak > 1.0, x / np.where(peak > 1.0, peak, 1.0), x)
    return np.floor(255.0 * x + 0.5).astype(np.uint8)


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Compress an ``(H, W, 3)`` uint8 image as JPEG and decode it again."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


# ----------------------------------------------------------------------
# built-in profiles

#: SDSS imaging as served by the SkyServer cutout service.
SDSS = Survey(
    name="sdss",
    bands=(
        BandProfile("g", psf_fwhm=1.50, sky_mag=21.9, gain=3.85,
                    nmgy_per_count=0.0039, dark_variance=1.2),
        BandProfile("r", psf_fwhm=1.40, sky_mag=20.9, gain=4.72,
                    nmgy_per_count=0.0051, dark_variance=1.0),
        BandProfile("i", psf_fwhm=1.35, sky_mag=20.2, gain=4.86,
                    nmgy_per_count=0.0070, dark_variance=5.8),
    ),
    pixel_scale=0.396,
    cutout_size=64,
    psf_beta=3.5,
    zero_point=22.5,
    colour=ColourRecipe(rgb_bands=("i", "r", "g"), scales=(1.0, 1.3, 2.0),
                        Q=8.0, stretch=0.35, jpeg_quality=None),
    references={
        "pixel_scale": "0.396 arcsec/pixel: SDSS camera (Gunn et al. 1998, AJ 116, 3040)",
        "cutout_size": "64 x 64 px, the cutouts of Jin et al. 2024 from the SkyServer "
                       "ImgCutout service at the native scale",
        "psf_fwhm": "median seeing of SDSS imaging, about 1.4 arcsec in r and slightly "
                    "broader in g (Abazajian et al. 2009, ApJS 182, 543; Stoughton et al. "
                    "2002, AJ 123, 485)",
        "psf_beta": "a Moffat core with beta 3.5 stands in for the double-Gaussian plus "
                    "wing model of the SDSS photo pipeline; the core width, not the "
                    "far wings, matters at 64 px",
        "sky_mag": "dark-time sky brightness at Apache Point, g 21.9, r 20.9, i 20.2 "
                   "mag/arcsec^2 (Abazajian et al. 2004; SDSS DR7 imaging "
                   "documentation)",
        "zero_point": "nanomaggy definition: m = 22.5 - 2.5 log10(f) (SDSS DR8 onwards)",
        "gain": "typical camera-column gains, e-/DN, of the SDSS photometric CCDs (DR7 "
                "field tables); they set the Poisson noise per DN",
        "nmgy_per_count": "typical NMGYPERCOUNT of SDSS frame files for g, r, i",
        "dark_variance": "typical DARK_VARIANCE of the photometric CCDs, DN^2",
        "colour": "i, r, g mapped to R, G, B, asinh stretch of Lupton et al. 2004 "
                  "(PASP 116, 133) as in the SkyServer composites; scales, Q and "
                  "stretch chosen so that a typical galaxy is neutral-to-yellow and "
                  "sky noise sits just above black, as in SkyServer cutouts",
    },
)

_BUILTIN = {"sdss": SDSS}


def load_survey(spec: str | Path | Survey | Mapping) -> Survey:
    """Resolve a survey from a built-in name, a TOML file or a mapping.

    Parameters
    ----------
    spec : str, path, Survey or mapping
        ``"sdss"``, a path to a TOML file with the fields of :class:`Survey`
        (``[[bands]]`` tables and a ``[colour]`` table), or a dict.

    Raises
    ------
    ValueError
        Unknown name, unreadable TOML or missing fields.
    """
    if isinstance(spec, Survey):
        return spec
    if isinstance(spec, Mapping):
        return Survey.from_dict(spec)
    key = str(spec).lower()
    if key in _BUILTIN:
        return _BUILTIN[key]
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"survey {spec!r} is neither a built-in survey "
                         f"({', '.join(_BUILTIN)}) nor an existing TOML file")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return Survey.from_dict(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def band_order_for(survey: Survey, names: Sequence[str]) -> list[int]:
    """Indices of ``names`` in the survey's band order."""
    return [survey.band_names.index(n) for n in names]
