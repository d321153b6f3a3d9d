"""An interpretable representation: non-parametric morphology and photometry.

Each image becomes a short row of numbers an astronomer can read:
concentration, asymmetry and smoothness (Conselice 2003, ApJS 147, 1; with
the aperture choices of Lotz et al. 2004, AJ 128, 163), Gini and M20 (Lotz
et al. 2004), half-light radius, ellipticity, colours and total magnitude.
The table feeds the same two-sample tests as the detector's latent codes
(:mod:`galrate.rating.twosample`) and, through :func:`feature_differences`
and :func:`describe_differences`, says in words *how* a suite differs
("half-light radius 40% smaller").

Two implementations of the same definitions are offered by
:func:`measure_morphology`: ``method="statmorph"`` calls statmorph
(Rodriguez-Gomez et al. 2019, MNRAS 483, 4140), the reference; ``"fast"`` is
a NumPy implementation that needs a few milliseconds per cutout.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy import stats

from ..provenance import ProgressCallback, no_progress
from ..survey import Survey

log = logging.getLogger(__name__)

__all__ = ["measure_morphology", "measure_rgb_morphology", "feature_differences",
           "describe_differences", "FEATURES", "FLAGS", "failure_summary"]

#: columns measured for every image (``sersic_n`` is added when asked for)
FEATURES = ("concentration", "asymmetry", "smoothness", "gini", "m20", "r_half_arcsec",
            "ellipticity", "g_r", "r_i", "mag_r")

#: bits of the ``flag`` column
FLAGS = {
    1: "no source above the detection threshold: nothing measured",
    2: "Petrosian radius not found inside the cutout (set to the cutout half-diagonal)",
    4: "the total-flux aperture (2 Petrosian radii) extends beyond the cutout",
    8: "asymmetry centre at the edge of the search box",
    16: "a measurement failed (non-positive flux, empty region); that value is NaN",
    32: "the measurement raised an exception (see the error column)",
}
NO_SOURCE, PETRO_FAILED, TRUNCATED, ASYM_EDGE, BAD_VALUE, EXCEPTION = 1, 2, 4, 8, 16, 32

#: Petrosian ratio eta, CAS aperture (in Petrosian radii), smoothing fractions:
#: the values of Lotz et al. (2004) and statmorph's defaults
ETA = 0.2
PETRO_EXTENT_CAS = 1.5
PETRO_FRACTION_CAS = 0.25
PETRO_FRACTION_GINI = 0.2
PETRO_EXTENT_FLUX = 2.0

#: feature -> (human name, kind) for the sentences of describe_differences:
#: "ratio" features are described by a percentage, "mag" ones in magnitudes
DESCRIPTIONS = {
    "concentration": ("concentration", "diff"),
    "asymmetry": ("asymmetry", "diff"),
    "smoothness": ("clumpiness (smoothness S)", "diff"),
    "gini": ("Gini coefficient", "diff"),
    "m20": ("M20", "diff"),
    "r_half_arcsec": ("half-light radius", "ratio"),
    "ellipticity": ("ellipticity", "diff"),
    "g_r": ("g-r", "colour"),
    "r_i": ("r-i", "colour"),
    "mag_r": ("total r magnitude", "mag"),
    "sersic_n": ("Sersic index", "ratio"),
}


# ----------------------------------------------------------------------
# curves of growth

class _Profile:
    """Cumulative flux and area inside circles or ellipses around a centre.

    A pixel contributes to an aperture of radius ``r`` with weight
    ``clip(r - d + 1/2, 0, 1)`` where ``d`` is the (elliptical) distance of
    its centre: a linear ramp one pixel wide that approximates the exact
    pixel-circle overlap and makes the curve of growth continuous. Sums over
    the ramp are computed from sorted distances in O(log n) per radius.
    """

    def __init__(self, image: np.ndarray, valid: np.ndarray, dist: np.ndarray):
        order = np.argsort(dist, axis=None)
        self.d = dist.ravel()[order]
        f = np.where(valid, image, 0.0).ravel()[order]
        a = valid.ravel()[order].astype(float)
        self._cf = np.r_[0.0, np.cumsum(f)]
        self._cfd = np.r_[0.0, np.cumsum(f * self.d)]
        self._ca = np.r_[0.0, np.cumsum(a)]
        self._cad = np.r_[0.0, np.cumsum(a * self.d)]

    def _integral(self, t, c, cd):
        # sum_k v_k max(t - d_k, 0)
        t = np.asarray(t, dtype=float)
        k = np.searchsorted(self.d, t, side="right")
        return t * c[k] - cd[k]

    def flux(self, r):
        """Flux inside radius ``r`` (pixels), ramp-weighted."""
        r = np.asarray(r, dtype=float)
        return (self._integral(r + 0.5, self._cf, self._cfd)
                - self._integral(r - 0.5, self._cf, self._cfd))

    def area(self, r):
        """Valid pixels inside radius ``r`` (ramp-weighted)."""
        r = np.asarray(r, dtype=float)
        return (self._integral(r + 0.5, self._ca, self._cad)
                - self._integral(r - 0.5, self._ca, self._cad))

    def petrosian(self, r_max: float, annulus: float = 1.0) -> tuple[float, bool]:
        """Radius where annulus mean / inner mean surface brightness = ETA.

        Returns the radius and whether it was found inside ``r_max``.
        """
        r = np.arange(annulus, r_max, 0.25)
        if len(r) < 2:
            return float(r_max), False
        f_in, a_in = np.abs(self.flux(r)), self.area(r)
        f_ann = np.abs(self.flux(r + annulus / 2) - self.flux(r - annulus / 2))
        a_ann = self.area(r + annulus / 2) - self.area(r - annulus / 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = (f_ann / a_ann) / (f_in / a_in) - ETA
        below = np.flatnonzero(ratio < 0)
        below = below[below > 0]
        if len(below) == 0:
            return float(r_max), False
        i = below[0]
        r0, r1, v0, v1 = r[i - 1], r[i], ratio[i - 1], ratio[i]
        return float(r0 + (r1 - r0) * v0 / (v0 - v1)), True

    def radius_at_fraction(self, fraction: float, total: float, r_max: float) -> float:
        """Smallest radius whose flux reaches ``fraction * total``."""
        if not total > 0:
            return float("nan")
        r = np.linspace(0.0, r_max, 400)
        frac = np.abs(self.flux(r)) / total - fraction
        up = np.flatnonzero(frac >= 0)
        if len(up) == 0 or up[0] == 0:
            return float("nan")
        i = up[0]
        return float(r[i - 1] + (r[i] - r[i - 1]) * -frac[i - 1] / (frac[i] - frac[i - 1]))


def _second_moments(image: np.ndarray, yy: np.ndarray, xx: np.ndarray, yc: float,
                    xc: float) -> tuple[float, float, float]:
    """Ellipticity, elongation and orientation (rad) from flux-weighted moments."""
    w = np.clip(image, 0, None)
    tot = w.sum()
    if tot <= 0:
        return float("nan"), float("nan"), float("nan")
    dx, dy = xx - xc, yy - yc
    cxx, cyy, cxy = (w * dx * dx).sum() / tot, (w * dy * dy).sum() / tot, \
        (w * dx * dy).sum() / tot
    # statmorph regularises the moments with 1/12 px^2 (a uniform pixel)
    cxx, cyy = cxx + 1 / 12, cyy + 1 / 12
    half_tr, det = (cxx + cyy) / 2, cxx * cyy - cxy * cxy
    root = math.sqrt(max(half_tr * half_tr - det, 0.0))
    l1, l2 = half_tr + root, max(half_tr - root, 1e-12)
    elong = math.sqrt(l1 / l2)
    return 1.0 - 1.0 / elong, elong, 0.5 * math.atan2(2 * cxy, cxx - cyy)


# ----------------------------------------------------------------------
# segmentation

def _smoothed_noise(sigma: float, smooth_px: float) -> float:
    """Noise of white noise ``sigma`` after a Gaussian filter of ``smooth_px``."""
    return sigma / (2.0 * math.sqrt(math.pi) * smooth_px)


def _central_segment(image: np.ndarray, sigma: float, nsigma: float = 1.5,
                     smooth_px: float = 1.0, npixels: int = 5, min_snr: float = 10.0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The segment nearest the cutout centre and the mask of the other segments.

    The image is smoothed with a Gaussian of ``smooth_px`` pixels and
    thresholded at ``nsigma`` times the smoothed noise; 8-connected regions
    of at least ``npixels`` pixels are segments. The galaxy is the segment
    nearest the centre among those whose integrated signal-to-noise ratio,
    ``sum(flux) / (sigma sqrt(n_pixels))`` on the unsmoothed image, reaches
    ``min_snr``: blobs of smoothed sky noise reach about 3, so pure noise
    yields no source.

    Returns
    -------
    main, others : ndarray of bool, shape (H, W)
        ``main`` is all False when nothing is detected.
    """
    smooth = ndi.gaussian_filter(image, smooth_px)
    thresh = nsigma * _smoothed_noise(sigma, smooth_px) if sigma > 0 else 0.0
    labels, n = ndi.label(smooth > thresh, structure=np.ones((3, 3)))
    if n == 0:
        return np.zeros(image.shape, bool), np.zeros(image.shape, bool)
    sizes = np.bincount(labels.ravel())
    if sigma > 0:
        sums = np.bincount(labels.ravel(), weights=image.ravel())
        faint = sums < min_snr * sigma * np.sqrt(np.maximum(sizes, 1))
    else:
        faint = np.zeros(len(sizes), bool)
    drop = (sizes < npixels) | faint
    drop[0] = True
    others_all = labels > 0
    labels[drop[labels]] = 0
    if not labels.any():
        return np.zeros(image.shape, bool), others_all
    h, w = image.shape
    yy, xx = np.indices(image.shape)
    dist = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2)
    dist = np.where(labels > 0, dist, np.inf)
    best = labels.ravel()[np.argmin(dist)]
    return labels == best, (labels > 0) & (labels != best)


