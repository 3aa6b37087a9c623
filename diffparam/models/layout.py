"""How a layer lays out its output, and the one form objectives see: (B, C, H, W) or (B, C).

Networks differ: convolutions give (B, C, H, W); timm's Swin and ConvNeXt stages give channels-last
(B, H, W, C); transformers give tokens (B, N, C), a few prefix tokens (class, register,
distillation) before the patch grid. `Model` finds each layer's layout once by running the model
and converts every captured output to (B, C, h, w) on the patch grid, so every objective, the atlas
and the trust numbers work on every layout; a token layer's whole sequence (prefix included) stays
reachable as (B, C, N) under `tokens_key(layer)`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from torch import Tensor

CHW, HWC, TOKENS, HEADS, VECTOR = "chw", "hwc", "tokens", "heads", "vector"
MAX_PREFIX = 16
"""The most prefix tokens (class, registers, distillation) looked for before a patch grid."""


@dataclass(frozen=True)
class LayerInfo:
    """One named layer: its name, channel count, output shape as objectives see it (C, h, w) or
    (C,) at the model's native input size, its own `layout`, and for tokens how many `prefix`
    tokens come before the patch grid."""

    name: str
    channels: int
    shape: tuple[int, ...]
    layout: str = CHW
    prefix: int = 0
    stride: tuple[float, float] | None = None
    """Input pixels per patch (height, width) of a token layer with a grid; None: tokens whose count
    does not follow the image (learned queries), which objectives see as one row."""
    sequence_first: bool = False
    """Tokens come as (N, B, C) (OpenAI CLIP, `nn.TransformerEncoderLayer` by default)."""

    @property
    def grid(self) -> tuple[int, int] | None:
        """(h, w) of the positions at the native size; None for a vector."""
        return (self.shape[1], self.shape[2]) if len(self.shape) == 3 else None

    def describe(self) -> str:
        """The layout in words for `diffparam layers`: 'tokens 1+14x14', 'hwc 56x56', 'vector',
        'heads x 197 tokens x 64' (per-head queries, keys or values: one channel per head)."""
        if self.layout == HEADS:
            return f"heads x {self.shape[1]} tokens x {self.shape[2]}"
        if self.grid is None:
            return VECTOR
        grid = f"{self.grid[0]}x{self.grid[1]}"
        if self.layout == TOKENS:
            return f"tokens {self.prefix}+{grid}" if self.prefix else f"tokens {grid}"
        return f"{self.layout} {grid}"


def tokens_key(layer: str) -> str:
    """Where a token layer's whole sequence, prefix tokens first, is kept among activations: (B, C, N)."""
    return f"{layer}#tokens"


def first_tensor(out: object) -> Tensor | None:
    """The tensor a module's return value stands for: itself, the first tensor of a tuple or list,
    or of a dict / Hugging Face output object ('logits' or 'last_hidden_state' when present)."""
    if isinstance(out, Tensor):
        return out
    if isinstance(out, Mapping):
        for key in ("logits", "last_hidden_state"):
            if isinstance(out.get(key), Tensor):
                return out[key]
        out = list(out.values())
    if isinstance(out, tuple | list):
        for item in out:
            if isinstance(item, Tensor):
                return item
    return None


@lru_cache(maxsize=4096)
def token_grid(count: int, height: int, width: int) -> tuple[int, int] | None:
    """(h, w) with h·w = `count` shaped like a (height, width) image (each side less than a token from
    the other times the aspect ratio), the closest in ratio; None when no such grid exists."""
    best: tuple[float, tuple[int, int]] | None = None
    for h in range(1, count + 1):
        if count % h:
            continue
        w = count // h
        if abs(h - w * height / width) < 1 and abs(w - h * width / height) < 1:
            gap = abs(h / w - height / width)
            if best is None or gap < best[0]:
                best = (gap, (h, w))
    return None if best is None else best[1]


def find_prefix(counts: list[tuple[int, int, int]], hint: int | None) -> tuple[int, tuple[int, int]] | None:
    """(prefix, grid at the first size) for token counts [(N, height, width), ...] seen at input sizes:
    the fewest prefix tokens (`hint` first, from the model) that leave a patch grid of the image's
    shape at every size; None when there is none."""
    tries = ([hint] if hint is not None else []) + [p for p in range(MAX_PREFIX + 1) if p != hint]
    for prefix in tries:
        grids = [token_grid(n - prefix, h, w) if n > prefix else None for n, h, w in counts]
        if all(g is not None for g in grids):
            return prefix, grids[0]  # type: ignore[return-value]
    return None


