"""What to maximise: objectives on a model's activations that add and scale like numbers.

An objective maps the captured activations to one value per image of the batch (shape (B,));
`render` maximises their sum. `image=i` makes an objective count for image i of the batch only, so
one render can make many different images at once.
"""

from __future__ import annotations

import builtins
import os
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from diffparam import deprecation
from diffparam.constant import Constant
from diffparam.errors import UserError
from diffparam.io import load_array
from diffparam.models.base import OUTPUT
from diffparam.models.layout import TOKENS, tokens_key

if TYPE_CHECKING:
    from diffparam.models.base import Model

INPUT = "input"
"""Key of the rendered image batch (before transforms) among the activations."""


class Activations(dict):
    """Captured layer outputs by name, plus `input` (the image batch) and the `model` they came from."""

    def __init__(self, values: dict[str, Tensor], model: Model | None = None) -> None:
        super().__init__(values)
        self.model = model

    @property
    def batch(self) -> int:
        """How many images the batch holds."""
        return next(iter(self.values())).shape[0]


Check = Callable[["Model"], None]


class Objective:
    """A differentiable score per image; combine with + - * / and scalars, e.g. `a - 0.1 * b`."""

    def __init__(
        self,
        fn: Callable[[Activations], Tensor],
        layers: Iterable[str] = (),
        name: str = "objective",
        checks: Sequence[Check] = (),
        graph_safe: bool = True,
        unit: tuple[str, int] | None = None,
    ) -> None:
        self.fn = fn
        self.layers = frozenset(layers)
        self.name = name
        self.checks = tuple(checks)
        self.graph_safe = graph_safe
        """Whether `fn` may be captured in a CUDA graph (no host synchronisation or copies)."""
        self.unit = unit
        """(layer, channel) when the objective is exactly one channel's mean activation on every
        image, so evaluations can read it off pooled features; None otherwise."""

    def __call__(self, acts: Activations) -> Tensor:
        """Per-image values, shape (B,)."""
        value = self.fn(acts)
        if value.dim() == 0:
            value = value.expand(acts.batch)
        return value

    def validate(self, model: Model) -> None:
        """Raise a UserError now if a layer, channel or class does not exist in `model`."""
        for check in self.checks:
            check(model)

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    # -- algebra -----------------------------------------------------------------------------
    def _combine(self, other: Objective | float, op: Callable, sym: str, swap: bool = False):
        if isinstance(other, Objective):
            a, b = (other, self) if swap else (self, other)
            return Objective(
                lambda acts: op(a(acts), b(acts)),
                a.layers | b.layers,
                f"({a.name} {sym} {b.name})",
                a.checks + b.checks,
                a.graph_safe and b.graph_safe,
            )
        if isinstance(other, (int, float)):
            c = float(other)
            name = f"({c:g} {sym} {self.name})" if swap else f"({self.name} {sym} {c:g})"
            fn = (lambda acts: op(c, self(acts))) if swap else (lambda acts: op(self(acts), c))
            return Objective(fn, self.layers, name, self.checks, self.graph_safe)
        return NotImplemented

    def __add__(self, other):
        return self._combine(other, lambda a, b: a + b, "+")

    def __radd__(self, other):
        return self._combine(other, lambda a, b: a + b, "+", swap=True)

    def __sub__(self, other):
        return self._combine(other, lambda a, b: a - b, "-")

    def __rsub__(self, other):
        return self._combine(other, lambda a, b: a - b, "-", swap=True)

    def __mul__(self, other):
        return self._combine(other, lambda a, b: a * b, "*")

    def __rmul__(self, other):
        return self._combine(other, lambda a, b: a * b, "*", swap=True)

    def __truediv__(self, other):
        return self._combine(other, lambda a, b: a / b, "/")

    def __rtruediv__(self, other):
        return self._combine(other, lambda a, b: a / b, "/", swap=True)

    def __neg__(self) -> Objective:
        return Objective(lambda acts: -self(acts), self.layers, f"-{self.name}", self.checks, self.graph_safe)

    @staticmethod
    def sum(objectives: Iterable[Objective]) -> Objective:
        """The sum of several objectives (also what the built-in `sum` gives)."""
        return builtins.sum(objectives, start=0)  # type: ignore[return-value]


