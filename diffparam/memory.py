"""Will it fit? A render's memory, estimated before it is allocated, against what the device has free.

The estimate is rough and errs high: the model's activations per input pixel are measured once, as
the distinct tensors its layers output for a small image (at 64 px; that overstates the embedded
model's peak memory per image by 1.3-1.4x against what an H200 measured at 128 and 224 px); the
parameterization's parameters are counted with their gradients and Adam's two moments, and its
own intermediate images by `work_elements()`. Only a render that cannot fit is refused, before
anything is allocated, instead of being killed by the kernel half-way.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import nn

from diffparam.errors import UserError
from diffparam.models.base import Model
from diffparam.param.base import Parameterization

PROBE_SIZE = 64
"""Side of the image that measures a model's activations per pixel."""


def available(device: torch.device) -> int | None:
    """Bytes free for a new allocation on `device` (None where it cannot be told)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type == "cpu":
        try:
            with open("/proc/meminfo", encoding="ascii") as info:
                for line in info:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
    return None


def activations_per_pixel(model: Model) -> float | None:
    """Elements the model's layers output per input pixel and image, measured at a small size the model
    takes (its own, for a model of one size; None when it cannot run)."""
    if "activations_per_pixel" in model.cache:
        return model.cache["activations_per_pixel"]  # type: ignore[return-value]
    found: float | None = None
    geometry = model.geometry
    for side in (PROBE_SIZE, model.input_size):
        height, width = geometry.fit(side, side)
        outputs: dict[int, torch.Tensor] = {}  # by storage, kept alive so that none is reused

        def count(_m: nn.Module, _i: object, out: object, outputs: dict = outputs) -> None:
            if isinstance(out, torch.Tensor):
                outputs[out.untyped_storage().data_ptr()] = out

        leaves = [m for m in model.module.modules() if next(m.children(), None) is None]
        hooks = [m.register_forward_hook(count) for m in leaves]
        try:
            with torch.no_grad():
                model(torch.zeros(1, geometry.channels, height, width, device=model.device))
            found = sum(t.numel() for t in outputs.values()) / (height * width)
            break
        except Exception:  # noqa: BLE001 - a model that refuses the probe size gets the next one
            continue
        finally:
            for h in hooks:
                h.remove()
    model.cache["activations_per_pixel"] = found
    return found


def render_bytes(model: Model, param: Parameterization, input_pixels: int,
                 bf16: bool = False) -> int | None:
    """Bytes a render step needs beyond the model's weights: the activations kept for backward, the
    parameters with their gradients and Adam's moments, the parameterization's own intermediate
    images. None when the model's activations cannot be measured."""
    per_pixel = activations_per_pixel(model)
    if per_pixel is None:
        return None
    activations = per_pixel * input_pixels * param.batch * (2 if bf16 else 4)
    parameters = 4 * 4 * sum(p.numel() for p in param.parameters())
    return int(activations + parameters + 4 * param.work_elements())


def check_fits(model: Model, param: Parameterization | Callable[[], Parameterization], device: torch.device,
               input_size: int | None = None, precision: str = "fp32",
               lower: str = "`batch` or `size`") -> None:
    """Raise a UserError when a render of `param` (or of what `param()` builds: it is built on the
    meta device, which allocates nothing) through `model` clearly cannot fit in `device`'s free
    memory; the message says to lower `lower`. Does nothing when either side cannot be told, or when
    DIFFPARAM_NO_MEMORY_CHECK is set."""
    if os.environ.get("DIFFPARAM_NO_MEMORY_CHECK"):
        return
    free = available(device)
    if free is None:
        return
    if not isinstance(param, Parameterization):
        with torch.device("meta"):
            param = param()
    side = (input_size, input_size) if input_size else (param.height + 2 * 6, param.width + 2 * 6)
    fitted = model.geometry.fit(*side)  # the standard transforms pad by 6 net; then the model's size
    pixels = fitted[0] * fitted[1]
    need = render_bytes(model, param, pixels, precision == "bf16")
    if need is not None and need > free:
        raise UserError(f"this render needs about {need / 2**30:.1f} GiB of memory ({param.batch} image(s) "
                        f"of {param.height}x{param.width} px through {model.name}) but {free / 2**30:.1f} "
                        f"GiB is free on {device}: lower {lower}")
