"""A vectorised z-buffer rasteriser in PyTorch, and texture lookup through the UV map.

`rasterize` finds, for every pixel of every view, the nearest triangle: each triangle is paired
with the pixel centres inside its screen bounding box (in chunks of at most `max_pairs` pairs), the
pairs inside the triangle are kept, and a `scatter_reduce(amin)` on a packed (depth bits << 32 |
face id) key leaves the nearest face per pixel. Perspective-correct barycentrics are recomputed for
the winners. `rasterize` is not differentiable in the geometry; `refine` recomputes the winners'
barycentrics with gradient from the clip coordinates (visibility kept, as nvdiffrast does), so that
what is interpolated and sampled moves with the vertices, and `silhouette_gradient` adds the gradient
of outer silhouettes (edges between the object and the empty background; not where it hides itself).
`render_mesh` is differentiable in the texture (bilinear `grid_sample` through the interpolated UVs).
Runs on any device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from diffparam.checks import image_size, positive_int, shape
from diffparam.errors import UserError
from diffparam.three_d.cameras import Cameras
from diffparam.three_d.mesh import Mesh

NEAR = 1e-3
"""Triangles with a vertex closer than this to the camera plane are dropped (no clipping)."""
_EMPTY = torch.iinfo(torch.int64).max


@dataclass(frozen=True)
class Fragments:
    """Per pixel of B views (H,W): nearest face id (-1: none), perspective-correct barycentrics
    (B,H,W,3) of that face, and depth (distance along the view axis; inf where empty)."""

    face: Tensor
    bary: Tensor
    depth: Tensor

    @property
    def mask(self) -> Tensor:
        """Coverage (B,H,W): True where a face was drawn."""
        return self.face >= 0


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    return image_size(size, "raster size", (1, 1 << 16))


def _screen(clip: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
    """Pixel coordinates (...,2) of clip-space points (...,4) in an (h,w) view (row 0 at the top), and
    their 1/w (w clamped at `NEAR`)."""
    inv_w = 1.0 / clip[..., 3].clamp_min(NEAR)
    xy = torch.stack([(clip[..., 0] * inv_w + 1) * (w / 2), (1 - clip[..., 1] * inv_w) * (h / 2)], -1)
    return xy, inv_w


def _edge(a: Tensor, b: Tensor, p: Tensor) -> Tensor:
    """Twice the signed area of triangle (a, b, p), on the last dimension (x, y)."""
    return ((b[..., 0] - a[..., 0]) * (p[..., 1] - a[..., 1])
            - (b[..., 1] - a[..., 1]) * (p[..., 0] - a[..., 0]))


def _planes(tri: Tensor, inv_w: Tensor) -> Tensor:
    """Per triangle (N,3,2), the screen-linear functions (N,4,3) of its barycentrics b0, b1, b2 and
    of 1/w, each as (x coefficient, y coefficient, constant)."""
    a, b = tri.roll(-1, dims=-2), tri.roll(-2, dims=-2)  # edge i runs from vertex i+1 to i+2
    dx, dy = b[..., 0] - a[..., 0], b[..., 1] - a[..., 1]
    edges = torch.stack([-dy, dx, dy * a[..., 0] - dx * a[..., 1]], -1)  # (N,3,3)
    area = _edge(tri[..., 0, :], tri[..., 1, :], tri[..., 2, :])
    bary = edges / area[..., None, None]
    depth = (bary * inv_w[..., None]).sum(-2, keepdim=True)
    return torch.cat([bary, depth], -2)


def _evaluate(planes: Tensor, px: Tensor, py: Tensor) -> Tensor:
    """Planes (N,4,3) at pixel centres (N,) → (N,4): b0, b1, b2 and 1/w."""
    x, y = (px.to(planes.dtype) + 0.5)[:, None], (py.to(planes.dtype) + 0.5)[:, None]
    return planes[..., 0] * x + planes[..., 1] * y + planes[..., 2]


@torch.no_grad()
def rasterize(clip: Tensor, faces: Tensor, size: int | tuple[int, int], max_pairs: int | None = None,
              cull_backfaces: bool = False) -> Fragments:
    """Rasterise triangles `faces` (F,3) of vertices in clip space `clip` (B,V,4) into (H,W) views.

    Pixel (i, j) samples its centre; row 0 is the top of the view (clip y = +1). `max_pairs`
    bounds memory (triangle-pixel candidate pairs held at once, ~100 bytes each; default 2^22 on
    the CPU, 2^24 on a GPU). `cull_backfaces` drops triangles
    seen from behind, for closed meshes.
    """
    h, w = _size(size)
    shape("clip coordinates", clip, "B,V,4")
    nviews, nfaces = clip.shape[0], faces.shape[0]
    dev = clip.device
    max_pairs = max_pairs or (1 << 24 if dev.type == "cuda" else 1 << 22)
    clip = clip.float()
    cw = clip[..., 3]
    screen, inv_w = _screen(clip, h, w)
    tri = screen[:, faces]  # (B,F,3,2)
    area = _edge(tri[..., 0, :], tri[..., 1, :], tri[..., 2, :])  # < 0: counter-clockwise seen with y up
    valid = (cw[:, faces] > NEAR).all(-1) & (area.abs() > 1e-9)
    if cull_backfaces:
        valid &= area < 0
    lo, hi = tri.min(2).values, tri.max(2).values  # (B,F,2)
    x0 = torch.ceil(lo[..., 0] - 0.5).clamp(0, w).long()
    x1 = torch.floor(hi[..., 0] - 0.5).clamp(-1, w - 1).long()
    y0 = torch.ceil(lo[..., 1] - 0.5).clamp(0, h).long()
    y1 = torch.floor(hi[..., 1] - 0.5).clamp(-1, h - 1).long()
    cx, cy = (x1 - x0 + 1).clamp_min(0), (y1 - y0 + 1).clamp_min(0)
    counts = torch.where(valid, cx * cy, 0).flatten()
    keep = counts.nonzero().squeeze(1)  # indices into B*F
    counts = counts[keep]
    planes = _planes(tri.reshape(-1, 3, 2)[keep], inv_w[:, faces].reshape(-1, 3)[keep])
    x0k, y0k, cxk = x0.flatten()[keep], y0.flatten()[keep], cx.flatten()[keep]
    zbuf = torch.full((nviews * h * w,), _EMPTY, dtype=torch.int64, device=dev)
    # Chunks of consecutive triangles whose candidate pixels add up to at most max_pairs (a
    # triangle with more pixels than that is a chunk of its own).
    ends = torch.cumsum(counts, 0)
    bounds = [0]
    if len(counts):
        chunk_of = ((ends - counts) // max_pairs).cpu()
        bounds += ((chunk_of[1:] != chunk_of[:-1]).nonzero().squeeze(1) + 1).tolist()
    bounds.append(len(counts))
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        cnt = counts[a:b]
        total = int(ends[b - 1] - ends[a] + counts[a])
        owner = torch.repeat_interleave(torch.arange(a, b, device=dev), cnt, output_size=total)
        offset = torch.arange(total, device=dev) - (ends[owner] - counts[owner])
        offset += ends[a] - counts[a]
        row = torch.div(offset, cxk[owner], rounding_mode="floor")
        px = x0k[owner] + offset - row * cxk[owner]
        py = y0k[owner] + row
        val = _evaluate(planes[owner], px, py)
        inside = (val[:, :3] >= 0).all(-1)
        owner, px, py, val = owner[inside], px[inside], py[inside], val[inside]
        pair = keep[owner]
        view = torch.div(pair, nfaces, rounding_mode="floor")
        key = ((1.0 / val[:, 3]).view(torch.int32).long() << 32) | (pair - view * nfaces)
        zbuf.scatter_reduce_(0, (view * h + py) * w + px, key, reduce="amin")
    hit = zbuf != _EMPTY
    face = torch.where(hit, zbuf & 0xFFFFFFFF, -1).view(nviews, h, w)
    bary = torch.zeros(nviews, h, w, 3, device=dev)
    depth = torch.full((nviews, h, w), float("inf"), device=dev)
    idx = hit.nonzero().squeeze(1)
    if len(idx):
        view = torch.div(idx, h * w, rounding_mode="floor")
        pixel = idx - view * (h * w)
        py = torch.div(pixel, w, rounding_mode="floor")
        pair = view * nfaces + (zbuf[idx] & 0xFFFFFFFF)
        # Each winner's row among the kept triangles: `keep` is sorted.
        val = _evaluate(planes[torch.searchsorted(keep, pair)], pixel - py * w, py)
        b = val[:, :3].clamp_min(0) * inv_w[:, faces].reshape(-1, 3)[pair]  # perspective correction
        inv_depth = b.sum(-1, keepdim=True)
        bary.view(-1, 3)[idx] = b / inv_depth
        depth.view(-1)[idx] = 1.0 / inv_depth.squeeze(1)
    return Fragments(face, bary, depth)


def refine(clip: Tensor, faces: Tensor, fragments: Fragments) -> Fragments:
    """`fragments` of `clip` (B,V,4) with each covered pixel's perspective-correct barycentrics recomputed,
    differentiably in `clip`, from its face's projected vertices (which face covers it is kept)."""
    nviews, h, w = fragments.face.shape
    view, py, px = fragments.mask.nonzero(as_tuple=True)
    corner = faces[fragments.face[view, py, px]]  # (P,3) vertex ids
    tri, inv_w = _screen(clip[view[:, None], corner], h, w)  # (P,3,2), (P,3)
    p = torch.stack([px, py], -1).to(tri.dtype)[:, None, :] + 0.5
    a, b = tri.roll(-1, dims=1), tri.roll(-2, dims=1)  # edge i runs from vertex i+1 to i+2
    area = _edge(tri[:, 0], tri[:, 1], tri[:, 2])
    area = torch.where(area.abs() > 1e-9, area, torch.copysign(torch.full_like(area, 1e-9), area))  # edge-on
    weights = (_edge(a, b, p.expand_as(a)) / area[:, None]).clamp_min(0) * inv_w  # screen barycentrics / w
    bary = torch.zeros(nviews, h, w, 3, dtype=weights.dtype, device=weights.device)
    bary = bary.index_put((view, py, px), weights / weights.sum(-1, keepdim=True))
    return Fragments(fragments.face, bary, fragments.depth)