# -- helpers -------------------------------------------------------------------------------------
def _for_image(values: Tensor, image: int | None) -> Tensor:
    """Keep only image `image` of per-image values (others 0); all images when it is None."""
    if image is None:
        return values
    if not -values.shape[0] <= image < values.shape[0]:
        raise UserError(f"`image` {image} is out of range for a batch of {values.shape[0]}")
    # Built on the device with no host copy, so it also works inside a CUDA graph capture.
    mask = torch.arange(values.shape[0], device=values.device) == image % values.shape[0]
    return values * mask.to(values.dtype)


def _per_image_mean(t: Tensor) -> Tensor:
    return t.flatten(1).mean(1) if t.dim() > 1 else t


def _layer_check(layer: str) -> Check:
    def check(model: Model) -> None:
        model.check_layer(layer)

    return check


def _channel_check(layer: str, channel: int) -> Check:
    def check(model: Model) -> None:
        model.check_channel(layer, channel)

    return check


def _suffix(image: int | None) -> str:
    return "" if image is None else f"[{image}]"


# -- unit objectives -------------------------------------------------------------------------------
@deprecation.renames(batch="image")
def channel(layer: str, c: int, image: int | None = None) -> Objective:
    """Mean activation of channel `c` of `layer` over all positions."""

    def fn(acts: Activations) -> Tensor:
        return _for_image(_per_image_mean(acts[layer][:, c]), image)

    checks = [_layer_check(layer), _channel_check(layer, c)]
    unit = (layer, c) if image is None else None
    return Objective(fn, [layer], f"{layer}:{c}{_suffix(image)}", checks, unit=unit)


def channels(layer: str, cs: Sequence[int]) -> Objective:
    """Image i maximises channel cs[i] of `layer`: many units in one batch, one gather per step."""
    index = Constant(torch.as_tensor(list(cs), dtype=torch.long))
    n = len(index.value)

    def fn(acts: Activations) -> Tensor:
        t = acts[layer]
        if t.shape[0] != n:
            raise UserError(f"{n} channels need a batch of {n} images, got {t.shape[0]}")
        rows = torch.arange(n, device=t.device)
        return _per_image_mean(t[rows, index.on(t.device)])

    return Objective(fn, [layer], f"{layer}:{','.join(str(c) for c in cs)}",
                     [_layer_check(layer), *(_channel_check(layer, c) for c in cs)])


def _token_check(layer: str, token: int) -> Check:
    def check(model: Model) -> None:
        info = model.layer_info(layer)
        if info.layout != TOKENS:
            raise UserError(f"{layer} has no tokens (its layout is {info.describe()}): a token position "
                            "needs a transformer layer")
        count = info.prefix + info.shape[1] * info.shape[2]
        if not 0 <= token < count:
            raise UserError(f"{layer} has {count} tokens ({info.prefix} before the patch grid): token "
                            f"{token} is out of range 0..{count - 1}")

    return check


def _at_token(acts: Activations, layer: str, token: int) -> Tensor:
    """(B, C) at token `token` (prefix tokens first) of a token layer."""
    return acts[tokens_key(layer)][:, :, token]


@deprecation.renames(batch="image")
def neuron(
    layer: str, c: int, x: int | None = None, y: int | None = None, image: int | None = None,
    token: int | None = None,
) -> Objective:
    """Activation of channel `c` at one position (default: the centre of the layer's grid; on a
    transformer layer, a patch of the token grid), or at token `token` of a transformer layer's
    sequence, prefix tokens first (0: the class token)."""
    if token is not None and (x is not None or y is not None):
        raise UserError("give a neuron's position (x, y) or its `token`, not both")

    def fn(acts: Activations) -> Tensor:
        if token is not None:
            return _for_image(_at_token(acts, layer, token)[:, c], image)
        t = acts[layer]
        if t.dim() != 4:
            raise UserError(f"{layer} has no spatial grid: use a channel objective ({layer}:{c})")
        h, w = t.shape[-2:]
        xi = w // 2 if x is None else x
        yi = h // 2 if y is None else y
        if not (0 <= xi < w and 0 <= yi < h):
            raise UserError(f"position {xi},{yi} is outside {layer}'s {w}x{h} grid at this size")
        return _for_image(t[:, c, yi, xi], image)

    at = "" if x is None and y is None else f"@{x},{y}"
    checks = [_layer_check(layer), _channel_check(layer, c)]
    if token is not None:
        at = "@cls" if token == 0 else f"@token={token}"
        checks.append(_token_check(layer, token))
    return Objective(fn, [layer], f"{layer}:{c}{at}{_suffix(image)}", checks)


