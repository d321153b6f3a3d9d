"""The galaxy population of the synthetic sky: scaling relations and draws.

A galaxy is a row of a table. Its *intrinsic* columns are drawn here from
scaling relations of low-redshift galaxies; its *derived* columns (angular
size, B-V, component radii, global Sersic index, magnitudes in g and i) follow
from the intrinsic ones through :func:`derive_properties`, so that a deviation
that moves an intrinsic quantity moves exactly what depends on it. Each image
of a galaxy (a projection) adds an orientation and a scene: sub-pixel
centring, an occasional neighbouring galaxy and an occasional star.

Every galaxy and every image has its own random stream, derived from
``(seed, stream, galaxy index[, projection])`` with
:class:`numpy.random.SeedSequence`; galaxy ``i`` is therefore the same
whatever the number of galaxies drawn or of processes used.
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import pandas as pd
from scipy import special

log = logging.getLogger(__name__)

__all__ = ["draw_population", "derive_properties", "draw_images", "STREAMS",
           "PROPERTY_COLUMNS", "MAG_LIMIT_R", "Z_RANGE", "kpc_per_arcsec",
           "distance_modulus", "sersic_index_of_composite"]

#: apparent r-band limit of the SDSS main galaxy sample (Strauss et al. 2002)
MAG_LIMIT_R = 17.77
#: redshift range of the population
Z_RANGE = (0.01, 0.2)
#: log10 stellar mass range, Msun
LOG_MSTAR_RANGE = (9.0, 12.0)
#: absolute r magnitude of the Sun, AB (Willmer 2018, ApJS 236, 47)
MSUN_R = 4.65
#: random streams: first element of every SeedSequence spawn key
STREAMS = {"observed": 1, "suite": 2, "sanity": 3, "split": 4}

#: property columns every synthetic manifest carries (see DESIGN.md)
PROPERTY_COLUMNS = ("log_mstar", "sfr_100", "sfr_500", "metallicity", "age", "b_v",
                    "g_r", "redshift", "r_half_arcsec", "r_half_kpc", "sersic_n", "bt",
                    "inclination")

_N_GALAXY_VARIATES = 20
_N_IMAGE_VARIATES = 24
_COSMOLOGY = dict(H0=70.0, Om0=0.3)


# ----------------------------------------------------------------------
# cosmology tables (flat LCDM, H0 = 70 km/s/Mpc, Omega_m = 0.3)

@functools.lru_cache(maxsize=1)
def _z_tables() -> dict[str, np.ndarray]:
    from astropy.cosmology import FlatLambdaCDM

    cosmo = FlatLambdaCDM(**_COSMOLOGY)
    z = np.linspace(0.001, 0.4, 4000)
    return {"z": z,
            "dm": cosmo.distmod(z).value,
            "volume": cosmo.comoving_volume(z).value,
            "kpc_per_arcsec": 1.0 / cosmo.arcsec_per_kpc_proper(z).value}


def distance_modulus(z) -> np.ndarray:
    """Distance modulus (mag) at redshift ``z`` (flat LCDM, H0 70, Om 0.3)."""
    t = _z_tables()
    return np.interp(z, t["z"], t["dm"])


def kpc_per_arcsec(z) -> np.ndarray:
    """Proper kpc per arcsec at redshift ``z`` (flat LCDM, H0 70, Om 0.3)."""
    t = _z_tables()
    return np.interp(z, t["z"], t["kpc_per_arcsec"])


# ----------------------------------------------------------------------
# scaling relations

def quenched_fraction(log_mstar) -> np.ndarray:
    """Fraction of quenched galaxies at stellar mass ``log_mstar`` (log Msun).

    A logistic step through 50% at 10^10.4 Msun, close to the red fraction of
    SDSS galaxies (Baldry et al. 2006, MNRAS 373, 469; Peng et al. 2010).
    """
    return 1.0 / (1.0 + np.exp(-(np.asarray(log_mstar) - 10.4) / 0.3))


def mean_g_r(log_mstar, quenched) -> np.ndarray:
    """Mean g-r (mag) of the blue cloud or red sequence at ``log_mstar``."""
    x = np.asarray(log_mstar, dtype=float)
    return np.where(quenched, 0.74 + 0.04 * (x - 10.5), 0.40 + 0.11 * (x - 10.0))


def mass_to_light_r(g_r) -> np.ndarray:
    """r-band stellar mass-to-light ratio (Msun/Lsun) from g-r colour.

    Bell et al. (2003, ApJS 149, 289), ``log M/L_r = -0.306 + 1.097 (g-r)``,
    shifted by -0.093 dex to a Kroupa/Chabrier initial mass function.
    """
    return 10.0 ** (-0.306 - 0.093 + 1.097 * np.asarray(g_r))


def absolute_mag_r(log_mstar, g_r) -> np.ndarray:
    """Absolute AB r magnitude of a galaxy of stellar mass and colour."""
    log_l = np.asarray(log_mstar) - np.log10(mass_to_light_r(g_r))
    return MSUN_R - 2.5 * log_l


def size_kpc(log_mstar, quenched) -> np.ndarray:
    """Median r-band half-light radius (kpc) from the Shen et al. (2003) relations.

    Late types: ``R = 0.1 M^0.14 (1 + M / 3.98e10)^0.25``; early types:
    ``R = 2.88e-6 M^0.56`` (MNRAS 343, 978, eqs. 17-18, Table 1).
    """
    m = 10.0 ** np.asarray(log_mstar, dtype=float)
    late = 0.1 * m ** 0.14 * (1.0 + m / 3.98e10) ** (0.39 - 0.14)
    early = 2.88e-6 * m ** 0.56
    return np.where(quenched, early, late)


def _mass_function(log_mstar) -> np.ndarray:
    """Double Schechter stellar mass function per dex (Baldry et al. 2012)."""
    x = 10.0 ** (np.asarray(log_mstar) - 10.66)
    return np.log(10) * np.exp(-x) * (3.96e-3 * x ** (1 - 0.35) + 0.79e-3 * x ** (1 - 1.47))


def _z_max(log_mstar, g_r) -> np.ndarray:
    """Redshift out to which a galaxy is brighter than ``MAG_LIMIT_R``."""
    t = _z_tables()
    dm_max = MAG_LIMIT_R - absolute_mag_r(log_mstar, g_r)
    z = np.interp(dm_max, t["dm"], t["z"])
    return np.clip(z, Z_RANGE[0] + 1e-3, Z_RANGE[1])


@functools.lru_cache(maxsize=1)
def _mass_cdf() -> tuple[np.ndarray, np.ndarray]:
    """CDF of log M* in a flux-limited sample: mass function times V_max."""
    t = _z_tables()
    grid = np.linspace(*LOG_MSTAR_RANGE, 1201)
    fq = quenched_fraction(grid)
    vmax = np.zeros_like(grid)
    for frac, q in ((fq, True), (1 - fq, False)):
        zmax = _z_max(grid, mean_g_r(grid, q))
        v = np.interp(zmax, t["z"], t["volume"]) - np.interp(Z_RANGE[0], t["z"], t["volume"])
        vmax += frac * v
    pdf = _mass_function(grid) * vmax
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(grid))])
    return grid, cdf / cdf[-1]


def _sersic_enclosed(x, n):
    """Fraction of a Sersic profile's light inside ``x`` half-light radii."""
    b = special.gammaincinv(2 * n, 0.5)
    return special.gammainc(2 * n, b * np.power(x, 1.0 / n))


