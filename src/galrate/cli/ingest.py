"""``galrate ingest``: image files or a catalogue of them -> an image set."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from . import CommandError, add_log_file
from ._progress import Bars

log = logging.getLogger("galrate.cli.ingest")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ingest", help="turn image files (PNG/JPEG/FITS/.npy) into an image set",
        description="Decode and validate image files and pack them into an image set "
                    "(manifest.parquet, pixels.h5, imageset.json, rejects.parquet). "
                    "SOURCE is a folder (searched recursively for *.png, *.jpg, *.jpeg, "
                    "*.fits, *.fits.gz, *.npy) or a catalogue (CSV/Parquet/FITS) with a "
                    "path column and property columns. Bad images are set aside in "
                    "rejects.parquet with their reason.")
    p.add_argument("source", type=Path, metavar="SOURCE",
                   help="folder of images, or a catalogue file listing them")
    p.add_argument("--out", type=Path, required=True, metavar="IMAGESET",
                   help="image-set folder to write")
    p.add_argument("--survey", default="sdss",
                   help="survey profile: built-in name or TOML file (default: sdss)")
    p.add_argument("--size", type=int, default=64, help="cutout side in pixels (64)")
    p.add_argument("--source", dest="source_name", default="observed", metavar="NAME",
                   help="value of the manifest's source column (default: observed)")
    p.add_argument("--catalogue", type=Path, metavar="CAT",
                   help="catalogue listing the files; SOURCE is then the folder its "
                        "relative paths refer to")
    p.add_argument("--path-column", default="path",
                   help="column with the file path, or stem of per-band columns "
                        "PATH_g, PATH_r, PATH_i (default: path)")
    p.add_argument("--id-column", help="column with the image id (default: image_id "
                                       "if present, else the file name)")
    p.add_argument("--resize", nargs="?", const="crop", choices=("crop", "area"),
                   help="bring larger images to --size: centre crop (default when "
                        "given without a value) or crop-then-area-average; without "
                        "this option a wrong-size image is rejected")
    p.add_argument("--workers", type=int, default=1,
                   help="threads decoding images in parallel (default: 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..imageset.core import ImageSetError
    from ..imageset.ingest import ingest

    add_log_file(args.out / "ingest.log")
    bars = Bars(disable=args.no_progress)
    try:
        imageset = ingest(args.source, args.out, survey=args.survey, size=args.size,
                          source_name=args.source_name, catalogue=args.catalogue,
                          path_column=args.path_column, id_column=args.id_column,
                          resize=args.resize or False, progress=bars,
                          workers=args.workers)
    except ImageSetError as exc:
        raise CommandError(str(exc)) from exc
    finally:
        bars.close()
    rejects = imageset.rejects()
    print(f"{len(imageset)} images -> {args.out}  ({len(rejects)} rejected"
          f"{', see rejects.parquet' if len(rejects) else ''})")
    for reason, n in rejects["reason"].str.split(":").str[0].value_counts().items():
        print(f"  rejected {n:6d}  {reason}")
    return 0
