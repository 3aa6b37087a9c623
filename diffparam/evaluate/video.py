"""How much a stylised video flickers, on test videos whose true motion is known.

`known_motion_video` films a photo with a camera that pans or zooms, or a torus wearing the photo
turning on a turntable in front of it (rendered by the project's rasteriser, with occlusions);
frame t+1's pixels come from known points of frame t. `warping_error` warps each stylised frame onto
the next by that motion and measures what changed: 0 for a video whose stylisation moves with its
content, large for one that flickers. The photo frames' own error (resampling alone) is the floor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from diffparam.checks import choice, int_in
from diffparam.three_d.cameras import Cameras, orbit
from diffparam.three_d.raster import interpolate, rasterize, uv_grid
from diffparam.three_d.shapes import torus

MOTIONS = ("pan", "zoom", "turntable")
PAN_FRAMES = 42
"""The longest pan that stays inside the photo (beyond it, reflection would make the motion untrue)."""
TURN = 4.0
"""Degrees the turntable turns per frame."""
OUTSIDE = 2.0
"""A grid coordinate outside [-1, 1]: marks a pixel whose source is not in view in the frame before."""


def _grid(scale: float, shift: tuple[float, float], size: int) -> Tensor:
    """The (1, size, size, 2) sampling grid of the affine map p → scale·p + shift (normalised)."""
    theta = torch.tensor([[[scale, 0.0, shift[0]], [0.0, scale, shift[1]]]])
    return F.affine_grid(theta, [1, 3, size, size], align_corners=False)


def known_motion_video(photo: Tensor, motion: str = "pan", frames: int = 16,
                       size: int = 256) -> tuple[Tensor, Tensor]:
    """(frames (T, 3, size, size), grids (T−1, size, size, 2)) of a camera over `photo` (1, 3, H, W):
    "pan" moves across it at 1.5% of the view per frame, "zoom" zooms in by 3% per frame,
    "turntable" films a torus textured with the photo turning TURN degrees per frame in front of the
    darkened photo. grids[t] samples frame t at the positions of frame t+1's pixels (for
    `F.grid_sample`); pixels whose source was hidden or out of view get coordinates outside [-1, 1]."""
    choice("motion", motion, MOTIONS)
    frames = int_in("frames", frames, 2, PAN_FRAMES if motion == "pan" else 10_000)
    if motion == "turntable":
        return _turntable(photo, frames, size)
    scales, shifts = [], []
    for t in range(frames):
        if motion == "pan":
            scales.append(0.6)
            shifts.append((-0.35 + 0.03 * 0.6 * t, 0.0))
        else:
            scales.append(0.8 * 0.97 ** t)
            shifts.append((0.0, 0.0))
    video = torch.cat([F.grid_sample(photo, _grid(s, d, size), mode="bilinear", padding_mode="reflection",
                                     align_corners=False) for s, d in zip(scales, shifts, strict=True)])
    # frame t+1 at p shows photo(s1·p + d1) = frame t at (s1·p + d1 − d0) / s0
    grids = torch.cat([_grid(scales[t + 1] / scales[t],
                             tuple((shifts[t + 1][i] - shifts[t][i]) / scales[t] for i in (0, 1)), size)
                       for t in range(frames - 1)])
    return video.clamp(0, 1), grids


def warping_error(frames: Tensor, grids: Tensor) -> float:
    """Mean absolute change between each frame and the one before it warped by the known motion, over
    the pixels the motion keeps in view (frames (T, C, H, W) in [0, 1]; grids as `known_motion_video`
    gives them)."""
    before = F.grid_sample(frames[:-1].float(), grids.to(frames.device), mode="bilinear",
                           padding_mode="zeros", align_corners=False)
    inside = (grids.abs() <= 1).all(-1).unsqueeze(1).to(frames.device)
    change = (frames[1:].float() - before).abs() * inside
    return float(change.sum() / (inside.sum() * frames.shape[1]).clamp_min(1))


def _turntable(photo: Tensor, frames: int, size: int) -> tuple[Tensor, Tensor]:
    """The "turntable" video of `known_motion_video`: every pixel's surface point is projected into the
    frame before, and kept where that frame's depth buffer shows the same point (not hidden)."""
    mesh = torus(48, 0.45)
    n = torch.ones(frames, dtype=torch.float64)
    orbits = orbit(torch.arange(frames, dtype=torch.float64) * TURN, 35.0 * n, 1.55 * n, 40.0 * n)
    cams = Cameras(orbits.view.float(), orbits.fov.float())
    frags = rasterize(cams.project(mesh.vertices), mesh.faces, size)
    texture = photo.float()
    grid = uv_grid(mesh.uv, mesh.faces, frags)
    flat = F.grid_sample(texture, grid.reshape(1, frames * size, size, 2), mode="bilinear",
                         padding_mode="border", align_corners=False)
    surface = flat.reshape(3, frames, size, size).transpose(0, 1)
    backdrop = 0.5 * F.interpolate(texture, size=(size, size), mode="bilinear", align_corners=False)
    covered = frags.mask.unsqueeze(1)
    video = torch.where(covered, surface, backdrop)
    identity = _grid(1.0, (0.0, 0.0), size)[0]
    points = interpolate(mesh.vertices, mesh.faces, frags)  # (T, H, W, 3) world positions
    grids = []
    for t in range(frames - 1):
        later = frags.mask[t + 1]
        clip = cams.project(points[t + 1][later])[t]  # seen by camera t
        xy = torch.stack([clip[:, 0] / clip[:, 3], -clip[:, 1] / clip[:, 3]], -1)
        # frame t's depth where the point lands (nearest pixel), against the point's depth from camera t
        col = ((xy[:, 0] + 1) * size / 2).floor().long().clamp(0, size - 1)
        row = ((xy[:, 1] + 1) * size / 2).floor().long().clamp(0, size - 1)
        seen = frags.depth[t][row, col]
        visible = torch.isfinite(seen) & ((clip[:, 3] - seen).abs() <= 0.02 * seen)
        g = identity.clone()
        g[frags.mask[t]] = OUTSIDE  # backdrop the object covered in frame t has no source there
        g[later] = torch.where(visible[:, None], xy, torch.full_like(xy, OUTSIDE))
        grids.append(g)
    return video.clamp(0, 1), torch.stack(grids)
