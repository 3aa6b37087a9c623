"""`SharedImage`: frames that share part of their parameterization, so they line up (aligned
interpolation, as in the Differentiable Image Parameterizations article).

Frame i is σ(unique_i + Σ_k upsample(shared_k)): `unique` is any full-resolution parameterization
with one image per frame, each `shared_k` any (usually lower-resolution) parameterization. A shared
part of batch 1 is added to every frame; one of batch K > 1 is interpolated linearly across the
frames (its first image at frame 0, its last at the last frame), so it changes slowly over time.
Parts are combined through their `logits()` (values before the sigmoid), so any parameterization
that defines them composes, a `SharedImage` included.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffparam.errors import UserError
from diffparam.param.base import Parameterization


def _check_composable(part: Parameterization, role: str) -> None:
    if not isinstance(part, Parameterization):
        raise UserError(f"the {role} part must be a Parameterization, got {type(part).__name__}")
    if type(part).logits is Parameterization.logits:
        raise UserError(
            f"the {role} part {type(part).__name__} has no logits() (values before its sigmoid), so "
            "SharedImage cannot add it to others; use FourierImage, PixelImage or SharedImage"
        )


def frame_weights(frames: int, keys: int) -> Tensor:
    """(frames, keys) linear-interpolation weights: frame i mixes the two keys around i/(frames-1)."""
    if keys == 1:
        return torch.ones(frames, 1)
    pos = torch.linspace(0, keys - 1, frames, dtype=torch.float64)
    low = pos.floor().clamp(max=keys - 2).long()
    frac = pos - low
    weights = torch.zeros(frames, keys, dtype=torch.float64)
    rows = torch.arange(frames)
    weights[rows, low] = 1 - frac
    weights[rows, low + 1] = frac
    return weights.to(torch.get_default_dtype())


class SharedImage(Parameterization):
    """Frames σ(unique_i + Σ_k upsample(shared_k)): per-frame detail over parts common to all frames.

    `unique` fixes the shape (batch = frames); each shared part must have as many channels and a
    batch of 1 (the same for every frame) or of 2..frames (interpolated across the frames).
    """

    def __init__(self, unique: Parameterization,
                 shared: Parameterization | Sequence[Parameterization]) -> None:
        _check_composable(unique, "unique")
        parts = [shared] if isinstance(shared, Parameterization) else list(shared)
        if not parts:
            raise UserError("SharedImage needs at least one shared part")
        super().__init__(unique.height, unique.width, unique.batch, unique.channels)
        for part in parts:
            _check_composable(part, "shared")
            if part.channels != unique.channels:
                raise UserError(f"a shared part has {part.channels} channels but the frames have "
                                f"{unique.channels}: they must match")
            if part.batch > unique.batch:
                raise UserError(f"a shared part of batch {part.batch} cannot be spread over "
                                f"{unique.batch} frames: use batch 1 (common to all) or at most "
                                f"{unique.batch}")
        self.unique = unique
        self.shared = nn.ModuleList(parts)
        self.default_lr = unique.default_lr
        self.graph_safe = all(p.graph_safe for p in (unique, *parts))
        for i, part in enumerate(parts):
            self.register_buffer(f"_weights{i}", frame_weights(unique.batch, part.batch),
                                 persistent=False)

    def _spread(self, i: int, part: Parameterization) -> Tensor:
        """Part i's logits at full size, one per frame (a batch of 1 broadcasts)."""
        x = part.logits()
        if x.shape[-2:] != (self.height, self.width):
            x = F.interpolate(x, size=(self.height, self.width), mode="bilinear", align_corners=False)
        if part.batch == 1:
            return x
        weights = getattr(self, f"_weights{i}").to(x.dtype)
        return torch.einsum("fk,kchw->fchw", weights, x)

    def logits(self) -> Tensor:
        """The frames before the sigmoid: unique logits plus every shared part's, upsampled."""
        x = self.unique.logits()
        for i, part in enumerate(self.shared):
            x = x + self._spread(i, part)
        return x

    def forward(self) -> Tensor:
        """The frames (B, C, H, W) in [0, 1]."""
        return torch.sigmoid(self.logits())

    def extra_repr(self) -> str:
        return f"frames={self.batch}, shared parts={len(self.shared)}"
