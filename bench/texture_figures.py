"""The README's 3D pictures, made with the recipes' defaults (texture read from a surface field).

Writes under --out: texture_knot_turntable.png (six turntable frames of the knot optimised for
--unit), texture_knot_texture.png (its texture atlas), texture_torus_turntable.png and
texture_torus_texture.png (the torus restyled after scikit-image's coffee photo), and
figures.json with each run's held-out activation (knot) or settings and wall time.

    PYTHONPATH=. python bench/texture_figures.py --device cpu --out docs/images   # about 2 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from skimage import data

from diffparam.backgrounds import composite
from diffparam.evaluate import unit_ratio
from diffparam.io import make_grid, resize, save_image
from diffparam.models.registry import load_model
from diffparam.recipes.texture import held_out_views, texture_feature, texture_style, turntable_views
from diffparam.three_d import shapes

FRAMES, SHOWN, THUMB, TEXTURE_THUMB = 24, 6, 128, 256


def turntable_strip(mesh, size: int) -> torch.Tensor:
    """Every fourth of FRAMES turntable frames over white, side by side (3, THUMB, SHOWN·THUMB)."""
    frames = torch.stack(list(turntable_views(mesh, FRAMES, size)))[:: FRAMES // SHOWN][:SHOWN]
    rgb = composite(frames, torch.ones_like(frames[:, :3]))
    return make_grid(resize(rgb, THUMB), ncol=SHOWN, pad=0)


def main() -> None:
    """Run both recipes and write the pictures."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True)
    p.add_argument("--unit", default="blocks.10:27")
    p.add_argument("--texture-size", type=int, default=512)
    p.add_argument("--view-size", type=int, default=160)
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args()
    out = Path(args.out)
    model = load_model("efficientnet_lite0")
    common = dict(texture_size=args.texture_size, view_size=args.view_size, steps=args.steps,
                  device=args.device)
    record: dict = {"args": vars(args), "torch": torch.__version__}

    start = time.perf_counter()
    knot = texture_feature(shapes.knot(), args.unit, model, **common)
    record["knot"] = {"seconds": time.perf_counter() - start}
    views = held_out_views(knot.mesh, n=8, size=224)
    layer, channel = args.unit.split(":")
    ratio = unit_ratio(model.to("cpu"), layer, int(channel), views)
    record["knot"]["held_out_activation"] = float(ratio.mean())
    save_image(turntable_strip(knot.mesh, args.view_size), out / "texture_knot_turntable.png")
    save_image(resize(knot.texture[None], TEXTURE_THUMB)[0], out / "texture_knot_texture.png")

    start = time.perf_counter()
    coffee = torch.from_numpy(data.coffee()).permute(2, 0, 1).float() / 255
    torus = texture_style(shapes.torus(), coffee, model, **{**common, "texture_size": args.texture_size // 2})
    record["torus"] = {"seconds": time.perf_counter() - start, "texture_size": args.texture_size // 2}
    save_image(turntable_strip(torus.mesh, args.view_size), out / "texture_torus_turntable.png")
    save_image(resize(torus.texture[None], TEXTURE_THUMB)[0], out / "texture_torus_texture.png")
    (out / "figures.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