def _composite_radius(frac, bt, n_bulge, bulge_ratio) -> np.ndarray:
    """Radius (in disc half-light radii) enclosing ``frac`` of a bulge + disc.

    Disc: exponential; bulge: Sersic ``n_bulge`` with half-light radius
    ``bulge_ratio`` disc radii; both face-on and circular. Vectorised bisection.
    """
    bt, n_bulge, ratio = np.broadcast_arrays(*(np.asarray(a, dtype=float)
                                              for a in (bt, n_bulge, bulge_ratio)))
    lo = np.full(bt.shape, 1e-4)
    hi = np.full(bt.shape, 20.0)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        enc = (1 - bt) * _sersic_enclosed(mid, 1.0) + bt * _sersic_enclosed(mid / ratio, n_bulge)
        below = enc < frac
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


@functools.lru_cache(maxsize=1)
def _concentration_table() -> tuple[np.ndarray, np.ndarray]:
    n = np.linspace(0.5, 8.0, 400)
    c = _sersic_concentration(n)
    return c, n


def _sersic_concentration(n) -> np.ndarray:
    b = special.gammaincinv(2 * n, 0.5)
    return (special.gammaincinv(2 * n, 0.9) / b) ** n


def sersic_index_of_composite(bt, n_bulge, bulge_ratio) -> np.ndarray:
    """Global Sersic index of a bulge + exponential disc.

    Defined as the index of the single Sersic profile with the same
    concentration ``R90 / R50`` as the composite (face-on light profile).
    """
    conc = (_composite_radius(0.9, bt, n_bulge, bulge_ratio)
            / _composite_radius(0.5, bt, n_bulge, bulge_ratio))
    c_tab, n_tab = _concentration_table()
    return np.interp(conc, c_tab, n_tab)


