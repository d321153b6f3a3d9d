"""Image sets: a manifest table plus pixels.

An image set is a folder::

    <folder>/manifest.parquet   one row per image (CSV accepted on read)
    <folder>/imageset.json      metadata: kind, survey, bands, size, provenance
    <folder>/pixels.h5          optional chunked array store
    <folder>/rejects.parquet    images set aside, with file and reason

Manifest columns (required): ``image_id`` (unique str), ``path`` (pixel
location relative to the folder, or absolute), ``index`` (row in an array
store, -1 for a plain file), ``source`` (``"observed"`` or a suite name),
``galaxy_id`` (str), ``projection`` (int). Any other column is a property
carried along to score tables (``log_mstar``, ``sfr_100``, ...).

The array store is HDF5 with datasets ``rgb`` ``(N, H, W, 3)`` uint8 and,
optionally, ``flux`` ``(N, n_bands, H, W)`` float32 (nanomaggies per pixel)
and ``image_id`` ``(N,)``. Rows are chunked so a batch reads contiguously.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["ImageSet", "REQUIRED_COLUMNS", "read_manifest", "write_manifest",
           "ArrayStoreWriter", "ImageSetError", "GalrateDataWarning"]

REQUIRED_COLUMNS = ("image_id", "path", "index", "source", "galaxy_id", "projection")
MANIFEST = "manifest.parquet"
METADATA = "imageset.json"
STORE = "pixels.h5"
REJECTS = "rejects.parquet"
REJECT_COLUMNS = ("image_id", "file", "reason")


class ImageSetError(ValueError):
    """An image set or manifest that cannot be used; the message names the file."""


class GalrateDataWarning(UserWarning):
    """A recoverable data problem (a rejected image, a missing keyword)."""


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest from Parquet or CSV and check its columns.

    Raises
    ------
    ImageSetError
        Unreadable file, missing columns, duplicate ``image_id``.
    """
    path = Path(path)
    if not path.exists():
        raise ImageSetError(f"{path}: manifest not found")
    try:
        if path.suffix.lower() in (".csv", ".txt"):
            # keep_default_na=False: a suite may be called "null" or "NA"
            df = pd.read_csv(path, dtype={"image_id": str, "galaxy_id": str},
                             keep_default_na=False, na_values=[""])
        else:
            df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow and pandas raise many types
        raise ImageSetError(f"{path}: cannot read manifest: {exc}") from exc
    return validate_manifest(df, path)


def validate_manifest(df: pd.DataFrame, where: str | Path = "manifest") -> pd.DataFrame:
    """Fill optional defaults and check required columns and keys."""
    df = df.copy()
    if "index" not in df.columns:
        df["index"] = -1
    if "projection" not in df.columns:
        df["projection"] = 0
    if "galaxy_id" not in df.columns and "image_id" in df.columns:
        df["galaxy_id"] = df["image_id"]
    if "source" not in df.columns:
        df["source"] = "observed"
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ImageSetError(f"{where}: missing column(s) {missing}; a manifest needs "
                            f"{list(REQUIRED_COLUMNS)}")
    df["image_id"] = df["image_id"].astype(str)
    df["galaxy_id"] = df["galaxy_id"].astype(str)
    df["source"] = df["source"].astype(str)
    df["path"] = df["path"].astype(str)
    df["index"] = df["index"].fillna(-1).astype(np.int64)
    df["projection"] = df["projection"].fillna(0).astype(np.int64)
    dup = df["image_id"][df["image_id"].duplicated()]
    if len(dup):
        raise ImageSetError(f"{where}: duplicate image_id values, e.g. {list(dup[:3])}")
    return df.reset_index(drop=True)


