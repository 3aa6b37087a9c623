"""Pinhole cameras that look at the centre of a unit-box mesh: random views and turntable paths.

Camera space is OpenGL's: the camera looks down -z, y is up. Angles are in degrees; elevation is
measured from the horizontal plane (y up), azimuth around the y axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from diffparam.checks import positive_int, range_pair


@dataclass(frozen=True)
class Cameras:
    """A batch of B cameras: world-to-camera matrices (B,4,4) and vertical fields of view (B,) in degrees."""

    view: Tensor
    fov: Tensor

    def __len__(self) -> int:
        return int(self.view.shape[0])

    def to(self, device: torch.device | str) -> Cameras:
        """The same cameras on `device`."""
        return Cameras(self.view.to(device), self.fov.to(device))

    def project(self, vertices: Tensor) -> Tensor:
        """Vertices (V,3) → clip-space (x/w, y/w in [-1,1] on screen) homogeneous coords (B,V,4).

        w is the distance in front of the camera; square images are assumed (aspect 1).
        """
        v = torch.cat([vertices, vertices.new_ones(len(vertices), 1)], 1)
        cam = torch.einsum("bij,vj->bvi", self.view.to(vertices.dtype), v)
        focal = 1.0 / torch.tan(torch.deg2rad(self.fov.to(vertices.dtype)) / 2)
        w = -cam[..., 2]
        return torch.stack([cam[..., 0] * focal[:, None], cam[..., 1] * focal[:, None], w, w], -1)


def look_at(eye: Tensor, target: Tensor | None = None, up: tuple[float, float, float] = (0.0, 1.0, 0.0)
            ) -> Tensor:
    """World-to-camera matrices (B,4,4) for cameras at `eye` (B,3) looking at `target` (default origin)."""
    target = torch.zeros_like(eye) if target is None else target.expand_as(eye)
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    up_t = eye.new_tensor(up).expand_as(eye)
    right = torch.linalg.cross(forward, up_t)
    # Straight up or down: any horizontal right vector will do.
    degenerate = right.norm(dim=-1, keepdim=True) < 1e-6
    right = torch.where(degenerate, eye.new_tensor([1.0, 0.0, 0.0]).expand_as(eye), right)
    right = torch.nn.functional.normalize(right, dim=-1)
    true_up = torch.linalg.cross(right, forward)
    rot = torch.stack([right, true_up, -forward], 1)  # rows: camera axes in world coordinates
    view = torch.zeros(len(eye), 4, 4, dtype=eye.dtype, device=eye.device)
    view[:, :3, :3] = rot
    view[:, :3, 3] = -torch.einsum("bij,bj->bi", rot, eye)
    view[:, 3, 3] = 1
    return view


def orbit(azimuth: Tensor, elevation: Tensor, distance: Tensor, fov: Tensor) -> Cameras:
    """Cameras on spheres around the origin at the given angles (degrees) and distances, looking in."""
    az, el = torch.deg2rad(azimuth), torch.deg2rad(elevation)
    eye = torch.stack([torch.cos(el) * torch.sin(az), torch.sin(el), torch.cos(el) * torch.cos(az)], -1)
    return Cameras(look_at(eye * distance[:, None]), fov)


@dataclass(frozen=True)
class ViewSampler:
    """Random look-at views toward the centre: uniform azimuth, and uniform ranges of elevation
    (degrees), distance (in units of the mesh's unit box) and vertical field of view (degrees)."""

    distance: tuple[float, float] = (1.9, 2.8)
    elevation: tuple[float, float] = (-35.0, 60.0)
    fov: tuple[float, float] = (30.0, 45.0)

    def __post_init__(self) -> None:
        range_pair("distance", self.distance, 0.9, 1000.0)
        range_pair("elevation", self.elevation, -90.0, 90.0)
        range_pair("fov", self.fov, 1.0, 150.0)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Cameras:
        """`n` random cameras (on the CPU), drawn from `generator`."""
        u = torch.rand(n, 4, generator=generator, dtype=torch.float64)

        def pick(col: int, bounds: tuple[float, float]) -> Tensor:
            return bounds[0] + (bounds[1] - bounds[0]) * u[:, col]

        # Uniform on the sphere's band: sin(elevation) is uniform between the bounds.
        lo, hi = (math.sin(math.radians(e)) for e in self.elevation)
        elevation = torch.rad2deg(torch.asin(lo + (hi - lo) * u[:, 1]))
        cams = orbit(360.0 * u[:, 0], elevation, pick(2, self.distance), pick(3, self.fov))
        return Cameras(cams.view.float(), cams.fov.float())


def turntable(frames: int, elevation: float = 20.0, distance: float = 2.3, fov: float = 40.0) -> Cameras:
    """`frames` cameras circling the object once at a fixed elevation, distance and field of view."""
    frames = positive_int("turntable frames", frames)
    az = torch.arange(frames, dtype=torch.float64) * (360.0 / frames)
    full = torch.full((frames,), 1.0, dtype=torch.float64)
    cams = orbit(az, full * elevation, full * distance, full * fov)
    return Cameras(cams.view.float(), cams.fov.float())
