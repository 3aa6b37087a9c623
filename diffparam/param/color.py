"""Colour handling: ImageNet colour decorrelation, and the inverse map from an image to raw values."""

from __future__ import annotations

import torch
from torch import Tensor

from diffparam import deprecation
from diffparam.checks import choice
from diffparam.constant import Constant

_SQRT_COLOR_CORRELATION = torch.tensor(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=torch.float64
)

COLOR_CORRELATION: Tensor = _SQRT_COLOR_CORRELATION / _SQRT_COLOR_CORRELATION.norm(dim=0).max()
"""Square root of ImageNet's RGB colour correlation, scaled so its largest column norm is 1."""

_COLOR_CORRELATION_INVERSE: Tensor = torch.linalg.inv(COLOR_CORRELATION)
_MATRICES = {False: Constant(COLOR_CORRELATION), True: Constant(_COLOR_CORRELATION_INVERSE)}

ACTIVATIONS = ("sigmoid", "clamp")
"""The accepted `activation` names of `from_valid_rgb`: how raw values were squashed into [0, 1]."""


def decorrelate_colors(x: Tensor, inverse: bool = False) -> Tensor:
    """Map decorrelated colour channels to RGB by `COLOR_CORRELATION` on dim -3 (the channel dim).

    Only 3-channel input is transformed; any other channel count is returned unchanged, since the
    matrix is defined for RGB alone. `inverse=True` applies the inverse (RGB -> decorrelated).
    """
    if x.dim() < 3 or x.shape[-3] != 3:
        return x
    return torch.einsum("ck,...khw->...chw", _MATRICES[inverse].on(x.device, x.dtype), x)


def to_valid_rgb(x: Tensor, decorrelate: bool = True, activation: str = "sigmoid") -> Tensor:
    """Deprecated (no parameterization uses it): decorrelate colours, then squash into [0, 1]."""
    deprecation.warn("to_valid_rgb", "torch.sigmoid(decorrelate_colors(x))")
    choice("activation", activation, ACTIVATIONS)
    if decorrelate:
        x = decorrelate_colors(x)
    if activation == "sigmoid":
        return torch.sigmoid(x)
    return x.clamp(0.0, 1.0)


def from_valid_rgb(
    image: Tensor, decorrelate: bool = True, activation: str = "sigmoid", eps: float = 1e-4
) -> Tensor:
    """Raw values that give `image` (clamped to [eps, 1 - eps]) after decorrelation (if asked) and the
    `activation` ("sigmoid" as every image parameterization squashes, or "clamp")."""
    choice("activation", activation, ACTIVATIONS)
    image = image.clamp(eps, 1.0 - eps)
    raw = torch.logit(image) if activation == "sigmoid" else image
    return decorrelate_colors(raw, inverse=True) if decorrelate else raw
