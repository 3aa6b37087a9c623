"""The optimisation loop: the one place where parameterization, transforms, model and objective meet."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from diffparam import transforms as T
from diffparam.errors import NonFiniteLossError, UserError
from diffparam.io import save_images
from diffparam.models.base import Model
from diffparam.models.registry import load_model
from diffparam.objectives import INPUT, Activations, Objective, resolve
from diffparam.param import FourierImage, Parameterization
from diffparam.param.rgba import Background, background_from, composite

MIN_SIZE, MAX_SIZE = 16, 4096
Callback = Callable[[int, float, Tensor], None]


@dataclass
class Result:
    """What `render` made: final images (B,C,H,W) in [0,1] on the CPU, loss per step, saved frames."""

    images: Tensor
    history: list[float]
    frames: dict[int, Tensor] = field(default_factory=dict)
    objective: str = ""
    param: Parameterization | None = None
    seconds: float = 0.0
    """Wall time of the optimisation loop."""

    def save(self, path: str | os.PathLike, separate: bool = False) -> list[Path]:
        """Write the images as PNG: a batch becomes a grid, or one file per image with `separate`."""
        return save_images(self.images, path, separate=separate)


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' → CUDA when available, else CPU; anything else is checked."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise UserError(f"unknown device {device!r}: use auto, cpu or cuda") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda was asked for but no CUDA GPU is available: use --device cpu")
    return dev


def check_size(size: int | Sequence[int]) -> tuple[int, int]:
    """(height, width) from an int or pair, each checked to lie in 16..4096 pixels."""
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    for s in (h, w):
        if not MIN_SIZE <= s <= MAX_SIZE:
            raise UserError(f"image size {s} is outside {MIN_SIZE}..{MAX_SIZE} pixels")
    return h, w


def _transform(transforms: str | Callable | Iterable[Callable] | None) -> Callable:
    if transforms is None:
        return lambda x, generator=None: x
    if transforms == "standard":
        return T.standard()
    if isinstance(transforms, str):
        raise UserError(f"unknown transforms {transforms!r}: use 'standard', None or a callable")
    if callable(transforms):
        return transforms
    return T.compose(*transforms)


def _optimizer(optimizer, params: list[Tensor], lr: float, device: torch.device,
               capturable: bool) -> torch.optim.Optimizer:
    if optimizer is None:
        if device.type == "cuda":  # one fused kernel; capturable so the step can live in a graph
            return torch.optim.Adam(params, lr=lr, fused=True, capturable=capturable)
        return torch.optim.Adam(params, lr=lr)
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        return optimizer(params, lr=lr)
    if callable(optimizer):
        return optimizer(params)
    raise UserError("optimizer must be a torch.optim.Optimizer class or a function params → optimizer")


def _backend(compile: bool | str) -> str | None:
    """The torch.compile backend that `render(compile=...)` asks for (None: do not compile)."""
    if compile is False:
        return None
    if compile is True:
        return "inductor"
    import torch._dynamo

    known = torch._dynamo.list_backends(exclude_tags=())
    if not isinstance(compile, str) or compile not in known:
        raise UserError(f"compile must be True, False or a torch.compile backend name "
                        f"({', '.join(b for b in known if 'TESTING' not in b)}), got {compile!r}")
    return compile


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
EAGER_WARMUP = 3
"""Steps run eagerly before a CUDA graph is captured (they initialise Adam's state and cuDNN)."""


class _Loop:
    """One optimisation step, run eagerly or replayed from a captured CUDA graph."""

    def __init__(self, net: Model, obj: Objective, param: Parameterization, transform: Callable,
                 opt: torch.optim.Optimizer, generator: torch.Generator | None,
                 input_size: int | None, precision: str, channels_last: bool,
                 background: Background | None) -> None:
        self.net, self.obj, self.param, self.transform, self.opt = net, obj, param, transform, opt
        self.background = background
        self.generator, self.input_size = generator, input_size
        self.dtype = PRECISIONS[precision]
        self.channels_last = channels_last
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: tuple[Tensor, Tensor] | None = None

    def _forward_backward(self, redirect: bool) -> tuple[Tensor, Tensor]:
        images = self.param()
        x = images
        if images.shape[1] == 4 and self.background is not None:
            x = composite(images, self.background(x[:, :3].shape, x.device, self.generator))
        x = self.transform(x, self.generator)
        if self.input_size is not None:
            x = F.interpolate(x, size=(self.input_size,) * 2, mode="bilinear", align_corners=False)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        amp = (torch.autocast(x.device.type, dtype=self.dtype) if self.dtype is not None
               else nullcontext())
        with amp, self.net.redirected_relus() if redirect else nullcontext():
            captured = self.net.activations(x, self.obj.layers)
        acts = Activations({k: v.float() for k, v in captured.items()}, self.net)
        acts[INPUT] = images
        loss = -self.obj(acts).sum()
        loss.backward()
        return loss.detach(), images.detach()

    def eager(self, redirect: bool) -> tuple[Tensor, Tensor]:
        """Run one step now."""
        self.opt.zero_grad(set_to_none=True)
        out = self._forward_backward(redirect)
        self.opt.step()
        return out

    def capture(self) -> None:
        """Record one whole step (param → transforms → model → loss → backward → Adam) as a graph."""
        self.opt.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static = self._forward_backward(redirect=False)
            self.opt.step()

    def replay(self) -> tuple[Tensor, Tensor]:
        """Run the captured step again; returns its (static) loss and images."""
        assert self.graph is not None and self.static is not None
        self.graph.replay()
        return self.static


def render(
    model: Model | str | torch.nn.Module,
    objective: Objective | str,
    param: Parameterization | None = None,
    transforms: str | Callable | Iterable[Callable] | None = "standard",
    steps: int = 512,
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    thresholds: Iterable[int] = (),
    progress: bool = True,
    *,
    size: int | Sequence[int] = 224,
    batch: int = 1,
    optimizer=None,
    input_size: int | None = None,
    relu_redirect_steps: int = 0,
    callback: Callback | None = None,
    cuda_graph: bool | None = None,
    precision: str = "fp32",
    channels_last: bool | None = None,
    background: str | Background | None = "noise",
    compile: bool | str = False,
    checkpoint: bool = False,
) -> Result:
    """Optimise `param` (default: a Fourier image of `size`, `batch` images) to maximise `objective`.

    `lr` defaults to the parameterization's own (`param.default_lr`: 0.05 for images, 0.005
    for CPPNs). `input_size` upsamples each transformed image to that many pixels before the
    model (None: feed as rendered). For the first `relu_redirect_steps` steps ReLUs pass
    'reviving' gradients (Lucid's trick; off by default, see BENCHMARKS.md).

    Speed on CUDA (defaults None = on there): `cuda_graph` captures the whole step once and
    replays it; `channels_last` uses NHWC convolutions; `precision="bf16"` autocasts the model.
    `compile` (True = "inductor", or a torch.compile backend name) compiles each block of the model
    that holds no hooked layer inside it; the first steps then pay for compilation (kept on the Model
    for later renders). `checkpoint` recomputes those blocks' inner activations in backward: about
    half the memory per image, a fifth to a quarter more time.
    A 4-channel (RGBA) image is composited over a fresh random `background` each step ("noise",
    "fourier", a function (shape, device, generator) → RGB batch, or None to feed all 4 channels);
    objectives see the RGBA image as `INPUT`.
    Raises NonFiniteLossError, holding the last finite images, if the loss becomes NaN or infinite
    (checked every step on CPU, every 16 steps on CUDA to avoid stalls).
    """
    if steps < 1:
        raise UserError(f"steps must be at least 1, got {steps}")
    if batch < 1:
        raise UserError(f"batch must be at least 1, got {batch}")
    backend = _backend(compile)
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}: use {' or '.join(PRECISIONS)}")
    dev = resolve_device(device)
    on_cuda = dev.type == "cuda"
    if cuda_graph and not on_cuda:
        raise UserError("cuda_graph needs a CUDA device")
    use_graph = on_cuda and (optimizer is None if cuda_graph is None else cuda_graph)
    use_channels_last = on_cuda if channels_last is None else channels_last
    net = load_model(model).to(dev)
    if use_channels_last:
        net.module.to(memory_format=torch.channels_last)
    obj = resolve(objective, net)
    if param is None:
        h, w = check_size(size)
        param = FourierImage(h, w, batch=batch, generator=torch.Generator().manual_seed(seed))
    param = param.to(dev)
    lr = param.default_lr if lr is None else lr
    if lr <= 0:
        raise UserError(f"learning rate must be positive, got {lr}")
    opt = _optimizer(optimizer, list(param.parameters()), lr, dev, capturable=use_graph)
    # A graph replays the default CUDA generator's stream (graph-safe); fork_rng keeps it local.
    with torch.random.fork_rng(devices=[dev.index or 0] if on_cuda else [], enabled=use_graph):
        if use_graph:
            torch.cuda.manual_seed(seed)
        generator = None if use_graph else torch.Generator(device=dev).manual_seed(seed)
        loop = _Loop(net, obj, param, _transform(transforms), opt, generator, input_size,
                     precision, use_channels_last, background_from(background))
        with net.accelerated(obj.layers, compile=backend, checkpoint=checkpoint):
            return _run(loop, obj.name, steps, set(thresholds), callback, progress, use_graph,
                        relu_redirect_steps, check_every=16 if on_cuda else 1)


