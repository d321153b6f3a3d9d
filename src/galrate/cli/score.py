"""``galrate score``: score an image set with a trained detector."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ._progress import Bars


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "score", help="score an image set with a trained detector",
        description="Score every image of an image set: the paper's latent score A "
                    "(score_latent), reconstruction and discriminator-feature scores, "
                    "and their percentiles against the model's observed reference. "
                    "An interrupted run resumes from <out>.parts/.")
    p.add_argument("model", type=Path, metavar="MODEL", help="model folder")
    p.add_argument("imageset", type=Path, metavar="IMAGESET")
    p.add_argument("--out", type=Path, required=True,
                   help="score table (.parquet, or .csv)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--latents", action="store_true",
                   help="also write <stem>.arrays.h5 with latent_i and latent_o")
    p.add_argument("--paper-mode", action="store_true",
                   help="one image at a time with BatchNorm in training mode, as the "
                        "original GANomaly code (slow; scores differ from the default)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..detector import score

    bars = Bars(disable=args.no_progress)
    t0 = time.perf_counter()
    try:
        table = score(args.model, args.imageset, args.out, batch_size=args.batch_size,
                      latents=args.latents, paper_mode=args.paper_mode, progress=bars)
    finally:
        bars.close()
    wall = time.perf_counter() - t0
    extra = f" (+ {args.out.with_name(args.out.stem + '.arrays.h5')})" \
        if args.latents else ""
    print(f"scored {len(table)} images in {wall:.1f} s "
          f"({len(table) / max(wall, 1e-9):.0f} img/s) -> {args.out}{extra}")
    return 0
