"""Contact sheet: a labelled row of cutouts per image set, as one PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from ..imageset import ImageSet

__all__ = ["contact_sheet", "sheet_sets"]

_LABEL_WIDTH = 150
_ZOOM = 2
_GAP = 4


def contact_sheet(sets: Mapping[str, ImageSet], path: str | Path, n_per_row: int = 8
                  ) -> Path:
    """Write a PNG with the first ``n_per_row`` images of each set in a labelled row.

    Parameters
    ----------
    sets : mapping name -> ImageSet
        Rows of the sheet, in order.
    path : path
        The PNG to write.
    n_per_row : int
        Images per row (fewer when a set is smaller).

    Returns
    -------
    Path
        ``path``.
    """
    from PIL import Image, ImageDraw, ImageFont

    if n_per_row < 1:
        raise ValueError(f"n_per_row must be >= 1; got {n_per_row!r}")
    if not sets:
        raise ValueError("contact_sheet needs at least one image set")
    rows = []
    for name, imageset in sets.items():
        n = min(n_per_row, len(imageset))
        rows.append((name, imageset.rgb(np.arange(n)) if n else None))
    size = max(r.shape[1] for _, r in rows if r is not None) if any(
        r is not None for _, r in rows) else 64
    cell = size * _ZOOM + _GAP
    sheet = Image.new("RGB", (_LABEL_WIDTH + n_per_row * cell, len(rows) * cell),
                      (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=14)
    for r, (name, images) in enumerate(rows):
        y = r * cell
        draw.text((6, y + cell // 2 - 8), name, fill=(230, 230, 230), font=font)
        for c, img in enumerate([] if images is None else images):
            tile = Image.fromarray(img).resize((size * _ZOOM, size * _ZOOM), Image.NEAREST)
            sheet.paste(tile, (_LABEL_WIDTH + c * cell, y + _GAP // 2))
    path = Path(path)
    sheet.save(path)
    return path


def sheet_sets(out: str | Path, sky: Mapping) -> dict[str, ImageSet]:
    """The sets a synthetic sky's contact sheet shows.

    Observed, null, each family at its highest level written, and the sanity
    sets, opened from the folders listed in ``sky["sets"]``.
    """
    out = Path(out)
    top: dict[str, dict] = {}
    for entry in sky["sets"]:
        if entry["kind"] == "suite" and entry["family"] != "null":
            best = top.get(entry["family"])
            if best is None or entry["level"] > best["level"]:
                top[entry["family"]] = entry
    chosen = [e for e in sky["sets"] if e["kind"] == "observed" or e["name"] == "null"]
    chosen += list(top.values())
    chosen += [e for e in sky["sets"] if e["kind"] == "sanity"]
    return {e["name"]: ImageSet.open(out / e["path"]) for e in chosen}
