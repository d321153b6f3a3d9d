"""GANomaly networks: DCGAN encoder, decoder, generator and discriminator.

The generator maps an image ``x`` to a latent code ``latent_i = G_E(x)``,
decodes it to a reconstruction ``x_hat = G_D(latent_i)`` and encodes the
reconstruction again, ``latent_o = E(x_hat)`` (Akcay et al. 2018,
arXiv:1805.06725, Sec. 3.1). The discriminator is an encoder whose last layer
is a one-channel classifier; its penultimate activations are the features
used by the adversarial loss and by the feature score.

All blocks are DCGAN blocks: 4x4 convolutions with stride 2, BatchNorm,
LeakyReLU(0.2) in the encoders, ReLU and a final Tanh in the decoder.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["IMAGE_SIZES", "Encoder", "Decoder", "Generator", "Discriminator",
           "init_weights", "fuse_batchnorm"]

#: image sides (pixels) the networks are built for
IMAGE_SIZES = (32, 64, 128)


def _check_size(image_size: int) -> None:
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES} pixels; "
                         f"got {image_size}")


class Encoder(nn.Module):
    """DCGAN encoder ``(N, C, S, S) -> (N, nz, 1, 1)``.

    Parameters
    ----------
    image_size : int
        Side S of the input in pixels (32, 64 or 128).
    channels : int
        Input channels C.
    nz : int
        Output channels (the latent size; 1 for a classifier).
    ndf : int
        Channels of the first block; doubled at every halving of the size.
    """

    def __init__(self, image_size: int, channels: int, nz: int, ndf: int):
        super().__init__()
        _check_size(image_size)
        layers: list[nn.Module] = [
            nn.Conv2d(channels, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        size, width = image_size // 2, ndf
        while size > 4:
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(width * 2),
                       nn.LeakyReLU(0.2, inplace=True)]
            size, width = size // 2, width * 2
        self.features = nn.Sequential(*layers)
        self.final = nn.Conv2d(width, nz, 4, 1, 0, bias=False)
        self.feature_channels = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final(self.features(x))


class Decoder(nn.Module):
    """DCGAN decoder ``(N, nz, 1, 1) -> (N, C, S, S)`` with values in (-1, 1)."""

    def __init__(self, image_size: int, channels: int, nz: int, ngf: int):
        super().__init__()
        _check_size(image_size)
        width, size = ngf // 2, 4
        while size != image_size:
            width, size = width * 2, size * 2
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, width, 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        size = 4
        while size < image_size // 2:
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(width // 2), nn.ReLU(inplace=True)]
            width, size = width // 2, size * 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class Generator(nn.Module):
    """Encoder -> decoder -> encoder.

    ``forward(x)`` with ``x`` of shape ``(N, C, S, S)`` returns
    ``(latent_i, x_hat, latent_o)`` of shapes ``(N, nz)``, ``(N, C, S, S)``,
    ``(N, nz)``.
    """

    def __init__(self, image_size: int, channels: int, nz: int = 128, ngf: int = 64):
        super().__init__()
        self.encoder1 = Encoder(image_size, channels, nz, ngf)
        self.decoder = Decoder(image_size, channels, nz, ngf)
        self.encoder2 = Encoder(image_size, channels, nz, ngf)

    def forward(self, x: torch.Tensor):
        latent_i = self.encoder1(x)
        x_hat = self.decoder(latent_i)
        latent_o = self.encoder2(x_hat)
        return latent_i.flatten(1), x_hat, latent_o.flatten(1)


class Discriminator(nn.Module):
    """Encoder with a one-channel classifier head.

    ``forward(x)`` returns ``(logit (N,), features (N, F, 4, 4))``; the
    probability that ``x`` is real is ``sigmoid(logit)``. Losses use the
    logit with ``binary_cross_entropy_with_logits``, the same BCE as on the
    probability but stable in reduced precision.
    """

    def __init__(self, image_size: int, channels: int, ndf: int = 64):
        super().__init__()
        encoder = Encoder(image_size, channels, 1, ndf)
        self.features = encoder.features
        self.classifier = encoder.final

    def forward(self, x: torch.Tensor):
        features = self.features(x)
        return self.classifier(features).flatten(), features


def init_weights(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02), BatchNorm gamma N(1, 0.02).

    ``generator`` makes the draw reproducible without touching the global RNG.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(1.0 + torch.randn(m.weight.shape, generator=generator)
                               * 0.02)
                m.bias.zero_()
            m.reset_running_stats()


def fuse_batchnorm(module: nn.Module) -> nn.Module:
    """A copy of ``module`` in eval mode with every conv + BatchNorm pair folded.

    In eval mode BatchNorm is the affine map ``gamma (y - mu) / sqrt(var + eps)
    + beta`` with stored statistics, so it folds exactly into the preceding
    convolution's weights and bias; the copy computes the same function
    (to float rounding) with one pass less over the activations.
    """
    fused = copy.deepcopy(module).eval()
    for parent in list(fused.modules()):
        if not isinstance(parent, nn.Sequential):
            continue
        children = list(parent)
        out: list[nn.Module] = []
        i = 0
        while i < len(children):
            layer = children[i]
            nxt = children[i + 1] if i + 1 < len(children) else None
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)) \
                    and isinstance(nxt, nn.BatchNorm2d):
                out.append(fuse_conv_bn_eval(
                    layer, nxt, transpose=isinstance(layer, nn.ConvTranspose2d)))
                i += 2
            else:
                out.append(layer)
                i += 1
        for name in list(parent._modules):
            del parent._modules[name]
        for k, layer in enumerate(out):
            parent.add_module(str(k), layer)
    return fused
