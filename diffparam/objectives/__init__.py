"""What to maximise: objectives on a model's activations that add and scale like numbers.

`core` holds the algebra, the unit and class objectives, regularisers and the string grammar; the
other modules add families of objectives (one import line each below).
"""

from diffparam.objectives.core import (
    INPUT,
    Activations,
    Objective,
    channel,
    channel_list,
    channels,
    direction,
    diversity,
    l1,
    l2,
    layer,
    log_softmax,
    logit,
    neuron,
    parse,
    total_variation,
)

__all__ = [
    "INPUT",
    "Activations",
    "Objective",
    "channel",
    "channel_list",
    "channels",
    "direction",
    "diversity",
    "l1",
    "l2",
    "layer",
    "log_softmax",
    "logit",
    "neuron",
    "parse",
    "total_variation",
]
