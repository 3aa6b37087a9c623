"""Lambertian shading for the rasteriser: smooth per-vertex normals, and textured views lit by one
directional light given in camera space (so that the light stays where it is while the view turns).

Shared by every renderer that needs light as well as texture (the DC-IGN's training renders).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from diffparam.checks import positive_int, real, shape
from diffparam.three_d.cameras import Cameras
from diffparam.three_d.mesh import Mesh
from diffparam.three_d.raster import (
    interpolate,
    opposite_faces,
    rasterize,
    refine,
    sample,
    silhouette_gradient,
    uv_grid,
)


def vertex_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """Unit normals (V,3): the area-weighted mean of the faces around each position (to 1e-5), so that
    vertices split at a UV seam (same position, other UV) get one normal and the seam does not show."""
    grid = torch.round(vertices.detach() * 1e5).long()
    grid = grid - grid.min(0).values
    span = int(grid.max()) + 1
    if span < 1 << 20:  # one int64 key per position: a 1-D unique is ~10x faster than unique(dim=0)
        _, position = torch.unique((grid[:, 0] * span + grid[:, 1]) * span + grid[:, 2], return_inverse=True)
    else:
        _, position = torch.unique(grid, dim=0, return_inverse=True)
    p = vertices[faces]
    face_normal = torch.linalg.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])  # length: twice the area
    summed = torch.zeros(int(position.max()) + 1, 3, dtype=vertices.dtype, device=vertices.device)
    summed.index_add_(0, position[faces].reshape(-1), face_normal.repeat_interleave(3, 0))
    return F.normalize(summed[position], dim=-1)


def lambert(normals: Tensor, light: Tensor, ambient: float = 0.25) -> Tensor:
    """Brightness (B,H,W) of surfaces with unit `normals` (B,H,W,3) under unit light directions (B,3)
    (towards the light): `ambient` + (1 − `ambient`) · max(0, n·l), both in the same space."""
    ambient = real("ambient", ambient, 0.0, 1.0)
    cosine = (normals * light[:, None, None, :]).sum(-1).clamp_min(0)
    return ambient + (1 - ambient) * cosine


def light_direction(angle: Tensor, height: float = 0.35) -> Tensor:
    """Unit directions (B,3) in camera space towards a light at `angle` degrees (B,) round the viewer:
    0 is behind the camera, positive to its right; `height` lifts it above the view axis."""
    a = torch.deg2rad(angle.float())
    return F.normalize(torch.stack([torch.sin(a), torch.full_like(a, height), torch.cos(a)], -1), dim=-1)


def render_lit(mesh: Mesh, cameras: Cameras, size: int, texture: Tensor, light: Tensor,
               ambient: float = 0.25, supersample: int = 1, differentiable: bool = False) -> Tensor:
    """RGBA views (B,4,size,size) of `mesh` textured with `texture` (1,3,T,T') and lit by the camera-space
    light directions `light` (B,3); colour straight, alpha the coverage, as `raster.shade` returns.

    `differentiable`: gradients reach the cameras' view matrices and `light` (`raster.refine`: texture and
    shading move inside the silhouette; `raster.silhouette_gradient`: the outer silhouette moves; the
    values are the same)."""
    supersample = positive_int("supersample", supersample)
    shape("light directions", light, "B,3", B=len(cameras))
    dev = texture.device
    m, cams = mesh.to(dev), cameras.to(dev)
    clip = cams.project(m.vertices)
    frags = rasterize(clip, m.faces, size * supersample)
    if differentiable:
        frags = refine(clip, m.faces, frags)
    views = sample(texture, uv_grid(m.uv, m.faces, frags), frags.mask)
    world = interpolate(vertex_normals(m.vertices, m.faces), m.faces, frags)
    seen = F.normalize(torch.einsum("bij,bhwj->bhwi", cams.view[:, :3, :3].to(world.dtype), world), dim=-1)
    facing = torch.where((seen[..., 2:] < 0), -seen, seen)  # an open mesh's inside is lit like its outside
    lit = lambert(facing, light.to(dev, world.dtype), ambient).unsqueeze(1)
    views = torch.cat([views[:, :-1] * lit, views[:, -1:]], 1)
    if differentiable:
        views = silhouette_gradient(views, clip, m.faces, frags, opposite_faces(m.faces, m.welded()))
    if supersample > 1:
        views = F.avg_pool2d(views, supersample)
    alpha = views[:, -1:]
    return torch.cat([views[:, :-1] / alpha.clamp_min(1e-6), alpha], 1)
