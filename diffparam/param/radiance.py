"""A radiance field: density and colour at every point of a box, seen through cameras by volume
rendering — a scene as a parameterization (docs/architecture.md).

The field is written in plain PyTorch so that it trains on the CPU in tests and fast on a GPU:
- position → features from a multi-resolution vector-matrix factorisation (TensoRF's VM, at several
  resolutions as K-Planes does): per resolution, three planes times three lines, read with
  `grid_sample`; coarse levels learn the shape fast, fine ones the detail;
- features → density (a small MLP, exponential activation) and a geometry code, → colour (a small
  MLP of that code and the view direction in real spherical harmonics of degree 2); optionally
  (`add_appearance`, for restyling) a second factorisation of its own, an appearance grid, whose
  features feed the colour MLP too, so colour can change where the density's features cannot;
- rays are sampled uniformly (stratified) between where they enter and leave the box; an occupancy
  grid, refreshed from the density while training, skips samples in empty space: only occupied
  samples reach the field, and alpha compositing front to back gives colour, coverage and depth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffparam.checks import int_in, positive_float, positive_int, real
from diffparam.errors import UserError
from diffparam.param.base import Parameterization
from diffparam.three_d.cameras import turntable
from diffparam.three_d.posed import PosedViews, posed_from_cameras

PLANE_AXES = ((0, 1), (0, 2), (1, 2))
LINE_AXES = (2, 1, 0)
"""Each plane of the VM factorisation spans two axes; its line runs along the third."""


class _TruncExp(torch.autograd.Function):
    """exp with its input clamped at 15 going forward and its gradient clamped coming back (as
    Instant-NGP's density activation): large densities stay finite and trainable."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.exp(x.clamp(max=15))

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(-15, 15))


def spherical_harmonics(d: Tensor) -> Tensor:
    """Real spherical harmonics of degree ≤ 2 (9 values) of unit directions (P,3)."""
    x, y, z = d.unbind(-1)
    return torch.stack([torch.full_like(x, 0.282095), 0.488603 * y, 0.488603 * z, 0.488603 * x,
                        1.092548 * x * y, 1.092548 * y * z, 0.315392 * (3 * z * z - 1),
                        1.092548 * x * z, 0.546274 * (x * x - y * y)], -1)


def box_intersection(origins: Tensor, dirs: Tensor, bound: float) -> tuple[Tensor, Tensor]:
    """Where rays enter and leave the cube [-bound, bound]³ (R,), clamped at the origin; near = far
    for rays that miss it."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0, t1 = (-bound - origins) * inv, (bound - origins) * inv
    near = torch.minimum(t0, t1).amax(-1).clamp_min(0)
    far = torch.maximum(t0, t1).amin(-1)
    return near, torch.maximum(far, near)


BLOB_WIDTH = 0.5
"""Standard deviation, in box coordinates, of the optional density bump at the field's centre."""

APPEARANCE_SCALE = 0.5
"""Standard deviation of an appearance grid's planes and lines at the start (features of order 0.25)."""

VISIBLE = 1e-4
"""Samples behind less transmittance than this add at most this much to a pixel: they are skipped."""


def _scatter(values: Tensor, idx: Tensor, size: int) -> Tensor:
    """`values` (K,…) placed at `idx` of a zero tensor of `size` rows (differentiable)."""
    return values.new_zeros((size, *values.shape[1:])).index_put((idx,), values)


def _alpha(sigma: Tensor, delta: Tensor) -> Tensor:
    """Opacity (R,n) of samples of density `sigma` (R,n) spaced `delta` (R,) apart."""
    return 1 - torch.exp(-sigma * delta[:, None])


def _transmittance_of(alpha: Tensor) -> Tensor:
    """The light left (R,n) in front of each sample: the product of (1 - alpha) before it."""
    return torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1] + 1e-10], 1), 1)


