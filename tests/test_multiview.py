"""Multi-view consistency (issue 14's restyling target): on a ray-traced scene of two spheres with
exact depth, views of a colour painted on the surfaces agree once warped, a shifted picture does not,
and pixels hidden from the other view are never compared."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from diffparam.errors import UserError
from diffparam.evaluate.multiview import correspondences, multiview_error
from diffparam.three_d.cameras import orbit
from diffparam.three_d.posed import PosedViews, posed_from_cameras

pytestmark = pytest.mark.usefixtures("one_thread")

SPHERES = ((0.0, 0.0, 0.0, 1.0), (0.1, 0.2, 1.6, 0.45))
"""(x, y, z, radius): a large sphere and a small one in front of it (toward azimuth 0)."""
SIZE = 64


def _hits(origins: Tensor, dirs: Tensor, shrink: float = 0.0) -> tuple[Tensor, Tensor]:
    """Distance along each ray to the nearest sphere (inf where none is hit) and which sphere; `shrink`
    makes every sphere that much smaller."""
    best = torch.full(origins.shape[:-1], float("inf"))
    which = torch.full(origins.shape[:-1], -1)
    for s, (x, y, z, r) in enumerate(SPHERES):
        oc = origins - torch.tensor([x, y, z])
        b = (oc * dirs).sum(-1)
        disc = b * b - (oc * oc).sum(-1) + (r - shrink) ** 2
        t = -b - disc.clamp_min(0).sqrt()
        t = torch.where((disc > 0) & (t > 0), t, torch.full_like(t, float("inf")))
        which = torch.where(t < best, s, which)
        best = torch.minimum(best, t)
    return best, which


def _paint(points: Tensor) -> Tensor:
    """A smooth colour fixed to the surfaces (H,W,3 points → H,W,3 in [0, 1])."""
    x, y, z = points.unbind(-1)
    return torch.stack([0.5 + 0.4 * torch.sin(3 * x + 1), 0.5 + 0.4 * torch.sin(2.5 * y - 2 * z),
                        0.5 + 0.4 * torch.cos(2 * z + x)], -1)


def _scene(azimuths: list[float]) -> tuple[PosedViews, Tensor, Tensor, Tensor]:
    """Views, their pictures (white background), depth along each ray and coverage."""
    n = len(azimuths)
    full = torch.ones(n, dtype=torch.float64)
    views = posed_from_cameras(orbit(torch.tensor(azimuths, dtype=torch.float64), 20 * full, 4 * full,
                                     40 * full), SIZE, [str(a) for a in azimuths])
    origins, dirs = views.rays()
    t, _ = _hits(origins, dirs)
    hit = torch.isfinite(t)
    depth = torch.where(hit, t, torch.zeros_like(t))
    colour = torch.where(hit[..., None], _paint(origins + dirs * depth[..., None]), torch.ones(3))
    return views, colour.permute(0, 3, 1, 2), depth[:, None], hit[:, None].float()


def test_true_views_agree_once_warped_and_a_shifted_one_does_not() -> None:
    views, images, depth, coverage = _scene([0.0, 10.0, 20.0])
    exact = multiview_error(images, depth, views, coverage=coverage)
    shifted = images.clone()
    shifted[1] = torch.roll(images[1], 3, dims=2)  # the middle view's picture 3 px off its geometry
    off = multiview_error(shifted, depth, views, coverage=coverage)
    noisy = (images + 0.2 * torch.randn(images.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert exact["valid"] > 0.2, exact  # most of the covered pixels are compared
    assert exact["error"] < 0.01, exact  # resampling alone
    assert off["error"] > 5 * exact["error"], (exact, off)
    assert multiview_error(noisy, depth, views, coverage=coverage)["error"] > 0.1


def test_pixels_hidden_from_the_other_view_are_not_compared() -> None:
    """From 40° away the small sphere hides part of the large one that view A sees (and the other way
    round): those pixels, known from the ray-traced scene, are all dropped, while nearly every pixel
    both views see is kept."""
    views, images, depth, coverage = _scene([0.0, 40.0])
    grid, valid = correspondences(views, depth, 0, 1, coverage)
    origins, dirs = views.rays()
    points = origins[0] + dirs[0] * depth[0, 0, :, :, None]
    eye = views.c2w[1, :3, 3]
    towards = torch.nn.functional.normalize(points - eye, dim=-1)
    distance = (points - eye).norm(dim=-1)
    hit = coverage[0, 0] > 0.5
    t, _ = _hits(eye.expand_as(points), towards)
    hidden = hit & (t < distance - 1e-3)  # something nearer to B on the way
    # clearly hidden: behind more than the depth tolerance, and still hidden by spheres 2 px smaller (B
    # sees pixel centres: a point just behind an outline may show at the nearest pixel)
    t, _ = _hits(eye.expand_as(points), towards, shrink=0.06)
    clearly = hit & (t < 0.97 * distance)
    seen = hit & ~hidden & (grid.abs() < 1).all(-1)
    assert int(clearly.sum()) > 100 and not bool((valid & clearly).any())
    assert float(valid[seen].float().mean()) > 0.9
    # the hidden pixels are what a naive warp would get wrong: large colour errors there
    warped = torch.nn.functional.grid_sample(images[1:], grid[None], align_corners=False)[0]
    change = (images[0] - warped).abs().mean(0)
    assert float(change[hidden].mean()) > 5 * float(change[valid].mean())


def test_bad_pairs_are_refused() -> None:
    views, images, depth, _ = _scene([0.0, 10.0])
    with pytest.raises(UserError, match="`pairs`"):
        multiview_error(images, depth, views, pairs=[(0, 0)])
    with pytest.raises(UserError, match="depth"):
        multiview_error(images, depth[:1], views)
