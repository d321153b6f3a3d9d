"""Training data: observed rows, deterministic batches, sky-respecting augmentation.

Batches are drawn by :class:`EpochBatchSampler`: the order of an epoch is a
permutation seeded by ``(seed, epoch)``, so a resumed run sees the same
batches as an uninterrupted one; the sampler remembers how many batches of
the epoch were consumed and skips them after a restart. Under DDP each
process takes every ``world``-th batch. Augmentation (flips and 90-degree
rotations: the sky has no preferred orientation or handedness) is seeded by
``(seed, epoch, global batch number)``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..imageset import ImageSet
from .contract import to_input

log = logging.getLogger(__name__)

__all__ = ["select_rows", "PixelSource", "EpochBatchSampler", "BatchDataset",
           "ResumableLoader", "augment"]


def _unit_hash(key: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2.0 ** 64


def select_rows(imageset: ImageSet, val_fraction: float, seed: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Manifest positions of the training and validation images.

    Only observed images are used (``source == "observed"``). With a
    ``split`` column, ``"train"`` rows train and ``"val"`` rows validate (the
    rest, e.g. ``"test"``, is left out); without one, galaxies are split by a
    seeded hash of ``galaxy_id`` so all projections of a galaxy fall on the
    same side.

    Raises
    ------
    ValueError
        No observed training or validation image.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1); got {val_fraction}")
    m = imageset.manifest
    observed = (m["source"] == "observed").to_numpy()
    if "split" in m.columns:
        split = m["split"].astype(str).to_numpy()
        train, val = observed & (split == "train"), observed & (split == "val")
    else:
        u = np.array([_unit_hash(g, seed) for g in m["galaxy_id"]])
        train, val = observed & (u >= val_fraction), observed & (u < val_fraction)
    if not train.any() or not val.any():
        raise ValueError(f"{imageset.root}: needs observed images in both the training "
                         f"and the validation split; found {int(train.sum())} train and "
                         f"{int(val.sum())} val rows of {len(m)}")
    return np.flatnonzero(train), np.flatnonzero(val)


class PixelSource:
    """Stored pixels of chosen rows of several image sets, in memory or on demand.

    Parameters
    ----------
    parts : list of (ImageSet, rows)
    kind : {"rgb8", "flux"}
    in_memory : bool or None
        Read all pixels at once; ``None`` decides by size (less than a
        quarter of the available memory).
    """

    def __init__(self, parts: Sequence[tuple[ImageSet, np.ndarray]], kind: str,
                 in_memory: bool | None = None):
        self.parts = [(s, np.asarray(r, dtype=np.int64)) for s, r in parts]
        self.kind = kind
        self.offsets = np.cumsum([0] + [len(r) for _, r in self.parts])
        if in_memory is None:
            in_memory = self.nbytes() < _available_bytes() / 4
        self.array = None
        if in_memory:
            self.array = np.concatenate([self._read(s, r) for s, r in self.parts])
        log.info("training pixels: %d images, %.1f MiB, %s", len(self),
                 self.nbytes() / 2**20, "in memory" if in_memory else "read per batch")

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getstate__(self) -> dict:
        # open HDF5 handles do not cross process boundaries: reopen lazily
        state = dict(self.__dict__)
        state["parts"] = [(ImageSet(root=s.root, manifest=s.manifest,
                                    metadata=s.metadata), r) for s, r in self.parts]
        return state

    def nbytes(self) -> int:
        s, r = self.parts[0]
        one = self._read(s, r[:1])
        return int(one.nbytes) * len(self)

    def _read(self, imageset: ImageSet, rows: np.ndarray) -> np.ndarray:
        return imageset.rgb(rows) if self.kind == "rgb8" else imageset.flux(rows)

    def __getitem__(self, index: np.ndarray) -> np.ndarray:
        index = np.asarray(index, dtype=np.int64)
        if self.array is not None:
            return self.array[index]
        part = np.searchsorted(self.offsets, index, side="right") - 1
        out = None
        for k in np.unique(part):
            pos = np.flatnonzero(part == k)
            imageset, rows = self.parts[k]
            data = self._read(imageset, rows[index[pos] - self.offsets[k]])
            if out is None:
                out = np.empty((len(index),) + data.shape[1:], dtype=data.dtype)
            out[pos] = data
        return out


def _available_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 2**30


def augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Random flip and 90-degree rotation per image of ``x`` ``(N, C, H, W)``.

    Each image gets one of the 8 symmetries of the square, uniformly.
    """
    ops = rng.integers(0, 8, size=x.shape[0])
    out = x.clone()
    for op in np.unique(ops):
        sel = torch.from_numpy(np.flatnonzero(ops == op))
        y = torch.rot90(x[sel], int(op % 4), dims=(2, 3))
        if op >= 4:
            y = torch.flip(y, dims=(3,))
        out[sel] = y
    return out


class EpochBatchSampler(Sampler):
    """Batches of indices, seeded by ``(seed, epoch)``, resumable mid-epoch.

    Yields ``(epoch, global_batch_number, indices)``. ``consumed`` is set by
    the training step after each batch; ``state_dict`` records it in
    Lightning checkpoints and ``load_state_dict`` makes the next epoch
    iteration skip the batches already trained on.
    """

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool,
                 rank: int = 0, world: int = 1, drop_last: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.shuffle, self.rank, self.world = shuffle, rank, world
        self.drop_last = drop_last and n >= batch_size
        self.epoch = 0
        self.consumed = 0
        self._skip: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _batches(self) -> list[np.ndarray]:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        batches = [order[i:i + self.batch_size] for i in range(0, self.n, self.batch_size)]
        if self.drop_last and len(batches[-1]) < self.batch_size:
            batches = batches[:-1]
        per_rank = len(batches) // self.world if self.world > 1 else len(batches)
        return [batches[b] for b in range(self.rank, per_rank * self.world, self.world)] \
            if self.world > 1 else batches

    def __len__(self) -> int:
        return len(self._batches())

    def __iter__(self):
        batches = self._batches()
        start = 0
        if self._skip is not None and self._skip[0] == self.epoch:
            start = self._skip[1]
        self._skip = None
        for local in range(start, len(batches)):
            yield self.epoch, local * self.world + self.rank, local, batches[local]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        self._skip = (int(state["epoch"]), int(state["consumed"]))


@dataclass
class BatchDataset(Dataset):
    """Turns a sampler item into a batch ``{"x": (N, C, H, W), "local": int}``."""

    pixels: PixelSource
    contract: dict
    seed: int
    augment: bool

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, item):
        epoch, number, local, index = item
        x = to_input(self.contract, self.pixels[index])
        if self.augment:
            x = augment(x, np.random.default_rng([self.seed, epoch, number, 7]))
        return {"x": x, "local": local}


class ResumableLoader(DataLoader):
    """A DataLoader whose position in the epoch is saved in checkpoints."""

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)


def make_loader(dataset: BatchDataset, sampler: EpochBatchSampler,
                num_workers: int) -> ResumableLoader:
    """A loader that yields whole batches built by the dataset."""
    return ResumableLoader(dataset, sampler=sampler, batch_size=None,
                           num_workers=num_workers,
                           persistent_workers=num_workers > 0)
