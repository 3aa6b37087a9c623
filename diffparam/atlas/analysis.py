"""What the atlas page shows besides the images: circuits, natural-photo patches and channel groups.

- **Circuits** (`previous_layer`, `connections`, `circuit`): how strongly each channel of the
  previous layer feeds a unit, as d(unit's mean activation) / d(uniform rise of the input channel).
  One convolution: its weights summed over the kernel. An EfficientNet MBConv block: the linear
  path expand → depthwise (kernel summed) → project, each expanded channel scaled by how often
  its two ReLU6s pass gradient on photos, plus the identity of the residual. Anything else: the
  measured mean gradient over photos (`expected_gradient`, also the check of the other two).
- **Patches** (`photo_set`, `photo_statistics`, `top_patches`): the crops of scikit-image photos
  (whole and randomly cropped) where a channel fires most, one per photo region.
- **Groups** (`visualization_features`, `group_channels`, `describe_image`, `name_group`):
  channels clustered by the model's own response to their visualizations, and named only by
  colour or orientation statistics that most members share.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform
from torch import Tensor, nn

from diffparam.atlas.jobs import layer_order
from diffparam.errors import UserError
from diffparam.io import SAMPLE_PHOTOS, resize
from diffparam.models.base import OUTPUT, Model

PATCH_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field",
                "immunohistochemistry", "retina", "brick", "grass", "gravel", "coins", "moon", "clock")
"""scikit-image photos (all shipped with it, none downloaded) whose crops show what excites a unit."""

GATE_PHOTOS = SAMPLE_PHOTOS
"""The photos that measure how often an MBConv block's ReLU6s pass gradient (`connections`)."""


# -- the previous layer --------------------------------------------------------------------------
def _parent(name: str) -> str:
    return name.rpartition(".")[0]


def _is_stack(module: nn.Module) -> bool:
    """A Sequential of numbered blocks (`blocks`, ResNet's `layer1`): its output is its last block's."""
    children = list(module.named_children())
    return (isinstance(module, nn.Sequential) and bool(children)
            and all(n.isdigit() and next(m.children(), None) is not None for n, m in children))


def previous_layer(model: Model, layer: str) -> str | None:
    """The layer whose output feeds `layer`: the sibling (same parent module) that ran just before it.

    With no such sibling, the parent's previous sibling; a numbered stack (`blocks`) stands for its
    last block. None for the first layer (its input is the image) and for 'output'.
    """
    if layer == OUTPUT:
        return None
    model.channels(layer)  # checks the name; raises if the layer has no image or vector output
    order = layer_order(model)
    modules = dict(model.module.named_modules())
    name = layer
    while True:
        parent = _parent(name)
        before = [n for n in order if n not in (OUTPUT, name) and _parent(n) == parent
                  and order[n] < order[name]]
        if before:
            found = max(before, key=order.__getitem__)
            while _is_stack(modules[found]):
                children = [f"{found}.{c}" for c, _ in modules[found].named_children()]
                children = [c for c in children if c in order]
                if not children:
                    break
                found = max(children, key=order.__getitem__)
            return found
        if not parent:
            return None
        name = parent


# -- connections ----------------------------------------------------------------------------------
@dataclass
class Connections:
    """How strongly each channel of `source` feeds each channel of `layer`: `weights` (out, in)."""

    layer: str
    source: str
    weights: Tensor
    method: str
    """`conv`, `mbconv` or `gradient` (see `METHODS`)."""


METHODS = {
    "conv": "the layer's weights (a convolution's summed over its kernel; BatchNorm scale included)",
    "mbconv": "expand 1x1 -> depthwise kxk (kernel summed) -> project 1x1, each expanded channel "
              "scaled by the share of photo positions where its ReLU6s pass gradient, "
              "+1 on the diagonal for the residual",
    "gradient": "mean gradient of the unit's mean activation with respect to each input channel "
                "over photos (the layers are joined by more than one convolution)",
}

