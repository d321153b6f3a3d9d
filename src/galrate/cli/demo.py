"""``galrate demo``: the whole flow on the embedded synthetic sky."""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import fields
from pathlib import Path

from . import add_log_file, comma_list
from ._progress import Bars

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="run synth -> train -> score -> rate on the synthetic sky",
        description="Run the whole flow on the embedded synthetic sky: render it, train "
                    "the detector on the observed training galaxies (a CPU-sized "
                    "configuration), score the observed test set, the null suite, every "
                    "suite at every level and the sanity sets, rate them and write an "
                    "HTML report. Steps already done under OUT are skipped, so a killed "
                    "demo resumes.")
    p.add_argument("--out", type=Path, default=Path("runs/demo"),
                   help="output folder (default runs/demo)")
    p.add_argument("--seeds", type=comma_list(int), help="detector seeds, e.g. 0,1,2 (default 0): "
                                               "one detector each, ratings as ensembles")
    p.add_argument("--n-observed", type=int, help="observed galaxies")
    p.add_argument("--n-suite", type=int, help="galaxies per suite")
    p.add_argument("--projections", type=int, help="orientations per suite galaxy")
    p.add_argument("--epochs", type=int, help="training epochs")
    p.add_argument("--seed", type=int, help="seed of the sky and the statistics")
    p.add_argument("--workers", type=int, help="rendering processes")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import DemoConfig, demo

    known = {f.name for f in fields(DemoConfig)}
    overrides = {k: v for k, v in vars(args).items() if k in known and v is not None}
    config = DemoConfig(**overrides)
    args.out.mkdir(parents=True, exist_ok=True)
    add_log_file(args.out / "demo.log")
    bars = Bars(disable=args.no_progress)
    t0 = time.perf_counter()
    try:
        result = demo(args.out, config, progress=bars)
    finally:
        bars.close()
    minutes = (time.perf_counter() - t0) / 60
    checks = result["verdict"]["checks"]
    print(f"demo finished in {minutes:.1f} min; report: {args.out / 'report' / 'report.html'}")
    print(f"  null suite detected: {checks.get('null_detected')}")
    print(f"  families detected at their top level: "
          f"{sum(checks['detected_at_top_level'].values())} of "
          f"{len(checks['detected_at_top_level'])}")
    print(f"  sanity sets detected: {sum(checks['sanity_detected'].values())} of "
          f"{len(checks['sanity_detected'])}")
    return 0
