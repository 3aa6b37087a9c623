"""Objectives across the frames of a batch: interpolate between two objectives, keep frames aligned.

The batch is read as an animation: image i is frame i of N.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from diffparam import deprecation
from diffparam.checks import non_negative_float, positive_float, positive_int, shape
from diffparam.constant import Constant
from diffparam.errors import UserError
from diffparam.objectives.core import INPUT, Activations, Objective, _layer_check


def frame_positions(frames: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """t_i = i / (N - 1) for the N frames (0 for a single frame), built on the device."""
    t = torch.arange(frames, device=device, dtype=dtype)
    return t / (frames - 1) if frames > 1 else t


def interpolation(a: Objective, b: Objective) -> Objective:
    """Frame i of N maximises (1 − t_i)·a + t_i·b with t_i = i/(N−1): from `a` at the first frame
    to `b` at the last. `a` and `b` are whole-batch objectives (no `batch=`)."""

    def fn(acts: Activations) -> Tensor:
        va, vb = a(acts), b(acts)
        t = frame_positions(va.shape[0], va.device, va.dtype)
        return (1 - t) * va + t * vb

    return Objective(fn, a.layers | b.layers, f"interpolation({a.name}, {b.name})", a.checks + b.checks,
                     a.graph_safe and b.graph_safe)


def temporal(target: Tensor, mask: Tensor, weight: float = 1.0) -> Objective:
    """Minus `weight` · the mean squared difference, over the pixels where `mask` (1,1,H,W) is 1, between
    the image seen and `target` (1,C,H,W): the frame before moved along the motion onto this one
    (Ruder et al. 2016's short-term temporal loss). Both are resampled to the size the model sees."""
    t = shape("the temporal target", target.detach().float().cpu(), "1,C,H,W")
    m = shape("the temporal mask", mask.detach().float().cpu(), "1,1,H,W")
    w = non_negative_float("temporal_weight", weight)
    if t.shape[-2:] != m.shape[-2:]:
        raise UserError(f"the temporal target is {tuple(t.shape[-2:])} but its mask {tuple(m.shape[-2:])}")
    const_t, const_m = Constant(t), Constant(m)

    def fn(acts: Activations) -> Tensor:
        seen = acts[INPUT]
        tt, mm = const_t.on(seen.device, seen.dtype), const_m.on(seen.device, seen.dtype)
        if tt.shape[-2:] != seen.shape[-2:]:
            tt = F.interpolate(tt, size=seen.shape[-2:], mode="bilinear", align_corners=False)
            mm = F.interpolate(mm, size=seen.shape[-2:], mode="bilinear", align_corners=False)
        return -w * ((seen - tt).pow(2) * mm).flatten(1).sum(1) / (mm.sum() * seen.shape[1]).clamp_min(1)

    return Objective(fn, [], "temporal")


@deprecation.renames(decay="falloff")
def alignment(layer: str, reach: int = 1, falloff: float = 2.0) -> Objective:
    """Minus the mean squared difference of `layer`'s activations between nearby frames (higher is
    better aligned): pairs 1..`reach` frames apart, weighted 1, 1/falloff, 1/falloff², …; each
    pair's cost is split between its two frames. Add it with a weight to an interpolation (Lucid's
    `alignment`)."""
    reach = positive_int("reach (frames apart)", reach)
    falloff = positive_float("falloff", falloff)

    def fn(acts: Activations) -> Tensor:
        t = acts[layer]
        n = t.shape[0]
        cost = t.new_zeros(n)
        for d in range(1, min(reach, n - 1) + 1):
            pair = (t[d:] - t[:-d]).pow(2).flatten(1).mean(1) * (0.5 / falloff ** (d - 1))
            cost = cost + F.pad(pair, (0, d)) + F.pad(pair, (d, 0))
        return -cost

    return Objective(fn, [layer], f"alignment({layer})", [_layer_check(layer)])
