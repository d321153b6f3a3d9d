"""``rate``: statistics, figures and the HTML report over score tables.

The input is one or more score tables (from ``galrate score``, or an external
CSV with a per-image score column), concatenated. Images are grouped by suite
(the ``source`` column) and by galaxy (``galaxy_id``); every interval resamples
galaxies (:func:`galrate.rating.stats.cluster_bootstrap`). The observed
galaxies are the reference: the source named by ``RateConfig.observed`` or,
when the tables hold no such source, the calibrated percentile column
(``pct_*``) of the scores, which the model computed against its own observed
reference.

Outputs in ``out_dir``: ``report.html`` (self-contained), ``results.json``
(every number), ``ranking.csv`` and ``run-rate.json`` (provenance).
"""

from __future__ import annotations

import json
import logging
import math
import warnings
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..imageset import GalrateDataWarning, ImageSet, file_sha256
from ..provenance import ProgressCallback, no_progress, versions, write_run_record
from . import figures as F
from . import report as R
from . import stats as S

log = logging.getLogger(__name__)

__all__ = ["RateConfig", "rate", "load_tables", "ImagesFor", "originals_from_imageset"]

#: ``images_for(source, image_ids) -> (originals, reconstructions, residuals)``;
#: originals uint8 (n, H, W, 3); the other two may be None
ImagesFor = Callable[[str, Sequence[str]],
                     tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]

#: strings read as missing values in CSV tables (not "null": a suite name)
_NA_VALUES = ["", "NA", "N/A", "NaN", "nan", "-nan", "None", "<NA>"]

#: columns that are bookkeeping, not galaxy properties
_NOT_PROPERTIES = {"index", "projection", "level", "split", "score_latent", "score_recon",
                   "score_feature", "pct_latent", "pct_recon", "pct_feature"}


