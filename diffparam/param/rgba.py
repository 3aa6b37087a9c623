"""Semi-transparent images: an RGBA parameterization and compositing over random backgrounds.

`render` composites any 4-channel batch over a fresh random background every step, before the
transforms, so the model only ever sees RGB; objectives still see the RGBA image as `INPUT`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import torch
from torch import Tensor

from diffparam.constant import Constant
from diffparam.errors import UserError
from diffparam.param.base import Parameterization
from diffparam.param.cppn import CPPN
from diffparam.param.fourier import FourierImage, spectrum_scale
from diffparam.param.pixel import PixelImage

Background = Callable[[tuple[int, int, int, int], torch.device, "torch.Generator | None"], Tensor]


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


def background_from(kind: str | Background | None) -> Background | None:
    """A background function from its name ("noise", "fourier"), a callable, or None (no compositing)."""
    if kind is None or callable(kind):
        return kind
    try:
        return BACKGROUNDS[kind]
    except KeyError:
        raise UserError(f"unknown background {kind!r}; choose one of: {', '.join(BACKGROUNDS)}") from None


def composite(rgba: Tensor, background: Tensor) -> Tensor:
    """Alpha-composite an RGBA batch (B,4,H,W) over an RGB background (B,3,H,W) → (B,3,H,W)."""
    if rgba.dim() != 4 or rgba.shape[1] != 4:
        raise UserError(f"composite needs an RGBA batch (B,4,H,W), got {tuple(rgba.shape)}")
    alpha = rgba[:, 3:4]
    return rgba[:, :3] * alpha + background * (1.0 - alpha)


class RGBAImage(Parameterization):
    """An image batch with an opacity channel: colour and alpha are separate image parameterizations.

    Colour is a 3-channel `FourierImage` (decorrelated) or `PixelImage`; alpha is a 1-channel one
    of the same kind, starting near 0.5 opacity. forward() returns (B, 4, H, W) in [0, 1].
    """

    def __init__(self, height: int, width: int | None = None, batch: int = 1, kind: str = "fourier",
                 generator: torch.Generator | None = None) -> None:
        super().__init__(height, width, batch, 4)
        makers = {"fourier": FourierImage, "pixel": PixelImage}
        if kind not in makers:
            raise UserError(f"unknown RGBA image kind {kind!r}; choose one of: {', '.join(makers)}")
        self.kind = kind
        make = makers[kind]
        self.color = make(self.height, self.width, batch=self.batch, channels=3, generator=generator)
        self.alpha = make(self.height, self.width, batch=self.batch, channels=1, generator=generator)

    def forward(self) -> Tensor:
        """The RGBA batch (B, 4, H, W) in [0, 1]."""
        return torch.cat([self.color(), self.alpha()], dim=1)


RGBA_KINDS = ("fourier", "pixel", "cppn")
"""The parameterization kinds that `make_rgba` builds with an opacity channel."""


def make_rgba(kind: str, height: int, width: int | None = None, batch: int = 1,
              generator: torch.Generator | None = None) -> Parameterization:
    """An RGBA parameterization by name: `RGBAImage` ("fourier", "pixel") or a 4-channel `CPPN`."""
    if kind == "cppn":
        return CPPN(height, width, batch=batch, channels=4, generator=generator)
    if kind not in RGBA_KINDS:
        raise UserError(f"unknown RGBA parameterization {kind!r}; choose one of: {', '.join(RGBA_KINDS)}")
    return RGBAImage(height, width, batch=batch, kind=kind, generator=generator)


def checkerboard(height: int, width: int, square: int = 8, light: float = 0.85,
                 dark: float = 0.6) -> Tensor:
    """A grey checkerboard (1, 3, H, W), the usual way to show where an image is transparent."""
    ys = torch.arange(height) // square
    xs = torch.arange(width) // square
    odd = ((ys[:, None] + xs[None, :]) % 2).to(torch.float32)
    return (light + (dark - light) * odd).expand(1, 3, height, width).clone()


def over_checkerboard(rgba: Tensor, square: int = 8) -> Tensor:
    """An RGBA batch (B,4,H,W) composited over a checkerboard, for display: (B,3,H,W)."""
    if rgba.dim() != 4 or rgba.shape[1] != 4:
        raise UserError(f"over_checkerboard needs an RGBA batch (B,4,H,W), got {tuple(rgba.shape)}")
    board = checkerboard(rgba.shape[2], rgba.shape[3], square).to(rgba.device, rgba.dtype)
    return composite(rgba, board.expand(rgba.shape[0], -1, -1, -1))