def _run(loop: _Loop, name: str, steps: int, marks: set[int], callback: Callback | None,
         progress: bool, use_graph: bool, redirect_steps: int, check_every: int) -> Result:
    """Step `steps` times; record losses on the device and check them every `check_every` steps."""
    param = loop.param
    dev = next(param.parameters()).device
    losses = torch.zeros(steps, device=dev)
    frames: dict[int, Tensor] = {}
    last_good = (0, param().detach().clone())  # kept on the device: no copy to the host per check
    # Redirected steps trace other code than plain ones (a compiled model recompiles): warm up after.
    eager_steps = redirect_steps + EAGER_WARMUP if redirect_steps else EAGER_WARMUP
    bar = tqdm(total=steps, disable=not progress or not sys.stderr.isatty(), desc=name[:40],
               unit="step", leave=False)
    start = time.perf_counter()
    # Eager steps before a capture run on a side stream, as CUDA graph capture requires.
    side = torch.cuda.Stream(dev) if use_graph else None
    if side is not None:
        side.wait_stream(torch.cuda.current_stream(dev))
    for step in range(1, steps + 1):
        if side is None or step <= eager_steps:
            with torch.cuda.stream(side) if side is not None else nullcontext():
                loss, images = loop.eager(redirect=step <= redirect_steps)
                losses[step - 1] = loss
            if side is not None:
                torch.cuda.current_stream(dev).wait_stream(side)
        else:
            if loop.graph is None:
                loop.capture()
            loss, images = loop.replay()
            losses[step - 1] = loss
        if step % check_every == 0 or step == steps:
            window = losses[last_good[0]:step]
            bad = (~torch.isfinite(window)).nonzero()
            if len(bad):
                first = last_good[0] + int(bad[0]) + 1
                raise NonFiniteLossError(
                    f"loss became {losses[first - 1].item()} at step {first} of {name}; kept the "
                    f"image from step {last_good[0]} (try a lower --lr)",
                    Result(last_good[1].cpu(), losses[:first - 1].tolist(), frames, name, param),
                )
            last_good = (step, images.detach().clone())
            bar.set_postfix(loss=f"{float(losses[step - 1]):.3g}")
        if step in marks or callback is not None:
            with torch.no_grad():
                now = param().detach().cpu()
            if step in marks:
                frames[step] = now
            if callback is not None:
                callback(step, float(loss), now)
        bar.update()
    bar.close()
    with torch.no_grad():
        final = param().detach().cpu()
    seconds = time.perf_counter() - start
    return Result(final, losses.tolist(), frames, name, param, seconds)