@dataclass
class RateConfig:
    """Configuration of a rating.

    Attributes
    ----------
    score_column : str
        The per-image score (the paper's A is ``score_latent``).
    observed : str
        Source name of the observed reference images.
    pct_column : str or None
        Calibrated percentile column (0-100), used for the anomaly rate when
        the tables hold no observed source; None derives it from the score
        column (``score_latent`` -> ``pct_latent``).
    source_column, galaxy_column, image_column, mass_column : str
        Column names in the input tables; they are renamed to ``source``,
        ``galaxy_id``, ``image_id`` and ``log_mstar`` (log10 Msun).
    percentile : float
        Observed percentile that defines an anomaly (95: 5% under the null).
    mass_bins : tuple of float
        log10 stellar-mass bin edges (Msun) for per-bin statistics.
    n_boot : int
        Bootstrap replicates.
    seed : int
        Seed of every bootstrap (each suite gets a seed derived from it and
        its name, so results do not depend on which other suites are rated).
    level : float
        Confidence level of the intervals.
    hist_bins : int or str
        Bins of the overlap histograms: a count of equal-width bins over the
        scores of the observed galaxies and the ranked suites pooled (sanity
        sets left out, so that their extreme scores do not coarsen the bins;
        scores beyond the range count in the end bins), or a numpy rule name.
    properties : tuple of str or None
        Properties to correlate with A; None takes every numeric column.
    rank_by : {"anomaly_rate", "median", "overlap"}
        Ranking statistic (lower rate or median, higher overlap ranks first).
    pairs : tuple of (str, str)
        Extra suite pairs for the paired comparison. By default every suite
        that shares galaxies with ``null`` is paired with it (or, without a
        null suite, every pair of suites sharing galaxies).
    min_shared_galaxies : int
        Fewest shared galaxies for a paired comparison.
    match_bin_width_dex : float
        Bin width of the stellar-mass reweighting.
    sanity_prefix : str
        Sources starting with it are sanity sets (reported, not ranked).
    sanity_min_rate : float
        A sanity set counts as flagged when its anomaly rate reaches this.
    between_suites : bool
        Also run the two-sample tests between every pair of suites.
    galleries : bool
        Draw image galleries (needs images_for, a model, or ``imageset`` paths).
    figures : bool
        Draw figures (False: tables only, faster).
    """

    score_column: str = "score_latent"
    observed: str = "observed"
    pct_column: str | None = None
    source_column: str = "source"
    galaxy_column: str = "galaxy_id"
    image_column: str = "image_id"
    mass_column: str = "log_mstar"
    percentile: float = 95.0
    mass_bins: tuple[float, ...] = S.PAPER_MASS_BINS
    n_boot: int = 1000
    seed: int = 0
    level: float = 0.95
    hist_bins: int | str = 30
    properties: tuple[str, ...] | None = None
    rank_by: str = "anomaly_rate"
    pairs: tuple[tuple[str, str], ...] = ()
    min_shared_galaxies: int = 3
    match_bin_width_dex: float = 0.25
    sanity_prefix: str = "sanity-"
    sanity_min_rate: float = 0.5
    between_suites: bool = True
    galleries: bool = True
    figures: bool = True

    def __post_init__(self) -> None:
        if self.rank_by not in ("anomaly_rate", "median", "overlap"):
            raise ValueError(f"rank_by: expected 'anomaly_rate', 'median' or "
                             f"'overlap', got {self.rank_by!r}")
        if not 0 < self.percentile < 100:
            raise ValueError(f"percentile: must be in (0, 100), got {self.percentile}")
        if self.n_boot < 1:
            raise ValueError(f"n_boot: must be >= 1, got {self.n_boot}")
        self.mass_bins = tuple(float(e) for e in S._check_edges(self.mass_bins,
                                                                "mass_bins"))
        self.pairs = tuple(tuple(p) for p in self.pairs)
        if self.pct_column is None:
            self.pct_column = "pct_" + self.score_column.removeprefix("score_")

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------
# input
def load_tables(tables: Sequence[str | Path | pd.DataFrame],
                config: RateConfig) -> tuple[pd.DataFrame, list[str]]:
    """Read and concatenate score tables with the standard column names.

    Parameters
    ----------
    tables : sequence of path or DataFrame
        Parquet or CSV files, or DataFrames.
    config : RateConfig
        Column mapping.

    Returns
    -------
    table : DataFrame
        Columns ``image_id``, ``source``, ``galaxy_id`` (str), the score and the
        rest; rows with a non-finite score are dropped.
    notes : list of str
        Warnings raised on the way (also issued as GalrateDataWarning).

    Raises
    ------
    ValueError
        An unreadable table, or no score column.
    """
    if not len(tables):
        raise ValueError("tables: no score table given")
    notes: list[str] = []

    def warn(msg: str) -> None:
        notes.append(msg)
        warnings.warn(msg, GalrateDataWarning, stacklevel=3)

    frames = []
    for k, t in enumerate(tables):
        name = f"table {k}" if isinstance(t, pd.DataFrame) else str(t)
        df = t.copy() if isinstance(t, pd.DataFrame) else _read_table(Path(t))
        rename = {config.source_column: "source", config.galaxy_column: "galaxy_id",
                  config.image_column: "image_id", config.mass_column: "log_mstar"}
        rename = {a: b for a, b in rename.items() if a in df.columns and a != b}
        clash = [b for a, b in rename.items() if b in df.columns]
        df = df.drop(columns=clash).rename(columns=rename)
        if config.score_column not in df.columns:
            raise ValueError(f"{name}: no score column {config.score_column!r}; columns "
                             f"are {list(df.columns)} (choose one with --score-column)")
        stem = f"table{k}" if isinstance(t, pd.DataFrame) else Path(t).stem
        if "source" not in df.columns:
            df["source"] = stem
            warn(f"{name}: no source column {config.source_column!r}; all its images "
                 f"are taken as one suite named {stem!r}")
        if "image_id" not in df.columns:
            df["image_id"] = [f"{stem}-{i}" for i in range(len(df))]
        if "galaxy_id" not in df.columns:
            df["galaxy_id"] = df["image_id"]
            warn(f"{name}: no galaxy column {config.galaxy_column!r}; each image is "
                 "treated as its own galaxy (projections of one galaxy, if any, will "
                 "look independent and intervals will be too narrow)")
        frames.append(df)
    table = pd.concat(frames, ignore_index=True, sort=False)
    for col in ("image_id", "source", "galaxy_id"):
        missing = table[col].isna()
        if missing.any():
            raise ValueError(f"{int(missing.sum())} row(s) without a {col!r} value "
                             f"(e.g. row {int(np.flatnonzero(missing)[0])} of the "
                             "concatenated tables)")
        table[col] = table[col].astype(str)
    score = pd.to_numeric(table[config.score_column], errors="coerce")
    bad = ~np.isfinite(score.to_numpy(dtype=float))
    if bad.any():
        warn(f"{int(bad.sum())} image(s) without a finite {config.score_column!r} "
             "are left out")
    table[config.score_column] = score
    return table.loc[~bad].reset_index(drop=True), notes


