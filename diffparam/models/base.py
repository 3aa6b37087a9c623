"""`Model`: any vision `nn.Module` with its input normalisation, layer names and activation hooks."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as _checkpoint

from diffparam.constant import Constant
from diffparam.errors import UserError

RECOMPILE_LIMIT = 1024
"""Compiled graphs kept per block code (a shape or precision change compiles anew; past this, eager)."""

OUTPUT = "output"
"""Pseudo-layer: the module's own return value (the logits of a classifier)."""


@dataclass(frozen=True)
class LayerInfo:
    """One named layer: its name, channel count and output shape for a native-size input."""

    name: str
    channels: int
    shape: tuple[int, ...]


class _StopForward(Exception):
    """Raised inside a hook once every needed activation is captured, to skip later layers."""


class _RedirectedReLU(torch.autograd.Function):
    """Clamp forward; backward also lets gradient through where it would push the input back in range.

    Lucid's trick: a unit that starts dead (input below 0, or above 6 for ReLU6) still receives
    the gradient that would revive it, so optimisation can start from anywhere.
    """

    @staticmethod
    def forward(ctx, x: Tensor, upper: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.upper = upper
        return x.clamp(0.0, upper) if upper > 0 else x.clamp_min(0.0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        upper = ctx.upper
        inside = x >= 0
        if upper > 0:
            inside = inside & (x <= upper)
        # Outside the range, pass gradients that move x back toward it (grad < 0 means "increase").
        revive = ((x < 0) & (grad < 0)) | ((x > upper) & (grad > 0) if upper > 0 else False)
        return grad * (inside | revive).to(grad.dtype), None


def _redirected_forward(module: nn.Module):
    upper = 6.0 if isinstance(module, nn.ReLU6) else 0.0
    return lambda x: _RedirectedReLU.apply(x, upper)


def _checkpointed(forward: Callable) -> Callable:
    """`forward` run under non-reentrant gradient checkpointing whenever gradients are on.

    The models run frozen in eval mode, so recomputation draws no random numbers: no RNG state is
    kept (which also lets the first call compile, and initialise CUDA, inside the checkpoint)."""

    def run(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        return _checkpoint(forward, *args, use_reentrant=False, preserve_rng_state=False, **kwargs)

    return run


def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """conv ← bn ∘ conv, using bn's running statistics."""
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv.weight.mul_(scale.view(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        new_bias = (bias - bn.running_mean) * scale + bn.bias
        conv.bias = nn.Parameter(new_bias, requires_grad=False)


class Model:
    """Wraps an `nn.Module` for visualization: normalises [0,1] images and captures named layers.

    `mean`/`std` describe the module's expected input: it receives (x − mean) / std for x in [0,1].
    The module is used as it is: it runs in eval mode with its weights frozen only while the Model
    runs it (`frozen`), and every hook, patched forward and memory format is undone afterwards.
    """

    graph_safe: bool = True
    """Whether the module's forward may be captured in a CUDA graph. `render` tries a capture when
    every piece says so and falls back to eager steps, with a warning, when the capture fails (a
    forward that copies from the host, say); set False to skip the attempt."""

    def __init__(
        self,
        module: nn.Module,
        *,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        input_size: int = 224,
        name: str = "custom",
        class_names: Sequence[str] | None = None,
    ) -> None:
        self.module = module
        self._frozen = 0
        self.mean = Constant(torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.std = Constant(torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.input_size = input_size
        self.name = name
        self.class_names = list(class_names) if class_names is not None else None
        self._index_modules()

    def _index_modules(self) -> None:
        """Name → submodule (the root left out); forgets cached layer shapes and `cache`."""
        self._modules = dict(self.module.named_modules())
        self._modules.pop("", None)
        self._layer_cache: list[LayerInfo] | None = None
        self._compiled: dict[tuple[str, str], Callable] = {}
        self.cache: dict[str, object] = {}
        """What analyses computed from the weights (circuits, gates), kept while the weights stay;
        cleared when the module changes through the Model (`fold_batchnorm`). Clear it after
        changing the weights yourself."""

    @contextmanager
    def frozen(self) -> Iterator[Model]:
        """Within this block the module is in eval mode and its weights need no gradient; both are
        as they were afterwards. Re-entrant: inner blocks change nothing."""
        if self._frozen:
            self._frozen += 1
            try:
                yield self
            finally:
                self._frozen -= 1
            return
        training = [m for m in self.module.modules() if m.training]
        needing = [p for p in self.module.parameters() if p.requires_grad]
        if training:
            self.module.eval()
        for p in needing:
            p.requires_grad_(False)
        self._frozen = 1
        try:
            yield self
        finally:
            self._frozen = 0
            for m in training:  # each module's own flag, exactly as it was
                object.__setattr__(m, "training", True)
            for p in needing:
                p.requires_grad_(True)

    @contextmanager
    def memory_format(self, channels_last: bool) -> Iterator[Model]:
        """Within this block (with `channels_last`) the module's 4D weights are channels-last (NHWC
        convolutions, faster on GPUs); each is back in its own layout afterwards."""
        if not channels_last:
            yield self
            return
        layout = torch.channels_last
        moved = [t for t in (*self.module.parameters(), *self.module.buffers())
                 if t.dim() == 4 and t.is_contiguous() and not t.is_contiguous(memory_format=layout)]
        with torch.no_grad():
            for t in moved:
                t.data = t.data.contiguous(memory_format=layout)
        try:
            yield self
        finally:
            with torch.no_grad():
                for t in moved:
                    t.data = t.data.contiguous()

    # -- devices -----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """The device the module's weights live on."""
        for p in self.module.parameters():
            return p.device
        return torch.device("cpu")

    def to(self, device: torch.device | str) -> Model:
        """Move the module (in place) to `device`; returns self."""
        self.module.to(device)
        return self

    # -- layers ------------------------------------------------------------------------------
    def layer_names(self) -> list[str]:
        """Every named submodule, in definition order, plus the pseudo-layer 'output'."""
        return [*self._modules, OUTPUT]

    def check_layer(self, name: str) -> str:
        """Return `name` if it is a layer of this model, else raise a UserError naming close matches."""
        if name in self._modules or name == OUTPUT:
            return name
        close = difflib.get_close_matches(name, self.layer_names(), n=3, cutoff=0.0)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise UserError(
            f"unknown layer {name!r} in model {self.name}{hint} (list them with `diffparam layers`)"
        )

    def layers(self) -> list[LayerInfo]:
        """Each layer with a 4D or 2D output, its channel count and shape at the native input size."""
        if self._layer_cache is None:
            shapes: dict[str, tuple[int, ...]] = {}
            handles = []
            for lname, mod in self._modules.items():

                def hook(_m, _i, out, lname=lname):
                    if isinstance(out, Tensor) and out.dim() in (2, 4) and lname not in shapes:
                        shapes[lname] = tuple(out.shape[1:])

                handles.append(mod.register_forward_hook(hook))
            try:
                x = torch.zeros(1, 3, self.input_size, self.input_size, device=self.device)
                with torch.no_grad(), self.frozen():
                    out = self.module(self.normalize(x))
            finally:
                for h in handles:
                    h.remove()
            infos = [LayerInfo(n, s[0], s) for n, s in shapes.items()]
            if isinstance(out, Tensor) and out.dim() in (2, 4):
                infos.append(LayerInfo(OUTPUT, out.shape[1], tuple(out.shape[1:])))
            self._layer_cache = infos
        return list(self._layer_cache)

    def channels(self, layer: str) -> int:
        """The channel count of `layer` (checked)."""
        self.check_layer(layer)
        for info in self.layers():
            if info.name == layer:
                return info.channels
        raise UserError(f"layer {layer!r} of model {self.name} has no image or vector output")

    def check_channel(self, layer: str, channel: int) -> int:
        """Return `channel` if `layer` has it, else raise a UserError giving the valid range."""
        n = self.channels(layer)
        if not 0 <= channel < n:
            raise UserError(f"{layer} has {n} channels: channel {channel} is out of range 0..{n - 1}")
        return channel

    def class_index(self, label: str | int) -> int:
        """Resolve a class index or (ImageNet) class name to an index, with close matches on error."""
        n_out = self.channels(OUTPUT)
        if isinstance(label, int) or str(label).strip().lstrip("-").isdigit():
            idx = int(label)
            if not 0 <= idx < n_out:
                raise UserError(f"class {idx} is out of range: model {self.name} has {n_out} classes")
            return idx
        if self.class_names is None:
            raise UserError(f"model {self.name} has no class names; give a class index 0..{n_out - 1}")
        wanted = str(label).strip().lower().replace("_", " ")
        lowered = [c.lower() for c in self.class_names]
        if wanted in lowered:
            return lowered.index(wanted)
        close = difflib.get_close_matches(wanted, lowered, n=3, cutoff=0.5)
        hint = f"; closest: {', '.join(self.class_names[lowered.index(c)] for c in close)}"
        raise UserError(f"unknown class {label!r}" + (hint if close else ""))

    # -- running -----------------------------------------------------------------------------
    def normalize(self, x: Tensor) -> Tensor:
        """Map images in [0,1] to the module's expected input."""
        return (x - self.mean.on(x.device, x.dtype)) / self.std.on(x.device, x.dtype)

    def __call__(self, x: Tensor) -> Tensor:
        """The module's output for images `x` in [0,1]."""
        with self.frozen():
            return self.module(self.normalize(x))

    def activations(self, x: Tensor, layers: Iterable[str], stop_early: bool = True) -> dict[str, Tensor]:
        """Run images `x` in [0,1] and return the outputs of `layers` ('output': the module's result).

        With `stop_early`, the forward pass stops as soon as every requested layer has run.
        """
        wanted = {self.check_layer(name) for name in layers}
        captured: dict[str, Tensor] = {}
        hooked = wanted - {OUTPUT}
        stop = stop_early and OUTPUT not in wanted

        def make_hook(lname: str):
            def hook(_m, _i, out):
                captured[lname] = out
                if stop and hooked.issubset(captured):
                    raise _StopForward

            return hook

        handles = [self._modules[n].register_forward_hook(make_hook(n)) for n in hooked]
        try:
            with self.frozen():
                out = self.module(self.normalize(x))
            if OUTPUT in wanted:
                captured[OUTPUT] = out
        except _StopForward:
            pass
        finally:
            for h in handles:
                h.remove()
        return captured

    def fold_batchnorm(self) -> int:
        """Fold each eval BatchNorm2d that directly follows a Conv2d in a Sequential into the conv.

        Exact for a frozen model and saves an elementwise pass per BN, forward and backward. The
        BN becomes an Identity, so hooks on its name still see the same values. Returns the count.
        """
        folded = 0
        for parent in self.module.modules():
            if not isinstance(parent, nn.Sequential):
                continue
            children = list(parent.named_children())
            for (_, conv), (bn_name, bn) in zip(children, children[1:], strict=False):
                if (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
                        and bn.track_running_stats and bn.running_var is not None):
                    _fold_into(conv, bn)
                    setattr(parent, bn_name, nn.Identity())
                    folded += 1
        self._index_modules()
        return folded

    def blocks(self, layers: Iterable[str]) -> list[tuple[str, nn.Module]]:
        """The largest submodules with children that hold none of `layers` below them.

        A forward pass can run each whole (compiled or checkpointed) and still capture `layers`:
        a hook on a block itself fires outside the block's forward.
        """
        inside = {self.check_layer(n) for n in layers} - {OUTPUT}
        found: list[tuple[str, nn.Module]] = []

        def visit(prefix: str, module: nn.Module) -> None:
            for name, child in module.named_children():
                full = prefix + name
                if isinstance(child, nn.ModuleList | nn.ModuleDict) or any(
                        n.startswith(full + ".") for n in inside):
                    visit(full + ".", child)
                elif next(child.children(), None) is not None:
                    found.append((full, child))

        visit("", self.module)
        return found

    @contextmanager
    def accelerated(self, layers: Iterable[str], compile: str | None = None,
                    checkpoint: bool = False) -> Iterator[Model]:
        """Within this block, the forward of each of `blocks(layers)` is compiled with the torch.compile
        backend `compile` (kept per block, so later renders reuse it) and/or gradient-checkpointed
        (its inner activations are recomputed in backward instead of kept: about half the memory,
        a fifth to a quarter more time). Afterwards each block's forward, and torch.compile's
        settings, are what they were."""
        wrapped = [] if not (compile or checkpoint) else self.blocks(layers)
        with ExitStack() as stack:
            if compile:  # one graph per block, shape and precision: dynamo's limits (8, 256) are too low
                import torch._dynamo

                config = torch._dynamo.config
                stack.enter_context(config.patch(
                    recompile_limit=max(config.recompile_limit, RECOMPILE_LIMIT),
                    accumulated_recompile_limit=max(config.accumulated_recompile_limit,
                                                    16 * RECOMPILE_LIMIT)))
            for name, block in wrapped:
                forward = block.forward
                if compile:
                    key = (name, compile)
                    if key not in self._compiled:
                        self._compiled[key] = torch.compile(forward, backend=compile, dynamic=False)
                    forward = self._compiled[key]
                if checkpoint:
                    forward = _checkpointed(forward)
                stack.enter_context(_patched(block, "forward", forward))
            yield self

    @contextmanager
    def redirected_relus(self) -> Iterator[Model]:
        """Within this block, every nn.ReLU / nn.ReLU6 passes 'reviving' gradients (see Lucid)."""
        with ExitStack() as stack:
            for m in self._modules.values():
                if type(m) in (nn.ReLU, nn.ReLU6):
                    stack.enter_context(_patched(m, "forward", _redirected_forward(m)))
            yield self

    # -- layers in order -----------------------------------------------------------------------
    def layer_order(self) -> dict[str, int]:
        """Each layer with an image or vector output (`layers()`), by its position among them."""
        return {info.name: i for i, info in enumerate(self.layers())}


@contextmanager
def _patched(obj: object, name: str, value: object) -> Iterator[None]:
    """`obj.name = value` within the block; afterwards the instance attribute is what it was (or gone)."""
    missing = object()
    before = obj.__dict__.get(name, missing)
    setattr(obj, name, value)
    try:
        yield
    finally:
        if before is missing:
            delattr(obj, name)
        else:
            setattr(obj, name, before)
