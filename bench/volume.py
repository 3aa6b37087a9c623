"""3D art with free geometry (`diffparam volume`) against the texture on a sphere: for each objective,
a radiance field made from a blob and, for unit objectives, a sphere's texture made for the same unit
at the same view size; each judged on 8 held-out views (never used in optimisation, over grey) by the
objective's value against its best natural photo (and, for the field, its mean opacity); wall time.

Writes under --out: one run folder per objective (checkpoint.pt, mesh.glb, turntable.gif,
preview.png, metrics.json) and results.json; with --figure, a turntable GIF of the first objective's
field (docs/images/volume_turntable.gif for the README).

    # GPU (H200), 224 px views:
    PYTHONPATH=. python bench/volume.py --device cuda --out volume_bench --figure docs/images
    # 2-core CPU, small:
    PYTHONPATH=. python bench/volume.py --device cpu --size 48 --steps 100 --samples 64 \\
        --objectives blocks.10:27 --no-texture --out volume_cpu
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from diffparam.evaluate import photo_reference
from diffparam.evaluate.photos import values_at_input_size
from diffparam.models.registry import load_model
from diffparam.objectives import resolve
from diffparam.recipes.nerf import film
from diffparam.recipes.texture import held_out_views, texture_feature
from diffparam.recipes.volume import RESOLUTIONS, SAMPLES, volume_art

OBJECTIVES = "blocks.10:27,blocks.6:17,blocks.13:50,logit:1"
"""The texture figures' unit, a mid and a late unit, and a class (1: goldfish)."""
FIGURE_FRAMES, FIGURE_SIZE = 36, 192


def texture_row(model, objective: str, size: int, steps: int, device: str) -> dict:
    """The sphere's texture made for `objective` with the texture recipe's defaults at `size` px views,
    judged as the field is: 8 held-out views over grey, seen at the model's input size, against the
    best natural photo."""
    start = time.perf_counter()
    sphere = texture_feature("shape:sphere", objective, model, view_size=size, steps=steps, device=device,
                             progress=False)
    obj = resolve(objective, model)
    views = held_out_views(sphere.mesh, n=8, size=size, device=device)
    value = float(values_at_input_size(model, obj, views).mean())
    return {"sphere_texture_vs_photo": round(value / photo_reference(model, obj), 3),
            "sphere_texture_seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    """Run every objective and print and write the numbers."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True)
    p.add_argument("--objectives", default=OBJECTIVES, help="comma-separated objectives")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--views", type=int, default=2)
    p.add_argument("--samples", type=int, default=SAMPLES)
    p.add_argument("--resolutions", default=",".join(map(str, RESOLUTIONS)))
    p.add_argument("--no-texture", action="store_true", help="skip the sphere-texture comparison")
    p.add_argument("--figure", default=None, metavar="DIR", help="write DIR/volume_turntable.gif")
    p.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    model = load_model("efficientnet_lite0")
    record: dict = {"args": vars(args), "torch": torch.__version__,
                    "device": torch.cuda.get_device_name() if torch.cuda.is_available()
                    and args.device != "cpu" else "cpu", "runs": {}}
    resolutions = [int(r) for r in args.resolutions.split(",")]
    for i, objective in enumerate(args.objectives.split(",")):
        start = time.perf_counter()
        result = volume_art(objective, model, steps=args.steps, size=args.size, views=args.views,
                            samples=args.samples, resolutions=resolutions, device=args.device)
        run = out / objective.replace(":", "_")
        result.save(run, frames=24, resolution=128)
        row = {**result.metrics, "wall_seconds": round(time.perf_counter() - start, 1)}
        if i == 0 and args.figure:
            film(result.param, result.extras["camera"], Path(args.figure) / "volume_turntable.gif", "orbit",
                 FIGURE_FRAMES, FIGURE_SIZE)
        if not args.no_texture and not objective.startswith("logit:"):
            row.update(texture_row(model, objective, args.size, args.steps, args.device))
        record["runs"][objective] = row
        print(json.dumps({objective: row}), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
