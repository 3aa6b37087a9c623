"""`PixelImage`: every pixel is a free parameter (the simplest parameterization)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from diffparam.checks import non_negative_float, shape
from diffparam.param.base import Parameterization, generator_device
from diffparam.param.color import decorrelate_colors, from_valid_rgb


class PixelImage(Parameterization):
    """Raw pixel values initialised N(0, sd²), colours mixed if `decorrelate`, squashed by a sigmoid.

    Parameters are created on the generator's device (the default device without one).
    """

    def __init__(
        self,
        height: int,
        width: int | None = None,
        batch: int = 1,
        channels: int = 3,
        sd: float = 0.01,
        decorrelate: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(height, width, batch, channels)
        sd = non_negative_float("sd", sd)
        self.decorrelate = bool(decorrelate)
        noise = torch.randn(self.shape, generator=generator, device=generator_device(generator))
        self.pixels = nn.Parameter(noise * sd)

    def logits(self) -> Tensor:
        """The image before the sigmoid: the raw pixels, colours decorrelated if asked."""
        return decorrelate_colors(self.pixels) if self.decorrelate else self.pixels

    def forward(self) -> Tensor:
        """The image batch (B, C, H, W) in [0, 1]."""
        return torch.sigmoid(self.logits())

    @classmethod
    def from_image(cls, img: Tensor, decorrelate: bool = False) -> PixelImage:
        """A PixelImage whose forward() reproduces `img` (B, C, H, W) clamped to [1e-4, 1-1e-4].

        The result lives on the input's device with the input's dtype.
        """
        batch, channels, height, width = shape("image", img, "B,C,H,W").shape
        # A private generator keeps the (overwritten) initial draw off the global RNG state.
        param = cls(height, width, batch, channels, sd=0.0, decorrelate=decorrelate,
                    generator=torch.Generator()).to(img.device)
        with torch.no_grad():
            param.pixels.copy_(from_valid_rgb(img.detach(), decorrelate, eps=1e-4))
        return param