_POINTWISE = (nn.BatchNorm1d, nn.BatchNorm2d, nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU,
              nn.GELU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.ELU, nn.Mish,
              nn.Dropout, nn.Dropout2d)
_memo: weakref.WeakKeyDictionary[Model, dict[str, Connections | None]] = weakref.WeakKeyDictionary()
_gate_memo: weakref.WeakKeyDictionary[Model, dict[str, Tensor]] = weakref.WeakKeyDictionary()


def _flat_children(module: nn.Module) -> list[nn.Module]:
    if isinstance(module, nn.Sequential):
        return [m for child in module.children() for m in _flat_children(child)]
    return [module]


def _linear_part(module: nn.Module) -> tuple[nn.Module, nn.Module | None] | None:
    """(conv or linear, BatchNorm after it or None) when `module` is one of them plus pads and
    pointwise layers only; else None."""
    parts = _flat_children(module)
    linear = [m for m in parts if isinstance(m, nn.Conv2d | nn.Linear)]
    if len(linear) != 1:
        return None
    i = parts.index(linear[0])
    if not all(type(m).__name__.endswith(("Pad2d", "Pad")) or isinstance(m, nn.Identity)
               for m in parts[:i]):
        return None
    if not all(isinstance(m, _POINTWISE) for m in parts[i + 1:]):
        return None
    bn = next((m for m in parts[i + 1:] if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)), None)
    return linear[0], bn


def _summed(conv: nn.Module, bn: nn.Module | None = None) -> Tensor:
    """A conv's (or linear's) weights summed over the kernel, as a dense (out, in) matrix."""
    w = conv.weight.detach().float().cpu()
    w = w.flatten(2).sum(2) if w.dim() > 2 else w
    groups = getattr(conv, "groups", 1)
    if groups > 1:
        out, per = w.shape
        dense = torch.zeros(out, per * groups)
        step = out // groups
        for g in range(groups):
            dense[g * step:(g + 1) * step, g * per:(g + 1) * per] = w[g * step:(g + 1) * step]
        w = dense
    if bn is not None and getattr(bn, "running_var", None) is not None:
        scale = bn.weight.detach().float().cpu() / torch.sqrt(bn.running_var.float().cpu() + bn.eps)
        w = w * scale[:, None]
    return w


def _follows_in_sequence(modules: dict[str, nn.Module], source: str, layer: str) -> bool:
    """True when `layer` comes right after `source` in an nn.Sequential (so it gets its output)."""
    name = layer
    while name:
        parent = _parent(name)
        seq = modules[parent]
        if not isinstance(seq, nn.Sequential):
            return False
        names = [n for n, _ in seq.named_children()]
        i = names.index(name.rpartition(".")[2])
        if i == 0:
            name = parent
            continue
        before = f"{parent}.{names[i - 1]}" if parent else names[i - 1]
        while before != source and isinstance(modules[before], nn.Sequential) and len(modules[before]):
            last = [n for n, _ in modules[before].named_children()][-1]
            before = f"{before}.{last}"
        return before == source
    return False


def _feeds(model: Model, source: str, layer: str) -> bool:
    """True when `layer`'s module receives exactly `source`'s output as its (only) input."""
    modules = dict(model.module.named_modules())
    if _follows_in_sequence(modules, source, layer):
        return True
    seen: dict[str, Any] = {}
    hooks = [modules[source].register_forward_hook(lambda _m, _i, out: seen.setdefault("out", out)),
             modules[layer].register_forward_pre_hook(lambda _m, inp: seen.setdefault("in", inp))]
    try:
        x = torch.rand(1, 3, model.input_size, model.input_size,
                       generator=torch.Generator().manual_seed(0)).to(model.device)
        with torch.no_grad():
            model.activations(x, [layer])
    finally:
        for h in hooks:
            h.remove()
    inputs = seen.get("in", ())
    return len(inputs) == 1 and inputs[0] is seen.get("out")


