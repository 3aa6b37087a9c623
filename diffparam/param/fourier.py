"""`FourierImage`: an image parameterized by its (scaled) Fourier spectrum, as in Lucid.

Normalisation: the spectrum is multiplied by 1 / max(f, 1/max(H, W))^spectrum_decay (f = frequency in
cycles per pixel) and then divided by one constant, chosen so that a spectrum whose real and
imaginary parts are i.i.d. N(0, s²) gives pixels of standard deviation exactly GAIN·s before
colour decorrelation and the sigmoid, whatever the size and spectrum_decay (inverse FFT uses
norm="ortho").
GAIN = 2 matches Lucid's gain (sqrt(H*W) scaling then / 4: 1.9 at 128², 2.0 at 224²), so
Lucid's learning rates carry over; measured, lr 0.05 at gain 1 reached ~10% lower activations.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from diffparam import deprecation
from diffparam.checks import non_negative_float, positive_float, shape
from diffparam.param.base import Parameterization, generator_device
from diffparam.param.color import decorrelate_colors, from_valid_rgb

GAIN = 2.0
"""Pixel std per unit of spectrum std (see the module docstring)."""


def check_spectrum_decay(spectrum_decay: object) -> float:
    """The exponent of the spectrum's 1/f prior, checked (a finite number > 0)."""
    return positive_float("spectrum_decay", spectrum_decay, hint="(1.0 is usual)")


def spectrum_scale(height: int, width: int, spectrum_decay: float = 1.0) -> Tensor:
    """Per-frequency gain (H, W//2+1) of the rfft2 spectrum: 1/max(f, 1/max(H,W))^spectrum_decay,
    normalised.

    Normalised so an i.i.d. N(0, s²) spectrum yields pixels of std GAIN·s (module docstring).
    """
    return rfft_gain((height, width), check_spectrum_decay(spectrum_decay))


def rfft_gain(shape: tuple[int, ...], exponent: float) -> Tensor:
    """Gain of an N-d rfftn spectrum of a signal of `shape`: 1/max(f, 1/max(shape))^exponent,
    normalised so an i.i.d. N(0, s²) spectrum yields samples of std GAIN·s."""
    axes = [torch.fft.fftfreq(n, dtype=torch.float64) for n in shape[:-1]]
    axes.append(torch.fft.rfftfreq(shape[-1], dtype=torch.float64))
    grids = torch.meshgrid(*axes, indexing="ij")
    freq = torch.sqrt(sum(g * g for g in grids))
    scale = freq.clamp(min=1.0 / max(shape)).pow(-exponent)
    # irfftn counts each last-axis column twice (its mirror image) except column 0 and, for even
    # lengths, the Nyquist column; doubling a value quadruples its variance contribution.
    multiplicity = torch.full_like(scale, 4.0)
    multiplicity[..., 0] = 1.0
    if shape[-1] % 2 == 0:
        multiplicity[..., -1] = 1.0
    sample_std = torch.sqrt((multiplicity * scale * scale).sum() / math.prod(shape))
    return (GAIN * scale / sample_std).to(torch.get_default_dtype())


class FourierImage(Parameterization):
    """An image batch whose parameter is a random complex spectrum with a 1/f^spectrum_decay prior.

    `spectrum` is stored as a real tensor (B, C, H, W//2+1, 2) (real, imaginary), init N(0, sd²);
    forward() scales it, inverts the real FFT to (B, C, H, W), mixes the colours (`decorrelate`) and
    applies a sigmoid.
    """

    @deprecation.renames(decay="spectrum_decay")
    def __init__(
        self,
        height: int,
        width: int | None = None,
        batch: int = 1,
        channels: int = 3,
        sd: float = 0.01,
        spectrum_decay: float = 1.0,
        decorrelate: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(height, width, batch, channels)
        sd = non_negative_float("sd", sd)
        self.spectrum_decay = check_spectrum_decay(spectrum_decay)
        self.decorrelate = bool(decorrelate)
        device = generator_device(generator)
        shape = (self.batch, self.channels, self.height, self.width // 2 + 1, 2)
        noise = torch.randn(shape, generator=generator, device=device)
        self.spectrum = nn.Parameter(noise * sd)
        scale = spectrum_scale(self.height, self.width, self.spectrum_decay).to(device)
        self.register_buffer("scale", scale, persistent=False)

    @property
    def decay(self) -> float:
        """Deprecated name of `spectrum_decay`."""
        deprecation.warn("FourierImage.decay", "FourierImage.spectrum_decay")
        return self.spectrum_decay

    def logits(self) -> Tensor:
        """The image before the sigmoid: the inverse FFT of the scaled spectrum, colours decorrelated."""
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        raw = torch.fft.irfft2(spectrum, s=(self.height, self.width), norm="ortho")
        return decorrelate_colors(raw) if self.decorrelate else raw

    def forward(self) -> Tensor:
        """The image batch (B, C, H, W) in [0, 1]."""
        return torch.sigmoid(self.logits())

    @classmethod
    def from_image(cls, img: Tensor, spectrum_decay: float = 1.0, decorrelate: bool = True) -> FourierImage:
        """A FourierImage whose forward() reproduces `img` (B, C, H, W) clamped to [1e-4, 1-1e-4].

        The result lives on the input's device with the default float dtype.
        """
        shape("image", img, "B,C,H,W")
        batch, channels, height, width = img.shape
        # A private generator keeps the (overwritten) initial draw off the global RNG state.
        param = cls(
            height,
            width,
            batch,
            channels,
            sd=0.0,
            spectrum_decay=spectrum_decay,
            decorrelate=decorrelate,
            generator=torch.Generator(),
        )
        param = param.to(img.device)
        raw = from_valid_rgb(img.detach().to(torch.float64), decorrelate, eps=1e-4)
        spectrum = torch.fft.rfft2(raw, norm="ortho") / param.scale.to(torch.float64)
        with torch.no_grad():
            param.spectrum.copy_(torch.view_as_real(spectrum))
        return param
