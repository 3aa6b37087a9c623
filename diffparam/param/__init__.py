"""Image parameterizations: modules whose forward() is an image batch (B, C, H, W) in [0, 1]."""

from __future__ import annotations

import torch

from diffparam.errors import UserError
from diffparam.param.base import Parameterization
from diffparam.param.color import decorrelate_colors, to_valid_rgb
from diffparam.param.cppn import CPPN
from diffparam.param.fourier import FourierImage
from diffparam.param.pixel import PixelImage
from diffparam.param.rgba import RGBAImage, composite
from diffparam.param.shared import SharedImage
from diffparam.param.texture import TextureImage

__all__ = [
    "CPPN",
    "FourierImage",
    "Parameterization",
    "PixelImage",
    "RGBAImage",
    "SharedImage",
    "TextureImage",
    "composite",
    "decorrelate_colors",
    "make_param",
    "to_valid_rgb",
]

_KINDS: dict[str, type[Parameterization]] = {
    "cppn": CPPN,
    "fourier": FourierImage,
    "pixel": PixelImage,
}


def make_param(
    kind: str,
    height: int,
    width: int | None = None,
    batch: int = 1,
    generator: torch.Generator | None = None,
) -> Parameterization:
    """Build a parameterization by name ("fourier", "pixel" or "cppn") with its default settings."""
    factory = _KINDS.get(kind)
    if factory is None:
        raise UserError(
            f"unknown parameterization kind {kind!r}; choose one of: {', '.join(sorted(_KINDS))}"
        )
    return factory(height, width, batch=batch, generator=generator)
