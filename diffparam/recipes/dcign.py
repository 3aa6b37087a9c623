"""Inverse graphics with a DC-IGN (Kulkarni et al. 2015): train on mini-batches where one factor varies
(`dcign_data`), then encode an image, move one graphics unit (turn, tilt, relight) and decode.

Training (`train_dcign`): each step takes `groups` mini-batches; in one where factor k varies, every code
unit but k's (for an `object` batch: but the free part) is clamped to the batch mean, its gradient
replaced by its difference from that mean (`train.dcign.clamp_batch`). `plain=True` is the baseline: the
same network and data, no clamping (a plain VAE). `decoder="render"`: the code is the renderer's angles
and decoding renders the image's known object (`dcign_render`). A run folder holds `net.pt` (the
checkpoint: running again resumes), `units.json` (what each unit carries, measured on the data once
training ends) and, for a rendering decoder, `objects.pt` (the meshes and textures it renders).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from diffparam.checks import choice, int_in, non_negative_float, positive_float, real
from diffparam.errors import UserError, first_line
from diffparam.io import AnimationWriter, ImageSource, atomic_path, center_crop, load_image
from diffparam.io import check_run_folder as io_check_run_folder
from diffparam.recipes.dcign_data import FACTORS, VARIES, DcignData, load_data
from diffparam.recipes.dcign_render import (
    BLUR,
    BLUR_STEPS,
    OBJECTS,
    Objects,
    load_objects,
    object_fingerprints,
    render_codes,
    render_step,
    save_objects,
    scene_objects,
)
from diffparam.render import resolve_device
from diffparam.result import Result
from diffparam.three_d.mesh import Mesh
from diffparam.train import fit, load_checkpoint
from diffparam.train.dcign import DCIGN, RenderEncoder, clamp_batch

STEPS = 3000
GROUPS = 4
LR = 1e-3
FREE = 13
WIDTH = 32
BETA = 1.0
"""Weight of the KL term (1: the plain variational bound)."""
INVARIANCE = 1.0
"""Scale of the clamped units' replacement gradient (their difference from the batch mean)."""
KIND = "dcign"
DECODERS = ("learned", "render")
"""A learned convolutional decoder, or the project's renderer (the code is then the renderer's angles)."""
NET, UNITS = "net.pt", "units.json"


def check_run_folder(out: str | os.PathLike) -> Path:
    """`out` if a run can be written there: a new or empty folder, or a DC-IGN run to resume."""
    return io_check_run_folder(out, NET, "DC-IGN run")


def r2(x: Tensor, y: Tensor) -> float:
    """R² of the least-squares linear fit (with an intercept) of `y` (N,) from the columns of `x` (N,K)."""
    a = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], 1)
    y = y.double()
    coef = torch.linalg.lstsq(a, y[:, None]).solution
    residual = (y - (a @ coef)[:, 0]).pow(2).sum()
    total = (y - y.mean()).pow(2).sum().clamp_min(1e-12)
    return float(1 - residual / total)


def encode_all(net: DCIGN | RenderEncoder, images: Tensor, chunk: int = 512) -> Tensor:
    """Code means (N, D) of images (N, C, S, S), on the network's device in chunks, returned on the CPU."""
    dev = next(net.parameters()).device
    with torch.no_grad():
        parts = [net.encode(images[i:i + chunk].to(dev))[0].cpu() for i in range(0, len(images), chunk)]
    return torch.cat(parts)


def unit_table(codes: Tensor, factors: Tensor) -> dict[str, list[float]]:
    """Per true factor (columns of `factors` (N,3)), the R² of its linear fit from each code unit alone."""
    units = range(codes.shape[1])
    return {f: [r2(codes[:, [u]], factors[:, j]) for u in units] for j, f in enumerate(FACTORS)}


