"""Tiny image sets and a tiny trained model shared by the detector tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from galrate.imageset import ArrayStoreWriter, write_imageset
from galrate.survey import SDSS

SIZE = 32


def blob_images(rng, n: int, size: int = SIZE, width=(2.0, 4.0)) -> np.ndarray:
    """uint8 (n, size, size, 3) round Gaussian blobs plus a little noise."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for k in range(n):
        sigma = rng.uniform(*width)
        amp = rng.uniform(120, 230)
        colour = rng.uniform(0.7, 1.0, size=3)
        img = amp * np.exp(-(xx ** 2 + yy ** 2) / (2 * sigma ** 2))
        img = img[..., None] * colour + rng.normal(0, 4, (size, size, 3)) + 10
        out[k] = np.clip(img, 0, 255).round()
    return out


def make_imageset(root, rng, n: int = 48, source: str = "observed", splits=True,
                  images=None, metadata_updates=None, flux: bool = False):
    """Write an image set folder with an array store of blob images."""
    root.mkdir(parents=True, exist_ok=True)
    images = blob_images(rng, n) if images is None else images
    n = len(images)
    ids = [f"{source}-{k:04d}" for k in range(n)]
    with ArrayStoreWriter(root / "pixels.h5", SIZE, n_bands=3 if flux else None) as w:
        fl = None
        if flux:
            fl = np.moveaxis(images[..., ::-1].astype(np.float32), -1, 1) / 100.0
        w.append(ids, images, fl)
    manifest = pd.DataFrame({
        "image_id": ids, "path": "pixels.h5", "index": np.arange(n), "source": source,
        "galaxy_id": [f"g{k // 2:04d}" for k in range(n)],
        "projection": np.arange(n) % 2, "log_mstar": np.linspace(9, 11, n)})
    if splits:
        split = np.where(np.arange(n) % 4 == 3, "val", "train")
        manifest["split"] = split
    survey = SDSS.to_dict()
    meta = {"kind": "rgb8", "survey": survey, "size": SIZE, "bands": ["g", "r", "i"],
            "rgb_bands": ["i", "r", "g"], "has_flux": flux, "source": source}
    meta.update(metadata_updates or {})
    return write_imageset(root, manifest, meta)


def tiny_config(**kw):
    from galrate.detector import TrainConfig

    base = dict(nz=16, ngf=8, ndf=8, epochs=2, batch_size=8, seed=3,
                accelerator="cpu", deterministic=True, checkpoint_every_n_steps=2)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def observed_set(tmp_path_factory):
    rng = np.random.default_rng(11)
    return make_imageset(tmp_path_factory.mktemp("obs") / "observed", rng, n=48)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, observed_set):
    import torch

    from galrate.detector import train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("model") / "m"
    return train([observed_set.root], out, tiny_config(epochs=2))
