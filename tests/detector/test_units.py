"""Networks, contract, sampler, augmentation and collapse monitor (no training)."""

import numpy as np
import pytest
import torch

from galrate.detector.contract import (check_contract, contract_from_imageset,
                                       fit_flux_scaling, from_input, to_input)
from galrate.detector.data import EpochBatchSampler, augment
from galrate.detector.module import CollapseMonitor
from galrate.detector.networks import (Discriminator, Generator, fuse_batchnorm,
                                       init_weights)
from galrate.survey import SDSS


@pytest.mark.parametrize("size,channels", [(32, 3), (64, 1), (128, 5)])
def test_network_shapes(size, channels):
    g = Generator(size, channels, nz=16, ngf=8)
    d = Discriminator(size, channels, ndf=8)
    x = torch.randn(2, channels, size, size)
    latent_i, x_hat, latent_o = g(x)
    assert latent_i.shape == (2, 16) and latent_o.shape == (2, 16)
    assert x_hat.shape == x.shape
    assert x_hat.abs().max() <= 1.0
    logit, features = d(x)
    assert logit.shape == (2,)
    assert features.shape == (2, 8 * size // 8, 4, 4)


def test_paper_network_layers():
    """At 64 px the encoder has 4 strided convs (64->32->16->8->4) and a 4x4 head."""
    g = Generator(64, 3)
    convs = [m for m in g.encoder1.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2)] * 4 + [(1, 1)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 128]
    assert all(c.kernel_size == (4, 4) for c in convs)
    acts = [m for m in g.encoder1.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert all(a.negative_slope == 0.2 for a in acts)
    assert isinstance(list(g.decoder.modules())[-1], torch.nn.Tanh)


def test_bad_image_size():
    with pytest.raises(ValueError, match="image_size must be one of"):
        Generator(48, 3)


def test_fused_batchnorm_matches_eval():
    g = Generator(32, 3, nz=16, ngf=8)
    init_weights(g, torch.Generator().manual_seed(0))
    for m in g.modules():  # non-trivial running statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    g.eval()
    fused = fuse_batchnorm(g)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        for a, b in zip(g(x), fused(x)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_init_weights_seeded():
    a, b = Generator(32, 3, 16, 8), Generator(32, 3, 16, 8)
    init_weights(a, torch.Generator().manual_seed(5))
    init_weights(b, torch.Generator().manual_seed(5))
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    w = a.encoder1.features[0].weight.detach()
    assert abs(float(w.std()) - 0.02) < 0.004


def test_rgb_scaling_known_values():
    contract = {"kind": "rgb8", "channels": 3}
    u = np.array([0, 127, 128, 255], dtype=np.uint8).reshape(1, 2, 2, 1).repeat(3, -1)
    x = to_input(contract, u)
    assert x.shape == (1, 3, 2, 2)
    np.testing.assert_allclose(x[0, 0].numpy().ravel(),
                               [-1.0, 127 / 127.5 - 1, 128 / 127.5 - 1, 1.0], atol=1e-6)
    np.testing.assert_array_equal(from_input(contract, x), u)


def test_flux_scaling_round_trip(rng):
    flux = rng.normal(0, 0.01, (6, 3, 8, 8)).astype(np.float32)
    flux[:, :, 4, 4] += 5.0
    meta = {"survey": SDSS.to_dict(), "size": 8, "bands": ["g", "r", "i"],
            "has_flux": True}
    c = fit_flux_scaling(contract_from_imageset(meta, "flux"), flux, [0.01, 0.02, 0.03])
    x = to_input(c, flux)
    assert c["channels"] == 3 and float(x.abs().max()) <= 1.0
    soft, ref = 0.02, c["scaling"]["reference_nmgy"][1]
    for pix in [(0, 1, 0, 0), (2, 1, 3, 5), (0, 1, 4, 4)]:
        expected = np.arcsinh(flux[pix] / soft) / np.arcsinh(ref / soft)
        np.testing.assert_allclose(float(x[pix]), np.clip(expected, -1, 1), rtol=1e-5)
    back = from_input(c, x)
    inside = np.abs(flux) <= np.asarray(c["scaling"]["reference_nmgy"])[None, :, None,
                                                                         None]
    np.testing.assert_allclose(back[inside], flux[inside], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("change,match", [
    ({"size": 64}, "image size"),
    ({"survey": dict(SDSS.to_dict(), name="hsc")}, "survey"),
    ({"rgb_bands": ["r", "g", "i"]}, "rgb_bands"),
    ({"survey": dict(SDSS.to_dict(), colour=dict(SDSS.to_dict()["colour"], Q=9.0))},
     "colour recipe 'Q'"),
])
def test_contract_mismatch_named(change, match):
    meta = {"survey": SDSS.to_dict(), "size": 32, "bands": ["g", "r", "i"],
            "rgb_bands": ["i", "r", "g"], "has_flux": False, "kind": "rgb8"}
    contract = contract_from_imageset(meta)
    check_contract(contract, meta)
    with pytest.raises(ValueError, match=match):
        check_contract(contract, dict(meta, **change), where="other-set")


def test_flux_contract_needs_flux():
    meta = {"survey": SDSS.to_dict(), "size": 32, "has_flux": False}
    with pytest.raises(ValueError, match="has_flux is false"):
        contract_from_imageset(meta, "flux")


def test_collapse_monitor_known_sequence():
    m = CollapseMonitor(threshold=1e-3, patience=2)
    fired = [m.update(v) for v in [0.5, 1e-4, 1e-4, 1e-4, 0.2, 1e-5, 1e-5]]
    assert fired == [False, False, True, False, False, False, True]
    assert m.events == 2
    with pytest.raises(ValueError, match="patience"):
        CollapseMonitor(1e-3, 0)


def test_sampler_deterministic_and_resumable():
    s = EpochBatchSampler(20, 4, seed=1, shuffle=True, drop_last=True)
    s.set_epoch(3)
    full = [b[3].tolist() for b in s]
    assert len(full) == 5 and sorted(sum(full, [])) == list(range(20))
    s.set_epoch(4)
    assert [b[3].tolist() for b in s] != full
    s.load_state_dict({"epoch": 3, "consumed": 2})
    s.set_epoch(3)
    assert [b[3].tolist() for b in s] == full[2:]
    assert [b[3].tolist() for b in s] == full  # the skip applies once


def test_sampler_ranks_disjoint():
    r0 = EpochBatchSampler(22, 4, seed=1, shuffle=True, rank=0, world=2, drop_last=True)
    r1 = EpochBatchSampler(22, 4, seed=1, shuffle=True, rank=1, world=2, drop_last=True)
    a = np.concatenate([b[3] for b in r0])
    b = np.concatenate([b[3] for b in r1])
    assert len(r0) == len(r1) == 2 and not set(a) & set(b)


def test_augment_uses_the_eight_symmetries(rng):
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(64, 1, 1, 1)
    y = augment(x, rng)
    symmetries = {tuple(torch.rot90(x[0], k, (1, 2)).flatten().tolist()) for k in range(4)}
    symmetries |= {tuple(torch.flip(torch.rot90(x[0], k, (1, 2)), (2,)).flatten()
                         .tolist()) for k in range(4)}
    seen = {tuple(im.flatten().tolist()) for im in y}
    assert seen <= symmetries and len(seen) == 8
