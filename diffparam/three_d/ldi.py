"""A two-layer layered depth image (LDI) from one RGB-D photo, after Shih et al. 2020, and its mesh.

Neighbouring pixels whose depths differ by more than the ratio `EDGE_RATIO` are a depth edge: the
photo's mesh is cut there instead of stretching "rubber sheet" triangles across it. Behind the
near side of every edge a *band* of pixels (`band` px wide) gets a second, hidden layer: its depth
is the far side's, extended smoothly under the near side (a membrane: each band pixel the mean of
its band and far-side neighbours, the far side fixed), and its colour is filled by a caller's
method (`recipes/photo3d.py`). Moving the camera then reveals that layer instead of a tear or a
smear. One pass: a band is extended from the far side of its own edge only (nested occlusions
get one hidden layer, not several).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from diffparam.checks import real, shape
from diffparam.three_d.mesh import Mesh
from diffparam.three_d.pinhole import PinholeViews, focal_pixels
from diffparam.three_d.raster import rasterize, sample, uv_grid

EDGE_RATIO = 1.06
"""Neighbours whose depths differ by more than this factor are on two sides of a depth edge."""


def band_width(width: int) -> int:
    """The default width (px) of the hidden band behind each edge: 6% of the image width, at least 3."""
    return max(3, round(0.06 * width))


@dataclass(frozen=True)
class Layers:
    """An LDI at one resolution: the photo (3,H,W) and its depth (H,W); the hidden layer's depth
    (H,W) and colour (3,H,W), meaningful where `band` (H,W) is True; `far` (H,W) marks the pixels
    the hidden colour may be learnt from (the far side around the band); `width` is the band's (px)."""

    image: Tensor
    depth: Tensor
    band: Tensor
    hidden_depth: Tensor
    hidden_color: Tensor
    far: Tensor
    width: int

    def with_color(self, color: Tensor) -> Layers:
        """The same layers with the hidden colour `color` (3,H,W) (used inside the band only)."""
        shape("hidden colour", color, "3,H,W", H=self.image.shape[1], W=self.image.shape[2])
        keep = self.band.unsqueeze(0)
        return Layers(self.image, self.depth, self.band, self.hidden_depth,
                      torch.where(keep, color.to(self.image), self.image), self.far, self.width)


def _ratio(a: Tensor, b: Tensor) -> Tensor:
    return torch.maximum(a, b) / torch.minimum(a, b)


def edge_sides(depth: Tensor, ratio: float = EDGE_RATIO) -> tuple[Tensor, Tensor]:
    """Masks (H,W) of the near and the far pixels of depth edges between 4-neighbours."""
    near = torch.zeros_like(depth, dtype=torch.bool)
    far = torch.zeros_like(near)
    for dim in (0, 1):
        a, b = depth.narrow(dim, 0, depth.shape[dim] - 1), depth.narrow(dim, 1, depth.shape[dim] - 1)
        cut = _ratio(a, b) > ratio
        a_near = cut & (a < b)
        b_near = cut & (b < a)
        near.narrow(dim, 0, a.shape[dim]).logical_or_(a_near)
        near.narrow(dim, 1, b.shape[dim]).logical_or_(b_near)
        far.narrow(dim, 0, a.shape[dim]).logical_or_(b_near)
        far.narrow(dim, 1, b.shape[dim]).logical_or_(a_near)
    return near, far


def _max_filter(x: Tensor, radius: int) -> Tensor:
    return F.max_pool2d(x[None, None], 2 * radius + 1, stride=1, padding=radius)[0, 0]


def _within(mask: Tensor, radius: float) -> Tensor:
    """Pixels at most `radius` px (Euclidean) from a True pixel of `mask`."""
    if not bool(mask.any()):
        return mask.clone()
    dist = cv2.distanceTransform((~mask).cpu().numpy().astype(np.uint8), cv2.DIST_L2, 3)
    return torch.from_numpy(dist <= radius).to(mask.device)


