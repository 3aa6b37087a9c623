"""Random, differentiable image-batch transforms for transformation robustness (Lucid-style).

A transform is a callable `t(x, generator=None) -> Tensor` on a (B, C, H, W) batch; each image of
the batch gets its own random draw. Random numbers come from `generator` (which must then live on
x's device), so a seeded generator reproduces the result exactly. Scale and rotation map pixel
coordinates (not [-1, 1] grid coordinates), so non-square images are not sheared, and consecutive
scale/rotate steps inside `compose` are fused into one resampling.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from diffparam.checks import choice, non_negative_int, range_pair, real, shape
from diffparam.constant import Constant
from diffparam.errors import UserError

PAD_MODES = ("constant", "reflect")
"""The accepted `mode` names of `pad`."""

PADDING_MODES = ("reflection", "border", "zeros")
"""How scale/rotate fill pixels that come from outside the image (`F.grid_sample` names)."""


class Transform(ABC):
    """Base of all transforms: checks the input is (B, C, H, W), then applies `_apply`."""

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Transform the batch `x`, drawing any random numbers from `generator`."""
        shape("a transform's input", x, "B,C,H,W")
        if generator is not None and generator.device.type != x.device.type:
            raise UserError(
                f"the generator is on {generator.device} but the images are on {x.device}; "
                "create the generator on the images' device"
            )
        return self._apply(x, generator)

    @abstractmethod
    def _apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Transform a checked (B, C, H, W) batch."""


class _Pad(Transform):
    def __init__(self, width: int, mode: str, value: float) -> None:
        self.width = non_negative_int("pad width", width)
        self.mode = choice("pad mode", mode, PAD_MODES)
        self.value = real("pad value", value)

    def _apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        w = self.width
        if self.mode == "reflect":
            if w >= min(x.shape[-2:]):
                raise UserError(
                    f"reflect padding of {w} needs images larger than {w} pixels a side, "
                    f"got {x.shape[-2]}x{x.shape[-1]}; use mode='constant' or a smaller width"
                )
            return F.pad(x, (w, w, w, w), mode="reflect")
        return F.pad(x, (w, w, w, w), mode="constant", value=self.value)

    def __repr__(self) -> str:
        return f"pad({self.width}, mode={self.mode!r}, value={self.value:g})"


def _take(x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Image i's rows rows[i] and columns cols[i] ((B, H') and (B, W') indices): per-image crops and
    shifts by gathers, without a loop over the batch."""
    b, c, _, w = x.shape
    x = x.gather(2, rows[:, None, :, None].expand(b, c, rows.shape[1], w))
    return x.gather(3, cols[:, None, None, :].expand(b, c, rows.shape[1], cols.shape[1]))


class _Jitter(Transform):
    def __init__(self, d: int) -> None:
        self.d = non_negative_int("jitter d", d)

    def _apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        b, _, h, w = x.shape
        d = self.d
        if d >= h or d >= w:
            raise UserError(f"jitter({d}) needs images larger than {d} pixels a side, got {h}x{w}")
        offsets = torch.randint(0, d + 1, (2, b), generator=generator, device=x.device)
        rows = offsets[0, :, None] + torch.arange(h - d, device=x.device)
        cols = offsets[1, :, None] + torch.arange(w - d, device=x.device)
        return _take(x, rows, cols)

    def __repr__(self) -> str:
        return f"jitter({self.d})"


class _ColorShift(Transform):
    def __init__(self, shift: float, contrast: float) -> None:
        self.shift = real("color shift", shift)
        self.contrast = real("color contrast", contrast)

    def _apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        u = torch.rand((2, x.shape[0], x.shape[1], 1, 1), generator=generator, device=x.device) * 2 - 1
        offset, gain = self.shift * u[0].to(x.dtype), torch.exp(self.contrast * u[1]).to(x.dtype)
        return (x - 0.5 - offset) / gain + 0.5

    def __repr__(self) -> str:
        return f"color_shift({self.shift:g}, {self.contrast:g})"