def disentanglement(codes: Tensor, factors: Tensor) -> dict[str, dict[str, float]]:
    """Per factor: R² from its own graphics unit (`own`) and from all the other units together (`others`)."""
    out = {}
    for j, f in enumerate(FACTORS):
        rest = [u for u in range(codes.shape[1]) if u != j]
        out[f] = {"own": r2(codes[:, [j]], factors[:, j]), "others": r2(codes[:, rest], factors[:, j])}
    return out


def _units(net: DCIGN | RenderEncoder, data: DcignData) -> dict[str, Any]:
    """What `units.json` holds: each unit's range on the data (what `sweep` moves across: for a rendering
    decoder, the data's ranges) and, with true factors, the R² of each factor from each unit."""
    images = data.images.flatten(0, 1)
    codes = encode_all(net, images)
    out: dict[str, Any] = {"low": codes.quantile(0.02, 0).tolist(), "high": codes.quantile(0.98, 0).tolist()}
    if isinstance(net, RenderEncoder):
        out = {"low": [lo for lo, _ in net.ranges], "high": [hi for _, hi in net.ranges], "decoder": "render",
               "objects": sorted({n for batch in data.objects for n in batch})}
    if data.factors is not None:
        true = data.factors.flatten(0, 1)
        out["r2"] = unit_table(codes, true)
    return out


def train_dcign(data: DcignData | str | os.PathLike, out: str | os.PathLike, steps: int = STEPS,
                plain: bool = False, groups: int = GROUPS, lr: float = LR, free: int | None = None,
                width: int = WIDTH, beta: float | None = None, invariance: float = INVARIANCE, seed: int = 0,
                device: str = "auto", progress: bool = True, every: int = 100, decoder: str = "learned",
                meshes: Sequence[Mesh | str | os.PathLike] = (), blur: float | None = None,
                blur_steps: int | None = None) -> Result:
    """Train a DC-IGN (or with `plain`, the same network as a plain VAE) on `data` into the run folder `out`
    (resumed when it holds a run with the same settings); `result.param` is the network, `result.images`
    a batch and its reconstruction, `result.metrics["r2"]` each factor's R² from each unit.

    `decoder="render"`: the encoder outputs the angles and the renderer decodes (`dcign_render`; the
    objects' meshes come from the data, `meshes` or the sample shapes; `invariance` is then the weight
    of the pull towards the batch mean, `blur` the loss's starting blur, a fraction of the image side
    (default `BLUR`), narrowing to none over `blur_steps` steps (default `BLUR_STEPS`)). `free` (default
    `FREE`) and `beta` (default `BETA`) belong to a learned decoder, `meshes`, `blur` and `blur_steps` to
    the rendering one: giving one to the other decoder is an error, not silently ignored."""
    steps = int_in("steps", steps, 1, 10_000_000)
    groups = int_in("groups", groups, 1, 1024)
    decoder = choice("decoder", decoder, DECODERS)
    if decoder == "learned" and (meshes or blur is not None or blur_steps is not None):
        raise UserError("--mesh, --blur and --blur-steps apply to --decoder render")
    if decoder == "render" and (free is not None or beta is not None):
        raise UserError("--free and --beta apply to the learned decoder, not --decoder render")
    lr = positive_float("lr", lr)
    beta = BETA if beta is None else non_negative_float("beta", beta)
    invariance = non_negative_float("invariance", invariance)
    blur = BLUR if blur is None else real("blur", blur, 0.0, 1.0)
    blur_steps = BLUR_STEPS if blur_steps is None else int_in("blur_steps", blur_steps, 1, 10_000_000)
    free = FREE if free is None else free
    folder = check_run_folder(out)
    source = str(Path(data).resolve()) if not isinstance(data, DcignData) else "in memory"
    data = data if isinstance(data, DcignData) else load_data(data)
    dev = resolve_device(device)
    if decoder == "render":
        return _train_render(data, source, folder, steps, plain, groups, lr, width, invariance, seed, dev,
                             progress, every, scene_objects(data, meshes), blur, blur_steps)
    with torch.random.fork_rng(devices=[]):  # the initial weights; the caller's generator untouched
        torch.manual_seed(seed)
        net = DCIGN(data.size, data.channels, FACTORS, free, width)
    net.to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    images = data.images.to(dev)
    active = torch.zeros(len(VARIES), net.code, dtype=torch.bool)
    for k in range(len(FACTORS)):
        active[k, k] = True
    active[len(FACTORS), len(FACTORS):] = True  # an object batch: the free part carries it
    active, varies = active.to(dev), data.varies.to(dev)
    settings = dict(kind=KIND, data=source, batches=len(data.images), plain=plain, groups=groups, lr=lr,
                    beta=beta, invariance=invariance, seed=seed, **net.config())

    def step(_i: int, generator: torch.Generator) -> Tensor:
        pick = torch.randint(len(images), (groups,), generator=generator).to(dev)
        x = images[pick]  # (G, B, C, S, S)
        mean, log_var = net.encode(x.flatten(0, 1))
        eps = torch.randn(mean.shape, generator=generator).to(dev)
        z = (mean + eps * (0.5 * log_var).exp()).view(*x.shape[:2], -1)
        if not plain:
            z = clamp_batch(z, active[varies[pick]], invariance)
        made = net.logits(z.flatten(0, 1))
        target = x.flatten(0, 1)
        recon = F.binary_cross_entropy_with_logits(made, target, reduction="sum") / len(target)
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum() / len(target)
        loss = recon + beta * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    start = time.perf_counter()
    net.train()
    history = fit(step, {"net": net}, {"adam": opt}, steps, settings, checkpoint=folder / NET, every=every,
                  seed=seed, progress=progress, desc="plain VAE" if plain else "DC-IGN",
                  extra=lambda: {"kind": KIND, "config": net.config()})
    seconds = time.perf_counter() - start
    net.eval()
    units = _units(net, data)
    with atomic_path(folder / UNITS) as tmp:
        tmp.write_text(json.dumps(units, indent=1))
    shown = data.images[0].to(dev)
    with torch.no_grad():
        recon = net.decode(net.encode(shown)[0]).cpu()
    return Result(torch.cat([shown.cpu(), recon]), history, param=net.cpu(), seconds=seconds,
                  metrics={"r2": units.get("r2")}, files={"run": folder, "net": folder / NET})