def _nearest(mask: Tensor, values: Tensor) -> Tensor:
    """At every pixel, `values` (H,W) at the nearest True pixel of `mask` (inf where it has none)."""
    if not bool(mask.any()):
        return torch.full_like(values, float("inf"))
    _, labels = cv2.distanceTransformWithLabels((~mask).cpu().numpy().astype(np.uint8), cv2.DIST_L2, 3,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    # Labels number the mask's pixels 1, 2, … in row-major order, as boolean indexing lists them.
    return values[mask][torch.from_numpy(labels.astype(np.int64) - 1).to(values.device)]


def extend_depth(depth: Tensor, band: Tensor, fixed: Tensor, iterations: int) -> Tensor:
    """Depth (H,W) with the `band` pixels replaced by a membrane over `band` ∪ `fixed` pixels: each band
    pixel the mean of its band and fixed 4-neighbours, the fixed ones held (Jacobi iterations)."""
    allowed = (band | fixed).float()
    out = depth.clone()
    radius = 1
    # Start from the farthest depth nearby: the far side, which the membrane then smooths.
    while True:
        seed = _max_filter(torch.where(fixed, depth, 0.0), radius)
        if bool((seed[band] > 0).all()) or radius > max(depth.shape):
            break
        radius *= 2
    out[band] = seed[band]
    for _ in range(iterations):
        padded = F.pad((out * allowed)[None, None], (1, 1, 1, 1))[0, 0]
        weight = F.pad(allowed[None, None], (1, 1, 1, 1))[0, 0]
        total = padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]
        count = weight[:-2, 1:-1] + weight[2:, 1:-1] + weight[1:-1, :-2] + weight[1:-1, 2:]
        out = torch.where(band & (count > 0), total / count.clamp_min(1), out)
    return out


def build_layers(image: Tensor, depth: Tensor, band: int | None = None, ratio: float = EDGE_RATIO) -> Layers:
    """The LDI of `image` (3,H,W) and its z-depth (H,W) > 0: cuts, the hidden band behind each near
    side and its extended depth; the hidden colour starts as the photo's (fill it with `with_color`)."""
    shape("image", image, "3,H,W")
    shape("depth", depth, "H,W", H=image.shape[1], W=image.shape[2])
    ratio = real("ratio", ratio, 1.0, low_open=True)
    width = band_width(image.shape[2]) if band is None else int(band)
    near_edge, far_edge = edge_sides(depth, ratio)
    # The band: near-side pixels within `width` of a near edge pixel, clearly nearer than the far
    # side of the nearest edge.
    far_around = _nearest(far_edge, depth)
    hidden = _within(near_edge, width) & (depth * ratio < far_around)
    # What the hidden layer continues: far-side pixels around the band (not nearer than the far edge).
    zone = _within(hidden, width)
    far = zone & ~hidden & (depth * ratio >= far_around)
    hidden_depth = extend_depth(depth, hidden, far, 2 * width)
    return Layers(image, depth, hidden, hidden_depth, image.clone(), far, width)


def unproject(depth: Tensor, fov: float, margin: int = 0) -> Tensor:
    """Pixel centres at z-depth `depth` (H,W) → points (H·W,3) in the camera's frame (OpenGL: -z ahead).

    `depth` may be the photo's padded by `margin` px on every side (those pixels lie outside its
    frame). The outermost rows and columns are moved out by half a pixel, to the border, so that the
    mesh covers every pixel centre of the frame.
    """
    h, w = depth.shape

    def centres(n: int) -> Tensor:
        c = torch.arange(n, dtype=depth.dtype, device=depth.device) + 0.5 - margin
        c[0], c[-1] = float(-margin), float(n - margin)
        return c

    width, height = w - 2 * margin, h - 2 * margin
    f = focal_pixels(width, fov)
    ys, xs = torch.meshgrid(centres(h), centres(w), indexing="ij")
    x = (xs - width / 2) / f * depth
    y = -(ys - height / 2) / f * depth
    return torch.stack([x, y, -depth], -1).reshape(-1, 3)


