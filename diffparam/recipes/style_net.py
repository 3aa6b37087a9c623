"""Fast style transfer (Johnson et al. 2016): train a `StyleNet` for one style image so that its
outputs minimise the project's own style and content objectives on a vision network (the embedded
model by default), then stylise any photo in one forward pass.

Training photos are the user's folder or scikit-image's photos, as random crops with random flips.
The network file (`--out NET.pt`) is also the training checkpoint: running the same command again
resumes, and asking for more steps trains on.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from diffparam.checks import int_in, non_negative_float, positive_float, real
from diffparam.errors import UserError
from diffparam.flow import follow_motion
from diffparam.io import (
    AnimationWriter,
    ImageSource,
    animation_fps,
    check_writable,
    load_image,
    read_frames,
    read_image,
    reference_photos,
    resize,
)
from diffparam.models.base import Model
from diffparam.models.registry import DEFAULT_MODEL, load_model
from diffparam.objectives import Activations, style, style_targets, total_variation
from diffparam.recipes.style import style_layers_of
from diffparam.render import resolve_device
from diffparam.result import Result
from diffparam.train import StyleNet, fit, load_checkpoint

STEPS = 2000
SIZE = 256
BATCH = 4
LR = 1e-3
TV_WEIGHT = 0.05
CROP_ZOOM = 1.25
"""Training photos are scaled to this many times the crop size (shorter side) before random crops."""
MAX_STEPS = 1_000_000
STABLE_BLEND = 0.7
"""In the stable video mode, the share of a pixel's output carried over from the frame before: the
most that kept the style distance within 10% in BENCHMARKS.md's "Stable video" measurement."""
STABILITY_NOISE = 0.04
"""Std of the pixel noise the stability loss makes the network ignore (images in [0, 1])."""
MOTION = (0.04, 0.04, 2.0)
"""The largest random motion between the two frames of the motion loss: shift (a share of the view),
zoom (a share of the size) and rotation (degrees), each drawn uniformly up to it."""


def _training_photos(images: str | os.PathLike | None, size: int) -> list[Tensor]:
    """The content photos, each (3, H, W) with its shorter side at CROP_ZOOM x `size`."""
    return [resize(p, round(CROP_ZOOM * size))[0] for p in reference_photos(images)]


def _crops(photos: list[Tensor], batch: int, size: int, generator: torch.Generator) -> Tensor:
    """`batch` random `size` px crops of random photos, each flipped left-right half the time."""
    picks = torch.randint(len(photos), (batch,), generator=generator).tolist()
    crops = []
    for i in picks:
        p = photos[i]
        top = int(torch.randint(p.shape[1] - size + 1, (1,), generator=generator))
        left = int(torch.randint(p.shape[2] - size + 1, (1,), generator=generator))
        crop = p[:, top:top + size, left:left + size]
        crops.append(crop.flip(-1) if bool(torch.rand(1, generator=generator) < 0.5) else crop)
    return torch.stack(crops)


def _random_motion(batch: int, generator: torch.Generator) -> Tensor:
    """(batch, 2, 3) affine maps (for `F.affine_grid`) of a camera that moved by up to MOTION."""
    shift, zoom, turn = MOTION
    u = torch.rand(batch, 4, generator=generator) * 2 - 1
    scale = 1 + zoom * u[:, 0]
    angle = torch.deg2rad(turn * u[:, 1])
    cos, sin = scale * torch.cos(angle), scale * torch.sin(angle)
    return torch.stack([torch.stack([cos, -sin, 2 * shift * u[:, 2]], 1),
                        torch.stack([sin, cos, 2 * shift * u[:, 3]], 1)], 1)