def _sky_sigma(image: np.ndarray, sources: np.ndarray, fallback: float) -> float:
    """Robust standard deviation of pixels well away from every source."""
    away = ~ndi.binary_dilation(sources, iterations=4)
    if away.sum() < 50:
        return fallback
    vals = image[away]
    return float(1.4826 * np.median(np.abs(vals - np.median(vals))))


# ----------------------------------------------------------------------
# the fast measurement of one image

class _Rotator:
    """180-degree rotations of one image about centres on the half-pixel grid.

    Rotating about ``(py2 / 2, px2 / 2)`` maps pixel ``(i, j)`` to
    ``(py2 - i, px2 - j)``: an exact index flip with no interpolation. The
    flipped, zero-padded image is built once and every rotation is a view
    into it.
    """

    def __init__(self, image: np.ndarray):
        h, w = image.shape
        self.h, self.w = h, w
        padded = np.zeros((3 * h, 3 * w), dtype=image.dtype)
        padded[h:2 * h, w:2 * w] = image
        self._flipped = padded[::-1, ::-1]

    def __call__(self, py2: int, px2: int) -> np.ndarray:
        h, w = self.h, self.w
        i0, j0 = 2 * h - 1 - py2, 2 * w - 1 - px2
        return self._flipped[i0:i0 + h, j0:j0 + w]


