"""``galrate fetch``: download survey cutouts for a catalogue -> an image set."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import CommandError, add_log_file
from ._progress import Bars


def _fractions(text: str) -> tuple[float, ...] | None:
    if text.lower() in ("none", "no", ""):
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--split wants three comma-separated "
                                         f"fractions like 0.8,0.1,0.1; got {text!r}")
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"--split wants three fractions (train, val, "
                                         f"test); got {len(values)}")
    return values


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fetch", help="download survey cutouts for a catalogue into an image set",
        description="Download cutouts for the galaxies of CATALOGUE (CSV, Parquet or "
                    "FITS with ra, dec in degrees, an optional id and any properties) "
                    "from the SDSS SkyServer JPEG service or a hips2fits-like FITS "
                    "service, check each on arrival, and pack them into an image set "
                    "ready for 'galrate train'. Interrupt at will: rerunning the same "
                    "command skips what is done and retries what failed.")
    p.add_argument("catalogue", type=Path, metavar="CATALOGUE")
    p.add_argument("--out", type=Path, required=True, metavar="IMAGESET",
                   help="output folder (cutouts/, journal, image set)")
    p.add_argument("--service", choices=("skyserver", "hips2fits"), default="skyserver",
                   help="skyserver: DR17 colour JPEGs (as in Jin et al. 2024); "
                        "hips2fits: g, r, i FITS images (default: skyserver)")
    p.add_argument("--where", help="pandas query selecting rows, e.g. "
                                   "\"log_mstar >= 9\"")
    p.add_argument("--id-column", help="galaxy id column (default: id, objid, image_id "
                                       "or galaxy_id if present, else from ra/dec)")
    p.add_argument("--ra-column", default="ra")
    p.add_argument("--dec-column", default="dec")
    p.add_argument("--release", default="DR17", help="SkyServer data release (DR17)")
    p.add_argument("--size", type=int, default=64, help="cutout side in pixels (64)")
    p.add_argument("--scale", type=float, default=0.396,
                   help="arcsec per pixel (0.396, the native SDSS scale)")
    p.add_argument("--base-url", help="service endpoint (default: the public service)")
    p.add_argument("--hips", default="CDS/P/SDSS9/{band}",
                   help="HiPS id pattern for hips2fits (default: CDS/P/SDSS9/{band})")
    p.add_argument("--survey", default="sdss", help="survey profile (default: sdss)")
    p.add_argument("--rate", type=float, default=5.0,
                   help="requests per second over all threads (default: 5; 0: no limit)")
    p.add_argument("--workers", type=int, default=4, help="download threads (4)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request (30)")
    p.add_argument("--retries", type=int, default=4,
                   help="retries per request on timeouts, 5xx and 429 (4)")
    p.add_argument("--backoff", type=float, default=1.0,
                   help="base of the exponential backoff, seconds (1)")
    p.add_argument("--max-images", type=int,
                   help="stop after this many galaxies in this run")
    p.add_argument("--retry-rejected", action="store_true",
                   help="download again the galaxies rejected by an earlier run")
    p.add_argument("--split", type=_fractions, default=(0.8, 0.1, 0.1),
                   help="train,val,test fractions by galaxy (default 0.8,0.1,0.1; "
                        "'none' for no split column)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (0)")
    p.add_argument("--source", dest="source_name", default="observed", metavar="NAME")
    p.add_argument("--no-pack", action="store_true",
                   help="only download; do not build pixels.h5 and the manifest")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..fetch import fetch
    from ..imageset.core import ImageSetError

    add_log_file(args.out / "fetch.log")
    bars = Bars(disable=args.no_progress)
    try:
        summary, _ = fetch(
            args.catalogue, args.out, service=args.service, where=args.where,
            id_column=args.id_column, ra_column=args.ra_column,
            dec_column=args.dec_column, survey=args.survey, size=args.size,
            scale=args.scale, release=args.release, base_url=args.base_url,
            hips=args.hips, rate=args.rate or None, workers=args.workers,
            timeout=args.timeout, retries=args.retries, backoff=args.backoff,
            max_images=args.max_images, retry_rejected=args.retry_rejected,
            split=args.split, seed=args.seed, source_name=args.source_name,
            pack=not args.no_pack, progress=bars)
    except ImageSetError as exc:
        raise CommandError(str(exc)) from exc
    finally:
        bars.close()
    for line in summary.lines():
        print(line)
    return 0 if not summary.failed else 1