def motion_change(net: torch.nn.Module, x: Tensor, y: Tensor, theta: Tensor) -> Tensor:
    """The mean squared difference between the network's output for the frames `x` seen by a camera that
    moved by `theta` and its output `y` for `x` moved the same way, over the pixels in view: zero for a
    network whose output moves with its input (no flicker under that motion)."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    moved = net(F.grid_sample(x, grid, padding_mode="reflection", align_corners=False))
    follows = F.grid_sample(y, grid, padding_mode="zeros", align_corners=False)
    inside = (grid.abs() <= 1).all(-1).unsqueeze(1).to(y.dtype)
    return ((moved - follows).pow(2) * inside).sum() / (inside.sum() * y.shape[1]).clamp_min(1)


def content_distance(model: Model, layer: str, made: Tensor, photos: Tensor) -> Tensor:
    """Per image: the squared distance of `made`'s features at `layer` to `photos`', relative to the
    photos' (0: the same content), on the model's device."""
    return _relative_distance(model.activations(made, [layer])[layer], _features(model, layer, photos))


def _features(model: Model, layer: str, photos: Tensor) -> Tensor:
    with torch.no_grad():
        return model.activations(photos, [layer])[layer].float()


def _relative_distance(seen: Tensor, target: Tensor) -> Tensor:
    seen = seen.float()
    return (seen - target).pow(2).flatten(1).mean(1) / target.pow(2).flatten(1).mean(1).clamp_min(1e-12)


def train_style_net(
    style_image: ImageSource,
    out: str | os.PathLike,
    images: str | os.PathLike | None = None,
    model: Model | str = DEFAULT_MODEL,
    steps: int = STEPS,
    size: int = SIZE,
    batch: int = BATCH,
    lr: float = LR,
    style_weight: float = 1.0,
    content_weight: float = 1.0,
    tv_weight: float = TV_WEIGHT,
    stability_weight: float = 0.0,
    motion_weight: float = 0.0,
    width: int = 32,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    every: int = 100,
) -> Result:
    """Train a `StyleNet` after `style_image` into the file `out` (resumed when it exists, with the same
    settings); returns the loss per step, the network (`result.param`) and, as its image, the first
    training photo's centre stylised.

    The loss of a batch of photo crops x: style_weight x the style loss of net(x) (the `style`
    objective's relative Gram distance at the model's style layers) + content_weight x the relative
    feature distance of net(x) to x at its content layer + tv_weight x total variation +
    stability_weight x the mean squared change of net(x) when x gets pixel noise of std
    `STABILITY_NOISE` (Gupta et al. 2017's flow-free stability loss: a network that ignores such
    noise flickers less on video) + motion_weight x `motion_change` under a random camera motion of
    up to MOTION (a temporal loss with known flow, as Huang et al. 2017 train theirs: the output
    should move with the picture).
    """
    steps = int_in("steps", steps, 1, MAX_STEPS)
    size = int_in("size", size, 32, 2048)
    batch = int_in("batch", batch, 1, 256)
    lr = positive_float("lr", lr)
    weights = [non_negative_float(n, v) for n, v in
               (("style_weight", style_weight), ("content_weight", content_weight), ("tv_weight", tv_weight),
                ("stability_weight", stability_weight), ("motion_weight", motion_weight))]
    out = check_writable(out)
    dev = resolve_device(device)
    net_model = load_model(model).to(dev)
    style_layers, content_layer = style_layers_of(net_model, None, None)
    style_img = load_image(style_image, size, "the style image")
    photos = _training_photos(images, size)
    objective = style(style_targets(net_model, style_img, list(style_layers)))
    objective.validate(net_model)
    with torch.random.fork_rng(devices=[]):  # the network's initial weights, the caller's RNG untouched
        torch.manual_seed(seed)
        net = StyleNet(width).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    tv = total_variation()
    settings = dict(model=net_model.name, size=size, batch=batch, lr=lr, weights=weights, width=width,
                    seed=seed, style=str(style_image) if not isinstance(style_image, Tensor) else "tensor",
                    images=str(images) if images is not None else "scikit-image")

    def step(_i: int, generator: torch.Generator) -> float:
        x = _crops(photos, batch, size, generator).to(dev)
        y = net(x)
        with net_model.frozen():
            acts = Activations(net_model.activations(y, objective.layers | {content_layer}), net_model)
            acts["input"] = y
            kept = _relative_distance(acts[content_layer], _features(net_model, content_layer, x))
            loss = (weights[0] * -objective(acts) + weights[1] * kept + weights[2] * tv(acts)).mean()
        if weights[3]:
            noise = torch.randn(x.shape, generator=generator).to(dev) * STABILITY_NOISE
            loss = loss + weights[3] * (net((x + noise).clamp(0, 1)) - y).pow(2).mean()
        if weights[4]:
            loss = loss + weights[4] * motion_change(net, x, y, _random_motion(batch, generator).to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    start = time.perf_counter()
    history = fit(step, {"net": net}, {"adam": opt}, steps, settings, checkpoint=out, every=every, seed=seed,
                  progress=progress, desc="style-net",
                  extra=lambda: {"width": width, "blocks": net.n_blocks, "kind": "style-net"})
    net.eval()
    with torch.no_grad():  # a preview: the first training photo's centre, stylised
        p = photos[0]
        top, left = (p.shape[1] - size) // 2, (p.shape[2] - size) // 2
        preview = net(p[None, :, top:top + size, left:left + size].to(dev)).cpu()
    return Result(preview, history, objective=objective.name, param=net,
                  seconds=time.perf_counter() - start, files={"net": Path(out)})


def load_style_net(path: str | os.PathLike) -> StyleNet:
    """The `StyleNet` saved in `path` by `train_style_net`, in eval mode on the CPU."""
    state = load_checkpoint(path)
    if state.get("kind") != "style-net":
        raise UserError(f"{path} holds no style network (it was written by another trainer)")
    net = StyleNet(state["width"], state["blocks"])
    net.load_state_dict(state["modules"]["net"])
    return net.eval().requires_grad_(False)


def apply_style_net(net: StyleNet | str | os.PathLike, image: ImageSource, size: int | None = None,
                    device: str = "auto") -> Result:
    """`image` stylised by a trained network in one pass (at its own size, or with its shorter side at
    `size`)."""
    model = net if isinstance(net, StyleNet) else load_style_net(net)
    dev = resolve_device(device)
    if size is not None:
        img = load_image(image, size, "the image")
    elif isinstance(image, Tensor):
        img = image[None] if image.dim() == 3 else image
    else:
        img = read_image(image)
    start = time.perf_counter()
    with torch.no_grad():
        made = model.to(dev)(img.to(dev)).cpu()
    return Result(made, seconds=time.perf_counter() - start, param=model)


def stylise_frames(net: StyleNet, frames: Iterable[Tensor], stable: bool = False, device: str = "auto",
                   size: int | None = None, blend: float = STABLE_BLEND) -> Iterator[Tensor]:
    """Each frame (3, H, W) stylised, one at a time. `stable`: where the optical flow follows a pixel
    from the frame before, the output is `blend` of the previous output moved along the flow and the
    rest the network's output (a running average along the motion), which damps flicker."""
    blend = real("blend", blend, 0.0, 1.0, high_open=True)
    dev = resolve_device(device)
    net.to(dev)
    previous: tuple[Tensor, Tensor] | None = None
    with torch.no_grad():
        for frame in frames:
            x = frame if size is None else resize(frame[None], size)[0]
            made = net(x[None].to(dev))[0].cpu()
            if stable and previous is not None and previous[1].shape == x.shape:
                moved, mask = follow_motion(previous[0], previous[1], x)
                made = mask * (blend * moved + (1 - blend) * made) + (1 - mask) * made
            previous = (made, x)
            yield made


