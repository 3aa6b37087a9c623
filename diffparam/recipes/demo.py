"""`diffparam demo`: a small gallery on the embedded model, each image scored against natural photos."""

from __future__ import annotations

import html
import os
from pathlib import Path

from diffparam.evaluate import class_probability, objective_values, photo_reference
from diffparam.io import atomic_path, save_image
from diffparam.models.registry import efficientnet_lite0
from diffparam.objectives import Objective, parse
from diffparam.render import render

DEMO_OBJECTIVES = (
    "blocks.2:3",
    "blocks.6:21",
    "blocks.10:27",
    "blocks.14:57",
    "logit:flamingo",
    "logit:goldfinch",
)
"""Units from early, middle and late blocks, and two classes."""


def run_demo(
    out: str | os.PathLike = "demo",
    size: int = 128,
    steps: int = 256,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    objectives: tuple[str, ...] = DEMO_OBJECTIVES,
) -> Path:
    """Render `objectives` together as one batch into `out/`, write `out/index.html`, return it."""
    folder = Path(out)
    model = efficientnet_lite0()
    parsed = [parse(spec, model, batch=i) for i, spec in enumerate(objectives)]
    result = render(model, Objective.sum(parsed), size=size, batch=len(objectives), steps=steps,
                    seed=seed, device=device, progress=progress)
    model.to("cpu")
    rows = []
    for i, spec in enumerate(objectives):
        name = spec.replace(":", "_") + ".png"
        save_image(result.images[i], folder / name)
        single = parse(spec, model)
        value = float(objective_values(model, single, result.images[i:i + 1])[0])
        reference = photo_reference(model, single)
        extra = ""
        if spec.startswith("logit:"):
            prob = float(class_probability(model, result.images[i:i + 1], spec[6:])[0])
            extra = f"; class probability {prob:.3f}"
        rows.append((name, spec, value, reference, extra))
    page = folder / "index.html"
    with atomic_path(page) as tmp:
        tmp.write_text(_page(rows, size, steps), encoding="utf-8")
    return page


def _page(rows: list[tuple[str, str, float, float, str]], size: int, steps: int) -> str:
    cells = []
    for name, spec, value, reference, extra in rows:
        ratio = f"{value / reference:.1f}× the best natural photo" if reference > 0 else "n/a"
        cells.append(
            f'<figure><img src="{html.escape(name)}" width="{size * 2}">'
            f"<figcaption><b>{html.escape(spec)}</b><br>activation {value:.2f} "
            f"(photos: best {reference:.2f}; {ratio}){html.escape(extra)}</figcaption></figure>"
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>diffparam demo</title>"
        "<style>body{font-family:sans-serif;margin:2em}figure{display:inline-block;margin:1em;"
        "width:min-content}figcaption{font-size:14px}img{image-rendering:auto}</style></head><body>"
        f"<h1>diffparam demo: EfficientNet-Lite0</h1><p>{size}px, {steps} steps, Fourier "
        "parameterization with decorrelated colour. Each caption compares the objective on the "
        "image with its best value over scikit-image's astronaut, chelsea, coffee, rocket and "
        f"camera photos.</p>{''.join(cells)}</body></html>\n"
    )
