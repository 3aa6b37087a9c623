"""3D: feature visualization and style transfer on a mesh's texture, optimised through renderings
from random viewpoints, then exported for 3D software (OBJ + MTL + PNG, GLB) with a turntable."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from diffparam import deprecation
from diffparam.backgrounds import composite
from diffparam.checks import choice, non_negative_float, non_negative_int
from diffparam.errors import UserError
from diffparam.evaluate import objective_values
from diffparam.io import ANIMATION_SUFFIXES, AnimationWriter, check_writable, load_image
from diffparam.models.base import Model
from diffparam.models.registry import DEFAULT_MODEL, load_model
from diffparam.objectives import Activations, Objective, first_half, gram, resolve, style, style_targets
from diffparam.param.texture import TextureImage
from diffparam.recipes.style import style_layers_of
from diffparam.render import render, resolve_device
from diffparam.result import Result
from diffparam.three_d.cameras import Cameras, ViewSampler, turntable
from diffparam.three_d.export import export_glb, export_obj
from diffparam.three_d.mesh import Mesh
from diffparam.three_d.raster import render_mesh
from diffparam.three_d.shapes import mesh_from

TEXTURE_SIZE, VIEW_SIZE, STEPS, VIEWS = 1024, 512, 400, 4
TEXTURE_SPACE = "surface"
"""Where the texture is parameterized by default (see `TextureImage`): a solid field read on the
surface, seamless across UV cuts, as strong on held-out views as the UV image (BENCHMARKS.md)."""
TURNTABLE_FRAMES = 48
MOVING_AVERAGE = 0.95
"""texture_style's default: each layer's Gram matrix is a moving average over recent views."""
STYLE_LR = 0.02
"""texture_style's default learning rate: at 0.05 the Gram moving average lags the texture and
ends further from the style than the plain loss; at 0.02 it ends nearer (BENCHMARKS.md)."""
CONTENT_WEIGHT = 1.0
INITS = ("content", "noise")
PLAIN = 0.7
"""Grey level of the plain texture used as content when a mesh has none of its own."""
STYLE_VIEWS = ViewSampler(distance=(1.2, 2.0))
"""Closer views than for feature visualization: the object fills more of each view, so its Gram
matrices are more the texture's than the background's."""


def style_volume(texture_size: int) -> int:
    """texture_style's solid field: texture_size/2 voxels per side (16..256). Style statistics need
    detail down to the pixel: measured, finer fields gave much lower held-out style loss (BENCHMARKS.md),
    where feature visualization did best at texture_size/8."""
    return max(16, min(256, texture_size // 2))


def turntable_views(mesh: Mesh, frames: int = TURNTABLE_FRAMES, size: int = VIEW_SIZE,
                    device: str | torch.device = "cpu", chunk: int = 8,
                    elevation: float = 20.0) -> Iterator[Tensor]:
    """RGBA frames (4,S,S) of `mesh` with its texture circling once, rendered `chunk` at a time."""
    cams = turntable(frames, elevation=elevation)
    tex = _own_texture(mesh).to(resolve_device(device))[None]
    for start in range(0, frames, chunk):
        part = Cameras(cams.view[start:start + chunk], cams.fov[start:start + chunk])
        with torch.no_grad():
            yield from render_mesh(mesh, part, size, tex, supersample=2).cpu()


def _own_texture(mesh: Mesh) -> Tensor:
    if mesh.texture is None:
        raise UserError(f"mesh {mesh.name} has no texture")
    return mesh.texture


def check_out(out: str | os.PathLike, animation: str = "gif") -> Path:
    """Fail before long work if a textured mesh could not be written to folder `out`."""
    choice("turntable format", animation, [suffix[1:] for suffix in ANIMATION_SUFFIXES])
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"the output {folder} must be a folder, but it is a file")
    check_writable(folder / "mesh.obj")
    return folder


def write_outputs(mesh: Mesh, out: str | os.PathLike, frames: int = TURNTABLE_FRAMES,
                  size: int = VIEW_SIZE, animation: str = "gif", device: str | torch.device = "cpu"
                  ) -> dict[str, Path]:
    """Write a textured mesh to folder `out`: mesh.obj + mesh.mtl + texture.png, mesh.glb and a
    turntable (turntable.gif or .mp4, `frames` frames of size²; 0 frames: none). Each file is
    written atomically."""
    folder = check_out(out, animation)
    frames = non_negative_int("turntable frames", frames)
    texture = _own_texture(mesh)
    files: dict[str, Path] = {}
    obj, mtl, png = export_obj(mesh, folder / "mesh.obj", texture, texture_file="texture.png")
    files.update(obj=obj, mtl=mtl, texture=png, glb=export_glb(mesh, folder / "mesh.glb", texture))
    if frames > 0:
        with AnimationWriter(folder / f"turntable.{animation}", fps=16) as writer:
            for frame in turntable_views(mesh, frames, size, device):
                writer.add(frame)
        files["turntable"] = writer.path
    return files


def write_texture(result: Result, out: Path, frames: int = TURNTABLE_FRAMES, animation: str = "gif",
                  size: int | None = None, device: str | torch.device = "cpu") -> dict[str, Path]:
    """A texture result's writer: `write_outputs` of its mesh to folder `out`, the turntable's
    views `size` pixels (default: the optimised views')."""
    return write_outputs(result.mesh, out, frames, size or result.param.height, animation, device)


@deprecation.renames(views="cameras")
def held_out_views(mesh: Mesh, n: int = 8, size: int = 224, seed: int = 12345,
                   cameras: ViewSampler | None = None, background: float = 0.5,
                   device: str | torch.device = "cpu") -> Tensor:
    """`n` views (n,3,S,S) of the textured `mesh` from random `cameras` drawn with `seed` (pick one
    the optimisation did not use), over a plain grey background: for judging a texture."""
    cams = (cameras or ViewSampler()).sample(n, torch.Generator().manual_seed(seed))
    tex = _own_texture(mesh).to(resolve_device(device))[None]
    with torch.no_grad():
        rgba = render_mesh(mesh, cams, size, tex, supersample=2)
    return composite(rgba, torch.full_like(rgba[:, :3], background)).cpu()


def _texture_param(mesh: Mesh, texture_size: int, view_size: int, views: int, seed: int,
                   supersample: int, cameras: ViewSampler | None, **kwargs: Any) -> TextureImage:
    return TextureImage(mesh, texture_size, view_size, views=views, cameras=cameras, supersample=supersample,
                        seed=seed, generator=torch.Generator().manual_seed(seed), **kwargs)


_OLD_OUTPUT = ("out", "turntable_frames", "animation")
"""texture_feature's and texture_style's old keywords that wrote the files themselves."""


def _old_output(deprecated: dict[str, Any], where: str) -> dict[str, Any]:
    """The old output keywords the caller passed (with a warning); checks the folder early."""
    old = {k: deprecated.pop(k) for k in _OLD_OUTPUT if k in deprecated}
    if old:
        deprecation.warn(f"{where}(out=...)", f"{where}(...).save(out, frames=..., animation=...)",
                         stacklevel=4)
    deprecation.no_more(deprecated, where)
    if old.get("out") is not None:
        check_out(old["out"], old.get("animation", "gif"))
    return old


def _finish(result: Result, param: TextureImage, old: dict[str, Any], device: str | torch.device) -> Result:
    """The recipe's Result: the texture as its image, the textured mesh in its extras."""
    param = param.cpu()
    mesh = param.as_mesh()
    result.param = param
    result.images = mesh.texture[None]
    result.extras.update(mesh=mesh, texture=mesh.texture)
    result.writer = write_texture
    if old.get("out") is not None:
        result.save(old["out"], frames=old.get("turntable_frames", TURNTABLE_FRAMES),
                    animation=old.get("animation", "gif"), device=device)
    return result


def texture_feature(
    mesh: Mesh | str | os.PathLike,
    objective: Objective | str,
    model: Model | str = DEFAULT_MODEL,
    *,
    texture_size: int = TEXTURE_SIZE,
    view_size: int = VIEW_SIZE,
    steps: int = STEPS,
    views: int = VIEWS,
    cameras: ViewSampler | None = None,
    lr: float | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    transforms: str | Callable | None = "standard",
    background: str | None = "noise",
    supersample: int = 2,
    spectrum_decay: float = 1.0,
    texture_space: str = TEXTURE_SPACE,
    volume_size: int | None = None,
    **deprecated: Any,
) -> Result:
    """Feature visualization on a surface: optimise `mesh`'s texture so that `views` random views
    per step (from `cameras`, default `ViewSampler()`, composited over random `background`s)
    maximise `objective`.

    `mesh` is a `Mesh`, a mesh file or "shape:NAME" (sphere, torus, knot). `spectrum_decay` is the
    exponent of the texture's 1/f Fourier prior; `texture_space` where it lives ("surface": a solid
    field of `volume_size`³ voxels, default texture_size/8, read at each texel's 3D point:
    seamless; "uv": the UV image), see `TextureImage`. The Result's image is the texture and its
    `mesh` the textured mesh; `save(folder, frames=..., animation=...)` writes OBJ + MTL + PNG,
    GLB and a turntable (`write_outputs`).
    """
    old = _old_output(deprecated, "texture_feature")
    net = load_model(model)
    obj = resolve(objective, net)
    surface = mesh_from(mesh)
    param = _texture_param(surface, texture_size, view_size, views, seed, supersample, cameras,
                           spectrum_decay=spectrum_decay, space=texture_space, volume_size=volume_size)
    result = render(net, obj, param=param, steps=steps, lr=lr, seed=seed, device=device,
                    progress=progress, transforms=transforms, background=background)
    return _finish(result, param, old, device)


def paired_content(layer: str, weight: float = CONTENT_WEIGHT) -> Objective:
    """Minus `weight` · mean (A − R)² / mean R² on `layer`, where image i of the first half (A) is
    compared with image i of the second half (R, its reference view, held fixed)."""

    def fn(acts: Activations) -> Tensor:
        t = acts[layer]
        half = t.shape[0] // 2
        a, r = t[:half], t[half:].detach()
        loss = (a - r).pow(2).flatten(1).mean(1) / r.pow(2).flatten(1).mean(1).clamp_min(1e-12)
        return torch.cat([-weight * loss, loss.new_zeros(t.shape[0] - half)])

    return Objective(fn, [layer], f"content({layer}, paired)")


def style_loss(model: Model, targets: Mapping[str, Tensor], images: Tensor) -> tuple[float, float]:
    """Plain Gram style loss of `images` (B,3,H,W): the mean over images of each image's loss, and
    the loss of their Gram matrices averaged (the style the images show together)."""
    per_image = -float(objective_values(model, style(dict(targets)), images).mean())
    with torch.no_grad():
        acts = model.activations(images.to(model.device), list(targets))
    pooled = 0.0
    for layer, target in targets.items():
        g = gram(acts[layer].float()).mean(0).cpu()
        pooled += float((g - target).abs().mean() / target.abs().mean().clamp_min(1e-12))
    return per_image, pooled


@deprecation.renames(decay="moving_average")
def texture_style(
    mesh: Mesh | str | os.PathLike,
    style_image: str | os.PathLike | Tensor,
    model: Model | str = DEFAULT_MODEL,
    *,
    style_layers: Sequence[str] | None = None,
    style_weights: Mapping[str, float] | None = None,
    content_layer: str | None = None,
    content_weight: float | None = None,
    moving_average: float | None = MOVING_AVERAGE,
    init: str | None = None,
    texture_size: int = TEXTURE_SIZE,
    view_size: int = VIEW_SIZE,
    style_size: int | None = None,
    steps: int = STEPS,
    views: int = VIEWS,
    cameras: ViewSampler | None = None,
    lr: float | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    background: str | None = "fourier",
    supersample: int = 2,
    spectrum_decay: float = 1.0,
    texture_space: str = TEXTURE_SPACE,
    volume_size: int | None = None,
    **deprecated: Any,
) -> Result:
    """3D style transfer: restyle `mesh`'s texture after `style_image` (file or (3,H,W) tensor).

    Each step renders `views` random views (from `cameras`, default `STYLE_VIEWS`) with the
    optimised texture and the same views with the content texture, both over the same random
    `background`; the loss is the style loss of the optimised views + `content_weight` · their
    feature distance to the content views on `content_layer`. With `moving_average` (default
    0.95) the style loss uses moving averages of the Gram matrices over recent views (forward
    value the average, gradient to the current view), so no single view has to carry all of the
    style; None gives the plain per-view loss. `style_weights` weigh the style layers (default 1).
    Layers default to the model's
    (diffparam.recipes.style); `lr` to `STYLE_LR`.

    The content texture is the mesh's own; a mesh without one gets a plain grey texture, which
    (views being unlit) says nothing but "stay grey", so there `content_weight` defaults to 0 and
    `init` to "noise" (else 1.0 and "content": start from the content texture). `texture_space`
    and `spectrum_decay` are as for `texture_feature`; `volume_size` defaults to
    `style_volume(texture_size)`, finer than for feature visualization. With a surface field, the
    content start is a fixed base that the learnt field adds to. The Result is as
    `texture_feature`'s.
    """
    old = _old_output(deprecated, "texture_style")
    surface = mesh_from(mesh)
    textured = surface.texture is not None
    init = choice("start", init or ("content" if textured else "noise"), INITS)
    content_weight = (CONTENT_WEIGHT if textured else 0.0) if content_weight is None else content_weight
    content_weight = non_negative_float("content_weight", content_weight)
    net = load_model(model)
    layers, layer = style_layers_of(net, style_layers, content_layer)
    style_img = load_image(style_image, style_size or view_size)
    content_texture = surface.texture if textured else torch.full((3, 16, 16), PLAIN)
    # Without a content term the reference views would go unused: leave them out (half the work).
    reference = content_texture if content_weight > 0 else None
    param = _texture_param(surface, texture_size, view_size, views, seed, supersample, cameras or STYLE_VIEWS,
                           init=content_texture if init == "content" else None, reference=reference,
                           spectrum_decay=spectrum_decay, space=texture_space,
                           volume_size=style_volume(texture_size) if volume_size is None else volume_size)
    net.to("cpu")
    targets = style_targets(net, style_img, layers)
    obj = style(targets, style_weights, moving_average=moving_average)
    if reference is not None:
        obj = first_half(obj) + paired_content(layer, content_weight)
    result = render(net, obj, param=param, steps=steps, lr=STYLE_LR if lr is None else lr, seed=seed,
                    device=device, progress=progress, transforms=None, background=background)
    return _finish(result, param, old, device)


__getattr__ = deprecation.module_getattr(__name__, {
    "TextureResult": "diffparam.result:Result",
    "STYLE_DECAY": "diffparam.recipes.texture:MOVING_AVERAGE",
})