def write_manifest(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a manifest atomically (Parquet unless the suffix is .csv)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix.lower() == ".csv":
        df.to_csv(tmp, index=False)
    else:
        df.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class ArrayStoreWriter:
    """Append images to an HDF5 array store in chunks.

    Parameters
    ----------
    path : path
        The ``.h5`` file to create (overwritten).
    size : int
        Image side in pixels.
    n_bands : int, optional
        Number of flux bands; when given, a ``flux`` dataset is written too.
    chunk : int
        Rows per HDF5 chunk.
    """

    def __init__(self, path: str | Path, size: int, n_bands: int | None = None,
                 chunk: int = 64):
        import h5py

        self.path = Path(path)
        self._h5 = h5py.File(self.path, "w")
        self._rgb = self._h5.create_dataset(
            "rgb", shape=(0, size, size, 3), maxshape=(None, size, size, 3),
            dtype=np.uint8, chunks=(chunk, size, size, 3))
        self._flux = None
        if n_bands:
            self._flux = self._h5.create_dataset(
                "flux", shape=(0, n_bands, size, size),
                maxshape=(None, n_bands, size, size), dtype=np.float32,
                chunks=(chunk, n_bands, size, size))
        self._ids = self._h5.create_dataset(
            "image_id", shape=(0,), maxshape=(None,), dtype=h5py.string_dtype())
        self.n = 0

    def append(self, image_ids: Sequence[str], rgb: np.ndarray,
               flux: np.ndarray | None = None) -> range:
        """Append a batch; returns the store rows it occupies."""
        rgb = np.asarray(rgb, dtype=np.uint8)
        m = len(image_ids)
        if rgb.shape[0] != m:
            raise ValueError(f"{m} ids but {rgb.shape[0]} images")
        if (flux is None) != (self._flux is None):
            raise ValueError("flux must be given exactly when the store was "
                             "created with n_bands")
        start = self.n
        self._rgb.resize(start + m, axis=0)
        self._rgb[start:] = rgb
        if flux is not None:
            self._flux.resize(start + m, axis=0)
            self._flux[start:] = np.asarray(flux, dtype=np.float32)
        self._ids.resize(start + m, axis=0)
        self._ids[start:] = np.asarray(image_ids, dtype=object)
        self.n += m
        return range(start, start + m)

    def close(self) -> None:
        self._h5.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass
class ImageSet:
    """A manifest with the folder its relative paths refer to.

    Use :meth:`open` to read one from disk. Pixel access goes through
    :meth:`rgb` (uint8 ``(N, H, W, 3)``) and :meth:`flux` (float32
    ``(N, n_bands, H, W)`` nanomaggies, where stored).
    """

    root: Path
    manifest: pd.DataFrame
    metadata: dict = field(default_factory=dict)
    _stores: dict = field(default_factory=dict, repr=False)

    # --------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> "ImageSet":
        """Open an image set folder, or a manifest file inside one."""
        path = Path(path)
        if path.is_dir():
            root = path
            mpath = root / MANIFEST
            if not mpath.exists() and (root / "manifest.csv").exists():
                mpath = root / "manifest.csv"
        else:
            root, mpath = path.parent, path
        manifest = read_manifest(mpath)
        meta = {}
        if (root / METADATA).exists():
            try:
                meta = json.loads((root / METADATA).read_text())
            except json.JSONDecodeError as exc:
                raise ImageSetError(f"{root / METADATA}: invalid JSON: {exc}") from exc
        return cls(root=root, manifest=manifest, metadata=meta)

    def __len__(self) -> int:
        return len(self.manifest)

    def subset(self, mask_or_index) -> "ImageSet":
        """A view on some rows (boolean mask, index array or query string)."""
        if isinstance(mask_or_index, str):
            m = self.manifest.query(mask_or_index)
        else:
            m = self.manifest.iloc[np.flatnonzero(mask_or_index)] \
                if np.asarray(mask_or_index).dtype == bool \
                else self.manifest.iloc[np.asarray(mask_or_index)]
        return ImageSet(root=self.root, manifest=m.reset_index(drop=True),
                        metadata=self.metadata, _stores=self._stores)

    @property
    def size(self) -> int | None:
        return self.metadata.get("size")

    def manifest_hash(self) -> str:
        """SHA-256 of the manifest's content (order-independent of storage)."""
        payload = self.manifest.to_csv(index=False).encode()
        return hashlib.sha256(payload).hexdigest()

    # --------------------------------------------------------------
    def _resolve(self, p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() else self.root / q

    def _store(self, p: str):
        import h5py

        key = str(self._resolve(p))
        if key not in self._stores:
            try:
                self._stores[key] = h5py.File(key, "r")
            except OSError as exc:
                raise ImageSetError(f"{key}: cannot open array store: {exc}") from exc
        return self._stores[key]

    def _gather(self, rows: np.ndarray, dataset: str) -> np.ndarray:
        """Read ``dataset`` for manifest positions ``rows``, grouping store reads."""
        paths = self.manifest["path"].to_numpy()[rows]
        index = self.manifest["index"].to_numpy()[rows]
        out: list = [None] * len(rows)
        for p in dict.fromkeys(paths):
            pos = np.flatnonzero(paths == p)
            idx = index[pos]
            if (idx >= 0).all():
                ds = self._store(p)
                if dataset not in ds:
                    raise ImageSetError(f"{self._resolve(p)}: no {dataset!r} dataset")
                order = np.argsort(idx, kind="stable")
                uniq, inverse = np.unique(idx[order], return_inverse=True)
                data = ds[dataset][uniq]
                for j, o in enumerate(order):
                    out[pos[o]] = data[inverse[j]]
            else:
                from .readers import read_image_file

                image = read_image_file(self._resolve(p), kind=dataset,
                                        survey=self.metadata.get("survey"))
                for j in pos:
                    out[j] = image
        return np.stack(out)

    def rgb(self, rows: Sequence[int] | slice | None = None) -> np.ndarray:
        """uint8 ``(N, H, W, 3)`` images for manifest positions ``rows``."""
        return self._gather(self._rows(rows), "rgb")

    def flux(self, rows: Sequence[int] | slice | None = None) -> np.ndarray:
        """float32 ``(N, n_bands, H, W)`` flux images for manifest positions."""
        return self._gather(self._rows(rows), "flux")

    def _rows(self, rows) -> np.ndarray:
        n = len(self.manifest)
        if rows is None:
            return np.arange(n)
        if isinstance(rows, slice):
            return np.arange(n)[rows]
        return np.asarray(rows, dtype=np.int64)

    def iter_batches(self, batch_size: int, kind: str = "rgb"
                     ) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
        """Yield ``(manifest rows, pixels)`` in manifest order, bounded memory."""
        for start in range(0, len(self.manifest), batch_size):
            rows = np.arange(start, min(start + batch_size, len(self.manifest)))
            yield self.manifest.iloc[rows], self._gather(rows, kind)

    def rejects(self) -> pd.DataFrame:
        """The rejects table (empty when nothing was set aside)."""
        p = self.root / REJECTS
        if p.exists():
            return pd.read_parquet(p)
        return pd.DataFrame(columns=list(REJECT_COLUMNS))

    def close(self) -> None:
        for h in self._stores.values():
            h.close()
        self._stores.clear()


def write_imageset(root: str | Path, manifest: pd.DataFrame, metadata: dict,
                   rejects: pd.DataFrame | None = None) -> ImageSet:
    """Write manifest, metadata and rejects of an image set folder."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    manifest = validate_manifest(manifest, root / MANIFEST)
    write_manifest(manifest, root / MANIFEST)
    (root / METADATA).write_text(json.dumps(metadata, indent=2, default=str))
    if rejects is not None and len(rejects):
        rejects.to_parquet(root / REJECTS, index=False)
    return ImageSet(root=root, manifest=manifest, metadata=metadata)