def _read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise ValueError(f"{path}: score table not found")
    try:
        if path.suffix.lower() in (".csv", ".txt", ".tsv"):
            # "null" is a suite name, not a missing value
            return pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",",
                               keep_default_na=False, na_values=_NA_VALUES)
        return pd.read_parquet(path)
    except Exception as exc:  # pandas/pyarrow raise many types
        raise ValueError(f"{path}: cannot read score table: {exc}") from exc


def _numeric_properties(table: pd.DataFrame, config: RateConfig) -> list[str]:
    if config.properties is not None:
        missing = [p for p in config.properties if p not in table.columns]
        if missing:
            raise ValueError(f"properties: {missing} not in the score tables")
        return list(config.properties)
    skip = _NOT_PROPERTIES | {config.score_column, config.pct_column}
    return [c for c in table.columns if c not in skip
            and pd.api.types.is_numeric_dtype(table[c])
            and not pd.api.types.is_bool_dtype(table[c])]


def _suite_seed(seed: int, name: str) -> int:
    return int(np.random.SeedSequence([int(seed), zlib.crc32(name.encode())])
               .generate_state(1)[0])


# ----------------------------------------------------------------------
# statistics
@dataclass
class _Reference:
    """The observed reference: its scores (when present) and the anomaly rule."""

    scores: np.ndarray | None        # observed A, or None (pct column mode)
    mass: np.ndarray | None
    groups: np.ndarray | None
    threshold: float                 # on the score, or on the pct column
    flag_column: str                 # the column the threshold applies to
    kind: str                        # "source" or "pct_column"


def _reference(table: pd.DataFrame, config: RateConfig) -> _Reference:
    obs = table[table["source"] == config.observed]
    if len(obs):
        scores = obs[config.score_column].to_numpy(float)
        mass = obs["log_mstar"].to_numpy(float) if "log_mstar" in obs else None
        return _Reference(scores, mass, obs["galaxy_id"].to_numpy(),
                          S.anomaly_threshold(scores, config.percentile),
                          config.score_column, "source")
    if config.pct_column in table.columns:
        return _Reference(None, None, None, config.percentile, config.pct_column,
                          "pct_column")
    raise ValueError(f"no observed reference: no source {config.observed!r} in the "
                     f"tables (sources: {sorted(table['source'].unique())}) and no "
                     f"percentile column {config.pct_column!r}; pass --observed NAME "
                     "or a table with the percentile column")


def _suite_statistics(sub: pd.DataFrame, ref: _Reference, edges: np.ndarray | None,
                      config: RateConfig, seed: int, properties: Sequence[str]) -> dict:
    """Every per-suite number (JSON-able), intervals over galaxies."""
    scores = sub[config.score_column].to_numpy(float)
    groups = sub["galaxy_id"].to_numpy()
    flags = sub[ref.flag_column].to_numpy(float)
    boot = dict(n_boot=config.n_boot, seed=seed, level=config.level)
    out = {"n_images": int(len(sub)), "n_galaxies": int(pd.unique(groups).size),
           **_core_statistics(scores, groups, flags, ref, edges, boot)}
    if ref.scores is not None:
        tests = S.two_sample_tests(scores, ref.scores)
        gm = S.galaxy_means(scores, groups)["mean"].to_numpy()
        om = S.galaxy_means(ref.scores, ref.groups)["mean"].to_numpy()
        gal = S.two_sample_tests(gm, om)
        tests |= {"ks_stat_galaxy": gal["ks_stat"], "ks_p_galaxy": gal["ks_p"],
                  "n_galaxies_a": gal["n_a"], "n_galaxies_b": gal["n_b"]}
        out["tests"] = tests
    if ref.scores is not None and ref.mass is not None and "log_mstar" in sub:
        mass = sub["log_mstar"].to_numpy(float)
        try:
            out["matched"] = S.matched_comparison(
                scores, mass, ref.scores, ref.mass, ref.threshold, config.percentile,
                config.match_bin_width_dex)
        except ValueError as exc:
            log.warning("mass matching skipped: %s", exc)
    if "log_mstar" in sub:
        out["mass_bins"] = _mass_bin_statistics(sub, ref, edges, config, seed)
    corr = S.correlations(sub, config.score_column,
                          [p for p in properties if p in sub], "galaxy_id",
                          n_boot=config.n_boot, seed=seed, level=config.level)
    out["correlations"] = corr.to_dict(orient="records")
    return out


