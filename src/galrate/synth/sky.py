"""Build the embedded synthetic sky: observed set, simulation suites, sanity sets.

:func:`synth` writes one image set per source under an output folder::

    OUT/observed/        one image per galaxy, column ``split`` (train/val/test)
    OUT/null/            the suite galaxies, P projections each, no deviation
    OUT/<family>-<k>/    the same galaxies and projections with a deviation
    OUT/sanity-*/        photographs, blank and spoilt cutouts
    OUT/sky.json         the list of sets
    OUT/contact_sheet.png
    OUT/run-synth.json   resolved configuration, seed and versions

Rendering runs in worker processes over chunks of images. Every image's
randomness comes from its own seeds (see :mod:`galrate.synth.population`), so
the pixels are identical for any number of workers.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import tomllib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from itertools import repeat
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from ..imageset import ArrayStoreWriter, ImageSet, write_imageset
from ..provenance import ProgressCallback, no_progress, versions, write_run_record
from ..survey import Survey, load_survey
from .deviations import DEVIATIONS, FAMILIES, apply_deviation
from .population import STREAMS, draw_images, draw_population
from .render import gsparams, render_rows
from .sanity import SANITY_SETS, sanity_set

log = logging.getLogger(__name__)

__all__ = ["SynthConfig", "synth", "observed_images", "suite_images", "exact_split"]


@dataclass
class SynthConfig:
    """Settings of the synthetic sky.

    Parameters
    ----------
    n_observed : int
        Galaxies in the observed set (one image each).
    n_suite : int
        Galaxies of the simulation suites (shared by all families and levels).
    projections : int
        Random orientations per suite galaxy.
    families : tuple of str
        Deviation families to write (see :data:`~galrate.synth.DEVIATIONS`).
    levels : tuple of int
        Strength levels; 0 stands for the null suite, which is always written.
    n_sanity : int
        Images per sanity set (0: no sanity sets).
    seed : int
        Master seed; the same seed gives the same pixels.
    workers : int or None
        Rendering processes; ``None`` uses every core, 1 renders in-process.
    split : (float, float, float)
        Train/val/test fractions of the observed galaxies.
    neighbour_fraction, star_fraction : float
        Probability that a cutout contains a neighbouring galaxy / a star.
    chunk : int
        Images per unit of work of a worker.
    survey : str
        Built-in survey name or a survey TOML file.
    contact_sheet : bool
        Write ``contact_sheet.png``.
    """

    n_observed: int = 2000
    n_suite: int = 200
    projections: int = 4
    families: tuple[str, ...] = FAMILIES
    levels: tuple[int, ...] = (0, 1, 2, 3)
    n_sanity: int = 64
    seed: int = 0
    workers: int | None = None
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    neighbour_fraction: float = 0.15
    star_fraction: float = 0.10
    chunk: int = 32
    survey: str = "sdss"
    contact_sheet: bool = True

    def __post_init__(self):
        self.families = tuple(self.families)
        self.levels = tuple(int(x) for x in self.levels)
        self.split = tuple(float(x) for x in self.split)
        for name in ("n_observed", "n_suite", "n_sanity"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a non-negative integer; "
                                 f"got {getattr(self, name)!r}")
        for name in ("projections", "chunk"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer; "
                                 f"got {getattr(self, name)!r}")
        unknown = [f for f in self.families if f not in DEVIATIONS]
        if unknown:
            raise ValueError(f"unknown families {unknown}; known: {', '.join(FAMILIES)}")
        bad = [lv for lv in self.levels if lv not in (0, 1, 2, 3)]
        if bad:
            raise ValueError(f"levels must be among 0, 1, 2, 3; got {list(self.levels)}")
        if len(self.split) != 3 or min(self.split) < 0 or abs(sum(self.split) - 1) > 1e-6:
            raise ValueError(f"split must be three non-negative fractions summing to 1; "
                             f"got {self.split}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be >= 1 or None; got {self.workers!r}")

    @classmethod
    def from_toml(cls, path: str | Path, **overrides) -> "SynthConfig":
        """Read settings from a TOML file (top level or a ``[synth]`` table).

        Keyword ``overrides`` that are not ``None`` win over the file.
        """
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: cannot read synth configuration: {exc}") from exc
        data = data.get("synth", data)
        known = {f.name for f in fields(cls)}
        extra = sorted(set(data) - known)
        if extra:
            raise ValueError(f"{path}: unknown synth settings {extra}; "
                             f"allowed: {sorted(known)}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)


# ----------------------------------------------------------------------
# image tables

def exact_split(n: int, seed: int, fractions=(0.8, 0.1, 0.1)) -> np.ndarray:
    """Seeded train/val/test labels for ``n`` galaxies with exact fractions.

    Unlike :func:`galrate.imageset.validate.assign_split`, which hashes galaxy
    ids so a catalogue's split is stable under reordering, this draws a
    permutation: the synthetic sky wants the fractions exactly.
    """
    perm = np.random.default_rng(np.random.SeedSequence(
        int(seed), spawn_key=(STREAMS["split"],))).permutation(n)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    labels = np.empty(n, dtype=object)
    labels[perm[:n_train]] = "train"
    labels[perm[n_train:n_train + n_val]] = "val"
    labels[perm[n_train + n_val:]] = "test"
    return labels


def observed_images(config: SynthConfig) -> pd.DataFrame:
    """Image rows of the observed set (one projection per galaxy, with ``split``)."""
    gal = draw_population(config.n_observed, config.seed, "observed")
    gal["split"] = exact_split(len(gal), config.seed, config.split)
    im = draw_images(gal, config.seed, "observed", 1, config.neighbour_fraction,
                     config.star_fraction)
    im["family"], im["level"] = "observed", 0
    return im


def suite_images(config: SynthConfig, family: str | None = None, level: int = 0,
                 galaxies: pd.DataFrame | None = None) -> pd.DataFrame:
    """Image rows of a simulation suite (``family=None``: the null suite).

    The suite galaxies, their projections, scenes and noise seeds are the
    same for every family and level.
    """
    if galaxies is None:
        galaxies = draw_population(config.n_suite, config.seed, "suite")
    if family is not None:
        galaxies = apply_deviation(galaxies, family, level)
    im = draw_images(galaxies, config.seed, "suite", config.projections,
                     config.neighbour_fraction, config.star_fraction)
    im["family"] = family or "null"
    im["level"] = level if family else 0
    return im


# ----------------------------------------------------------------------
# writing

def _chunks(rows: list[dict], size: int) -> list[list[dict]]:
    return [rows[i:i + size] for i in range(0, len(rows), size)]


class _Renderer:
    """Render image rows in order, in-process or on a pool of processes."""

    def __init__(self, workers: int, survey: Survey, chunk: int):
        self.survey, self.chunk = survey, chunk
        self.pool = None
        if workers > 1:
            self.pool = ProcessPoolExecutor(workers,
                                            mp_context=multiprocessing.get_context("spawn"))

    def __call__(self, rows: list[dict]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        chunks = _chunks(rows, self.chunk)
        if self.pool is None:
            return (render_rows(c, self.survey) for c in chunks)
        return self.pool.map(render_rows, chunks, repeat(self.survey))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def _metadata(survey: Survey, source: str, family: str, level: int, kind: str,
              has_flux: bool, config: SynthConfig, n: int) -> dict:
    meta = {"kind": "rgb8", "survey": survey.to_dict(), "size": survey.cutout_size,
            "bands": list(survey.band_names), "rgb_bands": list(survey.colour.rgb_bands),
            "has_flux": has_flux, "source": source, "family": family, "level": level,
            "set_kind": kind, "n_images": n,
            "provenance": {"command": "synth", "seed": config.seed,
                           "config": asdict(config), "versions": versions(),
                           "gsparams": repr(gsparams())}}
    if family in DEVIATIONS:
        dev = DEVIATIONS[family]
        meta["deviation"] = {"family": family, "level": level,
                             "motivation": dev.motivation,
                             "moves": [asdict(m) for m in dev.moves]}
    return meta


def _manifest(rows: pd.DataFrame, source: str, index: np.ndarray) -> pd.DataFrame:
    m = rows.copy()
    m.insert(0, "image_id", [f"{source}/{g}/p{p}" for g, p in
                             zip(m["galaxy_id"], m["projection"])])
    m.insert(1, "path", "pixels.h5")
    m.insert(2, "index", index)
    m.insert(3, "source", source)
    return m


def _write_rendered(folder: Path, source: str, rows: pd.DataFrame, render: _Renderer,
                    meta: dict, tick) -> ImageSet:
    folder.mkdir(parents=True, exist_ok=True)
    survey = render.survey
    with ArrayStoreWriter(folder / "pixels.h5", survey.cutout_size,
                          n_bands=len(survey.bands)) as store:
        ids = [f"{source}/{g}/p{p}" for g, p in zip(rows["galaxy_id"], rows["projection"])]
        start = 0
        for rgb, flux in render(rows.to_dict("records")):
            store.append(ids[start:start + len(rgb)], rgb, flux)
            start += len(rgb)
            tick(len(rgb))
    return write_imageset(folder, _manifest(rows, source, np.arange(len(rows))), meta)


def _write_arrays(folder: Path, source: str, rows: pd.DataFrame, rgb: np.ndarray,
                  flux: np.ndarray | None, meta: dict) -> ImageSet:
    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"{source}/{g}/p{p}" for g, p in zip(rows["galaxy_id"], rows["projection"])]
    n_bands = None if flux is None else flux.shape[1]
    with ArrayStoreWriter(folder / "pixels.h5", rgb.shape[1], n_bands=n_bands) as store:
        store.append(ids, rgb, flux)
    return write_imageset(folder, _manifest(rows, source, np.arange(len(rows))), meta)


def synth(out: str | Path, config: SynthConfig | None = None,
          progress: ProgressCallback | None = None) -> dict:
    """Render the synthetic sky into image sets under ``out``.

    Parameters
    ----------
    out : path
        Output folder (created; sets already there are overwritten).
    config : SynthConfig, optional
        Settings; defaults of :class:`SynthConfig` when omitted.
    progress : callable, optional
        ``progress(done, total, what)``, called as images are written
        (``what`` is ``"synth"``).

    Returns
    -------
    dict
        The content of ``OUT/sky.json``: ``sets``, a list of
        ``{name, family, level, kind, n_images, path}`` (kind: observed,
        suite or sanity), plus ``seed`` and ``config``.

    Notes
    -----
    Level 0 of every family is the null suite, written once as ``null``.
    Deviations act on the central galaxy only; neighbours and stars of a
    cutout are the same in every suite. Workers are started with the
    ``spawn`` method, so a script that calls :func:`synth` with more than one
    worker must guard its top level with ``if __name__ == "__main__":``.
    The sanity sets are made in the calling process.
    """
    config = config or SynthConfig()
    progress = progress or no_progress
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    survey = load_survey(config.survey)
    workers = config.workers or os.cpu_count() or 1

    plan: list[tuple[str, str, int, pd.DataFrame]] = []
    if config.n_observed:
        plan.append(("observed", "observed", 0, observed_images(config)))
    if config.n_suite:
        galaxies = draw_population(config.n_suite, config.seed, "suite")
        plan.append(("null", "null", 0, suite_images(config, None, 0, galaxies)))
        for family in config.families:
            for level in sorted(set(config.levels) - {0}):
                plan.append((f"{family}-{level}", family, level,
                             suite_images(config, family, level, galaxies)))
    sanity = list(SANITY_SETS) if config.n_sanity else []
    total = sum(len(p[3]) for p in plan) + config.n_sanity * len(sanity)
    done = 0

    def tick(k: int) -> None:
        nonlocal done
        done += k
        progress(done, total, "synth")

    entries = []
    render = _Renderer(workers, survey, config.chunk)
    try:
        for name, family, level, rows in plan:
            kind = "observed" if name == "observed" else "suite"
            log.info("rendering %s: %d images", name, len(rows))
            meta = _metadata(survey, name, family, level, kind, True, config, len(rows))
            _write_rendered(out / name, name, rows, render, meta, tick)
            entries.append((name, family, level, kind, len(rows)))
    finally:
        render.close()
    for name in sanity:
        log.info("making %s: %d images", name, config.n_sanity)
        rows, rgb, flux = sanity_set(name, config.n_sanity, config.seed, survey)
        rows["family"], rows["level"] = "sanity", 0
        meta = _metadata(survey, name, "sanity", 0, "sanity", flux is not None, config,
                         len(rows))
        _write_arrays(out / name, name, rows, rgb, flux, meta)
        entries.append((name, "sanity", 0, "sanity", len(rows)))
        tick(len(rows))

    sky = {"sets": [{"name": n, "family": f, "level": lv, "kind": k, "n_images": c,
                     "path": n} for n, f, lv, k, c in entries],
           "seed": config.seed, "config": asdict(config)}
    (out / "sky.json").write_text(json.dumps(sky, indent=2))
    write_run_record(out, "synth", asdict(config))
    if config.contact_sheet and entries:
        from .contact import contact_sheet, sheet_sets

        contact_sheet(sheet_sets(out, sky), out / "contact_sheet.png")
    return sky
