"""The model file: safetensors weights plus JSON metadata, and the Detector.

A model is a folder with two files::

    model.safetensors   generator.* and discriminator.* tensors
    model.json          architecture, preprocessing contract, training
                        provenance, calibration reference, weights SHA-256

Loading never unpickles: the JSON is parsed, the SHA-256 of the weights file
is checked against the one recorded at training time, and the tensors are
read with safetensors.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import torch

from ..imageset import ImageSet
from .contract import check_contract, to_input
from .networks import Discriminator, Generator, fuse_batchnorm

log = logging.getLogger(__name__)

__all__ = ["Detector", "load_model", "save_model", "WEIGHTS", "METADATA",
           "SCORE_NAMES"]

WEIGHTS = "model.safetensors"
METADATA = "model.json"
FORMAT = "galrate-detector"
FORMAT_VERSION = 1
#: the three per-image scores, in table order
SCORE_NAMES = ("score_latent", "score_recon", "score_feature")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class Detector:
    """A trained GANomaly detector ready to score images.

    Attributes
    ----------
    contract : dict
        The preprocessing contract (see :mod:`galrate.detector.contract`).
    metadata : dict
        Everything in ``model.json``.
    reference : pandas.DataFrame
        Scores of the held-out observed (validation) images: the calibration
        reference of the percentiles.
    channels_last : bool
        Run inference in channels-last memory format (faster on most CPUs).
    """

    def __init__(self, generator: Generator, discriminator: Discriminator,
                 metadata: Mapping, path: Path | None = None):
        self.generator = generator.eval()
        self.discriminator = discriminator.eval()
        self.metadata = dict(metadata)
        self.path = path
        self.channels_last = True
        self.device = torch.device("cpu")
        self._fused: tuple | None = None

    # ------------------------------------------------------------------
    @property
    def contract(self) -> dict:
        return self.metadata["contract"]

    @property
    def architecture(self) -> dict:
        return self.metadata["architecture"]

    @property
    def reference(self) -> pd.DataFrame:
        return pd.DataFrame(self.metadata.get("reference") or
                            {k: [] for k in ("image_id",) + SCORE_NAMES})

    def to(self, device: str | torch.device) -> "Detector":
        self.device = torch.device(device)
        self.generator.to(self.device)
        self.discriminator.to(self.device)
        self._fused = None
        return self

    def check_compatible(self, imageset: ImageSet | str | Path) -> None:
        """Raise ValueError naming the mismatch when ``imageset`` was made with
        another recipe (survey, size, colour recipe, bands, channel count)."""
        if not isinstance(imageset, ImageSet):
            imageset = ImageSet.open(imageset)
        check_contract(self.contract, imageset.metadata, where=str(imageset.root))

    # ------------------------------------------------------------------
    def _eval_nets(self):
        if self._fused is None:
            memory = torch.channels_last if self.channels_last else torch.contiguous_format
            g = fuse_batchnorm(self.generator).to(self.device, memory_format=memory)
            d = fuse_batchnorm(self.discriminator).to(self.device, memory_format=memory)
            self._fused = (g, d)
        return self._fused

    def forward_arrays(self, x: torch.Tensor, paper_mode: bool = False) -> dict:
        """Scores of a preprocessed batch ``x`` (N, C, H, W) in [-1, 1].

        Returns a dict of float32 arrays: ``score_latent`` (N,), ``score_recon``
        (N,), ``score_feature`` (N,), ``latent_i`` and ``latent_o`` (N, nz),
        ``x_hat`` (N, C, H, W) as a tensor.
        """
        if paper_mode:
            return self._paper_mode(x)
        g, d = self._eval_nets()
        x = x.to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            latent_i, x_hat, latent_o = g(x)
            f_real = d.features(x)
            f_fake = d.features(x_hat)
            return _scores(x, x_hat, latent_i, latent_o, f_real, f_fake)

    def _paper_mode(self, x: torch.Tensor) -> dict:
        """One image at a time with BatchNorm normalising by that image's own
        statistics (the protocol of the original GANomaly test code)."""
        g = copy.deepcopy(self.generator).train()
        d = copy.deepcopy(self.discriminator).train()
        parts = []
        with torch.no_grad():
            for k in range(x.shape[0]):
                xi = x[k:k + 1].to(self.device)
                latent_i, x_hat, latent_o = g(xi)
                parts.append(_scores(xi, x_hat, latent_i, latent_o, d.features(xi),
                                     d.features(x_hat)))
        return {key: (torch.cat([p[key] for p in parts]) if key == "x_hat"
                      else np.concatenate([p[key] for p in parts])) for key in parts[0]}

    def score_arrays(self, x, batch_size: int = 256, paper_mode: bool = False
                     ) -> dict[str, np.ndarray]:
        """Scores of stored pixels.

        Parameters
        ----------
        x : ndarray
            ``(N, H, W, 3)`` uint8 for an rgb8 model, ``(N, B, H, W)``
            nanomaggies for a flux model.
        batch_size : int
            Images per forward pass; the scores do not depend on it.
        paper_mode : bool
            Score one image at a time with BatchNorm in training mode.

        Returns
        -------
        dict of str -> ndarray
            ``score_latent``, ``score_recon``, ``score_feature`` (N,) and
            ``latent_i``, ``latent_o`` (N, nz), float32.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        out: dict[str, list] = {}
        for start in range(0, len(x), batch_size):
            res = self.forward_arrays(to_input(self.contract, x[start:start + batch_size]),
                                      paper_mode=paper_mode)
            res.pop("x_hat")
            for k, v in res.items():
                out.setdefault(k, []).append(v)
        return {k: np.concatenate(v) for k, v in out.items()}


