"""Circuits: how strongly each channel of the previous layer feeds a unit of an atlas layer.

Strength is d(unit's mean activation) / d(uniform rise of the input channel). One convolution: its
weights summed over the kernel. An EfficientNet MBConv block: the linear path expand → depthwise
(kernel summed) → project, each expanded channel scaled by how often its two ReLU6s pass gradient
on photos, plus the identity of the residual. Anything else: the measured mean gradient over
photos (`expected_gradient`, also the check of the other two).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from diffparam.checks import positive_int
from diffparam.errors import UserError
from diffparam.evaluate import natural_photos
from diffparam.io import SAMPLE_PHOTOS
from diffparam.models.base import OUTPUT, Model
from diffparam.models.efficientnet_lite import MBConvBlock
from diffparam.models.layout import canonical, first_tensor

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
    order = model.layer_order()
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
        x = torch.rand(1, model.geometry.channels, *model.native_size,
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

    One forward pass of `gate_photos` serves the whole model (kept in `model.cache`)."""
    if "gates" in model.cache:
        return model.cache["gates"]  # type: ignore[return-value]
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
    model.cache["gates"] = shares
    return shares


def mbconv_weights(model: Model, layer: str, gated: bool = True) -> Tensor:
    """The linear path of MBConv block `layer` from its input to its output, (out, in).

    project · diag(depthwise kernel sums · gate) · expand, plus the identity when the block is
    residual; `gate` is each expanded channel's share of photo positions where both its ReLU6s
    pass gradient (`gated=False`: 1, the ReLU6s ignored).
    """
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
        if not isinstance(out, Tensor):
            raise UserError(f"{source} returns {type(out).__name__}: circuits need layers that return "
                            "a tensor")
        kept["source"] = out.detach().float().requires_grad_()
        return kept["source"].clone().to(out.dtype)

    def capture(_m, _i, out):
        kept["layer"] = out
        raise _Done

    on_source, on_layer = model.layer_info(source), model.layer_info(layer)
    x = model.fitted(photos.to(model.device))
    height, width = x.shape[-2:]
    hooks = [modules[source].register_forward_hook(substitute),
             modules[layer].register_forward_hook(capture)]
    try:
        with torch.enable_grad(), model.frozen():
            try:
                model.module(model.normalize(x))
            except _Done:
                pass
    finally:
        for h in hooks:
            h.remove()
    if "layer" not in kept or "source" not in kept:
        raise UserError(f"{layer} does not run after {source} in model {model.name}")
    src = kept["source"]
    out = canonical(first_tensor(kept["layer"]), on_layer, height, width).float()  # type: ignore[arg-type]
    if not out.requires_grad:
        raise UserError(f"{layer} does not depend on {source} in model {model.name}")
    means = out.flatten(2).mean(2) if out.dim() > 2 else out
    seen = canonical(src, on_source, height, width).detach()
    grad_rows, attr_rows = [], []
    for o in range(means.shape[1]):
        (raw,) = torch.autograd.grad(means[:, o].sum(), src, retain_graph=True)
        g = canonical(raw, on_source, height, width)  # per channel, over the source's positions
        spatial = tuple(range(2, g.dim()))
        grad_rows.append((g.sum(spatial) if spatial else g).mean(0).cpu())
        attr_rows.append(((g * seen).sum(spatial) if spatial else g * seen).mean(0).detach().cpu())
    return torch.stack(grad_rows), torch.stack(attr_rows)


def gate_photos(model: Model) -> Tensor:
    """The photos (at the model's input size) that gate MBConv paths and measure gradients."""
    return natural_photos(model.input_size)


def connections(model: Model, layer: str) -> Connections | None:
    """Connection strengths from `previous_layer(model, layer)` to `layer`; None for a first layer.

    Kept per layer in `model.cache` (cleared when the model's modules change), so calling
    `circuit` for every channel of a layer costs one computation.
    """
    memo = model.cache.setdefault("connections", {})
    if layer in memo:
        return memo[layer]
    source = previous_layer(model, layer)
    found: Connections | None = None
    if source is not None:
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
    model.check_channel(layer, channel)
    k = positive_int("k", k)
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
