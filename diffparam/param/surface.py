"""`SolidField`: colour as a function of 3D position, a (C,D,D,D) volume parameterized by its 3D
Fourier spectrum like `FourierImage` is by its 2D one (1/f prior, decorrelated colour).

A mesh's texture read from such a field at each texel's 3D point (`uvmap.position_map`) is
continuous on the surface by construction: the two sides of a UV seam show the same point, so they
get the same colour, whatever the optimiser does.

Spectrum: a 3D field whose amplitude falls as 1/f^a looks, on a plane (or any smooth surface) cut
through it, like a 2D image whose amplitude falls as 1/f^(a−1/2) (the slice integrates the power
along the missing axis). `spectrum_decay` is that 2D exponent, so it means what it means for a
`FourierImage`; the volume uses a = spectrum_decay + 1/2. Normalised as `fourier.spectrum_scale`: an i.i.d.
N(0, s²) spectrum gives voxels of std GAIN·s.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffparam import deprecation
from diffparam.checks import int_in, non_negative_float, positive_int, shape
from diffparam.errors import UserError
from diffparam.param.base import generator_device
from diffparam.param.color import decorrelate_colors
from diffparam.param.fourier import check_spectrum_decay, rfft_gain

MAX_VOLUME = 512


def volume_scale(size: int, spectrum_decay: float = 1.0) -> Tensor:
    """Per-frequency gain (D, D, D//2+1) of a 3D rfftn spectrum: 1/max(f, 1/D)^(spectrum_decay + 1/2),
    normalised so an i.i.d. N(0, s²) spectrum yields voxels of std GAIN·s."""
    return rfft_gain((size,) * 3, check_spectrum_decay(spectrum_decay) + 0.5)


class SolidField(nn.Module):
    """A colour field on the cube [-1,1]³: `size`³ voxels, read with trilinear interpolation.

    `spectrum` (C, D, D, D//2+1, 2) holds real and imaginary parts, init N(0, sd²). `logits(points)`
    gives the values before the sigmoid (colours decorrelated) at grid points in [-1,1]³; their
    sigmoid is the colour (`TextureImage` adds a fixed base first when it starts from a texture).
    """

    @deprecation.renames(decay="spectrum_decay")
    def __init__(self, size: int = 64, channels: int = 3, sd: float = 0.01, spectrum_decay: float = 1.0,
                 decorrelate: bool = True, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.size = int_in("volume_size", size, 4, MAX_VOLUME, "voxels")
        self.channels = positive_int("channels", channels)
        self.spectrum_decay = check_spectrum_decay(spectrum_decay)
        self.decorrelate = bool(decorrelate)
        d = self.size
        noise = torch.randn((self.channels, d, d, d // 2 + 1, 2), generator=generator,
                            device=generator_device(generator))
        self.spectrum = nn.Parameter(noise * non_negative_float("sd", sd))
        self.register_buffer("scale", volume_scale(d, self.spectrum_decay).to(noise.device), persistent=False)

    @property
    def decay(self) -> float:
        """Deprecated name of `spectrum_decay`."""
        deprecation.warn("SolidField.decay", "SolidField.spectrum_decay")
        return self.spectrum_decay

    def volume(self) -> Tensor:
        """The raw field (1, C, D, D, D): inverse 3D FFT of the scaled spectrum (colours not mixed)."""
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        return torch.fft.irfftn(spectrum, s=(self.size,) * 3, norm="ortho")[None]

    def logits(self, points: Tensor) -> Tensor:
        """Values (1, C, H, W) at grid points (H, W, 3) in [-1,1]³ (x, y, z order of `grid_sample`):
        trilinear, colours decorrelated; outside the cube the border voxels repeat."""
        shape("field points", points, "H,W,3")
        vol = self.volume()
        raw = F.grid_sample(vol, points[None, None].to(vol.dtype), mode="bilinear", padding_mode="border",
                            align_corners=False)[:, :, 0]
        return decorrelate_colors(raw) if self.decorrelate else raw

    def extra_repr(self) -> str:
        return f"channels={self.channels}, size={self.size}, spectrum_decay={self.spectrum_decay:g}"


def grid_points(positions: Tensor, size: int) -> Tensor:
    """Positions (..., 3) mapped into a `size`³ field's grid: the bounding box centred, its longest
    side spanning the cube less one voxel at each end (so trilinear reads stay inside)."""
    flat = positions.reshape(-1, 3)
    lo, hi = flat.min(0).values, flat.max(0).values
    extent = float((hi - lo).max())
    if not extent > 0:
        raise UserError("the surface is flat to a point: its texels all show one position")
    return (positions - (lo + hi) / 2) * (2 * (1 - 1 / size) / extent)
