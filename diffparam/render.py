"""The optimisation loop: the one place where parameterization, stages, model and objective meet.

`render` builds a `Pipeline` (diffparam.pipeline), chooses how to step it (a CUDA graph captured
once and replayed, or eager steps) from what each piece declares and from whether a capture
succeeds, and leaves everything it was given as it found it: the model's memory format, forward
methods and hooks, torch's settings and random number generators (it does move the model to the
render's device, and leaves it there).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack, nullcontext

import torch
from torch import Tensor
from tqdm.auto import tqdm

from diffparam import deprecation
from diffparam.backgrounds import Background
from diffparam.checks import MAX_SEED, MAX_STEPS, choice, image_size, int_in, positive_float, positive_int
from diffparam.errors import (
    ModelError,
    NonFiniteLossError,
    SaturatedError,
    UserError,
    cuda_failure,
    first_line,
)
from diffparam.evaluate.trust import report as judge
from diffparam.io import photo_files
from diffparam.memory import check_fits
from diffparam.models.base import Model
from diffparam.models.registry import load_model
from diffparam.objectives import Objective, resolve
from diffparam.param import Parameterization, make_param
from diffparam.param.kinds import kind
from diffparam.pipeline import PRECISIONS, Pipeline, stages_for
from diffparam.result import Result

Callback = Callable[[int, float, Tensor], None]
"""Called after a step with (step, loss, images on the CPU)."""

DEFAULT_SIZE = 224
SATURATED = 0.9
"""A batch whose images have this share of their colour values at 0 or 1 diverged (at lr 1e6 the
embedded model's Fourier images end with 100%; its visualizations at the default lr, under 5%)."""
EAGER_WARMUP = 3
"""Steps run eagerly before a CUDA graph is captured (they initialise Adam's state and cuDNN)."""


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' → CUDA when available, else CPU; 'cpu', 'cuda' and 'cuda:N' are checked (diffparam
    runs on those two kinds of device only)."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UserError(f"unknown `device` {device!r}: use auto, cpu or cuda") from exc
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"`device` {device!r} is not supported: use auto, cpu or cuda")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError("device cuda was asked for but no CUDA GPU is available: use `device` cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"there is no {dev}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


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
    raise UserError("`optimizer` must be a torch.optim.Optimizer class or a function params → optimizer")


def _backend(compile: bool | str) -> str | None:
    """The torch.compile backend that `render(compile=...)` asks for (None: do not compile)."""
    if compile is False:
        return None
    if compile is True:
        return "inductor"
    import torch._dynamo

    known = torch._dynamo.list_backends(exclude_tags=())
    if not isinstance(compile, str) or compile not in known:
        raise UserError(f"`compile` must be True, False or a torch.compile backend name "
                        f"({', '.join(b for b in known if 'TESTING' not in b)}), got {compile!r}")
    return compile


class _Stepper:
    """Runs one optimisation step of a pipeline eagerly, or replays it from a captured CUDA graph.

    `generator` draws the step's random numbers (None: the default CUDA generator, which a captured
    graph replays); `eager_generator` replaces it when the stepper falls back to eager steps.
    """

    def __init__(self, pipeline: Pipeline, opt: torch.optim.Optimizer, generator: torch.Generator | None,
                 eager_generator: torch.Generator) -> None:
        self.pipeline, self.opt = pipeline, opt
        self.generator, self.eager_generator = generator, eager_generator
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: tuple[Tensor, Tensor] | None = None

    def eager(self, redirect: bool) -> tuple[Tensor, Tensor]:
        """Run one step now: (loss, images)."""
        self.opt.zero_grad(set_to_none=True)
        out = self.pipeline.forward_backward(self.generator, redirect)
        self.opt.step()
        return out

    def capturable(self) -> tuple[tuple[Tensor, Tensor] | None, str | None]:
        """Run one step eagerly with CUDA's synchronising operations made errors: ((loss, images),
        None) if it ran (nothing in it waits for the GPU or copies from pageable host memory, which
        a graph cannot hold), else (None, why not). A step stopped before the optimiser's update
        has changed nothing (render's default optimiser does not synchronise)."""
        before = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode("error")
        try:
            return self.eager(redirect=False), None
        except RuntimeError as exc:
            if cuda_failure(exc):
                raise
            return None, first_line(exc)
        finally:
            torch.cuda.set_sync_debug_mode(before)

    def capture(self) -> str | None:
        """Record one whole step (param → stages → model → loss → backward → Adam) as a graph.

        Returns None on success, else why the capture failed; then the stream is restored and later
        eager steps draw from `eager_generator` (a failed capture can leave the default generator
        marked as capturing).
        """
        self.opt.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.current_stream()
        try:
            with torch.cuda.graph(graph):
                self.static = self.pipeline.forward_backward(self.generator)
                self.opt.step()
        except RuntimeError as exc:  # anything capturable() could not foresee
            if cuda_failure(exc):
                raise
            torch.cuda.set_stream(stream)
            self.fall_back()
            return first_line(exc)
        self.graph = graph
        return None

    def fall_back(self) -> None:
        """From now on, run eagerly."""
        self.graph, self.static, self.generator = None, None, self.eager_generator

    def replay(self) -> tuple[Tensor, Tensor]:
        """Run the captured step again; returns its (static) loss and images."""
        assert self.graph is not None and self.static is not None
        self.graph.replay()
        return self.static


def _param_from(param: Parameterization | str | None, size: int | Sequence[int] | None,
                batch: int | None, channels: int = 3
                ) -> Parameterization | Callable[[torch.Generator | None], Parameterization]:
    """The parameterization to optimise: `param` itself (checked against the model's `channels`), or a
    builder of one of kind `param` (default "fourier") of `size`, `batch` and `channels`, drawing from
    the generator it is given."""
    if isinstance(param, Parameterization):
        if size is not None or batch is not None:
            raise UserError("`size` and `batch` describe the image render makes itself; with a "
                            "parameterization given (`param`), set them on it instead")
        if param.channels != channels and not (channels == 3 and param.channels == 4):
            raise UserError(f"the parameterization makes {param.channels}-channel images, but the model "
                            f"takes {channels} channels")
        return param
    if param is not None and not isinstance(param, str):
        raise UserError(f"`param` must be a Parameterization or a kind name, got {type(param).__name__}")
    h, w = image_size(DEFAULT_SIZE if size is None else size)
    n = positive_int("batch", 1 if batch is None else batch)
    kind(param or "fourier")
    return lambda generator: make_param(param or "fourier", h, w, batch=n, generator=generator,
                                        channels=channels)


def render(
    model: Model | str | torch.nn.Module,
    objective: Objective | str,
    param: Parameterization | str | None = None,
    transforms: str | Callable | Iterable[Callable] | None = "standard",
    steps: int = 512,
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    thresholds: Iterable[int] = (),
    progress: bool = True,
    *,
    size: int | Sequence[int] | None = None,
    batch: int | None = None,
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
    report: bool | Objective | Sequence[Objective] = False,
    photos: str | os.PathLike | None = None,
) -> Result:
    """Optimise `param` to maximise `objective`; return the images, loss per step and timing.

    `param` is a `Parameterization`, or the name of a kind (`diffparam.param.KINDS`, default
    "fourier") to build with `batch` images of `size` (default 1 of 224 px). `lr` defaults to the
    parameterization's own (`default_lr`: 0.05 for images, 0.005 for CPPNs). `input_size`
    upsamples each transformed image to that many pixels before the model (None: feed as
    rendered); either way each batch is then fitted to what the model takes (`Model.geometry`: its
    one size, or multiples of its stride), and a model of other than 3 channels gets images of as
    many. For the first `relu_redirect_steps` steps ReLUs pass 'reviving' gradients (Lucid's
    trick; off by default, see BENCHMARKS.md). The images after each step in `thresholds` are kept
    in `Result.snapshots`; `callback(step, loss, images)` is called after every step.

    A 4-channel (RGBA) image is composited over a fresh random `background` each step ("noise",
    "fourier", a function (shape, device, generator) → RGB batch, or None to feed all 4 channels);
    objectives see the RGBA image as `INPUT`.

    Speed on CUDA: `cuda_graph` (None: when every piece of the pipeline declares it can be
    captured and the optimiser is the default) captures the whole step once and replays it; a
    capture that fails falls back to eager steps with a warning. `channels_last` (None: on CUDA)
    uses NHWC convolutions; `precision="bf16"` autocasts the model. `compile` (True = "inductor",
    or a torch.compile backend name) compiles each block of the model that holds no hooked layer;
    the first steps then pay for compilation (kept on the Model for later renders). `checkpoint`
    recomputes those blocks' inner activations in backward: about half the memory per image, a
    fifth to a quarter more time.

    `report` judges the images against natural photos (scikit-image's, or the folder `photos`) into
    `Result.metrics["report"]` (`diffparam.evaluate.trust.report`): True uses the render's
    objective for every image (right when all images share it); give one `Objective` to judge every
    image by it, or one objective per image.

    The model, and a parameterization given as an object, are moved to the render's device and stay
    there; everything else about the model (memory format, forward methods, hooks, training mode,
    which weights need gradients) is as it was.
    Raises NonFiniteLossError, holding the last finite images, if the loss becomes NaN or infinite
    (checked every step on CPU, every 16 steps on CUDA to avoid stalls).
    """
    steps = int_in("steps", steps, 1, MAX_STEPS)
    seed = int_in("seed", seed, 0, MAX_SEED)
    backend = _backend(compile)
    choice("precision", precision, PRECISIONS)
    dev = resolve_device(device)
    on_cuda = dev.type == "cuda"
    if cuda_graph and not on_cuda:
        raise UserError("`cuda_graph` needs a CUDA device")
    net = load_model(model).to(dev)
    obj = resolve(objective, net)
    made = _param_from(param, size, batch, net.geometry.channels)
    if report is not False:
        _check_report(net, made, report, batch, photos)
    check_fits(net, made if isinstance(made, Parameterization) else lambda: made(None), dev, input_size,
               precision)
    if not isinstance(made, Parameterization):
        made = made(torch.Generator().manual_seed(seed))
    param = made.to(dev)
    lr = positive_float("lr", param.default_lr if lr is None else lr)
    stages = stages_for(param, transforms, background, input_size, net.geometry)
    pipeline = Pipeline(param, net, obj, stages, precision,
                        on_cuda if channels_last is None else channels_last)
    blockers = pipeline.blockers()
    if cuda_graph and blockers:
        raise UserError(f"`cuda_graph` is True, but these cannot be captured in a CUDA graph: "
                        f"{', '.join(blockers)}")
    use_graph = on_cuda and (optimizer is None and not blockers if cuda_graph is None else cuda_graph)
    opt = _optimizer(optimizer, list(param.parameters()), lr, dev, capturable=use_graph)
    try:
        with ExitStack() as stack:
            # A graph replays the default CUDA generator's stream (graph-safe); fork_rng keeps it local.
            stack.enter_context(torch.random.fork_rng(devices=[dev.index or 0] if on_cuda else [],
                                                      enabled=use_graph))
            if use_graph:
                torch.cuda.manual_seed(seed)
            eager_generator = torch.Generator(device=dev).manual_seed(seed)
            stepper = _Stepper(pipeline, opt, None if use_graph else eager_generator, eager_generator)
            stack.enter_context(net.frozen())
            stack.enter_context(net.memory_format(pipeline.channels_last))
            stack.enter_context(net.accelerated(obj.layers, compile=backend, checkpoint=checkpoint))
            result = _run(stepper, obj.name, steps, set(thresholds), callback, progress, use_graph,
                          relu_redirect_steps, check_every=16 if on_cuda else 1)
    except RuntimeError as exc:  # the clean-up above fails too after such an error: caught out here
        if on_cuda and cuda_failure(exc):
            raise ModelError(f"model {net.name} failed on the GPU ({first_line(exc)}) while rendering "
                             f"{obj.name}; CUDA cannot be used again in this process: run it with "
                             "`device` cpu, or with CUDA_LAUNCH_BLOCKING=1, to see which layer") from exc
        raise
    if report is not False:
        result.metrics["report"] = judge(net, result.images, obj if report is True else report, photos)
    return result


def _check_report(net: Model, made: Parameterization | Callable,
                  report: bool | Objective | Sequence[Objective], batch: int | None,
                  photos: str | os.PathLike | None) -> None:
    """A report's inputs, checked before any work: an RGB model and RGB images only, one objective per
    image, photos."""
    if net.geometry.channels != 3:
        raise UserError(f"`report` compares with natural RGB photos: not available for model {net.name}, "
                        f"which takes {net.geometry.describe()}")
    if isinstance(made, Parameterization):
        if made.channels != 3:
            raise UserError("`report` judges RGB images: not available for a parameterization with "
                            f"{made.channels} channels (judge the composited images with diffparam.evaluate)")
        if made.copies != 1:
            raise UserError("`report` judges every image of the batch: not available with a parameterization "
                            f"of {made.copies} copies")
    count = made.batch if isinstance(made, Parameterization) else 1 if batch is None else batch
    if not isinstance(report, bool | Objective) and len(report) != count:
        raise UserError(f"`report` has {len(report)} objectives for {count} images: give one per image, "
                        "or True")
    if photos is not None:
        photo_files(photos)


def _run(stepper: _Stepper, name: str, steps: int, marks: set[int], callback: Callback | None,
         progress: bool, use_graph: bool, redirect_steps: int, check_every: int) -> Result:
    """Step `steps` times; record losses on the device and check them every `check_every` steps."""
    param = stepper.pipeline.param
    dev = next(param.parameters()).device
    losses = torch.zeros(steps, device=dev)
    snapshots: dict[int, Tensor] = {}
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
        checked = None
        if use_graph and step >= eager_steps and stepper.graph is None:
            # The last eager step also checks that the step can be captured; the next is captured.
            if step == eager_steps:
                with torch.cuda.stream(side):
                    checked, failed = stepper.capturable()
            else:
                failed = stepper.capture()
            if failed is not None:
                warnings.warn(f"render of {name}: CUDA graph capture failed ({failed}); running eagerly",
                              RuntimeWarning, stacklevel=3)
                stepper.fall_back()
                use_graph = False
        if checked is not None or not use_graph or step <= eager_steps:
            with torch.cuda.stream(side) if side is not None else nullcontext():
                loss, images = checked or stepper.eager(redirect=step <= redirect_steps)
                losses[step - 1] = loss
            if side is not None:
                torch.cuda.current_stream(dev).wait_stream(side)
        else:
            loss, images = stepper.replay()
            losses[step - 1] = loss
        if step % check_every == 0 or step == steps:
            window = losses[last_good[0]:step]
            bad = (~torch.isfinite(window)).nonzero()
            if len(bad):
                first = last_good[0] + int(bad[0]) + 1
                raise NonFiniteLossError(
                    f"loss became {losses[first - 1].item()} at step {first} of {name} (try a lower `lr`)",
                    Result(last_good[1].cpu(), losses[:first - 1].tolist(), snapshots, name, param),
                )
            last_good = (step, images.detach().clone())
            bar.set_postfix(loss=f"{float(losses[step - 1]):.3g}")
        if step in marks or callback is not None:
            with torch.no_grad():
                now = param().detach().cpu()
            if step in marks:
                snapshots[step] = now
            if callback is not None:
                callback(step, float(loss), now)
        bar.update()
    bar.close()
    with torch.no_grad():
        final = param().detach().cpu()
    seconds = time.perf_counter() - start
    result = Result(final, losses.tolist(), snapshots, name, param, seconds)
    saturated = saturation(final)
    if saturated >= SATURATED:
        raise SaturatedError(f"the optimisation of {name} diverged: {saturated:.0%} of the images' colour "
                             "values ended at 0 or 1 (try a lower `lr`)", result)
    return result


def saturation(images: Tensor) -> float:
    """The largest share, over the images of a batch (B,C,H,W) in [0,1], of colour values (the first
    three channels) that are 0 or 1 in 8 bits."""
    q = images[:, :3].mul(255).round()
    return float(((q <= 0) | (q >= 255)).flatten(1).float().mean(1).max())


__getattr__ = deprecation.module_getattr(__name__, {"check_size": "diffparam.checks:image_size"})
