"""`TextureImage`: a mesh's texture, parameterized like an image, seen through rasterised views.

The texture is either read from a solid colour field at each texel's 3D surface point (`space`
"surface", the default: a `SolidField`, 1/f spectrum in 3D, decorrelated colour) or a UV-space
`FourierImage` ("uv"). forward() renders `views` views of the mesh from random cameras (drawn from
the parameterization's own seeded generator) as RGBA, alpha = coverage; `render` composites them
over random backgrounds like any RGBA image, and the gradient reaches the texture through the UV
lookup.

Why "surface": a UV image's low frequencies are independent on either side of a UV seam, so the
seams show even when optimised through views (seam ÷ interior colour jump 1.9 on the knot at full
size); a field in 3D gives both sides of a seam the same colour by construction (1.15, against
1.12 for a texture baked from 3D position), with the same activation on held-out views
(BENCHMARKS.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from diffparam import deprecation
from diffparam.checks import IMAGE_SIZES, choice, image_size, int_in, positive_int, shape
from diffparam.errors import UserError
from diffparam.param.base import Parameterization
from diffparam.param.fourier import FourierImage
from diffparam.param.surface import SolidField, grid_points
from diffparam.three_d.cameras import Cameras, ViewSampler, turntable
from diffparam.three_d.mesh import Mesh
from diffparam.three_d.raster import shade
from diffparam.three_d.uvmap import coverage, pad, padding_index, position_map

MAX_TEXTURE = 8192
MAX_VIEWS = 256
"""Most views rendered per step (4 is usual)."""
SPACES = ("surface", "uv")


def default_volume(texture_size: int) -> int:
    """The solid field's voxels per side for a texture of `texture_size`²: an eighth, 16..128."""
    return max(16, min(128, texture_size // 8))


def _resized(texture: Tensor, size: int, what: str) -> Tensor:
    shape(what, texture, "3,H,W")
    return F.interpolate(texture[None].float(), size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False).clamp(0, 1)


class TextureImage(Parameterization):
    """Views (B,4,V,V) of `mesh` wearing an optimisable texture (texture_size²), RGBA (alpha: coverage).

    With gradients enabled, every forward() draws `views` new cameras from `cameras` (a
    `ViewSampler`) with a generator seeded by `seed`; without gradients (previews, final images)
    it shows `views` fixed turntable views, so looking at the result never changes the random
    sequence. `init` (3,H,W) starts from a given texture instead of grey noise; `supersample`
    anti-aliases (rasterises at that multiple of the view size); `spectrum_decay` is the exponent of
    the texture spectrum's 1/f prior (lower: less smooth, see BENCHMARKS.md).

    `space` "surface" reads the texture from a `SolidField` of `volume_size`³ voxels (default
    `default_volume(texture_size)`) at each texel's 3D point (`uvmap.position_map`), so it is
    seamless; it needs UVs inside [0,1]. An `init` texture is then a fixed base (in logit space)
    that the field, starting near zero, adds to. `space` "uv" optimises the UV image itself.

    For style transfer, `reference` (3,H,W) is a fixed texture rendered from the same cameras:
    forward() then returns 2B views, the B optimised ones first, and each view shares its random
    background with its reference view when `render` composites them (`copies` 2).

    Cameras are drawn on the host and rasterisation synchronises with it, so a render of this
    parameterization runs eagerly (`graph_safe` False).
    """

    graph_safe = False

    @deprecation.renames(batch="views", decay="spectrum_decay")
    def __init__(
        self,
        mesh: Mesh,
        texture_size: int = 1024,
        view_size: int = 512,
        views: int = 4,
        cameras: ViewSampler | None = None,
        supersample: int = 2,
        seed: int = 0,
        init: Tensor | None = None,
        reference: Tensor | None = None,
        sd: float = 0.01,
        spectrum_decay: float = 1.0,
        decorrelate: bool = True,
        generator: torch.Generator | None = None,
        space: str = "surface",
        volume_size: int | None = None,
        background: object = None,
    ) -> None:
        if isinstance(views, ViewSampler):
            deprecation.warn("TextureImage(views=ViewSampler(...))", "cameras=ViewSampler(...)")
            views, cameras = 4, views
        if background is not None:
            raise UserError("TextureImage no longer composites its views over a background: it returns "
                            "RGBA, and render composites it (render(..., background=...))")
        per_step = int_in("views", views, 1, MAX_VIEWS)
        view_size = image_size(view_size, "view_size")[0]
        super().__init__(view_size, view_size, per_step * (1 if reference is None else 2), 4)
        self.views = per_step
        self.copies = 1 if reference is None else 2
        self.texture_size = int_in("texture_size", texture_size, IMAGE_SIZES[0], MAX_TEXTURE, "pixels")
        self.space = choice("texture space", space, SPACES)
        self.supersample = positive_int("supersample", supersample)
        self.cameras = cameras or ViewSampler()
        self.mesh_name = mesh.name
        size = self.texture_size
        # Edge padding, when the UVs lie in one copy of the texture (no tiling).
        flat = bool(((mesh.uv >= 0) & (mesh.uv <= 1)).all())
        if space != "uv" and not flat:
            raise UserError(f"texture space {space!r} needs UVs inside [0,1]; mesh {mesh.name} tiles its "
                            "texture (use space 'uv')")
        self.texture: FourierImage | None = None
        self.field: SolidField | None = None
        start = None if init is None else _resized(init, size, "an initial texture")
        points = base = None
        if space == "uv":
            if start is None:
                self.texture = FourierImage(size, sd=sd, spectrum_decay=spectrum_decay,
                                            decorrelate=decorrelate, generator=generator)
            else:
                self.texture = FourierImage.from_image(start, spectrum_decay=spectrum_decay,
                                                          decorrelate=decorrelate)
            index = padding_index(coverage(mesh.uv, mesh.faces, size)) if flat else None
        else:
            positions, _, index = position_map(mesh.vertices, mesh.faces, mesh.uv, size)
            vsize = volume_size if volume_size is not None else default_volume(size)
            self.field = SolidField(vsize, sd=sd, spectrum_decay=spectrum_decay, decorrelate=decorrelate,
                                    generator=generator)
            points = grid_points(positions.float(), self.field.size)
            # The initial texture stays, fixed, under the learnt field (which starts near zero).
            base = None if start is None else torch.logit(start.clamp(1e-4, 1 - 1e-4))
        self.register_buffer("base", base, persistent=False)
        self.register_buffer("points", points, persistent=False)
        self.register_buffer("padding", index, persistent=False)
        ref = None if reference is None else _resized(reference, size, "a reference texture")
        self.register_buffer("reference", ref, persistent=False)
        self.register_buffer("vertices", mesh.vertices.float().clone(), persistent=False)
        self.register_buffer("faces", mesh.faces.long().clone(), persistent=False)
        self.register_buffer("uv", mesh.uv.float().clone(), persistent=False)
        self.camera_generator = torch.Generator().manual_seed(int(seed))
        self.preview = turntable(self.views)

    @property
    def views_per_step(self) -> int:
        """Deprecated name of `views`."""
        deprecation.warn("TextureImage.views_per_step", "TextureImage.views")
        return self.views

    def work_elements(self) -> int:
        """The texture and its padding, and per view the supersampled raster (depth, face ids,
        barycentrics, UVs and the sampled colours)."""
        texels = 8 * 3 * self.texture_size ** 2
        raster = 16 * self.batch * (self.height * self.supersample) ** 2
        return texels + raster + 8 * (self.field.size ** 3 * 3 if self.field is not None else 0)

    def texture_image(self) -> Tensor:
        """The texture (1,3,T,T) in [0,1], differentiably (v up: row 0 is v = 1); texels outside
        the UV charts repeat the nearest chart texel (edge padding), so seams show no border line."""
        if self.field is None:
            assert self.texture is not None
            tex = self.texture()
            return tex if self.padding is None else pad(tex, self.padding)
        logits = self.field.logits(self.points)
        if self.base is not None:
            logits = logits + self.base
        return pad(torch.sigmoid(logits), self.padding)

    def render_views(self, cameras: Cameras, texture: Tensor | None = None,
                     size: int | None = None) -> Tensor:
        """RGBA views (B,4,S,S) of the mesh through `cameras` with `texture` (default: this one)."""
        tex = self.texture_image() if texture is None else texture.to(self.vertices.device)
        return shade(self.vertices, self.faces, self.uv, cameras, size or self.height, tex, self.supersample)

    def forward(self, cameras: Cameras | None = None) -> Tensor:
        """RGBA views in [0,1]: from random cameras when optimising, from the turntable otherwise."""
        if cameras is None:
            cameras = (self.cameras.sample(self.views, self.camera_generator)
                       if torch.is_grad_enabled() else self.preview)
        tex = self.texture_image()
        if self.reference is None:
            return self.render_views(cameras, tex)
        # One rasterisation, both textures in one lookup.
        both = self.render_views(cameras, torch.cat([tex, self.reference], 1))
        alpha = both[:, 6:]
        return torch.cat([torch.cat([both[:, :3], alpha], 1), torch.cat([both[:, 3:6], alpha], 1)])

    def as_mesh(self) -> Mesh:
        """The mesh (on the CPU) wearing the current texture."""
        with torch.no_grad():
            tex = self.texture_image()[0].detach().cpu()
        return Mesh(self.vertices.cpu(), self.faces.cpu(), self.uv.cpu(), tex, self.mesh_name)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, texture_size={self.texture_size}, faces={len(self.faces)}, "
                f"space={self.space}")