def opposite_faces(faces: Tensor, welded: Tensor) -> Tensor:
    """(F,3): the face across each face's edge i (from vertex i+1 to i+2), -1 where none; `welded` (V,)
    gives vertices split at UV seams one id, so faces across a seam are neighbours."""
    a, b = welded[faces.roll(-1, dims=1)], welded[faces.roll(-2, dims=1)]
    key = (torch.minimum(a, b) * (int(welded.max()) + 1) + torch.maximum(a, b)).flatten()
    order = key.argsort()
    pair = (key[order][1:] == key[order][:-1]).nonzero().squeeze(1)
    out = torch.full_like(key, -1)
    out[order[pair]] = torch.div(order[pair + 1], 3, rounding_mode="floor")
    out[order[pair + 1]] = torch.div(order[pair], 3, rounding_mode="floor")
    return out.view(-1, 3)


def _exits(screen: Tensor, faces: Tensor, view: Tensor, face: Tensor, start: Tensor, end: Tensor
           ) -> tuple[Tensor, Tensor, Tensor]:
    """Where along `start` → `end` (P,1,2) each segment leaves triangle `face` of its view (t, P), by
    which edge (P,), and that edge's |direction| (P,2)."""
    tri = screen[view[:, None], faces[face]]  # (P,3,2)
    a, b = tri.roll(-1, dims=1), tri.roll(-2, dims=1)  # edge i runs from vertex i+1 to i+2
    area = _edge(tri[:, 0], tri[:, 1], tri[:, 2])[:, None]
    area = torch.where(area.abs() > 1e-12, area, 1e-12)
    at_start, at_end = _edge(a, b, start.expand_as(a)) / area, _edge(a, b, end.expand_as(a)) / area
    falling = at_end < at_start
    t, which = torch.where(falling, at_start / torch.where(falling, at_start - at_end, 1.0), torch.inf).min(1)
    return t, which, (b - a)[torch.arange(len(which), device=which.device), which].detach().abs()


