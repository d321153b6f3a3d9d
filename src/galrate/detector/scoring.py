"""Scoring image sets with a trained detector: streamed, batch-independent, resumable.

Per image (Jin et al. 2024, Sec. 2.3; Akcay et al. 2018, Eq. 5):

* ``score_latent`` - the paper's anomaly score
  ``A = mean_i (latent_i - latent_o)^2`` over the latent dimensions;
* ``score_recon`` - ``mean |x - x_hat|`` over channels and pixels (input
  scale [-1, 1]);
* ``score_feature`` - ``mean (f(x) - f(x_hat))^2`` over the discriminator's
  penultimate features;
* ``pct_*`` - percentile (0-100) of each score among the model's reference
  scores (held-out observed images): the share of reference images scoring at
  or below it.

BatchNorm runs in eval mode with the statistics stored at training time, so an
image's scores depend on nothing but the image (and the model). The original
GANomaly test code instead evaluated one image at a time with BatchNorm in
training mode, so every layer normalised the image by its own spatial mean and
variance; ``paper_mode=True`` reproduces that. Paper-mode scores are
batch-independent by construction (one image per pass) but differ from the
eval-mode scores, and are much slower.

Finished batches are written as numbered part files in ``<out>.parts/``
(temporary name, then rename, so a part is either whole or absent); a rerun
skips existing parts, and on completion the parts are concatenated into the
final table and removed.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..imageset import ImageSet
from ..provenance import ProgressCallback
from .contract import from_input, to_input
from .modelfile import SCORE_NAMES, Detector, load_model

log = logging.getLogger(__name__)

__all__ = ["score", "reconstruct", "percentile"]

LEAD_COLUMNS = ("image_id", "source", "galaxy_id", "projection")


def percentile(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Percent (0-100) of ``reference`` values at or below each of ``values``."""
    ref = np.sort(np.asarray(reference, dtype=np.float64))
    if ref.size == 0:
        return np.full(np.shape(values), np.nan)
    return 100.0 * np.searchsorted(ref, values, side="right") / ref.size


def _parts_config(model: Detector, imageset: ImageSet, batch_size: int, latents: bool,
                  paper_mode: bool) -> dict:
    return {"weights_sha256": model.metadata.get("weights", {}).get("sha256"),
            "imageset": str(imageset.root.resolve()),
            "manifest_sha256": imageset.manifest_hash(), "batch_size": batch_size,
            "latents": latents, "paper_mode": paper_mode}


def score(model: Detector | str | Path, imageset: ImageSet | str | Path,
          out: str | Path, batch_size: int = 256, latents: bool = False,
          paper_mode: bool = False, progress: ProgressCallback | None = None
          ) -> pd.DataFrame:
    """Score every image of an image set and write the score table.

    Parameters
    ----------
    model : Detector or path
        A loaded detector or a model folder.
    imageset : ImageSet or path
        Checked against the model's preprocessing contract.
    out : path
        ``.parquet`` (default) or ``.csv`` score table.
    batch_size : int
        Images per forward pass (memory bound; scores do not depend on it).
    latents : bool
        Also write ``<stem>.arrays.h5`` with ``image_id``, ``latent_i`` and
        ``latent_o`` (N, nz) float32.
    paper_mode : bool
        One image at a time, BatchNorm in training mode (see module notes).
    progress : callable, optional
        ``progress(done, total, "score")`` in images.

    Returns
    -------
    pandas.DataFrame
        The table written: image_id, source, galaxy_id, projection, the
        three scores, their percentiles, ``imageset`` (absolute folder) and
        every other manifest column.
    """
    model = load_model(model)
    imageset = imageset if isinstance(imageset, ImageSet) else ImageSet.open(imageset)
    model.check_compatible(imageset)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    out = Path(out)
    parts = out.with_name(out.name + ".parts")
    config = _parts_config(model, imageset, batch_size, latents, paper_mode)
    _prepare_parts(parts, config)

    n = len(imageset)
    kind = "rgb" if model.contract["kind"] == "rgb8" else "flux"
    starts = range(0, n, batch_size)
    for k, start in enumerate(starts):
        part = parts / f"part-{k:06d}.parquet"
        rows = np.arange(start, min(start + batch_size, n))
        if not part.exists():
            pixels = imageset.rgb(rows) if kind == "rgb" else imageset.flux(rows)
            res = model.score_arrays(pixels, batch_size=batch_size, paper_mode=paper_mode)
            _write_part(part, imageset.manifest["image_id"].to_numpy()[rows], res, latents)
        if progress is not None:
            progress(int(rows[-1]) + 1, n, "score")

    table = _assemble(model, imageset, parts, len(starts), out, latents)
    shutil.rmtree(parts)
    log.info("scored %d images -> %s", n, out)
    return table


