"""Aligned interpolation: an animation whose frames move from objective A to objective B, kept in
register by a shared parameterization and an optional alignment term (the article's section 1).

Also the two figures of that section: the toy problem (two variables each minimising (x² − 1)²
end with the same sign far more often when they share a term) and, on a real model, how alike
adjacent frames are with and without the shared parameterization and the alignment term.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from diffparam import deprecation
from diffparam.checks import choice, image_size, non_negative_float, positive_int, whole
from diffparam.errors import UserError
from diffparam.evaluate import objective_values
from diffparam.io import check_writable, make_grid, save_animation, save_image
from diffparam.memory import check_fits
from diffparam.models.base import Model
from diffparam.models.registry import load_model
from diffparam.objectives import Objective, alignment, channel_list, interpolation, resolve
from diffparam.param import Parameterization, SharedImage, kinds, make_param
from diffparam.render import render, resolve_device
from diffparam.result import Result

SHARED_PARTS = ((2, 1), (4, 1), (8, 2))
"""The shared parts as (downscale factor, keys): half, quarter size common to every frame, and an
eighth-size part that fades between 2 keys across the frames (the layout of Lucid's notebook)."""

ALIGN_WEIGHT = 0.1
"""The alignment weight the figures use with the shared parameterization (the CLI's default is 0)."""

@deprecation.renames(kind="param")
def frames_param(size: int, frames: int, shared: bool = True, param: str = "fourier",
                 parts: tuple[tuple[int, int], ...] = SHARED_PARTS,
                 generator: torch.Generator | None = None) -> Parameterization:
    """`frames` images of `size` px, each its own image of kind `param`, plus (with `shared`) the
    `parts` (a kind that can be composed: `kinds(composable=True)`)."""
    param = choice("parameterization for shared frames", param, kinds(composable=True))
    frames = positive_int("frames", frames)
    unique = make_param(param, size, batch=frames, generator=generator)
    if not shared:
        return unique
    return SharedImage(unique, [make_param(param, max(1, size // factor), batch=min(keys, frames),
                                           generator=generator) for factor, keys in parts])


def interpolation_objective(model: Model, a: Objective | str, b: Objective | str,
                            align_weight: float = 0.0, align_layer: str | None = None) -> Objective:
    """Frame i maximises (1 − t_i)·a + t_i·b, plus `align_weight` × alignment of `align_layer`
    (default: the first layer, in model order, that `a` reads)."""
    for end, spec in (("a", a), ("b", b)):
        if isinstance(spec, str) and channel_list(spec):
            raise UserError(f"each end of an interpolation is one objective: `{end}` is a channel list "
                            f"({spec})")
    if align_layer is not None:
        model.check_layer(align_layer)
    oa, ob = resolve(a, model), resolve(b, model)
    obj = interpolation(oa, ob)
    if non_negative_float("align_weight", align_weight) == 0:
        return obj
    if align_layer is None:
        if not oa.layers | ob.layers:
            raise UserError("the objectives read no layer: name the layer to align (align_layer)")
        order = {name: i for i, name in enumerate(model.layer_names())}
        align_layer = min(oa.layers or ob.layers, key=lambda name: order.get(name, len(order)))
    return obj + align_weight * alignment(align_layer)


def write_interpolation(result: Result, out: Path, strip: str | os.PathLike | None = None,
                        fps: float = 8.0, bounce: bool = True) -> dict[str, Path]:
    """An interpolation's writer: the frames as a GIF/MP4 at `out` and a strip PNG
    (`save_interpolation`)."""
    animation, strip_path = save_interpolation(result.images, out, strip, fps, bounce)
    return {"animation": animation, "strip": strip_path}


@deprecation.renames(kind="param")
def render_interpolation(model: Model | str, a: Objective | str, b: Objective | str,
                         frames: int = 8, *, shared: bool = True, align_weight: float = 0.0,
                         align_layer: str | None = None, param: str = "fourier", size: int = 128,
                         steps: int = 512, lr: float | None = None, seed: int = 0,
                         device: str = "auto", progress: bool = True) -> Result:
    """Render `frames` images going from objective `a` to `b`; `shared` adds the shared
    parameterization (of kind `param`), `align_weight` > 0 the alignment term. `Result.images`
    are the frames, `metrics["alignment"]` their adjacent-frame pixel correlation
    (`frame_alignment`); `save(out, strip=..., fps=..., bounce=...)` writes the animation and
    a strip (`write_interpolation`)."""
    net = load_model(model)
    h, _ = image_size(size)
    frames = whole("frames", frames, 2)
    obj = interpolation_objective(net, a, b, align_weight, align_layer)
    check_fits(net, lambda: frames_param(h, frames, shared, param), resolve_device(device),
               lower="`frames` or `size`")
    shared_param = frames_param(h, frames, shared, param, generator=torch.Generator().manual_seed(seed))
    result = render(net, obj, param=shared_param, steps=steps, lr=lr, seed=seed, device=device,
                    progress=progress)
    result.metrics["alignment"] = frame_alignment(result.images)
    result.writer = write_interpolation
    return result


def save_interpolation(frames: Tensor, out: str | os.PathLike, strip: str | os.PathLike | None = None,
                       fps: float = 8.0, bounce: bool = True) -> tuple[Path, Path]:
    """Write the frames (N,C,H,W) as a GIF/MP4 at `out` (played forward then back with `bounce`)
    and as one strip PNG (default: `out` with suffix .png); return both paths."""
    out = Path(out)
    strip = out.with_suffix(".png") if strip is None else Path(strip)
    if strip == out:
        raise UserError(f"the strip PNG and the animation are the same file {out}: give another `strip`")
    check_writable(strip)
    order = list(range(len(frames)))
    if bounce:
        order += order[-2:0:-1]
    anim = save_animation((frames[i] for i in order), out, fps=fps)
    return anim, save_image(make_grid(frames, ncol=len(frames)), strip)


def frame_alignment(frames: Tensor, model: Model | None = None, layer: str | None = None) -> float:
    """Mean Pearson correlation between adjacent frames (N,C,H,W), in [-1, 1]: of their pixels, or
    with `model` and `layer` of that layer's activation maps (each channel centred over positions).

    It measures alignment because it is near 1 only when each frame's light and dark places (or
    each channel's active places) sit where the previous frame's did, and near 0 when frames put
    their patterns in unrelated places, as separately optimised images do; a change of overall
    brightness or contrast does not count.
    """
    if frames.dim() != 4 or frames.shape[0] < 2:
        raise UserError(f"alignment needs a batch of at least 2 frames, got shape {tuple(frames.shape)}")
    x = frames
    if model is not None:
        if layer is None:
            raise UserError("frame_alignment with a model needs the layer whose maps to compare")
        with torch.no_grad():
            x = model.activations(frames.to(model.device), [model.check_layer(layer)])[layer].cpu()
        if x.dim() != 4:
            raise UserError(f"{layer} has no spatial maps to compare: pick a convolutional layer")
    x = x.double().flatten(2)
    x = (x - x.mean(2, keepdim=True)).flatten(1)
    a, b = x[:-1], x[1:]
    corr = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
    return float(corr.mean())


# -- figures ------------------------------------------------------------------------------------
def toy_alignment(starts: int = 1000, steps: int = 1000, lr: float = 0.01, init_sd: float = 0.1,
                  seed: int = 0) -> dict[str, float]:
    """The article's toy problem: x and y each minimise (v² − 1)² by gradient descent from
    `starts` random starts; the share that end with the same sign, independently (x = u₁, y = u₂)
    and with a shared term (x = u₁ + s, y = u₂ + s, s starting at 0 so both runs start from the
    same x, y ~ N(0, init_sd²)). Also the share of runs that reached ±1 (within 0.01)."""
    starts = positive_int("starts", starts)
    steps = positive_int("steps", steps)
    start = torch.randn(starts, 2, generator=torch.Generator().manual_seed(seed),
                        dtype=torch.float64) * init_sd
    out = {}
    for name in ("independent", "shared"):
        u = start.clone().requires_grad_()
        s = torch.zeros(starts, 1, dtype=torch.float64, requires_grad=name == "shared")
        opt = torch.optim.SGD([u, s] if s.requires_grad else [u], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            ((u + s).pow(2).sub(1).pow(2)).sum().backward()
            opt.step()
        x = (u + s).detach()
        out[name] = float((x[:, 0] * x[:, 1] > 0).double().mean())
        out[f"{name}_converged"] = float(((x.abs() - 1).abs() < 0.01).all(1).double().mean())
    return out


VARIANTS = ("independent", "shared", "align", "shared+align")
"""The alignment figure's variants: neither, one or both of the shared parameterization and the
alignment term."""


@dataclass
class AlignmentFigure:
    """One interpolation of the alignment figure: its frames, how aligned they are, and how well
    the first frame does on `a` and the last on `b`."""

    frames: Tensor
    alignment: float
    first_a: float
    last_b: float
    feature_alignment: float | None = None
    """`frame_alignment` of the activation maps at the figure's `measure_layer`, when one is given."""


def alignment_figure(model: Model | str, a: Objective | str, b: Objective | str, frames: int = 6,
                     size: int = 64, steps: int = 48, seed: int = 0, device: str = "auto",
                     align_weight: float = ALIGN_WEIGHT, align_layer: str | None = None,
                     measure_layer: str | None = None, progress: bool = True,
                     variants: tuple[str, ...] = ("independent", "shared+align"),
                     ) -> dict[str, AlignmentFigure]:
    """Render the same interpolation as each of `variants` (see VARIANTS) from the same seed;
    measure each with `frame_alignment` of its pixels (and of `measure_layer`'s maps if given)."""
    for variant in variants:
        choice("variant", variant, VARIANTS)
    net = load_model(model)
    oa, ob = resolve(a, net), resolve(b, net)
    out = {}
    for variant in variants:
        result = render_interpolation(
            net, oa, ob, frames, shared="shared" in variant,
            align_weight=align_weight if "align" in variant else 0.0, align_layer=align_layer,
            size=size, steps=steps, seed=seed, device=device, progress=progress)
        out[variant] = AlignmentFigure(
            result.images, frame_alignment(result.images),
            float(objective_values(net, oa, result.images[:1])[0]),
            float(objective_values(net, ob, result.images[-1:])[0]),
            None if measure_layer is None else frame_alignment(result.images, net, measure_layer))
    return out