def head(layer: str, index: int, heads: int, image: int | None = None) -> Objective:
    """How strongly attention head `index` of `heads` writes: the mean square of its slice of a layer
    holding the heads' outputs side by side (timm's `attn.norm`, before the output projection),
    over the patch tokens."""

    def fn(acts: Activations) -> Tensor:
        t = acts[layer]
        width = t.shape[1] // heads
        return _for_image(_per_image_mean(t[:, index * width:(index + 1) * width] ** 2), image)

    def check(model: Model) -> None:
        n = model.channels(layer)
        if heads < 1 or n % heads:
            raise UserError(f"{layer} has {n} channels: they do not split into {heads} heads")
        if not 0 <= index < heads:
            raise UserError(f"head {index} is out of range 0..{heads - 1}")

    return Objective(fn, [layer], f"{layer}:head={index}/{heads}{_suffix(image)}",
                     [_layer_check(layer), check])


@deprecation.renames(batch="image")
def layer(name: str, image: int | None = None) -> Objective:
    """DeepDream: mean squared activation of a whole layer."""

    def fn(acts: Activations) -> Tensor:
        return _for_image(_per_image_mean(acts[name] ** 2), image)

    return Objective(fn, [name], f"{name}{_suffix(image)}", [_layer_check(name)])


@deprecation.renames(batch="image")
def direction(layer: str, vector: Tensor | Sequence[float], image: int | None = None,
              token: int | None = None) -> Objective:
    """Mean over positions of the activation's projection on a unit `vector` in channel space (a
    direction in a transformer's residual stream, a sparse-autoencoder feature), or its projection
    at token `token` of a transformer layer (0: the class token)."""
    raw = torch.as_tensor(vector, dtype=torch.float32).flatten()
    if not torch.isfinite(raw).all() or raw.norm() == 0:
        raise UserError("a direction needs finite values, not all zero")
    vec = Constant(raw / raw.norm())

    def fn(acts: Activations) -> Tensor:
        if token is not None:
            t = _at_token(acts, layer, token)
            return _for_image(t @ vec.on(t.device, t.dtype), image)
        t = acts[layer]
        v = vec.on(t.device, t.dtype)
        shape = (1, -1) + (1,) * (t.dim() - 2)
        return _for_image(_per_image_mean((t * v.view(shape)).sum(1)), image)

    def check(model: Model) -> None:
        n = model.channels(layer)
        if raw.numel() != n:
            raise UserError(f"direction has {raw.numel()} values but {layer} has {n} channels")

    checks = [_layer_check(layer), check] + ([] if token is None else [_token_check(layer, token)])
    at = "" if token is None else "@cls" if token == 0 else f"@token={token}"
    return Objective(fn, [layer], f"direction({layer}){at}{_suffix(image)}", checks)


def load_direction(path: str | os.PathLike, row: int | None = None) -> Tensor:
    """A direction vector from a file: a .npy array or a .pt/.pth tensor, 1-D, or 2-D with `row` picking
    one (a sparse autoencoder's decoder dictionary, one feature per row)."""
    values = load_array(path)
    if values.dim() == 2:
        if row is None:
            raise UserError(f"{path} holds a {values.shape[0]}x{values.shape[1]} matrix: pick a row "
                            f"(FILE[ROW], 0..{values.shape[0] - 1})")
        if not 0 <= row < values.shape[0]:
            raise UserError(f"row {row} is out of range: {path} has rows 0..{values.shape[0] - 1}")
        return values[row]
    if values.dim() != 1:
        raise UserError(f"{path} holds an array of shape {tuple(values.shape)}: a direction is a vector "
                        "(or a matrix of them, one per row)")
    if row is not None:
        raise UserError(f"{path} holds one vector: drop [{row}]")
    return values