def _prepare_parts(parts: Path, config: dict) -> None:
    record = parts / "parts.json"
    if record.exists():
        try:
            old = json.loads(record.read_text())
        except json.JSONDecodeError:
            old = None
        if old == config:
            done = len(list(parts.glob("part-*.parquet")))
            log.info("resuming: %d finished part(s) in %s", done, parts)
            return
        log.warning("%s was made with other settings; starting afresh", parts)
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    for tmp in parts.glob("*.tmp"):
        tmp.unlink()
    record.write_text(json.dumps(config, indent=1))


def _write_part(part: Path, ids: np.ndarray, res: dict, latents: bool) -> None:
    if latents:
        tmp = part.with_name(part.stem + ".latents.npz.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, latent_i=res["latent_i"], latent_o=res["latent_o"])
        tmp.replace(part.with_name(part.stem + ".latents.npz"))
    df = pd.DataFrame({"image_id": ids.astype(str)})
    for k in SCORE_NAMES:
        df[k] = res[k].astype(np.float64)
    tmp = part.with_name(part.name + ".tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(part)


def _assemble(model: Detector, imageset: ImageSet, parts: Path, n_parts: int,
              out: Path, latents: bool) -> pd.DataFrame:
    files = [parts / f"part-{k:06d}.parquet" for k in range(n_parts)]
    scores = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    manifest = imageset.manifest
    if not np.array_equal(scores["image_id"].to_numpy(), manifest["image_id"].to_numpy()):
        raise ValueError(f"{parts}: part files do not match the manifest of "
                         f"{imageset.root}; delete the folder and rerun")
    ref = model.reference
    for k in SCORE_NAMES:
        scores["pct_" + k.removeprefix("score_")] = percentile(ref[k].to_numpy(),
                                                              scores[k].to_numpy())
    scores["imageset"] = str(imageset.root.resolve())
    rest = manifest.drop(columns=[c for c in manifest.columns
                                  if c in scores.columns or c in LEAD_COLUMNS])
    lead = manifest[list(LEAD_COLUMNS)]
    table = pd.concat([lead, scores.drop(columns=["image_id"]), rest], axis=1)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    if out.suffix.lower() == ".csv":
        table.to_csv(tmp, index=False)
    else:
        table.to_parquet(tmp, index=False)
    if latents:
        _write_latents(out, parts, n_parts, manifest["image_id"].to_numpy())
    tmp.replace(out)
    return table


def _write_latents(out: Path, parts: Path, n_parts: int, ids: np.ndarray) -> Path:
    import h5py

    path = out.with_name(out.stem + ".arrays.h5")
    tmp = path.with_name(path.name + ".tmp")
    blocks = [np.load(parts / f"part-{k:06d}.latents.npz", allow_pickle=False)
              for k in range(n_parts)]
    with h5py.File(tmp, "w") as h5:
        h5.create_dataset("image_id", data=np.asarray(ids, dtype=object),
                          dtype=h5py.string_dtype())
        for name in ("latent_i", "latent_o"):
            h5.create_dataset(name, data=np.concatenate([b[name] for b in blocks]))
    tmp.replace(path)
    return path


def reconstruct(model: Detector | str | Path, images_uint8: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Reconstructions and residual maps of a few images (for galleries).

    Parameters
    ----------
    model : Detector or path
    images_uint8 : ndarray
        ``(N, H, W, 3)`` uint8 colour cutouts (an rgb8 model), or ``(N, B, H, W)``
        nanomaggies for a flux model.

    Returns
    -------
    recon : ndarray
        ``(N, H, W, 3)`` uint8 (or ``(N, B, H, W)`` float32 nanomaggies).
    residual : ndarray, float32, shape (N, H, W)
        ``|x - x_hat|`` averaged over channels, in input scale (0-2).
    """
    model = load_model(model)
    x = to_input(model.contract, images_uint8)
    res = model.forward_arrays(x)
    x_hat = res["x_hat"].float().cpu()
    residual = (x - x_hat).abs().mean(1).numpy().astype(np.float32)
    return from_input(model.contract, x_hat), residual
