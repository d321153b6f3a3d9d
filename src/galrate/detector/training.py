"""Training a GANomaly detector on observed images (Lightning).

:func:`train` selects the observed training and validation rows, builds the
preprocessing contract, trains with Lightning (CSV logs, checkpoints every N
batches and at every epoch end, resume from ``<out>/checkpoints/last.ckpt``),
keeps the epoch with the lowest validation loss (see
:mod:`galrate.detector.module`), scores the validation images with it (the
calibration reference) and writes the model file.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from ..imageset import ImageSet
from ..provenance import ProgressCallback, versions, write_run_record
from .contract import check_contract, contract_from_imageset, fit_flux_scaling, to_input
from .data import (BatchDataset, EpochBatchSampler, PixelSource, make_loader,
                   select_rows)
from .modelfile import SCORE_NAMES, Detector, save_model
from .module import GanomalyModule

log = logging.getLogger(__name__)

__all__ = ["TrainConfig", "train"]


@dataclass
class TrainConfig:
    """Settings of a training run (defaults: the paper's network and optimiser).

    Parameters
    ----------
    image_size : int or None
        Side in pixels (32, 64 or 128); ``None`` takes the image set's.
    nz, ngf, ndf : int
        Latent size and base channels of generator and discriminator.
    epochs, batch_size : int
        Epochs and images per batch (per process under DDP).
    lr, beta1, beta2 : float
        Adam settings of both networks.
    w_adv, w_con, w_enc : float
        Weights of the adversarial, contextual and encoder losses.
    seed : int
        Seeds weights, data order, augmentation and the split.
    augment : bool
        Random flips and 90-degree rotations.
    kind : {"rgb8", "flux"}
        Train on colour cutouts or on calibrated flux.
    deterministic : bool
        Deterministic algorithms (``torch.use_deterministic_algorithms``).
    precision : str
        Lightning precision, e.g. ``"32-true"``, ``"bf16-mixed"``.
    channels_last, compile : bool
        Channels-last memory format; ``torch.compile`` the networks.
    accelerator, strategy, devices, num_nodes :
        Passed to ``lightning.Trainer`` (``strategy="ddp"`` for several GPUs or
        nodes, ``"ddp_spawn"`` for several CPU processes).
    num_workers : int
        DataLoader worker processes.
    val_fraction : float
        Share of galaxies held out when the manifest has no ``split`` column.
    checkpoint_every_n_steps : int
        Save ``last.ckpt`` every this many batches (plus every epoch end).
    max_train_images : int or None
        Train on a seeded subset of at most this many images.
    in_memory : bool or None
        Hold all training pixels in memory; ``None`` decides by size.
    collapse_threshold, collapse_patience :
        Discriminator collapse: D loss below the threshold for this many
        consecutive batches; D is then re-initialised.
    progress_bar : bool
        Lightning's progress bar (the CLI turns it on).
    """

    image_size: int | None = None
    nz: int = 128
    ngf: int = 64
    ndf: int = 64
    epochs: int = 15
    batch_size: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    w_adv: float = 1.0
    w_con: float = 50.0
    w_enc: float = 1.0
    seed: int = 0
    augment: bool = True
    kind: str = "rgb8"
    deterministic: bool = False
    precision: str = "32-true"
    channels_last: bool = False
    compile: bool = False
    accelerator: str = "auto"
    strategy: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    num_workers: int = 0
    val_fraction: float = 0.1
    checkpoint_every_n_steps: int = 200
    max_train_images: int | None = None
    in_memory: bool | None = None
    collapse_threshold: float = 1e-5
    collapse_patience: int = 1
    progress_bar: bool = False

    def __post_init__(self):
        for name in ("epochs", "batch_size", "nz", "ngf", "ndf",
                     "checkpoint_every_n_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1; got "
                                 f"{getattr(self, name)}")


def _open(s) -> ImageSet:
    return s if isinstance(s, ImageSet) else ImageSet.open(s)


def _distributed(strategy: str) -> str:
    """DDP strategies with unused-parameter search (the two optimiser steps of
    a GAN each touch only one network)."""
    if strategy in ("ddp", "ddp_spawn") and not strategy.endswith("_true"):
        return f"{strategy}_find_unused_parameters_true"
    return strategy


def train(imagesets: Sequence[str | Path | ImageSet], out_dir: str | Path,
          config: TrainConfig | None = None, progress: ProgressCallback | None = None,
          *, callbacks: Sequence = ()) -> Path:
    """Train a detector on the observed images of ``imagesets``.

    Parameters
    ----------
    imagesets : list of path or ImageSet
        Image sets made with one recipe (checked); their observed
        ``split == "train"`` rows train and ``split == "val"`` rows select
        the epoch and form the calibration reference.
    out_dir : path
        Output folder: ``model.safetensors``, ``model.json``, ``checkpoints/``,
        ``logs/`` (CSV), ``samples/`` (PNG per epoch), ``run-train.json``.
        A folder holding ``checkpoints/last.ckpt`` resumes from it.
    config : TrainConfig
    progress : callable, optional
        ``progress(done, total, "train")`` in batches.
    callbacks : sequence of lightning callbacks, optional
        Extra callbacks for the Trainer.

    Returns
    -------
    Path
        The model folder (``out_dir``).
    """
    config = config or TrainConfig()
    out_dir = Path(out_dir)
    sets = [_open(s) for s in imagesets]
    if not sets:
        raise ValueError("train needs at least one image set")

    contract = contract_from_imageset(sets[0].metadata, config.kind, str(sets[0].root))
    for s in sets[1:]:
        check_contract(contract, s.metadata, where=str(s.root))
    size = config.image_size or contract["size"]
    if size != contract["size"]:
        raise ValueError(f"image_size {size} differs from the image set's size "
                         f"{contract['size']} px; make the image set at that size")

    splits = [select_rows(s, config.val_fraction, config.seed) for s in sets]
    train_parts = [(s, tr) for s, (tr, _) in zip(sets, splits)]
    if config.max_train_images is not None:
        train_parts = _cap(train_parts, config.max_train_images, config.seed)
    val_parts = [(s, va) for s, (_, va) in zip(sets, splits)]
    train_px = PixelSource(train_parts, contract["kind"], config.in_memory)
    val_px = PixelSource(val_parts, contract["kind"], config.in_memory)
    if contract["kind"] == "flux":
        from ..survey import load_survey

        survey = load_survey(sets[0].metadata["survey"])
        sample = train_px[np.arange(min(len(train_px), 512))]
        contract = fit_flux_scaling(contract, sample,
                                    [survey.noise_sigma(b) for b in contract["bands"]])

    architecture = {"image_size": size, "channels": contract["channels"],
                    "nz": config.nz, "ngf": config.ngf, "ndf": config.ndf}
    hparams = {k: getattr(config, k) for k in
               ("lr", "beta1", "beta2", "w_adv", "w_con", "w_enc", "seed",
                "collapse_threshold", "collapse_patience", "channels_last", "compile")}
    module = GanomalyModule(architecture, hparams)
    data = _Data(train_px, val_px, contract, config)

    ckpt_dir = out_dir / "checkpoints"
    every = _LastCheckpoint(ckpt_dir / "last.ckpt", config.checkpoint_every_n_steps)
    best = _BestCheckpoint(ckpt_dir / "best.ckpt")
    extra = [_SampleGrid(out_dir / "samples", val_px, contract)]
    if progress is not None:
        extra.append(_Progress(progress))
    world = config.devices * config.num_nodes if isinstance(config.devices, int) else 1
    n_batches = len(train_px) // (config.batch_size * world) or 1
    trainer = L.Trainer(
        max_epochs=config.epochs, accelerator=config.accelerator,
        strategy=_distributed(config.strategy), devices=config.devices,
        num_nodes=config.num_nodes, precision=config.precision,
        deterministic=config.deterministic, use_distributed_sampler=False,
        logger=_loggers(out_dir), callbacks=[every, best, *extra, *callbacks],
        enable_progress_bar=config.progress_bar, enable_model_summary=False,
        enable_checkpointing=False,
        log_every_n_steps=max(1, min(50, n_batches)), num_sanity_val_steps=0,
        default_root_dir=out_dir)
    last = ckpt_dir / "last.ckpt"
    resume = last if last.is_file() else None
    if resume:
        log.info("resuming from %s", resume)
    L.seed_everything(config.seed, workers=True, verbose=False)
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=resume, weights_only=True)
    wall = time.perf_counter() - t0
    if not trainer.is_global_zero:
        return out_dir

    state = torch.load(best.path, map_location="cpu", weights_only=True)
    final = torch.load(last, map_location="cpu", weights_only=True)
    detector = _detector_from_state(state["state_dict"], architecture,
                                    {"contract": contract, "architecture": architecture})
    ref = _reference(detector, val_px, val_parts, config.batch_size)
    meta = {
        "detector": "ganomaly",
        "architecture": architecture,
        "contract": contract,
        "training": {
            "config": dataclasses.asdict(config),
            "imagesets": [str(s.root.resolve()) for s in sets],
            "manifest_sha256": [s.manifest_hash() for s in sets],
            "n_train": len(train_px), "n_val": len(val_px),
            "seed": config.seed, "epochs": config.epochs,
            "selected_epoch": int(state["epoch"]),
            "selection": "lowest mean validation w_con*L_con + w_enc*L_enc",
            "best_val_loss": float(state["val_loss"]),
            "collapse_events": int(final.get("collapse_monitor", {}).get("events", 0)),
            "wall_s": round(wall, 2),
            "versions": versions(),
        },
        "reference": ref,
    }
    save_model(out_dir, detector.generator, detector.discriminator, meta)
    write_run_record(out_dir, "train", dataclasses.asdict(config),
                     {str(s.root): s.manifest_hash() for s in sets})
    log.info("model written to %s (selected epoch %d, %d collapse events)", out_dir,
             meta["training"]["selected_epoch"], meta["training"]["collapse_events"])
    return out_dir


def _cap(parts, cap: int, seed: int):
    sizes = np.array([len(r) for _, r in parts])
    if sizes.sum() <= cap:
        return parts
    keep = np.sort(np.random.default_rng(seed).choice(sizes.sum(), cap, replace=False))
    offsets = np.cumsum(np.r_[0, sizes])
    return [(s, r[keep[(keep >= offsets[k]) & (keep < offsets[k + 1])] - offsets[k]])
            for k, (s, r) in enumerate(parts)]


def _loggers(out_dir: Path):
    from lightning.pytorch.loggers import CSVLogger

    loggers = [CSVLogger(out_dir, name="logs")]
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(out_dir, name="tensorboard"))
    except ImportError:
        pass
    return loggers


def _detector_from_state(state_dict: dict, architecture: dict, meta: dict) -> Detector:
    from .networks import Discriminator, Generator

    a = architecture
    g = Generator(a["image_size"], a["channels"], a["nz"], a["ngf"])
    d = Discriminator(a["image_size"], a["channels"], a["ndf"])
    g.load_state_dict({k[len("generator."):]: v for k, v in state_dict.items()
                       if k.startswith("generator.")})
    d.load_state_dict({k[len("discriminator."):]: v for k, v in state_dict.items()
                       if k.startswith("discriminator.")})
    return Detector(g, d, meta)


def _reference(detector: Detector, val_px: PixelSource, val_parts, batch_size: int
               ) -> dict:
    """Scores of the validation images (the calibration reference)."""
    ids = np.concatenate([s.manifest["image_id"].to_numpy()[r] for s, r in val_parts])
    cols: dict[str, list] = {k: [] for k in SCORE_NAMES}
    for start in range(0, len(val_px), batch_size):
        res = detector.score_arrays(val_px[np.arange(start, min(start + batch_size,
                                                                len(val_px)))])
        for k in SCORE_NAMES:
            cols[k].append(res[k])
    ref = {"image_id": [str(i) for i in ids]}
    ref.update({k: np.concatenate(v).astype(float).tolist() for k, v in cols.items()})
    return ref


# ----------------------------------------------------------------------
# Lightning glue

class _Data(L.LightningDataModule):
    """Builds the loaders once the trainer knows rank and world size."""

    def __init__(self, train_px, val_px, contract: dict, config: TrainConfig):
        super().__init__()
        self.train_px, self.val_px = train_px, val_px
        self.contract, self.config = contract, config

    def train_dataloader(self):
        c, trainer = self.config, self.trainer
        sampler = EpochBatchSampler(len(self.train_px), c.batch_size, c.seed,
                                    shuffle=True, rank=trainer.global_rank,
                                    world=trainer.world_size, drop_last=True)
        trainer.lightning_module.train_sampler = sampler
        data = BatchDataset(self.train_px, self.contract, c.seed, c.augment)
        return make_loader(data, sampler, c.num_workers)

    def val_dataloader(self):
        c, trainer = self.config, self.trainer
        sampler = EpochBatchSampler(len(self.val_px), c.batch_size, c.seed,
                                    shuffle=False, rank=trainer.global_rank,
                                    world=trainer.world_size)
        return make_loader(BatchDataset(self.val_px, self.contract, c.seed, False),
                           sampler, 0)


class _SampleGrid(Callback):
    """Save a PNG per epoch: validation images, reconstructions, residuals."""

    def __init__(self, folder: Path, val_px: PixelSource, contract: dict, n: int = 8):
        self.folder, self.contract = Path(folder), contract
        self.pixels = val_px[np.arange(min(n, len(val_px)))]

    def on_validation_epoch_end(self, trainer, pl_module):
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        x = to_input(self.contract, self.pixels).to(pl_module.device)
        was = pl_module.generator.training
        pl_module.generator.eval()
        with torch.no_grad():
            _, x_hat, _ = pl_module.generator(x.to(next(pl_module.generator.parameters())
                                                   .dtype))
        pl_module.generator.train(was)
        save_grid(self.folder / f"epoch-{trainer.current_epoch:03d}.png",
                  x.float().cpu(), x_hat.float().cpu())


def save_grid(path: Path, x: torch.Tensor, x_hat: torch.Tensor) -> Path:
    """Write a PNG with rows: inputs, reconstructions, |residual| (x in [-1, 1])."""
    from PIL import Image

    def rgb(t):
        t = t[:, :3] if t.shape[1] >= 3 else t[:, :1].expand(-1, 3, -1, -1)
        return ((t.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)

    res = (x - x_hat).abs().mean(1, keepdim=True).clamp(0, 1) * 2 - 1
    rows = [rgb(x), rgb(x_hat), rgb(res)]
    grid = torch.cat([torch.cat(list(r), dim=2) for r in rows], dim=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(tmp)
    tmp.replace(path)
    return path


class _BestCheckpoint(Callback):
    """Keep the weights of the epoch with the lowest ``val_loss`` in ``path``
    (``{"state_dict", "epoch", "val_loss"}``, readable with weights_only)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.best = float("inf")

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or "val_loss" not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics["val_loss"])
        if value >= self.best:
            return
        self.best = value
        if trainer.is_global_zero:
            state = {"state_dict": {k: v.detach().cpu().clone()
                                    for k, v in pl_module.state_dict().items()},
                     "epoch": int(trainer.current_epoch), "val_loss": value}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            torch.save(state, tmp)
            tmp.replace(self.path)

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best = float(state_dict["best"])


class _LastCheckpoint(Callback):
    """Save ``last.ckpt`` every ``every`` batches of an epoch and at every epoch
    end, atomically (temporary file, then rename)."""

    def __init__(self, path: Path, every: int):
        self.path, self.every = Path(path), int(every)

    def _save(self, trainer) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        trainer.save_checkpoint(tmp, weights_only=False)
        if trainer.is_global_zero:
            tmp.replace(self.path)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if (batch_idx + 1) % self.every == 0 \
                and batch_idx + 1 < trainer.num_training_batches:
            self._save(trainer)

    def on_train_epoch_end(self, trainer, pl_module):
        self._save(trainer)


class _Progress(Callback):
    def __init__(self, progress: ProgressCallback):
        self.progress = progress

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        total = trainer.num_training_batches * trainer.max_epochs
        done = trainer.current_epoch * trainer.num_training_batches + batch_idx + 1
        self.progress(done, total, "train")
