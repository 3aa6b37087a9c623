"""`PixelImage`: every pixel is a free parameter (the simplest parameterization)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from diffparam.param.base import (
    Parameterization,
    generator_device,
    non_negative_float,
)
from diffparam.param.color import decorrelate_colors


class PixelImage(Parameterization):
    """Raw pixel values initialised N(0, sd²), squashed by `to_valid_rgb` into [0, 1].

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
