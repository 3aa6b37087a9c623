"""The core figures on the embedded model, at small sizes so they run on a CPU.

bench/figures.py measures the same things over every channel at full size (see BENCHMARKS.md).
"""

from __future__ import annotations

import torch

from diffparam import objectives as O
from diffparam.evaluate import class_probability, unit_ratio
from diffparam.models.base import Model
from diffparam.param import FourierImage, PixelImage
from diffparam.recipes.demo import DEMO_OBJECTIVES
from diffparam.render import render

UNITS = [tuple(spec.split(":")) for spec in DEMO_OBJECTIVES if spec.startswith("blocks.")]


def test_units_beat_natural_photos(lite0: Model) -> None:
    """Blocks 2, 6, 10: at least 5x the best photo activation; block 14: at least 3x (128 px)."""
    units = [(layer, int(c)) for layer, c in UNITS]
    assert [layer for layer, _ in units] == ["blocks.2", "blocks.6", "blocks.10", "blocks.14"]
    obj = O.Objective.sum(O.channel(layer, c, image=i) for i, (layer, c) in enumerate(units))
    result = render(lite0, obj, batch=len(units), size=128, steps=256, device="cpu",
                    progress=False)
    ratios = [float(unit_ratio(lite0, layer, c, result.images[i:i + 1])[0])
              for i, (layer, c) in enumerate(units)]
    needed = [5, 5, 5, 3]
    assert all(r >= n for r, n in zip(ratios, needed, strict=True)), ratios


def test_class_objectives_reach_high_probability(lite0: Model) -> None:
    classes = ["flamingo", "goldfinch", "espresso"]
    obj = O.Objective.sum(O.logit(c, image=i) for i, c in enumerate(classes))
    result = render(lite0, obj, batch=len(classes), size=128, steps=128, device="cpu",
                    progress=False)
    probs = [float(class_probability(lite0, result.images[i:i + 1], c)[0])
             for i, c in enumerate(classes)]
    assert min(probs) >= 0.9, probs


def test_fourier_beats_pixel_at_equal_steps(lite0: Model) -> None:
    """The article's 'improved optimisation': deeper units rise faster with the Fourier image."""
    units = [("blocks.10", 27), ("blocks.14", 57)]
    obj = O.Objective.sum(O.channel(layer, c, image=i) for i, (layer, c) in enumerate(units))
    gen = torch.Generator().manual_seed(0)
    finals = {}
    for name, param in [("fourier", FourierImage(96, batch=2, generator=gen)),
                        ("pixel", PixelImage(96, batch=2, generator=gen))]:
        result = render(lite0, obj, param=param, steps=48, device="cpu", progress=False)
        finals[name] = [float(unit_ratio(lite0, layer, c, result.images[i:i + 1])[0])
                        for i, (layer, c) in enumerate(units)]
    assert all(f > p for f, p in zip(finals["fourier"], finals["pixel"], strict=True)), finals


def test_same_seed_same_image_on_the_embedded_model(lite0: Model) -> None:
    a = render(lite0, "blocks.6:21", size=48, steps=6, seed=1, device="cpu", progress=False)
    b = render(lite0, "blocks.6:21", size=48, steps=6, seed=1, device="cpu", progress=False)
    assert torch.equal(a.images, b.images) and a.history == b.history


def test_cppn_with_its_default_learning_rate(lite0: Model) -> None:
    from diffparam.param import CPPN

    param = CPPN(96, generator=torch.Generator().manual_seed(0))
    result = render(lite0, "blocks.10:27", param=param, steps=96, device="cpu", progress=False)
    assert float(unit_ratio(lite0, "blocks.10", 27, result.images)[0]) >= 3