def _ramp(r: float, d: np.ndarray) -> np.ndarray:
    """Aperture weights ``clip(r - d + 1/2, 0, 1)``."""
    wgt = r + 0.5 - d
    np.minimum(wgt, 1.0, out=wgt)
    np.maximum(wgt, 0.0, out=wgt)
    return wgt


def _asymmetry(image, abs_image, rot_image, rot_valid, valid, iy, ix, yc, xc, r_ap,
               sky_asym):
    """CAS asymmetry about ``(yc, xc)`` (half-pixel grid), background-corrected.

    ``A = (sum w |I - I_180| - B) / sum w |I|`` with ``w`` the aperture of
    radius ``r_ap`` and ``B`` the expected contribution of sky noise, ``area *
    sky_asym`` (Lotz et al. 2004, eq. 10). Pixels whose rotated partner is
    masked are left out of both sums.
    """
    py2, px2 = int(round(2 * yc)), int(round(2 * xc))
    rot = rot_image(py2, px2)
    d = np.sqrt(((iy - py2 / 2) ** 2)[:, None] + ((ix - px2 / 2) ** 2)[None, :])
    wgt = _ramp(r_ap, d)
    if rot_valid is not None:
        wgt *= valid & (rot_valid(py2, px2) > 0.5)
    num = np.sum(wgt * np.abs(image - rot)) - np.sum(wgt) * sky_asym
    den = np.sum(wgt * abs_image)
    return num / den if den > 0 else float("nan")


def _asymmetry_centre(image, valid, yc, xc, r_ap, sky_asym
                      ) -> tuple[float, float, float, bool]:
    """Minimise the asymmetry over centres on a half-pixel grid.

    A coarse search over whole pixels within 2 px of the centroid is refined
    on the half-pixel grid around the best one. Returns ``(yc, xc, A,
    at_edge)``.
    """
    iy, ix = np.arange(image.shape[0], dtype=float), np.arange(image.shape[1], dtype=float)
    rot_image = _Rotator(image)
    rot_valid = None if valid.all() else _Rotator(valid.astype(float))
    abs_image = np.abs(image)

    def asym(y, x):
        return _asymmetry(image, abs_image, rot_image, rot_valid, valid, iy, ix, y, x,
                          r_ap, sky_asym)

    y0, x0 = round(yc), round(xc)
    best = (np.inf, y0, x0)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            a = asym(y0 + dy, x0 + dx)
            if a < best[0]:
                best = (a, y0 + dy, x0 + dx)
    coarse = best
    for dy in (-0.5, 0.0, 0.5):
        for dx in (-0.5, 0.0, 0.5):
            if dy == dx == 0:
                continue
            a = asym(coarse[1] + dy, coarse[2] + dx)
            if a < best[0]:
                best = (a, coarse[1] + dy, coarse[2] + dx)
    at_edge = abs(best[1] - y0) > 2 or abs(best[2] - x0) > 2
    return best[1], best[2], best[0], at_edge


def _gini_m20(image: np.ndarray, segmap: np.ndarray) -> tuple[float, float]:
    """Gini and M20 of the pixels of ``segmap`` (Lotz et al. 2004, eqs. 6-8)."""
    vals = np.sort(np.abs(image[segmap]))
    n = len(vals)
    if n < 2 or vals.sum() <= 0:
        return float("nan"), float("nan")
    i = np.arange(1, n + 1)
    gini = float(np.sum((2 * i - n - 1) * vals) / ((n - 1) * vals.sum()))

    img = np.where(segmap, image, 0.0)
    tot = img.sum()
    if tot <= 0:
        return gini, float("nan")
    yy, xx = np.indices(img.shape)
    yc, xc = (img * yy).sum() / tot, (img * xx).sum() / tot
    r2 = (yy - yc) ** 2 + (xx - xc) ** 2
    m_tot = (img * r2).sum()
    flat = np.sort(img.ravel())
    frac = np.cumsum(flat) / flat.sum()
    bright = flat[frac >= 0.8]
    if len(bright) == 0 or m_tot <= 0:
        return gini, float("nan")
    m_20 = (np.where(img >= bright[0], img, 0.0) * r2).sum()
    return gini, float(np.log10(m_20 / m_tot)) if m_20 > 0 else float("nan")


