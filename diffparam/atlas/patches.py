"""Natural-photo patches: the crops of scikit-image photos (whole and randomly cropped) where a channel
fires most, one per photo region, and how much of a photo a unit sees."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import Tensor

from diffparam.atlas.circuits import GATE_PHOTOS
from diffparam.checks import non_negative_int, whole
from diffparam.errors import UserError
from diffparam.io import resize
from diffparam.models.base import Model

PATCH_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field",
                "immunohistochemistry", "retina", "brick", "grass", "gravel", "coins", "moon", "clock")
"""scikit-image photos (all shipped with it, none downloaded) whose crops show what excites a unit."""


@dataclass
class PhotoSet:
    """Square views (N,3,S,S) of scikit-image photos, and where each came from.

    `boxes[n]` = (photo index, top, left, side) of view n in the full-resolution `sources[photo]`.
    """

    images: Tensor
    sources: list[Tensor]
    names: list[str]
    boxes: list[tuple[int, int, int, int]]


@lru_cache(maxsize=len(PATCH_PHOTOS))
def _photo_bytes(name: str) -> Tensor:
    """A scikit-image sample photo as (3,H,W) uint8 (kept small; read once per process)."""
    from skimage import data

    try:
        arr = np.asarray(getattr(data, name)())
    except (AttributeError, OSError, ModuleNotFoundError) as exc:
        raise UserError(f"scikit-image has no sample photo {name!r} here") from exc
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(arr[..., :3])).permute(2, 0, 1).contiguous()


def _load_photo(name: str) -> Tensor:
    return _photo_bytes(name).float() / 255.0


def photo_set(size: int = 160, crops: int = 48, seed: int = 0,
              names: Sequence[str] = PATCH_PHOTOS) -> PhotoSet:
    """Each photo's central square plus `crops` random squares (20–60% of its shorter side), at `size`."""
    whole("photo size", size, 16)
    non_negative_int("crops", crops)
    sources = [_load_photo(n) for n in names]
    boxes: list[tuple[int, int, int, int]] = []
    for i, src in enumerate(sources):
        h, w = src.shape[-2:]
        side = min(h, w)
        boxes.append((i, (h - side) // 2, (w - side) // 2, side))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(crops):
        i = int(torch.randint(len(sources), (1,), generator=gen))
        h, w = sources[i].shape[-2:]
        side = max(16, int(min(h, w) * (0.2 + 0.4 * float(torch.rand(1, generator=gen)))))
        top = int(torch.randint(h - side + 1, (1,), generator=gen))
        left = int(torch.randint(w - side + 1, (1,), generator=gen))
        boxes.append((i, top, left, side))
    views = [resize(sources[i][None, :, y:y + s, x:x + s], (size, size)) for i, y, x, s in boxes]
    return PhotoSet(torch.cat(views).clamp(0, 1), sources, list(names), boxes)


@dataclass
class LayerStatistics:
    """One layer's activations over a `PhotoSet`: per view and channel, the strongest position."""

    peak: Tensor
    """(N, C) the highest activation of each channel in each view."""
    where: Tensor
    """(N, C) flat index of that position in the layer's grid."""
    grid: tuple[int, int]
    correlation: Tensor
    """(C, C) Pearson correlation of channels over every position of every view."""


def photo_statistics(model: Model, layers: Sequence[str], photos: PhotoSet, batch: int = 16,
                     progress: Callable[[int], None] | None = None) -> dict[str, LayerStatistics]:
    """Run the photos through the model once (in batches) and summarise each layer's channels."""
    peaks: dict[str, list[Tensor]] = {n: [] for n in layers}
    wheres: dict[str, list[Tensor]] = {n: [] for n in layers}
    sums: dict[str, list[Any]] = {}
    grids: dict[str, tuple[int, int]] = {}
    for start in range(0, len(photos.images), batch):
        x = photos.images[start:start + batch].to(model.device)
        with torch.no_grad():
            acts = model.activations(x, layers)
        for name in layers:
            t = acts[name].double()
            t = t[..., None, None] if t.dim() == 2 else t
            grids[name] = (t.shape[2], t.shape[3])
            flat = t.flatten(2)
            peak, where = flat.max(2)
            peaks[name].append(peak.float().cpu())
            wheres[name].append(where.cpu())
            cols = flat.transpose(1, 2).reshape(-1, t.shape[1])
            s = sums.setdefault(name, [0, 0.0, 0.0])
            s[0] += cols.shape[0]
            s[1] = s[1] + cols.sum(0)
            s[2] = s[2] + cols.T @ cols
        if progress is not None:
            progress(len(x))
    out = {}
    for name in layers:
        count, total, outer = sums[name]
        mean = total / count
        cov = outer / count - torch.outer(mean, mean)
        std = cov.diagonal().clamp_min(1e-12).sqrt()
        corr = (cov / torch.outer(std, std)).clamp(-1, 1).float().cpu()
        out[name] = LayerStatistics(torch.cat(peaks[name]), torch.cat(wheres[name]), grids[name], corr)
    return out


def effective_field(model: Model, layer: str, photos: Tensor, share: float = 0.9) -> int:
    """Side (pixels of `photos`) of the centred square that holds `share` of the input gradient of
    the layer's centre position, over a few photos: how much of a photo a unit there sees."""
    size = photos.shape[-1]
    x = photos[:len(GATE_PHOTOS)].to(model.device).requires_grad_()
    with torch.enable_grad():
        t = model.activations(x, [layer])[layer]
        if t.dim() != 4:
            return size
        h, w = t.shape[-2:]
        centre = t[:, :, h // 2, w // 2]
        (g,) = torch.autograd.grad(0.5 * (centre.float() ** 2).sum(), x)
    mass = g.abs().sum((0, 1)).cpu()
    total = float(mass.sum())
    if total <= 0:
        return size
    cy, cx = (h // 2 + 0.5) * size / h, (w // 2 + 0.5) * size / w
    for side in range(8, size + 1, 2):
        top, left = max(0, round(cy - side / 2)), max(0, round(cx - side / 2))
        if float(mass[top:top + side, left:left + side].sum()) >= share * total:
            return side
    return size


def top_patches(stats: LayerStatistics, photos: PhotoSet, channel: int, k: int = 4,
                field: int = 32, thumb: int = 64) -> list[dict[str, Any]]:
    """The `k` photo patches where `channel` peaks highest, no two centred within half a patch of
    each other in the same photo; each {"photo", "box", "activation", "image" (3,thumb,thumb)}."""
    order = stats.peak[:, channel].argsort(descending=True).tolist()
    size = photos.images.shape[-1]
    gh, gw = stats.grid
    chosen: list[dict[str, Any]] = []
    for n in order:
        if len(chosen) == k:
            break
        src, top, left, side = photos.boxes[n]
        scale = side / size
        pos = int(stats.where[n, channel])
        cy = top + ((pos // gw) + 0.5) * side / gh
        cx = left + ((pos % gw) + 0.5) * side / gw
        half = field * scale / 2
        if any(c["source"] == src and math.hypot(c["centre"][0] - cy, c["centre"][1] - cx) < half
               for c in chosen):
            continue
        photo = photos.sources[src]
        ph, pw = photo.shape[-2:]
        p = max(4, min(round(2 * half), ph, pw))
        y0 = int(min(max(0, round(cy - p / 2)), ph - p))
        x0 = int(min(max(0, round(cx - p / 2)), pw - p))
        crop = resize(photo[None, :, y0:y0 + p, x0:x0 + p], (thumb, thumb))[0].clamp(0, 1)
        chosen.append({"photo": photos.names[src], "source": src, "centre": (cy, cx),
                       "box": (y0, x0, p), "activation": float(stats.peak[n, channel]), "image": crop})
    for c in chosen:
        del c["source"], c["centre"]
    return chosen
