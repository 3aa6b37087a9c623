"""The optimisation loop: the one place where parameterization, transforms, model and objective meet."""

from __future__ import annotations

import os
import sys
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
from diffparam.objectives import INPUT, Activations, Objective, parse
from diffparam.param import FourierImage, Parameterization

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


def _optimizer(optimizer, params: Iterable[Tensor], lr: float) -> torch.optim.Optimizer:
    if optimizer is None:
        return torch.optim.Adam(params, lr=lr)
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        return optimizer(params, lr=lr)
    if callable(optimizer):
        return optimizer(params)
    raise UserError("optimizer must be a torch.optim.Optimizer class or a function params → optimizer")


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
) -> Result:
    """Optimise `param` (default: a Fourier image of `size`, `batch` images) to maximise `objective`.

    `lr` defaults to the parameterization's own (`param.default_lr`: 0.05 for images, 0.005
    for CPPNs). `input_size` upsamples each transformed image to that many pixels before the model (None:
    feed as rendered). For the first `relu_redirect_steps` steps ReLUs pass 'reviving'
    gradients (Lucid's trick). Raises NonFiniteLossError, holding the last finite images, if
    the loss becomes NaN or infinite.
    """
    if steps < 1:
        raise UserError(f"steps must be at least 1, got {steps}")
    if batch < 1:
        raise UserError(f"batch must be at least 1, got {batch}")
    dev = resolve_device(device)
    net = load_model(model).to(dev)
    obj = parse(objective, net) if isinstance(objective, str) else objective
    obj.validate(net)
    if param is None:
        h, w = check_size(size)
        param = FourierImage(h, w, batch=batch, generator=torch.Generator().manual_seed(seed))
    param = param.to(dev)
    lr = param.default_lr if lr is None else lr
    if lr <= 0:
        raise UserError(f"learning rate must be positive, got {lr}")
    transform = _transform(transforms)
    opt = _optimizer(optimizer, param.parameters(), lr)
    generator = torch.Generator(device=dev).manual_seed(seed)
    marks = set(thresholds)

    history: list[float] = []
    frames: dict[int, Tensor] = {}
    last_good: Tensor | None = None
    bar = tqdm(range(1, steps + 1), disable=not progress or not sys.stderr.isatty(),
               desc=obj.name[:40], unit="step", leave=False)
    for step in bar:
        opt.zero_grad(set_to_none=True)
        images = param()
        x = transform(images, generator)
        if input_size is not None:
            x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False)
        redirect = net.redirected_relus() if step <= relu_redirect_steps else nullcontext()
        with redirect:
            acts = Activations(net.activations(x, obj.layers), net)
            acts[INPUT] = images
            loss = -obj(acts).sum()
            if not torch.isfinite(loss):
                fallback = (last_good if last_good is not None else images).detach().cpu()
                raise NonFiniteLossError(
                    f"loss became {loss.item()} at step {step} of {obj.name}; "
                    "kept the last finite image (try a lower --lr)",
                    Result(fallback, history, frames, obj.name, param),
                )
            loss.backward()
        opt.step()
        value = loss.item()
        history.append(value)
        last_good = images.detach()
        if step in marks or callback is not None:
            with torch.no_grad():
                now = param().detach().cpu()
            if step in marks:
                frames[step] = now
            if callback is not None:
                callback(step, value, now)
        if step % 16 == 0:
            bar.set_postfix(loss=f"{value:.3g}")
    with torch.no_grad():
        final = param().detach().cpu()
    return Result(final, history, frames, obj.name, param)
