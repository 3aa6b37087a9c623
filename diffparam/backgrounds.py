"""Backgrounds for RGBA images: the random ones drawn each step, compositing, and a checkerboard.

`render` composites any 4-channel batch over a fresh random background every step (its `Composite`
stage, `diffparam.pipeline`), before the transforms, so the model only ever sees RGB; objectives
still see the RGBA image as `INPUT`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import torch
from torch import Tensor

from diffparam.checks import choice, shape
from diffparam.constant import Constant
from diffparam.param.fourier import spectrum_scale

Background = Callable[[tuple[int, int, int, int], torch.device, "torch.Generator | None"], Tensor]
"""A function (shape (B,3,H,W), device, generator) → a batch of RGB backgrounds in [0, 1]."""


def uniform_noise(shape: tuple[int, int, int, int], device: torch.device,
                  generator: torch.Generator | None = None) -> Tensor:
    """Independent uniform [0, 1] noise per pixel and channel."""
    return torch.rand(shape, device=device, generator=generator)


@lru_cache(maxsize=16)
def _noise_scale(height: int, width: int) -> Constant:
    # Cached per size and device: a CUDA graph capture may not copy from the host.
    return Constant(spectrum_scale(height, width))


def fourier_noise(shape: tuple[int, int, int, int], device: torch.device,
                  generator: torch.Generator | None = None) -> Tensor:
    """Random 1/f ('natural') noise in [0, 1]: smooth blobs of colour, unlike per-pixel noise."""
    b, c, h, w = shape
    spectrum = torch.randn((b, c, h, w // 2 + 1, 2), device=device, generator=generator)
    scale = _noise_scale(h, w).on(device, spectrum.dtype)
    raw = torch.fft.irfft2(torch.view_as_complex(spectrum) * scale, s=(h, w), norm="ortho")
    return torch.sigmoid(raw)


BACKGROUNDS: dict[str, Background] = {"noise": uniform_noise, "fourier": fourier_noise}
"""Random backgrounds by name: each step draws a new one per image."""


def background_from(background: str | Background | None) -> Background | None:
    """A background function from its name ("noise", "fourier"), a callable, or None (no compositing)."""
    if background is None or callable(background):
        return background
    return BACKGROUNDS[choice("background", background, BACKGROUNDS)]


def composite(rgba: Tensor, background: Tensor) -> Tensor:
    """Alpha-composite an RGBA batch (B,4,H,W) over an RGB background (B,3,H,W) → (B,3,H,W)."""
    shape("composite's RGBA batch", rgba, "B,C,H,W", C=4)
    alpha = rgba[:, 3:4]
    return rgba[:, :3] * alpha + background * (1.0 - alpha)


def checkerboard(height: int, width: int, square: int = 8, light: float = 0.85,
                 dark: float = 0.6) -> Tensor:
    """A grey checkerboard (1, 3, H, W), the usual way to show where an image is transparent."""
    ys = torch.arange(height) // square
    xs = torch.arange(width) // square
    odd = ((ys[:, None] + xs[None, :]) % 2).to(torch.float32)
    return (light + (dark - light) * odd).expand(1, 3, height, width).clone()


def over_checkerboard(rgba: Tensor, square: int = 8) -> Tensor:
    """An RGBA batch (B,4,H,W) composited over a checkerboard, for display: (B,3,H,W)."""
    shape("over_checkerboard's RGBA batch", rgba, "B,C,H,W", C=4)
    board = checkerboard(rgba.shape[2], rgba.shape[3], square).to(rgba.device, rgba.dtype)
    return composite(rgba, board.expand(rgba.shape[0], -1, -1, -1))
