"""Feature accentuation (Hamblin, Fel et al., 2024): start from a photo and push one unit while
staying close to the photo, so a user sees what in *this* image drives the unit.

The image starts as the photo (a Fourier parameterization made from it); each step maximises the
objective minus `strength` times how far the image's activations at a middle layer of the path into
the unit have moved from the photo's (`objectives.closeness`), the image and the photo seen through
the same random transforms (`ReferencePair`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from diffparam.checks import choice, image_size, non_negative_float
from diffparam.errors import UserError
from diffparam.evaluate import objective_values
from diffparam.evaluate.trust import path_layers, report, unit_layer
from diffparam.io import ImageSource, load_image, photo_files, save_images
from diffparam.memory import check_fits
from diffparam.models.base import OUTPUT, Model
from diffparam.models.registry import DEFAULT_MODEL, load_model
from diffparam.objectives import Activations, Objective, closeness, first_half, resolve
from diffparam.param import kinds, make_param
from diffparam.param.pair import ReferencePair
from diffparam.render import render, resolve_device
from diffparam.result import Result

STRENGTH = 32.0
"""How strongly the image is held to the photo (see BENCHMARKS.md for the choice)."""
LR = 0.01
"""Adam's learning rate: a fifth of a visualization's, so the first steps do not scatter the photo."""
STEPS = 256
SIZE = 224


def default_layer(model: Model, objective: Objective) -> str:
    """Where the image is held to the photo: the outermost layer halfway along the path into the
    objective's deepest layer (the unit's layer itself when nothing comes before it)."""
    layer = unit_layer(model, objective)
    if layer is None:
        raise UserError(f"objective {objective.name} reads no layer of the model: name the `layer` to "
                        "hold the image to the photo at")
    path = path_layers(model, layer, most=10**6)
    return path[len(path) // 2] if path else layer


def accentuate(
    model: Model | str = DEFAULT_MODEL,
    objective: Objective | str = "blocks.10:5",
    image: ImageSource = "photo.jpg",
    *,
    strength: float = STRENGTH,
    layer: str | None = None,
    param: str = "fourier",
    size: int = SIZE,
    steps: int = STEPS,
    lr: float | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    transforms: str | None = "standard",
    photos: str | os.PathLike | None = None,
    evaluate: bool = True,
) -> Result:
    """Accentuate `objective` in `image` (a file or a (1,3,H,W) tensor in [0,1], resized to a
    shorter side of `size`).

    `strength` (≥ 0) holds the image to the photo at `layer` (default `default_layer`); 0 is a
    plain visualization seeded with the photo. `param` is a kind that can start from an image.
    The Result's image is the accentuation; `extras["seed"]` the photo as it was used. Metrics:
    `value` and `seed_value` (the objective on each, as made), `feature_distance` (how far the
    image moved at `layer`, relative to the photo's activations) and `pixel_rmse`; with `evaluate`,
    `report` (see `diffparam.evaluate.trust.report`, against the photos in `photos`).
    """
    image_size(size)
    strength = non_negative_float("strength", strength)
    choice("param", param, kinds(from_image=True))
    if evaluate and photos is not None:
        photo_files(photos)  # a bad folder fails now, not after the work
    net = load_model(model)
    obj = resolve(objective, net)
    at = net.check_layer(layer) if layer is not None else default_layer(net, obj)
    if at == OUTPUT:
        raise UserError("the image cannot be held to the photo at the model's output: give a `layer`")
    unit = unit_layer(net, obj)
    order = net.layer_order()
    if unit is not None and unit != OUTPUT and order.get(at, -1) > order.get(unit, -1):
        raise UserError(f"`layer` {at} runs after the objective's layer {unit}: hold the image at a layer "
                        "at or before it")
    photo = load_image(image, size, "the image").cpu()  # beside the Result's images, which are on the CPU
    check_fits(net, lambda: make_param(param, *photo.shape[-2:], batch=2), resolve_device(device),
               lower="`size`")
    start = make_param(param, *photo.shape[-2:], image=photo)
    held = first_half(obj) + strength * closeness(at) if strength else first_half(obj)
    result = render(net, held, param=ReferencePair(start, photo), steps=steps, lr=LR if lr is None else lr,
                    seed=seed, device=device, progress=progress, transforms=transforms)
    made = result.images[:1]
    result.images, result.objective = made, obj.name
    result.snapshots = {step: images[:1] for step, images in result.snapshots.items()}
    value = float(objective_values(net, obj, made)[0])
    seed_value = float(objective_values(net, obj, photo)[0])
    result.metrics.update(value=value, seed_value=seed_value,
                          feature_distance=_distance(net, at, made, photo),
                          pixel_rmse=float((made - photo).square().mean().sqrt()))
    if evaluate:
        result.metrics["report"] = report(net, made, obj, photos)
    result.extras.update(seed=photo, layer=at, strength=strength)
    result.writer = write_accentuation
    return result


def _distance(model: Model, layer: str, image: torch.Tensor, photo: torch.Tensor) -> float:
    """How far `image` has moved from `photo` at `layer`: the squared distance of their activations
    over the photo's squared norm (no transforms)."""
    with torch.no_grad():
        both = model.activations(torch.cat([image, photo]).to(model.device), [layer])
    return -float(closeness(layer)(Activations(both, model))[0])


def write_accentuation(result: Result, out: Path, with_seed: bool = False) -> dict[str, Path]:
    """The accentuation as a PNG at `out`; `with_seed`: the photo beside it, in one image."""
    images = torch.cat([result.extras["seed"], result.images]) if with_seed else result.images
    return {"image": save_images(images, out)[0]}
