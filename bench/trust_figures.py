"""The pictures of docs/trust.md and the README (issue 13), each with its trust numbers in a JSON.

  params.png      rows: units; columns: Fourier, pixel, MACO (224 px, 512 steps, seed 0)
  accentuate.png  a photo, then its accentuation of one unit at strengths 0, 32 and 128
  diverse.png     4 images of one unit with the diversity term
  figures.json    per picture: the report rows (activation against photos, plausibility, sanity)

GPU:  python3 bench/trust_figures.py --device cuda --out docs/images/trust
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from diffparam.evaluate import batch_diversity
from diffparam.io import make_grid, sample_photos, save_image
from diffparam.models.registry import efficientnet_lite0
from diffparam.objectives import channel, diversity
from diffparam.recipes.accentuate import accentuate
from diffparam.render import render

UNITS = (("blocks.6", 17), ("blocks.10", 5), ("blocks.14", 60))
PARAMS = ("fourier", "pixel", "maco")
STRENGTHS = (0, 32, 128)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=512)
    p.add_argument("--out", default="docs/images/trust")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = efficientnet_lite0()
    figures: dict = {"params": {}, "accentuate": {}, "diverse": {}}
    grid = []
    for layer, c in UNITS:
        obj = channel(layer, c)
        for param in PARAMS:
            made = render(model, obj, param=param, size=args.size, steps=args.steps, device=args.device,
                          progress=False, report=True)
            grid.append(made.images)
            figures["params"][f"{layer}:{c} {param}"] = made.metrics["report"][0]
    save_image(make_grid(torch.cat(grid), len(PARAMS)), out / "params.png")
    photo = sample_photos(args.size, ("chelsea",))
    obj = channel(*UNITS[1])
    row = [photo]
    for strength in STRENGTHS:
        made = accentuate(model, obj, photo, strength=strength, size=args.size, device=args.device,
                          progress=False)
        row.append(made.images)
        figures["accentuate"][f"strength {strength}"] = {**made.metrics["report"][0],
                                                         "feature_distance": made.feature_distance,
                                                         "pixel_rmse": made.pixel_rmse,
                                                         "seed_value": made.seed_value}
    save_image(make_grid(torch.cat(row), len(row)), out / "accentuate.png")
    layer, c = UNITS[0]
    for weight in (0, 100):
        objective = channel(layer, c) + weight * diversity(layer) if weight else channel(layer, c)
        made = render(model, objective, size=args.size, batch=4, steps=args.steps, device=args.device,
                      progress=False)
        figures["diverse"][f"weight {weight}"] = batch_diversity(model, made.images)
        if weight:
            save_image(make_grid(made.images, 4), out / "diverse.png")
    (out / "figures.json").write_text(json.dumps(figures, indent=1) + "\n")
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