def _grid_triangles(h: int, w: int, device: torch.device) -> Tensor:
    """Two counter-clockwise (seen from the camera) triangles per 2x2 pixel quad, as pixel indices (F,3)."""
    idx = torch.arange(h * w, device=device).reshape(h, w)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    return torch.cat([torch.stack([a, c, b], -1).reshape(-1, 3), torch.stack([b, c, d], -1).reshape(-1, 3)])


def _connected(tris: Tensor, depth: Tensor, ratio: float) -> Tensor:
    """Triangles (F,3) whose corners' depths all lie within `ratio` of each other (no edge inside)."""
    z = depth.reshape(-1)[tris]
    return z.max(1).values / z.min(1).values <= ratio


def _padded(layers: Layers, margin: int) -> Layers:
    """The layers with their outermost pixels repeated `margin` px outward (no band out there)."""

    def pad(x: Tensor, mode: str = "replicate") -> Tensor:
        y = x.float()[None] if x.dim() == 3 else x.float()[None, None]
        y = F.pad(y, (margin,) * 4, mode=mode)
        return y[0] if x.dim() == 3 else y[0, 0].to(x.dtype)

    return Layers(pad(layers.image), pad(layers.depth), pad(layers.band, "constant"),
                  pad(layers.hidden_depth), pad(layers.hidden_color), pad(layers.far, "constant"),
                  layers.width)


def layered_mesh(layers: Layers, fov: float, ratio: float = EDGE_RATIO, cut: bool = True,
                 margin: int | None = None) -> Mesh:
    """The LDI as one textured mesh in the photo camera's frame: the photo cut at its depth edges,
    and behind it the hidden band joined to the far side around it. The texture is the photo above
    the hidden colour. Without `cut`, the photo alone as one stretched sheet (the "rubber sheet"
    baseline). The photo's edge pixels are repeated `margin` px (default: the band's width) beyond
    its frame, so that a moving camera sees them rather than nothing."""
    margin = layers.width if margin is None else margin
    layers = _padded(layers, margin) if margin else layers
    _, h, w = layers.image.shape
    dev = layers.depth.device
    tris = _grid_triangles(h, w, dev)
    front = tris[_connected(tris, layers.depth, ratio)] if cut else tris
    ys, xs = torch.meshgrid(torch.arange(h, device=dev) + 0.5, torch.arange(w, device=dev) + 0.5,
                            indexing="ij")
    uv = torch.stack([xs / w, 1 - ys / (2 * h)], -1).reshape(-1, 2).float()
    vertices, uvs, faces = [unproject(layers.depth, fov, margin)], [uv], [front]
    if cut and bool(layers.band.any()):
        members = layers.band | (_within(layers.band, 1.5) & layers.far)  # diagonals too
        back_depth = torch.where(layers.band, layers.hidden_depth, layers.depth)
        back = tris[members.reshape(-1)[tris].all(1)]
        back = back[_connected(back, back_depth, ratio)]
        used, back = torch.unique(back, return_inverse=True)  # only the band's vertices and their rim
        vertices.append(unproject(back_depth, fov, margin)[used])
        uvs.append((uv - torch.tensor([0.0, 0.5], device=dev))[used])
        faces.append(back + h * w)
    texture = torch.cat([layers.image, layers.hidden_color], 1).float().clamp(0, 1)
    return Mesh(torch.cat(vertices).float(), torch.cat(faces), torch.cat(uvs), texture, name="photo3d")


def render_views(mesh: Mesh, views: PinholeViews, height: int, width: int, batch: int = 8,
                 max_pairs: int | None = None) -> Iterator[Tensor]:
    """RGB views (3,height,width) of a textured mesh through pinhole `views`, one at a time (computed
    `batch` at a time on the mesh's device); pixels nothing covers are black."""
    texture = mesh.texture.unsqueeze(0)
    for start in range(0, len(views), batch):
        part = views[start:start + batch]
        frags = rasterize(part.project(mesh.vertices, height, width), mesh.faces, (height, width), max_pairs)
        rgba = sample(texture, uv_grid(mesh.uv, mesh.faces, frags), frags.mask)
        yield from rgba[:, :3].clamp(0, 1).cpu()
