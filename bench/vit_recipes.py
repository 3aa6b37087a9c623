"""What makes transformer visualizations good (issue 12): the default recipe (Fourier image, Lucid's
transforms) against Ghiasi et al. (ICLR 2023)'s recipe for ViTs (pixel space, random colour shifts
and offsets, circular jitter, an ensemble of 8 augmented views per step, total variation) and the
two crossings, on MLP hidden units (the GELU output of fc1, the units Ghiasi et al. study) and
residual-stream channels of ViTs with random weights (no pretrained weights are reachable here).

Per recipe and unit: the unit's value on the image seen plainly at the model's size, over the best
of the 240 photo crops; and the share of pixels saturated at 0 or 1. Prints a markdown table of the
medians per model and recipe.

GPU:  python3 bench/vit_recipes.py --device cuda --out vit_recipes.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from diffparam.evaluate import photo_pool
from diffparam.evaluate.photos import values_at_input_size
from diffparam.models.registry import RANDOM, load_model
from diffparam.objectives import channel, total_variation
from diffparam.param import make_param
from diffparam.param.base import Parameterization
from diffparam.render import render

MODELS = ("timm:vit_small_patch16_224", "timm:deit_small_patch16_224", "torchvision:vit_b_16")
VIEWS = 8


class Views(Parameterization):
    """`views` copies of one parameterization's images per step, so that the objective sums over as
    many differently augmented views (Ghiasi et al.'s ensemble)."""

    def __init__(self, inner: Parameterization, views: int) -> None:
        super().__init__(inner.height, inner.width, inner.batch * views, inner.channels)
        self.inner, self.views = inner, views
        self.default_lr = inner.default_lr

    def forward(self) -> torch.Tensor:
        return self.inner().repeat(self.views, 1, 1, 1)


RECIPES = {
    "fourier + lucid (default)": dict(param="fourier", transforms="standard", views=1, tv=0.0, lr=None),
    "pixel + lucid": dict(param="pixel", transforms="standard", views=1, tv=0.0, lr=None),
    "pixel + ghiasi (x8, TV)": dict(param="pixel", transforms="ghiasi", views=VIEWS, tv=0.05, lr=0.1),
    "fourier + ghiasi (x8)": dict(param="fourier", transforms="ghiasi", views=VIEWS, tv=0.0, lr=None),
    "fourier + lucid (x8)": dict(param="fourier", transforms="standard", views=VIEWS, tv=0.0, lr=None),
}


def units(model) -> list[tuple[str, int]]:
    """Two MLP hidden units and two residual-stream channels, a third and two thirds of the way in."""
    names = [info.name for info in model.layers()]
    hidden = [n for n in names if n.endswith(("mlp.act", "mlp.1"))]
    blocks = sorted({n.rsplit(".mlp", 1)[0] for n in hidden}, key=names.index)
    picked = []
    for at in (len(blocks) // 3, 2 * len(blocks) // 3):
        block = blocks[at]
        act = f"{block}.mlp.act" if f"{block}.mlp.act" in names else f"{block}.mlp.1"
        picked.append((act, 101 % model.channels(act)))
        picked.append((block, 37 % model.channels(block)))
    return picked


def run(model, layer: str, c: int, recipe: dict, steps: int, size: int, device: str, seed: int) -> dict:
    unit = channel(layer, c)
    param = make_param(recipe["param"], size, generator=torch.Generator().manual_seed(seed))
    if recipe["views"] > 1:
        param = Views(param, recipe["views"])
    objective = unit - recipe["tv"] * total_variation() if recipe["tv"] else unit
    transforms = recipe["transforms"]
    t0 = time.perf_counter()
    result = render(model, objective, param=param, transforms=transforms, steps=steps, lr=recipe["lr"],
                    seed=seed, device=device, progress=False)
    seconds = time.perf_counter() - t0
    image = result.images[:1]
    value = float(values_at_input_size(model, unit, image)[0])
    saturated = float(((image <= 1 / 255) | (image >= 254 / 255)).float().mean())
    return {"value": value, "saturated": saturated, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--out", type=Path, default=Path("vit_recipes.json"))
    args = parser.parse_args()
    rows = []
    for name in args.models:
        model = load_model(name, weights=RANDOM).to(args.device)
        size = model.native_size[0]
        for layer, c in units(model):
            best = float(photo_pool(model).values(model, channel(layer, c)).max())
            for label, recipe in RECIPES.items():
                for seed in range(args.seeds):
                    row = {"model": name, "unit": f"{layer}:{c}", "recipe": label, "seed": seed,
                           "best_photo": best,
                           **run(model, layer, c, recipe, args.steps, size, args.device, seed)}
                    row["vs_photos"] = row["value"] / best if best > 0 else None
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    args.out.write_text(json.dumps({"steps": args.steps, "rows": rows}, indent=1))
    print("\n| model | " + " | ".join(RECIPES) + " |")
    print("| --- |" + " --- |" * len(RECIPES))
    for name in args.models:
        cells = []
        for label in RECIPES:
            mine = [r for r in rows if r["model"] == name and r["recipe"] == label
                    and r["vs_photos"] is not None]
            ratio = statistics.median(r["vs_photos"] for r in mine) if mine else float("nan")
            sat = statistics.median(r["saturated"] for r in mine) if mine else float("nan")
            cells.append(f"{ratio:.2f} ({100 * sat:.0f}% sat.)")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
