"""Objectives for semi-transparent (RGBA) images: mean opacity and the article's transparency objective.

`render` composites an RGBA image over a fresh random background each step before the model sees it,
so a unit objective is always measured on the composited image: where the image is transparent the
model sees noise that changes every step, and only opaque pixels can drive the unit reliably. These
objectives read the opacity itself from the RGBA image (`INPUT`, before compositing).
"""

from __future__ import annotations

from torch import Tensor

from diffparam.errors import UserError
from diffparam.objectives.core import INPUT, Activations, Objective, _for_batch, _suffix


def _alpha(acts: Activations) -> Tensor:
    image = acts[INPUT]
    if image.dim() != 4 or image.shape[1] != 4:
        raise UserError(f"opacity needs an RGBA image (B,4,H,W), got {tuple(image.shape)}: "
                        "render an RGBA parameterization (e.g. RGBAImage)")
    return image[:, 3]


def mean_opacity(batch: int | None = None) -> Objective:
    """Mean alpha of each RGBA image: 0 fully transparent, 1 opaque."""
    return Objective(lambda acts: _for_batch(_alpha(acts).flatten(1).mean(1), batch), [],
                     f"mean_opacity{_suffix(batch)}")


def transparency(objective: Objective) -> Objective:
    """The article's objective for semi-transparent images: `objective * (1 - mean opacity)`.

    An opaque image gains nothing from the objective, so opacity survives only where it raises the
    objective enough to pay for itself; the rest is pushed toward transparency. (While the objective
    is negative the product favours opacity instead, until the objective turns positive.)
    """
    return objective * (1 - mean_opacity())
