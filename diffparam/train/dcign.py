"""`DCIGN`: the Deep Convolutional Inverse Graphics Network of Kulkarni et al. (2015), a variational
autoencoder whose code starts with one named unit per graphics factor (azimuth, elevation, light)
followed by a free part (what the object is), and `clamp_batch`, the paper's training trick.
`RenderEncoder`: the same encoder whose code is the renderer's parameters themselves (degrees, bounded),
for a decoder that renders (`recipes.dcign_render`).

Encoder: three stride-2 convolutions and a linear layer to the code's means and log-variances.
Decoder: a linear layer and three nearest-neighbour upsamplings, each followed by a convolution, into a
sigmoid (images in [0, 1]). Square images whose side is a multiple of 8.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from diffparam.checks import int_in, positive_int

START_LOG_VAR = -4.0
"""The code's initial log-variance: a unit that starts drowned in unit noise tends to be ignored by the
decoder, and a graphics unit ignored early stays so (measured: the azimuth unit failed on seed 1)."""


class _Clamp(torch.autograd.Function):
    """Forward: the clamped units (mask True) replaced by their mean over each group's images. Backward:
    the gradient of those units is their difference from that mean (it pulls them together, as the paper
    prescribes); the other units' gradient passes unchanged."""

    @staticmethod
    def forward(ctx, z: Tensor, mask: Tensor, weight: float) -> Tensor:  # noqa: ANN001
        mean = z.mean(1, keepdim=True).expand_as(z)
        ctx.save_for_backward(z - mean, mask)
        ctx.weight = weight
        return torch.where(mask, mean, z)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # noqa: ANN001
        spread, mask = ctx.saved_tensors
        return torch.where(mask, ctx.weight * spread, grad), None, None


def clamp_batch(z: Tensor, active: Tensor, weight: float = 1.0) -> Tensor:
    """Codes `z` (G,B,D) of G mini-batches with every unit but `active` (G,D) bool clamped to its batch
    mean in the forward pass; their gradient is `weight` × their difference from it (DC-IGN's rule)."""
    return _Clamp.apply(z, ~active[:, None, :].expand_as(z), weight)


def conv_encoder(size: int, channels: int, width: int, outputs: int) -> nn.Sequential:
    """Three stride-2 convolutions (`width`, then 2 × `width` channels) and a linear layer to `outputs`."""
    w, s = width, size // 8
    return nn.Sequential(
        nn.Conv2d(channels, w, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(2 * w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(),
        nn.Linear(2 * w * s * s, outputs))


class DCIGN(nn.Module):
    """Images (B, C, S, S) → code means and log-variances (B, D) → images; D = len(factors) + `free`.

    The first units are the graphics units, named by `factors`; `width` channels in the first
    convolution, twice as many in the others.
    """

    def __init__(self, size: int, channels: int, factors: Sequence[str], free: int = 13,
                 width: int = 32) -> None:
        super().__init__()
        self.size, self.channels = int_in("size", size, 16, 256), int_in("channels", channels, 1, 4)
        self.factors = tuple(factors)
        self.free, self.width = positive_int("free", free), positive_int("width", width)
        w, s = self.width, self.size // 8
        self.code = len(self.factors) + self.free
        self.encoder = conv_encoder(self.size, channels, w, 2 * self.code)
        with torch.no_grad():  # start with little sampling noise, so the decoder learns to read every unit
            self.encoder[-1].bias[self.code:] = START_LOG_VAR
        self.expand = nn.Sequential(nn.Linear(self.code, 2 * w * s * s), nn.LeakyReLU(0.2),
                                    nn.Unflatten(1, (2 * w, s, s)))
        up = [nn.Upsample(scale_factor=2), nn.Conv2d(2 * w, 2 * w, 3, 1, 1), nn.LeakyReLU(0.2),
              nn.Upsample(scale_factor=2), nn.Conv2d(2 * w, w, 3, 1, 1), nn.LeakyReLU(0.2),
              nn.Upsample(scale_factor=2), nn.Conv2d(w, channels, 3, 1, 1)]
        self.decoder = nn.Sequential(*up)

    def unit(self, factor: str) -> int:
        """The index of `factor`'s graphics unit in the code."""
        return self.factors.index(factor)

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Means and log-variances (B, D) of the code of `images`."""
        mean, log_var = self.encoder(images).chunk(2, 1)
        return mean, log_var.clamp(-12, 6)

    def logits(self, code: Tensor) -> Tensor:
        """The decoder's output before its sigmoid (B, C, S, S): what a cross-entropy loss takes."""
        return self.decoder(self.expand(code))

    def decode(self, code: Tensor) -> Tensor:
        """Images (B, C, S, S) in [0, 1] from codes (B, D)."""
        return self.logits(code).sigmoid()

    def config(self) -> dict:
        """What rebuilds this network (kept in the checkpoint)."""
        return {"size": self.size, "channels": self.channels, "factors": list(self.factors),
                "free": self.free, "width": self.width}


class RenderEncoder(nn.Module):
    """Images (B, C, S, S) → one value per factor in degrees, each held inside its range by a sigmoid
    (`ranges`: (low, high) per factor). No free part and no sampling: a renderer decodes the code."""

    free = 0

    def __init__(self, size: int, channels: int, factors: Sequence[str],
                 ranges: Sequence[Sequence[float]], width: int = 32) -> None:
        super().__init__()
        self.size, self.channels = int_in("size", size, 16, 256), int_in("channels", channels, 1, 4)
        self.factors, self.width = tuple(factors), positive_int("width", width)
        self.code = len(self.factors)
        self.ranges = [(float(lo), float(hi)) for lo, hi in ranges]
        self.encoder = conv_encoder(self.size, channels, self.width, self.code)
        self.register_buffer("low", torch.tensor([lo for lo, _ in self.ranges]), persistent=False)
        self.register_buffer("span", torch.tensor([hi - lo for lo, hi in self.ranges]), persistent=False)

    def unit(self, factor: str) -> int:
        """The index of `factor`'s unit in the code."""
        return self.factors.index(factor)

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """The factors (B, D) in degrees, and zero log-variances (the same call as `DCIGN.encode`)."""
        code = self.low + self.span * self.encoder(images).sigmoid()
        return code, torch.zeros_like(code)

    def config(self) -> dict:
        """What rebuilds this network (kept in the checkpoint)."""
        return {"size": self.size, "channels": self.channels, "factors": list(self.factors),
                "ranges": [list(r) for r in self.ranges], "width": self.width}