def vm_features(planes: Sequence[Tensor], lines: Sequence[Tensor], x: Tensor) -> Tensor:
    """Features (P, 3·C·levels) of points (P,3) in [-1, 1]³ from VM planes (3,C,r,r) and lines (3,C,r,1)."""
    plane_xy = torch.stack([x[:, a] for a in PLANE_AXES]).unsqueeze(1)  # (3,1,P,2)
    line_xy = torch.stack([torch.stack([torch.zeros_like(x[:, a]), x[:, a]], -1) for a in LINE_AXES])
    line_xy = line_xy.unsqueeze(1)
    out = []
    for plane, line in zip(planes, lines, strict=True):
        p = F.grid_sample(plane, plane_xy, mode="bilinear", align_corners=True)  # (3,C,1,P)
        q = F.grid_sample(line, line_xy, mode="bilinear", align_corners=True)
        out.append((p * q).squeeze(2))  # (3,C,P)
    return torch.cat(out, 1).flatten(0, 1).t()


class RadianceField(Parameterization):
    """Density and colour in the cube [-bound, bound]³, rendered as RGBA views of `views` (default: a
    turntable of `batch` cameras at `size` px) by `forward()`; `render_rays` renders any rays."""

    default_lr = 0.02
    graph_safe = False  # empty-space skipping compacts samples: a host synchronisation per batch

    def __init__(self, views: PosedViews | None = None, size: int = 64, batch: int = 4, bound: float = 1.5,
                 resolutions: Sequence[int] = (64, 128, 256, 512), features: int = 8, hidden: int = 64,
                 samples: int = 256, grid: int = 128, blob: float = 0.0) -> None:
        if views is None:
            names = [f"view_{i}" for i in range(batch)]
            views = posed_from_cameras(turntable(batch, distance=4.0), size, names)
        super().__init__(views.height, views.width, len(views), 4)
        self.views = views
        self.bound = positive_float("bound", bound)
        self.resolutions = [int_in("resolution", r, 2, 4096) for r in resolutions]
        if not self.resolutions:
            raise UserError("`resolutions` must list at least one grid resolution")
        self.features = positive_int("features", features)
        self.samples = int_in("samples", samples, 2, 4096)
        grid = int_in("grid", grid, 2, 1024)
        self.blob = real("blob", blob, 0.0, 30.0)
        self.planes = nn.ParameterList([nn.Parameter(0.1 * torch.randn(3, features, r, r))
                                        for r in self.resolutions])
        self.lines = nn.ParameterList([nn.Parameter(0.1 * torch.randn(3, features, r, 1))
                                       for r in self.resolutions])
        width = 3 * features * len(self.resolutions)
        self.geometry_net = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 16))
        self.color_net = nn.Sequential(nn.Linear(15 + 9, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                       nn.ReLU(), nn.Linear(hidden, 3))
        self.appearance_planes, self.appearance_lines = nn.ParameterList(), nn.ParameterList()
        self.register_buffer("density_grid", torch.full((grid,) * 3, math.inf))
        self.register_buffer("occupied", torch.ones(grid ** 3, dtype=torch.bool))

    @property
    def step_size(self) -> float:
        """The spacing of samples along the box's diagonal, the largest there is."""
        return 2 * self.bound * math.sqrt(3) / self.samples

    def grid_parameters(self) -> list[nn.Parameter]:
        """The feature planes and lines (they take a larger learning rate than the MLPs)."""
        return [*self.planes, *self.lines]

    def mlp_parameters(self) -> list[nn.Parameter]:
        """The weights of the density and colour MLPs."""
        return [*self.geometry_net.parameters(), *self.color_net.parameters()]

    def appearance_parameters(self) -> list[nn.Parameter]:
        """The appearance grid's planes and lines (none until `add_appearance`)."""
        return [*self.appearance_planes, *self.appearance_lines]

    def add_appearance(self, resolutions: Sequence[int], features: int, scale: float = APPEARANCE_SCALE,
                       generator: torch.Generator | None = None) -> None:
        """Give colour an appearance grid of its own (planes and lines at `resolutions`, `features` per
        plane, random at `scale`) feeding the colour MLP beside the geometry code; the MLP's weights for
        it start at zero, so the field renders as before, and the density is untouched."""
        if self.appearance_planes:
            raise UserError("this field has an appearance grid already")
        levels = [int_in("resolution", r, 2, 4096) for r in resolutions]
        features = positive_int("features", features)
        like = {"device": self.density_grid.device, "generator": generator}
        for r in levels:
            self.appearance_planes.append(nn.Parameter(scale * torch.randn(3, features, r, r, **like)))
            self.appearance_lines.append(nn.Parameter(scale * torch.randn(3, features, r, 1, **like)))
        first = self.color_net[0]
        wider = nn.Linear(first.in_features + 3 * features * len(levels), first.out_features,
                          device=first.weight.device)
        with torch.no_grad():
            wider.weight.zero_()
            wider.weight[:, :first.in_features] = first.weight
            wider.bias.copy_(first.bias)
        self.color_net[0] = wider

    def encode(self, x: Tensor) -> Tensor:
        """Features (P, 3·features·levels) of points (P,3) in [-1, 1]³ (box coordinates)."""
        return vm_features(self.planes, self.lines, x)

    def query(self, x: Tensor, dirs: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Density (P,) at points (P,3) in box coordinates and, given view directions, colour (P,3)."""
        h = self.geometry_net(self.encode(x))
        return self._density(h, x), None if dirs is None else self._color(h, dirs, x)

    def _density(self, h: Tensor, x: Tensor) -> Tensor:
        """Density from the geometry code `h` at points `x` (box coordinates): with `blob`, the log
        density is raised by a fixed Gaussian bump at the centre (as Dream Fields' density bias), so a
        field made from nothing starts as an object in the middle, not a fog."""
        raw = h[:, 0] - 1.0
        if self.blob:
            raw = raw + self.blob * torch.exp(-x.pow(2).sum(-1) / (2 * BLOB_WIDTH ** 2))
        return _TruncExp.apply(raw)

    def _color(self, h: Tensor, dirs: Tensor, x: Tensor) -> Tensor:
        """Colour (P,3) from the geometry code `h`, view directions and, with an appearance grid, its
        features at the points `x`."""
        inputs = [h[:, 1:], spherical_harmonics(dirs)]
        if self.appearance_planes:
            inputs.append(vm_features(self.appearance_planes, self.appearance_lines, x))
        return torch.sigmoid(self.color_net(torch.cat(inputs, -1)))

    def cells(self, x: Tensor) -> Tensor:
        """The occupancy-grid cell (flat index) of points in box coordinates."""
        g = self.density_grid.shape[0]
        ijk = ((x + 1) * (g / 2)).long().clamp(0, g - 1)
        return (ijk[..., 0] * g + ijk[..., 1]) * g + ijk[..., 2]

    @torch.no_grad()
    def update_occupancy(self, generator: torch.Generator, decay: float = 0.95, chunk: int = 1 << 18) -> None:
        """Refresh the occupancy grid: the density at a random point of every cell, against the
        cell's last value decayed; cells where a sample would stay nearly transparent are empty."""
        g = self.density_grid.shape[0]
        axis = torch.arange(g, device=self.density_grid.device, dtype=torch.float32)
        corner = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
        x = (corner + torch.rand(corner.shape, generator=generator, device=corner.device)) * (2 / g) - 1
        new = torch.cat([self.query(part)[0] for part in x.split(chunk)]).view(g, g, g)
        old = self.density_grid
        self.density_grid.copy_(torch.where(torch.isinf(old), new, torch.maximum(old * decay, new)))
        threshold = min(0.01 / self.step_size, float(self.density_grid.mean()))
        self.occupied.copy_((self.density_grid > threshold).flatten())

    def render_rays(self, origins: Tensor, dirs: Tensor, jitter: Tensor | None = None
                    ) -> tuple[Tensor, Tensor, Tensor]:
        """Premultiplied colour (R,3), coverage (R,) and depth (R,) along rays (origins and unit
        directions (R,3)); `jitter` (R,) in [0, 1) shifts each ray's samples (stratified training).

        Samples in empty cells of the occupancy grid are skipped; of the rest, a first pass without
        gradients finds those hidden behind what is in front (transmittance under `VISIBLE`), and only
        the visible ones are evaluated again, with colour and gradients.
        """
        near, far = box_intersection(origins, dirs, self.bound)
        n = self.samples
        offset = torch.full_like(near, 0.5) if jitter is None else jitter
        steps = torch.arange(n, device=origins.device, dtype=origins.dtype)
        delta = (far - near) / n
        t = near[:, None] + (steps[None] + offset[:, None]) * delta[:, None]  # (R,n)
        x = ((origins[:, None] + t[..., None] * dirs[:, None]) / self.bound).clamp(-1, 1).reshape(-1, 3)
        keep = self.occupied[self.cells(x)] & (far > near).repeat_interleave(n)
        with torch.no_grad():
            idx = keep.nonzero().squeeze(1)
            h = self.geometry_net(self.encode(x[idx]))
            sigma = _scatter(self._density(h, x[idx]), idx, len(x)).view(-1, n)
            visible = (_transmittance_of(_alpha(sigma, delta)).flatten() > VISIBLE)[idx]
        idx, h = idx[visible], h[visible]
        if torch.is_grad_enabled():  # evaluated again, with gradients, where it counts
            h = self.geometry_net(self.encode(x[idx]))
        sigma, rgb = self._density(h, x[idx]), self._color(h, dirs[idx // n], x[idx])
        alpha = _alpha(_scatter(sigma, idx, len(x)).view(-1, n), delta)
        weight = alpha * _transmittance_of(alpha)
        color = (weight[..., None] * _scatter(rgb, idx, len(x)).view(-1, n, 3)).sum(1)
        return color, weight.sum(1), (weight * t).sum(1)

    @torch.no_grad()
    def render(self, views: PosedViews, chunk: int | None = None) -> tuple[Tensor, Tensor]:
        """RGBA images (N,4,H,W) (straight colour, alpha the coverage) and depth (N,1,H,W) (along each
        ray; 0 where nothing was hit) of `views`, on the field's device, `chunk` rays at a time."""
        return self.render_views(views, chunk)

    def render_views(self, views: PosedViews, chunk: int | None = None) -> tuple[Tensor, Tensor]:
        """What `render` gives, differentiably (for objectives on whole views)."""
        device = self.density_grid.device
        chunk = chunk or (1 << 18 if device.type == "cuda" else 1 << 14)
        origins, dirs = views.rays(device)
        parts = [self.render_rays(o, d) for o, d in zip(origins.reshape(-1, 3).split(chunk),
                                                         dirs.reshape(-1, 3).split(chunk), strict=True)]
        color, acc, depth = (torch.cat(p) for p in zip(*parts, strict=True))
        n, h, w = len(views), views.height, views.width
        straight = color / acc.clamp_min(1e-6)[:, None]
        rgba = torch.cat([straight, acc[:, None]], 1).view(n, h, w, 4).permute(0, 3, 1, 2)
        return rgba.clamp(0, 1), (depth / acc.clamp_min(1e-6)).view(n, 1, h, w)

    def forward(self) -> Tensor:
        """RGBA views (B,4,H,W) of the field's own `views`, differentiably."""
        return self.render_views(self.views)[0]

    def work_elements(self) -> int:
        """Samples per pixel times the features each holds, for the memory estimate."""
        return self.batch * self.height * self.width * self.samples * (3 * self.features + 64) // 4
