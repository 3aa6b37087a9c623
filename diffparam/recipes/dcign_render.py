"""The differentiable renderer as a DC-IGN's decoder (issue 18): the encoder's code is azimuth, elevation
and light angle in degrees (`train.dcign.RenderEncoder`), and decoding renders the image's object, which
is given (its name in the data), at those angles with `render_views(..., differentiable=True)`.

Trained from the images alone (no true angles): the loss is the squared difference between each image
and its render, both blurred by a Gaussian that narrows to nothing over the first `blur_steps` steps
(coarse to fine: a photometric loss of a turning texture has local minima a blur smooths away). In a
mini-batch where one factor varies, the other two units are replaced by their batch mean in the forward
pass (the mean gets the reconstruction's gradient) and pulled towards it (DC-IGN's batch structure).
Texture and shading move with the angles (`three_d.raster.refine`), and so does the outer silhouette
(`three_d.raster.silhouette_gradient`); where the object hides part of itself, the edge gives none.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from diffparam.checks import int_in
from diffparam.errors import UserError, first_line
from diffparam.io import atomic_path
from diffparam.recipes.dcign_data import FACTORS, TEXTURES, VARIES, DcignData, render_views, texture
from diffparam.three_d.mesh import Mesh
from diffparam.three_d.shapes import is_shape, mesh_from
from diffparam.train.dcign import RenderEncoder

Objects = dict[str, tuple[Mesh, Tensor]]
"""Object name (as the data names it) → its mesh and texture (1,3,T,T)."""
OBJECTS = "objects.pt"
BLUR = 0.1
"""The loss's starting blur, as a fraction of the image side (the Gaussian's standard deviation)."""
BLUR_STEPS = 1000
"""Steps over which the blur narrows to none (counted from the run's start, so a resumed run agrees)."""


def scene_objects(data: DcignData, meshes: Sequence[Mesh | str | os.PathLike] = ()) -> Objects:
    """The mesh and texture of every object the data names: "MESH/TEXTURE" (a texture by name) or "MESH"
    (its own texture); a mesh is one of `meshes` (by name), or where the data says it came from (a data
    folder that does not say: the sample shape of that name)."""
    given = {m.name: m for m in (mesh_from(x) for x in meshes)}
    names = sorted({n for batch in data.objects for n in batch})
    out: Objects = {}
    if "?" in names:
        raise UserError("the data does not name its objects (`objects` in batches.json): a rendering "
                        "decoder needs them")
    for name in names:
        mesh_name, _, tex = name.partition("/")
        if mesh_name not in given:
            if data.sources is not None and mesh_name in data.sources:
                given[mesh_name] = mesh_from(data.sources[mesh_name])
            elif data.sources is None and is_shape(mesh_name):
                given[mesh_name] = mesh_from(f"shape:{mesh_name}")
            else:
                raise UserError(f"the data's object {name!r} has no known mesh: give it with --mesh")
        mesh = given[mesh_name]
        if tex and tex not in TEXTURES:
            raise UserError(f"the data's object {name!r} names an unknown texture ({', '.join(TEXTURES)})")
        if not tex and mesh.texture is None:
            raise UserError(f"the data's object {name!r} has no texture: give its mesh with one (--mesh)")
        out[name] = (mesh, texture(tex) if tex else mesh.texture[None].float())
    used = {name.partition("/")[0] for name in names}
    unused = sorted(m for m in (mesh_from(x).name for x in meshes) if m not in used)
    if unused:
        raise UserError(f"--mesh {', '.join(unused)}: no object of the data has that name "
                        f"({', '.join(sorted(used))})")
    return out


def object_fingerprints(objects: Objects) -> dict[str, str]:
    """A short hash of each object's geometry and texture, for a run's settings: resuming with other
    meshes under the same names is refused."""
    out = {}
    for name, (mesh, tex) in sorted(objects.items()):
        h = hashlib.sha256()
        for t in (mesh.vertices, mesh.faces, tex):
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        out[name] = h.hexdigest()[:16]
    return out


def save_objects(objects: Objects, path: str | os.PathLike) -> None:
    """Write the objects' meshes and textures (a run folder keeps them, to decode without the data)."""
    state = {name: {"vertices": m.vertices, "faces": m.faces, "uv": m.uv, "texture": t, "mesh": m.name}
             for name, (m, t) in objects.items()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_objects(path: str | os.PathLike) -> Objects:
    """The objects `save_objects` wrote."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return {name: (Mesh(s["vertices"], s["faces"], s["uv"], name=s["mesh"]), s["texture"])
                for name, s in state.items()}
    except (OSError, RuntimeError, EOFError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"cannot read the run's objects {path}: {first_line(exc)}") from exc


def render_codes(objects: Objects, names: Sequence[str], codes: Tensor, size: int, channels: int,
                 differentiable: bool = False) -> Tensor:
    """Images (N, C, size, size): object `names[i]` rendered at `codes[i]` (azimuth, elevation, light
    degrees), on the codes' device; differentiable in the codes when asked (interior only)."""
    dev = codes.device
    order, parts = [], []
    for name in dict.fromkeys(names):
        idx = [i for i, n in enumerate(names) if n == name]
        mesh, tex = objects[name]
        parts.append(render_views(mesh.to(dev), tex.to(dev), codes[idx], size, channels == 1, differentiable))
        order += idx
    made = torch.cat(parts)
    return made[torch.argsort(torch.tensor(order, device=dev))]


def blur(images: Tensor, sigma: float) -> Tensor:
    """Images blurred by a separable Gaussian of standard deviation `sigma` px (none below 0.3 px)."""
    if sigma < 0.3:
        return images
    radius = int(3 * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = (k / k.sum()).repeat(images.shape[1], 1, 1, 1)
    out = F.conv2d(images, k.view(-1, 1, 1, len(x)), padding=(0, radius), groups=images.shape[1])
    return F.conv2d(out, k.view(-1, 1, len(x), 1), padding=(radius, 0), groups=images.shape[1])


def render_step(net: RenderEncoder, opt: torch.optim.Optimizer, objects: Objects, data: DcignData,
                groups: int, plain: bool, pull: float, start_blur: float, blur_steps: int,
                device: torch.device) -> Callable[[int, torch.Generator], Tensor]:
    """One training step of the renderer-decoder: `groups` mini-batches encoded, rendered, compared."""
    images = data.images.to(device)
    active = torch.zeros(len(VARIES), len(FACTORS), dtype=torch.bool)
    for k in range(len(FACTORS)):
        active[k, k] = True  # an object batch: all three are fixed
    active, varies = active.to(device), data.varies.to(device)

    def step(i: int, generator: torch.Generator) -> Tensor:
        pick = torch.randint(len(images), (groups,), generator=generator)
        x = images[pick.to(device)]  # (G, B, C, S, S)
        z = net.encode(x.flatten(0, 1))[0].view(*x.shape[:2], -1)
        loss = z.new_zeros(())
        if not plain:
            mask = ~active[varies[pick.to(device)]][:, None, :].expand_as(z)
            mean = z.mean(1, keepdim=True)
            loss = 0.5 * pull * (torch.deg2rad(z - mean.detach()).pow(2) * mask).sum()
            z = torch.where(mask, mean.expand_as(z), z)
        names = [data.objects[k][j] for k in pick.tolist() for j in range(x.shape[1])]
        made = render_codes(objects, names, z.flatten(0, 1), data.size, data.channels, differentiable=True)
        sigma = start_blur * data.size * max(0.0, 1 - i / blur_steps)
        diff = blur(made, sigma) - blur(x.flatten(0, 1), sigma)
        loss = (loss + diff.pow(2).sum()) / len(made)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def refine_codes(objects: Objects, names: Sequence[str], images: Tensor, codes: Tensor,
                 ranges: Sequence[Sequence[float]], steps: int = 60, lr: float = 1.0,
                 start_blur: float = BLUR, starts: int = 0) -> Tensor:
    """Codes (N, 3) fitted to `images` (N, C, S, S) by Adam on the rendering loss, from `codes` (the
    encoder's guess), kept inside `ranges`; the blur narrows to none over the first half (analysis by
    synthesis: what the renderer allows at test time, on any object whose mesh is known). `starts` > 0
    also descends from that many azimuths spread evenly over its range (the guess's other angles) and
    keeps, per image, the fit with the lowest unblurred loss: a guard against local minima."""
    low, high = (codes.new_tensor([r[i] for r in ranges]) for i in (0, 1))
    n, k = len(codes), int_in("starts", starts, 0, 360) + 1
    tries = codes.detach().repeat(k, 1)  # hypothesis h of image i at row h * n + i
    slots = torch.arange(k - 1, dtype=codes.dtype, device=codes.device) + 0.5
    tries[n:, 0] = (low[0] + (high[0] - low[0]) * slots / max(1, k - 1)).repeat_interleave(n)
    fitted = tries.clone().requires_grad_(True)
    names = list(names) * k
    opt = torch.optim.Adam([fitted], lr=lr)
    size, channels = images.shape[-1], images.shape[1]
    targets = images.repeat(k, 1, 1, 1)
    for i in range(steps):
        sigma = start_blur * size * max(0.0, 1 - 2 * i / steps)
        made = render_codes(objects, names, fitted, size, channels, differentiable=True)
        loss = (blur(made, sigma) - blur(targets, sigma)).pow(2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            fitted.copy_(torch.maximum(torch.minimum(fitted, high), low))
    fitted = fitted.detach()
    if k == 1:
        return fitted
    with torch.no_grad():
        error = (render_codes(objects, names, fitted, size, channels) - targets).pow(2).flatten(1).sum(1)
    best = error.view(k, n).argmin(0)
    return fitted.view(k, n, -1)[best, torch.arange(n, device=fitted.device)]
