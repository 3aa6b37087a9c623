"""The photo pool: crops of natural photos at the model's input size, and what the model computes on
them (pooled layer features, feature statistics, the embedding its classifier reads, objective
values). Computed once per model, size and source and kept in `Model.cache`, so an atlas of many
units pays for it once.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from diffparam.errors import UserError
from diffparam.evaluate import store
from diffparam.io import FEWEST_PHOTOS, REFERENCE_PHOTOS, center_crop, photo_files, reference_photos, resize
from diffparam.models.base import OUTPUT, Model
from diffparam.models.blocks import block_layers
from diffparam.objectives import Activations, Objective

ZOOMS = (1, 2, 3)
"""Each photo is seen with its shorter side at 1, 2 and 3 times the crop size, crops tiling it."""

CHUNK = 16
"""Crops run through the model at a time."""

STATISTICS_LAYERS = 5
"""Blocks, spread from the first to the last, whose feature statistics `feature_statistics` reads."""


def photo_crops(photos: list[Tensor], size: int) -> Tensor:
    """size x size crops (N,3,S,S) tiling each photo at every zoom of `ZOOMS`."""
    crops = []
    for photo in photos:
        for zoom in ZOOMS:
            fitted = resize(photo, zoom * size)
            h, w = fitted.shape[-2:]
            rows = torch.linspace(0, h - size, max(1, math.ceil(h / size - 0.25))).round().long()
            cols = torch.linspace(0, w - size, max(1, math.ceil(w / size - 0.25))).round().long()
            crops += [fitted[..., t:t + size, c:c + size] for t in rows.tolist() for c in cols.tolist()]
    return torch.cat(crops)


def pooled(t: Tensor) -> Tensor:
    """One vector per image from a layer's output: the mean over positions of an image-shaped
    (B,C,H,W) output, the mean over tokens of a (B,T,C) one, a (B,C) one as it is."""
    if t.dim() == 4:
        return t.mean((2, 3))
    if t.dim() == 3:
        return t.mean(1)
    return t.flatten(1)


def _chunks(images: Tensor, model: Model, resize_: bool = True) -> list[Tensor]:
    """`images` as the model sees the photo crops: shorter side at its input size, centre-cropped
    square (not squashed), in chunks on its device (only chunked with `resize_` False)."""
    size = model.input_size
    if resize_ and images.shape[-2:] != (size, size):
        images = center_crop(resize(images, size), size)
    return [c.to(model.device) for c in images.split(CHUNK)]


def _summaries(model: Model, images: Tensor, layers: list[str],
               summary: Callable[[Tensor], Tensor]) -> dict[str, Tensor]:
    """`summary` of each layer's output (in fp32) for `images` seen at the model's input size, one
    row per image, on the CPU."""
    found: dict[str, list[Tensor]] = {layer: [] for layer in layers}
    with torch.no_grad():
        for chunk in _chunks(images, model):
            acts = model.activations(chunk, layers)
            for layer in layers:
                found[layer].append(summary(acts[layer].float()).cpu())
    return {layer: torch.cat(values) for layer, values in found.items()}


def layer_features(model: Model, images: Tensor, layers: list[str]) -> dict[str, Tensor]:
    """Each layer's `pooled` output for `images` (B,3,H,W) seen at the model's input size: (B, C)
    on the CPU."""
    return _summaries(model, images, layers, pooled)


def spread_statistics(t: Tensor) -> Tensor:
    """A layer output's statistics per image: each channel's mean and standard deviation over
    positions (or tokens) of an image-shaped output, a vector output as it is."""
    if t.dim() == 4:
        t = t.flatten(2).transpose(1, 2)
    if t.dim() == 3:
        return torch.cat([t.mean(1), t.std(1)], 1)
    return t.flatten(1)


def statistics_layers(model: Model) -> list[str]:
    """Where `feature_statistics` reads: `STATISTICS_LAYERS` of the model's blocks, evenly spread
    (none for a model without blocks)."""
    try:
        blocks = block_layers(model)
    except UserError:
        return []
    picks = torch.linspace(0, len(blocks) - 1, min(STATISTICS_LAYERS, len(blocks))).round().long().tolist()
    return [blocks[i] for i in dict.fromkeys(picks)]


def feature_statistics(model: Model, images: Tensor, layers: list[str]) -> dict[str, Tensor]:
    """Each layer's `spread_statistics` for `images` seen at the model's input size: (B, D) on the CPU."""
    return _summaries(model, images, layers, spread_statistics)


def classifier_input(model: Model) -> nn.Module | str:
    """What `embedding` reads: the last `nn.Linear` of the model (its input is what the classifier
    sees), or, in a model without one, the name of the last layer before the output."""
    linears = [m for m in model.module.modules() if isinstance(m, nn.Linear)]
    if linears:
        return linears[-1]
    names = [info.name for info in model.layers() if info.name != OUTPUT]
    return names[-1] if names else OUTPUT


def embedding(model: Model, images: Tensor) -> Tensor:
    """The model's own features of `images` (B, D) on the CPU: the input of its last linear layer
    (the classifier's view of the image), pooled; the FID-like measures compare these."""
    where = classifier_input(model)
    if isinstance(where, str):
        return layer_features(model, images, [where])[where]
    seen: list[Tensor] = []

    def grab(_m: nn.Module, args: tuple) -> None:
        seen.append(pooled(args[0]).float().cpu())

    handle = where.register_forward_pre_hook(grab)
    try:
        with torch.no_grad():
            for chunk in _chunks(images, model):
                model(chunk)
    finally:
        handle.remove()
    return torch.cat(seen)


def values_at_input_size(model: Model, objective: Objective, images: Tensor, resize: bool = True) -> Tensor:
    """The objective's value on each of `images` (B,) seen at the model's input size (as they are
    with `resize` False), in chunks."""
    out = []
    with torch.no_grad():
        for chunk in _chunks(images, model, resize):
            acts = Activations(model.activations(chunk, objective.layers), model)
            acts["input"] = chunk
            out.append(objective(acts).float().cpu())
    return torch.cat(out)


@dataclass
class PhotoPool:
    """Crops of natural photos (N,3,S,S) at a model's input size, with what the model computes on
    them, computed on first use and kept on disk (`store`) for the next run."""

    folder: str | os.PathLike | None
    """scikit-image's photos (None) or a folder's, read only when crops are needed."""
    size: int
    source: str
    store_path: Path | None = None
    _crops: Tensor | None = None
    _layers: dict[str, Tensor] = field(default_factory=dict)
    _statistics: dict[str, Tensor] | None = None
    _embedding: Tensor | None = None
    reference: object | None = None
    """The plausibility distance's fitted reference (`trust._reference`), made on first use."""

    def __post_init__(self) -> None:
        kept = store.load(self.store_path)
        self._layers = dict(kept.get("layers") or {})  # type: ignore[call-overload]
        self._statistics = kept.get("statistics")  # type: ignore[assignment]
        self._embedding = kept.get("embedding")  # type: ignore[assignment]

    @property
    def crops(self) -> Tensor:
        """The crops (N,3,S,S), cut on first use (stored features need none)."""
        if self._crops is None:
            self._crops = photo_crops(reference_photos(self.folder), self.size)
        return self._crops

    def _keep(self) -> None:
        store.save(self.store_path, {"layers": self._layers, "statistics": self._statistics,
                                     "embedding": self._embedding})

    def features(self, model: Model, layers: list[str]) -> dict[str, Tensor]:
        """Each layer's pooled features of every crop (N, C)."""
        missing = [layer for layer in layers if layer not in self._layers]
        if missing:
            self._layers.update(layer_features(model, self.crops, missing))
            self._keep()
        return {layer: self._layers[layer] for layer in layers}

    def statistics(self, model: Model) -> dict[str, Tensor]:
        """The feature statistics of every crop at `statistics_layers` (N, D) each."""
        if self._statistics is None:
            self._statistics = feature_statistics(model, self.crops, statistics_layers(model))
            self._keep()
        return self._statistics

    def embedding(self, model: Model) -> Tensor:
        """The model's classifier-input features of every crop (N, D)."""
        if self._embedding is None:
            self._embedding = embedding(model, self.crops)
            self._keep()
        return self._embedding

    def values(self, model: Model, objective: Objective) -> Tensor:
        """The objective's value on every crop (N,); a single channel's comes from the pooled
        features, without another pass."""
        if objective.unit is not None:
            layer, c = objective.unit
            return self.features(model, [layer])[layer][:, c]
        return values_at_input_size(model, objective, self.crops)


def photo_pool(model: Model, photos: str | os.PathLike | None = None) -> PhotoPool:
    """The photo pool of `model` at its input size, from scikit-image's photos or the folder
    `photos`; made once and kept in `model.cache` (its features also on disk, `store`)."""
    source = "scikit-image" if photos is None else str(Path(photos).resolve())
    key = f"photo pool {model.input_size} {source}"
    if key not in model.cache:
        count = len(REFERENCE_PHOTOS) if photos is None else len(photo_files(photos))
        if count < FEWEST_PHOTOS:
            warnings.warn(f"only {count} photos in {photos}: the sanity score and plausibility distance "
                          f"measured against them are noisy; give {FEWEST_PHOTOS} or more varied photos",
                          RuntimeWarning, stacklevel=2)
        model.cache[key] = PhotoPool(photos, model.input_size, source, store.path_for(model, photos))
    return model.cache[key]  # type: ignore[return-value]
