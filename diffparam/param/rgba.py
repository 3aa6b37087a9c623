"""`RGBAImage`: an image batch with an opacity channel, made of a colour and an alpha parameterization.

`render` composites any 4-channel batch over a fresh random background every step (see
`diffparam.backgrounds`); the registry builds RGBA parameterizations of each kind
(`make_param(kind, ..., alpha=True)`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from diffparam import deprecation
from diffparam.checks import choice
from diffparam.errors import UserError
from diffparam.param.base import Parameterization
from diffparam.param.fourier import FourierImage
from diffparam.param.pixel import PixelImage


class RGBAImage(Parameterization):
    """Colour (3 channels) and opacity (1 channel) as two parameterizations of the same size and batch.

    forward() returns (B, 4, H, W) in [0, 1]. `make_param("fourier", ..., alpha=True)` builds one
    from two `FourierImage`s (colour decorrelated, alpha starting near 0.5 opacity).
    """

    def __init__(self, color: Parameterization | int, alpha: Parameterization | int | None = None,
                 batch: int = 1, kind: str = "fourier", generator: torch.Generator | None = None) -> None:
        if not isinstance(color, Parameterization):  # the old signature: (height, width, batch, kind)
            deprecation.warn("RGBAImage(height, width, batch, kind)",
                             "make_param(kind, height, width, batch, alpha=True)")
            kind = choice("RGBA image kind", kind, ("fourier", "pixel"))
            make = {"fourier": FourierImage, "pixel": PixelImage}[kind]
            height, width = color, alpha
            color = make(height, width, batch=batch, channels=3, generator=generator)
            alpha = make(height, width, batch=batch, channels=1, generator=generator)
        if not isinstance(alpha, Parameterization):
            raise UserError(f"RGBAImage needs an alpha Parameterization, got {type(alpha).__name__}")
        if color.channels != 3 or alpha.channels != 1:
            raise UserError(f"RGBAImage needs 3 colour channels and 1 alpha channel, got "
                            f"{color.channels} and {alpha.channels}")
        if (color.batch, color.height, color.width) != (alpha.batch, alpha.height, alpha.width):
            raise UserError(f"colour {color.shape} and alpha {alpha.shape} differ in batch or size")
        super().__init__(color.height, color.width, color.batch, 4)
        self.color = color
        self.alpha = alpha
        self.default_lr = color.default_lr
        self.graph_safe = color.graph_safe and alpha.graph_safe

    def forward(self) -> Tensor:
        """The RGBA batch (B, 4, H, W) in [0, 1]."""
        return torch.cat([self.color(), self.alpha()], dim=1)


__getattr__ = deprecation.module_getattr(__name__, {
    **{name: f"diffparam.backgrounds:{name}" for name in (
        "BACKGROUNDS", "Background", "background_from", "checkerboard", "composite", "fourier_noise",
        "over_checkerboard", "uniform_noise")},
    "make_rgba": "diffparam.param.kinds:make_rgba",
    "RGBA_KINDS": "diffparam.param.kinds:_RGBA_KINDS",
})
