"""Restyle a fitted radiance field after a style image (in the spirit of Artistic Radiance Fields,
Zhang et al. 2022, who restyle TensoRF's appearance grids): the field is given an appearance grid
of its own, and it and the colour MLP are trained on random views against the project's style and
content objectives on a vision network, while the density, and with it the agreement between
views, stays as fitted. The result is a run folder like any: render and export it."""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from diffparam.checks import int_in, non_negative_float, positive_float
from diffparam.evaluate.multiview import multiview_error
from diffparam.io import ImageSource, atomic_path, check_writable, load_image, make_grid, save_image
from diffparam.models.base import Model
from diffparam.models.registry import DEFAULT_MODEL, load_model
from diffparam.objectives import Activations, content, style, style_targets
from diffparam.param.radiance import RadianceField
from diffparam.recipes.nerf import flatten, load_nerf, no_more_files, upright
from diffparam.recipes.style import style_layers_of
from diffparam.render import resolve_device
from diffparam.result import Result
from diffparam.three_d.cameras import orbit
from diffparam.three_d.posed import PosedViews, posed_from_cameras
from diffparam.train import fit

STYLE_STEPS = 300
STYLE_SIZE = 128
STYLE_LR = 1e-3
APPEARANCE_LR = 0.1
"""Adam's rates for the colour MLP and for the appearance grid (on the CPU bench's torus, 100 steps, the
grid at 0.02 moved the style distance 2.77, at 0.1 2.72; the MLP at 1e-2 instead of 1e-3 little more)."""
HELD_OUT = 8
NEIGHBOUR = 10.0
"""Degrees of azimuth between a held-out view and the neighbour its multi-view consistency is measured on."""


def random_views(camera: dict[str, Any], n: int, size: int, generator: torch.Generator,
                 turns: Sequence[float] = (0.0,)) -> PosedViews:
    """`n` random cameras around a scene (elevation -15°..60°) at its `camera`'s distance and field of
    view, circling its up axis: the views a field is restyled (or made, `recipes/volume.py`) from; all
    `n` again turned about the up axis by each further angle of `turns` (degrees)."""
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    full = torch.ones(n * len(turns), dtype=torch.float64)
    azimuth = torch.cat([360 * u[:, 0] + turn for turn in turns])
    elevation = (-15 + 75 * u[:, 1]).repeat(len(turns))
    cams = orbit(azimuth, elevation, full * camera["distance"], full * camera["fov"])
    turned = upright(cams, camera.get("up", (0.0, 1.0, 0.0)))
    return posed_from_cameras(turned, size, [str(i) for i in range(len(full))])