def _outline_crossing(screen: Tensor, faces: Tensor, facing: Tensor, opposite: Tensor, view: Tensor,
                      face: Tensor, start: Tensor, end: Tensor, hops: int = 8) -> tuple[Tensor, Tensor]:
    """Where (t, with gradient) the segments `start` → `end` (P,1,2) leave the surface: from each start's
    `face`, across the edge the segment leaves by, onto the next face, until that edge is a silhouette
    edge (no face across, or one `facing` the other way), at most `hops` faces; and that edge's
    |direction| (P,2), zero where none was found (no gradient then)."""
    with torch.no_grad():  # walk to the face whose exit is the outline
        done = torch.zeros(len(face), dtype=torch.bool, device=face.device)
        for _ in range(hops):
            t, which, _ = _exits(screen, faces, view, face, start, end)
            across = opposite[face, which]
            done = done | (across < 0) | (facing[view, across.clamp_min(0)] != facing[view, face])
            if bool(done.all()):
                break
            face = torch.where(done, face, across)
    t, _, edge = _exits(screen, faces, view, face, start, end)
    found = done & torch.isfinite(t)
    return torch.where(found, t, 0.0), edge * found[:, None]


def silhouette_gradient(views: Tensor, clip: Tensor, faces: Tensor, fragments: Fragments,
                        opposite: Tensor) -> Tensor:
    """`views` (B,C,H,W) unchanged, with the gradient of their outer silhouettes in `clip` (B,V,4) added.

    Where a covered pixel neighbours an empty one and its face's edge crossing between the two centres
    is a silhouette edge (no face across it per `opposite_faces`, or one seen from the other side), the
    edge crosses at t (0: the covered centre, 1: the empty one); a box filter would give the pair's far
    half (t − 0.5)·(covered − empty) more of the covered colour when t > 0.5, its near half less when
    t < 0.5 (nvdiffrast's antialiasing). Only the gradient of that blend is kept, weighted by how much
    the edge faces along the pair's axis, so that rows and columns together count the moving area once.
    """
    nviews, h, w = fragments.face.shape
    screen = _screen(clip, h, w)[0]
    with torch.no_grad():
        corners = screen[:, faces]
        facing = _edge(corners[..., 0, :], corners[..., 1, :], corners[..., 2, :]) < 0  # (B,F)
    pixels, mask = views.permute(0, 2, 3, 1), fragments.mask
    delta = torch.zeros_like(pixels)
    for dy, dx in ((0, 1), (1, 0)):
        near, far = mask[:, :h - dy, :w - dx], mask[:, dy:, dx:]
        for flip in (False, True):
            view, y, x = (far & ~near if flip else near & ~far).nonzero(as_tuple=True)
            (fy, fx), (oy, ox) = ((y + dy, x + dx), (y, x)) if flip else ((y, x), (y + dy, x + dx))
            start = (torch.stack([fx, fy], -1).to(screen.dtype) + 0.5)[:, None]
            end = (torch.stack([ox, oy], -1).to(screen.dtype) + 0.5)[:, None]
            t, edge = _outline_crossing(screen, faces, facing, opposite, view, fragments.face[view, fy, fx],
                                        start, end)
            share = (edge[:, 1] if dx else edge[:, 0]) / edge.sum(1).clamp_min(1e-12)
            t, share = t.clamp(0, 1)[:, None], share[:, None].to(pixels.dtype)
            front, back = pixels[view, fy, fx], pixels[view, oy, ox]
            delta = delta.index_put((view, oy, ox), share * (t - 0.5).clamp_min(0) * (front - back),
                                    accumulate=True)
            delta = delta.index_put((view, fy, fx), share * (0.5 - t).clamp_min(0) * (back - front),
                                    accumulate=True)
    return views + (delta - delta.detach()).permute(0, 3, 1, 2)