def stylise_video(net: StyleNet | str | os.PathLike, video: str | os.PathLike, out: str | os.PathLike,
                  size: int | None = None, device: str = "auto", progress: bool = True,
                  stable: bool = False, blend: float = STABLE_BLEND) -> Result:
    """Every frame of a GIF or MP4 stylised by a trained network into `out` (.gif or .mp4), frame by
    frame (`stable`: see `stylise_frames`): a long video is never held in memory, and `out` appears
    only when every frame is written. `result.images` holds the first stylised frame;
    `result.files["video"]` the file."""
    model = net if isinstance(net, StyleNet) else load_style_net(net)
    fps = animation_fps(video)
    start = time.perf_counter()
    first: Tensor | None = None
    with tqdm(disable=not progress or not sys.stderr.isatty(), desc="style-net", unit="frame",
              leave=False) as bar, AnimationWriter(out, fps) as writer:
        for made in stylise_frames(model, read_frames(video), stable, device, size, blend):
            writer.add(made)
            first = made[None] if first is None else first
            bar.update(1)
    assert first is not None
    return Result(first, seconds=time.perf_counter() - start, param=model,
                  metrics={"frames": writer.count, "fps": fps}, files={"video": writer.path})


def style_distance(model: Model, style_image: Tensor, images: Tensor) -> Tensor:
    """Per image: the style loss (`style` objective's relative Gram distance) of `images` to `style_image`
    at the model's default style layers, on the CPU: how far a picture is from the style."""
    layers, _ = style_layers_of(model, None, None)
    objective = style(style_targets(model, style_image, list(layers)))
    with torch.no_grad():
        acts = Activations(model.activations(images.to(model.device), objective.layers), model)
        return -objective(acts).cpu()
