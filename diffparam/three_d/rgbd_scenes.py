"""Synthetic RGB-D scenes with known novel views: textured objects in front of a textured wall,
drawn by the project's rasteriser, for measuring 3D photos (`bench/photo3d.py`) and testing them.

A scene's photo and z-depth are its view from the input camera (pose = identity); any other
pinhole view of it is the truth a 3D photo made from that photo should reproduce.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from diffparam.checks import choice
from diffparam.three_d.mesh import Mesh
from diffparam.three_d.pinhole import PinholeViews, focal_pixels
from diffparam.three_d.raster import rasterize
from diffparam.three_d.shapes import sphere

SCENES = ("spheres", "cards", "stack")
"""The synthetic scenes: two spheres; two fronto-parallel cards; a sphere before a card before the wall."""
WALL_DEPTH = 6.0
TEXTURE = 256


def _noise(generator: torch.Generator, size: int, decay: float) -> Tensor:
    """Colour noise (3,size,size) in [0,1] with a 1/f^decay spectrum."""
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    scale = 1.0 / (fy ** 2 + fx ** 2).sqrt().clamp_min(1.0 / size) ** decay
    spectrum = torch.randn(3, size, size // 2 + 1, 2, generator=generator)
    x = torch.fft.irfft2(torch.view_as_complex(spectrum) * scale, s=(size, size))
    x = (x - x.mean()) / x.std().clamp_min(1e-8)
    return torch.sigmoid(1.5 * x)


def texture(generator: torch.Generator, size: int = TEXTURE) -> Tensor:
    """A random texture (3,size,size): stripes of a random angle, period and pair of colours, mixed
    with 1/f colour noise, so fills are judged on structure as well as colour."""
    angle, period, mix = torch.rand(3, generator=generator).tolist()
    angle, period = math.pi * angle, 6 + 20 * period
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    phase = (xs * math.cos(angle) + ys * math.sin(angle)) * (2 * math.pi / period)
    stripes = 0.5 + 0.5 * torch.sin(phase)
    a, b = torch.rand(2, 3, 1, 1, generator=generator)
    striped = a * stripes + b * (1 - stripes)
    return (0.35 + 0.4 * mix) * striped + (0.65 - 0.4 * mix) * _noise(generator, size, 1.5)


def _quad(x0: float, x1: float, y0: float, y1: float, z: float) -> tuple[Tensor, Tensor, Tensor]:
    vertices = torch.tensor([[x0, y0, z], [x1, y0, z], [x0, y1, z], [x1, y1, z]])
    uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    return vertices, torch.tensor([[0, 1, 2], [2, 1, 3]]), uv


def _ball(cx: float, cy: float, z: float, radius: float) -> tuple[Tensor, Tensor, Tensor]:
    ball = sphere(24)
    return ball.vertices * radius + torch.tensor([cx, cy, z]), ball.faces, ball.uv.clamp(0, 0.999)


def _parts(name: str, generator: torch.Generator) -> list[tuple[Tensor, Tensor, Tensor]]:
    jitter = (torch.rand(4, generator=generator) - 0.5).tolist()
    wall = _quad(-8, 8, -6, 6, -WALL_DEPTH)
    if name == "spheres":
        return [wall, _ball(-0.7 + 0.3 * jitter[0], 0.2 * jitter[1], -3.2, 0.65),
                _ball(0.9 + 0.3 * jitter[2], -0.3 + 0.2 * jitter[3], -4.2, 0.7)]
    if name == "cards":
        return [wall, _quad(-1.6, -0.1 + 0.3 * jitter[0], -1.0, 0.8 + 0.3 * jitter[1], -3.0),
                _quad(0.4 + 0.3 * jitter[2], 2.0, -0.6 + 0.3 * jitter[3], 1.2, -4.0)]
    return [wall, _quad(-1.3 + 0.3 * jitter[0], 1.6, -1.2, 0.9 + 0.3 * jitter[1], -4.2),
            _ball(0.2 * jitter[2], -0.2 + 0.2 * jitter[3], -2.8, 0.6)]


def scene(name: str, seed: int = 0) -> Mesh:
    """Scene `name` (one of `SCENES`) as one mesh in the input camera's frame, its parts' random
    textures side by side in one atlas; `seed` draws the textures and moves the objects a little."""
    name = choice("scene", name, SCENES)
    generator = torch.Generator().manual_seed(seed)
    parts = _parts(name, generator)
    n = len(parts)
    vertices, faces, uvs, textures, offset = [], [], [], [], 0
    for i, (v, f, uv) in enumerate(parts):
        vertices.append(v)
        faces.append(f + offset)
        margin = 1.0 / TEXTURE  # keep bilinear lookups inside each part's own texture
        uvs.append(torch.stack([(i + margin + uv[:, 0] * (1 - 2 * margin)) / n, uv[:, 1]], 1))
        textures.append(texture(generator))
        offset += len(v)
    return Mesh(torch.cat(vertices).float(), torch.cat(faces), torch.cat(uvs).float(),
                torch.cat(textures, 2), name=name)


@dataclass(frozen=True)
class Truth:
    """What a scene looks like from pinhole views: RGB (B,3,H,W) and z-depth (B,H,W) (inf: nothing)."""

    images: Tensor
    depth: Tensor


def observe(mesh: Mesh, views: PinholeViews, height: int, width: int) -> Truth:
    """The scene's images and z-depths seen through `views` (2x supersampled colour)."""
    from diffparam.three_d.ldi import render_views

    images = torch.stack(list(render_views(mesh, views, 2 * height, 2 * width)))
    images = torch.nn.functional.avg_pool2d(images, 2)
    frags = rasterize(views.project(mesh.vertices, height, width), mesh.faces, (height, width))
    return Truth(images, frags.depth)


def disoccluded(depth: Tensor, photo_depth: Tensor, view: PinholeViews, fov: float) -> Tensor:
    """Pixels (H,W) of one view (z-depth `depth`) whose surface the photo (z-depth `photo_depth`, horizontal
    field of view `fov`) does not see: hidden behind something nearer. Points outside the photo's frame
    are not counted (they are off-frame, not disoccluded)."""
    h, w = depth.shape
    f = focal_pixels(w, fov)
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    z = depth.cpu().clamp_max(1e6)
    cam = torch.stack([(xs - w / 2) / f * z, -(ys - h / 2) / f * z, -z, torch.ones_like(z)], -1)
    world = cam @ view.pose[0].T.to(cam)
    far = -world[..., 2]
    u, v = world[..., 0] / far * f + w / 2, -world[..., 1] / far * f + h / 2
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h) & torch.isfinite(depth.cpu())
    seen = photo_depth.cpu()[v.long().clamp(0, h - 1), u.long().clamp(0, w - 1)]
    return inside & (seen < far * 0.97)
