"""Turn a folder of image files, or a catalogue of them, into an image set.

``ingest`` decodes every input (PNG, JPEG, FITS, .npy), validates it, packs
the accepted pixels into the chunked HDF5 array store (``pixels.h5``) and
writes the manifest with the catalogue's properties, the metadata and the
rejects table. An image that fails is set aside with its reason; the run
never stops for one bad file.
"""

from __future__ import annotations

import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..provenance import ProgressCallback, no_progress, versions, write_run_record
from ..survey import Survey, load_survey
from .core import (METADATA, REJECTS, STORE, ArrayStoreWriter, ImageSet, ImageSetError,
                   write_imageset)
from .readers import (FLUX_SUFFIXES, IMAGE_SUFFIXES, DecodedImage, ImageReadError,
                      image_suffix, input_kind, read_band_files, read_image)
from .validate import Rejects, check_flux, check_rgb

log = logging.getLogger(__name__)

__all__ = ["ingest", "find_images", "read_catalogue", "fit_to_size", "RESIZE_MODES"]

#: accepted values of ``resize`` besides False: centre crop, or crop then area resample
RESIZE_MODES = ("crop", "area")
#: manifest columns written by ingest; catalogue columns of the same name are renamed
_RESERVED = ("path", "index")
#: images decoded and appended to the store per step
_BATCH = 256


@dataclass
class _Item:
    """One image to ingest: its id, its file(s) and its catalogue properties."""

    image_id: str
    files: Path | dict[str, Path]
    label: str
    props: dict = field(default_factory=dict)

    def kind(self) -> str:
        if isinstance(self.files, dict):
            return "flux"
        try:
            return input_kind(self.files)
        except ImageReadError:
            return "rgb"


# ----------------------------------------------------------------------
# inputs

def find_images(folder: str | Path) -> list[Path]:
    """All image files under ``folder`` (recursive), sorted by path.

    Files ending in one of :data:`~galrate.imageset.readers.IMAGE_SUFFIXES`
    (case-insensitive) are returned; hidden folders are skipped.
    """
    folder = Path(folder)
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if image_suffix(name) in IMAGE_SUFFIXES:
                found.append(Path(dirpath) / name)
    return sorted(found)


def _strip(path: Path, root: Path) -> str:
    """Path relative to ``root`` without its image ending, '/'-separated."""
    rel = path.relative_to(root).as_posix()
    suffix = image_suffix(path)
    return rel[: len(rel) - len(suffix)] if suffix else rel


def _folder_items(folder: Path, survey: Survey) -> list[_Item]:
    """One item per file; FITS files named ``<stem>_<band>`` grouped per galaxy.

    A group with every survey band becomes one per-band item; a partial
    group falls back to one item per file (and is rejected at decoding
    unless each file holds all bands).
    """
    files = find_images(folder)
    band_re = re.compile(r"^(.*)[_\-.](" + "|".join(map(re.escape, survey.band_names))
                         + r")$")
    groups: dict[str, dict[str, Path]] = {}
    singles: list[Path] = []
    for f in files:
        m = band_re.match(_strip(f, folder)) if image_suffix(f) in FLUX_SUFFIXES else None
        if m:
            groups.setdefault(m.group(1), {})[m.group(2)] = f
        else:
            singles.append(f)
    items = []
    for stem, members in groups.items():
        if set(members) == set(survey.band_names):
            ordered = {b: members[b] for b in survey.band_names}
            label = ";".join(f"{b}={p.relative_to(folder).as_posix()}"
                             for b, p in ordered.items())
            items.append(_Item(stem, ordered, label))
        else:
            singles.extend(members.values())
    items += [_Item(_strip(f, folder), f, f.relative_to(folder).as_posix())
              for f in singles]
    items.sort(key=lambda it: it.image_id)
    ids = pd.Series([it.image_id for it in items])
    dup = ids[ids.duplicated()]
    if len(dup):
        raise ImageSetError(f"{folder}: several files give the same image id "
                            f"(same name, different ending), e.g. {list(dup[:3])}")
    return items


