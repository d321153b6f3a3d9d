"""Training: losses fall, resume is exact, collapse handling, DDP, flux input, CLI."""

import logging

import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from galrate.detector import load_model, score, train

from conftest import make_imageset, tiny_config


def _metrics(folder):
    frames = [pd.read_csv(p) for p in sorted((folder / "logs").glob("version_*/metrics.csv"))]
    return pd.concat(frames, ignore_index=True)


def test_losses_fall(tmp_path, observed_set):
    out = train([observed_set.root], tmp_path / "m",
                tiny_config(epochs=8, lr=1e-3, augment=False, checkpoint_every_n_steps=100))
    m = _metrics(out)
    per_epoch = m.dropna(subset=["train/loss_con_epoch"]).set_index("epoch")
    con = per_epoch["train/loss_con_epoch"]
    assert con.iloc[-1] < 0.7 * con.iloc[0]
    val = m.dropna(subset=["val_loss"])["val_loss"].to_numpy()
    assert val[-1] < val[0]
    assert {"train/loss_adv_step", "train/loss_enc_step", "train/loss_d_step",
            "train/loss_g_step", "collapse_events"} <= set(m.columns)
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == [
        f"epoch-{e:03d}.png" for e in range(8)]
    meta = load_model(out).metadata["training"]
    assert meta["selected_epoch"] == int(np.argmin(val))


