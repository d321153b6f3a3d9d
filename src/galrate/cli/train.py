"""``galrate train``: train a detector on observed images."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from . import add_log_file, comma_list


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a GANomaly detector on observed images",
        description="Train a GANomaly detector on the observed images of one or more "
                    "image sets (rows with split == 'train'; 'val' rows select the epoch "
                    "and calibrate the scores). Rerunning into the same --out resumes.")
    p.add_argument("imagesets", nargs="+", type=Path, metavar="IMAGESET")
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    p.add_argument("--kind", choices=("rgb8", "flux"), default="rgb8",
                   help="train on colour cutouts (default) or calibrated flux")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--image-size", type=int, default=None, choices=(32, 64, 128))
    p.add_argument("--nz", type=int, default=128, help="latent size (default 128)")
    p.add_argument("--ngf", type=int, default=64, help="generator base channels")
    p.add_argument("--ndf", type=int, default=64, help="discriminator base channels")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--w-adv", type=float, default=1.0)
    p.add_argument("--w-con", type=float, default=50.0)
    p.add_argument("--w-enc", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=comma_list(int),
                   help="train one detector per seed (e.g. 0,1,2) into OUT/seed-<k>, "
                        "for ratings reported as ensembles over seeds")
    p.add_argument("--no-augment", action="store_true", help="no flips/rotations")
    p.add_argument("--deterministic", action="store_true")
    p.add_argument("--precision", default="32-true", help="e.g. 32-true, bf16-mixed")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the networks")
    p.add_argument("--accelerator", default="auto", help="cpu, gpu, auto")
    p.add_argument("--strategy", default="auto", help="auto, ddp, ddp_spawn")
    p.add_argument("--devices", default="1", help="devices per node (or 'auto')")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="galaxies held out when the manifest has no split column")
    p.add_argument("--checkpoint-every", type=int, default=200,
                   help="save checkpoints/last.ckpt every N batches")
    p.add_argument("--max-train-images", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..detector import TrainConfig, load_model, train

    devices = args.devices if args.devices == "auto" else int(args.devices)
    config = TrainConfig(
        image_size=args.image_size, nz=args.nz, ngf=args.ngf, ndf=args.ndf,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, w_adv=args.w_adv,
        w_con=args.w_con, w_enc=args.w_enc, seed=args.seed, augment=not args.no_augment,
        kind=args.kind, deterministic=args.deterministic, precision=args.precision,
        channels_last=args.channels_last, compile=args.compile,
        accelerator=args.accelerator, strategy=args.strategy, devices=devices,
        num_nodes=args.num_nodes, num_workers=args.num_workers,
        val_fraction=args.val_fraction, checkpoint_every_n_steps=args.checkpoint_every,
        max_train_images=args.max_train_images, progress_bar=not args.no_progress)
    add_log_file(args.out / "train.log")
    runs = ([(s, args.out / f"seed-{s}") for s in args.seeds] if args.seeds
            else [(args.seed, args.out)])
    for seed, out in runs:
        t0 = time.perf_counter()
        path = train(args.imagesets, out, replace(config, seed=seed))
        if (path / "model.json").exists():
            t = load_model(path).metadata["training"]
            print(f"trained on {t['n_train']} images ({t['n_val']} validation) in "
                  f"{time.perf_counter() - t0:.1f} s; selected epoch "
                  f"{t['selected_epoch']}, {t['collapse_events']} discriminator "
                  f"collapse(s); model: {path}")
    return 0
