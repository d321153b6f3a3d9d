"""``galrate rate``: statistics, figures and an HTML report over score tables."""

from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path

from . import CommandError, add_log_file
from ._progress import Bars

log = logging.getLogger("galrate.cli.rate")


def _edges(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated log10 masses like 9,10.29,11.39,12.5, got {text!r}")


def _pair(text: str) -> tuple[str, str]:
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected two suites 'A,B', got {text!r}")
    return parts[0], parts[1]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "rate", help="rate suites: statistics, figures, HTML report",
        description="Rate simulation suites against the observed galaxies from score "
                    "tables (galrate score, or an external CSV with a per-image score). "
                    "Intervals resample galaxies (all projections of a drawn galaxy "
                    "together). Writes report.html, results.json and ranking.csv.")
    p.add_argument("tables", nargs="+", type=Path, metavar="TABLE",
                   help="score tables (Parquet or CSV)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--score-column", default="score_latent",
                   help="per-image score (default: score_latent, the paper's A)")
    p.add_argument("--observed", default="observed",
                   help="source name of the observed reference (default: observed); "
                        "without it in the tables the pct column is used")
    p.add_argument("--pct-column", default=None,
                   help="calibrated percentile column (default: pct_<score>)")
    p.add_argument("--source-column", default="source", help="suite column")
    p.add_argument("--galaxy-column", default="galaxy_id",
                   help="galaxy column (missing: each image is its own galaxy)")
    p.add_argument("--image-column", default="image_id", help="image id column")
    p.add_argument("--mass-column", default="log_mstar",
                   help="log10 stellar mass column (Msun)")
    p.add_argument("--mass-bins", type=_edges, default=(9.0, 10.29, 11.39, 12.5),
                   help="log10 M* bin edges (default: 9,10.29,11.39,12.5)")
    p.add_argument("--percentile", type=float, default=95.0,
                   help="observed percentile that defines an anomaly (default: 95)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--hist-bins", default="30",
                   help="overlap histogram bins: a count or a numpy rule (default: 30)")
    p.add_argument("--rank-by", choices=("anomaly_rate", "median", "overlap"),
                   default="anomaly_rate", help="ranking statistic")
    p.add_argument("--pair", type=_pair, action="append", default=[], metavar="A,B",
                   help="extra suite pair for the paired comparison (repeatable)")
    p.add_argument("--properties", default=None,
                   help="comma-separated properties to correlate (default: all numeric)")
    p.add_argument("--model", type=Path, default=None,
                   help="model file: hashed, and used for reconstructions in galleries")
    p.add_argument("--no-galleries", action="store_true", help="skip image galleries")
    p.add_argument("--no-between", action="store_true",
                   help="skip the two-sample tests between pairs of suites")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..imageset import GalrateDataWarning
    from ..rating import RateConfig, rate

    bins = int(args.hist_bins) if args.hist_bins.isdigit() else args.hist_bins
    config = RateConfig(
        score_column=args.score_column, observed=args.observed,
        pct_column=args.pct_column, source_column=args.source_column,
        galaxy_column=args.galaxy_column, image_column=args.image_column,
        mass_column=args.mass_column, percentile=args.percentile,
        mass_bins=args.mass_bins, n_boot=args.n_boot, seed=args.seed, hist_bins=bins,
        rank_by=args.rank_by, pairs=tuple(args.pair),
        properties=tuple(args.properties.split(",")) if args.properties else None,
        galleries=not args.no_galleries, between_suites=not args.no_between)
    if args.model is not None and not args.model.is_file():
        raise CommandError(f"--model: {args.model} is not a file")
    add_log_file(args.out / "rate.log")
    bars = Bars(disable=args.no_progress)
    with warnings.catch_warnings():
        warnings.simplefilter("always", GalrateDataWarning)
        warnings.showwarning = _log_warning
        try:
            results = rate(args.tables, args.out, config, model=args.model,
                           progress=bars)
        finally:
            bars.close()
    from ..rating.report import format_estimate

    for row in results["ranking"]:
        print(f"{row['rank']:3d}  {row['suite']:<24s} {args.rank_by} "
              f"{format_estimate(row[args.rank_by])}")
    print(f"wrote {args.out / 'report.html'} and {args.out / 'results.json'}")
    return 0


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    log.warning("%s", message)
