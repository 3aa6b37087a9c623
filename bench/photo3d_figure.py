"""The README's 3D-photo pictures: a swing GIF of a synthetic RGB-D scene made into a 3D photo, and
one novel view by each method beside the truth.

    PYTHONPATH=. python bench/photo3d_figure.py        # docs/images/photo3d_swing.gif, photo3d_views.png
"""

from __future__ import annotations

from pathlib import Path

import torch

from diffparam.io import make_grid, save_animation, save_image
from diffparam.recipes.photo3d import photo3d
from diffparam.three_d import rgbd_scenes
from diffparam.three_d.ldi import render_views
from diffparam.three_d.pinhole import PinholeViews, camera_path

FOV, H, W = 60.0, 192, 256
IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


def main() -> None:
    mesh = rgbd_scenes.scene("stack", 0)
    photo = rgbd_scenes.observe(mesh, PinholeViews(torch.eye(4)[None], torch.tensor([FOV])), H, W)
    made = {fill: photo3d(photo.images[0], photo.depth[0], fill=fill, progress=False, device="cpu")
            for fill in ("none", "telea", "context")}
    context = made["context"]
    swing = camera_path("swing", 24, context.reference_depth, FOV)
    save_animation(render_views(context.mesh, swing, H, W), IMAGES / "photo3d_swing.gif", fps=12)
    view = camera_path("swing", 240, context.reference_depth, FOV)[60:61]
    truth = rgbd_scenes.observe(mesh, view, H, W).images[0]
    row = [photo.images[0], *(next(render_views(r.mesh, view, H, W)) for r in made.values()), truth]
    save_image(make_grid(torch.stack(row), ncol=5), IMAGES / "photo3d_views.png")


if __name__ == "__main__":
    main()
