"""Numbers that judge a visualization: a unit's activation against natural photos, class probability,
and whether it can be trusted (`trust`: sanity score, plausibility, diversity; see docs/trust.md)."""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

from diffparam.evaluate.photos import photo_pool
from diffparam.evaluate.trust import (
    Sanity,
    batch_diversity,
    frechet_distance,
    pixel_diversity,
    plausibility_distance,
    report,
    sanity,
    sifid,
)
from diffparam.models.base import OUTPUT, Model
from diffparam.objectives import Activations, Objective, channel

__all__ = [
    "Sanity", "batch_diversity", "class_probability", "frechet_distance", "natural_photos",
    "objective_values", "photo_pool", "photo_reference", "pixel_diversity", "plausibility_distance",
    "report", "sanity", "sifid", "unit_ratio",
]


@lru_cache(maxsize=4)
def natural_photos(size: int) -> Tensor:
    """scikit-image's sample photos at `size` px, loaded once per size (shared: do not modify)."""
    from diffparam.io import sample_photos

    return sample_photos(size)


def objective_values(model: Model, objective: Objective, images: Tensor) -> Tensor:
    """The objective's per-image values on `images` (no transforms), shape (B,)."""
    x = images.to(model.device)
    with torch.no_grad():
        acts = Activations(model.activations(x, objective.layers), model)
        acts["input"] = x
        return objective(acts).cpu()


def photo_reference(model: Model, objective: Objective, size: int | None = None) -> float:
    """The objective's best value over scikit-image's sample photos at the model's native size."""
    photos = natural_photos(size or model.input_size)
    return float(objective_values(model, objective, photos).max())


def unit_ratio(model: Model, layer: str, c: int, images: Tensor) -> Tensor:
    """Each image's mean activation of channel `c` divided by the best over natural photos."""
    obj = channel(layer, c)
    return objective_values(model, obj, images) / photo_reference(model, obj)


def class_probability(model: Model, images: Tensor, label: str | int) -> Tensor:
    """Softmax probability of a class for each image, shape (B,)."""
    idx = model.class_index(label)
    with torch.no_grad():
        logits = model.activations(images.to(model.device), [OUTPUT])[OUTPUT]
    return logits.softmax(1)[:, idx].cpu()
