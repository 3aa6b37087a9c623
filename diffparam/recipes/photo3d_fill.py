"""Colour for the hidden layer of a 3D photo: OpenCV's Telea inpainting, an exemplar copy from the
far side, and the context-aware fill.

All see only the far side: the near side (the object in front) is masked out, so that no colour of
the occluder leaks into what it hides. The context-aware fill starts from the exemplar copy and
optimises the hidden pixels (a `MaskedImage` of a `FourierImage`, through `render`) so that the
embedded model's Gram matrices over the band match those of the far side around it
(`style(..., region=...)`), while the band's blurred colours stay near the first guess's and its
total variation small.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from diffparam.models.base import Model
from diffparam.objectives import INPUT, Activations, Objective, style, style_targets
from diffparam.param.fourier import FourierImage
from diffparam.param.masked import MaskedImage
from diffparam.recipes.style import default_layers
from diffparam.render import render
from diffparam.three_d.ldi import Layers

FILLS = ("exemplar", "context", "telea", "none")
"""How the hidden layer is coloured: copies from the far side at the best offsets (`exemplar`, the
default: it measured best, BENCHMARKS.md), those refined by optimising deep-feature statistics
(`context`), Telea's inpainting, or not at all ("none": the photo as one stretched sheet)."""
FILL_STEPS = 60
FILL_LR = 0.01
"""Adam's learning rate for the context-aware fill (0.05 moved it further from its better start)."""
TELEA_RADIUS = 5
BLUR = 4
"""Radius (px) of the box blur whose output the context-aware fill keeps near its first guess's."""
ANCHOR_WEIGHT = 20.0
TV_WEIGHT = 0.5


def _unknown(layers: Layers) -> Tensor:
    """Everything but the far side near the band: the band and the near side around it."""
    radius = 2 * layers.width + 2
    near = F.max_pool2d(layers.band[None, None].float(), 2 * radius + 1, stride=1, padding=radius)[0, 0] > 0
    return (near & ~layers.far) | layers.band


def telea(layers: Layers) -> Tensor:
    """The hidden colour (3,H,W) by Telea's fast-marching inpainting from the far side."""
    rgb = (layers.image.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    mask = _unknown(layers).cpu().numpy().astype(np.uint8)
    filled = cv2.inpaint(np.ascontiguousarray(rgb), mask, TELEA_RADIUS, cv2.INPAINT_TELEA)
    return torch.from_numpy(filled).permute(2, 0, 1).float().div(255).to(layers.image)


def _box_sum(x: Tensor, radius: int) -> Tensor:
    """Sums of `x` (H,W) over (2·radius+1)² windows (zeros outside), through cumulative sums."""
    padded = F.pad(x, (radius + 1, radius, radius + 1, radius)).double()  # float32 sums cancel at large sizes
    c = padded.cumsum(0).cumsum(1)
    k = 2 * radius + 1
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]).to(x.dtype)


def _shift(x: Tensor, dy: int, dx: int, fill: float) -> Tensor:
    """x (...,H,W) moved so that out[q] = x[q + (dy, dx)]; `fill` where that falls outside."""
    h, w = x.shape[-2:]
    out = torch.full_like(x, fill)
    ys, yd = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
    xs, xd = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    out[..., yd, xd] = x[..., ys, xs]
    return out


def exemplar(layers: Layers, radius: int | None = None) -> Tensor:
    """The hidden colour (3,H,W) copied, pixel by pixel, from the far side at the offset (within
    `radius` px, default twice the band's width) that best predicts the far side around it: each
    offset o is scored near every pixel by how well image(q + o) matches image(q) on the far-side
    ring q (an average over a window as wide as the band), and the band takes image(p + o) from
    its best offset whose source is visible far side. Stripes and edges continue in phase."""
    if not bool(layers.band.any()) or not bool(layers.far.any()):
        return telea(layers)  # no depth edge: nothing hidden to copy into
    width = layers.width
    radius = 2 * width if radius is None else radius
    step = max(1, round(radius / 12))  # at most 25x25 offsets
    rows, cols = _crop(layers, margin=radius)
    img = layers.image[:, rows, cols]
    band = layers.band[rows, cols]
    ring = layers.far[rows, cols].float()
    source = (~_unknown(layers))[rows, cols].float()
    best = torch.full(band.shape, float("inf"), device=img.device)
    filled = img.clone()
    for dy in range(-radius, radius + 1, step):
        for dx in range(-radius, radius + 1, step):
            moved = _shift(img, dy, dx, 0.0)
            usable = _shift(source, dy, dx, 0.0)
            weight = ring * usable
            error = ((moved - img) ** 2).sum(0) * weight
            cost = _box_sum(error, width) / _box_sum(weight, width).clamp_min(1e-6)
            cost = torch.where(band & (usable > 0) & (_box_sum(weight, width) > 0), cost, float("inf"))
            better = cost < best
            best = torch.where(better, cost, best)
            filled = torch.where(better, moved, filled)
    out = telea(layers)  # where no offset reaches visible far side (rare): Telea's colour
    found = band & torch.isfinite(best)
    out[:, rows, cols] = torch.where(found, filled, out[:, rows, cols])
    return out