def _gini_segmap(image, yy, xx, yc, xc, elong, theta, r_max):
    """Pixels above the mean smoothed surface brightness at the elliptical
    Petrosian radius, connected to the brightest smoothed pixel (Lotz et al.
    2004, section 3.1). Returns ``(segmap, rpetro_ellip, found)``."""
    cos, sin = math.cos(theta), math.sin(theta)
    dx, dy = xx - xc, yy - yc
    a = np.hypot(dx * cos + dy * sin, (-dx * sin + dy * cos) * elong)
    prof = _Profile(image, np.ones(image.shape, bool), a)
    rp, found = prof.petrosian(r_max)
    smooth = ndi.gaussian_filter(image, PETRO_FRACTION_GINI * rp, mode="constant")
    ring = np.abs(a - rp) <= 0.5
    if not ring.any():
        return np.zeros(image.shape, bool), rp, False
    above = smooth >= smooth[ring].mean()
    labels, n = ndi.label(above, structure=np.ones((3, 3)))
    if n == 0 or above.all():
        return np.zeros(image.shape, bool), rp, False
    peak = np.unravel_index(np.argmax(smooth), smooth.shape)
    return labels == labels[peak], rp, found


def _nan_row(names: Sequence[str]) -> dict:
    return {k: float("nan") for k in names}


def _photometry(flux: np.ndarray, band_index: dict, centre, radius, zero_point):
    """Magnitudes and colours inside one circular aperture in every band."""
    out = {"g_r": float("nan"), "r_i": float("nan"), "mag_r": float("nan")}
    yy, xx = np.indices(flux.shape[1:])
    w = np.clip(radius - np.hypot(yy - centre[0], xx - centre[1]) + 0.5, 0, 1)
    f = {b: float((w * flux[k]).sum()) for b, k in band_index.items()}

    def mag(b):
        return zero_point - 2.5 * math.log10(f[b]) if f.get(b, 0) > 0 else float("nan")

    out["mag_r"] = mag("r") if "r" in f else float("nan")
    if "g" in f and "r" in f:
        out["g_r"] = mag("g") - mag("r")
    if "r" in f and "i" in f:
        out["r_i"] = mag("r") - mag("i")
    return out


def _measure_fast_one(flux: np.ndarray, band_index: dict, det: int, sigma: float,
                      pixel_scale: float, zero_point: float) -> dict:
    """All features of one ``(n_bands, H, W)`` cutout with the fast method."""
    image = np.asarray(flux[det], dtype=np.float64)
    row = _nan_row(FEATURES)
    row.update(flag=0, error="", r_petro_arcsec=float("nan"))
    main, others = _central_segment(image, sigma)
    if not main.any():
        row.update(flag=NO_SOURCE, error="no source above the detection threshold")
        return row
    flag = 0
    valid = ~others
    image = np.where(others, 0.0, image)
    sky = _sky_sigma(image, main | others, sigma)
    h, w = image.shape
    yy, xx = np.indices(image.shape, dtype=float)
    r_max = math.hypot(h, w) / 2

    seg = np.where(main, np.clip(image, 0, None), 0.0)
    tot = seg.sum()
    yc, xc = (seg * yy).sum() / tot, (seg * xx).sum() / tot

    # Petrosian radius about the centroid: CAS aperture and total flux
    prof_c = _Profile(image, valid, np.hypot(yy - yc, xx - xc))
    rp_c, found = prof_c.petrosian(r_max)
    flag |= 0 if found else PETRO_FAILED

    # asymmetry and its centre
    sky_asym = 2.0 * sky / math.sqrt(math.pi)
    ya, xa, asym, at_edge = _asymmetry_centre(image, valid, yc, xc,
                                              PETRO_EXTENT_CAS * rp_c, sky_asym)
    flag |= ASYM_EDGE if at_edge else 0
    row["asymmetry"] = asym

    # concentration about the asymmetry centre
    prof_a = _Profile(image, valid, np.hypot(yy - ya, xx - xa))
    rp_a, found_a = prof_a.petrosian(r_max)
    flag |= 0 if found_a else PETRO_FAILED
    r_tot = PETRO_EXTENT_CAS * rp_a
    total = abs(float(prof_a.flux(r_tot)))
    r20 = prof_a.radius_at_fraction(0.2, total, r_tot)
    r80 = prof_a.radius_at_fraction(0.8, total, r_tot)
    row["concentration"] = 5.0 * math.log10(r80 / r20) if r20 > 0 and r80 > 0 \
        else float("nan")

    # smoothness in an annulus 0.25-1.5 rp around the asymmetry centre
    box = int(PETRO_FRACTION_CAS * rp_a)
    d_a = np.hypot(yy - ya, xx - xa)
    ann = (np.clip(r_tot - d_a + 0.5, 0, 1)
           - np.clip(PETRO_FRACTION_CAS * rp_a - d_a + 0.5, 0, 1)) * valid
    resid = np.clip(image - ndi.uniform_filter(image, size=max(box, 1)), 0, None)
    sky_smooth = sky * math.sqrt(max(1 - 1 / max(box, 1) ** 2, 0)) / math.sqrt(2 * math.pi)
    ann_flux = (ann * image).sum()
    row["smoothness"] = ((ann * resid).sum() - ann.sum() * sky_smooth) / ann_flux \
        if ann_flux > 0 else float("nan")

    # ellipticity and the Gini segmap from moments about the asymmetry centre
    seg_a = np.where(main, image, 0.0)
    ellip, elong, theta = _second_moments(seg_a, yy, xx, ya, xa)
    row["ellipticity"] = ellip
    if np.isfinite(elong):
        gseg, _, _ = _gini_segmap(image, yy, xx, ya, xa, elong, theta, r_max)
        row["gini"], row["m20"] = _gini_m20(image, gseg)

    # half-light radius and photometry inside 2 Petrosian radii about the centroid
    r_flux = PETRO_EXTENT_FLUX * rp_c
    if r_flux > min(yc, xc, h - 1 - yc, w - 1 - xc):
        flag |= TRUNCATED
    total_c = float(prof_c.flux(r_flux))
    row["r_half_arcsec"] = prof_c.radius_at_fraction(0.5, total_c, r_flux) * pixel_scale
    row["r_petro_arcsec"] = rp_c * pixel_scale
    row.update(_photometry(flux, band_index, (yc, xc), r_flux, zero_point))

    core = ["concentration", "asymmetry", "smoothness", "gini", "m20", "r_half_arcsec",
            "ellipticity"] + (["mag_r"] if "r" in band_index else [])
    if any(not np.isfinite(row[k]) for k in core):
        flag |= BAD_VALUE
    row["flag"] = flag
    return row


