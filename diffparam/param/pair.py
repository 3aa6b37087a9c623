"""`ReferencePair`: optimised images followed by fixed reference images, seen together.

Feature accentuation keeps an image close to the photo it started from: the model must see both
through the same random transforms, so `copies` is 2 and `render` moves each image and its reference
alike (and composites them over one background). forward() returns the B optimised images first,
then the B references.
"""

from __future__ import annotations

import torch
from torch import Tensor

from diffparam.checks import shape
from diffparam.errors import UserError
from diffparam.param.base import Parameterization


class ReferencePair(Parameterization):
    """`param`'s images (B,C,H,W), then `reference` (B,C,H,W) in [0, 1], a fixed buffer."""

    copies = 2

    def __init__(self, param: Parameterization, reference: Tensor) -> None:
        if not isinstance(param, Parameterization):
            raise UserError(f"`param` must be a Parameterization, got {type(param).__name__}")
        shape("reference", reference, "B,C,H,W")
        if tuple(reference.shape) != param.shape:
            raise UserError(f"the reference images are {tuple(reference.shape)} but the parameterization "
                            f"makes {param.shape}: they must match")
        super().__init__(param.height, param.width, 2 * param.batch, param.channels)
        self.param = param
        self.default_lr = param.default_lr
        self.graph_safe = param.graph_safe
        device = next(param.parameters()).device
        fixed = reference.detach().to(device, torch.get_default_dtype()).clamp(0, 1)
        self.register_buffer("reference", fixed)

    def forward(self) -> Tensor:
        """The optimised images, then the references: (2B, C, H, W) in [0, 1]."""
        return torch.cat([self.param(), self.reference])

    def work_elements(self) -> int:
        return self.param.work_elements() + self.reference.numel()