def _box(x: Tensor, radius: int) -> Tensor:
    return F.avg_pool2d(x, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)


def _crop(layers: Layers, margin: int) -> tuple[slice, slice]:
    """Rows and columns around the band and its context, `margin` px wider."""
    region = layers.band | layers.far
    rows, cols = region.any(1).nonzero().squeeze(1), region.any(0).nonzero().squeeze(1)
    h, w = layers.band.shape
    return (slice(max(0, int(rows[0]) - margin), min(h, int(rows[-1]) + margin + 1)),
            slice(max(0, int(cols[0]) - margin), min(w, int(cols[-1]) + margin + 1)))


def _anchor(start: Tensor, band: Tensor) -> Objective:
    """Minus the mean squared distance, over the band, of the image's blurred colours to `start`'s."""
    target = _box(start, BLUR).detach()
    weight = band[None, None].float()
    count = float(weight.sum().clamp_min(1))

    def fn(acts: Activations) -> Tensor:
        img = acts[INPUT]
        diff = (_box(img, BLUR) - target.to(img)) ** 2 * weight.to(img)
        return -diff.flatten(1).sum(1) / (3 * count)

    return Objective(fn, [], "closeness of the blurred band to the first guess")


def _smoothness(band: Tensor) -> Objective:
    """Minus the mean absolute difference of neighbouring pixels inside the band."""
    weight = band[None, None].float()
    count = float(weight.sum().clamp_min(1))

    def fn(acts: Activations) -> Tensor:
        img = acts[INPUT]
        w = weight.to(img)
        dx = (img[..., :, 1:] - img[..., :, :-1]).abs() * w[..., :, 1:]
        dy = (img[..., 1:, :] - img[..., :-1, :]).abs() * w[..., 1:, :]
        return -(dx.flatten(1).sum(1) + dy.flatten(1).sum(1)) / (3 * count)

    return Objective(fn, [], "total variation in the band")


def context_fill(layers: Layers, model: Model, steps: int = FILL_STEPS, seed: int = 0,
                 device: str | torch.device = "auto", progress: bool = False, start: Tensor | None = None,
                 lr: float = FILL_LR) -> tuple[Tensor, list[float]]:
    """The hidden colour (3,H,W) by the context-aware fill from the first guess `start` (default:
    `exemplar`), and the loss per step."""
    if not bool(layers.band.any()) or not bool(layers.far.any()):
        return (exemplar(layers) if start is None else start), []
    start = exemplar(layers) if start is None else start
    rows, cols = _crop(layers, margin=8)
    band, far = layers.band[rows, cols].cpu(), layers.far[rows, cols].cpu()
    image = torch.where(_unknown(layers), start, layers.image)[:, rows, cols][None].cpu()
    first = start[:, rows, cols][None].cpu()
    layer_names = default_layers(model)[0]
    targets = style_targets(model, layers.image[:, rows, cols].cpu(), layer_names, region=far.float())
    objective = (style(targets, region=band.float()) + ANCHOR_WEIGHT * _anchor(first, band)
                 + TV_WEIGHT * _smoothness(band))
    param = MaskedImage(image, band, FourierImage.from_image(first))
    result = render(model, objective, param=param, transforms=None, steps=steps, lr=lr, seed=seed,
                    device=device, progress=progress, background=None)
    filled = start.clone()
    made = result.images[0].to(filled)
    filled[:, rows, cols] = torch.where(band.to(filled.device), made, start[:, rows, cols])
    return filled, result.history
