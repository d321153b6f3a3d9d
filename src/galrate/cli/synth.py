"""``galrate synth``: render the embedded synthetic sky into image sets."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from . import CommandError, add_log_file, comma_list
from ._progress import Bars

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth", help="render the synthetic SDSS-like sky (observed, suites, sanity sets)",
        description="Render the embedded synthetic sky with GalSim: an observed set, "
                    "simulation suites with named deviations at levels 0-3 (0 = the null "
                    "suite) and sanity sets, one image-set folder each under OUT, plus "
                    "OUT/sky.json and OUT/contact_sheet.png.")
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--config", type=Path, help="TOML file with SynthConfig fields "
                                               "(options given here win)")
    p.add_argument("--n-observed", type=int, help="observed galaxies (default 2000)")
    p.add_argument("--n-suite", type=int, help="suite galaxies (default 200)")
    p.add_argument("--projections", type=int, help="orientations per suite galaxy "
                                                   "(default 4)")
    p.add_argument("--families", type=comma_list(str),
                   help="comma-separated deviation families (default: all: compact,"
                        "extended,blue,red,bulgeless,clumpy,smooth)")
    p.add_argument("--levels", type=comma_list(int), help="comma-separated levels 0-3 "
                                                    "(default 0,1,2,3)")
    p.add_argument("--n-sanity", type=int, help="images per sanity set (default 64)")
    p.add_argument("--seed", type=int, help="master seed (default 0)")
    p.add_argument("--workers", type=int, help="rendering processes (default: all cores)")
    p.add_argument("--no-contact-sheet", action="store_true",
                   help="do not write contact_sheet.png")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..synth import SynthConfig, synth

    overrides = {"n_observed": args.n_observed, "n_suite": args.n_suite,
                 "projections": args.projections, "families": args.families,
                 "levels": args.levels, "n_sanity": args.n_sanity, "seed": args.seed,
                 "workers": args.workers}
    if args.no_contact_sheet:
        overrides["contact_sheet"] = False
    if args.config is not None:
        config = SynthConfig.from_toml(args.config, **overrides)
    else:
        try:
            config = SynthConfig(**{k: v for k, v in overrides.items() if v is not None})
        except TypeError as exc:
            raise CommandError(f"invalid synth options: {exc}") from exc
    args.out.mkdir(parents=True, exist_ok=True)
    add_log_file(args.out / "synth.log")
    bars = Bars(disable=args.no_progress)
    try:
        sky = synth(args.out, config, progress=bars)
    finally:
        bars.close()
    n = sum(s["n_images"] for s in sky["sets"])
    log.info("wrote %d image sets, %d images, to %s", len(sky["sets"]), n, args.out)
    print(f"{len(sky['sets'])} image sets, {n} images -> {args.out}")
    return 0
