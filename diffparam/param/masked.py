"""`MaskedImage`: a fixed image whose masked pixels come from another parameterization (hole filling)."""

from __future__ import annotations

import torch
from torch import Tensor

from diffparam.checks import shape
from diffparam.errors import UserError
from diffparam.param.base import Parameterization


class MaskedImage(Parameterization):
    """`image` (1,C,H,W) in [0,1] everywhere but under `mask` (H,W), where the pixels are `inner`'s, a
    parameterization of the same shape (a `FourierImage.from_image` of a first guess, say)."""

    def __init__(self, image: Tensor, mask: Tensor, inner: Parameterization) -> None:
        _, channels, height, width = shape("image", image, "1,C,H,W").shape
        shape("mask", mask, "H,W", H=height, W=width)
        if not bool(mask.any()):
            raise UserError("the mask of a MaskedImage must hold at least one free pixel")
        if inner.shape != (1, channels, height, width):
            raise UserError(f"the inner parameterization of a MaskedImage must make "
                            f"{(1, channels, height, width)} images, got {inner.shape}")
        super().__init__(height, width, 1, channels)
        self.inner = inner
        self.default_lr = inner.default_lr
        self.graph_safe = inner.graph_safe
        self.register_buffer("fixed", image.detach().float().clone())
        self.register_buffer("free", mask.detach().to(torch.float32)[None, None])

    def forward(self) -> Tensor:
        """The image (1,C,H,W): the fixed pixels, and the free ones from the inner parameterization."""
        return self.fixed + self.free * (self.inner() - self.fixed)
