"""Textured meshes out to files 3D software opens: OBJ + MTL + PNG, and a single GLB (via trimesh)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image
from torch import Tensor

from diffparam.checks import shape
from diffparam.errors import UserError
from diffparam.io import atomic_path, check_writable, to_uint8
from diffparam.three_d.mesh import Mesh

if TYPE_CHECKING:
    import trimesh


def to_trimesh(mesh: Mesh, texture: Tensor | None = None, material: str = "texture") -> trimesh.Trimesh:
    """A `trimesh.Trimesh` with UVs and `texture` (3,H,W) in [0,1] (default: the mesh's own) as an
    unlit-white material, so software shows the texture's colours unchanged."""
    import trimesh
    from trimesh.visual.material import SimpleMaterial

    texture = mesh.texture if texture is None else texture
    if texture is None:
        raise UserError(f"mesh {mesh.name} has no texture to export: pass one")
    shape("a texture", texture, "3,H,W")
    image = Image.fromarray(to_uint8(texture))
    white = (255, 255, 255, 255)
    mat = SimpleMaterial(image=image, diffuse=white, ambient=white, specular=(0, 0, 0, 255), name=material)
    visual = trimesh.visual.TextureVisuals(uv=mesh.uv.detach().cpu().numpy(), material=mat)
    return trimesh.Trimesh(mesh.vertices.detach().cpu().numpy(), mesh.faces.cpu().numpy(),
                           visual=visual, process=False)


def export_obj(mesh: Mesh, path: str | os.PathLike, texture: Tensor | None = None,
               texture_file: str | None = None) -> list[Path]:
    """Write `path` (.obj) with its material `STEM.mtl` and texture PNG (`texture_file`, default
    `STEM.png`) beside it, atomically; the OBJ appears last, when the files it names are in place.

    Returns [obj, mtl, png].
    """
    from trimesh.exchange.obj import export_obj as trimesh_obj

    obj = Path(path)
    if obj.suffix.lower() != ".obj":
        raise UserError(f"an OBJ file must end in .obj, got {obj}")
    check_writable(obj)
    mtl, png = obj.with_suffix(".mtl"), obj.with_name(texture_file or f"{obj.stem}.png")
    if png.suffix.lower() != ".png" or png.parent != obj.parent:
        raise UserError(f"the texture file must be a .png name beside the OBJ, got {texture_file}")
    text, extra = trimesh_obj(to_trimesh(mesh, texture, material=png.stem), include_texture=True,
                              return_texture=True, mtl_name=mtl.name)
    # trimesh names the texture after the material.
    if set(extra) != {mtl.name, png.name}:
        raise RuntimeError(f"unexpected OBJ side files from trimesh: {sorted(extra)}")
    for name in (png.name, mtl.name):
        with atomic_path(obj.parent / name) as tmp:
            tmp.write_bytes(extra[name])
    with atomic_path(obj) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return [obj, mtl, png]


def export_glb(mesh: Mesh, path: str | os.PathLike, texture: Tensor | None = None) -> Path:
    """Write a binary glTF (.glb) with the texture embedded, atomically."""
    glb = Path(path)
    if glb.suffix.lower() != ".glb":
        raise UserError(f"a GLB file must end in .glb, got {glb}")
    data = to_trimesh(mesh, texture).export(file_type="glb")
    with atomic_path(glb) as tmp:
        tmp.write_bytes(data)
    return glb