# ----------------------------------------------------------------------
# statmorph

def _statmorph_one(args) -> dict:
    """statmorph measurement of one cutout (runs in a worker process)."""
    flux, band_index, det, sigma, pixel_scale, zero_point, gain, psf, sersic = args
    import statmorph

    image = np.asarray(flux[det], dtype=np.float64)
    row = _nan_row(FEATURES + (("sersic_n",) if sersic else ()))
    row.update(flag=0, error="", r_petro_arcsec=float("nan"), flag_statmorph=-1)
    main, others = _central_segment(image, sigma)
    if not main.any():
        row.update(flag=NO_SOURCE, error="no source above the detection threshold")
        return row
    segmap = main.astype(np.int32) + 2 * others.astype(np.int32)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cls = statmorph.SourceMorphology if sersic else _NoSersicMorphology()
            m = cls(image, segmap, 1, gain=gain, psf=psf if sersic else None,
                    include_doublesersic=False)
    except Exception as exc:  # statmorph raises assertions and fit errors alike
        row.update(flag=EXCEPTION, error=f"statmorph: {type(exc).__name__}: {exc}")
        return row

    def val(x, scale=1.0):
        x = float(x)
        return x * scale if np.isfinite(x) and x != -99.0 else float("nan")

    row.update(concentration=val(m.concentration), asymmetry=val(m.asymmetry),
               smoothness=val(m.smoothness), gini=val(m.gini), m20=val(m.m20),
               r_half_arcsec=val(m.rhalf_circ, pixel_scale),
               ellipticity=val(m.ellipticity_asymmetry),
               r_petro_arcsec=val(m.rpetro_circ, pixel_scale), flag_statmorph=int(m.flag))
    if sersic:
        row["sersic_n"] = val(m.sersic_n)
    centre = (float(m.yc_centroid), float(m.xc_centroid))
    r_flux = PETRO_EXTENT_FLUX * float(m.rpetro_circ)
    if np.isfinite(r_flux) and r_flux > 0:
        row.update(_photometry(flux, band_index, centre, r_flux, zero_point))
    flag = BAD_VALUE if int(m.flag) >= 2 else 0
    if any(not np.isfinite(row[k]) for k in ("concentration", "asymmetry", "gini",
                                             "m20", "r_half_arcsec")):
        flag |= BAD_VALUE
    row["flag"] = flag
    if int(m.flag) >= 2:
        row["error"] = f"statmorph flag {int(m.flag)} (bad measurement)"
    return row


@functools.lru_cache(maxsize=1)
def _NoSersicMorphology():
    """statmorph's SourceMorphology without the Sersic fit (the slow part)."""
    import statmorph
    from statmorph.statmorph import _quantity_names

    class NoSersic(statmorph.SourceMorphology):
        def _calculate_morphology(self):
            for q in _quantity_names:
                if not q.startswith("sersic_"):
                    _ = self[q]

    return NoSersic


def _psf_image(survey: Survey, band: str, size: int = 25) -> np.ndarray:
    import galsim

    img = galsim.ImageF(size, size, scale=survey.pixel_scale)
    survey.psf(band).drawImage(img)
    return img.array / img.array.sum()


# ----------------------------------------------------------------------
# public measurement functions

