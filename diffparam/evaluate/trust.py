"""Can a visualization be trusted? Numbers beside its activation, each against natural photos.

- **Sanity score** (after Geirhos et al., "Don't trust your eyes", ICML 2024, who built networks
  whose visualizations show anything while they behave normally on photos): a trustworthy
  visualization travels the network's path like the natural images that drive the unit. Along the
  layers leading to the unit, the image's pooled features are compared (cosine, in the photo
  pool's standardised space) with those of the 16 photo crops that drive the unit most, and scaled
  so that those crops score 1 (each against the others) and the crops below the best 32, natural
  images that hardly drive the unit, score 0 on average. The score of the 16 in between, which play
  no part in the scale, is reported beside it (`held_out`).
- **Plausibility distance**: how far the image's feature statistics (each channel's mean and
  spread over positions, at blocks spread through the model) are from natural photos': the mean
  distance to the 3 nearest photo crops, divided by the median of the same for held-out crops, so
  photos score about 1 and higher is further (a nearest-neighbour measure, after Kynkäänniemi et
  al. 2019, which a small reference set supports better than a Gaussian fit in thousands of
  dimensions). Statistics, not the classifier's pooled vector: in that vector a flat grey image or
  noise lies near the photos' centre and reads as more natural than a photo.
- **Fréchet distance** (FID's formula, for sets of images) and **diversity** (how different a
  batch of images is) on the classifier's input features.
- For a GAN learned from one image: **SIFID** (the Fréchet distance between one image's and the
  training image's per-position features) and **pixel diversity** (SinGAN's spread across samples).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from diffparam.errors import UserError
from diffparam.evaluate.photos import (
    PhotoPool,
    embedding,
    feature_statistics,
    layer_features,
    photo_pool,
    statistics_layers,
    values_at_input_size,
)
from diffparam.models.base import OUTPUT, Model
from diffparam.objectives import INPUT, Objective

TOP = 16
"""Photo crops that stand for 'natural images that drive the unit'; the next 16 are held out, and
the crops below them stand for natural images unrelated to the unit."""

PATH_LAYERS = 6
"""Layers on the path to the unit that the sanity score compares (spread evenly, the last kept)."""

STACK = 4
"""A layer of this many child layers or more, each with layers of its own, is a stack of blocks:
the path counts its blocks."""

NEIGHBOURS = 3
"""Nearest photo crops the plausibility distance averages over."""


def unit_layer(model: Model, objective: Objective) -> str | None:
    """The deepest layer an objective reads (None when it reads only the image)."""
    order = model.layer_order()
    layers = [layer for layer in objective.layers if layer != INPUT]
    if not layers:
        return None
    return max(layers, key=lambda layer: len(order) if layer == OUTPUT else order.get(layer, -1))


def path_layers(model: Model, layer: str, most: int = PATH_LAYERS) -> list[str]:
    """The outermost layers that finish before `layer` runs (the path into it), a stack of blocks
    counted as its blocks; at most `most` of them, spread evenly and ending with the one nearest
    the unit. For the model's output, the layers that only carry it (the classifier) are left out."""
    infos = model.layers()
    names = [info.name for info in infos]
    before = [n for n in names if n != OUTPUT] if layer == OUTPUT else names[:names.index(layer)]
    before = [n for n in before if not n.startswith(layer + ".") and not layer.startswith(n + ".")]
    if layer == OUTPUT:
        shapes = {info.name: info.shape for info in infos}
        while before and shapes[before[-1]] == shapes[OUTPUT]:
            before.pop()
    outer = []
    for n in before:
        if any(n.startswith(o + ".") for o in before):
            continue
        blocks = [c for c in before if c.startswith(n + ".") and "." not in c[len(n) + 1:]]
        stack = len(blocks) >= STACK and all(any(d.startswith(c + ".") for d in before) for c in blocks)
        outer += blocks if stack else [n]
    if len(outer) <= most:
        return outer
    picks = torch.linspace(0, len(outer) - 1, most).round().long().tolist()
    return [outer[i] for i in dict.fromkeys(picks)]


@dataclass
class Sanity:
    """Sanity scores of images that share one objective."""

    scores: Tensor
    """Per image (B,): 1 = processed like the photos that drive the unit, 0 = like unrelated ones."""
    per_layer: Tensor
    """(B, L): the score at each layer of `layers`."""
    layers: list[str]
    held_out: float
    """What the next-best photo crops score (natural images the scale was not made from)."""


def sanity(model: Model, objective: Objective, images: Tensor, photos: str | os.PathLike | None = None,
           top: int = TOP) -> Sanity:
    """The sanity score of each of `images` (B,3,H,W) for `objective` (see the module docstring)."""
    layer = unit_layer(model, objective)
    path = [] if layer is None else path_layers(model, layer)
    if not path:
        return _no_path(len(images))
    pool = photo_pool(model, photos)
    return _sanity(pool.features(model, path), pool.values(model, objective),
                   layer_features(model, images, path), path, top)


