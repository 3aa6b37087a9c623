"""Grouping: an atlas layer's channels clustered by the model's own response to their visualizations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform
from torch import Tensor

from diffparam.atlas.circuits import previous_layer
from diffparam.models.base import Model


def feature_layers(model: Model, layer: str) -> list[str]:
    """`layer` and every layer before it along `previous_layer` (for EfficientNet: down to `stem`)."""
    chain = [layer]
    while (before := previous_layer(model, chain[-1])) is not None:
        chain.append(before)
    return chain


def visualization_features(model: Model, layer: str, images: Tensor, batch: int = 32) -> Tensor:
    """The model's own description of each visualization, (N, D) unit vectors.

    For `layer` and each layer before it (`feature_layers`): the mean activation per channel on
    the image, z-scored over the images, as a unit vector. The layer's own vector and the
    (normalised) concatenation of the earlier ones weigh half each: the layer says what the unit
    responds to, the early layers add the colour and orientation a person sees first.
    """
    names = feature_layers(model, layer)
    rows: dict[str, list[Tensor]] = {n: [] for n in names}
    for start in range(0, len(images), batch):
        with torch.no_grad():
            acts = model.activations(images[start:start + batch, :3].to(model.device), names)
        for n in names:
            t = acts[n]
            rows[n].append((t.flatten(2).mean(2) if t.dim() > 2 else t).float().cpu())
    blocks = []
    for n in names:
        f = torch.cat(rows[n])
        f = (f - f.mean(0)) / f.std(0, unbiased=False).clamp_min(1e-6)
        blocks.append(F.normalize(f, dim=1))
    if len(blocks) > 1:
        blocks = [blocks[0], F.normalize(torch.cat(blocks[1:], 1), dim=1)]
    return F.normalize(torch.cat(blocks, 1), dim=1)


def cosine_distance(similarity: Tensor) -> np.ndarray:
    """A symmetric (N, N) distance 1 − similarity (clipped at 0) with a zero diagonal."""
    d = (1.0 - similarity.double()).clamp_min(0).numpy()
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0.0)
    return d


def silhouette(distance: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette of a clustering under a distance matrix (members of singletons count 0)."""
    ids, inverse = np.unique(labels, return_inverse=True)
    if len(ids) < 2:
        return 0.0
    onehot = np.eye(len(ids))[inverse]
    counts = onehot.sum(0)
    sums = distance @ onehot
    own = counts[inverse]
    a = sums[np.arange(len(labels)), inverse] / np.maximum(own - 1, 1)
    others = np.where(onehot.astype(bool), np.inf, sums / counts)
    b = others.min(1)
    scores = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(scores.mean())


@dataclass
class Grouping:
    """Channels in groups: `labels[i]` is item i's group (0..k-1, biggest first); `order` lists
    items group by group, alike ones side by side (dendrogram order)."""

    labels: np.ndarray
    order: list[int]
    silhouette: float

    @property
    def groups(self) -> list[list[int]]:
        """The items of each group, in `order`."""
        out: list[list[int]] = [[] for _ in range(int(self.labels.max()) + 1)]
        for i in self.order:
            out[int(self.labels[i])].append(i)
        return out


def ranked_labels(labels: np.ndarray, leaves: np.ndarray) -> np.ndarray:
    """Renumber groups 0..k-1: biggest first, ties by first appearance in leaf order."""
    first = {int(lab): pos for pos, lab in reversed(list(enumerate(labels[leaves])))}
    sizes = np.bincount(labels)
    ranked = sorted(first, key=lambda lab: (-sizes[lab], first[lab]))
    remap = {old: new for new, old in enumerate(ranked)}
    return np.array([remap[int(lab)] for lab in labels])


def group_channels(features: Tensor, max_groups: int | None = None, min_groups: int = 2) -> Grouping:
    """Cluster rows of `features` by average linkage on cosine distance.

    The number of groups maximises the silhouette over min_groups..max_groups (default: up to
    n/3, at most 16); fewer than 4 items make one group.
    """
    n = features.shape[0]
    if n < 4:
        return Grouping(np.zeros(n, dtype=int), list(range(n)), 0.0)
    feats = F.normalize(features.double(), dim=1)
    distance = cosine_distance(feats @ feats.T)
    condensed = squareform(distance, checks=False)
    tree = hierarchy.linkage(condensed, method="average")
    leaves = hierarchy.leaves_list(hierarchy.optimal_leaf_ordering(tree, condensed))
    best: tuple[float, np.ndarray] | None = None
    for k in range(min_groups, max(min_groups, min(max_groups or 16, n // 3)) + 1):
        labels = hierarchy.fcluster(tree, k, criterion="maxclust") - 1
        if len(np.unique(labels)) < 2:
            continue
        score = silhouette(distance, labels)
        if best is None or score > best[0] + 1e-9:
            best = (score, labels)
    if best is None:
        return Grouping(np.zeros(n, dtype=int), [int(i) for i in leaves], 0.0)
    labels = ranked_labels(best[1], leaves)
    order = sorted((int(i) for i in leaves), key=lambda i: labels[i])
    return Grouping(labels, order, best[0])
