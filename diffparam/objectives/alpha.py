"""Objectives for semi-transparent (RGBA) images: mean opacity and the article's transparency objective.

`render` composites an RGBA image over a fresh random background each step before the model sees it,
so a unit objective is always measured on the composited image: where the image is transparent the
model sees noise that changes every step, and only opaque pixels can drive the unit reliably. These
objectives read the opacity itself from the RGBA image (`INPUT`, before compositing).
"""

from __future__ import annotations

from torch import Tensor

from diffparam import deprecation
from diffparam.checks import shape
from diffparam.objectives.core import INPUT, Activations, Objective, _for_image, _suffix


def _alpha(acts: Activations) -> Tensor:
    image = shape("opacity's image (render an RGBA parameterization, e.g. make_param(..., alpha=True))",
                  acts[INPUT], "B,C,H,W", C=4)
    return image[:, 3]


@deprecation.renames(batch="image")
def mean_opacity(image: int | None = None) -> Objective:
    """Mean alpha of each RGBA image (or of image `image` only): 0 fully transparent, 1 opaque."""
    return Objective(lambda acts: _for_image(_alpha(acts).flatten(1).mean(1), image), [],
                     f"mean_opacity{_suffix(image)}")


def transparency(objective: Objective) -> Objective:
    """The article's objective for semi-transparent images: `objective * (1 - mean opacity)`.

    An opaque image gains nothing from the objective, so opacity survives only where it raises the
    objective enough to pay for itself; the rest is pushed toward transparency. (While the objective
    is negative the product favours opacity instead, until the objective turns positive.)
    """
    return objective * (1 - mean_opacity())
