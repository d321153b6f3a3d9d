"""Provenance: versions, seeds and resolved configuration of every run."""

from __future__ import annotations

import json
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Callable, Mapping

#: called by long library functions as ``progress(done, total, what)``
ProgressCallback = Callable[[int, int, str], None]

_PACKAGES = ("galrate", "numpy", "scipy", "pandas", "torch", "lightning", "galsim",
             "astropy", "pynbody", "scikit-learn", "statmorph", "h5py", "safetensors")


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape results."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_run_record(folder: str | Path, command: str, config: Mapping,
                     inputs: Mapping[str, str] | None = None) -> Path:
    """Write ``run.json`` next to a command's outputs.

    Parameters
    ----------
    folder : path
        Output folder of the run.
    command : str
        The step (``"synth"``, ``"train"``...).
    config : mapping
        Resolved configuration, seeds included.
    inputs : mapping, optional
        Input name -> content hash.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"command": command, "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                            time.gmtime()),
              "config": dict(config), "inputs": dict(inputs or {}),
              "versions": versions()}
    path = folder / f"run-{command}.json"
    path.write_text(json.dumps(record, indent=2, default=str))
    return path


def no_progress(done: int, total: int, what: str) -> None:
    """The default progress callback: does nothing."""