def _gates(model: Model) -> dict[str, Tensor]:
    """For every ReLU6 stage (expand, depthwise) of every MBConv block: per channel, the share of
    photo positions where its output lies strictly inside (0, 6), i.e. where it passes gradient.

    One forward pass of `gate_photos` serves the whole model (memoised)."""
    if model in _gate_memo:
        return _gate_memo[model]
    from diffparam.models.efficientnet_lite import MBConvBlock

    shares: dict[str, Tensor] = {}

    def record(name: str):
        def hook(_m, _i, out: Tensor) -> None:
            inside = ((out > 0) & (out < 6)).float()
            shares[name] = inside.transpose(0, 1).flatten(1).mean(1).cpu()

        return hook

    hooks = []
    for name, module in model.module.named_modules():
        if isinstance(module, MBConvBlock):
            for stage in ("expand", "depthwise"):
                if getattr(module, stage) is not None:
                    hooks.append(getattr(module, stage).register_forward_hook(record(f"{name}.{stage}")))
    try:
        with torch.no_grad():
            model(gate_photos(model).to(model.device))
    finally:
        for h in hooks:
            h.remove()
    _gate_memo[model] = shares
    return shares


def mbconv_weights(model: Model, layer: str, gated: bool = True) -> Tensor:
    """The linear path of MBConv block `layer` from its input to its output, (out, in).

    project · diag(depthwise kernel sums · gate) · expand, plus the identity when the block is
    residual; `gate` is each expanded channel's share of photo positions where both its ReLU6s
    pass gradient (`gated=False`: 1, the ReLU6s ignored).
    """
    from diffparam.models.efficientnet_lite import MBConvBlock

    block = dict(model.module.named_modules()).get(model.check_layer(layer))
    if not isinstance(block, MBConvBlock):
        raise UserError(f"{layer} is not an MBConv block of model {model.name}")
    depth_part, project_part = _linear_part(block.depthwise), _linear_part(block.project)
    assert depth_part is not None and project_part is not None
    depthwise = torch.diagonal(_summed(*depth_part))
    gate = torch.ones_like(depthwise)
    if gated:
        shares = _gates(model)
        gate = shares[f"{layer}.depthwise"] * shares.get(f"{layer}.expand", 1.0)
    if block.expand is not None:
        expand_part = _linear_part(block.expand)
        assert expand_part is not None
        expand = _summed(*expand_part)
    else:
        expand = torch.eye(depthwise.numel())
    weights = _summed(*project_part) @ torch.diag(depthwise * gate) @ expand
    if block.residual:
        weights = weights + torch.eye(weights.shape[0])
    return weights


def expected_gradient(model: Model, layer: str, source: str, photos: Tensor) -> tuple[Tensor, Tensor]:
    """Measured on `photos`: (mean gradient, mean gradient x activation), each (out, in).

    Entry (o, i): the derivative of channel o's mean activation in `layer` with respect to a
    uniform rise of channel i in `source` (summed over positions, averaged over photos), and the
    same gradient weighted by the activation (what flows through, sign of the input included).
    """
    modules = dict(model.module.named_modules())
    kept: dict[str, Tensor] = {}

    class _Done(Exception):
        pass

    def substitute(_m, _i, out):
        kept["source"] = out.detach().float().requires_grad_()
        return kept["source"].clone().to(out.dtype)

    def capture(_m, _i, out):
        kept["layer"] = out
        raise _Done

    hooks = [modules[source].register_forward_hook(substitute),
             modules[layer].register_forward_hook(capture)]
    try:
        with torch.enable_grad():
            try:
                model.module(model.normalize(photos.to(model.device)))
            except _Done:
                pass
    finally:
        for h in hooks:
            h.remove()
    if "layer" not in kept or "source" not in kept:
        raise UserError(f"{layer} does not run after {source} in model {model.name}")
    src, out = kept["source"], kept["layer"].float()
    if not out.requires_grad:
        raise UserError(f"{layer} does not depend on {source} in model {model.name}")
    means = out.flatten(2).mean(2) if out.dim() > 2 else out
    grad_rows, attr_rows = [], []
    for o in range(means.shape[1]):
        (g,) = torch.autograd.grad(means[:, o].sum(), src, retain_graph=True)
        spatial = tuple(range(2, g.dim()))
        grad_rows.append((g.sum(spatial) if spatial else g).mean(0).cpu())
        attr_rows.append(((g * src).sum(spatial) if spatial else g * src).mean(0).detach().cpu())
    return torch.stack(grad_rows), torch.stack(attr_rows)