def interpolate(values: Tensor, faces: Tensor, fragments: Fragments) -> Tensor:
    """Per-vertex values (V,D) interpolated at every pixel (B,H,W,D); 0 where nothing was drawn."""
    face = fragments.face.clamp_min(0)
    corner = values[faces[face]]  # (B,H,W,3,D)
    out = (fragments.bary.unsqueeze(-1).to(values.dtype) * corner).sum(-2)
    return out * fragments.mask.unsqueeze(-1).to(values.dtype)


def uv_grid(uv: Tensor, faces: Tensor, fragments: Fragments) -> Tensor:
    """`grid_sample` coordinates (B,H,W,2) of each pixel's UV (per-vertex `uv` (V,2), wrapped
    into [0,1) as OBJ and glTF repeat textures; v points up)."""
    uv = interpolate(uv, faces, fragments)
    uv = uv - torch.floor(uv)
    return torch.stack([uv[..., 0] * 2 - 1, 1 - uv[..., 1] * 2], -1)


def sample(texture: Tensor, grid: Tensor, mask: Tensor) -> Tensor:
    """Look up a texture (1,C,T,T') at grid (B,H,W,2): premultiplied RGBA (B,C+1,H,W), alpha = `mask`.

    Differentiable in `texture`: one `grid_sample` call for all views.
    """
    b, h, w, _ = grid.shape
    flat = F.grid_sample(texture, grid.reshape(1, b * h, w, 2).to(texture.dtype), mode="bilinear",
                         padding_mode="border", align_corners=False)
    rgb = flat.reshape(texture.shape[1], b, h, w).transpose(0, 1)
    alpha = mask.unsqueeze(1).to(rgb.dtype)
    return torch.cat([rgb * alpha, alpha], 1)


