"""How much a stylised video flickers, on test videos whose true motion is known.

`known_motion_video` films a photo with a camera that pans or zooms; frame t+1's pixels come from
known points of frame t. `warping_error` warps each stylised frame onto the next by that motion and
measures what changed: 0 for a video whose stylisation moves with its content, large for one that
flickers. The photo frames' own error (resampling alone) is the floor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from diffparam.checks import choice, int_in

MOTIONS = ("pan", "zoom")


def _grid(scale: float, shift: tuple[float, float], size: int) -> Tensor:
    """The (1, size, size, 2) sampling grid of the affine map p → scale·p + shift (normalised)."""
    theta = torch.tensor([[[scale, 0.0, shift[0]], [0.0, scale, shift[1]]]])
    return F.affine_grid(theta, [1, 3, size, size], align_corners=False)


def known_motion_video(photo: Tensor, motion: str = "pan", frames: int = 16,
                       size: int = 256) -> tuple[Tensor, Tensor]:
    """(frames (T, 3, size, size), grids (T−1, size, size, 2)) of a camera over `photo` (1, 3, H, W):
    "pan" moves across it at 1.5% of the view per frame, "zoom" zooms in by 3% per frame. grids[t]
    samples frame t at the positions of frame t+1's pixels (for `F.grid_sample`)."""
    choice("motion", motion, MOTIONS)
    frames = int_in("frames", frames, 2, 10_000)
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