def gate_photos(model: Model) -> Tensor:
    """The photos (at the model's input size) that gate MBConv paths and measure gradients."""
    from diffparam.evaluate import natural_photos

    return natural_photos(model.input_size)


def connections(model: Model, layer: str) -> Connections | None:
    """Connection strengths from `previous_layer(model, layer)` to `layer`; None for a first layer.

    Memoised per model object and layer (the memo goes with the model), so calling `circuit` for
    every channel of a layer costs one computation.
    """
    memo = _memo.setdefault(model, {})
    if layer in memo:
        return memo[layer]
    source = previous_layer(model, layer)
    found: Connections | None = None
    if source is not None:
        from diffparam.models.efficientnet_lite import MBConvBlock

        module = dict(model.module.named_modules())[layer]
        part = _linear_part(module)
        direct = _feeds(model, source, layer)
        if direct and isinstance(module, MBConvBlock):
            found = Connections(layer, source, mbconv_weights(model, layer), "mbconv")
        elif direct and part is not None and part[0].weight.shape[0] == model.channels(layer):
            found = Connections(layer, source, _summed(*part), "conv")
        else:
            grads, _ = expected_gradient(model, layer, source, gate_photos(model))
            found = Connections(layer, source, grads, "gradient")
    memo[layer] = found
    return found


def circuit(model: Model, layer: str, channel: int, k: int = 4) -> dict[str, Any]:
    """The `k` previous-layer channels with the strongest positive and negative connections to a unit.

    Returns {"layer", "source", "method", "excite": [...], "inhibit": [...]}, each link a dict
    {"layer", "channel", "weight"} (strongest first); both lists are empty for a first layer.
    """
    n = model.channels(layer)
    if not 0 <= channel < n:
        raise UserError(f"{layer} has {n} channels: channel {channel} is out of range 0..{n - 1}")
    if k < 1:
        raise UserError(f"k must be at least 1, got {k}")
    found = connections(model, layer)
    if found is None:
        return {"layer": layer, "source": None, "method": None, "excite": [], "inhibit": []}
    row = found.weights[channel]
    top = min(k, row.numel())

    def links(values: Tensor, sign: float) -> list[dict[str, Any]]:
        vals, idx = (sign * values).topk(top)
        return [{"layer": found.source, "channel": int(i), "weight": float(sign * v)}
                for v, i in zip(vals.tolist(), idx.tolist(), strict=True) if v > 0]

    return {"layer": layer, "source": found.source, "method": found.method,
            "excite": links(row, 1.0), "inhibit": links(row, -1.0)}


# -- natural photos and patches -------------------------------------------------------------------
@dataclass
class PhotoSet:
    """Square views (N,3,S,S) of scikit-image photos, and where each came from.

    `boxes[n]` = (photo index, top, left, side) of view n in the full-resolution `sources[photo]`.
    """

    images: Tensor
    sources: list[Tensor]
    names: list[str]
    boxes: list[tuple[int, int, int, int]]


@lru_cache(maxsize=len(PATCH_PHOTOS))
def _photo_bytes(name: str) -> Tensor:
    """A scikit-image sample photo as (3,H,W) uint8 (kept small; read once per process)."""
    from skimage import data

    try:
        arr = np.asarray(getattr(data, name)())
    except (AttributeError, OSError, ModuleNotFoundError) as exc:
        raise UserError(f"scikit-image has no sample photo {name!r} here") from exc
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(arr[..., :3])).permute(2, 0, 1).contiguous()