def measure_morphology(flux, survey: Survey, *, method: str = "fast", sersic: bool = False,
                       workers: int = 1, progress: ProgressCallback | None = None,
                       band: str = "r") -> pd.DataFrame:
    """Non-parametric morphology and photometry of flux cutouts.

    Parameters
    ----------
    flux : array, shape (N, n_bands, H, W) or (n_bands, H, W)
        Sky-subtracted images in nanomaggies per pixel, in the survey's band
        order (``ImageSet.flux``).
    survey : Survey
        Provides band names, pixel scale (arcsec), zero point, sky noise
        (``noise_sigma``) and gain.
    method : {"fast", "statmorph"}
        ``"fast"``: this module's NumPy implementation (a few ms per image).
        ``"statmorph"``: statmorph's ``SourceMorphology`` (about 0.1-0.3 s per
        image, several seconds with the Sersic fit), spread over ``workers``
        processes.
    sersic : bool
        Add ``sersic_n`` from statmorph's PSF-convolved Sersic fit (statmorph
        only; the PSF is the survey's Moffat PSF of ``band``).
    workers : int
        Processes for ``method="statmorph"``.
    progress : callable, optional
        ``progress(done, total, "morphology")``.
    band : str
        The band measured (and used for detection); ``"r"`` by default.

    Returns
    -------
    DataFrame
        One row per image, in input order: the columns of ``FEATURES``
        (``r_half_arcsec`` in arcsec, ``mag_r`` AB, colours in mag),
        ``r_petro_arcsec``, ``sersic_n`` when asked, ``flag`` (bit mask, see
        ``FLAGS``; 0 = clean) and ``error`` (text, empty when clean). With
        statmorph also ``flag_statmorph`` (statmorph's own 0-4 flag, -1 when
        it did not run). Failed measurements are NaN and flagged, never
        dropped.

    Raises
    ------
    ValueError
        Wrong shape, unknown method or band, ``sersic`` with ``"fast"``.

    Notes
    -----
    Both methods detect the galaxy the same way: the ``band`` image smoothed
    by a 1-pixel Gaussian, thresholded at 1.5 times the smoothed sky noise,
    8-connected segments of at least 5 pixels, the one nearest the cutout
    centre kept; pixels of other segments are set to zero.

    The fast method follows the definitions of statmorph (Lotz et al. 2004
    conventions): Petrosian radius with eta = 0.2; asymmetry inside 1.5
    Petrosian radii, minimised over centres, minus the background term
    ``area * 2 sigma / sqrt(pi)``; concentration ``5 log10(r80 / r20)`` with
    the total inside 1.5 Petrosian radii; smoothness with a boxcar of 0.25
    Petrosian radii in the annulus 0.25-1.5 radii; Gini and M20 on the Gini
    segmap (elliptical Petrosian radius, smoothing 0.2 radii); ellipticity
    ``1 - b/a`` from second moments of the segment. It differs in three
    approximations: apertures weight pixels by a one-pixel linear ramp rather
    than the exact overlap; the asymmetry centre is searched on a half-pixel
    grid (where a 180-degree rotation needs no interpolation) rather than with
    a continuous minimiser; the sky noise is the robust scatter of pixels
    away from every segment rather than a sky box. The half-light radius is
    the radius holding half the flux inside 2 Petrosian radii about the
    flux-weighted centre (the SDSS Petrosian R50; statmorph's ``rhalf_circ``
    is reported by the statmorph method). Colours and ``mag_r`` are measured
    in that same aperture in every band, for both methods. Agreement with
    statmorph on GalSim-rendered SDSS-like galaxies is tested in
    ``tests/rating/test_morphology.py`` (see the tolerances there).
    """
    flux = np.asarray(flux, dtype=np.float32)
    if flux.ndim == 3:
        flux = flux[None]
    names = survey.band_names
    if flux.ndim != 4 or flux.shape[1] != len(names):
        raise ValueError(f"flux must be (N, n_bands={len(names)}, H, W) in the band order "
                         f"{names}; got shape {flux.shape}")
    if band not in names:
        raise ValueError(f"band {band!r} is not a band of survey {survey.name!r} {names}")
    if method not in ("fast", "statmorph"):
        raise ValueError(f"method must be 'fast' or 'statmorph'; got {method!r}")
    if sersic and method != "statmorph":
        raise ValueError("sersic=True needs method='statmorph' (the fast method does not "
                         "fit profiles)")
    progress = progress or no_progress
    band_index = {b: k for k, b in enumerate(names)}
    det = band_index[band]
    sigma = survey.noise_sigma(band)
    n = len(flux)

    rows: list[dict] = []
    if method == "fast":
        for i in range(n):
            rows.append(_guarded(_measure_fast_one, flux[i], band_index, det, sigma,
                                 survey.pixel_scale, survey.zero_point))
            if (i + 1) % 100 == 0 or i + 1 == n:
                progress(i + 1, n, "morphology")
    else:
        b = survey.band(band)
        gain = b.gain / b.nmgy_per_count            # electrons per nanomaggy
        psf = _psf_image(survey, band) if sersic else None
        jobs = [(flux[i], band_index, det, sigma, survey.pixel_scale, survey.zero_point,
                 gain, psf, sersic) for i in range(n)]
        if workers > 1 and n > 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(int(workers)) as pool:
                for i, row in enumerate(pool.imap(_statmorph_one, jobs, chunksize=4)):
                    rows.append(row)
                    progress(i + 1, n, "morphology")
        else:
            for i, job in enumerate(jobs):
                rows.append(_statmorph_one(job))
                progress(i + 1, n, "morphology")

    df = pd.DataFrame(rows)
    failed = int(((df["flag"] & (NO_SOURCE | EXCEPTION)) != 0).sum())
    bad = int(((df["flag"] & BAD_VALUE) != 0).sum())
    if failed or bad:
        log.warning("morphology (%s): nothing measured for %d of %d image(s), some "
                    "values NaN for %d more; see the flag and error columns", method,
                    failed, n, bad)
    log.info("morphology (%s): %s", method, failure_summary(df))
    return df