def _core_statistics(scores, groups, flags, ref: _Reference, edges, boot) -> dict:
    """Median, mean, anomaly rate and overlap, on one shared set of replicates."""
    weights = S.bootstrap_weights(groups, len(scores), boot["n_boot"], boot["seed"])
    kw = dict(level=boot["level"], weights=weights)
    out = {"median": S.cluster_bootstrap(scores, groups, "median", **kw).to_dict(),
           "mean": S.cluster_bootstrap(scores, groups, "mean", **kw).to_dict(),
           "anomaly_rate": S.cluster_bootstrap(
               flags, groups, S.fraction_above(ref.threshold), **kw).to_dict()}
    if ref.scores is not None and edges is not None:
        out["overlap"] = S.cluster_bootstrap(
            scores, groups, S.overlap_statistic(edges, ref.scores), **kw).to_dict()
    return out


def _mass_bin_statistics(sub, ref: _Reference, edges, config: RateConfig, seed) -> dict:
    labels = S.mass_bin_labels(config.mass_bins)
    idx = S.assign_mass_bins(sub["log_mstar"].to_numpy(float), config.mass_bins)
    ref_idx = (S.assign_mass_bins(ref.mass, config.mass_bins)
               if ref.mass is not None else None)
    out = {}
    for b, label in enumerate(labels):
        part = sub[idx == b]
        if part.empty:
            continue
        ref_bin = ref
        if ref.scores is not None:
            keep = ref_idx == b if ref_idx is not None else np.ones(len(ref.scores), bool)
            ref_bin = _Reference(ref.scores[keep], None, None, ref.threshold,
                                 ref.flag_column, ref.kind)
            if not keep.any():
                ref_bin = _Reference(None, None, None, ref.threshold, ref.flag_column,
                                     ref.kind)
        groups = part["galaxy_id"].to_numpy()
        out[label] = {"n_images": int(len(part)), "n_galaxies": int(pd.unique(groups).size),
                      **_core_statistics(part[config.score_column].to_numpy(float), groups,
                                         part[ref.flag_column].to_numpy(float), ref_bin,
                                         edges, dict(n_boot=config.n_boot, seed=seed,
                                                     level=config.level))}
    return out


def _default_pairs(table: pd.DataFrame, suites: Sequence[str],
                   config: RateConfig) -> list[tuple[str, str]]:
    gal = {s: set(table.loc[table["source"] == s, "galaxy_id"]) for s in suites}
    shared = lambda a, b: len(gal[a] & gal[b]) >= config.min_shared_galaxies  # noqa: E731
    if "null" in gal:
        pairs = [("null", s) for s in suites if s != "null" and shared("null", s)]
    else:
        pairs = [(a, b) for i, a in enumerate(suites) for b in suites[i + 1:]
                 if shared(a, b)]
    for a, b in config.pairs:
        for s in (a, b):
            if s not in gal:
                raise ValueError(f"pairs: suite {s!r} not in the tables "
                                 f"(suites: {list(suites)})")
        if (a, b) not in pairs:
            pairs.append((a, b))
    return pairs


