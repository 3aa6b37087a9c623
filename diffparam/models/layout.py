"""How a layer lays out its output, and the one form objectives see: (B, C, H, W) or (B, C).

Networks differ: convolutions give (B, C, H, W); timm's Swin and ConvNeXt stages give channels-last
(B, H, W, C); transformers give tokens (B, N, C), a few prefix tokens (class, register,
distillation) before the patch grid. `Model` finds each layer's layout once by running the model
and converts every captured output to (B, C, h, w) on the patch grid, so every objective, the atlas
and the trust numbers work on every layout; a token layer's whole sequence (prefix included) stays
reachable as (B, C, N) under `tokens_key(layer)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from torch import Tensor

CHW, HWC, TOKENS, HEADS, VECTOR = "chw", "hwc", "tokens", "heads", "vector"
LAYOUTS = (CHW, HWC, TOKENS, HEADS, VECTOR)
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


def detect(first: tuple[int, ...], second: tuple[int, ...] | None, sizes: list[tuple[int, int]],
           prefix_hint: int | None) -> tuple[str, int, tuple[int, ...]] | None:
    """(layout, prefix, shape as objectives see it) of an output of shape `first` at the native size
    sizes[0] (and `second` at sizes[1], a wider image, when the model takes it); None for an output
    objectives cannot use.

    The wider image tells which dimension is the width: the last for (B,C,H,W), the second for
    (B,H,W,C), the first for tokens. A model of one fixed size is read from the shapes alone: a
    square (B,H,W,C) grid has equal dims 1 and 2, and (B,C,H,W) is assumed when both could be.
    """
    if len(first) == 2:
        return VECTOR, 0, (first[1],)
    changed = None if second is None else [i for i in range(1, len(first)) if first[i] != second[i]]
    if len(first) == 4:
        _, d1, d2, d3 = first
        square_grid = d1 == d2 or sizes[0][0] != sizes[0][1]  # dims 1, 2 could be a grid
        if square_grid and (changed == [2] or (not changed and d1 == d2 != d3)):
            return HWC, 0, (d3, d1, d2)
        height, width = sizes[0]
        image_like = abs(d2 - d3 * height / width) <= max(1.0, 0.25 * d2)
        if not image_like and changed in (None, [], [2]):  # (B, heads, tokens, head dim)
            counts = [(d2, height, width)] + ([(second[2], *sizes[1])] if second and changed else [])
            found = find_prefix(counts, prefix_hint)
            if found is not None:
                return HEADS, found[0], (d1, d2, d3)
        return CHW, 0, (d1, d2, d3)
    if len(first) == 3 and changed in (None, [], [1]):
        counts = [(first[1], *sizes[0])]
        if second is not None and changed:
            counts.append((second[1], *sizes[1]))
        found = find_prefix(counts, prefix_hint)
        if found is None:
            return TOKENS, 0, (first[2], 1, first[1])
        prefix, (h, w) = found
        return TOKENS, prefix, (first[2], h, w)
    return None


def canonical(t: Tensor, info: LayerInfo, height: int, width: int) -> Tensor:
    """`t` (a captured output of `info`'s layer, for an input of height x width) as objectives see it:
    (B, C, h, w) for images, channels-last and tokens (the patch grid), (B, C) for vectors."""
    if info.layout == HWC and t.dim() == 4:
        return t.permute(0, 3, 1, 2)
    if info.layout == TOKENS and t.dim() == 3:
        patches = t[:, info.prefix:]
        grid = token_grid(patches.shape[1], height, width) if info.grid != (1, info.shape[2]) else None
        h, w = grid if grid is not None else (1, patches.shape[1])
        return patches.transpose(1, 2).reshape(t.shape[0], t.shape[2], h, w)
    return t