def _like_image(a: int, b: int, height: int, width: int) -> bool:
    """Whether a grid of a x b positions has the shape of a height x width image (within a position)."""
    return abs(a - b * height / width) <= 1


def detect(first: tuple[int, ...], second: tuple[int, ...] | None, sizes: list[tuple[int, int]],
           prefix_hint: int | None) -> dict | None:
    """How an output of shape `first` at the native size sizes[0] (and `second` at sizes[1], a wider
    image, when the model takes it) is laid out: `LayerInfo` fields (layout, shape as objectives see
    it, prefix, stride, sequence_first), or None for an output objectives cannot use.

    The wider image tells which dimension is the width: the last for (B,C,H,W), the second for
    (B,H,W,C), the first for tokens; a token count that does not change is no grid. A model of one
    size is read from the shapes alone: dims 1 and 2 of (B,H,W,C) have the image's shape and dim 3
    does not; (B,C,H,W) is assumed when both could be.
    """
    height, width = sizes[0]
    if len(first) == 2:
        return dict(layout=VECTOR, shape=(first[1],))
    sequence_first = len(first) == 3 and first[0] != 1 and first[1] == 1
    if sequence_first:
        first = (1, first[0], first[2])
        second = None if second is None else (1, second[0], second[2])
    changed = None if second is None else [i for i in range(1, len(first)) if first[i] != second[i]]
    if len(first) == 4:
        _, d1, d2, d3 = first
        if _like_image(d1, d2, height, width) and (
                changed == [2] or (not changed and not _like_image(d2, d3, height, width))):
            return dict(layout=HWC, shape=(d3, d1, d2))
        if not _like_image(d2, d3, height, width) and changed in (None, [], [2]):  # (B, heads, N, d)
            counts = [(d2, height, width)] + ([(second[2], *sizes[1])] if second and changed else [])
            found = find_prefix(counts, prefix_hint)
            if found is not None:
                return dict(layout=HEADS, shape=(d1, d2, d3), prefix=found[0])
        return dict(layout=CHW, shape=(d1, d2, d3))
    if len(first) == 3 and changed in (None, [], [1]):
        tokens = dict(layout=TOKENS, sequence_first=sequence_first)
        counts = [(first[1], height, width)]
        if second is not None and changed:
            counts.append((second[1], *sizes[1]))
        found = None if changed == [] else find_prefix(counts, prefix_hint)
        if found is None:  # learned queries, pooled tokens: one row
            return dict(tokens, shape=(first[2], 1, first[1]))
        prefix, (h, w) = found
        return dict(tokens, shape=(first[2], h, w), prefix=prefix, stride=(height / h, width / w))
    return None


def grid_at(count: int, height: int, width: int,
            stride: tuple[float, float] | None) -> tuple[int, int] | None:
    """The patch grid of `count` tokens for a height x width input: from the layer's `stride` (the
    patch embedding's rounding either way), else the grid of the image's shape (`token_grid`)."""
    if stride is not None:
        for h in dict.fromkeys((math.floor(height / stride[0]), math.ceil(height / stride[0]))):
            if h > 0 and count % h == 0 and abs(count // h - width / stride[1]) <= 1:
                return h, count // h
    return token_grid(count, height, width)


def canonical(t: Tensor, info: LayerInfo, height: int, width: int) -> Tensor:
    """`t` (a captured output of `info`'s layer, for an input of height x width) as objectives see it:
    (B, C, h, w) for images, channels-last and tokens (the patch grid, or one row of tokens without
    one), (B, C) for vectors."""
    if info.layout == HWC and t.dim() == 4:
        return t.permute(0, 3, 1, 2)
    if info.layout == TOKENS and t.dim() == 3:
        if info.sequence_first:
            t = t.transpose(0, 1)
        patches = t[:, info.prefix:]
        grid = None if info.stride is None else grid_at(patches.shape[1], height, width, info.stride)
        h, w = grid if grid is not None else (1, patches.shape[1])
        return patches.transpose(1, 2).reshape(t.shape[0], t.shape[2], h, w)
    return t