class _Kill(Callback):
    """Stop the run like a kill after the given global batch."""

    def __init__(self, after: int):
        self.after, self.seen = after, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen += 1
        if self.seen == self.after:
            raise RuntimeError("simulated kill")


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_resume_mid_epoch_matches_uninterrupted(tmp_path, observed_set, trained_model):
    """The session model trained 2 epochs x 4 batches without interruption."""
    out = tmp_path / "m"
    with pytest.raises(RuntimeError, match="simulated kill"):
        train([observed_set.root], out, tiny_config(epochs=2), callbacks=[_Kill(7)])
    assert not (out / "model.json").exists()
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=True)
    assert ckpt["epoch"] == 1  # saved mid-epoch 1, after its 2nd batch
    train([observed_set.root], out, tiny_config(epochs=2))
    a = _state(out / "checkpoints" / "last.ckpt")
    b = _state(trained_model / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    ra, rb = load_model(out).reference, load_model(trained_model).reference
    np.testing.assert_array_equal(ra["score_latent"], rb["score_latent"])


def test_forced_collapse_is_detected(tmp_path, observed_set, caplog):
    """A threshold above any BCE value declares a collapse at every batch."""
    with caplog.at_level(logging.WARNING, logger="galrate.detector"):
        out = train([observed_set.root], tmp_path / "m",
                    tiny_config(epochs=1, collapse_threshold=100.0, collapse_patience=2))
    meta = load_model(out).metadata["training"]
    assert meta["collapse_events"] == 2  # 4 batches, patience 2
    assert sum("discriminator collapsed" in r.message for r in caplog.records) == 2
    m = _metrics(out)
    assert m["collapse_events"].dropna().max() == 2


def test_real_collapse_is_caught(tmp_path, observed_set, caplog):
    """At a 100x learning rate the discriminator overpowers the tiny generator
    within a few batches (its loss drops below 0.05); the event is logged,
    counted in the model file and D is re-initialised."""
    with caplog.at_level(logging.WARNING, logger="galrate.detector"):
        out = train([observed_set.root], tmp_path / "m",
                    tiny_config(epochs=3, lr=2e-2, collapse_threshold=0.05,
                                augment=False))
    events = load_model(out).metadata["training"]["collapse_events"]
    messages = [r.message for r in caplog.records if "collapsed" in r.message]
    assert events >= 1 and len(messages) == events
    assert "weights re-initialised" in messages[0]


def test_flux_training_and_scoring(tmp_path, rng):
    s = make_imageset(tmp_path / "flux", rng, n=32, flux=True)
    out = train([s.root], tmp_path / "m", tiny_config(epochs=1, kind="flux"))
    model = load_model(out)
    c = model.contract
    assert c["kind"] == "flux" and c["channels"] == 3 and c["bands"] == ["g", "r", "i"]
    assert len(c["scaling"]["softening_nmgy"]) == 3
    table = score(model, s, tmp_path / "s.parquet", batch_size=5)
    assert np.isfinite(table["score_latent"]).all() and len(table) == 32
    rgb_only = make_imageset(tmp_path / "rgb", rng, n=4)
    with pytest.raises(ValueError, match="stored flux"):
        model.check_compatible(rgb_only)


def test_no_split_column_uses_galaxy_hash(tmp_path, rng):
    from galrate.detector.data import select_rows

    s = make_imageset(tmp_path / "ns", rng, n=40, splits=False)
    tr, va = select_rows(s, 0.25, seed=1)
    assert len(tr) + len(va) == 40 and 2 <= len(va) <= 20
    g_tr = set(s.manifest["galaxy_id"].to_numpy()[tr])
    g_va = set(s.manifest["galaxy_id"].to_numpy()[va])
    assert not g_tr & g_va
    tr2, _ = select_rows(s, 0.25, seed=1)
    np.testing.assert_array_equal(tr, tr2)


def test_simulated_rows_never_train(tmp_path, rng):
    from galrate.detector.data import select_rows

    s = make_imageset(tmp_path / "sim", rng, n=8, source="compact-3")
    with pytest.raises(ValueError, match="needs observed images"):
        select_rows(s, 0.25, seed=1)


def test_cli_train_and_score(tmp_path, observed_set, capsys):
    from galrate.cli import main

    out = tmp_path / "m"
    rc = main(["train", str(observed_set.root), "--out", str(out), "--epochs", "1",
               "--nz", "16", "--ngf", "8", "--ndf", "8", "--batch-size", "8",
               "--accelerator", "cpu", "--no-progress"])
    assert rc == 0
    assert "trained on 36 images (12 validation)" in capsys.readouterr().out
    rc = main(["score", str(out), str(observed_set.root), "--out",
               str(tmp_path / "s.parquet"), "--batch-size", "16", "--no-progress"])
    assert rc == 0
    assert "scored 48 images in" in capsys.readouterr().out
    assert main(["score", str(out), str(tmp_path / "nope"), "--out", "x.parquet"]) == 2


def test_cli_seeds_trains_one_detector_per_seed(tmp_path, observed_set):
    from galrate.cli import main

    out = tmp_path / "ens"
    rc = main(["train", str(observed_set.root), "--out", str(out), "--epochs", "1",
               "--nz", "16", "--ngf", "8", "--ndf", "8", "--batch-size", "8",
               "--accelerator", "cpu", "--no-progress", "--seeds", "4,5"])
    assert rc == 0
    seeds = [load_model(out / f"seed-{s}").metadata["training"]["config"]["seed"]
             for s in (4, 5)]
    assert seeds == [4, 5]
    a, b = (load_model(out / f"seed-{s}").reference["score_latent"].to_numpy()
            for s in (4, 5))
    assert not np.array_equal(a, b)


def test_ddp_two_cpu_processes(tmp_path, observed_set):
    out = train([observed_set.root], tmp_path / "m",
                tiny_config(epochs=1, strategy="ddp_spawn", devices=2, batch_size=4))
    model = load_model(out)
    assert model.metadata["training"]["config"]["devices"] == 2
    assert len(model.reference) == 12
    m = _metrics(out)
    # 36 training images, 4 per batch and process: 9 batches, 4 per process (a
    # single process would run 9); "step" is the 0-based batch counter
    assert m.dropna(subset=["train/loss_g_epoch"])["step"].tolist() == [3]
    assert np.isfinite(m["val_loss"].dropna()).all()