def _class_check(label: str | int) -> Check:
    def check(model: Model) -> None:
        model.class_index(label)

    return check


@deprecation.renames(batch="image")
def logit(label: str | int, image: int | None = None) -> Objective:
    """The model's output (pre-softmax) for a class, given as index or ImageNet name."""

    def fn(acts: Activations) -> Tensor:
        return _for_image(acts[OUTPUT][:, acts.model.class_index(label)], image)

    return Objective(fn, [OUTPUT], f"logit:{label}{_suffix(image)}", [_class_check(label)])


@deprecation.renames(batch="image")
def log_softmax(label: str | int, image: int | None = None) -> Objective:
    """Log-probability of a class: raises it and lowers the others."""

    def fn(acts: Activations) -> Tensor:
        logp = F.log_softmax(acts[OUTPUT], dim=1)
        return _for_image(logp[:, acts.model.class_index(label)], image)

    return Objective(fn, [OUTPUT], f"log_softmax:{label}{_suffix(image)}", [_class_check(label)])


def diversity(layer: str) -> Objective:
    """Negative mean cosine similarity of each image's Gram matrix with the others' (Lucid)."""

    def fn(acts: Activations) -> Tensor:
        t = acts[layer]
        b = t.shape[0]
        if b < 2:
            return t.new_zeros(b)
        f = t.flatten(2)
        gram = torch.bmm(f, f.transpose(1, 2)).flatten(1)
        gram = F.normalize(gram, dim=1)
        sim = gram @ gram.T
        return -(sim.sum(1) - sim.diagonal()) / (b - 1)

    return Objective(fn, [layer], f"diversity({layer})", [_layer_check(layer)])


# -- image regularisers (penalties: subtract them) -------------------------------------------------
@deprecation.renames(batch="image")
def l1(constant: float = 0.5, image: int | None = None) -> Objective:
    """Mean absolute distance of the image from `constant` (a penalty: subtract it)."""
    return Objective(lambda acts: _for_image(_per_image_mean((acts[INPUT] - constant).abs()), image),
                     [], f"l1{_suffix(image)}")


@deprecation.renames(batch="image")
def l2(constant: float = 0.5, image: int | None = None) -> Objective:
    """Root mean squared distance of the image from `constant` (a penalty: subtract it)."""

    def fn(acts: Activations) -> Tensor:
        return _for_image(_per_image_mean((acts[INPUT] - constant) ** 2).add(1e-12).sqrt(), image)

    return Objective(fn, [], f"l2{_suffix(image)}")


@deprecation.renames(batch="image")
def total_variation(image: int | None = None) -> Objective:
    """Mean absolute difference between neighbouring pixels (a penalty: subtract it)."""

    def fn(acts: Activations) -> Tensor:
        img = acts[INPUT]
        dx = (img[..., :, 1:] - img[..., :, :-1]).abs().flatten(1).mean(1)
        dy = (img[..., 1:, :] - img[..., :-1, :]).abs().flatten(1).mean(1)
        return _for_image(dx + dy, image)

    return Objective(fn, [], f"total_variation{_suffix(image)}")


# -- the string grammar ----------------------------------------------------------------------------
_GRAMMAR = ("use LAYER, LAYER:CHANNEL, LAYER:C1,C2,..., LAYER:CHANNEL@X,Y, LAYER:CHANNEL@cls, "
            "LAYER:CHANNEL@token=K, LAYER:direction=FILE[ROW], LAYER:head=H/HEADS or logit:CLASS")