def read_catalogue(path: str | Path) -> pd.DataFrame:
    """Read a catalogue table from CSV, Parquet or FITS.

    Raises
    ------
    ImageSetError
        Missing or unreadable file (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageSetError(f"{path}: catalogue not found")
    name = path.name.lower()
    try:
        if name.endswith((".csv", ".txt")):
            return pd.read_csv(path)
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if name.endswith((".fits", ".fits.gz", ".fit")):
            from astropy.table import Table

            table = Table.read(path)
            flat = [c for c in table.colnames if len(table[c].shape) <= 1]
            dropped = sorted(set(table.colnames) - set(flat))
            if dropped:
                log.info("%s: multi-dimensional columns not carried: %s", path, dropped)
            return table[flat].to_pandas()
    except Exception as exc:  # pandas, pyarrow and astropy raise many types
        raise ImageSetError(f"{path}: cannot read catalogue: {exc}") from exc
    raise ImageSetError(f"{path}: unknown catalogue format; use .csv, .parquet or .fits")


def _catalogue_items(cat: pd.DataFrame, base: Path, where: str, survey: Survey,
                     path_column: str, id_column: str | None) -> list[_Item]:
    band_cols = {b: f"{path_column}_{b}" for b in survey.band_names}
    if path_column in cat.columns:
        used = [path_column]
    elif all(c in cat.columns for c in band_cols.values()):
        used = list(band_cols.values())
    else:
        raise ImageSetError(
            f"{where}: no column {path_column!r} (one file per image) nor "
            f"{list(band_cols.values())} (one file per band); columns are "
            f"{list(cat.columns)}")
    if id_column is not None and id_column not in cat.columns:
        raise ImageSetError(f"{where}: id column {id_column!r} not found; columns are "
                            f"{list(cat.columns)}")
    id_col = id_column or ("image_id" if "image_id" in cat.columns else None)

    def resolve(p) -> Path:
        q = Path(str(p))
        return q if q.is_absolute() else base / q

    items = []
    for rec in cat.to_dict("records"):
        if used == [path_column]:
            files: Path | dict = resolve(rec[path_column])
            label = str(rec[path_column])
            stem = _strip(files, files.parent)
        else:
            files = {b: resolve(rec[c]) for b, c in band_cols.items()}
            label = ";".join(f"{b}={rec[c]}" for b, c in band_cols.items())
            stem = re.sub(r"[_\-.]" + survey.band_names[0] + "$", "",
                          _strip(files[survey.band_names[0]],
                                 files[survey.band_names[0]].parent))
        image_id = str(rec[id_col]) if id_col else stem
        props = {(f"catalogue_{k}" if k in _RESERVED else k): v
                 for k, v in rec.items() if k not in used and k != id_col}
        items.append(_Item(image_id, files, label, props))
    ids = pd.Series([it.image_id for it in items])
    dup = ids[ids.duplicated()]
    if len(dup):
        what = f"column {id_col!r}" if id_col else "file names (give --id-column)"
        raise ImageSetError(f"{where}: duplicate image ids from {what}, e.g. "
                            f"{list(dup.unique()[:3])}")
    return items


# ----------------------------------------------------------------------
# sizes

def _centre_crop(array: np.ndarray, side: int, axes: tuple[int, int]) -> np.ndarray:
    h, w = array.shape[axes[0]], array.shape[axes[1]]
    y0, x0 = (h - side) // 2, (w - side) // 2
    index = [slice(None)] * array.ndim
    index[axes[0]] = slice(y0, y0 + side)
    index[axes[1]] = slice(x0, x0 + side)
    return array[tuple(index)]


def fit_to_size(image: DecodedImage, size: int, mode: str,
                survey: Survey | None = None) -> DecodedImage:
    """Bring an image to ``size x size`` pixels by centre crop or area resampling.

    Parameters
    ----------
    image : DecodedImage
        An image at least ``size`` pixels on each side.
    size : int
        Target side in pixels.
    mode : {"crop", "area"}
        ``"crop"`` cuts the central ``size x size`` pixels: the pixel scale
        is kept, so the image still matches the survey. ``"area"`` first
        crops the central square, then averages it down to ``size`` with
        area (box) weights; flux is then scaled by the pixel-area ratio so
        that nanomaggies per pixel stay flux-conserving, and the RGB picture
        is remade from the resampled flux with the survey's recipe.
    survey : Survey, optional
        Needed in ``"area"`` mode for flux images.

    Raises
    ------
    ImageReadError
        The image is smaller than ``size`` (no padding or upsampling: both
        would invent sky).

    Notes
    -----
    Area resampling changes the pixel scale by ``side / size``; use it only
    for inputs made at a finer scale than the survey's, in the same ratio.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}; got {mode!r}")
    h, w = image.rgb.shape[:2]
    if h < size or w < size:
        raise ImageReadError(f"shape {image.rgb.shape} smaller than {size}x{size}; "
                             f"images are cropped or averaged down, never enlarged")
    if (h, w) == (size, size):
        return image
    side = min(h, w)
    rgb = _centre_crop(image.rgb, side, (0, 1))
    flux = None if image.flux is None else _centre_crop(image.flux, side, (1, 2))
    notes = list(image.notes)
    if mode == "crop" or side == size:
        rgb = _centre_crop(rgb, size, (0, 1))
        flux = None if flux is None else _centre_crop(flux, size, (1, 2))
        notes.append(f"centre-cropped from {h}x{w} to {size}x{size}")
    else:
        from PIL import Image

        if flux is not None:
            area = (side / size) ** 2
            flux = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(p), "F")
                                        .resize((size, size), Image.Resampling.BOX))
                             for p in flux]).astype(np.float32) * area
            rgb = survey.to_rgb(flux) if survey is not None else None
        else:
            rgb = np.asarray(Image.fromarray(np.ascontiguousarray(rgb))
                             .resize((size, size), Image.Resampling.BOX))
        notes.append(f"area-resampled from {h}x{w} (central {side}x{side}) to "
                     f"{size}x{size}")
    return DecodedImage(rgb=np.ascontiguousarray(rgb),
                        flux=None if flux is None else np.ascontiguousarray(flux),
                        kind=image.kind, bands=image.bands, notes=notes)


