"""Checks every image must pass, the rejects table, and the train/val/test split.

The checks return a reason (a short sentence) or None; they never raise on
bad pixels, so a caller can record the reason and carry on. The fetcher runs
the same checks on each cutout as it arrives.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .core import REJECT_COLUMNS

log = logging.getLogger(__name__)

__all__ = ["check_rgb", "check_flux", "Rejects", "assign_split", "SPLIT_NAMES"]

SPLIT_NAMES = ("train", "val", "test")


def _blank_reason(array: np.ndarray) -> str | None:
    lo, hi = np.min(array), np.max(array)
    if hi == 0 and lo == 0:
        return "blank image: all pixels are zero"
    if lo == hi:
        return f"blank image: constant value {lo:g}"
    return None


def check_rgb(array: np.ndarray, size: int | None = None) -> str | None:
    """Why an RGB picture is unusable, or None when it is fine.

    Parameters
    ----------
    array : ndarray, shape (H, W, 3)
        The picture, uint8 (other dtypes must be finite).
    size : int, optional
        Expected side in pixels.

    Returns
    -------
    str or None
        ``"shape (48, 48, 3), expected (64, 64, 3)"``, ``"blank image: all
        pixels are zero"``, ``"blank image: constant value 128"``,
        ``"3 non-finite pixel values"``, or None.
    """
    array = np.asarray(array)
    expected = (size, size, 3) if size else ("H", "W", 3)
    if array.ndim != 3 or array.shape[-1] != 3 or (size and array.shape[:2] != (size, size)):
        return f"shape {tuple(array.shape)}, expected {expected}".replace("'", "")
    if array.dtype != np.uint8:
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            return f"{bad} non-finite pixel values"
    return _blank_reason(array)


def check_flux(flux: np.ndarray, n_bands: int | None = None, size: int | None = None,
               ) -> str | None:
    """Why band images are unusable, or None when they are fine.

    Parameters
    ----------
    flux : ndarray, shape (n_bands, H, W)
        Band images in nanomaggies per pixel.
    n_bands, size : int, optional
        Expected number of bands and side in pixels.

    Returns
    -------
    str or None
        The reason, e.g. ``"12 NaN/inf pixels (0.1% of 12288) in band 0"``.

    Notes
    -----
    Any NaN or infinite pixel rejects the image: filling them in would
    invent sky that a detector then learns from, so repair is left to the
    user, who knows where the gaps come from. A band that is constant
    (zero or otherwise) is blank and rejects the image too.
    """
    flux = np.asarray(flux)
    want = (n_bands or "C", size or "H", size or "W")
    if flux.ndim != 3 or (n_bands and flux.shape[0] != n_bands) \
            or (size and flux.shape[1:] != (size, size)):
        return f"flux shape {tuple(flux.shape)}, expected {want}".replace("'", "")
    bad = ~np.isfinite(flux)
    if bad.any():
        counts = bad.reshape(len(flux), -1).sum(axis=1)
        worst = int(np.argmax(counts))
        total = int(bad.sum())
        return (f"{total} NaN/inf pixels ({100 * total / flux.size:.2g}% of "
                f"{flux.size}), most in band {worst}")
    for k, plane in enumerate(flux):
        reason = _blank_reason(plane)
        if reason:
            return f"band {k}: {reason}"
    return None


class Rejects:
    """Collects images set aside, each with its file and reason.

    Every entry is also logged at WARNING level (a log line, not a Python
    warning), so nothing is rejected silently.
    """

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, image_id: str, file: str | Path, reason: str) -> None:
        """Record one rejected image."""
        self.rows.append({"image_id": str(image_id), "file": str(file),
                          "reason": str(reason)})
        log.warning("rejected %s (%s): %s", image_id, file, reason)

    def extend(self, frame: pd.DataFrame | None) -> None:
        """Add the rows of an existing rejects table."""
        if frame is not None and len(frame):
            self.rows.extend(frame[list(REJECT_COLUMNS)].astype(str).to_dict("records"))

    def __len__(self) -> int:
        return len(self.rows)

    def to_frame(self) -> pd.DataFrame:
        """The rejects table: columns image_id, file, reason."""
        return pd.DataFrame(self.rows, columns=list(REJECT_COLUMNS), dtype=str)

    def counts(self) -> dict[str, int]:
        """Number of rejects per reason (reasons cut at the first colon)."""
        out: dict[str, int] = {}
        for row in self.rows:
            key = row["reason"].split(":")[0].split("(")[0].strip()
            out[key] = out.get(key, 0) + 1
        return out


def _unit_hash(galaxy_id: str, seed: int) -> float:
    digest = hashlib.blake2b(f"{seed}\x1f{galaxy_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64


def assign_split(galaxy_ids: Iterable, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                 seed: int = 0, names: Sequence[str] = SPLIT_NAMES) -> np.ndarray:
    """Assign each galaxy to train/val/test by hashing its id with a seed.

    Parameters
    ----------
    galaxy_ids : iterable
        One id per image; ids are compared as strings, so all images of a
        galaxy (projections, levels of a suite) land in the same split.
    fractions : sequence of float
        Target fraction per split, non-negative, summing to 1 (within 1e-6).
    seed : int
        Changes the assignment; the same seed gives the same split.
    names : sequence of str
        Split names, one per fraction.

    Returns
    -------
    ndarray of str, shape (N,)
        The split name of each entry.

    Notes
    -----
    A galaxy's split depends only on its id and the seed: BLAKE2b of
    ``"{seed}\\x1f{id}"`` gives a number u uniform in [0, 1), and the galaxy
    goes to the first split whose cumulative fraction exceeds u. Adding,
    removing or reordering other galaxies never moves it. The realised
    fractions scatter binomially around the targets (about
    ``sqrt(f (1 - f) / N)``).
    """
    fractions = np.asarray(list(fractions), dtype=float)
    if len(fractions) != len(names):
        raise ValueError(f"fractions {fractions.tolist()} and split names {list(names)} "
                         f"differ in length")
    if (fractions < 0).any() or abs(fractions.sum() - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be >= 0 and sum to 1; got "
                         f"{fractions.tolist()} (sum {fractions.sum():.6g})")
    edges = np.cumsum(fractions)
    edges[-1] = 1.0 + 1e-12
    ids = [str(g) for g in galaxy_ids]
    cache: dict[str, float] = {}
    for g in ids:
        if g not in cache:
            cache[g] = _unit_hash(g, seed)
    u = np.array([cache[g] for g in ids], dtype=float)
    which = np.searchsorted(edges, u, side="right")
    return np.asarray(names, dtype=object)[which].astype(str)