_HEAD = re.compile(r"^(?P<layer>[^:@\s]+):head=(?P<h>\d+)/(?P<n>\d+)$")
_CHANNEL_LIST = re.compile(r"^(?P<layer>[^:@\s]+):(?P<cs>\d+(?:,\d+)+)$")
_AT = r"(?:@(?:(?P<x>-?\d+),(?P<y>-?\d+)|(?P<cls>cls)|token=(?P<token>\d+)))?"
_UNIT = re.compile(r"^(?P<layer>[^:@\s]+):(?P<c>-?\d+)" + _AT + "$")
_DIRECTION = re.compile(r"^(?P<layer>[^:@\s]+):direction=(?P<file>.+?)(?:\[(?P<row>[^\]]*)\])?" + _AT + "$")


def channel_list(spec: str) -> tuple[str, list[int]] | None:
    """(layer, channels) when `spec` is `LAYER:C1,C2,...` (one image per channel), else None."""
    m = _CHANNEL_LIST.match(spec.strip())
    return (m["layer"], [int(c) for c in m["cs"].split(",")]) if m else None


def parse(spec: str, model: Model, image: int | None = None) -> Objective:
    """Turn a spec into an objective: `layer` (DeepDream), `layer:c` (a channel; on a transformer layer,
    its mean over the patch tokens), `layer:c1,c2,...`, `layer:c@x,y` (a position of the layer's grid),
    `layer:c@cls` / `layer:c@token=K` (the class token, token K), `layer:direction=FILE[ROW]` (a
    direction read from a .npy or .pt file; `@cls` or `@token=K` may follow), `layer:head=H/HEADS`
    (attention head H of HEADS, on a layer holding the heads' outputs side by side) or `logit:CLASS`.

    A channel list makes a batch objective (image i maximises the i-th channel).
    """
    text = spec.strip()
    if not text:
        raise UserError(f"empty objective: {_GRAMMAR}")
    listed = channel_list(text)
    if listed is not None:
        if image is not None:
            raise UserError(f"a channel list ({text}) already fills the batch: drop `image`")
        obj = channels(*listed)
    elif text.startswith("logit:"):
        label = text[len("logit:"):].strip()
        if not label:
            raise UserError(f"logit needs a class: logit:INDEX or logit:NAME ({_GRAMMAR})")
        obj = logit(int(label) if label.lstrip("-").isdigit() else label, image=image)
    elif ":" not in text and "@" not in text:
        obj = layer(text, image=image)
    elif (m := _HEAD.match(text)) is not None:
        obj = head(m["layer"], int(m["h"]), int(m["n"]), image=image)
    elif (m := _DIRECTION.match(text)) is not None:
        if m["x"] is not None:
            raise UserError(f"a direction is read over the whole grid or at a token (@cls, @token=K), "
                            f"not at a position: {spec!r}")
        row = m["row"]
        if row is not None and not row.strip().isdigit():
            raise UserError(f"the row in {spec!r} must be a whole number 0 or more: FILE[ROW]")
        vector = load_direction(m["file"].strip(), None if row is None else int(row))
        obj = direction(m["layer"], vector, image=image, token=_token(m))
        obj.name = text if image is None else f"{text}[{image}]"  # the file and row, in reports
    else:
        m = _UNIT.match(text)
        if not m:
            raise UserError(f"cannot read objective {spec!r}: {_GRAMMAR}")
        c = int(m["c"])
        if m["x"] is None and _token(m) is None:
            obj = channel(m["layer"], c, image=image)
        elif m["x"] is None:
            obj = neuron(m["layer"], c, image=image, token=_token(m))
        else:
            obj = neuron(m["layer"], c, int(m["x"]), int(m["y"]), image=image)
    obj.validate(model)
    return obj


def _token(m: re.Match) -> int | None:
    """The token an `@cls` (0) or `@token=K` suffix names, else None."""
    return 0 if m["cls"] else None if m["token"] is None else int(m["token"])


def resolve(objective: Objective | str, model: Model) -> Objective:
    """An objective checked against `model`: a spec string is parsed (which checks it), an
    `Objective` is validated."""
    if isinstance(objective, str):
        return parse(objective, model)
    objective.validate(model)
    return objective