def _guarded(fn, *args) -> dict:
    """Run one measurement; an exception becomes a flagged NaN row."""
    try:
        with np.errstate(invalid="ignore", divide="ignore"):
            return fn(*args)
    except Exception as exc:  # one bad cutout must not stop thousands
        row = _nan_row(FEATURES)
        row.update(flag=EXCEPTION, error=f"{type(exc).__name__}: {exc}",
                   r_petro_arcsec=float("nan"))
        return row


def failure_summary(df: pd.DataFrame) -> dict:
    """Counts of each flag bit in a morphology table.

    Returns
    -------
    dict
        ``n_images``, ``n_clean`` and, per bit of ``FLAGS`` that occurs, its
        description -> count.
    """
    out = {"n_images": len(df), "n_clean": int((df["flag"] == 0).sum())}
    for bit, text in FLAGS.items():
        k = int(((df["flag"] & bit) != 0).sum())
        if k:
            out[text] = k
    return out


def measure_rgb_morphology(rgb_uint8) -> pd.DataFrame:
    """Morphology measured on 8-bit colour cutouts (when no flux is stored).

    Parameters
    ----------
    rgb_uint8 : array of uint8, shape (N, H, W, 3) or (H, W, 3)
        Colour composites as served by a cutout service.

    Returns
    -------
    DataFrame
        The columns of ``FEATURES`` with ``g_r``, ``r_i`` and ``mag_r`` NaN,
        plus ``colour_rg`` and ``colour_gb`` (log ratios of summed channel
        values, R/G and G/B), ``flag`` and ``error``. ``r_half_arcsec`` is in
        *pixels* here (there is no survey), so it is named ``r_half_px``.

    Notes
    -----
    The measurement runs on the channel sum, as 8-bit values, with the sky
    noise estimated from the image. On asinh-stretched 8-bit data:

    * meaningful: sizes and shapes in relative terms (half-light radius,
      ellipticity, Gini/M20 ordering), because the stretch is monotonic and
      common to every image made with the same recipe;
    * distorted: concentration and asymmetry (the stretch compresses the
      bright core, lowering concentration and raising the weight of faint
      asymmetric light), smoothness (quantisation adds small-scale residuals),
      and every absolute flux;
    * not available: calibrated colours and magnitudes; the channel ratios
      returned instead only rank colours within one colour recipe.

    Compare suites with one another on this representation only when they were
    made with the same colour recipe.
    """
    rgb = np.asarray(rgb_uint8)
    if rgb.ndim == 3:
        rgb = rgb[None]
    if rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb_uint8 must be (N, H, W, 3); got shape {rgb.shape}")
    rows = []
    for im in rgb.astype(np.float64):
        total = im.sum(axis=-1)
        border = np.r_[total[:6].ravel(), total[-6:].ravel(), total[:, :6].ravel(),
                       total[:, -6:].ravel()]
        level = float(np.median(border))
        sky = float(1.4826 * np.median(np.abs(border - level)))
        flux = (total - level)[None]
        row = _guarded(_measure_fast_one, flux, {"sum": 0}, 0, max(sky, 0.5), 1.0, 0.0)
        sums = im.reshape(-1, 3).sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            row["colour_rg"] = float(np.log10(sums[0] / sums[1])) if sums.min() > 0 \
                else float("nan")
            row["colour_gb"] = float(np.log10(sums[1] / sums[2])) if sums.min() > 0 \
                else float("nan")
        row["r_half_px"] = row.pop("r_half_arcsec")
        row.pop("r_petro_arcsec", None)
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------
# how do two sets differ?

