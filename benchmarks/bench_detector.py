"""Detector speed: FLOPs, training and scoring throughput against this CPU's peak.

Measured in one run:

* ``peak_gflops``: float32 matmul rate (square matmul of side 2048, all threads,
  best of several), counted as ``2 n^3`` FLOP per product;
* ``flops_per_image``: FLOPs of the paper's network (64x64x3, nz 128, 64
  channels) counted by ``torch.utils.flop_counter`` (2 FLOP per MAC):
  scoring = generator forward + two discriminator feature passes; training =
  one full training step (forward and backward of the generator and
  discriminator losses, four discriminator passes) divided by the batch size;
* training and scoring throughput (images/s) and the implied fraction of the
  matmul peak, with the settings tried (channels-last, batch size, BatchNorm
  fused into the convolutions, inference mode);
* scoring speed-up over the original protocol (one image at a time,
  BatchNorm in training mode) measured side by side;
* peak resident memory (``/proc/self/statm`` sampled every 20 ms) while
  scoring image sets of two sizes through :func:`galrate.detector.score`.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from galrate.detector import score
from galrate.detector.modelfile import Detector
from galrate.detector.networks import Discriminator, Generator, init_weights
from galrate.imageset import ArrayStoreWriter, write_imageset
from galrate.survey import SDSS

SIZE = 64


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def paper_nets():
    g, d = Generator(SIZE, 3, 128, 64), Discriminator(SIZE, 3, 64)
    rng = torch.Generator().manual_seed(0)
    init_weights(g, rng)
    init_weights(d, rng)
    return g, d


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def train_step(g, d, opt_g, opt_d, x):
    """One GANomaly step, as in the training module (w_adv 1, w_con 50, w_enc 1)."""
    import torch.nn.functional as F

    latent_i, x_hat, latent_o = g(x)
    _, f_real = d(x)
    _, f_fake = d(x_hat)
    loss_g = (F.mse_loss(f_fake, f_real.detach()) + 50 * F.l1_loss(x_hat, x)
              + F.mse_loss(latent_o, latent_i))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    lr, _ = d(x)
    lf, _ = d(x_hat.detach())
    loss_d = 0.5 * (F.binary_cross_entropy_with_logits(lr, torch.ones_like(lr))
                    + F.binary_cross_entropy_with_logits(lf, torch.zeros_like(lf)))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()


def detector(g, d) -> Detector:
    meta = {"contract": {"kind": "rgb8", "channels": 3, "size": SIZE},
            "architecture": {"image_size": SIZE, "channels": 3, "nz": 128, "ngf": 64,
                             "ndf": 64}}
    return Detector(g, d, meta)


def rate(fn, n_images: int, min_time: float = 1.5) -> float:
    fn()
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_time or done == 0:
        fn()
        done += n_images
    return done / (time.perf_counter() - t0)


class StatmPeak:
    """Peak resident memory of this process from /proc/self/statm."""

    def __init__(self, interval: float = 0.02):
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _rss(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _loop(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(self.interval)

    def __enter__(self):
        self.start = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def make_set(folder: Path, n: int, rng) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"img{k:06d}" for k in range(n)]
    with ArrayStoreWriter(folder / "pixels.h5", SIZE) as w:
        for start in range(0, n, 2000):
            m = min(2000, n - start)
            w.append(ids[start:start + m], rng.integers(0, 255, (m, SIZE, SIZE, 3),
                                                         dtype=np.uint8))
    manifest = pd.DataFrame({"image_id": ids, "path": "pixels.h5", "index": np.arange(n),
                             "source": "null", "galaxy_id": ids, "projection": 0})
    write_imageset(folder, manifest, {"kind": "rgb8", "survey": SDSS.to_dict(),
                                      "size": SIZE, "bands": ["g", "r", "i"],
                                      "rgb_bands": ["i", "r", "g"], "has_flux": False})
    return folder


def run(workdir: Path, quick: bool) -> dict:
    from galrate.detector import save_model

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    out: dict = {"threads": threads}
    peak = matmul_gflops()
    out["peak_gflops_fp32_matmul"] = round(peak, 1)

    g, d = paper_nets()
    det = detector(g, d)
    x1 = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    score_flops = count_flops(lambda: det.forward_arrays(x1))
    bs_train = 32 if quick else 64
    xb = torch.rand(bs_train, 3, SIZE, SIZE) * 2 - 1
    gt, dt = paper_nets()
    ot = torch.optim.Adam(gt.parameters(), 2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(dt.parameters(), 2e-4, betas=(0.5, 0.999))
    train_flops = count_flops(lambda: train_step(gt, dt, ot, od, xb)) / bs_train
    out["flops_per_image"] = {"score": score_flops, "train_step": int(train_flops),
                              "train_over_score": round(train_flops / score_flops, 2)}

    # scoring throughput: settings grid
    images = rng.integers(0, 255, (256, SIZE, SIZE, 3), dtype=np.uint8)
    grid = []
    for channels_last in (False, True):
        for bs in (64, 256):
            det.channels_last = channels_last
            det._fused = None
            r = rate(lambda: det.score_arrays(images[:bs], batch_size=bs), bs)
            grid.append({"channels_last": channels_last, "batch_size": bs,
                         "images_per_s": round(r, 1),
                         "fraction_of_peak": round(r * score_flops / 1e9 / peak, 3)})
    best = max(grid, key=lambda e: e["images_per_s"])
    out["scoring"] = {"grid": grid, "best": best, "bn_fused": True,
                      "inference_mode": True}
    # unfused eval-mode nets, for the record of what fusing gains
    g.eval()
    d.eval()

    def unfused():
        with torch.inference_mode():
            xx = torch.rand(best["batch_size"], 3, SIZE, SIZE)
            _, xh, _ = g(xx)
            d.features(xx), d.features(xh)

    out["scoring"]["unfused_images_per_s"] = round(rate(unfused, best["batch_size"]), 1)
    det.channels_last = best["channels_last"]
    det._fused = None
    n_paper = 32 if quick else 128
    paper = rate(lambda: det.score_arrays(images[:n_paper], paper_mode=True), n_paper)
    out["paper_protocol_images_per_s"] = round(paper, 2)
    out["speedup_over_paper_protocol"] = round(best["images_per_s"] / paper, 1)

    # training throughput (the compute of a step; Lightning adds little at this size)
    for cl in (False, True):
        gt, dt = paper_nets()
        xx = xb
        if cl:
            gt.to(memory_format=torch.channels_last)
            dt.to(memory_format=torch.channels_last)
            xx = xb.contiguous(memory_format=torch.channels_last)
        ot = torch.optim.Adam(gt.parameters(), 2e-4, betas=(0.5, 0.999))
        od = torch.optim.Adam(dt.parameters(), 2e-4, betas=(0.5, 0.999))
        r = rate(lambda: train_step(gt, dt, ot, od, xx), bs_train, min_time=3.0)
        out.setdefault("training", []).append({
            "channels_last": cl, "batch_size": bs_train, "images_per_s": round(r, 2),
            "fraction_of_peak": round(r * train_flops / 1e9 / peak, 3)})

    # memory while scoring two set sizes through the public function
    model_dir = workdir / "model"
    meta = {"contract": {"survey": "sdss", "size": SIZE, "kind": "rgb8", "channels": 3,
                         "bands": ["g", "r", "i"], "rgb_bands": ["i", "r", "g"],
                         "colour": SDSS.to_dict()["colour"],
                         "scaling": {"type": "linear_uint8"}, "value_range": [-1, 1]},
            "architecture": det.architecture, "detector": "ganomaly",
            "reference": {"image_id": ["a", "b"], "score_latent": [0.0, 1.0],
                          "score_recon": [0.0, 1.0], "score_feature": [0.0, 1.0]}}
    save_model(model_dir, g, d, meta)
    sizes = (2000, 8000) if quick else (10000, 50000)
    mem = []
    for n in sizes:
        folder = make_set(workdir / f"set{n}", n, rng)
        target = workdir / f"scores{n}.parquet"
        with StatmPeak() as m:
            t0 = time.perf_counter()
            score(model_dir, folder, target, batch_size=best["batch_size"])
            wall = time.perf_counter() - t0
        mem.append({"n_images": n, "peak_rss_mib": round(m.peak / 2**20, 1),
                    "rss_before_mib": round(m.start / 2**20, 1),
                    "images_per_s_end_to_end": round(n / wall, 1)})
    out["scoring_memory"] = mem
    # the machine is shared: take the better of the peak measured before and after
    peak_after = matmul_gflops()
    out["peak_gflops_fp32_matmul_after"] = round(peak_after, 1)
    if peak_after > peak:
        out["peak_gflops_fp32_matmul"] = round(peak_after, 1)
        for e in grid:
            e["fraction_of_peak"] = round(e["images_per_s"] * score_flops / 1e9
                                          / peak_after, 3)
        for e in out["training"]:
            e["fraction_of_peak"] = round(e["images_per_s"] * train_flops / 1e9
                                          / peak_after, 3)
    return out
