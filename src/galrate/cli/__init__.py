"""The ``galrate`` command line: one thin subcommand per step of the flow.

Each subcommand lives in a module of this package that defines
``register(subparsers)``; it parses arguments, calls the library and owns
logging, progress bars and exit codes. The library itself never prints.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from .. import __version__

#: subcommand -> module in this package, in the order of the flow
COMMANDS = ("fetch", "synth", "mock", "ingest", "train", "score", "rate", "demo")

log = logging.getLogger("galrate")


def comma_list(kind=str):
    """An argparse ``type``: ``"0,1,2"`` -> ``(kind("0"), kind("1"), kind("2"))``."""
    def parse(text: str) -> tuple:
        return tuple(kind(x) for x in text.split(",") if x.strip())
    return parse


class CommandError(Exception):
    """A failure the CLI reports as one line and exit status 2."""


def setup_logging(verbosity: int, logfile: Path | None = None) -> None:
    """Console logging at the chosen level, plus an optional log file."""
    level = logging.WARNING - 10 * min(verbosity, 2)
    fmt = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                            datefmt="%H:%M:%S")
    root = logging.getLogger("galrate")
    for old in [h for h in root.handlers if getattr(h, "_galrate_cli", False)]:
        root.removeHandler(old)
        old.close()
    root.setLevel(min(level, logging.INFO) if logfile else level)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level)
    console.setFormatter(fmt)
    console._galrate_cli = True
    root.addHandler(console)
    if logfile is not None:
        add_log_file(logfile)


def add_log_file(path: Path) -> None:
    """Also write INFO and above to ``path`` (next to a command's outputs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = logging.FileHandler(path)
    fh.setLevel(logging.INFO)
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    fh._galrate_cli = True
    root = logging.getLogger("galrate")
    root.setLevel(min(root.level or logging.INFO, logging.INFO))
    root.addHandler(fh)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="galrate",
        description="Rate galaxy-formation simulations against survey images with "
                    "unsupervised anomaly detection (after Jin et al. 2024, MNRAS 529, "
                    "3536). A detector learns observed galaxies only; simulated galaxies, "
                    "mock-observed through the same survey model, are scored and the "
                    "suites compared.",
        epilog="Typical flow: synth/fetch -> train -> score -> rate. "
               "'galrate demo' runs it all on the embedded synthetic sky.")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (-v info, -vv debug)")
    parser.add_argument("--version", action="version", version=f"galrate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        log.error("%s", exc)
        return 2
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted; rerun the same command to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
