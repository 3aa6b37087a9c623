"""CPPN art: optimise a CPPN at a small size, render it at any size, film its training, morph two.

The article's "light paintings": a CPPN is a function of continuous coordinates, so the network
trained on a 224 px canvas can be evaluated on a canvas of any size afterwards.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from diffparam.errors import UserError
from diffparam.io import AnimationWriter, atomic_path, check_writable, make_grid
from diffparam.models.base import Model
from diffparam.objectives import Objective
from diffparam.param import CPPN
from diffparam.param.base import positive_int
from diffparam.render import Result, check_size, render, resolve_device

MAX_RENDER_SIZE = 16384
"""Largest side of a final render (16384² RGB needs about 1.9 GB: see `save_render`)."""


@dataclass
class CPPNArt:
    """What `cppn_art` made: the trained network, the render `Result` at the optimisation size, and the
    number of frames written to `video` (None when no video was asked for)."""

    cppn: CPPN
    result: Result
    video: Path | None = None
    video_frames: int = 0


def check_render_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) of a final render, each 16..MAX_RENDER_SIZE pixels."""
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    for s in (h, w):
        if isinstance(s, bool) or not isinstance(s, int) or not 16 <= s <= MAX_RENDER_SIZE:
            raise UserError(f"render size {s!r} is outside 16..{MAX_RENDER_SIZE} pixels")
    return h, w


def _frame(images: Tensor) -> Tensor:
    """One animation frame (C,H,W) from a batch: the image itself, or a grid of several."""
    return images[0] if images.shape[0] == 1 else make_grid(images)


def cppn_art(
    model: Model | str | torch.nn.Module,
    objective: Objective | str,
    size: int | tuple[int, int] = 224,
    steps: int = 512,
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = True,
    *,
    video: str | os.PathLike | None = None,
    every: int = 4,
    video_size: int | tuple[int, int] | None = None,
    fps: float = 12.0,
    hidden: int = 24,
    layers: int = 8,
    transforms: str | Callable | Iterable[Callable] | None = "standard",
) -> CPPNArt:
    """Optimise a CPPN of `size` for `objective`; with `video`, film it every `every` steps.

    The video (GIF or MP4 by suffix) starts with the random network and streams frames to disk;
    frames are `video_size` pixels (default `size`), rendered from the network, not resampled.
    """
    h, w = check_size(size)
    cppn = CPPN(h, w, hidden=hidden, layers=layers, generator=torch.Generator().manual_seed(seed))
    options = dict(param=cppn, transforms=transforms, steps=steps, lr=lr, seed=seed, device=device,
                   progress=progress)
    if video is None:
        return CPPNArt(cppn, render(model, objective, **options))
    every = positive_int("every", every)
    vh, vw = (h, w) if video_size is None else check_size(video_size)

    def frame_now(images: Tensor) -> Tensor:
        return _frame(images if (vh, vw) == (h, w) else cppn.render(vh, vw).cpu())

    with AnimationWriter(video, fps) as writer:
        with torch.no_grad():
            writer.add(frame_now(cppn()))

        def record(step: int, _loss: float, images: Tensor) -> None:
            if step % every == 0 or step == steps:
                writer.add(frame_now(images))

        result = render(model, objective, callback=record, **options)
    return CPPNArt(cppn, result, writer.path, writer.count)


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
    height, width = check_render_size(size)
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


def _check_frames(frames: object) -> int:
    frames = positive_int("frames", frames)
    if frames < 2:
        raise UserError(f"a morph needs at least 2 frames, got {frames}")
    return frames


def morph_frames(a: CPPN, b: CPPN, frames: int, size: int | tuple[int, int],
                 device: str | torch.device = "cpu") -> Iterator[Tensor]:
    """Frames (C,H,W) on the CPU of the CPPNs whose weights run linearly from `a`'s to `b`'s."""
    frames = _check_frames(frames)
    height, width = check_render_size(size)
    dev = resolve_device(device)
    for i in range(frames):
        mixed = a.interpolate(b, i / (frames - 1)).to(dev)
        yield _frame(mixed.render(height, width).cpu())


@dataclass
class Morph:
    """A written morph and its smoothness: mean absolute change (0..1) between adjacent frames."""

    path: Path
    adjacent: list[float]
    endpoints: float
    """Mean absolute difference between the first and the last frame."""

    @property
    def jump(self) -> float:
        """Largest adjacent-frame change over the mean one: 1 = evenly paced, large = a sudden jump."""
        return max(self.adjacent) / max(sum(self.adjacent) / len(self.adjacent), 1e-12)

    @property
    def detour(self) -> float:
        """Summed adjacent changes over the direct change (1 = as direct as a cross-fade; >= 1)."""
        return sum(self.adjacent) / max(self.endpoints, 1e-12)


def morph(
    a: CPPN,
    b: CPPN,
    path: str | os.PathLike,
    frames: int = 48,
    size: int | tuple[int, int] | None = None,
    fps: float = 12.0,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> Morph:
    """Write a GIF/MP4 morph from CPPN `a` to `b` by interpolating their weights, frame by frame.

    `size` defaults to `a`'s size. Frames stream to disk; only the previous one is kept (to measure
    the change between neighbours).
    """
    size = check_render_size((a.height, a.width) if size is None else size)
    frames = _check_frames(frames)
    a.check_same_architecture(b)  # before any file is touched
    adjacent: list[float] = []
    first = previous = None
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
    return Morph(writer.path, adjacent, float((previous - first).abs().mean()))
