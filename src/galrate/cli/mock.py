"""``galrate mock``: mock-observe simulated galaxies into an image set."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from . import CommandError, add_log_file

log = logging.getLogger("galrate.cli.mock")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "mock", help="mock-observe simulated galaxies (snapshots or idealised FITS maps)",
        description="Put simulated galaxies through the survey model: particle snapshots "
                    "(pynbody: tipsy, Gadget/HDF5) or idealised band maps (FITS) are "
                    "placed at a redshift, resampled onto survey pixels, convolved with "
                    "the PSF, given sky noise and rendered with the survey's colour "
                    "recipe. The output is an image set ready for 'galrate score'.",
        epilog="A galaxy that fails (bad file, no stars) is listed in rejects.parquet "
               "and the run goes on. See galrate.mock.MockConfig for the TOML keys.")
    p.add_argument("input_dir", type=Path, help="folder of snapshots and/or FITS maps")
    p.add_argument("--out", type=Path, required=True, help="output image-set folder")
    p.add_argument("--config", type=Path, default=None,
                   help="mock.toml: survey, [redshift], [projections], [particles], "
                        "[dust], [images], seed...")
    p.add_argument("--workers", type=int, default=1,
                   help="galaxies processed in parallel (processes; default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..mock import mock_folder
    from ._progress import Bars

    if args.config is not None and not args.config.is_file():
        raise CommandError(f"--config {args.config}: file not found")
    if args.workers < 1:
        raise CommandError(f"--workers must be >= 1; got {args.workers}")
    add_log_file(args.out / "mock.log")
    bars = Bars(disable=args.no_progress)
    try:
        imageset = mock_folder(args.input_dir, args.out, args.config,
                               workers=args.workers, progress=bars)
    finally:
        bars.close()
    rejected = len(imageset.rejects())
    log.info("wrote %d images to %s (%d galaxies rejected)", len(imageset), args.out,
             rejected)
    if len(imageset) == 0:
        raise CommandError(f"no galaxy could be mock-observed; see {args.out}/"
                           "rejects.parquet")
    return 0
