"""Optimisation-based style transfer for videos (Ruder, Dosovitskiy and Brox 2016).

Styling each frame on its own flickers: every optimisation lands on a different texture. Here frame
t starts from the stylised frame t−1 moved along the optical flow onto it (`diffparam.flow`), and a
temporal term holds it to that picture wherever the flow is trusted both ways, so the texture
travels with the content. The first frame gets `steps`, each later one `frame_steps`: it starts
close to its answer. Frames stream in and out one at a time.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence

from torch import Tensor
from tqdm import tqdm

from diffparam.checks import choice, image_size, non_negative_float, positive_int
from diffparam.flow import follow_motion
from diffparam.io import AnimationWriter, ImageSource, animation_fps, check_animation, load_image, read_frames
from diffparam.memory import check_fits
from diffparam.models.base import Model
from diffparam.models.registry import DEFAULT_MODEL, load_model
from diffparam.objectives import content, content_target, style, style_targets, temporal
from diffparam.param import make_param
from diffparam.recipes.style import CONTENT_WEIGHT, SIZE, STEPS, style_layers_of
from diffparam.render import render, resolve_device
from diffparam.result import Result

FRAME_STEPS = 96
TEMPORAL_WEIGHT = 200.0
STARTS = ("warped", "content")
"""Where each frame after the first starts: the frame before moved along the flow, or its own content."""


def style_frames(
    frames: Iterable[Tensor],
    style_image: ImageSource,
    model: Model | str = DEFAULT_MODEL,
    *,
    param: str = "fourier",
    style_layers: Sequence[str] | None = None,
    content_layer: str | None = None,
    content_weight: float = CONTENT_WEIGHT,
    style_weights: Mapping[str, float] | None = None,
    temporal_weight: float = TEMPORAL_WEIGHT,
    start: str = "warped",
    size: int = SIZE,
    steps: int = STEPS,
    frame_steps: int = FRAME_STEPS,
    lr: float | None = None,
    seed: int = 0,
    device: str = "auto",
) -> Iterator[Tensor]:
    """Each frame (3, H, W) of `frames` stylised in turn (shorter side `size`), yielded as (3, h, w).

    `start` "warped" begins frame t from stylised frame t−1 moved along the flow (Ruder et al.) and
    gives it `frame_steps`; "content" begins it from frame t itself with `steps`. `temporal_weight`
    (0: off) holds it to the moved frame where the flow is trusted. With `start="content"` and
    `temporal_weight=0` every frame is styled on its own: the flickering baseline. The other
    arguments are `style_transfer`'s.
    """
    image_size(size)
    non_negative_float("content_weight", content_weight)
    non_negative_float("temporal_weight", temporal_weight)
    choice("start", start, STARTS)
    steps, frame_steps = positive_int("steps", steps), positive_int("frame_steps", frame_steps)
    net = load_model(model)
    layers, layer = style_layers_of(net, style_layers, content_layer)
    s_targets = style_targets(net, load_image(style_image, size, "the style image"), layers)
    before: tuple[Tensor, Tensor] | None = None  # (the last frame, its stylised picture)
    for frame in frames:
        x = load_image(frame, size, "a video frame")
        h, w = x.shape[-2:]
        if before is None:
            check_fits(net, lambda: make_param(param, h, w), resolve_device(device))  # noqa: B023
        objective = (style(s_targets, style_weights)
                     + content(layer, content_target(net, x, layer), content_weight))
        init, n = x, steps
        if before is not None and before[0].shape == x.shape:
            moved, mask = follow_motion(before[1][0], before[0][0], x[0])
            moved = moved[None].clamp(0, 1)
            if start == "warped":
                init, n = moved, frame_steps
            if temporal_weight > 0:
                objective = objective + temporal(moved, mask[None], temporal_weight)
        result = render(net, objective, param=make_param(param, h, w, image=init), steps=n, lr=lr, seed=seed,
                        device=device, progress=False, transforms=None)
        made = result.images[:1].cpu()
        before = (x, made)
        yield made[0]


def style_video(
    content_video: str | os.PathLike,
    style_image: ImageSource,
    out: str | os.PathLike,
    model: Model | str = DEFAULT_MODEL,
    *,
    progress: bool = True,
    **options,
) -> Result:
    """Every frame of the GIF or MP4 `content_video` stylised after `style_image` by `style_frames`
    (its keyword `options`), written to `out` (.gif or .mp4) frame by frame; `out` appears only when
    complete. `result.images` holds the first stylised frame, `result.files["video"]` the file."""
    check_animation(out, "the output video")
    fps = animation_fps(content_video)
    start = time.perf_counter()
    first: Tensor | None = None
    with tqdm(disable=not progress or not sys.stderr.isatty(), desc="style video", unit="frame",
              leave=False) as bar, AnimationWriter(out, fps) as writer:
        for made in style_frames(read_frames(content_video), style_image, model, **options):
            writer.add(made)
            first = made[None] if first is None else first
            bar.update(1)
    assert first is not None
    return Result(first, seconds=time.perf_counter() - start,
                  metrics={"frames": writer.count, "fps": fps}, files={"video": writer.path})
