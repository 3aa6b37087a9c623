"""`Model`: any vision `nn.Module` with its input normalisation, layer names and activation hooks."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from copy import deepcopy
from dataclasses import replace

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as _checkpoint

from diffparam.constant import Constant
from diffparam.errors import ModelError, UserError, cuda_failure, first_line
from diffparam.models.geometry import InputGeometry, declared_size, first_in_channels, probe
from diffparam.models.layout import TOKENS, LayerInfo, canonical, detect, first_tensor, tokens_key

RECOMPILE_LIMIT = 1024
"""Compiled graphs kept per block code (a shape or precision change compiles anew; past this, eager)."""

OUTPUT = "output"
"""Pseudo-layer: the module's own return value (the logits of a classifier)."""


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
    `input_size` is its native size (None: what it declares, else 224); `geometry` says what images
    it takes, skipping the probe (`diffparam.models.geometry`); `output` picks its output from a
    tuple, dict or output object.
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
        input_size: int | Sequence[int] | None = None,
        name: str = "custom",
        class_names: Sequence[str] | None = None,
        output: str | int | None = None,
        geometry: InputGeometry | None = None,
    ) -> None:
        self.module = module
        self._frozen = 0
        self.mean = Constant(torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.std = Constant(torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        size = declared_size(module) if input_size is None else input_size
        size = 224 if size is None else size
        self.native_size: tuple[int, int] = (int(size), int(size)) if isinstance(size, int) else (
            int(size[0]), int(size[1]))
        """(height, width) the module was made for: what `layers()` reports shapes at."""
        self.input_size = self.native_size[1]
        """The native width, the side of the square crops the trust numbers show the model."""
        self.name = name
        self.class_names = list(class_names) if class_names is not None else None
        self.output = output
        """Which part of a tuple, dict or output object the module returns is its output (None: the
        tensor itself, 'logits' or 'last_hidden_state' when present, else the first tensor)."""
        self._geometry = geometry
        """The images the module takes: given, or probed on first use (`geometry`)."""
        if geometry is not None:
            self.native_size = geometry.size
            self.input_size = geometry.size[1]
        self._index_modules()

    def _index_modules(self) -> None:
        """Name → submodule (the root left out); forgets cached layer shapes and `cache`."""
        self._modules = dict(self.module.named_modules())
        self._modules.pop("", None)
        self._layer_cache: list[LayerInfo] | None = None
        self._layer_index: dict[str, LayerInfo] = {}
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

    @property
    def geometry(self) -> InputGeometry:
        """The images the module takes (channels; any size, multiples of k px, or one fixed size),
        found once by trying sizes (see `diffparam.models.geometry`)."""
        if self._geometry is None:
            self._geometry = self._probe_geometry(self._cpu_copy())
        return self._geometry

    def _probe_geometry(self, copy: nn.Module) -> InputGeometry:
        """The geometry found by running `copy` (a CPU copy of the module, `_cpu_copy`)."""
        first_conv = first_in_channels(self.module)
        tries = (3,) if first_conv in (None, 3) else (3, first_conv)
        geometry, error = probe(self._probe_runner(copy), self.native_size, tries)
        if error is not None and self.device.type != "cpu":  # a copy that does not run alone (a
            # forward patched on an instance, closing over the original): probe the module itself
            geometry, error = probe(self._probe_runner(self.module), self.native_size, tries)
        if error is not None:
            raise UserError(f"model {self.name} does not run on a {tries[-1]}-channel "
                            f"{self.native_size[0]}x{self.native_size[1]} image ({first_line(error)}); "
                            "give its input size (`input_size`), or what it takes (`geometry`)")
        return geometry

    def _probe_runner(self, module: nn.Module):
        """Runs `module` (a copy of the module on the CPU, as a rule), without gradients, on a zero
        image of a given shape: None, or the error it raised. A copy, so that what a module caches on
        its first run (ConViT's relative positions) is not left on the wrong device or size; on the
        CPU, so that a size the module refuses by indexing out of range raises, where on CUDA it
        would leave a device-side assert that ends the process's use of the GPU."""

        def run(channels: int, height: int, width: int) -> Exception | None:
            try:
                self._run_zeros(channels, height, width, module)
                return None
            except Exception as exc:  # noqa: BLE001 - whatever the module raises means "not this size"
                if cuda_failure(exc):
                    raise ModelError(f"model {self.name} failed on the GPU ({first_line(exc)}) on a "
                                     f"{channels}-channel {height}x{width} image; CUDA cannot be used "
                                     "again in this process: load the model on the CPU") from exc
                return exc

        return run

    def _cpu_copy(self) -> nn.Module:
        """A copy of the module on the CPU in eval mode with frozen weights (the module itself where
        it cannot be copied and already lives on the CPU)."""
        try:
            copy = deepcopy(self.module)
        except Exception as exc:  # noqa: BLE001 - some modules cannot be deep-copied
            if self.device.type != "cpu":
                raise UserError(f"model {self.name} cannot be copied to the CPU to read its input size and "
                                f"layers ({first_line(exc)}): load it on the CPU first") from exc
            return self.module
        for m in copy.modules():  # the caller's hooks (a memory count, a user's recorder) stay theirs
            m._forward_hooks.clear()
            m._forward_pre_hooks.clear()
        return copy.to("cpu").eval().requires_grad_(False)

    def _run_zeros(self, channels: int, height: int, width: int, module: nn.Module | None = None) -> object:
        """The raw return value of `module` (default: the module, frozen, on its device) for one zero
        image, without gradients."""
        if module is None or module is self.module:
            x = torch.zeros(1, channels, height, width, device=self.device)
            with torch.no_grad(), self.frozen():
                return self.module(self.normalize(x))
        with torch.no_grad(), self.frozen():  # a copy's forward may still reach into the module
            return module(self.normalize(torch.zeros(1, channels, height, width)))

    def _output_shapes(self, module: nn.Module, height: int, width: int) -> dict[str, tuple[int, ...]]:
        """Each layer's output shape (and 'output''s) for one image of height x width, run through
        `module` (the module or a copy of it)."""
        shapes: dict[str, tuple[int, ...]] = {}
        handles = []
        for lname, mod in module.named_modules():
            if not lname:
                continue

            def hook(_m, _i, out, lname=lname):
                t = first_tensor(out)
                # one image in, one row out (or a sequence-first (N, 1, C)): windows or heads folded
                # into the batch are not layers
                one_row = t is not None and t.dim() > 1 and (
                    t.shape[0] == 1 or t.dim() == 3 and t.shape[1] == 1)
                if one_row and lname not in shapes:
                    shapes[lname] = tuple(t.shape)

            handles.append(mod.register_forward_hook(hook))
        try:
            out = self._pick_output(self._run_zeros(self.geometry.channels, height, width, module))
        finally:
            for h in handles:
                h.remove()
        if out is not None:
            shapes[OUTPUT] = tuple(out.shape)
        return shapes

    def layers(self) -> list[LayerInfo]:
        """Each layer whose output objectives can use (an image, channels-last map, tokens, heads or a
        vector): its channel count, its shape as objectives see it at the native size, its layout."""
        if self._layer_cache is None:
            copy = self._cpu_copy()  # one copy serves both probes
            if self._geometry is None:
                self._geometry = self._probe_geometry(copy)
            geometry = self._geometry
            sizes = [self.native_size]
            try:
                first = self._output_shapes(copy, *sizes[0])
            except Exception:  # noqa: BLE001 - a copy that does not run alone: the module itself
                copy = self.module
                first = self._output_shapes(copy, *sizes[0])
            second: dict[str, tuple[int, ...]] = {}
            if not geometry.fixed:  # a wider image tells a width dimension from a channel one
                sizes.append(geometry.wider())
                try:
                    second = self._output_shapes(copy, *sizes[1])
                except Exception:  # noqa: BLE001 - the probe passed it, yet it fails: take one size only
                    self._geometry = replace(geometry, fixed=True)
                    sizes.pop()
            hint = getattr(self.module, "num_prefix_tokens", None)
            hint = int(hint) if isinstance(hint, int) else None
            infos = []
            for lname, shape in first.items():
                found = detect(shape, second.get(lname), sizes, hint)
                if found is not None:
                    infos.append(LayerInfo(lname, found["shape"][0], **found))
            self._layer_cache = infos
            self._layer_index = {info.name: info for info in infos}
        return list(self._layer_cache)

    def layer_info(self, layer: str) -> LayerInfo:
        """`layer`'s `LayerInfo` (checked)."""
        self.check_layer(layer)
        if self._layer_cache is None:  # every step asks: no copy of the list each time
            self.layers()
        if layer not in self._layer_index:
            raise UserError(f"layer {layer!r} of model {self.name} has no output objectives can use (an "
                            "image, channels-last map, tokens or a vector); see `diffparam layers`")
        return self._layer_index[layer]

    def channels(self, layer: str) -> int:
        """The channel count of `layer` (checked)."""
        return self.layer_info(layer).channels

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
        """Map images in [0,1] to the module's expected input. Where the module takes other than as
        many channels as `mean` has (a grey or multispectral model with the RGB defaults), every
        channel gets the mean of `mean` and of `std`."""
        mean, std = self.mean.on(x.device, x.dtype), self.std.on(x.device, x.dtype)
        if mean.shape[1] != x.shape[1]:
            mean, std = mean.mean(1, keepdim=True), std.mean(1, keepdim=True)
        return (x - mean) / std

    def fitted(self, x: Tensor) -> Tensor:
        """Images `x` (B,C,H,W) resized (bilinear) to the nearest size the module takes (`geometry`);
        as they are when it takes theirs. A wrong channel count is a UserError."""
        geometry = self.geometry
        if x.dim() != 4 or x.shape[1] != geometry.channels:
            raise UserError(f"model {self.name} takes {geometry.describe()}; got a batch of shape "
                            f"{tuple(x.shape)}")
        return geometry.resample(x)

    def _pick_output(self, out: object) -> Tensor | None:
        """The tensor that is the module's output: `self.output` of a tuple, dict or output object,
        else `first_tensor`."""
        if self.output is None:
            return first_tensor(out)
        try:
            if isinstance(self.output, int):
                picked = out[self.output]  # type: ignore[index]
            elif isinstance(out, dict):
                picked = out[self.output]
            else:
                picked = getattr(out, self.output)
        except (KeyError, IndexError, AttributeError, TypeError):
            picked = None
        if not isinstance(picked, Tensor):
            raise UserError(f"model {self.name} returns {type(out).__name__}, which has no tensor "
                            f"{self.output!r} (`output`)")
        return picked

    def __call__(self, x: Tensor) -> Tensor:
        """The module's output for images `x` in [0,1] (resized to a size it takes)."""
        with self.frozen():
            out = self._pick_output(self.module(self.normalize(self.fitted(x))))
        if out is None:
            raise UserError(f"model {self.name} returns no tensor")
        return out

    def activations(self, x: Tensor, layers: Iterable[str], stop_early: bool = True) -> dict[str, Tensor]:
        """Run images `x` in [0,1] (resized to a size the module takes) and return the outputs of
        `layers` ('output': the module's result) as objectives see them: (B, C, h, w) on the layer's
        grid (channels-last maps and transformer tokens included), (B, C) for vectors; a token layer's
        whole sequence, prefix tokens first, as (B, C, N) under `tokens_key(layer)`.

        With `stop_early`, the forward pass stops as soon as every requested layer has run.
        """
        wanted = {self.check_layer(name) for name in layers}
        infos = {name: self.layer_info(name) for name in wanted}
        x = self.fitted(x)
        captured: dict[str, Tensor] = {}
        hooked = wanted - {OUTPUT}
        stop = stop_early and OUTPUT not in wanted

        def make_hook(lname: str):
            def hook(_m, _i, out):
                t = first_tensor(out)
                if t is not None:
                    captured[lname] = t
                if stop and hooked.issubset(captured):
                    raise _StopForward

            return hook

        handles = [self._modules[n].register_forward_hook(make_hook(n)) for n in hooked]
        try:
            with self.frozen():
                out = self.module(self.normalize(x))
            if OUTPUT in wanted:
                captured[OUTPUT] = self._pick_output(out)  # type: ignore[assignment]
        except _StopForward:
            pass
        finally:
            for h in handles:
                h.remove()
        height, width = x.shape[-2:]
        seen: dict[str, Tensor] = {}
        for name, t in captured.items():
            seen[name] = canonical(t, infos[name], height, width)
            if infos[name].layout == TOKENS and t.dim() == 3:
                first = infos[name].sequence_first
                seen[tokens_key(name)] = t.permute(1, 2, 0) if first else t.transpose(1, 2)
        return seen

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
