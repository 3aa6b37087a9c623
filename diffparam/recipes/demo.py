"""`diffparam demo`: a small gallery on the embedded model, each image scored against natural photos."""

from __future__ import annotations

import html
from pathlib import Path

from diffparam import deprecation
from diffparam.evaluate import class_probability, objective_values, photo_reference
from diffparam.io import atomic_path, save_image
from diffparam.models.registry import efficientnet_lite0
from diffparam.objectives import Objective, parse
from diffparam.render import render
from diffparam.result import Result

DEMO_OBJECTIVES = (
    "blocks.2:3",
    "blocks.6:21",
    "blocks.10:27",
    "blocks.14:57",
    "logit:flamingo",
    "logit:goldfinch",
)
"""Units from early, middle and late blocks, and two classes."""


def demo(
    size: int = 128,
    steps: int = 256,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    objectives: tuple[str, ...] = DEMO_OBJECTIVES,
) -> Result:
    """Render `objectives` together as one batch on the embedded model and score each image.

    `metrics["scores"]` holds, per objective, its value on the image, its best value over natural
    photos and (for a class) the softmax probability; `save(folder)` writes each image as a PNG
    and `index.html` showing them with their scores.
    """
    model = efficientnet_lite0()
    parsed = [parse(spec, model, image=i) for i, spec in enumerate(objectives)]
    result = render(model, Objective.sum(parsed), size=size, batch=len(objectives), steps=steps,
                    seed=seed, device=device, progress=progress)
    model.to("cpu")
    scores = []
    for i, spec in enumerate(objectives):
        single = parse(spec, model)
        score = {"objective": spec,
                 "value": float(objective_values(model, single, result.images[i:i + 1])[0]),
                 "photos": photo_reference(model, single)}
        if spec.startswith("logit:"):
            score["probability"] = float(class_probability(model, result.images[i:i + 1], spec[6:])[0])
        scores.append(score)
    result.metrics["scores"] = scores
    result.extras.update(size=size, steps=steps)
    result.writer = write_demo
    return result


def write_demo(result: Result, out: Path) -> dict[str, Path]:
    """The demo's writer: one PNG per objective in folder `out`, and `out/index.html`."""
    files = {}
    rows = []
    for image, score in zip(result.images, result.metrics["scores"], strict=True):
        name = score["objective"].replace(":", "_") + ".png"
        files[score["objective"]] = save_image(image, out / name)
        rows.append((name, score))
    page = out / "index.html"
    with atomic_path(page) as tmp:
        tmp.write_text(_page(rows, result.extras["size"], result.extras["steps"]), encoding="utf-8")
    files["page"] = page
    return files


def _run_demo(out: str | Path = "demo", **options: object) -> Path:
    """What `run_demo` was (deprecated): `demo(**options)` saved into folder `out`; its index.html."""
    result = demo(**options)  # type: ignore[arg-type]
    result.save(out)
    return result.files["page"]


__getattr__ = deprecation.module_getattr(__name__, {"run_demo": "diffparam.recipes.demo:_run_demo"})


def _page(rows: list[tuple[str, dict]], size: int, steps: int) -> str:
    cells = []
    for name, score in rows:
        value, reference = score["value"], score["photos"]
        ratio = f"{value / reference:.1f}× the best natural photo" if reference > 0 else "n/a"
        extra = f"; class probability {score['probability']:.3f}" if "probability" in score else ""
        cells.append(
            f'<figure><img src="{html.escape(name)}" width="{size * 2}">'
            f"<figcaption><b>{html.escape(score['objective'])}</b><br>activation {value:.2f} "
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