# ----------------------------------------------------------------------
# one image

def _decode(item: _Item, survey: Survey, size: int, resize: str | None
            ) -> tuple[DecodedImage | None, str | None]:
    """Decode and validate one item; returns (image, None) or (None, reason)."""
    try:
        if isinstance(item.files, dict):
            image = read_band_files(item.files, survey=survey)
        else:
            image = read_image(item.files, survey=survey)
        if image.flux is not None:
            reason = check_flux(image.flux, n_bands=len(survey.bands))
            if reason:
                return None, reason
        if resize and image.rgb.shape[:2] != (size, size):
            image = fit_to_size(image, size, resize, survey)
    except ImageReadError as exc:
        return None, str(exc)
    except MemoryError:
        return None, "image too large to decode"
    reason = check_rgb(image.rgb, size)
    if reason is None and image.flux is not None:
        reason = check_flux(image.flux, len(survey.bands), size)
    return (None, reason) if reason else (image, None)


# ----------------------------------------------------------------------
# the command

def ingest(source: str | Path, out: str | Path, *, survey: Survey | str = "sdss",
           size: int = 64, source_name: str = "observed",
           catalogue: str | Path | pd.DataFrame | None = None,
           path_column: str = "path", id_column: str | None = None,
           resize: bool | str = False, progress: ProgressCallback | None = None,
           workers: int = 1) -> ImageSet:
    """Build an image set from image files.

    Parameters
    ----------
    source : path
        A folder searched recursively for ``*.png``, ``*.jpg``, ``*.jpeg``,
        ``*.fits``, ``*.fits.gz`` and ``*.npy``; or a catalogue file (CSV,
        Parquet, FITS) listing the images. With ``catalogue`` given, the
        folder that relative paths in it refer to.
    out : path
        The image-set folder to write (created; existing files replaced).
    survey : Survey or str
        Survey profile (name or TOML file): band order and colour recipe of
        flux inputs, recorded in ``imageset.json``.
    size : int
        Cutout side in pixels every image must have.
    source_name : str
        The ``source`` column of the manifest (``"observed"`` or a suite).
    catalogue : path or DataFrame, optional
        One row per image: a ``path_column`` column (one file per image) or
        ``{path_column}_{band}`` columns for every survey band (one
        single-band FITS file per band), plus any property columns, which are
        carried into the manifest. ``galaxy_id``, ``projection`` and
        ``split`` columns are used as such.
    path_column : str
        Name of the path column (or the stem of the per-band ones).
    id_column : str, optional
        Column holding the image id; default ``image_id`` if present, else
        the file name without its ending.
    resize : bool or {"crop", "area"}
        False: an image of the wrong size is rejected with its shape. True or
        ``"crop"``: larger images are centre-cropped; ``"area"``: cropped to a
        square and area-averaged down (see :func:`fit_to_size`).
    progress : callable, optional
        ``progress(done, total, "ingest")``.
    workers : int
        Threads decoding images in parallel (decoding releases the GIL in
        PIL and zlib; 1 decodes in the calling thread).

    Returns
    -------
    ImageSet
        The written image set, pixels in ``out/pixels.h5``.

    Raises
    ------
    ImageSetError
        Missing source, a catalogue without path column, duplicate ids.
    ValueError
        Bad ``size``, ``resize`` or ``workers``.
    """
    t0 = time.perf_counter()
    survey = load_survey(survey)
    progress = progress or no_progress
    if int(size) < 1:
        raise ValueError(f"size must be a positive number of pixels; got {size}")
    size = int(size)
    mode = _resize_mode(resize)
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1; got {workers}")
    source, out = Path(source), Path(out)
    if not source.exists():
        raise ImageSetError(f"{source}: source not found")

    if catalogue is None and source.is_file():
        catalogue, base = source, source.parent
    else:
        base = source if source.is_dir() else source.parent
    if catalogue is None:
        items = _folder_items(source, survey)
        where = str(source)
    else:
        where = "catalogue" if isinstance(catalogue, pd.DataFrame) else str(catalogue)
        cat = catalogue if isinstance(catalogue, pd.DataFrame) else read_catalogue(catalogue)
        items = _catalogue_items(cat, base, where, survey, path_column, id_column)
    log.info("ingest: %d inputs from %s", len(items), where)

    kinds = {it.kind() for it in items}
    has_flux = kinds == {"flux"}
    notes_meta = []
    if kinds == {"rgb", "flux"}:
        notes_meta.append("mixed picture and flux inputs: only RGB is stored")
        log.warning("ingest: %s mixes pictures and flux images; flux is not stored", where)

    out.mkdir(parents=True, exist_ok=True)
    partial = out / (STORE + ".partial")
    rejects = Rejects()
    rows: list[dict] = []
    done = 0
    progress(0, len(items), "ingest")
    pool = ThreadPoolExecutor(int(workers)) if int(workers) > 1 else None
    try:
        with ArrayStoreWriter(partial, size, len(survey.bands) if has_flux else None
                              ) as store:
            for start in range(0, len(items), _BATCH):
                batch = items[start:start + _BATCH]
                args = (batch, [survey] * len(batch), [size] * len(batch),
                        [mode] * len(batch))
                results = list(pool.map(_decode, *args) if pool else map(_decode, *args))
                ok = []
                for item, (image, reason) in zip(batch, results):
                    if image is None:
                        rejects.add(item.image_id, item.label, reason)
                    else:
                        ok.append((item, image))
                if ok:
                    rgb = np.stack([im.rgb for _, im in ok])
                    flux = np.stack([im.flux for _, im in ok]) if has_flux else None
                    index = store.append([it.image_id for it, _ in ok], rgb, flux)
                    rows += [_manifest_row(it, im, k, source_name)
                             for (it, im), k in zip(ok, index)]
                done += len(batch)
                progress(done, len(items), "ingest")
    finally:
        if pool:
            pool.shutdown()
    partial.replace(out / STORE)

    manifest = _manifest(rows)
    metadata = {
        "kind": "rgb8", "survey": survey.to_dict(), "size": size,
        "bands": list(survey.band_names), "rgb_bands": list(survey.colour.rgb_bands),
        "has_flux": has_flux, "source": source_name,
        "flux_unit": "nanomaggy per pixel" if has_flux else None,
        "notes": notes_meta,
        "provenance": {
            "command": "ingest", "input": str(source.resolve()),
            "catalogue": where if catalogue is not None else None,
            "resize": mode, "n_inputs": len(items), "n_images": len(manifest),
            "n_rejected": len(rejects), "rejected_by_reason": rejects.counts(),
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "wall_s": round(time.perf_counter() - t0, 3), "versions": versions()},
    }
    imageset = write_imageset(out, manifest, metadata)
    rejects.to_frame().to_parquet(out / REJECTS, index=False)
    write_run_record(out, "ingest", {"source": str(source), "catalogue": where,
                                     "survey": survey.name, "size": size,
                                     "source_name": source_name, "resize": mode,
                                     "path_column": path_column, "id_column": id_column})
    log.info("ingest: %d images stored, %d rejected -> %s (%s)", len(manifest),
             len(rejects), out, METADATA)
    return imageset


def _resize_mode(resize: bool | str) -> str | None:
    if resize is False or resize is None:
        return None
    if resize is True:
        return "crop"
    if resize in RESIZE_MODES:
        return str(resize)
    raise ValueError(f"resize must be False, True or one of {RESIZE_MODES}; got {resize!r}")


def _manifest_row(item: _Item, image: DecodedImage, index: int, source_name: str
                  ) -> dict:
    row = {"image_id": item.image_id, "path": STORE, "index": int(index),
           "source": source_name, "galaxy_id": item.image_id, "projection": 0}
    row.update(item.props)
    row["input_file"] = item.label
    row["notes"] = "; ".join(image.notes)
    return row


def _manifest(rows: list[dict]) -> pd.DataFrame:
    columns = ["image_id", "path", "index", "source", "galaxy_id", "projection"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c in ("index", "projection")
                                          else str) for c in columns})
    rest = [c for c in frame.columns if c not in columns]
    return frame[columns + rest]

