"""`MacoImage`: MACO (Fel et al., NeurIPS 2023): only the Fourier phase is optimised; the magnitude
is fixed to the average spectrum of natural photos, so every image keeps a natural photo's power at
every frequency and the optimisation can only move its structure.

The magnitude is measured here, never downloaded: on crops of the photos scikit-image ships
(`diffparam.io.REFERENCE_PHOTOS`) or of a folder of the user's own (`spectrum_from`), in the same
decorrelated colour space the image is built in.
"""

from __future__ import annotations

import os
import warnings
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor, nn

from diffparam.checks import shape
from diffparam.errors import UserError
from diffparam.io import FEWEST_PHOTOS, photo_files, reference_photos, resize
from diffparam.param.base import Parameterization, generator_device
from diffparam.param.color import decorrelate_colors

EPS = 1e-5
"""Keeps the per-image standardisations finite for a constant phase or image."""


def _corner_crops(img: Tensor, height: int, width: int) -> list[Tensor]:
    """The centre and four corner crops of height x width from an image at least that large."""
    h, w = img.shape[-2:]
    spots = {((h - height) // 2, (w - width) // 2), (0, 0), (0, w - width), (h - height, 0),
             (h - height, w - width)}
    return [img[..., top:top + height, left:left + width] for top, left in sorted(spots)]


@lru_cache(maxsize=8)
def _spectrum(height: int, width: int, folder: str | None, decorrelate: bool) -> Tensor:
    with torch.device("cpu"):  # also when a parameterization is being built on the meta device
        total = torch.zeros(3, height, width // 2 + 1, dtype=torch.float64)
        count = 0
        for photo in reference_photos(folder):
            for zoom in (1.0, 2.0):  # the photo fitted to the crop, and seen twice as close
                h, w = photo.shape[-2:]
                scale = zoom * max(height / h, width / w)
                fitted = resize(photo, (max(height, round(h * scale)), max(width, round(w * scale))))
                for crop in _corner_crops(fitted, height, width):
                    x = crop[0].to(torch.float64) - 0.5
                    x = decorrelate_colors(x, inverse=True) if decorrelate else x
                    total += torch.fft.rfft2(x, norm="ortho").abs()
                    count += 1
        return (total / count).to(torch.get_default_dtype())


def natural_spectrum(height: int, width: int, spectrum_from: str | os.PathLike | None = None,
                     decorrelate: bool = True) -> Tensor:
    """The average Fourier magnitude (3, H, W//2+1) of natural photos cropped to height x width:
    scikit-image's, or those in the folder `spectrum_from`; in decorrelated colour if asked.
    Computed once per size and source."""
    folder = None if spectrum_from is None else str(Path(spectrum_from).resolve())
    if folder is not None and len(found := photo_files(folder)) < FEWEST_PHOTOS:
        warnings.warn(f"only {len(found)} photos in {spectrum_from}: the spectrum measured on them is "
                      f"noisy; give {FEWEST_PHOTOS} or more varied photos", RuntimeWarning, stacklevel=2)
    return _spectrum(int(height), int(width), folder, bool(decorrelate)).clone()


class MacoImage(Parameterization):
    """An image batch whose only parameter is its Fourier phase (B, C, H, W//2+1); the magnitude is
    natural photos' (`natural_spectrum`). forward() standardises the phase, inverts the real FFT,
    standardises the image, mixes the colours (`decorrelate`) and applies a sigmoid, as MACO does.
    """

    default_lr = 0.5
    """Phase is standardised each step, so a larger step than the Fourier image's: 0.5 reached the most
    activation of 0.05, 0.2 and 0.5 (BENCHMARKS.md, issue 13)."""

    def __init__(
        self,
        height: int,
        width: int | None = None,
        batch: int = 1,
        channels: int = 3,
        decorrelate: bool = True,
        spectrum_from: str | os.PathLike | None = None,
        magnitude: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(height, width, batch, channels)
        self.decorrelate = bool(decorrelate) and self.channels == 3
        half = self.width // 2 + 1
        if magnitude is None:
            magnitude = natural_spectrum(self.height, self.width, spectrum_from, self.decorrelate)
        elif spectrum_from is not None:
            raise UserError("give `magnitude` or `spectrum_from`, not both")
        else:
            shape("magnitude", magnitude, f"C,{self.height},{half}")
            if magnitude.shape[0] not in (1, 3, self.channels):
                raise UserError(f"`magnitude` has {magnitude.shape[0]} channels: give 1, 3 or "
                                f"{self.channels}")
        if magnitude.shape[0] != self.channels:  # an opacity or grey channel: the mean magnitude
            magnitude = magnitude.mean(0, keepdim=True).expand(self.channels, -1, -1)
        device = generator_device(generator)
        self.register_buffer("magnitude", magnitude.to(device=device, dtype=torch.get_default_dtype()),
                             persistent=False)
        phase = torch.randn((self.batch, self.channels, self.height, half), generator=generator,
                            device=device)
        self.phase = nn.Parameter(phase)  # its scale does not matter: forward() standardises it

    def logits(self) -> Tensor:
        """The image before the sigmoid: standardised, colours decorrelated."""
        dims = (1, 2, 3)
        phase = self.phase - self.phase.mean(dims, keepdim=True)
        phase = phase / (phase.std(dims, keepdim=True) + EPS)
        spectrum = torch.complex(self.magnitude * torch.cos(phase), self.magnitude * torch.sin(phase))
        raw = torch.fft.irfft2(spectrum, s=(self.height, self.width), norm="ortho")
        raw = raw - raw.mean(dims, keepdim=True)
        raw = raw / (raw.std(dims, keepdim=True) + EPS)
        return decorrelate_colors(raw) if self.decorrelate else raw

    def forward(self) -> Tensor:
        """The image batch (B, C, H, W) in [0, 1]."""
        return torch.sigmoid(self.logits())
