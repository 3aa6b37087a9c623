"""What to maximise: objectives on a model's activations that add and scale like numbers.

`core` holds the algebra, the unit and class objectives, regularisers and the string grammar; the
other modules add families of objectives (one import line each below).
"""

from diffparam.objectives.alpha import mean_opacity, transparency
from diffparam.objectives.core import (
    INPUT,
    Activations,
    Objective,
    channel,
    channel_list,
    channels,
    direction,
    diversity,
    head,
    l1,
    l2,
    layer,
    load_direction,
    log_softmax,
    logit,
    neuron,
    parse,
    resolve,
    total_variation,
)
from diffparam.objectives.frames import alignment, interpolation, temporal
from diffparam.objectives.pairs import closeness, first_half
from diffparam.objectives.style import content, content_target, gram, style, style_targets

__all__ = [
    "INPUT",
    "Activations",
    "Objective",
    "alignment",
    "channel",
    "channel_list",
    "channels",
    "closeness",
    "content",
    "content_target",
    "direction",
    "load_direction",
    "first_half",
    "diversity",
    "head",
    "gram",
    "interpolation",
    "l1",
    "l2",
    "layer",
    "log_softmax",
    "logit",
    "mean_opacity",
    "neuron",
    "parse",
    "resolve",
    "style",
    "style_targets",
    "temporal",
    "total_variation",
    "transparency",
]
