"""3D art with free geometry (in the spirit of Dream Fields, Jain et al. 2022, with a classifier in
place of CLIP): a radiance field, density and colour both optimised from scratch, so that random
views of it, composited over random backgrounds, maximise an objective of a vision network; a
penalty on mean opacity above an annealed target keeps the object from filling the volume.

Training runs in `train.fit` (seed, progress, checkpoints, resume) and its run folder has
`nerf fit`'s layout, so `nerf render` and `nerf export` work on it too.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from diffparam.checks import choice, int_in, non_negative_float, positive_float, real
from diffparam.errors import UserError
from diffparam.evaluate import photo_reference
from diffparam.evaluate.photos import values_at_input_size
from diffparam.io import ANIMATION_SUFFIXES, atomic_path, make_grid, save_image
from diffparam.io import check_run_folder as io_check_run_folder
from diffparam.models.base import Model
from diffparam.models.registry import DEFAULT_MODEL, load_model
from diffparam.objectives import INPUT, Activations, Objective, resolve
from diffparam.param.radiance import RadianceField
from diffparam.pipeline import stages_for
from diffparam.recipes.nerf import (
    OCCUPANCY_EVERY,
    check_memory,
    export_field,
    field_from,
    field_settings,
    film,
    flatten,
)
from diffparam.recipes.nerf_style import random_views
from diffparam.render import resolve_device
from diffparam.result import Result
from diffparam.train import fit, load_checkpoint

STEPS, SIZE, VIEWS, LR = 400, 224, 2, 0.02
COVERAGE = 0.15
"""Target mean opacity of a view: above it the sparsity penalty applies (Dream Fields' 1 − τ, τ = 0.85)."""
START_COVERAGE, ANNEAL = 0.5, 0.5
"""The target starts at `START_COVERAGE` and falls linearly to `coverage` over this share of the steps."""
SPARSITY = 4.0
"""Weight of the opacity penalty, in units of the objective's current value (its size, detached): an
excess of 0.1 over the target costs 0.1 · SPARSITY of the objective, whatever the unit's scale."""
BOUND, RESOLUTIONS, FEATURES, HIDDEN, SAMPLES, GRID = 1.0, (32, 64, 128), 8, 64, 128, 64
"""The field: the cube [-1, 1]³, coarser feature grids and fewer samples than a fitted scene's."""
CAMERA = {"distance": 4.0, "elevation": 20.0, "fov": 40.0, "up": [0.0, 1.0, 0.0]}
"""Where views are seen from (random ones circle the up axis at -15°..60°); turntables at 20°."""
BLOB = 5.0
"""Height of the fixed Gaussian bump in the log density at the centre (`RadianceField`'s `blob`): the
field starts as an object in the middle (opaque within about half the box's half-width), not a fog."""
HELD_OUT, HELD_OUT_SEED, GREY = 8, 12_345, 0.5
"""Views never used in optimisation (their own seed), over a grey background, judge the result."""
FRAMES, MESH_RESOLUTION = 48, 128


def check_run_folder(out: str | os.PathLike, settings: dict[str, Any] | None = None) -> Path:
    """`out` if it is a new or empty folder, or a run folder to resume (it holds checkpoint.pt, of a run
    with these `settings` when they are given); fails before any work otherwise."""
    folder = io_check_run_folder(out, "checkpoint.pt", "volume run")
    ours = folder / "checkpoint.pt"
    if settings is not None and ours.is_file() and load_checkpoint(ours)["settings"] != settings:
        raise UserError(f"--out {folder} holds another run: give a new or empty folder, or the run's own")
    return folder


def anneal_steps(out: str | os.PathLike | None, steps: int) -> int:
    """Steps over which the opacity target falls: `ANNEAL` of the first run's `steps`, kept when a run is
    resumed with more, so a resumed run anneals as it began."""
    if out is not None and (Path(out) / "checkpoint.pt").is_file():
        recorded = load_checkpoint(Path(out) / "checkpoint.pt")["settings"].get("anneal_steps")
        if isinstance(recorded, int):
            return recorded
    return max(1, round(ANNEAL * steps))


def target_coverage(i: int, anneal: int, coverage: float) -> float:
    """The mean opacity allowed at step `i`: `START_COVERAGE` falling to `coverage` over the first
    `anneal` steps (never below `coverage`)."""
    left = max(0.0, 1 - i / max(1, anneal))
    return max(coverage, coverage + (START_COVERAGE - coverage) * left)


def held_out(field: RadianceField, size: int, n: int = HELD_OUT, seed: int = HELD_OUT_SEED) -> Tensor:
    """RGBA views (n,4,S,S) of `field` from `n` random cameras drawn with `seed` (not training's)."""
    return field.render(random_views(CAMERA, n, size, torch.Generator().manual_seed(seed)))[0].cpu()


def judge(model: Model, objective: Objective, rgba: Tensor, best: float) -> dict[str, float | None]:
    """The objective's mean value on `rgba` views over grey, seen at the model's input size as the
    natural photos are, that value against the best photo (when that is positive), and the views' mean
    opacity."""
    value = float(values_at_input_size(model, objective, flatten(rgba, GREY)).mean())
    return {"value": round(value, 4), "vs_photo": round(value / best, 3) if best > 0 else None,
            "coverage": round(float(rgba[:, 3].mean()), 4)}


def volume_art(
    objective: Objective | str,
    model: Model | str = DEFAULT_MODEL,
    *,
    out: str | os.PathLike | None = None,
    steps: int = STEPS,
    size: int = SIZE,
    views: int = VIEWS,
    lr: float | None = None,
    coverage: float = COVERAGE,
    sparsity: float = SPARSITY,
    transforms: str | Callable | None = "standard",
    background: str | None = "noise",
    resolutions: Sequence[int] = RESOLUTIONS,
    samples: int = SAMPLES,
    grid: int = GRID,
    blob: float = BLOB,
    held_out_views: int = HELD_OUT,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    every: int = 100,
) -> Result:
    """A radiance field made from scratch so that `views` random views per step (`size` px, over a
    random `background`, moved by `transforms`) maximise `objective` on `model`, while their mean
    opacity is held under a target annealed down to `coverage` (penalty weight `sparsity` times the
    objective's size). The field starts as a soft blob in the middle (`blob`: the height of a fixed bump
    in its log density; 0: a uniform fog).

    With `out`, training checkpoints into that run folder and resumes from it. Reports, on
    `held_out_views` views never used in optimisation (over grey), the objective's value against
    its best natural photo and the mean opacity, for the field made and the field it started from.
    `result.save(DIR, frames=..., animation=..., resolution=...)` writes a run folder: checkpoint.pt
    (`nerf render`/`nerf export` read it), mesh.glb, turntable.gif|mp4, preview.png, metrics.json.
    """
    steps = int_in("steps", steps, 1, 1_000_000)
    size = int_in("size", size, 16, 4096)
    views = int_in("views", views, 1, 64)
    lr = LR if lr is None else positive_float("lr", lr)
    coverage = real("coverage", coverage, 0.0, 1.0, low_open=True)
    sparsity = non_negative_float("sparsity", sparsity)
    blob = real("blob", blob, 0.0, 30.0)
    held_out_views = int_in("held_out_views", held_out_views, 1, 256)
    samples, grid = int_in("samples", samples, 2, 4096), int_in("grid", grid, 2, 1024)
    if out is not None:
        check_run_folder(out)
    dev = resolve_device(device)
    net = load_model(model).to(dev)
    obj = resolve(objective, net)
    best = photo_reference(net, obj)
    settings = field_settings(BOUND, [int(r) for r in resolutions], FEATURES, HIDDEN, samples, grid,
                              views * size * size, lr, GREY)
    del settings["rays"]  # views x size² here: both are settings of their own
    anneal = anneal_steps(out, steps)
    settings.update(kind="volume", anneal_steps=anneal, objective=obj.name, model=net.name, size=size,
                    views=views, coverage=coverage, sparsity=sparsity, blob=blob, seed=seed,
                    background=str(background),
                    transforms=transforms if transforms is None or isinstance(transforms, str) else "custom")
    field = field_from(settings, seed)
    stages = stages_for(field, transforms, background, None, net.geometry)
    camera = {**CAMERA, "size": size}
    check_memory(random_views(camera, views, size, torch.Generator()), field, views * size * size, dev)
    field = field.to(dev)
    opt = torch.optim.Adam([{"params": field.grid_parameters(), "lr": lr},
                            {"params": field.mlp_parameters(), "lr": lr / 4}], betas=(0.9, 0.99), eps=1e-15)
    device_generator = torch.Generator(dev)

    def step(i: int, generator: torch.Generator) -> Tensor:
        cams = random_views(camera, views, size, generator)
        device_generator.manual_seed(int(torch.randint(1 << 62, (1,), generator=generator)))
        rgba = field.render_views(cams)[0]
        x = rgba
        for stage in stages:
            x = stage(x, device_generator)
        acts = Activations({k: v.float() for k, v in net.activations(x, obj.layers).items()}, net)
        acts[INPUT] = rgba
        value = obj(acts).mean()
        excess = torch.relu(rgba[:, 3].mean() - target_coverage(i, anneal, coverage))
        loss = -value + sparsity * value.detach().abs().clamp_min(1e-3) * excess
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (i + 1) % OCCUPANCY_EVERY == 0:  # last: a step cut short leaves the grid alone
            device_generator.manual_seed(int(torch.randint(1 << 62, (1,), generator=generator)))
            field.update_occupancy(device_generator)
        return loss.detach()

    start = time.perf_counter()
    with net.frozen(), tempfile.TemporaryDirectory() as scratch:
        checkpoint = Path(out if out is not None else scratch) / "checkpoint.pt"
        history = fit(step, {"field": field}, {"adam": opt}, steps, settings, checkpoint=checkpoint,
                      every=every, seed=seed, progress=progress, desc="volume",
                      extra=lambda: {"camera": camera})
        state = load_checkpoint(checkpoint)
    seconds = time.perf_counter() - start
    made = held_out(field.eval(), size, held_out_views)
    initial = held_out(field_from(settings, seed).to(dev), size, held_out_views)
    after, before = judge(net, obj, made, best), judge(net, obj, initial, best)
    metrics: dict[str, Any] = {
        "objective": obj.name, "model": net.name, "steps": steps, "size": size, "views": views,
        "device": str(dev), "seconds": round(seconds, 2), "held_out_views": held_out_views,
        "best_photo_value": round(best, 4), "held_out_value": after["value"],
        "held_out_vs_photo": after["vs_photo"], "coverage": after["coverage"],
        "coverage_target": coverage, "initial_held_out_value": before["value"],
        "initial_held_out_vs_photo": before["vs_photo"], "initial_coverage": before["coverage"]}
    return Result(images=made, history=history, objective=obj.name, param=field, seconds=seconds,
                  metrics=metrics, extras={"checkpoint": state, "camera": camera}, writer=write_volume)


def write_volume(result: Result, out: Path, frames: int = FRAMES, animation: str = "gif",
                 resolution: int = MESH_RESOLUTION) -> dict[str, Path]:
    """A volume result's writer: the run folder `out` (new, empty, or the run's own) with
    checkpoint.pt, mesh.glb (marching cubes; left out, with a warning, when the field is empty),
    turntable.gif|mp4 (`frames` frames; 0: none), preview.png (the held-out views) and metrics.json."""
    animation = choice("turntable format", animation, [s[1:] for s in ANIMATION_SUFFIXES])
    frames = int_in("frames", frames, 0, 10_000)
    resolution = int_in("resolution", resolution, 8, 1024)
    folder = check_run_folder(out, result.extras["checkpoint"]["settings"])
    field: RadianceField = result.param
    files: dict[str, Path] = {}
    with atomic_path(folder / "checkpoint.pt") as tmp:
        torch.save(result.extras["checkpoint"], tmp)
    files["checkpoint"] = folder / "checkpoint.pt"
    metrics = dict(result.metrics)
    try:
        mesh = export_field(field, resolution)
    except UserError as exc:
        warnings.warn(f"no mesh.glb: {exc}", RuntimeWarning, stacklevel=2)
        metrics["mesh_faces"] = 0
    else:
        mesh.save(folder / "mesh.glb")
        files["mesh"] = folder / "mesh.glb"
        metrics["mesh_faces"] = len(mesh.extras["mesh"].faces)
    camera = result.extras["camera"]
    if frames:
        files["turntable"] = film(field, camera, folder / f"turntable.{animation}", "orbit", frames,
                                  camera["size"])[1]["video"]
    files["preview"] = save_image(make_grid(flatten(result.images, 1.0), ncol=4), folder / "preview.png")
    with atomic_path(folder / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    files["metrics"] = folder / "metrics.json"
    return files