# ----------------------------------------------------------------------
# draws

def _variates(seed: int, key: tuple[int, ...], n: int, k: int) -> np.ndarray:
    """``(n, k)`` uniforms, row ``i`` from its own SeedSequence ``(seed, key + (i,))``."""
    out = np.empty((n, k))
    for i in range(n):
        ss = np.random.SeedSequence(seed, spawn_key=key + (i,))
        out[i] = np.random.Generator(np.random.PCG64(ss)).random(k)
    return out


def _check_count(name: str, n) -> int:
    if int(n) != n or n < 0:
        raise ValueError(f"{name} must be a non-negative integer; got {n!r}")
    return int(n)


def draw_population(n: int, seed: int, stream: str = "observed",
                    id_prefix: str | None = None) -> pd.DataFrame:
    """Draw the intrinsic properties of ``n`` galaxies of a flux-limited sample.

    Parameters
    ----------
    n : int
        Number of galaxies.
    seed : int
        Master seed of the synthetic sky.
    stream : str
        Random stream, one of ``STREAMS`` (``"observed"``, ``"suite"``,
        ``"sanity"``): the observed set and the simulation suites are
        independent draws of the same population.
    id_prefix : str, optional
        Prefix of ``galaxy_id`` (default: ``"obs"`` for the observed stream,
        ``"sim"`` for the suites, ``"san"`` for sanity sets).

    Returns
    -------
    pandas.DataFrame
        One row per galaxy with ``galaxy_id``, ``galaxy_index`` and the
        intrinsic and derived properties (see :func:`derive_properties`).

    Notes
    -----
    Stellar masses follow the Baldry et al. (2012) double Schechter function
    weighted by the volume in which each galaxy is brighter than r = 17.77,
    which peaks near 10^10.7 Msun; the redshift of each galaxy is uniform in
    comoving volume out to that limit (0.01 < z < 0.2). Magnitudes carry no
    K-correction and no dust.
    """
    n = _check_count("n", n)
    if stream not in STREAMS:
        raise ValueError(f"stream must be one of {sorted(STREAMS)}; got {stream!r}")
    prefix = id_prefix or {"observed": "obs", "suite": "sim"}.get(stream, "san")
    u = _variates(int(seed), (STREAMS[stream], 0), n, _N_GALAXY_VARIATES)
    g = special.ndtri(np.clip(u, 1e-12, 1 - 1e-12))  # standard normals

    grid, cdf = _mass_cdf()
    log_mstar = np.interp(u[:, 0], cdf, grid)
    quenched = u[:, 1] < quenched_fraction(log_mstar)

    g_r = mean_g_r(log_mstar, quenched) + np.where(quenched, 0.03, 0.07) * g[:, 3]
    g_r = np.clip(g_r, 0.05, 1.1)
    r_i = 0.14 + 0.34 * g_r + 0.02 * g[:, 4]

    t = _z_tables()
    v_lo = np.interp(Z_RANGE[0], t["z"], t["volume"])
    v_hi = np.interp(_z_max(log_mstar, g_r), t["z"], t["volume"])
    redshift = np.interp(v_lo + u[:, 2] * (v_hi - v_lo), t["volume"], t["z"])
    mag_r = absolute_mag_r(log_mstar, g_r) + distance_modulus(redshift)

    # star formation: main sequence of Renzini & Peng (2015), quenched 1.5 dex below
    log_sfr = (0.76 * log_mstar - 7.64 - np.where(quenched, 1.5, 0.0)
               + np.where(quenched, 0.5, 0.3) * g[:, 5])
    log_ratio_500 = np.where(quenched, 0.4 + 0.2 * g[:, 6], 0.1 * g[:, 6])
    # stellar mass-metallicity relation shaped after Gallazzi et al. (2005)
    metallicity = (-0.65 + 0.75 / (1.0 + np.exp(-(log_mstar - 10.0) / 0.35))
                   + np.where(quenched, 0.05, 0.0)
                   + np.where(quenched, 0.10, 0.15) * g[:, 7])
    age = np.where(quenched, 10 ** (0.93 + 0.08 * (log_mstar - 10.5) + 0.06 * g[:, 8]),
                   10 ** (0.55 + 0.15 * (log_mstar - 10.0) + 0.10 * g[:, 8]))

    r_half_kpc = size_kpc(log_mstar, quenched) * 10 ** (
        np.where(quenched, 0.12, 0.20) * g[:, 9])

    bt_mean = np.where(quenched, np.clip(0.45 + 0.12 * (log_mstar - 10.5), 0.3, 0.85),
                       np.clip(0.05 + 0.12 * (log_mstar - 9.0), 0.05, 0.45))
    kappa = np.where(quenched, 10.0, 8.0)
    bt = special.betaincinv(bt_mean * kappa, (1 - bt_mean) * kappa, u[:, 10])
    n_bulge = np.where(quenched, 3.0, 2.0) + 0.5 * np.floor(3 * u[:, 11])

    df = pd.DataFrame({
        "galaxy_id": [f"{prefix}-{i:06d}" for i in range(n)],
        "galaxy_index": np.arange(n, dtype=np.int64),
        "log_mstar": log_mstar,
        "quenched": quenched,
        "redshift": redshift,
        "mag_r": mag_r,
        "g_r": g_r,
        "r_i": r_i,
        "sfr_100": 10 ** log_sfr,
        "sfr_500": 10 ** (log_sfr + log_ratio_500),
        "metallicity": metallicity,
        "age": np.clip(age, 0.3, 13.0),
        "r_half_kpc": r_half_kpc,
        "bt": bt,
        "n_bulge": n_bulge,
        "bulge_ratio": 0.3 + 0.3 * u[:, 12],
        "knot_frac": np.where(quenched, 0.0, 0.05 + 0.15 * u[:, 13]),
        "n_knots": (8 + np.floor(25 * u[:, 14])).astype(np.int64),
        "disc_q0": 0.15 + 0.10 * u[:, 15],
        "bulge_q0": 0.6 + 0.3 * u[:, 16],
        "smoothing_kpc": np.zeros(n),
    })
    return derive_properties(df)


