"""How well pictures of one scene from several cameras agree: the multi-view consistency of a restyled
radiance field, or of views stylised one by one.

Each pixel of view A is lifted to its surface point through A's depth (distance along the pixel's
ray, as `RadianceField.render` gives it), projected into view B with B's pinhole camera (the
`three_d.posed` conventions) and kept where B sees that same point: inside B, covered in both, and
B's own depth there within `tolerance` of the point's distance (not hidden behind something else).
`multiview_error` is the mean colour change between A's pixels and B's at those points: near 0 for
pictures painted on the scene's surfaces, large for ones that change from view to view. The scene's
own renders (or its true pictures) give the floor: resampling, and colours that depend on the view.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from diffparam.checks import real, shape
from diffparam.errors import UserError
from diffparam.three_d.posed import PosedViews

TOLERANCE = 0.03
"""Largest relative difference between a point's distance from camera B and B's depth where it lands."""
COVERED = 0.5
"""Coverage (alpha) above which a pixel shows the scene rather than the background."""


def correspondences(views: PosedViews, depth: Tensor, a: int, b: int, coverage: Tensor | None = None,
                    tolerance: float = TOLERANCE) -> tuple[Tensor, Tensor]:
    """Where each pixel of view `a` lands in view `b` — grid-sample coordinates (H,W,2) in [-1, 1]
    (`align_corners=False`) — and whether `b` sees the same surface point there (H,W), from the views'
    cameras and their depth (N,1,H,W) along each pixel's ray; `coverage` (N,1,H,W) drops pixels of the
    background in either view."""
    depth = depth.float()
    c2w, k = views.c2w.to(depth.device).float(), views.intrinsics.to(depth.device).float()
    origins, dirs = views.part(a, a + 1).rays(depth.device)
    points = origins[0] + dirs[0] * depth[a, 0, :, :, None]  # (H,W,3) world
    rel = points - c2w[b, :3, 3]
    cam = rel @ c2w[b, :3, :3]  # B's camera coordinates: x right, y up, looking down -z
    ahead = cam[..., 2] < -1e-6
    z = (-cam[..., 2]).clamp_min(1e-6)
    u = k[b, 2] + k[b, 0] * cam[..., 0] / z  # pixel coordinates, pixel centres at +0.5
    v = k[b, 3] - k[b, 1] * cam[..., 1] / z
    grid = torch.stack([2 * u / views.width - 1, 2 * v / views.height - 1], -1)
    inside = ahead & (grid.abs() < 1).all(-1)
    # B's depth (and coverage) at the nearest pixel: no blending across the edges of objects
    seen = F.grid_sample(depth[b:b + 1], grid[None], mode="nearest", padding_mode="border",
                         align_corners=False)[0, 0]
    distance = rel.norm(dim=-1)
    valid = inside & (depth[a, 0] > 0) & ((seen - distance).abs() <= tolerance * distance)
    if coverage is not None:
        there = F.grid_sample(coverage[b:b + 1].float(), grid[None], mode="nearest", padding_mode="border",
                              align_corners=False)[0, 0]
        valid &= (coverage[a, 0] > COVERED) & (there > COVERED)
    return grid, valid


def multiview_error(images: Tensor, depth: Tensor, views: PosedViews,
                    pairs: Sequence[tuple[int, int]] | None = None, coverage: Tensor | None = None,
                    tolerance: float = TOLERANCE) -> dict[str, float]:
    """The mean absolute colour difference (`error`) between each pixel of view A and view B's picture
    (bilinear) where B sees the same surface point (`correspondences`), over every pair (A, B) of
    `pairs` (default: each view and the next) and every channel of `images` (N,C,H,W) in [0, 1]; with
    the share of A's pixels compared (`valid`). Pictures consistent across views give about 0."""
    n = len(views)
    sizes = {"N": n, "H": views.height, "W": views.width}
    shape("images", images, "N,C,H,W", **sizes)
    shape("depth", depth, "N,1,H,W", **sizes)
    if coverage is not None:
        shape("coverage", coverage, "N,1,H,W", **sizes)
    tolerance = real("tolerance", tolerance, 0.0, 1.0)
    pairs = [(i, i + 1) for i in range(n - 1)] if pairs is None else list(pairs)
    if not pairs or any(not (0 <= a < n and 0 <= b < n) or a == b for a, b in pairs):
        raise UserError(f"`pairs` must list pairs of two different views out of {n}, got {pairs}")
    total, count, compared = 0.0, 0, 0
    for a, b in pairs:
        grid, valid = correspondences(views, depth, a, b, coverage, tolerance)
        warped = F.grid_sample(images[b:b + 1].float(), grid[None].to(images.device), mode="bilinear",
                               padding_mode="border", align_corners=False)[0]
        change = (images[a].float() - warped).abs() * valid.to(images.device)
        total += float(change.sum())
        count += int(valid.sum()) * images.shape[1]
        compared += int(valid.sum())
    return {"error": total / max(count, 1), "valid": compared / (len(pairs) * views.height * views.width)}