class _Roll(Transform):
    def __init__(self, d: int) -> None:
        self.d = non_negative_int("roll d", d)

    def _apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        b, _, h, w = x.shape
        shifts = torch.randint(-self.d, self.d + 1, (2, b), generator=generator, device=x.device)
        rows = (torch.arange(h, device=x.device) - shifts[0, :, None]) % h
        cols = (torch.arange(w, device=x.device) - shifts[1, :, None]) % w
        return _take(x, rows, cols)

    def __repr__(self) -> str:
        return f"roll({self.d})"


class _Affine(Transform):
    """A per-image linear map about the image centre, applied by `F.grid_sample`."""

    def __init__(self, padding_mode: str) -> None:
        self.padding_mode = choice("padding_mode", padding_mode, PADDING_MODES)

    @abstractmethod
    def _matrices(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """(B, 2, 2) maps from output to input pixel coordinates (x, y) about the centre."""

    def _apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return _warp(x, self._matrices(x, generator), self.padding_mode)


def _warp(x: Tensor, matrices: Tensor, padding_mode: str) -> Tensor:
    """Resample x with per-image pixel-space maps (B, 2, 2), keeping its size."""
    b, _, h, w = x.shape
    theta = x.new_zeros((b, 2, 3))
    theta[:, 0, 0] = matrices[:, 0, 0]
    theta[:, 0, 1] = matrices[:, 0, 1] * (h / w)
    theta[:, 1, 0] = matrices[:, 1, 0] * (w / h)
    theta[:, 1, 1] = matrices[:, 1, 1]
    grid = F.affine_grid(theta, [b, x.shape[1], h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


class _RandomScale(_Affine):
    def __init__(self, scales: tuple[float, float] | Sequence[float], padding_mode: str) -> None:
        super().__init__(padding_mode)
        if isinstance(scales, tuple):
            if len(scales) != 2:
                raise UserError(
                    f"a scale range must be a (low, high) tuple, got {scales!r}; "
                    "pass a list to choose among values"
                )
            low, high = range_pair("scale", scales, 1e-6, 1e6)
            self.range: tuple[float, float] | None = (low, high)
            self.values: tuple[float, ...] = ()
        elif isinstance(scales, Sequence) and not isinstance(scales, str) and len(scales) > 0:
            self.range = None
            self.values = tuple(real("scale", s, 0.0, low_open=True) for s in scales)
            self.values_tensor = Constant(torch.tensor(self.values))
        else:
            raise UserError(
                f"scales must be a (low, high) tuple or a non-empty list of values, got {scales!r}"
            )

    def _matrices(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        b = x.shape[0]
        if self.range is not None:
            low, high = self.range
            u = torch.rand(b, generator=generator, device=x.device, dtype=x.dtype)
            scale = low + (high - low) * u
        else:
            pick = torch.randint(len(self.values), (b,), generator=generator, device=x.device)
            scale = self.values_tensor.on(x.device, x.dtype)[pick]
        eye = torch.eye(2, device=x.device, dtype=x.dtype)
        return eye / scale[:, None, None]

    def __repr__(self) -> str:
        scales = self.range if self.range is not None else list(self.values)
        return f"random_scale({scales!r}, padding_mode={self.padding_mode!r})"


class _RandomRotate(_Affine):
    def __init__(self, degrees: float, padding_mode: str) -> None:
        super().__init__(padding_mode)
        self.degrees = real("degrees", degrees, 0.0)

    def _matrices(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        b = x.shape[0]
        u = torch.rand(b, generator=generator, device=x.device, dtype=x.dtype)
        angle = (2 * u - 1) * math.radians(self.degrees)
        cos, sin = torch.cos(angle), torch.sin(angle)
        return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)

    def __repr__(self) -> str:
        return f"random_rotate({self.degrees:g}, padding_mode={self.padding_mode!r})"


class _Compose(Transform):
    def __init__(self, transforms: Sequence[Transform]) -> None:
        flat: list[Transform] = []
        for t in transforms:
            if isinstance(t, _Compose):
                flat.extend(t.transforms)
            elif isinstance(t, Transform):
                flat.append(t)
            else:
                raise UserError(f"compose takes transforms from diffparam.transforms, got {t!r}")
        self.transforms = tuple(flat)

    def _apply(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        # Runs of scale/rotate steps with the same padding mode become one resampling; random
        # numbers are drawn in the same order as when the steps run one by one.
        pending: Tensor | None = None
        mode = ""
        for t in self.transforms:
            if pending is not None and not (isinstance(t, _Affine) and t.padding_mode == mode):
                x = _warp(x, pending, mode)
                pending = None
            if isinstance(t, _Affine):
                m = t._matrices(x, generator)
                pending = m if pending is None else pending @ m
                mode = t.padding_mode
            else:
                x = t._apply(x, generator)
        return x if pending is None else _warp(x, pending, mode)

    def __repr__(self) -> str:
        return f"compose({', '.join(repr(t) for t in self.transforms)})"


def pad(width: int, mode: str = "constant", value: float = 0.5) -> Transform:
    """Pad each side by `width` pixels ("constant" with `value`, or "reflect"): H, W grow by 2w."""
    return _Pad(width, mode, value)


def jitter(d: int) -> Transform:
    """Random crop to (H-d)x(W-d), each image with its own integer offsets in [0, d]."""
    return _Jitter(d)


def random_scale(
    scales: tuple[float, float] | Sequence[float], padding_mode: str = "reflection"
) -> Transform:
    """Zoom each image about its centre, keeping its size: by a factor uniform in a (low, high)
    tuple, or picked from a list of factors (>1 enlarges the content)."""
    return _RandomScale(scales, padding_mode)


def random_rotate(degrees: float, padding_mode: str = "reflection") -> Transform:
    """Rotate each image about its centre by an angle uniform in [-degrees, degrees]."""
    return _RandomRotate(degrees, padding_mode)


def color_shift(shift: float = 0.23, contrast: float = 1.0) -> Transform:
    """Shift and scale each channel of each image about grey: x → (x − 0.5 − s)/g + 0.5, s uniform in
    ±`shift`, log g uniform in ±`contrast` (Ghiasi et al. 2023's colour jitter for ViTs, in [0, 1]
    units: their shift of ±1 in ImageNet-normalised units is ±0.23 here)."""
    return _ColorShift(shift, contrast)


def roll(d: int) -> Transform:
    """Shift each image circularly by up to `d` pixels each way (what wraps out comes back in on the
    other side), keeping its size: Ghiasi et al.'s jitter."""
    return _Roll(d)


def compose(*transforms: Transform) -> Transform:
    """Apply `transforms` in order (fusing consecutive scale/rotate steps into one resampling)."""
    return _Compose(transforms)


def standard() -> Transform:
    """Lucid's default stack: pad 12 (value 0.5), jitter 8, scale 0.9-1.1, rotate ±10°, jitter 4.

    A (B, C, H, W) batch comes out (B, C, H+12, W+12).
    """
    return compose(
        pad(12, mode="constant", value=0.5),
        jitter(8),
        random_scale((0.9, 1.1)),
        random_rotate(10.0),
        jitter(4),
    )


def ghiasi() -> Transform:
    """Ghiasi et al. (ICLR 2023)'s augmentations for ViTs: colour shift ±0.23 with contrast e^±1 per
    channel, a further channel offset of ±0.06, circular jitter of 32 px; the size is kept. Measured
    against `standard()` on random-weight ViTs in BENCHMARKS.md (neither wins on every unit)."""
    return compose(color_shift(0.23, 1.0), color_shift(0.06, 0.0), roll(32))

