"""`StyleNet`: Johnson et al. (2016)'s image-transformation network, the feed-forward half of fast
style transfer: one pass turns a photo of any size into its stylised version.

Reflection-padded convolutions with instance normalisation: down by 4 in two strided convolutions,
residual blocks, and up by 4 in nearest-neighbour upsampling followed by a convolution (Odena et
al.'s remedy for the checkerboard artefacts of transposed convolutions). The output is squashed
into [0, 1] by a sigmoid, as every image parameterization here is.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from diffparam.checks import positive_int


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1, norm: bool = True, relu: bool = True):
    layers: list[nn.Module] = [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride)]
    if norm:
        layers.append(nn.InstanceNorm2d(c_out, affine=True))
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels, 3), _conv(channels, channels, 3, relu=False))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class _Up(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = _conv(c_in, c_out, 3)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        return self.conv(F.interpolate(x, size=size, mode="nearest"))


class StyleNet(nn.Module):
    """Photos (B, 3, H, W) in [0, 1] → stylised photos of the same size; `width` channels at full
    resolution (Johnson et al.: 32), 2 and 4 times as many below, `blocks` residual blocks (5)."""

    def __init__(self, width: int = 32, blocks: int = 5) -> None:
        super().__init__()
        self.width, self.n_blocks = positive_int("width", width), positive_int("blocks", blocks)
        w = self.width
        self.down = nn.ModuleList([_conv(3, w, 9), _conv(w, 2 * w, 3, 2), _conv(2 * w, 4 * w, 3, 2)])
        self.blocks = nn.Sequential(*(_Residual(4 * w) for _ in range(self.n_blocks)))
        self.up = nn.ModuleList([_Up(4 * w, 2 * w), _Up(2 * w, w)])
        self.out = _conv(w, 3, 9, norm=False, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        sizes = []
        for layer in self.down:
            sizes.append(x.shape[-2:])
            x = layer(x)
        x = self.blocks(x)
        x = self.up[0](x, sizes[2])  # back to each size on the way down: any H, W works
        x = self.up[1](x, sizes[1])
        return self.out(x).sigmoid()