def _ranking(results: dict, ranked: Sequence[str], rank_by: str) -> list[dict]:
    def key(name: str) -> tuple:
        s = results["suites"][name]
        v = (s.get(rank_by) or {}).get("value")
        v = math.inf if v is None else (-v if rank_by == "overlap" else v)
        return (v, s["median"]["value"], name)

    rows = []
    for rank, name in enumerate(sorted(ranked, key=key), start=1):
        s = results["suites"][name]
        rows.append({"rank": rank, "suite": name, "n_images": s["n_images"],
                     "n_galaxies": s["n_galaxies"], "median": s["median"],
                     "mean": s["mean"], "anomaly_rate": s["anomaly_rate"],
                     "overlap": s.get("overlap"),
                     "matched_rate": (s.get("matched") or {}).get("matched_rate"),
                     "ks_p_galaxy": (s.get("tests") or {}).get("ks_p_galaxy")})
    return rows


# ----------------------------------------------------------------------
# images for the galleries
def originals_from_imageset(table: pd.DataFrame) -> ImagesFor:
    """``images_for`` that reads originals through the ``imageset`` column.

    Reconstructions and residuals are None (no model).
    """
    cache: dict[str, ImageSet] = {}

    def images_for(source: str, image_ids: Sequence[str]):
        rows = table.set_index("image_id").loc[list(image_ids)]
        out = []
        for image_id, folder in zip(image_ids, rows["imageset"]):
            iset = cache.get(folder) or cache.setdefault(folder, ImageSet.open(folder))
            pos = np.flatnonzero(iset.manifest["image_id"].to_numpy() == image_id)
            if len(pos) == 0:
                raise ValueError(f"{folder}: image {image_id!r} not in its manifest")
            out.append(iset.rgb(pos[:1])[0])
        return np.stack(out), None, None

    return images_for


def _detector_images_for(model: str | Path, table: pd.DataFrame) -> ImagesFor:
    """``images_for`` through the detector: originals, reconstructions, residuals.

    Uses ``galrate.detector.load_model`` and ``galrate.detector.reconstruct``
    (reconstructions ``(n, H, W, 3)`` uint8 and residuals ``|x - x_hat|``
    ``(n, H, W)`` averaged over channels).
    """
    from galrate import detector  # imported late: torch is heavy

    net = detector.load_model(model)
    originals = originals_from_imageset(table)

    def images_for(source: str, image_ids: Sequence[str]):
        orig, _, _ = originals(source, image_ids)
        recon, residual = detector.reconstruct(net, orig)
        return orig, np.asarray(recon), np.asarray(residual)

    return images_for


