"""Colour handling: ImageNet colour decorrelation and squashing raw values into valid RGB."""

from __future__ import annotations

import torch
from torch import Tensor

from diffparam.constant import Constant
from diffparam.errors import UserError

_SQRT_COLOR_CORRELATION = torch.tensor(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=torch.float64
)

COLOR_CORRELATION: Tensor = _SQRT_COLOR_CORRELATION / _SQRT_COLOR_CORRELATION.norm(dim=0).max()
"""Square root of ImageNet's RGB colour correlation, scaled so its largest column norm is 1."""

_COLOR_CORRELATION_INVERSE: Tensor = torch.linalg.inv(COLOR_CORRELATION)
_MATRICES = {False: Constant(COLOR_CORRELATION), True: Constant(_COLOR_CORRELATION_INVERSE)}

ACTIVATIONS = ("sigmoid", "clamp")
"""The accepted `activation` names of `to_valid_rgb`."""


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        choices = ", ".join(ACTIVATIONS)
        raise UserError(f"unknown activation {activation!r}; choose one of: {choices}")


def decorrelate_colors(x: Tensor, inverse: bool = False) -> Tensor:
    """Map decorrelated colour channels to RGB by `COLOR_CORRELATION` on dim -3 (the channel dim).

    Only 3-channel input is transformed; any other channel count is returned unchanged, since the
    matrix is defined for RGB alone. `inverse=True` applies the inverse (RGB -> decorrelated).
    """
    if x.dim() < 3 or x.shape[-3] != 3:
        return x
    return torch.einsum("ck,...khw->...chw", _MATRICES[inverse].on(x.device, x.dtype), x)


def to_valid_rgb(x: Tensor, decorrelate: bool = True, activation: str = "sigmoid") -> Tensor:
    """Turn raw values into an image in [0, 1]: optionally decorrelate colours, then squash.

    `activation` is "sigmoid" (smooth, never saturates the gradient fully) or "clamp" (hard clip).
    """
    _check_activation(activation)
    if decorrelate:
        x = decorrelate_colors(x)
    if activation == "sigmoid":
        return torch.sigmoid(x)
    return x.clamp(0.0, 1.0)


def from_valid_rgb(
    image: Tensor, decorrelate: bool = True, activation: str = "sigmoid", eps: float = 1e-4
) -> Tensor:
    """Inverse of `to_valid_rgb`: raw values that produce `image` (clamped to [eps, 1 - eps])."""
    _check_activation(activation)
    image = image.clamp(eps, 1.0 - eps)
    raw = torch.logit(image) if activation == "sigmoid" else image
    return decorrelate_colors(raw, inverse=True) if decorrelate else raw
