"""README figure for radiance fields: held-out views of a scene (top), the fitted field's renderings
of them (middle) and its depth (bottom), over white.

python bench/nerf_figure.py SCENE_DIR RUN_DIR --out docs/images/nerf_knot.png
"""

from __future__ import annotations

import argparse

import torch

from diffparam.io import make_grid, save_image
from diffparam.recipes.nerf import depth_image, flatten, load_nerf
from diffparam.three_d.posed import load_posed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scene")
    ap.add_argument("run")
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--out", default="docs/images/nerf_knot.png")
    args = ap.parse_args()
    test = load_posed(args.scene, "test")
    test = test.part(0, min(args.views, len(test)))
    field, _ = load_nerf(args.run, "cpu")
    rgba, depth = field.render(test)
    shade = depth_image(depth, rgba[:, 3:]).expand(-1, 3, -1, -1)
    rows = [flatten(test.images, 1.0), flatten(rgba, 1.0), shade]
    save_image(make_grid(torch.cat(rows), ncol=len(test)), args.out)
    print(args.out)


if __name__ == "__main__":
    main()
