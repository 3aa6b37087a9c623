"""Style and content objectives (Gatys et al.): Gram matrices of activations and distances to targets.

Normalisation, so that numbers mean the same on any layer, network and image size:
- `gram` divides by the number of positions H·W: entry (i, j) is the mean over positions of
  channel i times channel j, so one layer's Gram matrix does not grow with the image size.
- `style` scores each layer by its *relative* error, mean |G − T| / mean |T| over the C×C entries
  (0 = identical, 1 = as far off as a zero matrix), so layers whose activations differ by orders of
  magnitude (common outside VGG) weigh what their weights say.
- `content` scores the relative squared error mean (A − T)² / mean T² of one layer's activations.
Both objectives return minus the loss per image (render maximises).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from diffparam import deprecation
from diffparam.checks import non_negative_float, real, shape
from diffparam.constant import Constant
from diffparam.errors import UserError
from diffparam.objectives.core import Activations, Objective

if TYPE_CHECKING:
    from diffparam.models.base import Model


def gram(features: Tensor, region: Tensor | None = None) -> Tensor:
    """Gram matrices (B, C, C) of activations (B, C, H, W), divided by H·W (a mean over positions);
    with `region` (an image's mask or weights (H', W') in [0, 1]), a weighted mean over the
    positions it covers, the region resized to the activations' grid (area average)."""
    b, c, h, w = shape("the activations of a Gram matrix", features, "B,C,H,W").shape
    flat = features.reshape(b, c, h * w)
    if region is None:
        return torch.bmm(flat, flat.transpose(1, 2)) / (h * w)
    weight = F.interpolate(region[None, None].to(features), size=(h, w), mode="area").reshape(1, 1, h * w)
    return torch.bmm(flat * weight, flat.transpose(1, 2)) / weight.sum().clamp_min(1e-6)


def _layer_checks(layer: str, channels: int, what: str):
    def check(model: Model) -> None:
        n = model.channels(layer)
        if n != channels:
            raise UserError(f"the {what} target for {layer} has {channels} channels but the layer has "
                            f"{n}: compute it with the same model")

    return check


class _GramAverage:
    """Per-layer moving averages of Gram matrices, debiased like Adam's moments.

    State lives in device tensors updated in place, so the update also replays inside a CUDA graph.
    `avg_t = m·avg_{t−1} + (1−m)·g_t` from avg_0 = 0, used as avg_t / (1 − m^t), m the momentum.
    """

    def __init__(self, momentum: float) -> None:
        self.momentum = momentum
        self.state: dict[str, tuple[Tensor, Tensor]] = {}

    def __call__(self, layer: str, g: Tensor) -> Tensor:
        """The Gram matrix to use: forward value the moving average, gradient to the current `g`."""
        avg, steps = self.state.get(layer, (None, None))
        if avg is None or avg.shape != g.shape or avg.device != g.device:
            avg = torch.zeros_like(g, dtype=torch.float32)
            steps = torch.zeros((), device=g.device)
            self.state[layer] = (avg, steps)
        assert steps is not None
        with torch.no_grad():
            avg.mul_(self.momentum).add_(g.detach().float(), alpha=1.0 - self.momentum)
            steps.add_(1.0)
            debiased = avg / (1.0 - torch.pow(self.momentum, steps))
        return g + (debiased.to(g.dtype) - g).detach()


@deprecation.renames(decay="moving_average")
def style(
    targets: Mapping[str, Tensor],
    weights: Mapping[str, float] | None = None,
    moving_average: float | None = None,
    region: Tensor | None = None,
) -> Objective:
    """Minus the weighted style loss: Σ_layer weight · mean |gram(acts) − target| / mean |target|.

    `targets` are Gram matrices (C, C) by layer name (see `style_targets`); `weights` default to 1.
    With `moving_average` (a momentum in [0, 1), e.g. 0.95) each layer's Gram matrix is a moving
    average over the steps seen (forward value from the average, gradient to the current batch):
    for a style spread over many views, as in texture rendering. That state persists: build a new
    objective for each render. With `region` (H, W) the Gram matrices count only the positions
    under it (see `gram`): the style of one part of the image, as when filling a hole.
    """
    if not targets:
        raise UserError("style needs a target Gram matrix for at least one layer")
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(targets))
    if unknown:
        raise UserError(f"style weights name layers without a target: {', '.join(unknown)}")
    if moving_average is not None:
        moving_average = real("moving_average", moving_average, 0.0, 1.0, high_open=True,
                              hint="(0.95 is usual)")
    consts: dict[str, tuple[Constant, float, float]] = {}
    checks = []
    for layer, target in targets.items():
        t = torch.as_tensor(target).detach().float().cpu()
        if t.dim() != 2 or t.shape[0] != t.shape[1]:
            raise UserError(f"the style target for {layer} must be a (C, C) Gram matrix, "
                            f"got shape {tuple(t.shape)}")
        w = non_negative_float(f"style weight of {layer}", weights.get(layer, 1.0))
        scale = float(t.abs().mean().clamp_min(1e-12))
        consts[layer] = (Constant(t), w, scale)
        checks.append(_layer_checks(layer, t.shape[0], "style"))
    average = _GramAverage(moving_average) if moving_average is not None else None
    where = None if region is None else Constant(shape("region", region, "H,W").detach().float().cpu())

    def fn(acts: Activations) -> Tensor:
        total = None
        for layer, (const, w, scale) in consts.items():
            g = gram(acts[layer], None if where is None else where.on(acts[layer].device))
            if average is not None:
                g = average(layer, g)
            t = const.on(g.device, g.dtype)
            if g.shape[1:] != t.shape:
                raise UserError(f"the style target for {layer} is {t.shape[0]}x{t.shape[0]} but the "
                                f"layer has {g.shape[1]} channels")
            loss = (g - t).abs().flatten(1).mean(1) * (w / scale)
            total = loss if total is None else total + loss
        assert total is not None
        return -total

    average_name = "" if moving_average is None else f"; moving average {moving_average:g}"
    name = f"style({','.join(consts)}{average_name}{'' if region is None else '; in a region'})"
    return Objective(fn, list(consts), name, checks)