def derive_properties(df: pd.DataFrame) -> pd.DataFrame:
    """Recompute the columns that follow from the intrinsic ones.

    ``b_v`` from ``g_r`` (Jester et al. 2005, AJ 130, 873:
    ``g-r = 1.02 (B-V) - 0.22``); ``r_half_arcsec`` from ``r_half_kpc`` and
    ``redshift``; disc and bulge half-light radii (arcsec) such that the
    face-on composite has half-light radius ``r_half_arcsec``; the global
    ``sersic_n``; ``mag_g`` and ``mag_i`` from ``mag_r`` and the colours.
    """
    df = df.copy()
    df["b_v"] = (df["g_r"] + 0.22) / 1.02
    df["r_half_arcsec"] = df["r_half_kpc"] / kpc_per_arcsec(df["redshift"].to_numpy())
    x50 = _composite_radius(0.5, df["bt"], df["n_bulge"], df["bulge_ratio"])
    df["r_disc_arcsec"] = df["r_half_arcsec"] / x50
    df["r_bulge_arcsec"] = df["r_disc_arcsec"] * df["bulge_ratio"]
    df["sersic_n"] = sersic_index_of_composite(df["bt"], df["n_bulge"], df["bulge_ratio"])
    df["mag_g"] = df["mag_r"] + df["g_r"]
    df["mag_i"] = df["mag_r"] - df["r_i"]
    return df