def style_nerf(run: str | os.PathLike, style_image: ImageSource, out: str | os.PathLike,
               model: Model | str = DEFAULT_MODEL, steps: int = STYLE_STEPS, size: int = STYLE_SIZE,
               lr: float = STYLE_LR, appearance: bool = True, appearance_lr: float = APPEARANCE_LR,
               content_weight: float = 1.0, style_layers: Sequence[str] | None = None,
               content_layer: str | None = None, seed: int = 0, device: str = "auto",
               progress: bool = True) -> Result:
    """Restyle the fitted scene of `run` after `style_image` into the run folder `out` (resumed when it
    exists): only colour is trained — with `appearance`, an appearance grid like the field's own
    (`RadianceField.add_appearance`, at `appearance_lr`) and the colour MLP, else that MLP alone — so
    the geometry, and with it the agreement between views, stays the field's; each step renders a
    random view at `size` px and lowers the style loss on `model` while its content stays close to the
    original field's view. Reports the style distance of eight held-out views before and after, and
    their multi-view consistency: the mean colour change from each to a neighbour NEIGHBOUR degrees
    round (`evaluate.multiview`), before and after."""
    steps = int_in("steps", steps, 1, 1_000_000)
    size = int_in("size", size, 16, 1024)
    lr = positive_float("lr", lr)
    appearance_lr = positive_float("appearance_lr", appearance_lr)
    content_weight = non_negative_float("content_weight", content_weight)
    dev = resolve_device(device)
    check_writable(Path(out) / "checkpoint.pt")
    field, state = load_nerf(run, str(dev))
    original = copy.deepcopy(field).requires_grad_(False)
    grid = state["settings"].get("appearance")  # a restyled run restyled again keeps its grid
    if appearance and not grid:
        grid = {"resolutions": list(state["settings"]["resolutions"]),
                "features": state["settings"]["features"]}
        field.add_appearance(**grid, generator=torch.Generator(str(dev)).manual_seed(seed))
    net = load_model(model).to(dev)
    layers, layer = style_layers_of(net, style_layers, content_layer)
    style_img = load_image(style_image, size, "the style image")
    objective = style(style_targets(net, style_img, list(layers)))
    field.requires_grad_(False)
    colour, grids = list(field.color_net.parameters()), field.appearance_parameters()
    for p in (*colour, *grids):
        p.requires_grad_(True)
    opt = torch.optim.Adam([{"params": colour, "lr": lr}] + ([{"params": grids, "lr": appearance_lr}]
                                                             if grids else []))
    camera = state["camera"]

    def view(f: RadianceField, cams: PosedViews) -> Tensor:
        return flatten(f.render_views(cams)[0], 1.0)

    def step(i: int, generator: torch.Generator) -> Tensor:
        cams = random_views(camera, 1, size, generator)
        with torch.no_grad():
            target = net.activations(view(original, cams), [layer])[layer]
        made = view(field, cams)
        acts = Activations(net.activations(made, [*layers, layer]), net)
        loss = -(objective + content(layer, target[0].cpu(), content_weight))(acts).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    def distance(images: Tensor) -> float:
        """The style loss of `images` (the relative Gram distance at the style layers), averaged."""
        with torch.no_grad():
            return -float(objective(Activations(net.activations(images, layers), net)).mean())

    # the held-out views, then each one's neighbour: the pairs whose agreement is measured
    held_out = random_views(camera, HELD_OUT, size, torch.Generator().manual_seed(10_000 + seed),
                            (0.0, NEIGHBOUR))
    pairs = [(i, i + HELD_OUT) for i in range(HELD_OUT)]
    with torch.no_grad():
        rgba, depth = original.render_views(held_out)
        shown = flatten(rgba, 1.0)
        before = distance(shown[:HELD_OUT])
        consistent_before = multiview_error(shown, depth, held_out, pairs, rgba[:, 3:])
    settings = {**state["settings"], "style": str(style_image) if not isinstance(style_image, Tensor)
                else "tensor", "style_model": net.name, "style_size": size, "style_lr": lr,
                "appearance": grid, "appearance_lr": appearance_lr if grid else None,
                "content_weight": content_weight, "style_layers": list(layers), "content_layer": layer}
    start = time.perf_counter()
    history = fit(step, {"field": field}, {"adam": opt}, steps, settings,
                  checkpoint=Path(out) / "checkpoint.pt", every=100, seed=seed, progress=progress,
                  desc="nerf style", extra=lambda: {"camera": camera, "seconds": time.perf_counter() - start})
    seconds = time.perf_counter() - start
    with torch.no_grad():
        both = view(field, held_out)
    views = both[:HELD_OUT]
    consistent = multiview_error(both, depth, held_out, pairs, rgba[:, 3:])
    metrics = {"steps": steps, "style_distance_before": round(before, 4),
               "style_distance": round(distance(views), 4),
               "multiview_error_before": round(consistent_before["error"], 4),
               "multiview_error": round(consistent["error"], 4),
               "multiview_valid": round(consistent["valid"], 3), "seconds": round(seconds, 2)}
    with atomic_path(Path(out) / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    files = {"checkpoint": Path(out) / "checkpoint.pt", "metrics": Path(out) / "metrics.json",
             "preview": save_image(make_grid(views.cpu(), ncol=4), Path(out) / "preview.png")}
    return Result(images=views.cpu(), history=history, param=field, metrics=metrics, files=files,
                  writer=no_more_files)
