"""Particle snapshots -> band surface-brightness maps and galaxy properties.

The chain: load a snapshot with pynbody (tipsy as NIHAO writes it, Gadget/HDF5
as TNG and EAGLE write it), keep the stars of the main halo within an
aperture around the shrinking-sphere centre, orient them, give each star
particle its light from an SSP table, and project the light onto a grid of
surface brightness (Lsun/kpc^2) that :func:`~galrate.mock.observe.mock_observe`
places on the sky.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..survey import Survey, load_survey
from .dust import slab_transmission
from .observe import MockResult, mock_observe
from .photometry import SUN_ABS_MAG_AB, ZSUN, arcsec_per_kpc, resolve_cosmology
from .ssp import SSP, load_ssp

log = logging.getLogger(__name__)

__all__ = ["StarParticles", "load_stars", "orientations", "star_luminosities",
           "project_light", "galaxy_properties", "half_light_radius_kpc",
           "mock_particles", "ORIENTATIONS"]

ORIENTATIONS = ("faceon", "edgeon", "random")


@dataclass
class StarParticles:
    """Star particles of one galaxy, centred on it, in physical units.

    Attributes
    ----------
    pos_kpc : ndarray, shape (N, 3)
        Positions relative to the centre, kpc.
    vel_kms : ndarray, shape (N, 3)
        Velocities relative to the stars' mean within the aperture, km/s.
    mass_msun, massform_msun : ndarray, shape (N,)
        Present and formation mass in Msun (``massform`` equals ``mass``
        where the snapshot has no formation mass).
    age_yr : ndarray, shape (N,)
        Stellar ages in years.
    metallicity : ndarray, shape (N,)
        Metal mass fraction Z.
    """

    pos_kpc: np.ndarray
    vel_kms: np.ndarray
    mass_msun: np.ndarray
    massform_msun: np.ndarray
    age_yr: np.ndarray
    metallicity: np.ndarray
    has_massform: bool = False

    def __len__(self) -> int:
        return len(self.mass_msun)


def _main_halo_stars(sim):
    """Stars of the main halo from a halo catalogue, or all stars when there is none."""
    try:
        halos = sim.halos()
    except Exception as exc:  # pynbody raises RuntimeError and others when none found
        log.debug("%s: no halo catalogue (%s); using the densest region of all stars",
                  sim.filename, exc)
        return sim.star, "all stars, shrinking-sphere centre"
    best, best_n = None, 0
    for key in list(halos.keys())[:10]:
        n = len(halos[key].star)
        if n > best_n:
            best, best_n = key, n
    if best is None:
        return sim.star, "all stars (halo catalogue holds no stars)"
    return halos[best].star, f"halo {best} of the catalogue"


def load_stars(path: str | Path, aperture_kpc: float = 30.0) -> tuple[StarParticles, str]:
    """Load the main galaxy's star particles from a snapshot.

    Parameters
    ----------
    path : path
        Anything ``pynbody.load`` reads.
    aperture_kpc : float
        Radius around the centre within which stars belong to the galaxy.

    Returns
    -------
    (StarParticles, str)
        The stars and a one-line description of the selection.

    Raises
    ------
    ValueError
        Unreadable snapshot, no star particles, none within the aperture.
    """
    import pynbody

    if aperture_kpc <= 0:
        raise ValueError(f"aperture_kpc must be > 0; got {aperture_kpc}")
    with warnings.catch_warnings():
        # pynbody warns about missing parameter files, casts and unclosed files;
        # those are its business, not the user's
        warnings.simplefilter("ignore")
        try:
            sim = pynbody.load(str(path))
        except Exception as exc:  # pynbody raises IOError, ValueError, RuntimeError...
            raise ValueError(f"{path}: pynbody cannot read it: {exc}") from exc
        sim.physical_units()
        stars, how = _main_halo_stars(sim)
        if len(stars) == 0:
            raise ValueError(f"{path}: no star particles")
        pos = np.asarray(stars["pos"].in_units("kpc"), dtype=np.float64)
        if len(stars) >= 20:
            cen = np.asarray(pynbody.analysis.halo.shrink_sphere_center(
                stars, min_particles=min(100, len(stars) // 2)).in_units("kpc"))
        else:
            cen = np.average(pos, axis=0, weights=np.asarray(stars["mass"]))
        pos = pos - cen
        keep = np.einsum("ij,ij->i", pos, pos) < aperture_kpc ** 2
        if not keep.any():
            raise ValueError(f"{path}: no star particles within {aperture_kpc} kpc of "
                             "the centre")
        mass = np.asarray(stars["mass"].in_units("Msol"), dtype=np.float64)
        has_massform = "massform" in stars.loadable_keys() or "massform" in stars.keys()
        massform = (np.asarray(stars["massform"].in_units("Msol"), dtype=np.float64)
                    if has_massform else mass)
        age = np.asarray(stars["age"].in_units("yr"), dtype=np.float64)
        metals = np.asarray(stars["metals"], dtype=np.float64)
        vel = np.asarray(stars["vel"].in_units("km s^-1"), dtype=np.float64)
    vel = vel[keep] - np.average(vel[keep], axis=0, weights=mass[keep])
    out = StarParticles(pos_kpc=pos[keep], vel_kms=vel, mass_msun=mass[keep],
                        massform_msun=massform[keep], age_yr=np.clip(age[keep], 0, None),
                        metallicity=np.clip(metals[keep], 0, None),
                        has_massform=has_massform)
    log.info("%s: %d star particles within %g kpc (%s)", path, len(out), aperture_kpc, how)
    return out, how


def _spin_axis(stars: StarParticles, disk_kpc: float) -> np.ndarray:
    """Unit angular-momentum vector of stars within ``disk_kpc``; the minor axis if none."""
    r2 = np.einsum("ij,ij->i", stars.pos_kpc, stars.pos_kpc)
    inner = r2 < disk_kpc ** 2
    if inner.sum() < 10:
        inner = np.ones(len(stars), dtype=bool)
    m = stars.mass_msun[inner, None]
    ang = (m * np.cross(stars.pos_kpc[inner], stars.vel_kms[inner])).sum(axis=0)
    norm = np.linalg.norm(ang)
    if norm > 0 and np.isfinite(norm):
        return ang / norm
    log.info("stars carry no net angular momentum; using the minor axis of their shape")
    x = stars.pos_kpc[inner]
    tensor = (x * m).T @ x
    _, vecs = np.linalg.eigh(tensor)
    return vecs[:, 0]


def orientations(stars: StarParticles, orientation: str | list[str] = "faceon",
                 n_random: int = 1, rng: np.random.Generator | None = None,
                 disk_kpc: float = 5.0) -> list[tuple[str, np.ndarray, float]]:
    """Rotation matrices for the projections of a galaxy.

    Parameters
    ----------
    orientation : str or list of str
        ``"faceon"``, ``"edgeon"`` (angular momentum of the stars within
        ``disk_kpc`` along the line of sight, resp. perpendicular to it,
        via ``pynbody.analysis.angmom``) or ``"random"`` (``n_random``
        uniformly random rotations from ``rng``).

    Returns
    -------
    list of (name, R, inclination_deg)
        ``R`` (3, 3) maps the centred coordinates to the observer's frame
        (x right, y up, z towards the observer); the inclination is the angle
        between the spin axis and the line of sight, 0-90 degrees.
    """
    from pynbody.analysis import angmom
    from scipy.spatial.transform import Rotation

    names = [orientation] if isinstance(orientation, str) else list(orientation)
    spin = _spin_axis(stars, disk_kpc)
    out = []
    for name in names:
        if name == "faceon":
            mats = [("faceon", angmom.calc_faceon_matrix(spin))]
        elif name == "edgeon":
            mats = [("edgeon", angmom.calc_sideon_matrix(spin))]
        elif name == "random":
            if rng is None:
                raise ValueError("random orientations need a seeded rng")
            if int(n_random) < 1:
                raise ValueError(f"n_random must be >= 1; got {n_random}")
            rots = Rotation.random(int(n_random), random_state=rng).as_matrix()
            mats = [(f"random{k}", rots[k]) for k in range(int(n_random))]
        else:
            raise ValueError(f"orientation {name!r} is not one of {ORIENTATIONS}")
        for label, mat in mats:
            los = np.asarray(mat)[2] @ spin
            incl = math.degrees(math.acos(min(1.0, abs(float(los)))))
            out.append((label, np.asarray(mat, dtype=np.float64), incl))
    return out


def star_luminosities(stars: StarParticles, bands, ssp: SSP) -> dict[str, np.ndarray]:
    """Band luminosity of each star particle in solar units, shape (N,) per band.

    ``L = massform * 10**(-0.4 (m_ssp - M_sun))`` with ``m_ssp`` the SSP
    magnitude per solar mass formed at the particle's age and metallicity
    and ``M_sun`` the Sun's absolute AB magnitude (Willmer 2018) for
    g, r, i; for Vega B and V the Sun's 5.44 and 4.81 (Willmer 2018).
    """
    sun = dict(SUN_ABS_MAG_AB, B=5.44, V=4.81)
    out = {}
    for band in bands:
        if band not in sun:
            raise ValueError(f"no solar magnitude for band {band!r}; known {sorted(sun)}")
        mag = ssp.mag_per_msun(stars.age_yr, stars.metallicity, band)
        out[band] = stars.massform_msun * 10.0 ** (-0.4 * (mag - sun[band]))
    return out


def _neighbour_sigma_kpc(pos: np.ndarray, k: int, max_kpc: float) -> np.ndarray:
    from scipy.spatial import cKDTree

    k = min(k, len(pos) - 1)
    if k < 1:
        return np.zeros(len(pos))
    dist, _ = cKDTree(pos).query(pos, k=k + 1)
    return np.minimum(0.5 * dist[:, -1], max_kpc)


def project_light(pos_kpc: np.ndarray, light: dict[str, np.ndarray], *, npix: int,
                  pixel_scale_kpc: float, smoothing_kpc: np.ndarray | None = None
                  ) -> dict[str, np.ndarray]:
    """Project particle light onto a square grid centred on the origin.

    Parameters
    ----------
    pos_kpc : ndarray, shape (N, 3) or (N, 2)
        Positions in the observer's frame (x, y used), kpc.
    light : mapping band -> ndarray, shape (N,)
        Light per particle (any linear unit, e.g. Lsun).
    npix : int
        Grid side in pixels.
    pixel_scale_kpc : float
        Pixel side in kpc.
    smoothing_kpc : ndarray, shape (N,), optional
        Gaussian kernel sigma per particle. Particles are grouped into bins of
        sigma 25% wide; each group is histogrammed and smoothed with its
        median sigma (``scipy.ndimage.gaussian_filter``), which conserves the
        light that stays on the grid.

    Returns
    -------
    dict band -> ndarray, shape (npix, npix)
        Light per kpc^2 (row = y, column = x).
    """
    from scipy.ndimage import gaussian_filter

    half = 0.5 * npix * pixel_scale_kpc
    edges = np.linspace(-half, half, npix + 1)
    x, y = pos_kpc[:, 0], pos_kpc[:, 1]
    if smoothing_kpc is None:
        groups = [(np.arange(len(x)), 0.0)]
    else:
        sig_pix = np.asarray(smoothing_kpc) / pixel_scale_kpc
        small = sig_pix < 0.5
        groups = [(np.flatnonzero(small), 0.0)]
        if (~small).any():
            ids = np.floor(np.log(sig_pix[~small] / 0.5) / np.log(1.25)).astype(int)
            big = np.flatnonzero(~small)
            for g in np.unique(ids):
                members = big[ids == g]
                groups.append((members, float(np.median(sig_pix[members]))))
    area = pixel_scale_kpc ** 2
    out = {}
    for band, lum in light.items():
        total = np.zeros((npix, npix))
        for members, sigma in groups:
            if len(members) == 0:
                continue
            hist, _, _ = np.histogram2d(y[members], x[members], bins=(edges, edges),
                                        weights=lum[members])
            total += gaussian_filter(hist, sigma, mode="constant") if sigma > 0 else hist
        out[band] = total / area
    return out


def half_light_radius_kpc(pos_kpc: np.ndarray, light: np.ndarray) -> float:
    """Projected (x, y) circular radius enclosing half the light, kpc."""
    r = np.hypot(pos_kpc[:, 0], pos_kpc[:, 1])
    order = np.argsort(r)
    cum = np.cumsum(light[order])
    return float(np.interp(0.5 * cum[-1], cum, r[order]))


def galaxy_properties(stars: StarParticles, ssp: SSP) -> dict[str, float]:
    """Manifest properties of a galaxy from its star particles.

    Returns
    -------
    dict
        ``log_mstar`` (log10 Msun, present stellar mass in the aperture),
        ``sfr_100``, ``sfr_500`` (Msun/yr: mass formed in the last 100 / 500
        Myr divided by that time; formation mass where the snapshot has it,
        else present mass), ``metallicity`` (log10 of the mass-weighted Z over
        Zsun = 0.0134, Asplund et al. 2009), ``age`` (mass-weighted mean,
        Gyr), ``g_r`` and ``b_v`` (total colours from the SSP table: AB g-r;
        Vega B-V where the table has B and V, else from g-r with Jester et
        al. 2005, AJ 130, 873: B-V = (g-r + 0.22)/1.02), ``abs_mag_g``,
        ``abs_mag_r``, ``abs_mag_i`` (AB, no dust).
    """
    mass = stars.mass_msun
    total = mass.sum()
    props = {"log_mstar": float(np.log10(total)) if total > 0 else float("nan")}
    for myr in (100, 500):
        young = stars.age_yr < myr * 1e6
        props[f"sfr_{myr}"] = float(stars.massform_msun[young].sum() / (myr * 1e6))
    zmean = np.average(stars.metallicity, weights=mass)
    props["metallicity"] = float(np.log10(zmean / ZSUN)) if zmean > 0 else float("nan")
    props["age"] = float(np.average(stars.age_yr, weights=mass) / 1e9)
    sun = dict(SUN_ABS_MAG_AB, B=5.44, V=4.81)
    bands = [b for b in ("g", "r", "i", "B", "V") if b in ssp.bands]
    lum = star_luminosities(stars, bands, ssp)
    mags = {b: sun[b] - 2.5 * np.log10(lum[b].sum()) for b in bands}
    for b in ("g", "r", "i"):
        props[f"abs_mag_{b}"] = float(mags.get(b, float("nan")))
    props["g_r"] = props["abs_mag_g"] - props["abs_mag_r"]
    if "B" in mags and "V" in mags:
        props["b_v"] = float(mags["B"] - mags["V"])
    else:
        props["b_v"] = (props["g_r"] + 0.22) / 1.02
    return props


def mock_particles(stars: StarParticles, *, survey: Survey | str, redshift: float,
                   rng: np.random.Generator, rotation: np.ndarray | None = None,
                   inclination_deg: float = 0.0, ssp: SSP | str | None = None,
                   smoothing: str = "none", smoothing_neighbours: int = 16,
                   max_smoothing_kpc: float = 2.0, tau_v: float = 0.0,
                   pixel_scale_kpc: float | None = None, cosmology=None,
                   blank_sky: np.ndarray | None = None,
                   psf_fwhm_factor: float = 1.0) -> MockResult:
    """Project star particles and observe them through the survey.

    Parameters
    ----------
    stars : StarParticles
        Centred stars of one galaxy.
    survey, redshift, rng, cosmology, blank_sky, psf_fwhm_factor
        As in :func:`~galrate.mock.observe.mock_observe`.
    rotation : ndarray, shape (3, 3), optional
        Observer's frame (see :func:`orientations`); identity by default.
    inclination_deg : float
        Inclination of the projection, for the dust slab.
    ssp : SSP or str, optional
        The SSP table (pynbody's by default; a CSV path for a user table).
    smoothing : {"none", "adaptive"}
        ``"adaptive"``: each star is spread as a 2-d Gaussian with sigma half
        the 3-d distance to its ``smoothing_neighbours``-th nearest star,
        capped at ``max_smoothing_kpc``.
    tau_v : float
        Face-on V optical depth of the dust slab (0: no dust); see
        :mod:`galrate.mock.dust`.
    pixel_scale_kpc : float, optional
        Map pixel; by default a quarter of a survey pixel at ``redshift``.

    Returns
    -------
    MockResult
        ``meta`` adds ``map_pixel_scale_kpc``, ``map_npix``,
        ``r_half_kpc``/``r_half_arcsec`` (projected, r band, particles) and
        ``dust_transmission`` per band.
    """
    survey = load_survey(survey)
    ssp = load_ssp(ssp)
    if smoothing not in ("none", "adaptive"):
        raise ValueError(f"smoothing must be 'none' or 'adaptive'; got {smoothing!r}")
    cosmo = resolve_cosmology(cosmology)
    scale = arcsec_per_kpc(redshift, cosmo)
    if pixel_scale_kpc is None:
        pixel_scale_kpc = 0.25 * survey.pixel_scale / scale
    size = blank_sky.shape[-1] if blank_sky is not None else survey.cutout_size
    psf_margin = 8 * max(b.psf_fwhm for b in survey.bands) * psf_fwhm_factor
    field_kpc = (size * survey.pixel_scale + psf_margin) / scale
    npix = int(math.ceil(field_kpc / pixel_scale_kpc))

    pos = stars.pos_kpc @ (np.eye(3) if rotation is None else np.asarray(rotation)).T
    bands = survey.band_names
    light = star_luminosities(stars, bands, ssp)
    transmission = {b: slab_transmission(b, tau_v, inclination_deg, redshift)
                    for b in bands}
    light = {b: light[b] * transmission[b] for b in bands}
    sigma = None
    if smoothing == "adaptive":
        sigma = _neighbour_sigma_kpc(stars.pos_kpc, smoothing_neighbours, max_smoothing_kpc)
    maps = project_light(pos, light, npix=npix, pixel_scale_kpc=pixel_scale_kpc,
                         smoothing_kpc=sigma)
    result = mock_observe(maps, unit="Lsun/kpc2", survey=survey, redshift=redshift,
                          rng=rng, pixel_scale_kpc=pixel_scale_kpc, cosmology=cosmo,
                          blank_sky=blank_sky, psf_fwhm_factor=psf_fwhm_factor)
    ref = "r" if "r" in bands else bands[len(bands) // 2]
    r_half = half_light_radius_kpc(pos, light[ref])
    result.meta.update({"map_pixel_scale_kpc": pixel_scale_kpc, "map_npix": npix,
                        "r_half_kpc": r_half, "r_half_arcsec": r_half * scale,
                        "inclination": inclination_deg, "tau_v": tau_v,
                        "dust_transmission": transmission, "smoothing": smoothing,
                        "ssp": ssp.name})
    return result