def _gallery_ids(sub: pd.DataFrame, score_column: str) -> tuple[list[str], list[str]]:
    """Image ids at the lowest, median and highest score of a source."""
    ordered = sub.sort_values(score_column, kind="stable")
    picks = {"low": 0, "median": (len(ordered) - 1) // 2, "high": len(ordered) - 1}
    ids, labels = [], []
    for name, pos in picks.items():
        row = ordered.iloc[pos]
        ids.append(str(row["image_id"]))
        labels.append(f"{name} A={row[score_column]:.3g}")
    return ids, labels


def _galleries(table: pd.DataFrame, sources: Sequence[str], images_for: ImagesFor,
               config: RateConfig, notes: list[str]) -> list:
    items = []
    for source in sources:
        sub = table[table["source"] == source]
        ids, labels = _gallery_ids(sub, config.score_column)
        try:
            orig, recon, resid = images_for(source, ids)
        except Exception as exc:  # a missing file must not lose the whole report
            msg = f"gallery of {source!r} skipped: {type(exc).__name__}: {exc}"
            log.warning("%s", msg)
            notes.append(msg)
            continue
        ncol = 1 + (recon is not None) + (resid is not None)
        fig = F.new_figure(1.6 * ncol + 0.6, 4.8)
        F.gallery(fig, orig, recon, resid, labels, title=source)
        items.append(fig)
    return items


# ----------------------------------------------------------------------
# figures
def _figures(table: pd.DataFrame, results: dict, ref: _Reference, edges, ranked,
             properties: Sequence[str], config: RateConfig) -> dict:
    figs: dict = {}
    rk = results["ranking"]
    if rk:
        fig = F.new_figure(6, 1.2 + 0.28 * len(rk))
        stat = config.rank_by
        bounds = np.array([[_or_nan((r[stat] or {}).get(k)) for k in
                            ("value", "low", "high")] for r in rk])
        F.ranking(fig.add_subplot(), [r["suite"] for r in rk], *bounds.T,
                  x_label=stat.replace("_", " "),
                  null_value=1 - config.percentile / 100 if stat == "anomaly_rate"
                  else None)
        figs["ranking"] = fig
    scored = {s: table.loc[table["source"] == s, config.score_column].to_numpy(float)
              for s in results["suites"]}
    if edges is not None and scored:
        fig = F.new_figure(11, 2.4 * math.ceil(len(scored) / 4))
        for ax, (name, sc) in zip(F.panel_grid(fig, len(scored)), scored.items()):
            F.score_histograms(ax, {name: sc}, ref.scores, edges, ref.threshold)
        figs["histograms"] = fig
    if "log_mstar" in table and ranked:
        fig = F.new_figure(11, 2.8 * math.ceil(len(ranked) / 4))
        obs_mass = ref.mass if ref.mass is not None else None
        for ax, name in zip(F.panel_grid(fig, len(ranked), sharex=True, sharey=True),
                            ranked):
            sub = table[table["source"] == name]
            g = sub.groupby("galaxy_id").agg(log_mstar=("log_mstar", "mean"),
                                            mean=(config.score_column, "mean"),
                                            std=(config.score_column, "std"))
            F.score_vs_mass(ax, {name: g.fillna({"std": 0.0})}, obs_mass, ref.scores,
                            config.mass_bins)
        figs["mass"] = fig
    figs["properties"] = _property_figures(table, ref, ranked, properties, config)
    figs["scaling"] = _scaling_figures(table, ranked, config)
    return figs


def _or_nan(value) -> float:
    return float("nan") if value is None else float(value)


def _property_figures(table, ref: _Reference, ranked, properties, config) -> list:
    out = []
    for prop in properties:
        x, y = {}, {}
        for name in ([config.observed] if ref.scores is not None else []) + list(ranked):
            sub = table[table["source"] == name][[prop, config.score_column]].dropna()
            if len(sub):
                key = "observed" if name == config.observed else name
                x[key], y[key] = sub[prop].to_numpy(float), sub[config.score_column
                                                                ].to_numpy(float)
        if not x or sum(len(v) for v in x.values()) < 3:
            continue
        values = np.concatenate(list(x.values()))
        if np.unique(values[np.isfinite(values)]).size < 2:
            continue
        fig = F.new_figure(5.5, 4.5)
        F.score_vs_property(fig, x, y, prop)
        out.append(fig)
    return out


def _scaling_figures(table, ranked, config) -> list:
    relations = []
    if "log_mstar" in table and "r_half_kpc" in table:
        size = np.log10(table["r_half_kpc"].where(table["r_half_kpc"] > 0))
        relations.append(("size-mass", size, r"$\log_{10} r_{1/2}$ / kpc"))
    if "log_mstar" in table and "g_r" in table:
        relations.append(("colour-mass", table["g_r"], "g - r (mag)"))
    out = []
    for name, yv, ylabel in relations:
        groups = {"observed": table["source"] == config.observed,
                  "simulated suites": table["source"].isin(list(ranked))}
        groups = {k: m & np.isfinite(yv) & np.isfinite(table["log_mstar"])
                  for k, m in groups.items()}
        groups = {k: m for k, m in groups.items() if m.sum() >= 3}
        if not groups:
            continue
        fig = F.new_figure(5 * len(groups), 4)
        vmax = float(np.percentile(table[config.score_column], 99))
        for ax, (label, m) in zip(F.panel_grid(fig, len(groups), ncols=2,
                                               sharex=True, sharey=True),
                                  groups.items()):
            F.scaling_relation(ax, table.loc[m, "log_mstar"], yv[m],
                               table.loc[m, config.score_column],
                               r"$\log_{10} M_\star / M_\odot$", ylabel, vmax=vmax)
            ax.set_title(f"{name}: {label}", fontsize=9)
        out.append(fig)
    return out


# ----------------------------------------------------------------------
def rate(tables: Sequence[str | Path | pd.DataFrame], out_dir: str | Path,
         config: RateConfig | None = None, model: str | Path | None = None,
         extra_sections: Sequence[R.Section] | None = None,
         progress: ProgressCallback | None = None,
         images_for: ImagesFor | None = None, intro: str | None = None,
         extra_results: Mapping | None = None) -> dict:
    """Rate simulation suites against the observed galaxies.

    Parameters
    ----------
    tables : sequence of path or DataFrame
        Score tables (Parquet/CSV), concatenated.
    out_dir : path
        Output folder (created): ``report.html``, ``results.json``,
        ``ranking.csv``, ``run-rate.json``.
    config : RateConfig, optional
        Defaults to ``RateConfig()``.
    model : path, optional
        Model file. Its hash goes into the provenance; unless ``images_for``
        is given, galleries show its reconstructions and residuals (through
        ``galrate.detector``); without it they show originals only.
    extra_sections : list of (title, content), optional
        Sections placed first in the report; content is HTML, a DataFrame or
        a matplotlib Figure (or a list of them).
    progress : callable, optional
        ``progress(done, total, what)``.
    images_for : callable, optional
        ``images_for(source, image_ids) -> (originals, reconstructions,
        residuals)`` for the galleries (see :data:`ImagesFor`).
    intro : str, optional
        Opening paragraph of the report (plain text); a description of the
        score A by default.
    extra_results : mapping, optional
        JSON-able results of the extra sections, stored in ``results.json``
        under their own keys.

    Returns
    -------
    dict
        The JSON-able results, as written to ``results.json``: ``config``,
        ``observed``, ``suites`` (per-suite statistics), ``ranking``,
        ``sanity``, ``paired``, ``between_suites``, ``warnings``,
        ``provenance``.
    """
    config = config or RateConfig()
    progress = progress or no_progress
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    table, notes = load_tables(tables, config)
    ref = _reference(table, config)
    sources = sorted(table["source"].unique())
    suites = [s for s in sources if s != config.observed]
    if not suites:
        raise ValueError(f"no suite to rate: the tables hold only {sources}")
    sanity = [s for s in suites if s.startswith(config.sanity_prefix)]
    ranked = [s for s in suites if s not in sanity]
    properties = _numeric_properties(table, config)
    edges = None
    if ref.scores is not None:
        pooled = table.loc[~table["source"].isin(sanity), config.score_column]
        edges = S.histogram_edges(pooled.to_numpy(float), bins=config.hist_bins)
    else:
        notes.append("no observed source: overlap, two-sample tests and mass "
                     "matching need observed scores and are left out")
    log.info("rating %d suite(s) against %s (%d images)", len(suites),
             config.observed if ref.kind == "source" else config.pct_column, len(table))

    results: dict = {"config": config.to_dict() | {"properties": properties},
                     "observed": _observed_summary(table, ref, config),
                     "suites": {}, "warnings": notes}
    n_steps = len(suites) + 2
    for k, name in enumerate(suites):
        progress(k, n_steps, "rating suites")
        sub = table[table["source"] == name].reset_index(drop=True)
        results["suites"][name] = _suite_statistics(
            sub, ref, edges, config, _suite_seed(config.seed, name), properties)
    progress(len(suites), n_steps, "rating suites")

    results["ranking"] = _ranking(results, ranked, config.rank_by)
    results["sanity"] = [
        {"source": s, "n_images": results["suites"][s]["n_images"],
         "anomaly_rate": results["suites"][s]["anomaly_rate"],
         "median": results["suites"][s]["median"],
         "flagged": bool(results["suites"][s]["anomaly_rate"]["value"]
                         >= config.sanity_min_rate)}
        for s in sanity]
    for s in results["sanity"]:
        if not s["flagged"]:
            notes.append(f"sanity set {s['source']!r} is not flagged: anomaly rate "
                         f"{s['anomaly_rate']['value']:.3f} < {config.sanity_min_rate}")
    results["paired"] = []
    for a, b in _default_pairs(table, ranked, config):
        pa, pb = (table[table["source"] == s] for s in (a, b))
        res = S.paired_differences(pa[config.score_column], pa["galaxy_id"],
                                   pb[config.score_column], pb["galaxy_id"],
                                   n_boot=config.n_boot, seed=_suite_seed(config.seed,
                                                                          a + "|" + b),
                                   level=config.level)
        res.pop("differences")
        results["paired"].append({"a": a, "b": b} | res)
    results["between_suites"] = []
    if config.between_suites and len(ranked) > 1:
        results["between_suites"] = S.between_suites(
            {s: table.loc[table["source"] == s, config.score_column].to_numpy(float)
             for s in ranked})
    results["provenance"] = _provenance(tables, table, model, config)
    progress(len(suites) + 1, n_steps, "rating suites")

    figs: dict = {}
    gallery_items: list = []
    if config.figures:
        figs = _figures(table, results, ref, edges, ranked, properties, config)
        if config.galleries:
            getter = images_for or _default_images_for(table, model, notes)
            if getter is not None:
                shown = ([config.observed] if ref.kind == "source" else []) + suites
                gallery_items = _galleries(table, shown, getter, config, notes)
    results.update(extra_results or {})
    results = _jsonable(results)

    sections = list(extra_sections or []) + R.standard_sections(results, figs,
                                                                gallery_items)
    R.write_report(out_dir / "report.html", sections,
                   intro=intro or "Suites of simulated galaxies rated against observed "
                         "galaxies by the anomaly score A of a detector trained on "
                         "observed images only (after Jin et al. 2024, MNRAS 529, "
                         "3536). Lower A: more like the observed galaxies.")
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False))
    R.ranking_table(results).to_csv(out_dir / "ranking.csv", index=False)
    write_run_record(out_dir, "rate", results["config"],
                     results["provenance"].get("inputs", {}))
    progress(n_steps, n_steps, "rating suites")
    log.info("wrote %s", out_dir / "report.html")
    return results