def content(layer: str, target: Tensor, weight: float = 1.0) -> Objective:
    """Minus `weight` · mean (acts − target)² / mean target² on `layer` (target: (C,H,W) or (1,C,H,W)).

    The target must come from an image of the rendered size (see `content_target`).
    """
    t = torch.as_tensor(target).detach().float().cpu()
    t = shape(f"the content target (activations) for {layer}", t[None] if t.dim() == 3 else t, "1,C,H,W")
    w = non_negative_float("content_weight", weight)
    const = Constant(t)
    scale = float(t.pow(2).mean().clamp_min(1e-12))

    def fn(acts: Activations) -> Tensor:
        a = acts[layer]
        tt = const.on(a.device, a.dtype)
        if a.shape[1:] != tt.shape[1:]:
            got, want = "x".join(map(str, a.shape[1:])), "x".join(map(str, tt.shape[1:]))
            raise UserError(f"{layer} gives {got} activations but the content target is {want}: "
                            "compute the target from an image of the rendered size")
        return -(w / scale) * (a - tt).pow(2).flatten(1).mean(1)

    return Objective(fn, [layer], f"content({layer})", [_layer_checks(layer, t.shape[1], "content")])


def _as_batch(image: Tensor) -> Tensor:
    return shape("an RGB image in [0, 1]", image.unsqueeze(0) if image.dim() == 3 else image, "B,3,H,W")


def style_targets(model: Model, image: Tensor, layers: list[str] | tuple[str, ...],
                  region: Tensor | None = None) -> dict[str, Tensor]:
    """Gram matrices (C, C) on the CPU of `image` (RGB in [0,1]) at `layers`; a batch is averaged;
    `region` (H, W) counts only the positions under it (see `gram`)."""
    img = _as_batch(image)
    if not layers:
        raise UserError("style needs at least one layer")
    with torch.no_grad():
        acts = model.activations(img.to(model.device), layers)
    flat = [layer for layer in layers if acts[layer].dim() != 4]
    if flat:
        raise UserError(f"{', '.join(flat)} has no spatial grid: pick convolutional layers for style")
    where = None if region is None else region.to(model.device)
    return {layer: gram(acts[layer].float(), where).mean(0).cpu() for layer in layers}


def content_target(model: Model, image: Tensor, layer: str) -> Tensor:
    """Activations (1, C, H, W) on the CPU of one RGB `image` in [0,1] at `layer`."""
    img = _as_batch(image)
    if img.shape[0] != 1:
        raise UserError(f"the content target needs one image, got a batch of {img.shape[0]}")
    with torch.no_grad():
        acts = model.activations(img.to(model.device), [layer])
    out = acts[layer]
    if out.dim() != 4:
        raise UserError(f"{layer} has no spatial grid: pick a convolutional layer for content")
    return out.float().cpu()
