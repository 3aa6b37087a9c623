"""The 3D photo's web page: `index.html`, one self-contained file (no server, no network) where the
picture moves with the mouse.

Both layers travel inside the page as PNG data URIs: the photo and the hidden colour (alpha: where
the hidden layer is), and each one's disparity quantised to 8 bits. The page's script splats the
layers' pixels far to near, shifted in proportion to their disparity and the pointer's offset from
the centre, so near things move more and the hidden layer shows where they uncover it.
"""

from __future__ import annotations

import base64
import io
import json
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from diffparam.io import atomic_path
from diffparam.three_d.ldi import Layers

PAGE = "index.html"
SHIFT = 0.04
"""How far the nearest pixels move at the page's edge, as a share of the picture's width."""


def _png(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _rgb(image: Tensor, alpha: Tensor | None = None) -> np.ndarray:
    channels = [image] if alpha is None else [image, alpha[None].to(image)]
    return (torch.cat(channels).clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


def page_data(layers: Layers) -> dict[str, object]:
    """What the page's script reads: the layers as PNG data URIs, their size and the parallax strength."""
    near = 1.0 / layers.depth
    far = 1.0 / torch.where(layers.band, layers.hidden_depth, layers.depth)
    low, high = float(torch.minimum(near, far).min()), float(torch.maximum(near, far).max())

    def levels(disparity: Tensor) -> np.ndarray:
        scaled = (disparity - low) / max(high - low, 1e-12)
        return (scaled.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()

    h, w = layers.depth.shape
    return {"width": w, "height": h, "shift": SHIFT,
            "front": _png(_rgb(layers.image)), "frontDisparity": _png(levels(near)),
            "back": _png(_rgb(layers.hidden_color, layers.band.float())), "backDisparity": _png(levels(far))}


def write_page(layers: Layers, path: Path) -> Path:
    """Write the self-contained parallax page for `layers` at `path`, atomically."""
    template = resources.files("diffparam.recipes").joinpath("photo3d_page.html").read_text(encoding="utf-8")
    data = json.dumps(page_data(layers)).replace("</", "<\\/")
    with atomic_path(path) as tmp:
        tmp.write_text(template.replace("/*DATA*/null", data), encoding="utf-8")
    return path
