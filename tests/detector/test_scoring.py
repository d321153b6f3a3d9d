"""Model file and scoring: round trip, batch independence, refusals, resume."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from galrate.detector import load_model, percentile, reconstruct, score

from conftest import make_imageset


@pytest.fixture(scope="module")
def model(trained_model):
    return load_model(trained_model)


@pytest.fixture(scope="module")
def images(observed_set):
    return observed_set.rgb()


def test_round_trip_reproduces_reference(model, observed_set):
    """Scores after save + load equal those computed before saving (the reference)."""
    ref = model.reference
    rows = np.flatnonzero(observed_set.manifest["image_id"].isin(ref["image_id"]))
    res = model.score_arrays(observed_set.rgb(rows))
    for k in ("score_latent", "score_recon", "score_feature"):
        np.testing.assert_allclose(res[k], ref[k].to_numpy(), rtol=1e-6, atol=1e-9)
    assert len(ref) == 12 and (ref["score_latent"] > 0).all()


def test_metadata_contents(model):
    m = model.metadata
    assert m["architecture"] == {"image_size": 32, "channels": 3, "nz": 16, "ngf": 8,
                                 "ndf": 8}
    c = model.contract
    assert (c["survey"], c["size"], c["kind"], c["channels"]) == ("sdss", 32, "rgb8", 3)
    assert c["rgb_bands"] == ["i", "r", "g"] and c["value_range"] == [-1.0, 1.0]
    t = m["training"]
    assert t["seed"] == 3 and t["epochs"] == 2 and t["selected_epoch"] in (0, 1)
    assert len(t["manifest_sha256"][0]) == 64 and "torch" in t["versions"]
    assert len(m["weights"]["sha256"]) == 64


def test_batch_independence(model, images):
    base = model.score_arrays(images, batch_size=64)
    for bs in (1, 7):
        other = model.score_arrays(images, batch_size=bs)
        for k in ("score_latent", "score_recon", "score_feature", "latent_i"):
            np.testing.assert_allclose(other[k], base[k], rtol=1e-5, atol=1e-7)
    perm = np.random.default_rng(0).permutation(len(images))
    shuffled = model.score_arrays(images[perm], batch_size=7)
    np.testing.assert_allclose(shuffled["score_latent"], base["score_latent"][perm],
                               rtol=1e-5, atol=1e-7)


def test_scores_match_definitions(model, images):
    """score_latent is the mean squared latent difference (the paper's A)."""
    res = model.score_arrays(images[:5])
    a = np.mean((res["latent_i"] - res["latent_o"]) ** 2, axis=1)
    np.testing.assert_allclose(res["score_latent"], a, rtol=1e-5)
    recon, residual = reconstruct(model, images[:5])
    assert recon.dtype == np.uint8 and recon.shape == (5, 32, 32, 3)
    assert residual.dtype == np.float32 and residual.shape == (5, 32, 32)
    np.testing.assert_allclose(residual.mean(axis=(1, 2)), res["score_recon"], rtol=1e-4)


def test_paper_mode_differs_and_is_per_image(model, images):
    eval_mode = model.score_arrays(images[:8])
    paper = model.score_arrays(images[:8], paper_mode=True, batch_size=8)
    paper1 = model.score_arrays(images[:8], paper_mode=True, batch_size=1)
    np.testing.assert_array_equal(paper["score_latent"], paper1["score_latent"])
    assert not np.allclose(paper["score_latent"], eval_mode["score_latent"], rtol=1e-3)
    # paper mode leaves the model's BatchNorm statistics alone
    again = model.score_arrays(images[:8])
    np.testing.assert_array_equal(again["score_latent"], eval_mode["score_latent"])


def test_percentile_known_values():
    ref = np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(percentile(ref, [0.5, 1.0, 2.5, 4.0, 9.0]),
                               [0.0, 25.0, 50.0, 100.0, 100.0])


def test_score_table(model, observed_set, tmp_path):
    out = tmp_path / "scores.parquet"
    table = score(model, observed_set.root, out, batch_size=10, latents=True)
    disk = pd.read_parquet(out)
    pd.testing.assert_frame_equal(disk, table)
    assert list(disk.columns[:10]) == [
        "image_id", "source", "galaxy_id", "projection", "score_latent", "score_recon",
        "score_feature", "pct_latent", "pct_recon", "pct_feature"]
    assert {"imageset", "log_mstar", "split"} <= set(disk.columns)
    assert disk["imageset"].iloc[0] == str(observed_set.root.resolve())
    assert disk["image_id"].tolist() == observed_set.manifest["image_id"].tolist()
    val = disk[disk["split"] == "val"]  # the reference images themselves
    assert val["pct_latent"].max() == 100.0 and val["pct_latent"].min() == 100 / 12
    import h5py

    with h5py.File(tmp_path / "scores.arrays.h5") as h5:
        li, lo = h5["latent_i"][:], h5["latent_o"][:]
        assert [s.decode() for s in h5["image_id"][:3]] == disk["image_id"][:3].tolist()
    np.testing.assert_allclose(np.mean((li - lo) ** 2, axis=1), disk["score_latent"],
                               rtol=1e-5)
    assert not (tmp_path / "scores.parquet.parts").exists()


def test_score_resume_skips_finished_parts(model, observed_set, tmp_path, monkeypatch):
    out = tmp_path / "s.csv"
    expected = score(model, observed_set, tmp_path / "full.parquet", batch_size=10)

    def killer(done, total, what):
        if done >= 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        score(model, observed_set, out, batch_size=10, progress=killer)
    parts = tmp_path / "s.csv.parts"
    files = sorted(p.name for p in parts.iterdir())
    assert files == ["part-000000.parquet", "part-000001.parquet", "parts.json"]
    assert all(len(pd.read_parquet(parts / f)) == 10 for f in files[:2])
    assert not out.exists()

    calls = []
    original = type(model).score_arrays

    def counting(self, x, **kw):
        calls.append(len(x))
        return original(self, x, **kw)

    monkeypatch.setattr(type(model), "score_arrays", counting)
    table = score(model, observed_set, out, batch_size=10)
    assert calls == [10, 10, 8]  # parts 2, 3, 4 only
    disk = pd.read_csv(out, dtype={"image_id": str, "galaxy_id": str})
    np.testing.assert_allclose(disk["score_latent"], expected["score_latent"], rtol=1e-12)
    assert len(table) == 48


def test_contract_mismatch_refused(model, tmp_path, rng):
    other = make_imageset(tmp_path / "hsc", rng, n=4,
                          metadata_updates={"survey": {**model.contract, "name": "hsc",
                                                       "bands": []}})
    with pytest.raises(ValueError, match="survey is 'hsc' in the image set but 'sdss'"):
        score(model, other, tmp_path / "x.parquet")


def test_truncated_weights_refused(trained_model, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(trained_model, copy, ignore=shutil.ignore_patterns("checkpoints",
                                                                        "logs"))
    weights = copy / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model\.safetensors: SHA-256 .* truncated or"):
        load_model(copy)
    weights.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ValueError, match="truncated or altered"):
        load_model(copy)
    weights.write_bytes(data)
    assert load_model(copy).contract["size"] == 32
    (copy / "model.json").write_text("{ not json")
    with pytest.raises(ValueError, match=r"model\.json: not valid JSON"):
        load_model(copy)


def test_stale_parts_discarded(model, observed_set, tmp_path):
    parts = tmp_path / "s.parquet.parts"
    parts.mkdir()
    (parts / "parts.json").write_text(json.dumps({"batch_size": 3}))
    (parts / "part-000000.parquet").write_text("garbage")
    table = score(model, observed_set, tmp_path / "s.parquet", batch_size=16)
    assert len(table) == 48 and np.isfinite(table["score_latent"]).all()
