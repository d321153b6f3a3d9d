"""Sanity sets: images a galaxy detector must flag as anomalous.

* ``sanity-photo``: 64x64 crops of everyday photographs shipped with
  scikit-image (astronaut, cat, coffee, rocket...), downscaled from a random
  square; RGB only (no flux: a photograph has no nanomaggies).
* ``sanity-blank``: empty sky (noise only) and pure black images, as served
  by a cutout service that failed; column ``artefact`` says which.
* ``sanity-trail``, ``sanity-bleed``, ``sanity-column``: ordinary galaxy
  cutouts spoilt by a satellite trail, a saturated star with its bleed trail,
  or a hot or dead CCD column.

Every image has its own random stream ``(seed, "sanity", set, index)``.
"""

from __future__ import annotations

import logging
from typing import Mapping

import numpy as np
import pandas as pd

from ..survey import SDSS, Survey, mag_to_nmgy
from .population import STREAMS, draw_images, draw_population
from .render import render_noiseless

log = logging.getLogger(__name__)

__all__ = ["SANITY_SETS", "PHOTOS", "sanity_set", "photo_crop", "add_trail",
           "saturate_with_bleed", "add_bad_column"]

#: sanity set name -> (key in the random stream, has flux)
SANITY_SETS = {"sanity-photo": (0, False), "sanity-blank": (1, True),
               "sanity-trail": (2, True), "sanity-bleed": (3, True),
               "sanity-column": (4, True)}

#: scikit-image sample photographs available offline
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "cat",
          "colorwheel", "camera", "brick", "grass", "gravel", "coins", "moon", "clock")

#: counts (DN) at which an SDSS CCD pixel saturates (about 55,000 DN)
SATURATION_DN = 55_000.0


def _rng(seed: int, set_name: str, index: int) -> np.random.Generator:
    key = (STREAMS["sanity"], 10 + SANITY_SETS[set_name][0], int(index))
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=key))


def _load_photos() -> dict[str, np.ndarray]:
    import skimage.data

    out = {}
    for name in PHOTOS:
        try:
            img = np.asarray(getattr(skimage.data, name)())
        except Exception as exc:  # a sample that needs a download is skipped
            log.debug("skimage sample %s unavailable: %s", name, exc)
            continue
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        out[name] = img[..., :3].astype(np.uint8)
    if not out:
        raise RuntimeError("no scikit-image sample photograph could be loaded")
    return out


