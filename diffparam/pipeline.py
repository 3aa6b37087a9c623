"""The pipeline that `render` runs each step: parameterization → stages → model → objective → loss.

    param() ──► Composite (RGBA over a random background) ──► Transforms ──► Resize ──► Model ──► Objective
    images        stages: each a callable (x, generator) → x, declaring `graph_safe`

Each piece declares whether it can be captured in a CUDA graph (`graph_safe`): the
parameterization, every stage, the model and the objective. `render` reads `Pipeline.blockers()`
to choose between a captured, replayed step and eager steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch import Tensor

from diffparam import transforms as T
from diffparam.backgrounds import Background, background_from, composite
from diffparam.checks import positive_int
from diffparam.errors import UserError
from diffparam.models.base import Model
from diffparam.models.geometry import InputGeometry
from diffparam.objectives import INPUT, Activations, Objective
from diffparam.param.base import Parameterization

ANY_SIZE = InputGeometry()
"""What `Resize` fits to without a model's geometry: any size."""

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
"""Precisions the model can run in (autocast dtype; None: as its weights are)."""


class Stage:
    """One step between the parameterization and the model: (images, generator) → images."""

    graph_safe: bool = True
    """Whether the stage may be captured in a CUDA graph (no host synchronisation or copies)."""

    def __call__(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError


@dataclass
class Composite(Stage):
    """RGBA images over a fresh random background each step; other images pass unchanged.

    `copies` > 1: image i and image i + B/copies share one background (a view and its reference).
    """

    background: Background
    copies: int = 1

    def __call__(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        if x.shape[1] != 4:
            return x
        b, _, h, w = x.shape
        if b % self.copies:
            raise UserError(f"a batch of {b} cannot share backgrounds in {self.copies} copies")
        bg = self.background((b // self.copies, 3, h, w), x.device, generator)
        return composite(x, bg if self.copies == 1 else bg.repeat(self.copies, 1, 1, 1))


@dataclass
class Transforms(Stage):
    """The random transforms (a `diffparam.transforms` callable), drawing from the step's generator.

    `copies` > 1: image i and image i + B/copies are moved alike (the transforms see them as one
    image with copies x C channels; every transform treats channels alike).
    """

    transform: Callable[[Tensor, torch.Generator | None], Tensor]
    copies: int = 1

    def __call__(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        if self.copies == 1:
            return self.transform(x, generator)
        b, c, h, w = x.shape
        k = self.copies
        if b % k:
            raise UserError(f"a batch of {b} cannot be transformed in {k} copies")
        stacked = x.reshape(k, b // k, c, h, w).transpose(0, 1).reshape(b // k, k * c, h, w)
        out = self.transform(stacked, generator)
        return out.reshape(b // k, k, c, *out.shape[-2:]).transpose(0, 1).reshape(b, c, *out.shape[-2:])


@dataclass
class Resize(Stage):
    """Bilinear resampling to `size` x `size` pixels (None: the size as it comes), then to the nearest
    size the model takes (`geometry`: its fixed size, or multiples of its stride)."""

    size: int | None
    geometry: InputGeometry | None = None

    def __call__(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return (self.geometry or ANY_SIZE).resample(x, self.size, self.size)


def transform_from(transforms: str | Callable | Iterable[Callable] | None) -> Callable | None:
    """A transform callable from "standard" (Lucid's), "ghiasi" (Ghiasi et al.'s for ViTs), None, a
    callable or a sequence of transforms."""
    if transforms is None:
        return None
    if transforms == "standard":
        return T.standard()
    if transforms == "ghiasi":
        return T.ghiasi()
    if isinstance(transforms, str):
        raise UserError(f"unknown transforms {transforms!r}: use 'standard', 'ghiasi', None or a callable")
    if callable(transforms):
        return transforms
    return T.compose(*transforms)


def stages_for(param: Parameterization, transforms: str | Callable | Iterable[Callable] | None,
               background: str | Background | None, input_size: int | None,
               geometry: InputGeometry | None = None) -> list[Stage]:
    """The stages between `param` and the model: composite (an RGBA batch for an RGB model),
    transforms, resize (to `input_size`, and to what a model of `geometry` takes)."""
    stages: list[Stage] = []
    bg = background_from(background)
    if bg is not None and param.channels == 4 and (geometry is None or geometry.channels == 3):
        stages.append(Composite(bg, param.copies))
    transform = transform_from(transforms)
    if transform is not None:
        stages.append(Transforms(transform, param.copies))
    size = None if input_size is None else positive_int("input_size", input_size)
    if size is not None or (geometry is not None and (geometry.fixed or geometry.multiple > 1)):
        stages.append(Resize(size, geometry))
    return stages


@dataclass
class Pipeline:
    """What one step computes: `param` → `stages` → `model` → `objective`, and the loss to minimise."""

    param: Parameterization
    model: Model
    objective: Objective
    stages: list[Stage] = field(default_factory=list)
    precision: str = "fp32"
    channels_last: bool = False

    def blockers(self) -> list[str]:
        """The pieces that declare they cannot be captured in a CUDA graph (empty: all can)."""
        pieces = [(type(self.param).__name__, self.param.graph_safe),
                  *((type(s).__name__, s.graph_safe) for s in self.stages),
                  (f"model {self.model.name}", self.model.graph_safe),
                  (f"objective {self.objective.name}", self.objective.graph_safe)]
        return [name for name, safe in pieces if not safe]

    def model_input(self, images: Tensor, generator: torch.Generator | None) -> Tensor:
        """The images after every stage, as the model receives them."""
        x = images
        for stage in self.stages:
            x = stage(x, generator)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def forward_backward(self, generator: torch.Generator | None, redirect: bool = False
                         ) -> tuple[Tensor, Tensor]:
        """One forward and backward pass: (loss, images), both detached; gradients land on the
        parameterization's parameters. `redirect` passes Lucid's reviving gradients through ReLUs."""
        images = self.param()
        x = self.model_input(images, generator)
        dtype = PRECISIONS[self.precision]
        amp = torch.autocast(x.device.type, dtype=dtype) if dtype is not None else nullcontext()
        with amp, self.model.redirected_relus() if redirect else nullcontext():
            captured = self.model.activations(x, self.objective.layers)
        acts = Activations({k: v.float() for k, v in captured.items()}, self.model)
        acts[INPUT] = images
        loss = -self.objective(acts).sum()
        loss.backward()
        return loss.detach(), images.detach()
