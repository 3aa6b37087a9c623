"""The README's fast-style-transfer figure: a `StyleNet` trained on the CPU for the swirl painting
(200 steps at 128 px, scikit-image's photos but chelsea, coffee, astronaut and rocket), then applied
to the held-out chelsea and coffee at 192 px. About 6 minutes on 2 CPU cores.

python bench/style_net_figure.py --out docs/images/style_net.jpg
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from diffparam.io import REFERENCE_PHOTOS, make_grid, sample_photos, save_image
from diffparam.recipes.style import swirl_pattern
from diffparam.recipes.style_net import apply_style_net, train_style_net

HELD_OUT = ("chelsea", "coffee", "astronaut", "rocket")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("docs/images/style_net.jpg"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        names = [n for n in REFERENCE_PHOTOS if n not in HELD_OUT]
        for name, photo in zip(names, sample_photos(256, tuple(names)), strict=True):
            save_image(photo, Path(folder) / f"{name}.png")
        save_image(swirl_pattern(128)[0], Path(folder) / "style.png")
        train_style_net(Path(folder) / "style.png", Path(folder) / "net.pt", images=Path(folder),
                        steps=args.steps, size=128, batch=4, device="cpu")
        photos = sample_photos(192, HELD_OUT[:2])
        made = apply_style_net(Path(folder) / "net.pt", photos, device="cpu").images
    grid = make_grid(torch.cat([photos[:1], made[:1], photos[1:], made[1:], swirl_pattern(192)]), ncol=5)
    print(save_image(grid, args.out))


if __name__ == "__main__":
    main()