def _scores(x, x_hat, latent_i, latent_o, f_real, f_fake) -> dict:
    n = x.shape[0]
    return {
        "score_latent": (latent_i - latent_o).pow(2).reshape(n, -1).mean(1)
        .float().cpu().numpy(),
        "score_recon": (x - x_hat).abs().reshape(n, -1).mean(1).float().cpu().numpy(),
        "score_feature": (f_real - f_fake).pow(2).reshape(n, -1).mean(1)
        .float().cpu().numpy(),
        "latent_i": latent_i.reshape(n, -1).float().cpu().numpy(),
        "latent_o": latent_o.reshape(n, -1).float().cpu().numpy(),
        "x_hat": x_hat,
    }


def save_model(folder: str | Path, generator: Generator, discriminator: Discriminator,
               metadata: Mapping) -> Path:
    """Write ``model.safetensors`` and ``model.json`` into ``folder``.

    The JSON records the weights' SHA-256; both files are written to temporary
    names and renamed, weights first.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"generator.{k}": v.detach().cpu().contiguous()
               for k, v in generator.state_dict().items()}
    tensors.update({f"discriminator.{k}": v.detach().cpu().contiguous()
                    for k, v in discriminator.state_dict().items()})
    tmp = folder / (WEIGHTS + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": FORMAT})
    tmp.replace(folder / WEIGHTS)
    meta = dict(metadata)
    meta.update({"format": FORMAT, "format_version": FORMAT_VERSION,
                 "weights": {"file": WEIGHTS, "sha256": _sha256(folder / WEIGHTS)}})
    tmp = folder / (METADATA + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1, default=_json_default))
    tmp.replace(folder / METADATA)
    return folder


def _json_default(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def load_model(path: str | Path | Detector) -> Detector:
    """Load a model folder (or its ``model.json`` / ``model.safetensors``).

    Raises
    ------
    ValueError
        Missing or unreadable file, wrong format, or weights whose SHA-256
        differs from the recorded one (truncated or altered file); the
        message names the file.
    """
    from safetensors.torch import load_file

    if isinstance(path, Detector):
        return path
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    meta_path = folder / METADATA
    if not meta_path.is_file():
        raise ValueError(f"{meta_path}: model metadata not found; a model folder "
                         f"holds {METADATA} and {WEIGHTS}")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{meta_path}: not valid JSON ({exc}); the file is damaged") \
            from exc
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: format {meta.get('format')!r} is not {FORMAT!r}")
    weights = folder / meta["weights"]["file"]
    if not weights.is_file():
        raise ValueError(f"{weights}: weights file not found")
    digest = _sha256(weights)
    if digest != meta["weights"]["sha256"]:
        raise ValueError(f"{weights}: SHA-256 {digest[:16]}... differs from the "
                         f"{meta['weights']['sha256'][:16]}... recorded in {meta_path}; "
                         f"the weights file is truncated or altered, refusing to load it")
    try:
        tensors = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{weights}: cannot read safetensors: {exc}") from exc
    a = meta["architecture"]
    generator = Generator(a["image_size"], a["channels"], a["nz"], a["ngf"])
    discriminator = Discriminator(a["image_size"], a["channels"], a["ndf"])
    for prefix, net in (("generator.", generator), ("discriminator.", discriminator)):
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"{weights}: weights do not fit the architecture "
                             f"{a}: {exc}") from exc
    return Detector(generator, discriminator, meta, folder)