def draw_images(galaxies: pd.DataFrame, seed: int, stream: str, n_projections: int = 1,
                neighbour_fraction: float = 0.15, star_fraction: float = 0.10,
                ) -> pd.DataFrame:
    """Expand galaxies into images: orientation and scene per projection.

    Parameters
    ----------
    galaxies : DataFrame
        Output of :func:`draw_population` (or a deviated copy of it).
    seed : int
        Master seed.
    stream : str
        Random stream of the galaxies (``"observed"``, ``"suite"``...).
    n_projections : int
        Random orientations per galaxy (``projection`` 0..P-1).
    neighbour_fraction, star_fraction : float
        Probability that an image holds a neighbouring galaxy / a star.

    Returns
    -------
    DataFrame
        One row per image: the galaxy's columns plus ``projection``,
        ``inclination`` (deg, 0 face-on), ``position_angle`` (deg), the
        projected axis ratios ``q_disc`` and ``q_bulge``, ``offset_x``,
        ``offset_y`` (pixels), neighbour (``nb_*``) and star (``star_*``)
        columns and the integer seeds ``knot_seed`` and ``noise_seed``.

    Notes
    -----
    The random numbers of an image depend only on ``(seed, stream,
    galaxy_index, projection)``, never on the galaxy's properties: the same
    galaxy seen under a deviation has the same orientation, neighbours, knot
    positions and noise.
    """
    n_projections = _check_count("n_projections", n_projections)
    for name, f in (("neighbour_fraction", neighbour_fraction),
                    ("star_fraction", star_fraction)):
        if not 0.0 <= f <= 1.0:
            raise ValueError(f"{name} must be in [0, 1]; got {f!r}")
    base = STREAMS[stream]
    idx = np.repeat(galaxies["galaxy_index"].to_numpy(), n_projections)
    proj = np.tile(np.arange(n_projections), len(galaxies))
    u = np.empty((len(idx), _N_IMAGE_VARIATES))
    seeds = np.empty((len(idx), 2), dtype=np.int64)
    for j, (i, p) in enumerate(zip(idx, proj)):
        ss = np.random.SeedSequence(int(seed), spawn_key=(base, 1, int(i), int(p)))
        u[j] = np.random.Generator(np.random.PCG64(ss)).random(_N_IMAGE_VARIATES)
        seeds[j] = ss.generate_state(2, dtype=np.uint32)

    df = galaxies.loc[galaxies.index.repeat(n_projections)].reset_index(drop=True)
    df["projection"] = proj
    cos_i = u[:, 0]
    df["inclination"] = np.degrees(np.arccos(cos_i))
    df["position_angle"] = 180.0 * u[:, 1]
    q0d, q0b = df["disc_q0"].to_numpy(), df["bulge_q0"].to_numpy()
    df["q_disc"] = np.sqrt(cos_i ** 2 * (1 - q0d ** 2) + q0d ** 2)
    df["q_bulge"] = np.sqrt(cos_i ** 2 * (1 - q0b ** 2) + q0b ** 2)
    df["offset_x"] = u[:, 2] - 0.5
    df["offset_y"] = u[:, 3] - 0.5

    has_nb = u[:, 4] < neighbour_fraction
    radius, angle = 14.0 + 16.0 * u[:, 5], 2 * np.pi * u[:, 6]
    df["nb_present"] = has_nb
    df["nb_x"] = np.where(has_nb, radius * np.cos(angle), 0.0)
    df["nb_y"] = np.where(has_nb, radius * np.sin(angle), 0.0)
    df["nb_mag_r"] = np.where(has_nb, df["mag_r"] + 0.3 + 2.7 * u[:, 7], np.nan)
    df["nb_g_r"] = 0.35 + 0.5 * u[:, 8]
    df["nb_r_half_arcsec"] = 0.6 + 2.0 * u[:, 9]
    df["nb_sersic_n"] = np.where(u[:, 10] < 0.6, 1.0, 4.0)
    df["nb_q"] = 0.3 + 0.7 * u[:, 11]
    df["nb_position_angle"] = 180.0 * u[:, 12]

    has_star = u[:, 13] < star_fraction
    radius, angle = 8.0 + 22.0 * u[:, 14], 2 * np.pi * u[:, 15]
    df["star_present"] = has_star
    df["star_x"] = np.where(has_star, radius * np.cos(angle), 0.0)
    df["star_y"] = np.where(has_star, radius * np.sin(angle), 0.0)
    df["star_mag_r"] = np.where(has_star, 15.5 + 5.0 * u[:, 16], np.nan)
    df["star_g_r"] = 0.2 + 1.2 * u[:, 17]

    df["knot_seed"] = seeds[:, 0]
    df["noise_seed"] = seeds[:, 1]
    return df
