"""Sample inputs made on this machine, so that every example in the README runs as written: a
photo, a painting-like style image and a textured mesh (nothing is downloaded)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from diffparam.io import resize, sample_photos, save_image
from diffparam.recipes.style import swirl_pattern
from diffparam.result import Result
from diffparam.three_d import shapes
from diffparam.three_d.export import export_glb

SIZE = 512
"""Side of the sample photo and painting, in pixels."""


def samples(size: int = SIZE) -> Result:
    """The samples: `images` are the photo (scikit-image's chelsea, the cat) and the painting
    (`swirl_pattern`), `extras["mesh"]` a torus wearing the photo as its texture. `save(folder)`
    writes photo.jpg, painting.png and model.glb."""
    photo = sample_photos(size, ("chelsea",))
    painting = swirl_pattern(size)
    mesh = replace(shapes.torus(), texture=resize(photo, 256)[0])
    return Result(torch.cat([photo, painting]), objective="samples", extras={"mesh": mesh},
                  writer=write_samples)


def write_samples(result: Result, out: Path) -> dict[str, Path]:
    """photo.jpg, painting.png and model.glb in folder `out`."""
    return {"photo": save_image(result.images[0], out / "photo.jpg"),
            "painting": save_image(result.images[1], out / "painting.png"),
            "mesh": export_glb(result.mesh, out / "model.glb")}