def unit_sanity(model: Model, layer: str, channels: Sequence[int], images: Tensor,
                photos: str | os.PathLike | None = None, top: int = TOP) -> list[Sanity]:
    """The sanity score of image i for channel channels[i] of `layer`: many units of one layer (an
    atlas's batch) with one pass over the images."""
    if len(channels) != len(images):
        raise UserError(f"{len(channels)} channels for {len(images)} images: give one each")
    path = path_layers(model, layer)
    if not path:
        return [_no_path(1) for _ in channels]
    pool = photo_pool(model, photos)
    theirs = pool.features(model, path)
    values = pool.features(model, [layer])[layer]
    mine = layer_features(model, images, path)
    return [_sanity(theirs, values[:, c], {k: v[i:i + 1] for k, v in mine.items()}, path, top)
            for i, c in enumerate(channels)]


def _no_path(n: int) -> Sanity:
    """No score: no layer comes before the unit, or no photo drives it."""
    nan = torch.full((n,), math.nan)
    return Sanity(nan, nan[:, None][:, :0], [], math.nan)


def _sanity(theirs: dict[str, Tensor], values: Tensor, mine: dict[str, Tensor], path: list[str],
            top: int) -> Sanity:
    """Score `mine` (each path layer's pooled features of the images) against the photo crops'
    features `theirs`, the crops ranked by the unit's `values` on them: the top k make the 1, all
    but the top 2k the 0, and the k between are the held-out check."""
    n = len(next(iter(mine.values())))
    nan = torch.full((n,), math.nan)
    k = max(2, min(top, len(values) // 4))
    order = values.argsort(descending=True)
    best, next_best, rest = order[:k], order[k:2 * k], order[2 * k:]
    if not len(rest) or float(values[best].min()) <= float(values[rest].median()):
        return _no_path(n)  # the photos do not drive the unit (dead or tied on them): no reference
    columns, held = [], []
    for name in path:
        photo = theirs[name]
        mean, spread = photo.mean(0), photo.std(0) + 1e-6

        def unit(x: Tensor, mean: Tensor = mean, spread: Tensor = spread) -> Tensor:
            return F.normalize((x - mean) / spread, dim=1)

        tops = unit(photo[best])
        centre = tops.mean(0)
        as_top = ((k * (tops @ centre) - 1) / (k - 1)).mean()  # each top crop against the others
        as_unrelated = (unit(photo[rest]) @ centre).mean()
        span = float(as_top - as_unrelated)
        if span <= 1e-6:
            columns.append(nan)
            held.append(math.nan)
            continue
        columns.append((unit(mine[name]) @ centre - as_unrelated) / span)
        held.append(float(((unit(photo[next_best]) @ centre - as_unrelated) / span).mean()))
    per_layer = torch.stack(columns, 1)
    return Sanity(per_layer.nanmean(1), per_layer, path, float(torch.tensor(held).nanmean()))


@dataclass
class _Reference:
    """The photo crops' feature statistics for the plausibility distance: half the crops (`fit`,
    standardised per feature and weighted so that each layer counts alike) to measure against, and
    the median distance of the other half from them (the unit)."""

    mean: dict[str, Tensor]
    spread: dict[str, Tensor]
    fit: Tensor
    median: float = 1.0

    def place(self, features: dict[str, Tensor]) -> Tensor:
        """Standardised, each layer divided by the square root of its size so layers count alike."""
        return torch.cat([(features[k].double() - mean) / self.spread[k] / math.sqrt(len(mean))
                          for k, mean in self.mean.items()], 1)

    def distance(self, features: dict[str, Tensor]) -> Tensor:
        near = torch.cdist(self.place(features), self.fit).topk(NEIGHBOURS, largest=False).values
        return near.mean(1)


def _statistics(model: Model, images: Tensor) -> dict[str, Tensor]:
    """What the plausibility distance compares: feature statistics along the model's blocks (the
    classifier's input for a model without blocks)."""
    layers = statistics_layers(model)
    return feature_statistics(model, images, layers) if layers else {"embedding": embedding(model, images)}


def _reference(model: Model, pool: PhotoPool) -> _Reference:
    """The plausibility reference of `pool`, made on first use and kept with it."""
    if pool.reference is not None:
        return pool.reference  # type: ignore[return-value]
    features = pool.statistics(model) if statistics_layers(model) else {"embedding": pool.embedding(model)}
    order = torch.randperm(len(pool.crops), generator=torch.Generator().manual_seed(0))
    fit, held = order[: len(order) // 2], order[len(order) // 2:]
    half = {k: v[fit].double() for k, v in features.items()}
    reference = _Reference({k: v.mean(0) for k, v in half.items()},
                           {k: v.std(0) + 1e-6 for k, v in half.items()}, torch.empty(0))
    reference.fit = reference.place(half)
    reference.median = float(reference.distance({k: v[held] for k, v in features.items()}).median()) or 1.0
    pool.reference = reference
    return reference


def plausibility_distance(model: Model, images: Tensor, photos: str | os.PathLike | None = None) -> Tensor:
    """How far each image's feature statistics are from natural photos' (B,): held-out photos ≈ 1,
    higher is further (see the module docstring)."""
    reference = _reference(model, photo_pool(model, photos))
    return (reference.distance(_statistics(model, images)) / reference.median).float()


def frechet_distance(model: Model, images: Tensor, photos: str | os.PathLike | None = None) -> float:
    """The Fréchet distance between Gaussians fitted to the images' and the photo crops' features
    (FID's formula on the model's own features); needs 2+ images. Small sets read high: compare
    sets of the same size, and against photos' own (`bench/trust.py` does)."""
    if len(images) < 2:
        raise UserError("a Fréchet distance needs at least 2 images")
    pool = photo_pool(model, photos)
    return _frechet(embedding(model, images).double(), pool.embedding(model).double())


def _frechet(a: Tensor, b: Tensor) -> float:
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    root_b = _sqrtm(cov_b)
    cross = _sqrtm(root_b @ cov_a @ root_b)
    return float((mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross.trace())


def _sqrtm(m: Tensor) -> Tensor:
    """Square root of a symmetric positive semi-definite matrix."""
    values, vectors = torch.linalg.eigh((m + m.T) / 2)
    return vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T


def batch_diversity(model: Model, images: Tensor, photos: str | os.PathLike | None = None) -> float:
    """How different a batch of images is, as the classifier sees them: the mean cosine distance
    between each pair's features, standardised by the photo crops'; 0 = the same image. Needs 2+."""
    if len(images) < 2:
        raise UserError("diversity needs at least 2 images")
    photo = photo_pool(model, photos).embedding(model).double()
    z = F.normalize((embedding(model, images).double() - photo.mean(0)) / (photo.std(0) + 1e-6), dim=1)
    similar = z @ z.T
    n = len(images)
    return float(1 - (similar.sum() - similar.diagonal().sum()) / (n * (n - 1)))


SIFID_LAYERS = {"efficientnet_lite0": "blocks.2.expand"}
"""The layer SIFID reads, per model: like SinGAN's (Inception's convolution before its second pooling),
rectified features at a quarter of the image's resolution."""


def sifid(model: Model, images: Tensor, real: Tensor, layer: str | None = None) -> Tensor:
    """Single-image FID (Shaham et al. 2019) of each image (B,3,H,W) against `real` (1,3,H,W): the
    Fréchet distance between Gaussians fitted to the features at `layer`'s positions; 0 = the same
    internal statistics. Per image, (B,)."""
    layer = layer or SIFID_LAYERS.get(model.name)
    if layer is None:
        raise UserError(f"SIFID has no default layer on {model.name}: give `layer` (a layer of rectified "
                        "features at about a quarter of the image's resolution)")

    def positions(x: Tensor) -> Tensor:
        with torch.no_grad():
            f = model.activations(x.to(model.device), [layer])[layer]
        return f.flatten(2).transpose(1, 2).double().cpu()  # (B, positions, channels)

    theirs = positions(real)[0]
    return torch.tensor([_frechet(mine, theirs) for mine in positions(images)])


def pixel_diversity(images: Tensor, real: Tensor) -> float:
    """The SinGAN paper's diversity of samples (B,3,H,W) of one image `real` (1,3,H,W): each pixel's
    intensity's standard deviation across the samples, averaged over pixels, over the intensities'
    standard deviation in `real`. 0: all alike. Needs 2+ samples."""
    if len(images) < 2:
        raise UserError("diversity needs at least 2 images")
    return float(images.mean(1).std(0).mean() / real.mean(1).std())


def report(model: Model, images: Tensor, objectives: Objective | Sequence[Objective],
           photos: str | os.PathLike | None = None) -> list[dict]:
    """Per image: its objective and value, the value against the best photo crop, the plausibility
    distance and the sanity score (with what held-out photos score). `objectives` is one for every
    image, or one per image."""
    per_image = [objectives] * len(images) if isinstance(objectives, Objective) else list(objectives)
    if len(per_image) != len(images):
        raise UserError(f"{len(per_image)} objectives for {len(images)} images: give one, or one per image")
    pool = photo_pool(model, photos)
    distances = plausibility_distance(model, images, photos)
    rows: list[dict] = [{} for _ in images]
    for objective in dict.fromkeys(per_image):
        which = [i for i, o in enumerate(per_image) if o is objective]
        mine = images[which]
        values = values_at_input_size(model, objective, mine)
        as_made = values_at_input_size(model, objective, mine, resize=False)
        best = float(pool.values(model, objective).max())
        checked = sanity(model, objective, mine, photos)
        for j, i in enumerate(which):
            rows[i] = {
                "image": i,
                "objective": objective.name,
                "value": json_number(values[j]),
                "value_as_made": json_number(as_made[j]),
                "vs_photos": json_number(float(values[j]) / best) if best > 0 else None,
                "plausibility_distance": json_number(distances[i]),
                "sanity_score": json_number(checked.scores[j]),
                "sanity_of_photos": json_number(checked.held_out),
                "path": checked.layers,
            }
    return rows


def json_number(x: float | Tensor) -> float | None:
    """A float for JSON; None for NaN (no score could be made)."""
    x = float(x)
    return None if math.isnan(x) else x
