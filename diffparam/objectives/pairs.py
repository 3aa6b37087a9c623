"""Objectives on pairs: a batch whose second half are fixed references for the first half (a
`ReferencePair`), as feature accentuation uses to stay close to its photo."""

from __future__ import annotations

import torch
from torch import Tensor

from diffparam.errors import UserError
from diffparam.objectives.core import Activations, Objective, _layer_check

EPS = 1e-8


def first_half(objective: Objective) -> Objective:
    """`objective` on the first half of the batch only (the optimised images; 0 for the references)."""

    def fn(acts: Activations) -> Tensor:
        half = _half(acts.batch)
        values = objective(Activations({k: v[:half] for k, v in acts.items()}, acts.model))
        return _then_zeros(values, acts.batch - half)

    return Objective(fn, objective.layers, objective.name, objective.checks, objective.graph_safe)


def closeness(layer: str) -> Objective:
    """Minus the squared distance between each image's activations of `layer` and its reference's
    (image i + B/2), relative to the reference's squared norm: 0 when equal, about -1 when as far
    as the reference is from nothing; 0 for the references themselves."""

    def fn(acts: Activations) -> Tensor:
        t = acts[layer]
        half = _half(t.shape[0])
        image, reference = t[:half].flatten(1), t[half:].flatten(1)
        distance = (image - reference).square().sum(1) / (reference.square().sum(1) + EPS)
        return _then_zeros(-distance, half)

    return Objective(fn, [layer], f"closeness({layer})", [_layer_check(layer)])


def _half(batch: int) -> int:
    if batch % 2:
        raise UserError(f"a batch of pairs must have an even size, got {batch}")
    return batch // 2


def _then_zeros(values: Tensor, zeros: int) -> Tensor:
    """`values` followed by `zeros` zeros (the references' values)."""
    return torch.cat([values, values.new_zeros(zeros)])

