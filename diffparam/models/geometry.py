"""What images a model takes: how many channels, and which sizes (any, a multiple of k pixels, or
exactly its native size), found once by trying sizes on the model itself.

A ViT asserts its 224 px; MaxViT needs its windows to tile every stage; DLA and HRNet add feature
maps whose sizes differ by one pixel at an odd size. `render` fits each transformed image to what
the model takes (`InputGeometry.fit`), so none of them needs a flag from the user.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

ODD_STEPS = (1, 5, 11, 23)
"""A model takes any size when it takes its native size plus each of these pixels (a patch embedding
that floors the size hides a window's constraint from one extra pixel, not from all of these)."""
WIDER = 64
"""Pixels added to the native width for the wider probe."""
MULTIPLES = (2, 4, 8, 14, 16, 28, 32, 56, 64)
"""Strides tried, in order, when a model refuses some of those sizes."""


@dataclass(frozen=True)
class InputGeometry:
    """A model's input: `channels`, its native `size` (height, width), and whether it takes only that
    size (`fixed`) or any size that is a `multiple` of so many pixels (1: any size)."""

    channels: int = 3
    size: tuple[int, int] = (224, 224)
    fixed: bool = False
    multiple: int = 1

    def fit(self, height: int, width: int) -> tuple[int, int]:
        """The size the model takes that is nearest to height x width."""
        if self.fixed:
            return self.size
        m = self.multiple
        return max(m, round(height / m) * m), max(m, round(width / m) * m)

    def resample(self, x: Tensor, height: int | None = None, width: int | None = None) -> Tensor:
        """Images `x` (B,C,H,W) resampled (bilinear) to the size the model takes nearest to height x
        width (default: their own); as they are when they have it already."""
        h, w = self.fit(x.shape[-2] if height is None else height, x.shape[-1] if width is None else width)
        if (h, w) == tuple(x.shape[-2:]):
            return x
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)

    def wider(self) -> tuple[int, int]:
        """A size the model takes that is wider than its native size (its own when fixed): how `Model`
        tells a layer's width dimension from its channels."""
        h, w = self.size
        return self.fit(h, w + WIDER)

    def describe(self) -> str:
        """In words, for `diffparam layers` and errors."""
        h, w = self.size
        colour = {1: "grey", 3: "RGB"}.get(self.channels, f"{self.channels}-channel")
        if self.fixed:
            return f"{colour} images of exactly {h}x{w} px"
        if self.multiple > 1:
            return f"{colour} images whose sides are multiples of {self.multiple} px (native {h}x{w})"
        return f"{colour} images of any size (native {h}x{w})"


Runner = Callable[[int, int, int], Exception | None]
"""(channels, height, width) → None when the model ran on such an input, else what it raised."""


def first_in_channels(module: nn.Module) -> int | None:
    """The input channels of the module's first convolution (None without one): where a model that
    refuses RGB says what it takes."""
    for m in module.modules():
        if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            return m.in_channels
    return None


def declared_size(module: nn.Module) -> int | tuple[int, int] | None:
    """The input size a module declares: timm's `pretrained_cfg`, or an `img_size` / `image_size`
    attribute on it or its patch embedding (None when it declares none)."""
    cfg = getattr(module, "pretrained_cfg", None) or getattr(module, "default_cfg", None)
    if isinstance(cfg, dict) and isinstance(cfg.get("input_size"), tuple | list):
        h, w = cfg["input_size"][-2:]
        return int(h), int(w)
    for owner in (module, getattr(module, "patch_embed", None)):
        for attr in ("img_size", "image_size"):
            value = getattr(owner, attr, None)
            if isinstance(value, int) and value > 0:
                return value
            if isinstance(value, tuple | list) and len(value) == 2 and all(isinstance(v, int) for v in value):
                return int(value[0]), int(value[1])
    return None


def probe(run: Runner, size: tuple[int, int],
          channels: tuple[int, ...]) -> tuple[InputGeometry, Exception | None]:
    """The geometry `run` reveals: the first of `channels` the model takes at `size`, then whether
    sizes `ODD_STEPS` larger and a wider image work (any size), or the first of `MULTIPLES` whose next
    two multiples and a wider image do; a model that takes none (or only squares) is fixed.
    Returns (geometry, None), or (a guess, the error) when the native size itself fails."""
    error: Exception | None = None
    for c in channels:
        error = run(c, *size)
        if error is None:
            break
    else:
        return InputGeometry(channels[0], size), error
    h, w = size
    free = InputGeometry(c, size)
    if all(run(c, h + k, w + k) is None for k in ODD_STEPS) and run(c, *free.wider()) is None:
        return free, None
    for m in MULTIPLES:  # the next two multiples of m above the native size, and a wider image, must work
        h1, h2, w1, w2 = ((side // m + k) * m for side in (h, w) for k in (1, 2))
        geometry = InputGeometry(c, size, multiple=m)
        if all(run(c, *hw) is None for hw in ((h1, w1), (h2, w2), geometry.wider())):
            return geometry, None
    return InputGeometry(c, size, fixed=True), None