def photo_crop(photo: np.ndarray, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A random square crop of ``photo`` (side 64 px to the short side), resized.

    Returns
    -------
    ndarray, uint8, shape (size, size, 3)
    """
    from skimage.transform import resize

    h, w = photo.shape[:2]
    side = int(rng.integers(min(size, h, w), min(h, w) + 1))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = photo[y:y + side, x:x + side]
    out = resize(crop, (size, size), anti_aliasing=True, preserve_range=True)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def add_trail(flux: np.ndarray, rng: np.random.Generator, survey: Survey = SDSS
              ) -> np.ndarray:
    """Add a satellite trail: a straight line as wide as the PSF, in every band.

    The trail is shifted by a few pixels between bands, as the SDSS drift scan
    exposes g, r and i at different times while the satellite moves.

    Parameters
    ----------
    flux : ndarray, shape (n_bands, H, W)
        Noiseless images, nanomaggies per pixel (modified copy returned).
    """
    out = flux.copy()
    n = flux.shape[-1]
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    angle = rng.uniform(0, np.pi)
    impact = rng.uniform(-n / 4, n / 4)
    drift = rng.uniform(2.0, 6.0)
    peak_mag = rng.uniform(21.5, 23.5)  # mag per arcsec^2 on the trail's ridge
    for k, band in enumerate(survey.band_names):
        d = xx * np.sin(angle) - yy * np.cos(angle) - impact - (k - 1) * drift
        sigma_px = survey.band(band).psf_fwhm / 2.355 / survey.pixel_scale
        ridge = float(mag_to_nmgy(peak_mag, survey.zero_point)) * survey.pixel_scale ** 2
        out[k] += ridge * np.exp(-0.5 * (d / sigma_px) ** 2)
    return out


def saturate_with_bleed(flux: np.ndarray, survey: Survey = SDSS) -> np.ndarray:
    """Clip pixels at the saturation level and bleed the excess along columns.

    The charge above saturation spills into the pixels above and below in the
    same column, half each way, each bled pixel saturated.

    Parameters
    ----------
    flux : ndarray, shape (n_bands, H, W)
        Images in nanomaggies per pixel, sky included or not.
    """
    out = flux.copy()
    n = flux.shape[1]
    for k, band in enumerate(survey.band_names):
        sat = SATURATION_DN * survey.band(band).nmgy_per_count
        img = out[k]
        for col in np.flatnonzero((img > sat).any(axis=0)):
            rows = np.flatnonzero(img[:, col] > sat)
            excess = float(np.sum(img[rows, col] - sat))
            spill = int(np.ceil(excess / sat / 2))
            lo, hi = max(rows.min() - spill, 0), min(rows.max() + spill + 1, n)
            img[lo:hi, col] = np.maximum(img[lo:hi, col], sat)
            img[rows, col] = sat
    return out


def add_bad_column(flux: np.ndarray, rng: np.random.Generator, survey: Survey = SDSS
                   ) -> np.ndarray:
    """A hot (bright) or dead (zero counts) column in one band of noisy images."""
    out = flux.copy()
    n = flux.shape[-1]
    k = int(rng.integers(flux.shape[0]))
    col = int(rng.integers(4, n - 4))
    width = int(rng.integers(1, 3))
    band = survey.band_names[k]
    if rng.random() < 0.5:
        out[k, :, col:col + width] += rng.uniform(10, 60) * survey.noise_sigma(band)
    else:
        out[k, :, col:col + width] = -survey.sky_level(band)  # zero counts
    return out


def _galaxy_rows(n: int, seed: int, set_name: str) -> pd.DataFrame:
    set_seed = int(np.random.SeedSequence(int(seed), spawn_key=(
        STREAMS["sanity"], 20 + SANITY_SETS[set_name][0])).generate_state(1)[0])
    gal = draw_population(n, set_seed, stream="sanity",
                          id_prefix=set_name.removeprefix("sanity-"))
    return draw_images(gal, set_seed, "sanity", 1)


def sanity_set(name: str, n: int, seed: int, survey: Survey = SDSS
               ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """Make one sanity set.

    Parameters
    ----------
    name : str
        One of :data:`SANITY_SETS`.
    n : int
        Number of images.
    seed : int
        Master seed.

    Returns
    -------
    rows : DataFrame
        ``galaxy_id``, ``projection``, ``artefact`` and, for galaxy cutouts,
        the galaxy's properties.
    rgb : ndarray, uint8, shape (n, H, W, 3)
    flux : ndarray, float32, shape (n, n_bands, H, W), or None for photographs
    """
    if name not in SANITY_SETS:
        raise ValueError(f"unknown sanity set {name!r}; known: {', '.join(SANITY_SETS)}")
    size = survey.cutout_size
    if name == "sanity-photo":
        photos = _load_photos()
        names = list(photos)
        rgb = np.empty((n, size, size, 3), dtype=np.uint8)
        which = []
        for i in range(n):
            rng = _rng(seed, name, i)
            pick = names[int(rng.integers(len(names)))]
            rgb[i] = photo_crop(photos[pick], rng, size)
            which.append(pick)
        rows = pd.DataFrame({"galaxy_id": [f"photo-{i:05d}" for i in range(n)],
                             "projection": 0, "artefact": [f"photo:{w}" for w in which]})
        return rows, rgb, None

    shape = (len(survey.bands), size, size)
    flux = np.empty((n,) + shape, dtype=np.float32)
    if name == "sanity-blank":
        kinds = []
        for i in range(n):
            rng = _rng(seed, name, i)
            black = i % 2 == 1
            kinds.append("black" if black else "sky_noise")
            flux[i] = 0.0 if black else survey.add_noise(np.zeros(shape), rng)
        rows = pd.DataFrame({"galaxy_id": [f"blank-{i:05d}" for i in range(n)],
                             "projection": 0, "artefact": kinds})
        rgb = survey.to_rgb(flux)
        rgb[1::2] = 0  # a failed service returns black whatever the stretch
        return rows, rgb, flux

    rows = _galaxy_rows(n, seed, name)
    for i, row in enumerate(rows.to_dict("records")):
        rng = _rng(seed, name, i)
        clean = render_noiseless(row, survey)
        flux[i] = _spoil(name, clean, row, rng, survey)
    rows["artefact"] = name.removeprefix("sanity-")
    return rows, survey.to_rgb(flux), flux


def _spoil(name: str, clean: np.ndarray, row: Mapping, rng: np.random.Generator,
           survey: Survey) -> np.ndarray:
    if name == "sanity-trail":
        return survey.add_noise(add_trail(clean, rng, survey), rng)
    if name == "sanity-bleed":
        import galsim

        mag = rng.uniform(10.5, 12.5)
        g_r = rng.uniform(0.3, 1.2)
        totals = {"g": mag + g_r, "r": mag, "i": mag - 0.4 * g_r}
        star = {b: galsim.DeltaFunction(flux=float(mag_to_nmgy(m, survey.zero_point)))
                for b, m in totals.items()}
        r, a = rng.uniform(10, 26), rng.uniform(0, 2 * np.pi)
        # a bright star needs a fine folding threshold, or its wings wrap around
        fine = galsim.GSParams(folding_threshold=1e-3, maximum_fft_size=8192)
        clean = clean + survey.draw(star, offset=(r * np.cos(a), r * np.sin(a)),
                                    gsparams=fine)
        sky = np.array([survey.sky_level(b) for b in survey.band_names])[:, None, None]
        noisy = survey.add_noise(clean, rng, sky_subtracted=False)
        return (saturate_with_bleed(noisy, survey) - sky).astype(np.float32)
    return add_bad_column(survey.add_noise(clean, rng), rng, survey)