def _train_render(data: DcignData, source: str, folder: Path, steps: int, plain: bool, groups: int, lr: float,
                  width: int, pull: float, seed: int, dev: torch.device, progress: bool, every: int,
                  objects: Objects, blur: float, blur_steps: int) -> Result:
    """`train_dcign` with the renderer as the decoder."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = RenderEncoder(data.size, data.channels, FACTORS, [data.ranges[f] for f in FACTORS], width)
    net.to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    settings = dict(kind=KIND, decoder="render", data=source, batches=len(data.images), plain=plain,
                    groups=groups, lr=lr, invariance=pull, blur=blur, blur_steps=blur_steps, seed=seed,
                    objects=object_fingerprints(objects), **net.config())
    step = render_step(net, opt, objects, data, groups, plain, pull, blur, blur_steps, dev)
    start = time.perf_counter()
    net.train()
    history = fit(step, {"net": net}, {"adam": opt}, steps, settings, checkpoint=folder / NET, every=every,
                  seed=seed, progress=progress, desc="DC-IGN, rendering decoder",
                  extra=lambda: {"kind": KIND, "decoder": "render", "config": net.config()})
    seconds = time.perf_counter() - start
    net.eval()
    units = _units(net, data)
    save_objects(objects, folder / OBJECTS)
    with atomic_path(folder / UNITS) as tmp:
        tmp.write_text(json.dumps(units, indent=1))
    shown = data.images[0]
    with torch.no_grad():
        codes = net.encode(shown.to(dev))[0]
        recon = render_codes(objects, data.objects[0], codes, data.size, data.channels).cpu()
    return Result(torch.cat([shown, recon]), history, param=net.cpu(), seconds=seconds,
                  metrics={"r2": units.get("r2")}, files={"run": folder, "net": folder / NET})


def load_dcign(run: str | os.PathLike) -> tuple[DCIGN | RenderEncoder, dict[str, Any]]:
    """The network of a run folder (eval mode, CPU, frozen) and its `units.json` (for a rendering decoder,
    with the objects it renders under "meshes")."""
    folder = Path(run)
    if not (folder / NET).is_file() or not (folder / UNITS).is_file():
        state = "not found" if not folder.exists() else f"holds no finished DC-IGN run ({NET}, {UNITS})"
        raise UserError(f"DC-IGN run folder {folder} {state}: give the --out of `diffparam dcign train`")
    state = load_checkpoint(folder / NET)
    if state.get("kind") != KIND:
        raise UserError(f"{folder / NET} holds no DC-IGN (it was written by another trainer)")
    try:
        units = json.loads((folder / UNITS).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {folder / UNITS}: {first_line(exc)}") from exc
    if state.get("decoder") == "render":
        net: DCIGN | RenderEncoder = RenderEncoder(**state["config"])
        units["meshes"] = load_objects(folder / OBJECTS)
    else:
        net = DCIGN(**state["config"])
    net.load_state_dict(state["modules"]["net"])
    return net.eval().requires_grad_(False), units


def as_input(net: DCIGN | RenderEncoder, image: ImageSource) -> Tensor:
    """An image file or tensor as the network takes it: (1, C, S, S), centre-cropped, grey if it is."""
    img = center_crop(load_image(image, net.size, "the image"), net.size)
    return img.mean(1, keepdim=True) if net.channels == 1 else img


def sweep(net: DCIGN | RenderEncoder, units: dict[str, Any], image: ImageSource, factor: str,
          frames: int = 24, object: str | None = None) -> Tensor:
    """`frames` images (F, C, S, S): `image` encoded, `factor`'s unit moved across the range it takes on
    the training data (2nd to 98th percentile; a rendering decoder: the data's range), decoded (rendered
    as `object`, one of the run's objects, needed when it has more than one)."""
    factor = choice("factor", factor, net.factors)
    frames = int_in("frames", frames, 2, 10_000)
    if isinstance(net, RenderEncoder):
        names = list(units["meshes"])
        if object is None and len(names) == 1:
            object = names[0]
        object = choice("object", object, names)
    elif object is not None:
        raise UserError("--object applies to a run with a rendering decoder (--decoder render)")
    u = net.unit(factor)
    with torch.no_grad():
        code = net.encode(as_input(net, image))[0].repeat(frames, 1)
        code[:, u] = torch.linspace(units["low"][u], units["high"][u], frames)
        if isinstance(net, RenderEncoder):
            return render_codes(units["meshes"], [object] * frames, code, net.size, net.channels)
        return net.decode(code)


def vary(run: str | os.PathLike, image: ImageSource, factor: str, out: str | os.PathLike, frames: int = 24,
         fps: float = 12.0, scale: int = 4, object: str | None = None) -> Result:
    """An animation `out` (GIF or MP4) of `image` with one graphics unit swept there and back (`sweep`;
    `object`: what a rendering decoder renders), each frame enlarged `scale` times; `result.images` the
    first, middle and last frames."""
    scale = int_in("scale", scale, 1, 32)
    net, units = load_dcign(run)
    start = time.perf_counter()
    made = sweep(net, units, image, factor, frames, object)
    big = F.interpolate(made, scale_factor=scale, mode="nearest")
    with AnimationWriter(out, fps) as writer:
        for frame in [*big, *big.flip(0)[1:-1]]:
            writer.add(frame)
    return Result(made[[0, frames // 2, -1]], seconds=time.perf_counter() - start, param=net,
                  metrics={"frames": writer.count}, files={"video": writer.path})