def _load_photo(name: str) -> Tensor:
    return _photo_bytes(name).float() / 255.0


def photo_set(size: int = 160, crops: int = 48, seed: int = 0,
              names: Sequence[str] = PATCH_PHOTOS) -> PhotoSet:
    """Each photo's central square plus `crops` random squares (20–60% of its shorter side), at `size`."""
    if size < 16:
        raise UserError(f"photo size must be at least 16 pixels, got {size}")
    if crops < 0:
        raise UserError(f"crops must be 0 or more, got {crops}")
    sources = [_load_photo(n) for n in names]
    boxes: list[tuple[int, int, int, int]] = []
    for i, src in enumerate(sources):
        h, w = src.shape[-2:]
        side = min(h, w)
        boxes.append((i, (h - side) // 2, (w - side) // 2, side))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(crops):
        i = int(torch.randint(len(sources), (1,), generator=gen))
        h, w = sources[i].shape[-2:]
        side = max(16, int(min(h, w) * (0.2 + 0.4 * float(torch.rand(1, generator=gen)))))
        top = int(torch.randint(h - side + 1, (1,), generator=gen))
        left = int(torch.randint(w - side + 1, (1,), generator=gen))
        boxes.append((i, top, left, side))
    views = [resize(sources[i][None, :, y:y + s, x:x + s], (size, size)) for i, y, x, s in boxes]
    return PhotoSet(torch.cat(views).clamp(0, 1), sources, list(names), boxes)


@dataclass
class LayerStatistics:
    """One layer's activations over a `PhotoSet`: per view and channel, the strongest position."""

    peak: Tensor
    """(N, C) the highest activation of each channel in each view."""
    where: Tensor
    """(N, C) flat index of that position in the layer's grid."""
    grid: tuple[int, int]
    correlation: Tensor
    """(C, C) Pearson correlation of channels over every position of every view."""


def photo_statistics(model: Model, layers: Sequence[str], photos: PhotoSet, batch: int = 16,
                     progress: Callable[[int], None] | None = None) -> dict[str, LayerStatistics]:
    """Run the photos through the model once (in batches) and summarise each layer's channels."""
    peaks: dict[str, list[Tensor]] = {n: [] for n in layers}
    wheres: dict[str, list[Tensor]] = {n: [] for n in layers}
    sums: dict[str, list[Any]] = {}
    grids: dict[str, tuple[int, int]] = {}
    for start in range(0, len(photos.images), batch):
        x = photos.images[start:start + batch].to(model.device)
        with torch.no_grad():
            acts = model.activations(x, layers)
        for name in layers:
            t = acts[name].double()
            t = t[..., None, None] if t.dim() == 2 else t
            grids[name] = (t.shape[2], t.shape[3])
            flat = t.flatten(2)
            peak, where = flat.max(2)
            peaks[name].append(peak.float().cpu())
            wheres[name].append(where.cpu())
            cols = flat.transpose(1, 2).reshape(-1, t.shape[1])
            s = sums.setdefault(name, [0, 0.0, 0.0])
            s[0] += cols.shape[0]
            s[1] = s[1] + cols.sum(0)
            s[2] = s[2] + cols.T @ cols
        if progress is not None:
            progress(len(x))
    out = {}
    for name in layers:
        count, total, outer = sums[name]
        mean = total / count
        cov = outer / count - torch.outer(mean, mean)
        std = cov.diagonal().clamp_min(1e-12).sqrt()
        corr = (cov / torch.outer(std, std)).clamp(-1, 1).float().cpu()
        out[name] = LayerStatistics(torch.cat(peaks[name]), torch.cat(wheres[name]), grids[name], corr)
    return out


def effective_field(model: Model, layer: str, photos: Tensor, share: float = 0.9) -> int:
    """Side (pixels of `photos`) of the centred square that holds `share` of the input gradient of
    the layer's centre position, over a few photos: how much of a photo a unit there sees."""
    size = photos.shape[-1]
    x = photos[:len(GATE_PHOTOS)].to(model.device).requires_grad_()
    with torch.enable_grad():
        t = model.activations(x, [layer])[layer]
        if t.dim() != 4:
            return size
        h, w = t.shape[-2:]
        centre = t[:, :, h // 2, w // 2]
        (g,) = torch.autograd.grad(0.5 * (centre.float() ** 2).sum(), x)
    mass = g.abs().sum((0, 1)).cpu()
    total = float(mass.sum())
    if total <= 0:
        return size
    cy, cx = (h // 2 + 0.5) * size / h, (w // 2 + 0.5) * size / w
    for side in range(8, size + 1, 2):
        top, left = max(0, round(cy - side / 2)), max(0, round(cx - side / 2))
        if float(mass[top:top + side, left:left + side].sum()) >= share * total:
            return side
    return size


def top_patches(stats: LayerStatistics, photos: PhotoSet, channel: int, k: int = 4,
                field: int = 32, thumb: int = 64) -> list[dict[str, Any]]:
    """The `k` photo patches where `channel` peaks highest, no two centred within half a patch of
    each other in the same photo; each {"photo", "box", "activation", "image" (3,thumb,thumb)}."""
    order = stats.peak[:, channel].argsort(descending=True).tolist()
    size = photos.images.shape[-1]
    gh, gw = stats.grid
    chosen: list[dict[str, Any]] = []
    for n in order:
        if len(chosen) == k:
            break
        src, top, left, side = photos.boxes[n]
        scale = side / size
        pos = int(stats.where[n, channel])
        cy = top + ((pos // gw) + 0.5) * side / gh
        cx = left + ((pos % gw) + 0.5) * side / gw
        half = field * scale / 2
        if any(c["source"] == src and math.hypot(c["centre"][0] - cy, c["centre"][1] - cx) < half
               for c in chosen):
            continue
        photo = photos.sources[src]
        ph, pw = photo.shape[-2:]
        p = max(4, min(round(2 * half), ph, pw))
        y0 = int(min(max(0, round(cy - p / 2)), ph - p))
        x0 = int(min(max(0, round(cx - p / 2)), pw - p))
        crop = resize(photo[None, :, y0:y0 + p, x0:x0 + p], (thumb, thumb))[0].clamp(0, 1)
        chosen.append({"photo": photos.names[src], "source": src, "centre": (cy, cx),
                       "box": (y0, x0, p), "activation": float(stats.peak[n, channel]), "image": crop})
    for c in chosen:
        del c["source"], c["centre"]
    return chosen


# -- grouping -------------------------------------------------------------------------------------
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


def _cosine_distance(similarity: Tensor) -> np.ndarray:
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


def adjusted_rand(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two labelings: 1 identical, about 0 for unrelated ones."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(table, (ai, bi), 1)

    def pairs(x: np.ndarray) -> float:
        return float((x * (x - 1) / 2).sum())

    n = len(a)
    index, rows, cols = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    expected = rows * cols / (n * (n - 1) / 2) if n > 1 else 0.0
    top = (rows + cols) / 2 - expected
    return float((index - expected) / top) if top > 0 else 1.0


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


def _ranked(labels: np.ndarray, leaves: np.ndarray) -> np.ndarray:
    """Renumber groups 0..k-1: biggest first, ties by first appearance in leaf order."""
    first = {int(lab): pos for pos, lab in reversed(list(enumerate(labels[leaves])))}
    sizes = np.bincount(labels)
    ranked = sorted(first, key=lambda lab: (-sizes[lab], first[lab]))
    remap = {old: new for new, old in enumerate(ranked)}
    return np.array([remap[int(lab)] for lab in labels])


def cluster_similarity(similarity: Tensor, groups: int) -> np.ndarray:
    """Labels 0..groups-1 from average-linkage clustering of a (N, N) similarity (1 - s as distance)."""
    distance = _cosine_distance(similarity)
    tree = hierarchy.linkage(squareform(distance, checks=False), method="average")
    labels = hierarchy.fcluster(tree, groups, criterion="maxclust") - 1
    return _ranked(labels, hierarchy.leaves_list(tree))


def group_channels(features: Tensor, max_groups: int | None = None, min_groups: int = 2) -> Grouping:
    """Cluster rows of `features` by average linkage on cosine distance.

    The number of groups maximises the silhouette over min_groups..max_groups (default: up to
    n/3, at most 16); fewer than 4 items make one group.
    """
    n = features.shape[0]
    if n < 4:
        return Grouping(np.zeros(n, dtype=int), list(range(n)), 0.0)
    feats = F.normalize(features.double(), dim=1)
    distance = _cosine_distance(feats @ feats.T)
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
    labels = _ranked(best[1], leaves)
    order = sorted((int(i) for i in leaves), key=lambda i: labels[i])
    return Grouping(labels, order, best[0])


def separation(similarity: Tensor, labels: np.ndarray) -> dict[str, float]:
    """Mean similarity within groups and between groups under a (N, N) similarity matrix."""
    s = similarity.double().numpy()
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(labels), dtype=bool)
    within = s[same & off]
    between = s[~same]
    return {"within": float(within.mean()) if within.size else float("nan"),
            "between": float(between.mean()) if between.size else float("nan")}


# -- naming groups ---------------------------------------------------------------------------------
HUES = ((15, "red"), (45, "orange"), (70, "yellow"), (160, "green"), (200, "cyan"), (260, "blue"),
        (290, "purple"), (340, "pink"), (360, "red"))
"""Upper bound of each hue name, in degrees."""
COLOURFUL = 15 / 255
"""Colourfulness below which an image is black & white: Hasler & Süsstrunk's "not colourful"."""
ORIENTED = 0.25
"""Structure-tensor coherence above which an image has one dominant line orientation."""


def describe_image(image: Tensor) -> dict[str, Any]:
    """Colour and orientation statistics of one image (3,H,W) in [0,1], with words for them.

    `colourfulness` (Hasler & Süsstrunk), the main hue names weighted by saturation, the mean
    CIELAB (a*, b*) colour, and the structure tensor's `coherence` and line `angle` (degrees,
    0 = horizontal, counter-clockwise).
    """
    from skimage.color import rgb2hsv, rgb2lab

    img = image[:3].double().clamp(0, 1)
    r, g, b = img[0], img[1], img[2]
    rg, yb = r - g, 0.5 * (r + g) - b
    colourful = float(torch.sqrt(rg.var(unbiased=False) + yb.var(unbiased=False))
                      + 0.3 * torch.sqrt(rg.mean() ** 2 + yb.mean() ** 2))
    arr = img.permute(1, 2, 0).numpy()
    hsv = rgb2hsv(arr).reshape(-1, 3)
    names = list(dict.fromkeys(name for _, name in HUES))
    bins = np.searchsorted([bound for bound, _ in HUES], hsv[:, 0] * 360, side="right")
    which = np.array([names.index(name) for _, name in HUES])[bins.clip(max=len(HUES) - 1)]
    hist = np.bincount(which, weights=hsv[:, 1] * hsv[:, 2], minlength=len(names))
    ranked = [names[i] for i in np.argsort(-hist, kind="stable") if hist[i] > 0]
    colours = ranked[:1] + [n for n in ranked[1:2] if hist[names.index(n)] >= 0.5 * hist.max()]
    lab = rgb2lab(arr).reshape(-1, 3).mean(0)
    gray = (0.299 * r + 0.587 * g + 0.114 * b)[None, None]
    sobel = torch.tensor([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=torch.float64)[None, None] / 8
    gx = F.conv2d(gray, sobel)[0, 0]
    gy = F.conv2d(gray, sobel.transpose(-1, -2))[0, 0]
    jxx, jyy, jxy = float((gx * gx).mean()), float((gy * gy).mean()), float((gx * gy).mean())
    energy = jxx + jyy
    flat = energy < 1e-8  # no visible structure (numerical noise only)
    coherence = 0.0 if flat else math.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2) / energy
    # The gradients' dominant direction turned 90 degrees is the lines' direction (image y points down).
    angle = (math.degrees(0.5 * math.atan2(-2 * jxy, jxx - jyy)) + 90) % 180
    lines = ("horizontal", "diagonal /", "vertical", "diagonal \\")[round(angle / 45) % 4]
    words = ["black & white" if colourful < COLOURFUL else "–".join(colours)]
    if coherence > ORIENTED:
        words.append(f"{lines} lines")
    return {"colourfulness": colourful, "colours": colours, "ab": (float(lab[1]), float(lab[2])),
            "coherence": coherence, "angle": angle, "words": words}


def judge_groups(labels: np.ndarray, descriptions: Sequence[dict[str, Any]], rounds: int = 1000,
                 seed: int = 0) -> dict[str, float]:
    """How alike a grouping's members look, by statistics a person sees, against random groupings.

    `colour_within`/`colour_random`: mean CIELAB a*b* distance between two channels of one group /
    of different groups; `angle_within`/`angle_random`: the same for line orientation (degrees,
    only pairs where both images have clear lines). `colour_p`/`angle_p`: share of `rounds`
    random relabelings (same group sizes) whose within-group mean is at least as small.
    """
    n = len(labels)
    ab = np.array([d["ab"] for d in descriptions])
    colour = np.linalg.norm(ab[:, None] - ab[None, :], axis=2)
    angles = np.array([d["angle"] for d in descriptions])
    angle = np.abs((angles[:, None] - angles[None, :] + 90) % 180 - 90)
    lined = np.array([d["coherence"] > ORIENTED for d in descriptions])
    both = lined[:, None] & lined[None, :]
    off = ~np.eye(n, dtype=bool)

    def means(lab: np.ndarray) -> tuple[float, float, float, float]:
        same = (lab[:, None] == lab[None, :]) & off
        other = lab[:, None] != lab[None, :]
        def pick(m: np.ndarray, x: np.ndarray) -> float:
            return float(x[m].mean()) if m.any() else float("nan")

        return (pick(same, colour), pick(other, colour), pick(same & both, angle), pick(other & both, angle))

    def mean(x: np.ndarray) -> float:
        x = x[~np.isnan(x)]
        return float(x.mean()) if x.size else float("nan")

    found = means(labels)
    rng = np.random.default_rng(seed)
    null = np.array([means(rng.permutation(labels)) for _ in range(rounds)])
    return {"colour_within": found[0], "colour_random": mean(null[:, 0]),
            "colour_p": float(np.mean(null[:, 0] <= found[0])),
            "angle_within": found[2], "angle_random": mean(null[:, 2]),
            "angle_p": float(np.mean(null[:, 2] <= found[2])) if not math.isnan(found[2]) else float("nan")}


def name_group(descriptions: Sequence[dict[str, Any]], share: float = 0.6) -> tuple[str, float]:
    """A name made of the words (colour, line orientation) that at least `share` of the members
    carry, and the share of members that carry all of them; ("", 0) when no word is shared."""
    n = len(descriptions)
    if n == 0:
        return "", 0.0
    counts: dict[str, int] = {}
    for d in descriptions:
        for w in set(d["words"]):
            counts[w] = counts.get(w, 0) + 1
    shared = sorted((w for w, c in counts.items() if c / n >= share), key=lambda w: -counts[w])
    colour = [w for w in shared if not w.endswith("lines")][:1]
    lines = [w for w in shared if w.endswith("lines")][:1]
    words = colour + lines
    if not words:
        return "", 0.0
    carry = sum(all(w in d["words"] for w in words) for d in descriptions) / n
    return ", ".join(words), carry
