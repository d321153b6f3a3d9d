"""``galrate mock``: a folder of simulated galaxies -> an image set.

Each galaxy of the input folder is either a particle snapshot (anything
``pynbody.load`` reads; its side files such as ``<name>.param``,
``<name>.AHF_halos`` or tipsy arrays ``<name>.<array>`` are left to pynbody)
or idealised FITS maps (one cube, or ``<name>_<band>.fits`` per band). Each is
mock-observed in one or more projections; a galaxy that fails is written to
``rejects.parquet`` with the file and the reason and the others go on.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
import tomllib
import warnings
import zlib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from ..imageset.core import ArrayStoreWriter, write_imageset
from ..provenance import ProgressCallback, no_progress, versions, write_run_record
from ..survey import Survey, load_survey, nmgy_to_mag
from .fitsmaps import group_fits_files, is_fits, read_band_maps

log = logging.getLogger(__name__)

__all__ = ["MockConfig", "load_config", "discover_galaxies", "mock_folder"]

#: file-name endings that are never a snapshot of their own
_SIDE_SUFFIXES = (".param", ".toml", ".txt", ".md", ".log", ".json", ".csv", ".parquet",
                  ".yaml", ".yml", ".py", ".png", ".jpg", ".pdf")

#: TOML table -> keys of MockConfig it may set
_TABLES = {"redshift": {"mode": "redshift_mode", "value": "redshift",
                        "catalogue": "redshift_catalogue",
                        "half_width_dex": "redshift_half_width_dex",
                        "min_count": "redshift_min_count"},
           "projections": {"orientation": "orientation", "n_random": "n_random"},
           "particles": {"aperture_kpc": "aperture_kpc", "smoothing": "smoothing",
                         "smoothing_neighbours": "smoothing_neighbours",
                         "max_smoothing_kpc": "max_smoothing_kpc", "ssp": "ssp",
                         "pixel_scale_kpc": "map_pixel_scale_kpc"},
           "dust": {"tau_v": "tau_v"},
           "images": {"unit": "unit", "pixel_scale_kpc": "pixel_scale_kpc",
                      "pixel_scale_arcsec": "pixel_scale_arcsec"}}


@dataclass
class MockConfig:
    """Resolved configuration of a mock run (the TOML file's content).

    Top-level keys: ``survey`` (built-in name or TOML path), ``seed``,
    ``source`` (suite name; the input folder's name by default),
    ``cosmology`` (astropy realization name), ``psf_fwhm_factor``,
    ``cutout_size`` (overrides the survey's), ``blank_sky`` (FITS of blank
    flux cutouts, ``(N, n_bands, H, W)`` or ``(n_bands, H, W)``). Tables:
    ``[redshift]`` mode ("fixed" or "catalogue"), value, catalogue (observed
    manifest with log_mstar and redshift), half_width_dex, min_count;
    ``[projections]`` orientation (list of "faceon", "edgeon", "random"),
    n_random; ``[particles]`` aperture_kpc, smoothing ("none"/"adaptive"),
    smoothing_neighbours, max_smoothing_kpc, ssp ("pynbody" or CSV path),
    pixel_scale_kpc; ``[dust]`` tau_v; ``[images]`` unit, pixel_scale_kpc,
    pixel_scale_arcsec (defaults for FITS maps whose headers lack them).
    """

    survey: str = "sdss"
    seed: int = 0
    source: str | None = None
    cosmology: str = "Planck18"
    psf_fwhm_factor: float = 1.0
    cutout_size: int | None = None
    blank_sky: str | None = None
    redshift_mode: str = "fixed"
    redshift: float = 0.05
    redshift_catalogue: str | None = None
    redshift_half_width_dex: float = 0.1
    redshift_min_count: int = 20
    orientation: list[str] = field(default_factory=lambda: ["faceon"])
    n_random: int = 1
    aperture_kpc: float = 30.0
    smoothing: str = "none"
    smoothing_neighbours: int = 16
    max_smoothing_kpc: float = 2.0
    ssp: str = "pynbody"
    map_pixel_scale_kpc: float | None = None
    tau_v: float = 0.0
    unit: str | None = None
    pixel_scale_kpc: float | None = None
    pixel_scale_arcsec: float | None = None

    def __post_init__(self):
        if isinstance(self.orientation, str):
            self.orientation = [self.orientation]
        if self.redshift_mode not in ("fixed", "catalogue"):
            raise ValueError(f"redshift mode must be 'fixed' or 'catalogue'; got "
                             f"{self.redshift_mode!r}")
        if self.redshift_mode == "catalogue" and not self.redshift_catalogue:
            raise ValueError("redshift mode 'catalogue' needs [redshift] catalogue = "
                             "path of an observed manifest with log_mstar and redshift")
        if self.redshift_mode == "fixed" and not self.redshift > 0:
            raise ValueError(f"[redshift] value must be > 0; got {self.redshift}")

    def resolved_survey(self) -> Survey:
        survey = load_survey(self.survey)
        if self.cutout_size is not None:
            survey = replace(survey, cutout_size=int(self.cutout_size))
        return survey


def load_config(spec: str | Path | Mapping | MockConfig | None = None) -> MockConfig:
    """A :class:`MockConfig` from a TOML file, a (nested) mapping or defaults.

    Raises
    ------
    ValueError
        Unreadable TOML, unknown keys or tables, invalid values.
    """
    if isinstance(spec, MockConfig):
        return spec
    if spec is None:
        return MockConfig()
    where = "mock configuration"
    if not isinstance(spec, Mapping):
        path = Path(spec)
        where = str(path)
        try:
            spec = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: cannot read mock configuration: {exc}") from exc
    flat: dict = {}
    top = {f.name for f in fields(MockConfig)}
    for key, value in spec.items():
        if key in _TABLES:
            if not isinstance(value, Mapping):
                raise ValueError(f"{where}: [{key}] must be a table")
            for sub, v in value.items():
                if sub not in _TABLES[key]:
                    raise ValueError(f"{where}: unknown key {sub!r} in [{key}]; allowed "
                                     f"{sorted(_TABLES[key])}")
                flat[_TABLES[key][sub]] = v
        elif key in top:
            flat[key] = value
        else:
            raise ValueError(f"{where}: unknown key {key!r}; allowed top-level keys "
                             f"{sorted(top)} and tables {sorted(_TABLES)}")
    try:
        return MockConfig(**flat)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc


def discover_galaxies(input_dir: str | Path) -> list[tuple[str, str, list[Path]]]:
    """Galaxies of an input folder as ``(galaxy_id, kind, files)``, sorted by id.

    ``kind`` is ``"fits"`` (idealised maps) or ``"snapshot"``. Hidden files,
    sub-folders and side files (see module docstring) are skipped.
    """
    root = Path(input_dir)
    if not root.is_dir():
        raise ValueError(f"input folder {root} does not exist or is not a folder")
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    fits_files = [p for p in files if is_fits(p)]
    others = [p for p in files if not is_fits(p)
              and not p.name.lower().endswith(_SIDE_SUFFIXES)]
    names = {p.name for p in others}
    snapshots = [p for p in others
                 if not any(p.name.startswith(n + ".") for n in names if n != p.name)]
    out = [(gid, "fits", paths) for gid, paths in group_fits_files(fits_files).items()]
    out += [(p.name, "snapshot", [p]) for p in snapshots]
    return sorted(out, key=lambda t: t[0])


# ----------------------------------------------------------------------
# one galaxy (runs in a worker process)

_BLANK_CACHE: dict[str, np.ndarray] = {}
_CATALOGUE_CACHE: dict[str, pd.DataFrame] = {}


def _blank_cutouts(path: str, n_bands: int) -> np.ndarray:
    if path not in _BLANK_CACHE:
        from astropy.io import fits

        try:
            data = np.asarray(fits.getdata(path), dtype=np.float32)
        except Exception as exc:  # astropy raises several types
            raise ValueError(f"blank sky {path}: cannot read FITS: {exc}") from exc
        if data.ndim == 3:
            data = data[None]
        if data.ndim != 4 or data.shape[1] != n_bands or data.shape[2] != data.shape[3]:
            raise ValueError(f"blank sky {path}: expected (N, {n_bands}, H, H) or "
                             f"({n_bands}, H, H) flux cutouts; got {data.shape}")
        _BLANK_CACHE[path] = data
    return _BLANK_CACHE[path]


def _catalogue(path: str) -> pd.DataFrame:
    if path not in _CATALOGUE_CACHE:
        p = Path(path)
        try:
            df = pd.read_csv(p) if p.suffix.lower() == ".csv" else pd.read_parquet(p)
        except Exception as exc:  # pandas/pyarrow raise several types
            raise ValueError(f"redshift catalogue {p}: cannot read: {exc}") from exc
        _CATALOGUE_CACHE[path] = df
    return _CATALOGUE_CACHE[path]


def galaxy_rng(seed: int, galaxy_id: str) -> np.random.Generator:
    """The galaxy's own random stream: independent of the other galaxies and workers."""
    return np.random.default_rng(np.random.SeedSequence([int(seed),
                                                         zlib.crc32(galaxy_id.encode())]))


def _pick_redshift(cfg: MockConfig, log_mstar: float | None, rng, galaxy_id: str) -> float:
    from .observe import draw_redshift

    if cfg.redshift_mode == "fixed":
        return float(cfg.redshift)
    if log_mstar is None or not np.isfinite(log_mstar):
        raise ValueError(f"{galaxy_id}: redshift mode 'catalogue' needs the stellar mass "
                         "(particles, or LOGMSTAR in the FITS header)")
    return draw_redshift(log_mstar, _catalogue(cfg.redshift_catalogue), rng,
                         half_width_dex=cfg.redshift_half_width_dex,
                         min_count=cfg.redshift_min_count)


def _observe_fits(galaxy_id, paths, cfg, survey, rng, blank):
    from astropy.io import fits

    from .observe import mock_observe

    bm = read_band_maps(paths, default_bands=survey.band_names)
    unit = cfg.unit or bm.unit
    if unit is None:
        raise ValueError(f"{paths[0]}: no BUNIT in the header and no [images] unit")
    kpc = cfg.pixel_scale_kpc or bm.pixel_scale_kpc
    arcsec = cfg.pixel_scale_arcsec or bm.pixel_scale_arcsec
    if kpc is not None:
        arcsec = None
    if kpc is None and arcsec is None:
        raise ValueError(f"{paths[0]}: no pixel scale (PIXKPC, PIXSCALE or CDELT1 with "
                         "CUNIT1) and none in [images]")
    log_mstar = fits.getheader(paths[0]).get("LOGMSTAR")
    props = {"log_mstar": float(log_mstar) if log_mstar is not None else np.nan}
    redshift = _pick_redshift(cfg, props["log_mstar"], rng, galaxy_id)
    sky = blank[rng.integers(len(blank))] if blank is not None else None
    res = mock_observe(bm.maps, unit=unit, survey=survey, redshift=redshift, rng=rng,
                       pixel_scale_kpc=kpc, pixel_scale_arcsec=arcsec,
                       cosmology=cfg.cosmology, blank_sky=sky,
                       psf_fwhm_factor=cfg.psf_fwhm_factor)
    results = [(0, "as-given", res, {})]
    return props, results


def _observe_snapshot(galaxy_id, path, cfg, survey, rng, blank):
    from .particles import galaxy_properties, load_stars, mock_particles, orientations
    from .ssp import load_ssp

    stars, how = load_stars(path, aperture_kpc=cfg.aperture_kpc)
    ssp = load_ssp(cfg.ssp)
    props = galaxy_properties(stars, ssp)
    redshift = _pick_redshift(cfg, props["log_mstar"], rng, galaxy_id)
    results = []
    views = orientations(stars, cfg.orientation, n_random=cfg.n_random, rng=rng)
    for k, (name, rot, incl) in enumerate(views):
        sky = blank[rng.integers(len(blank))] if blank is not None else None
        res = mock_particles(stars, survey=survey, redshift=redshift, rng=rng,
                             rotation=rot, inclination_deg=incl, ssp=ssp,
                             smoothing=cfg.smoothing,
                             smoothing_neighbours=cfg.smoothing_neighbours,
                             max_smoothing_kpc=cfg.max_smoothing_kpc, tau_v=cfg.tau_v,
                             pixel_scale_kpc=cfg.map_pixel_scale_kpc,
                             cosmology=cfg.cosmology, blank_sky=sky,
                             psf_fwhm_factor=cfg.psf_fwhm_factor)
        extra = {"inclination": incl, "r_half_kpc": res.meta["r_half_kpc"],
                 "r_half_arcsec": res.meta["r_half_arcsec"], "selection": how}
        results.append((k, name, res, extra))
    return props, results


def process_galaxy(task: tuple) -> dict:
    """Mock-observe one galaxy; never raises (a failure comes back as ``error``).

    Parameters
    ----------
    task : tuple
        ``(galaxy_id, kind, files, config dict, source)``.

    Returns
    -------
    dict
        ``galaxy_id``, ``file``, ``rows`` (manifest rows), ``flux``
        ``(P, n_bands, H, W)``, ``rgb`` ``(P, H, W, 3)``, ``warnings`` and
        ``error`` (None or the reason).
    """
    galaxy_id, kind, paths, cfg_dict, source = task
    cfg = MockConfig(**cfg_dict)
    out = {"galaxy_id": galaxy_id, "file": str(paths[0]), "rows": [], "flux": None,
           "rgb": None, "warnings": [], "error": None}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            survey = cfg.resolved_survey()
            rng = galaxy_rng(cfg.seed, galaxy_id)
            blank = (_blank_cutouts(cfg.blank_sky, len(survey.bands))
                     if cfg.blank_sky else None)
            if kind == "fits":
                props, results = _observe_fits(galaxy_id, paths, cfg, survey, rng, blank)
            else:
                props, results = _observe_snapshot(galaxy_id, paths[0], cfg, survey, rng,
                                                   blank)
        out["warnings"] = [f"{galaxy_id}: {w.message}" for w in caught
                           if not issubclass(w.category, (DeprecationWarning,
                                                          ResourceWarning))]
    except Exception as exc:  # one bad galaxy must not stop the run: report and go on
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    rows = []
    for k, name, res, extra in results:
        mags = {f"mag_{b}": float(nmgy_to_mag(res.noiseless[j].sum(), survey.zero_point))
                for j, b in enumerate(survey.band_names)}
        row = {"image_id": f"{source}-{galaxy_id}-p{k}", "source": source,
               "galaxy_id": galaxy_id, "projection": k, "orientation": name,
               "file": str(paths[0]), "redshift": res.meta["redshift"],
               "tau_v": cfg.tau_v if kind == "snapshot" else 0.0}
        row.update(props)
        row.update(extra)
        row.update(mags)
        rows.append(row)
    out["rows"] = rows
    out["flux"] = np.stack([r[2].flux for r in results])
    out["rgb"] = np.stack([r[2].rgb for r in results])
    return out


# ----------------------------------------------------------------------
# the folder

def mock_folder(input_dir: str | Path, out: str | Path,
                config: str | Path | Mapping | MockConfig | None = None, *,
                workers: int = 1, progress: ProgressCallback = no_progress):
    """Mock-observe every galaxy of a folder into an image set.

    Parameters
    ----------
    input_dir : path
        Folder of snapshots and/or idealised FITS maps (see module docstring).
    out : path
        Output image-set folder: ``manifest.parquet``, ``imageset.json``,
        ``pixels.h5`` (``rgb`` (N, H, W, 3) uint8, ``flux`` (N, n_bands, H, W)
        float32 nanomaggies), ``rejects.parquet`` when a galaxy failed, and
        ``run-mock.json``.
    config : path, mapping or MockConfig, optional
        See :class:`MockConfig`.
    workers : int
        Processes working on galaxies in parallel (1: in this process).
    progress : callable
        ``progress(done, total, "mock")`` after each galaxy.

    Returns
    -------
    ImageSet
        The written image set (its ``rejects()`` lists the failures).

    Raises
    ------
    ValueError
        Bad configuration or input folder, or a folder without galaxies.
    """
    cfg = load_config(config)
    survey = cfg.resolved_survey()
    input_dir, out = Path(input_dir), Path(out)
    galaxies = discover_galaxies(input_dir)
    if not galaxies:
        raise ValueError(f"{input_dir}: no snapshots or FITS maps found")
    if workers < 1:
        raise ValueError(f"workers must be >= 1; got {workers}")
    source = cfg.source or input_dir.resolve().name
    cfg_dict = asdict(cfg)
    tasks = [(gid, kind, paths, cfg_dict, source) for gid, kind, paths in galaxies]
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    rows, rejects = [], []
    size = survey.cutout_size
    if cfg.blank_sky:
        size = _blank_cutouts(cfg.blank_sky, len(survey.bands)).shape[-1]
    with ArrayStoreWriter(out / "pixels.h5", size=size, n_bands=len(survey.bands)) as store:
        if workers == 1:
            results = map(process_galaxy, tasks)
            pool = None
        else:
            pool = multiprocessing.get_context("spawn").Pool(min(workers, len(tasks)))
            results = pool.imap(process_galaxy, tasks, chunksize=1)
        try:
            for done, res in enumerate(results, start=1):
                for message in res["warnings"]:
                    log.warning("%s", message)
                if res["error"] is not None:
                    log.warning("rejected %s (%s): %s", res["galaxy_id"], res["file"],
                                res["error"])
                    rejects.append({"image_id": f"{source}-{res['galaxy_id']}",
                                    "file": res["file"], "reason": res["error"]})
                else:
                    ids = [r["image_id"] for r in res["rows"]]
                    index = store.append(ids, res["rgb"], res["flux"])
                    for r, i in zip(res["rows"], index):
                        rows.append({**r, "path": "pixels.h5", "index": i})
                progress(done, len(tasks), "mock")
        finally:
            if pool is not None:
                pool.close()
                pool.join()

    manifest = pd.DataFrame(rows)
    if manifest.empty:
        manifest = pd.DataFrame(columns=["image_id", "path", "index", "source",
                                         "galaxy_id", "projection"])
    reject_df = pd.DataFrame(rejects, columns=["image_id", "file", "reason"])
    elapsed = time.perf_counter() - t0
    metadata = {"kind": "rgb8", "survey": survey.to_dict(), "size": int(size),
                "bands": list(survey.band_names),
                "rgb_bands": list(survey.colour.rgb_bands), "has_flux": True,
                "source": source,
                "provenance": {"command": "mock", "input_dir": str(input_dir.resolve()),
                               "config": cfg_dict, "seed": cfg.seed,
                               "n_galaxies": len(tasks), "n_rejected": len(rejects),
                               "n_images": len(manifest), "wall_s": round(elapsed, 2),
                               "versions": versions()}}
    if reject_df.empty and (out / "rejects.parquet").exists():
        (out / "rejects.parquet").unlink()
    imageset = write_imageset(out, manifest, metadata, rejects=reject_df)
    inputs = {str(p.relative_to(input_dir)): f"{p.stat().st_size} bytes"
              for _, _, paths in galaxies for p in paths}
    write_run_record(out, "mock", cfg_dict, inputs)
    log.info("mock: %d images of %d galaxies (%d rejected) in %.1f s -> %s",
             len(manifest), len(tasks), len(rejects), elapsed, out)
    return imageset