def feature_differences(feat_ref: pd.DataFrame, feat_sim: pd.DataFrame, groups_ref,
                        groups_sim, *, n_boot: int = 200, seed: int = 0,
                        features: Sequence[str] | None = None, alpha: float = 0.01,
                        ci_level: float = 0.95) -> pd.DataFrame:
    """Per feature: medians, difference, ratio, effect size and KS test.

    Parameters
    ----------
    feat_ref, feat_sim : DataFrame
        Morphology tables (rows = images) of the reference and simulated side.
    groups_ref, groups_sim : array of str
        Galaxy id of each row.
    n_boot : int
        Bootstrap replicates; galaxies are resampled with replacement within
        each side.
    seed : int
    features : sequence of str, optional
        Columns to compare; the numeric columns of ``FEATURES`` (and
        ``sersic_n``) present in both tables by default.
    alpha : float
        Level below which a difference is marked ``significant`` (KS p-value,
        Holm-adjusted across features, and a difference interval excluding 0).
    ci_level : float

    Returns
    -------
    DataFrame
        One row per feature: ``feature``, ``median_ref``, ``median_sim``,
        ``diff`` (sim - ref) with ``diff_lo``/``diff_hi``, ``ratio``
        (sim / ref; NaN where the reference median is not positive) with
        ``ratio_lo``/``ratio_hi``, ``effect`` (rank-biserial correlation
        ``2 AUROC - 1`` in [-1, 1], positive when sim values are larger),
        ``ks_p`` (two-sample Kolmogorov-Smirnov on galaxy means),
        ``ks_p_holm``, ``n_ref``, ``n_sim`` (finite values used) and
        ``significant``.

    Notes
    -----
    Rows with NaN in a feature (flagged measurements) are left out of that
    feature only; their number is visible from ``n_ref`` and ``n_sim``. The
    KS test uses one value per galaxy (its mean over projections) because
    projections are not independent.
    """
    from .twosample import holm

    g_ref, g_sim = np.asarray(groups_ref).astype(str), np.asarray(groups_sim).astype(str)
    if len(g_ref) != len(feat_ref) or len(g_sim) != len(feat_sim):
        raise ValueError(f"groups must have one id per row: got {len(g_ref)} for "
                         f"{len(feat_ref)} reference rows and {len(g_sim)} for "
                         f"{len(feat_sim)} simulated rows")
    if features is None:
        features = [c for c in FEATURES + ("sersic_n",)
                    if c in feat_ref.columns and c in feat_sim.columns]
    rng = np.random.default_rng(seed)
    rows = []
    for name in features:
        a = feat_ref[name].to_numpy(float)
        b = feat_sim[name].to_numpy(float)
        ka, kb = np.isfinite(a), np.isfinite(b)
        row = {"feature": name, "n_ref": int(ka.sum()), "n_sim": int(kb.sum())}
        if ka.sum() < 3 or kb.sum() < 3:
            rows.append(row)
            continue
        a, ga, b, gb = a[ka], g_ref[ka], b[kb], g_sim[kb]
        med_a, med_b = float(np.median(a)), float(np.median(b))
        boot_a = _boot_medians(a, ga, n_boot, rng)
        boot_b = _boot_medians(b, gb, n_boot, rng)
        diffs = boot_b - boot_a
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.where(boot_a > 0, boot_b / boot_a, np.nan)
        mean_a = pd.Series(a).groupby(ga).mean().to_numpy()
        mean_b = pd.Series(b).groupby(gb).mean().to_numpy()
        auc = stats.mannwhitneyu(b, a).statistic / (len(a) * len(b))
        lo, hi = _q(diffs, ci_level)
        rlo, rhi = _q(ratios, ci_level)
        row.update(median_ref=med_a, median_sim=med_b, diff=med_b - med_a, diff_lo=lo,
                   diff_hi=hi, ratio=med_b / med_a if med_a > 0 else float("nan"),
                   ratio_lo=rlo, ratio_hi=rhi, effect=float(2 * auc - 1),
                   ks_p=float(stats.ks_2samp(mean_b, mean_a).pvalue))
        rows.append(row)
    cols = ["feature", "median_ref", "median_sim", "diff", "diff_lo", "diff_hi", "ratio",
            "ratio_lo", "ratio_hi", "effect", "ks_p", "ks_p_holm", "n_ref", "n_sim",
            "significant"]
    df = pd.DataFrame(rows).reindex(columns=cols)
    df["ks_p_holm"] = holm(df["ks_p"].to_numpy(float))
    df["significant"] = ((df["ks_p_holm"] < alpha)
                         & ((df["diff_lo"] > 0) | (df["diff_hi"] < 0))).fillna(False)
    df["significant"] = df["significant"].astype(bool)
    return df


def _boot_medians(x: np.ndarray, g: np.ndarray, n_boot: int, rng) -> np.ndarray:
    """Medians of ``x`` with galaxies resampled with replacement."""
    if n_boot <= 0:
        return np.full(1, np.median(x))
    codes, uniq = pd.factorize(g)
    order = np.argsort(codes, kind="stable")
    starts = np.r_[0, np.cumsum(np.bincount(codes))]
    out = np.empty(n_boot)
    for b in range(n_boot):
        pick = rng.integers(0, len(uniq), len(uniq))
        idx = np.concatenate([order[starts[k]:starts[k + 1]] for k in pick])
        out[b] = np.median(x[idx])
    return out


def _q(values: np.ndarray, level: float) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(v, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def describe_differences(df: pd.DataFrame, *, only_significant: bool = True) -> list[str]:
    """One plain sentence per (significant) feature difference.

    Parameters
    ----------
    df : DataFrame
        The output of :func:`feature_differences`.
    only_significant : bool
        Describe only rows marked ``significant``.

    Returns
    -------
    list of str
        E.g. ``"half-light radius 40% smaller (median 1.20 vs 2.00 arcsec)"``,
        ``"g-r 0.30 mag bluer"``, ordered by decreasing absolute effect size.
    """
    rows = df[df["significant"]] if only_significant else df.dropna(subset=["diff"])
    rows = rows.reindex(rows["effect"].abs().sort_values(ascending=False).index)
    out = []
    for _, r in rows.iterrows():
        label, kind = DESCRIPTIONS.get(r["feature"], (r["feature"], "diff"))
        d = r["diff"]
        if kind == "ratio" and np.isfinite(r["ratio"]):
            pct = 100 * (r["ratio"] - 1)
            word = "larger" if pct > 0 else "smaller"
            unit = " arcsec" if r["feature"].endswith("arcsec") else ""
            out.append(f"{label} {abs(pct):.0f}% {word} (median {r['median_sim']:.2f} vs "
                       f"{r['median_ref']:.2f}{unit})")
        elif kind == "colour":
            word = "redder" if d > 0 else "bluer"
            out.append(f"{label} {abs(d):.2f} mag {word}")
        elif kind == "mag":
            word = "fainter" if d > 0 else "brighter"
            out.append(f"{label} {abs(d):.2f} mag {word}")
        else:
            word = "higher" if d > 0 else "lower"
            out.append(f"{label} {abs(d):.3g} {word} (median {r['median_sim']:.3g} vs "
                       f"{r['median_ref']:.3g})")
    return out
