"""How visible a texture's UV seams are: rendered colour jumps across seam edges vs interior edges.

A seam edge joins two faces that meet on the surface but lie apart in the UV atlas; an interior
edge joins faces that also touch in the atlas. A texture that is continuous on the surface shows
the same colour differences across both (ratio near 1); an image made in 2D and pasted on the
atlas jumps at the seams (ratio well above 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from diffparam.errors import UserError
from diffparam.three_d.cameras import Cameras
from diffparam.three_d.mesh import Mesh
from diffparam.three_d.raster import rasterize, sample, uv_grid


def edge_pairs(mesh: Mesh) -> tuple[Tensor, Tensor]:
    """Faces that share an edge on the surface: sorted keys f1·F + f2 (f1 < f2) and whether each
    shared edge is a UV seam (its two faces give its ends different UVs)."""
    pos = mesh.welded().cpu()
    faces, uv = mesh.faces.cpu(), mesh.uv.cpu()
    nf = len(faces)
    corners = torch.tensor([[0, 1], [1, 2], [2, 0]])
    ends = faces[:, corners]  # (F,3,2) vertex ids of each edge
    welded = pos[ends]
    swap = welded[..., 0] > welded[..., 1]
    key_edge = torch.where(swap, welded[..., 1] * len(pos) + welded[..., 0],
                           welded[..., 0] * len(pos) + welded[..., 1]).flatten()
    # Each edge's UVs ordered by its welded ends, so the two faces' records compare directly.
    ordered = torch.where(swap[..., None], ends.flip(-1), ends).reshape(-1, 2)
    face_of = torch.arange(nf).repeat_interleave(3)
    order = torch.argsort(key_edge, stable=True)
    key_edge, ordered, face_of = key_edge[order], ordered[order], face_of[order]
    # Manifold edges only: exactly two faces share them.
    run = torch.unique_consecutive(key_edge, return_counts=True)[1]
    a = (torch.cumsum(run, 0) - run)[run == 2]
    b = a + 1
    seam = (uv[ordered[a]] - uv[ordered[b]]).abs().amax((-1, -2)) > 1e-5
    f1, f2 = torch.minimum(face_of[a], face_of[b]), torch.maximum(face_of[a], face_of[b])
    keys = f1 * nf + f2
    order = torch.argsort(keys)
    return keys[order], seam[order]


@dataclass(frozen=True)
class SeamContrast:
    """Mean absolute colour difference (0..1 per channel) between neighbouring pixels across seam
    edges and across interior edges, with how many pixel pairs each mean is over."""

    seam: float
    interior: float
    seam_pairs: int
    interior_pairs: int

    @property
    def ratio(self) -> float:
        """seam / interior: about 1 when seams are invisible."""
        return self.seam / self.interior


@torch.no_grad()
def seam_contrast(mesh: Mesh, texture: Tensor, cameras: Cameras, size: int = 256) -> SeamContrast:
    """Render `mesh` with `texture` (1,3,T,T') from `cameras` (no anti-aliasing) and compare the
    colour jumps between neighbouring pixels whose faces meet across seam vs interior edges."""
    keys, seam = edge_pairs(mesh)
    if not bool(seam.any()) or bool(seam.all()):
        raise UserError(f"mesh {mesh.name} needs both seam and interior edges to compare them")
    dev = texture.device
    m = mesh.to(dev)
    frags = rasterize(cameras.to(dev).project(m.vertices), m.faces, size)
    colour = sample(texture, uv_grid(m.uv, m.faces, frags), frags.mask)[:, :3]
    nf = mesh.num_faces
    keys, seam = keys.to(dev), seam.to(dev)
    totals = {True: [0.0, 0], False: [0.0, 0]}
    for dim in (1, 2):  # vertical and horizontal neighbours
        n = frags.face.shape[dim] - 1
        fa, fb = frags.face.narrow(dim, 0, n), frags.face.narrow(dim, 1, n)
        ca, cb = colour.narrow(dim + 1, 0, n), colour.narrow(dim + 1, 1, n)
        diff = (ca - cb).abs().mean(1)
        both = (fa >= 0) & (fb >= 0) & (fa != fb)
        k = torch.minimum(fa, fb) * nf + torch.maximum(fa, fb)
        pos = torch.searchsorted(keys, k).clamp_max(len(keys) - 1)
        adjacent = both & (keys[pos] == k)
        kind = seam[pos]
        for flag in (True, False):
            sel = adjacent & (kind == flag)
            totals[flag][0] += float(diff[sel].sum())
            totals[flag][1] += int(sel.sum())
    if totals[True][1] == 0 or totals[False][1] == 0:
        raise UserError("no seam or no interior edge was visible from these cameras: use more views")
    return SeamContrast(totals[True][0] / totals[True][1], totals[False][0] / totals[False][1],
                        totals[True][1], totals[False][1])