def shade(vertices: Tensor, faces: Tensor, uv: Tensor, cameras: Cameras, size: int, texture: Tensor,
          supersample: int = 1, max_pairs: int | None = None) -> Tensor:
    """RGBA views (B,4,size,size) of a UV-mapped mesh, all tensors on the texture's device.

    Colour is straight (not premultiplied), alpha the coverage, as `composite` expects;
    `supersample` s rasterises at s× the size and averages s×s blocks (anti-aliasing).
    """
    supersample = positive_int("supersample", supersample)
    frags = rasterize(cameras.to(texture.device).project(vertices), faces, size * supersample, max_pairs)
    views = sample(texture, uv_grid(uv, faces, frags), frags.mask)
    if supersample > 1:
        views = F.avg_pool2d(views, supersample)
    alpha = views[:, -1:]
    return torch.cat([views[:, :-1] / alpha.clamp_min(1e-6), alpha], 1)


def render_mesh(mesh: Mesh, cameras: Cameras, size: int, texture: Tensor | None = None,
                supersample: int = 1, max_pairs: int | None = None) -> Tensor:
    """RGBA views (B,4,size,size) of `mesh` through `cameras`, textured with `texture` (1,3,T,T')
    (default: the mesh's own), computed on the texture's device (see `shade`)."""
    if texture is None:
        if mesh.texture is None:
            raise UserError(f"mesh {mesh.name} has no texture: pass one")
        texture = mesh.texture.unsqueeze(0)
    shape("texture", texture, "1,C,H,W")
    m = mesh.to(texture.device)
    return shade(m.vertices, m.faces, m.uv, cameras, size, texture, supersample, max_pairs)