def _default_images_for(table: pd.DataFrame, model, notes: list[str]) -> ImagesFor | None:
    if "imageset" not in table.columns:
        notes.append("no 'imageset' column and no images_for: galleries left out")
        return None
    if model is not None:
        try:
            return _detector_images_for(model, table)
        except Exception as exc:  # the detector is optional for a report
            msg = (f"detector unavailable for galleries ({type(exc).__name__}: {exc}); "
                   "showing originals only")
            log.warning("%s", msg)
            notes.append(msg)
    return originals_from_imageset(table)


def _observed_summary(table: pd.DataFrame, ref: _Reference, config: RateConfig) -> dict:
    out = {"reference": ref.kind, "threshold": ref.threshold,
           "threshold_column": ref.flag_column, "percentile": config.percentile}
    if ref.scores is not None:
        obs = table[table["source"] == config.observed]
        out |= {"source": config.observed, "n_images": int(len(obs)),
                "n_galaxies": int(obs["galaxy_id"].nunique()),
                "median": float(np.median(ref.scores)), "mean": float(np.mean(ref.scores))}
        if ref.mass is not None:
            idx = S.assign_mass_bins(ref.mass, config.mass_bins)
            out["mass_bins"] = {
                label: {"n_images": int(np.sum(idx == b)),
                        "median": float(np.median(ref.scores[idx == b]))
                        if np.any(idx == b) else None,
                        "anomaly_rate": S.anomaly_rate(ref.scores[idx == b],
                                                       ref.threshold)
                        if np.any(idx == b) else None}
                for b, label in enumerate(S.mass_bin_labels(config.mass_bins))}
    return out


def _provenance(tables, table: pd.DataFrame, model, config: RateConfig) -> dict:
    inputs = {}
    for t in tables:
        if not isinstance(t, pd.DataFrame):
            inputs[str(Path(t).resolve())] = file_sha256(t)
    manifests = {}
    if "imageset" in table.columns:
        for folder in pd.unique(table["imageset"].dropna().astype(str)):
            for name in ("manifest.parquet", "manifest.csv"):
                p = Path(folder) / name
                if p.exists():
                    manifests[str(p)] = file_sha256(p)
                    break
    out = {"inputs": inputs, "manifests": manifests, "seed": config.seed,
           "n_boot": config.n_boot, "versions": versions()}
    if model is not None:
        out["model"] = str(model)
        out["model_sha256"] = file_sha256(model) if Path(model).is_file() else None
    return out


def _jsonable(obj):
    """Plain Python types, NaN and infinities as None."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Mapping):
        return _jsonable(dict(obj))
    return obj
