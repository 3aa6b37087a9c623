"""CPPN art: optimise a CPPN at a small size, render it at any size, film its training, morph two.

The article's "light paintings": a CPPN is a function of continuous coordinates, so the network
trained on a 224 px canvas can be evaluated on a canvas of any size afterwards.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from diffparam import deprecation
from diffparam.checks import IMAGE_SIZES, image_size, positive_int, whole
from diffparam.errors import UserError
from diffparam.io import AnimationWriter, atomic_path, check_writable, make_grid
from diffparam.memory import check_fits
from diffparam.models.base import Model
from diffparam.models.registry import load_model
from diffparam.objectives import Objective
from diffparam.param import CPPN
from diffparam.render import render, resolve_device
from diffparam.result import Result, write_images

MAX_RENDER_SIZE = 16384
"""Largest side of a final render (16384² RGB needs about 1.9 GB: see `save_render`)."""
RENDER_SIZES = (IMAGE_SIZES[0], MAX_RENDER_SIZE)


def _frame(images: Tensor) -> Tensor:
    """One animation frame (C,H,W) from a batch: the image itself, or a grid of several."""
    return images[0] if images.shape[0] == 1 else make_grid(images)


def write_cppn(result: Result, out: Path, render_size: int | tuple[int, int] | None = None,
               network: str | os.PathLike | None = None, progress: bool = False) -> dict[str, Path]:
    """A CPPN art result's writer: the image at `out` (a PNG), rendered afresh at `render_size`
    when given (any size up to MAX_RENDER_SIZE, see `save_render`), and the network at `network`
    (a .pt file for `CPPN.load`) when given."""
    files = {}
    if render_size is None:
        files.update(write_images(result, out))
    else:
        files["image"] = save_render(result.param, out, render_size, progress=progress)
    if network is not None:
        result.param.save(network)
        files["network"] = Path(network)
    return files


@deprecation.renames(layers="depth")
def cppn_art(
    model: Model | str | torch.nn.Module,
    objective: Objective | str,
    param: CPPN | None = None,
    steps: int = 512,
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = True,
    *,
    size: int | tuple[int, int] = 224,
    video: str | os.PathLike | None = None,
    every: int = 4,
    video_size: int | tuple[int, int] | None = None,
    fps: float = 12.0,
    hidden: int = 24,
    depth: int = 8,
    transforms: str | Callable | Iterable[Callable] | None = "standard",
) -> Result:
    """Optimise a CPPN (`param`, default a new one of `size` with `hidden` units in each of `depth`
    layers) for `objective`; with `video`, film it every `every` steps.

    The video (GIF or MP4 by suffix) starts with the random network and streams frames to disk;
    frames are `video_size` pixels (default `size`), rendered from the network, not resampled.
    `Result.param` is the trained CPPN; `save(out, render_size=..., network=...)` writes the
    image at any size and the network (`write_cppn`).
    """
    if param is not None and not isinstance(param, CPPN):  # the old third argument, size
        deprecation.warn("cppn_art(model, objective, size)", "size=... (a keyword)")
        param, size = None, param
    if param is None:
        h, w = image_size(size)
        model = load_model(model)
        check_fits(model, lambda: CPPN(h, w, hidden=hidden, depth=depth), resolve_device(device),
                   lower="`hidden`, `depth` or `size`")
        param = CPPN(h, w, hidden=hidden, depth=depth, generator=torch.Generator().manual_seed(seed))
    h, w = param.height, param.width
    options = dict(param=param, transforms=transforms, steps=steps, lr=lr, seed=seed, device=device,
                   progress=progress)
    if video is None:
        result = render(model, objective, **options)
    else:
        every = positive_int("every", every)
        vh, vw = (h, w) if video_size is None else image_size(video_size, "video_size")

        def frame_now(images: Tensor) -> Tensor:
            return _frame(images if (vh, vw) == (h, w) else param.render(vh, vw).cpu())

        with AnimationWriter(video, fps) as writer:
            with torch.no_grad():
                writer.add(frame_now(param()))

            def record(step: int, _loss: float, images: Tensor) -> None:
                if step % every == 0 or step == steps:
                    writer.add(frame_now(images))

            result = render(model, objective, callback=record, **options)
        result.files["video"] = writer.path
        result.metrics["video_frames"] = writer.count
    result.writer = write_cppn
    return result


def save_render(
    cppn: CPPN,
    path: str | os.PathLike,
    size: int | tuple[int, int],
    index: int = 0,
    chunk_pixels: int | None = None,
    progress: bool = False,
) -> Path:
    """Render image `index` of `cppn` at `size` (up to MAX_RENDER_SIZE) and write it as a PNG.

    Rows are converted to 8 bits as they are computed, so the float image (12 bytes per pixel) is
    never held: memory is 3 bytes per pixel, plus Pillow's own 4-byte copy of an RGB image while it
    encodes (an RGBA or grey image is shared, not copied), plus one chunk (`CPPN.render_rows`).
    Measured at 4096 px on a CPU: about 120 MB more than before the call, against 215 MB for a float
    `CPPN.render` alone (bench/cppn_figures.py).
    """
    height, width = image_size(size, "render_size", RENDER_SIZES)
    if not 0 <= index < cppn.batch:
        raise UserError(f"image index {index} is out of range for a CPPN batch of {cppn.batch}")
    final = check_writable(path)
    if final.suffix.lower() != ".png":
        raise UserError(f"a CPPN render is written as PNG: give a .png path, not {final}")
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(cppn.channels)
    if mode is None:
        raise UserError(f"a PNG holds 1, 3 or 4 channels; this CPPN has {cppn.channels}")
    pixels = np.empty((height, width, cppn.channels), dtype=np.uint8)
    with tqdm(total=height, disable=not progress or not sys.stderr.isatty(), desc=f"render {width}x{height}",
              unit="row", leave=False) as bar:
        for start, colours in cppn.render_rows(height, width, chunk_pixels):
            rows = colours[index].clamp(0, 1).mul(255).round().to(torch.uint8)
            pixels[start:start + rows.shape[1]] = rows.permute(1, 2, 0).cpu().numpy()
            bar.update(rows.shape[1])
    # frombuffer shares the array's memory where Pillow's layout matches (L, RGBA); RGB is copied.
    image = Image.frombuffer(mode, (width, height), pixels, "raw", mode, 0, 1)
    with atomic_path(final) as tmp:
        image.save(tmp, format="PNG")
    return final


def morph_frames(a: CPPN, b: CPPN, frames: int, size: int | tuple[int, int],
                 device: str | torch.device = "cpu") -> Iterator[Tensor]:
    """Frames (C,H,W) on the CPU of the CPPNs whose weights run linearly from `a`'s to `b`'s."""
    frames = whole("frames", frames, 2)
    height, width = image_size(size, "render_size", RENDER_SIZES)
    dev = resolve_device(device)
    for i in range(frames):
        mixed = a.interpolate(b, i / (frames - 1)).to(dev)
        yield _frame(mixed.render(height, width).cpu())


def morph(
    a: CPPN,
    b: CPPN,
    path: str | os.PathLike,
    frames: int = 48,
    size: int | tuple[int, int] | None = None,
    fps: float = 12.0,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> Result:
    """Stream a GIF/MP4 morph from CPPN `a` to `b` to `path` by interpolating their weights.

    `size` defaults to `a`'s size. Only the previous frame is kept (to measure the change between
    neighbours). The Result's images are the first and the last frame; its metrics say how smooth
    the morph is: `adjacent`, the mean absolute change (0..1) between each pair of neighbouring
    frames; `endpoints`, between the first and the last; `jump`, the largest adjacent change over
    the mean one (1: evenly paced); `detour`, the summed changes over the direct one (1: as
    direct as a cross-fade).
    """
    size = image_size((a.height, a.width) if size is None else size, "render_size", RENDER_SIZES)
    frames = whole("frames", frames, 2)
    a.check_same_architecture(b)  # before any file is touched
    adjacent: list[float] = []
    first = previous = None
    start = time.perf_counter()
    bar = tqdm(total=frames, disable=not progress or not sys.stderr.isatty(), desc="morph",
               unit="frame", leave=False)
    with bar, AnimationWriter(path, fps) as writer:
        for frame in morph_frames(a, b, frames, size, device):
            if previous is None:
                first = frame
            else:
                adjacent.append(float((frame - previous).abs().mean()))
            writer.add(frame)
            previous = frame
            bar.update()
    assert first is not None and previous is not None
    endpoints = float((previous - first).abs().mean())
    metrics = {"adjacent": adjacent, "endpoints": endpoints,
               "jump": max(adjacent) / max(sum(adjacent) / len(adjacent), 1e-12),
               "detour": sum(adjacent) / max(endpoints, 1e-12)}
    return Result(torch.stack([first, previous]), seconds=time.perf_counter() - start,
                  objective=f"morph of {frames} frames", metrics=metrics, files={"animation": writer.path})


def _check_render_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """What `check_render_size` was (deprecated): (height, width), each 16..MAX_RENDER_SIZE."""
    return image_size(size, "render_size", RENDER_SIZES)


__getattr__ = deprecation.module_getattr(__name__, {
    "CPPNArt": "diffparam.result:Result",
    "Morph": "diffparam.result:Result",
    "check_render_size": "diffparam.recipes.cppn_art:_check_render_size",
})
