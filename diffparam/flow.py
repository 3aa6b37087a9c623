"""Optical flow between video frames: carrying a stylised frame along the motion onto the next one.

Both video style modes use it: the trained network's stable mode blends along it, and the
optimisation-based video mode (Ruder et al. 2016) starts each frame from, and holds it to, the frame
before moved along it. Flow is OpenCV's Farnebäck, computed both ways: where the two disagree a
pixel was occluded or came into view, and the mask leaves it out.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor


def _gray(frame: Tensor) -> np.ndarray:
    return (frame.mean(0).clamp(0, 1) * 255).round().byte().numpy()


def _flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense optical flow (H, W, 2) from grey frame `a` to `b` (OpenCV's Farnebäck): where each pixel of
    `a` moved to in `b`."""
    return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 3, 5, 1.2, 0)


def follow_motion(previous: Tensor, frame_before: Tensor, frame: Tensor) -> tuple[Tensor, Tensor]:
    """`previous` (C, H, W), made for `frame_before`, moved along the optical flow onto `frame`, and the
    mask (1, H, W) of the pixels the flow follows both ways (not occluded, not come into view)."""
    before, now = _gray(frame_before.cpu()), _gray(frame.cpu())
    back, ahead = _flow(now, before), _flow(before, now)
    h, w = now.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = xs + back[..., 0], ys + back[..., 1]
    moved = cv2.remap(np.ascontiguousarray(previous.detach().cpu().float().permute(1, 2, 0).numpy()),
                      map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if moved.ndim == 2:
        moved = moved[..., None]
    there = cv2.remap(ahead, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mismatch = ((back + there) ** 2).sum(-1)
    both_ways = mismatch <= 0.01 * ((back ** 2).sum(-1) + (there ** 2).sum(-1)) + 0.5
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    mask = torch.from_numpy((both_ways & inside).astype(np.float32))[None]
    return torch.from_numpy(moved).permute(2, 0, 1), mask
