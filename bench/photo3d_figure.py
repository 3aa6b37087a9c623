"""The README's 3D-photo pictures: a swing GIF of a synthetic RGB-D scene made into a 3D photo (the
default fill), and one novel view by each fill beside the photo and the truth.

    PYTHONPATH=. python bench/photo3d_figure.py        # docs/images/photo3d_swing.gif, photo3d_views.jpg
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
GIF_FRAMES, GIF_H, GIF_W = 16, 120, 160
"""The GIF is smaller than the views (the README's pictures stay small)."""
CROP = (slice(70, 160), slice(60, 160))
"""Rows and columns of the views shown: the sphere and the card behind it."""
IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


def main() -> None:
    mesh = rgbd_scenes.scene("stack", 0)
    photo = rgbd_scenes.observe(mesh, PinholeViews(torch.eye(4)[None], torch.tensor([FOV])), H, W)
    made = {fill: photo3d(photo.images[0], photo.depth[0], fill=fill, progress=False, device="cpu")
            for fill in ("none", "telea", "exemplar", "context")}
    default = made["exemplar"]
    swing = camera_path("swing", GIF_FRAMES, default.reference_depth, FOV)
    save_animation(render_views(default.mesh, swing, GIF_H, GIF_W), IMAGES / "photo3d_swing.gif", fps=8)
    view = camera_path("swing", 240, default.reference_depth, FOV)[60:61]
    truth = rgbd_scenes.observe(mesh, view, H, W).images[0]
    row = [photo.images[0], *(next(render_views(r.mesh, view, H, W)) for r in made.values()), truth]
    crops = torch.stack(row)[:, :, CROP[0], CROP[1]]  # around the sphere's edge, where views differ
    crops = torch.nn.functional.interpolate(crops, scale_factor=2, mode="nearest")
    save_image(make_grid(crops, ncol=6), IMAGES / "photo3d_views.jpg")


if __name__ == "__main__":
    main()
