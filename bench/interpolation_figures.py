"""Aligned interpolation figures (the article's section 1), as JSON plus a markdown summary.

Sections (both on by default, pick with --only):
  toy     two variables each minimising (x² − 1)² from many random starts: the share that end with
          the same sign, independently vs with a shared term, for several start spreads
  frames  interpolations on the embedded model: adjacent-frame correlation of pixels and of
          --measure-layer maps, and the end frames' objective values, for each variant
          (independent, shared, align, shared+align)

Example (GPU): python bench/interpolation_figures.py --device cuda --out interpolation.json
Quick CPU run:  python bench/interpolation_figures.py --device cpu --size 48 --frames 4 --steps 32
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from diffparam.io import make_grid, save_image
from diffparam.models.registry import efficientnet_lite0
from diffparam.recipes.interpolate import (
    ALIGN_WEIGHT,
    VARIANTS,
    alignment_figure,
    save_interpolation,
    toy_alignment,
)

PAIRS = ("blocks.6:21>blocks.6:56", "blocks.10:27>blocks.10:60", "logit:flamingo>logit:goldfinch")


def toy_section(args) -> list[dict]:
    rows = []
    for sd in (0.01, 0.1, 0.5, 1.0):
        fig = toy_alignment(starts=args.starts, steps=1000, init_sd=sd, seed=args.seed)
        rows.append(dict(init_sd=sd, **fig))
        print(f"toy init_sd={sd}: same sign {fig['independent']:.3f} independent, "
              f"{fig['shared']:.3f} shared (converged {fig['independent_converged']:.3f}, "
              f"{fig['shared_converged']:.3f})", flush=True)
    return rows


def frames_section(args) -> list[dict]:
    model = efficientnet_lite0()
    rows = []
    for pair in args.pairs.split(","):
        a, b = pair.split(">")
        start = time.perf_counter()
        fig = alignment_figure(model, a, b, frames=args.frames, size=args.size, steps=args.steps,
                               seed=args.seed, device=args.device, align_weight=args.align_weight,
                               measure_layer=args.measure_layer, progress=not args.quiet,
                               variants=tuple(args.variants.split(",")))
        seconds = time.perf_counter() - start
        for variant, f in fig.items():
            rows.append(dict(a=a, b=b, variant=variant, pixel_alignment=f.alignment,
                             feature_alignment=f.feature_alignment, first_a=f.first_a,
                             last_b=f.last_b))
            print(f"{a} -> {b} {variant:>13}: pixel corr {f.alignment:.3f}, {args.measure_layer} "
                  f"corr {f.feature_alignment:.3f}, first frame {f.first_a:.2f} on A, last frame "
                  f"{f.last_b:.2f} on B", flush=True)
            if args.images:
                name = f"{a}_{b}_{variant}".replace(":", "_").replace("+", "_").replace(".", "")
                folder = Path(args.images)
                save_image(make_grid(f.frames, ncol=len(f.frames)), folder / f"{name}.png")
                if variant == "shared+align":
                    save_interpolation(f.frames, folder / f"{name}.gif", folder / f"{name}_strip.png")
        print(f"  ({seconds:.0f} s for {len(fig)} variants)", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="toy,frames")
    p.add_argument("--device", default="auto")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--steps", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--starts", type=int, default=1000, help="toy problem: random starts")
    p.add_argument("--pairs", default=",".join(PAIRS), help="A>B pairs, comma-separated")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--align-weight", type=float, default=ALIGN_WEIGHT)
    p.add_argument("--measure-layer", default="blocks.4")
    p.add_argument("--images", default=None, help="folder for each variant's strip (and a GIF)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", default="interpolation_figures.json")
    args = p.parse_args()
    sections = set(args.only.split(","))
    out = dict(settings=vars(args))
    if "toy" in sections:
        out["toy"] = toy_section(args)
    if "frames" in sections:
        out["frames"] = frames_section(args)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
