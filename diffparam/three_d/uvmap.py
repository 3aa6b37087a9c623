"""The UV atlas as an image: which texels the charts cover, edge padding (each texel outside the
charts takes the colour of the nearest covered texel), and the position map (the 3D surface point
each texel shows).

Bilinear lookups at a chart's border read texels just outside it; padding makes those carry the
chart's own colours, so a seam does not show a line of whatever lies between the charts.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from diffparam.errors import UserError
from diffparam.three_d.raster import Fragments, rasterize


def _uv_fragments(uv: Tensor, faces: Tensor, size: int) -> Fragments:
    """The UV atlas rasterised as a flat size² image (one view; row 0 is v = 1, as in images)."""
    clip = torch.cat([uv.float() * 2 - 1, uv.new_ones(len(uv), 2)], 1)[None]  # z = w = 1: flat
    return rasterize(clip, faces, size)


def coverage(uv: Tensor, faces: Tensor, size: int) -> Tensor:
    """(size, size) bool: texels whose centre lies in a UV triangle (row 0 is v = 1, as in images)."""
    return _uv_fragments(uv, faces, size).mask[0]


def padding_index(covered: Tensor) -> Tensor:
    """For each texel (flattened, row-major), the index of the nearest covered texel (itself if covered)."""
    from scipy.ndimage import distance_transform_edt

    mask = covered.cpu().numpy()
    if not mask.any():
        return torch.arange(mask.size)
    _, (rows, cols) = distance_transform_edt(~mask, return_indices=True)
    return torch.from_numpy((rows * mask.shape[1] + cols).reshape(-1).astype(np.int64))


def pad(texture: Tensor, index: Tensor) -> Tensor:
    """Texture (B,C,H,W) with every texel replaced by texel `index[i]` (differentiable gather)."""
    b, c, h, w = texture.shape
    return texture.reshape(b, c, h * w)[:, :, index].reshape(b, c, h, w)


EXTRAPOLATE = 2.0
"""Texels outside the charts but within this many texels of one (all that bilinear lookups at a
chart's border read) extend their nearest chart face linearly; farther ones copy its position."""
_CHUNK = 1 << 20


def position_map(vertices: Tensor, faces: Tensor, uv: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor]:
    """The 3D point (size,size,3) each texel centre shows (row 0 is v = 1), coverage (size,size) and
    the edge-padding index (`padding_index(coverage)`, found on the way).

    Inside a chart: the face's vertex positions interpolated at the texel's UV, so two texels on
    either side of a seam that show the same surface point get the same position. Outside: the
    nearest covered texel's face extended past its edge (within `EXTRAPOLATE` texels), else that
    texel's position, as edge padding does with colours. UVs must lie in [0,1] (no tiling).
    """
    frags = _uv_fragments(uv, faces, size)
    covered = frags.mask[0]
    if not bool(covered.any()):
        raise UserError("the UV atlas covers no texel: the mesh's UVs are degenerate")
    near = padding_index(covered)  # nearest covered texel, flattened
    face = frags.face[0].cpu().reshape(-1)[near]  # the face each texel reads (or extends)
    corner_uv, corner_xyz = uv.double().cpu()[faces.cpu()], vertices.double().cpu()[faces.cpu()]
    pos = torch.empty(size * size, 3, dtype=torch.float64)
    for start in range(0, size * size, _CHUNK):
        idx = torch.arange(start, min(start + _CHUNK, size * size))
        r, c, nr, nc = idx // size, idx % size, near[idx] // size, near[idx] % size
        far = ((r - nr).square() + (c - nc).square()).double().sqrt() > EXTRAPOLATE
        r, c = torch.where(far, nr, r), torch.where(far, nc, c)
        point = torch.stack([(c + 0.5) / size, 1 - (r + 0.5) / size], -1)  # texel centre UVs
        tri = corner_uv[face[idx]]  # (N,3,2)
        e1, e2, q = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], point - tri[:, 0]
        det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]  # nonzero: rasterised faces have area
        w1 = (q[:, 0] * e2[:, 1] - q[:, 1] * e2[:, 0]) / det
        w2 = (e1[:, 0] * q[:, 1] - e1[:, 1] * q[:, 0]) / det
        bary = torch.stack([1 - w1 - w2, w1, w2], -1)
        pos[idx] = (bary[..., None] * corner_xyz[face[idx]]).sum(1)
    return pos.reshape(size, size, 3).to(vertices.device, vertices.dtype), covered, near
