"""Semi-transparent feature visualization: an RGBA image optimised over random backgrounds.

Each step `render` composites the RGBA image over a fresh random background, then transforms it,
then shows it to the model, so the unit objective is always measured on the composited image: a
transparent pixel shows the model noise that changes every step and cannot drive the unit, so
opacity has to be earned. The article's transparency objective multiplies the unit objective by
(1 - mean opacity): an opaque image gains nothing, and whatever opacity the unit does not need is
pushed away.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from diffparam import deprecation
from diffparam.backgrounds import BACKGROUNDS, Background, composite
from diffparam.checks import choice, image_size, shape
from diffparam.errors import UserError
from diffparam.evaluate import objective_values, photo_reference
from diffparam.io import resize, sample_photos
from diffparam.models.base import Model
from diffparam.models.registry import load_model
from diffparam.objectives import Objective, channel_list, parse, transparency
from diffparam.param import Parameterization, make_param
from diffparam.render import render
from diffparam.result import Result

EVALUATION_BACKGROUNDS = (*BACKGROUNDS, "photos")
"""Backgrounds for `activation_over_backgrounds`: new random draws of each random background, and the
photos."""


def render_transparent(
    model: Model | str | torch.nn.Module,
    objective: Objective | str,
    param: Parameterization | str = "fourier",
    steps: int = 512,
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = True,
    *,
    size: int | Sequence[int] = 224,
    batch: int = 1,
    background: str | Background = "noise",
    transforms: str | Callable | Iterable[Callable] | None = "standard",
    transparent: bool = True,
    **options: Any,
) -> Result:
    """Optimise an RGBA image for `objective` over random backgrounds.

    `param` is an RGBA parameterization, or a kind name ("fourier", "pixel", "cppn": built with
    an opacity channel, `batch` images of `size`). `objective` is multiplied by (1 - mean opacity)
    unless `transparent=False` (then opacity is free, which is the baseline the transparency
    objective is measured against). A channel list (`LAYER:C1,C2,...`) renders one image per
    channel. Other `options` (precision, input_size, callback, ...) go to `render`.
    `Result.images` are RGBA, (B, 4, H, W).
    """
    if not isinstance(param, Parameterization | str):  # the old third argument, size
        deprecation.warn("render_transparent(model, objective, size)", "size=... (a keyword)")
        param, size = "fourier", param
    if "kind" in options:  # not @deprecation.renames: an old call may also give the size positionally
        deprecation.warn("render_transparent(kind=...)", "param=...")
        param = options.pop("kind")
    net = load_model(model)
    if isinstance(objective, str):
        listed = channel_list(objective)
        batch = len(listed[1]) if listed else batch
        objective = parse(objective, net)
    if isinstance(param, str):
        h, w = image_size(size)
        param = make_param(param, h, w, batch=batch, generator=torch.Generator().manual_seed(seed),
                           alpha=True)
    elif param.channels != 4:
        raise UserError(f"render_transparent needs an RGBA parameterization (4 channels), got "
                        f"{param.channels}")
    return render(net, transparency(objective) if transparent else objective, param=param,
                  transforms=transforms, steps=steps, lr=lr, seed=seed, device=device,
                  progress=progress, background=background, **options)


def opacity(rgba: Tensor) -> Tensor:
    """Mean alpha of each image of an RGBA batch (B,4,H,W): 0 transparent, 1 opaque."""
    shape("opacity's RGBA batch", rgba, "B,C,H,W", C=4)
    return rgba[:, 3].flatten(1).mean(1)


def _backgrounds(background: str, draws: int, height: int, width: int,
                 generator: torch.Generator) -> Tensor:
    if background == "photos":
        return resize(sample_photos(max(height, width)), (height, width))
    draw = BACKGROUNDS[choice("background", background, EVALUATION_BACKGROUNDS)]
    return draw((draws, 3, height, width), torch.device("cpu"), generator)


def activation_over_backgrounds(
    model: Model,
    objective: Objective,
    rgba: Tensor,
    backgrounds: Sequence[str] = EVALUATION_BACKGROUNDS,
    draws: int = 8,
    seed: int = 12345,
) -> dict[str, Tensor]:
    """Each image's `objective` composited over backgrounds it never saw, over its best on photos.

    For each of `backgrounds`: `draws` new random ones (from `seed`, which should differ from the
    render's), or scikit-image's photos as backgrounds for "photos". Returns, per background, a tensor
    (B, backgrounds) of ratios to the objective's best value on the photos themselves.
    """
    shape("the RGBA batch", rgba, "B,C,H,W", C=4)
    generator = torch.Generator().manual_seed(seed)
    reference = photo_reference(model, objective)
    if reference <= 0:
        raise UserError(f"{objective.name} is not positive on any photo: a ratio to photos means nothing")
    h, w = rgba.shape[-2:]
    rgba = rgba.detach().cpu().float()
    out = {}
    for background in backgrounds:
        bg = _backgrounds(background, draws, h, w, generator)
        rows = [objective_values(model, objective, composite(img.expand(len(bg), -1, -1, -1), bg))
                for img in rgba]
        out[background] = torch.stack(rows) / reference
    return out

