"""Pinhole views of a photo's own camera: poses relative to it, any aspect ratio, and the 3D-photo
camera paths (zoom-in, dolly zoom-in, circle, swing) of Shih et al. 2020.

Camera space is OpenGL's, as in `cameras.py` and NeRF's transforms.json: the camera looks down -z
with y up. A pose is a camera-to-world matrix in the input camera's frame (the identity is the
photo's own view); `fov` is the horizontal field of view in degrees.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from diffparam.checks import choice, positive_int, real
from diffparam.errors import UserError
from diffparam.three_d.posed import load_posed, read_cameras

PATHS = ("zoom-in", "dolly-zoom-in", "circle", "swing")
"""The camera paths of the 3D-photo videos, as the paper names them."""
ZOOM = 0.12
"""How far the zoom paths move in, as a share of the scene's reference (median) depth."""
SHIFT = 0.03
"""Radius of the circle and swing paths, as a share of the reference depth."""

NUDGE = (1 / 64, 1 / 32)
"""Sub-pixel shift (x right, y down, px) of every view's image, too small to see."""


@dataclass(frozen=True)
class PinholeViews:
    """B views: camera-to-world poses (B,4,4) relative to the input camera, horizontal fov (B,) in degrees."""

    pose: Tensor
    fov: Tensor

    def __len__(self) -> int:
        """How many views."""
        return int(self.pose.shape[0])

    def __getitem__(self, index: slice) -> PinholeViews:
        return PinholeViews(self.pose[index], self.fov[index])

    def project(self, points: Tensor, height: int, width: int) -> Tensor:
        """Points (V,3) in the input camera's frame → clip coordinates (B,V,4) for (height, width) views."""
        pose = self.pose.to(points.device, points.dtype)
        world_to_cam = torch.linalg.inv(pose)
        p = torch.cat([points, points.new_ones(len(points), 1)], 1)
        cam = torch.einsum("bij,vj->bvi", world_to_cam, p)
        fx = 1.0 / torch.tan(torch.deg2rad(self.fov.to(points.device, points.dtype)) / 2)
        fy = fx * (width / height)
        w = -cam[..., 2]
        # Nudged by a fraction of a pixel, so that pixel centres never sit exactly on the vertices and
        # edges of a mesh laid out on the pixel grid (there float round-off opens cracks).
        x = cam[..., 0] * fx[:, None] + w * (2 * NUDGE[0] / width)
        y = cam[..., 1] * fy[:, None] - w * (2 * NUDGE[1] / height)
        return torch.stack([x, y, w, w], -1)


def focal_pixels(width: int, fov: float) -> float:
    """The focal length in pixels of an image `width` px wide with horizontal field of view `fov`."""
    return width / 2 / math.tan(math.radians(fov) / 2)


def _poses(offsets: Tensor) -> Tensor:
    pose = torch.eye(4, dtype=torch.float64).repeat(len(offsets), 1, 1)
    pose[:, :3, 3] = offsets
    return pose


def camera_path(name: str, frames: int, depth: float, fov: float) -> PinholeViews:
    """`frames` views along path `name` for a scene whose reference depth is `depth`.

    zoom-in moves straight in and back out; dolly-zoom-in moves in while widening the field of
    view so that what is at `depth` keeps its size; circle moves the camera round a circle in the
    image plane; swing moves it left and right while it moves in and out.
    """
    name = choice("path", name, PATHS)
    frames = positive_int("frames", frames)
    depth = real("depth", depth, 1e-9)
    t = torch.arange(frames, dtype=torch.float64) / frames
    zero = torch.zeros_like(t)
    fovs = torch.full_like(t, fov)
    if name in ("zoom-in", "dolly-zoom-in"):
        forward = ZOOM * depth * torch.sin(math.pi * t)  # in and back out, smoothly
        offsets = torch.stack([zero, zero, -forward], 1)
        if name == "dolly-zoom-in":
            half = math.tan(math.radians(fov) / 2) * depth / (depth - forward)
            fovs = torch.rad2deg(2 * torch.atan(half))
    else:  # a loop that starts and ends at the input view, moving in a little on the way
        angle = 2 * math.pi * t
        lift = torch.cos(angle) - 1 if name == "circle" else zero
        offsets = SHIFT * depth * torch.stack([torch.sin(angle), -lift, 0.5 * (torch.cos(angle) - 1)], 1)
    return PinholeViews(_poses(offsets).float(), fovs.float())


def read_transforms(path: str | os.PathLike) -> tuple[PinholeViews, list[str]]:
    """The views and frame names of a transforms.json-layout file (read by `posed.load_posed`: the
    Blender keys or instant-ngp's), each view's horizontal field of view from its focal length."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"cameras file not found: {p}")
    meta, frames, _ = read_cameras(p)
    if not all({"camera_angle_x", "w"} & (set(f) | set(meta)) for f in frames):
        raise UserError(f"cameras file {p}: give camera_angle_x, or w and h with fl_x (a focal length in "
                        "pixels needs the width it refers to)")
    views = load_posed(p, images=False, size=(1, 1))
    assert views is not None  # a file is always its own training split
    fov = torch.rad2deg(2 * torch.atan(views.width / (2 * views.intrinsics[:, 0].double()))).float()
    if not bool(((fov >= 1.0) & (fov <= 170.0)).all()):
        raise UserError(f"cameras file {p}: the field of view must be between 1 and 170 degrees "
                        "(camera_angle_x is in radians)")
    if len(set(views.names)) != len(views.names):
        raise UserError(f"cameras file {p}: two frames share a file_path; each view needs its own name")
    for name in views.names:
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise UserError(f"cameras file {p}: file_path {name!r} must be a relative path inside the output")
    return PinholeViews(views.c2w, fov), views.names
