"""Triangle meshes with UV coordinates: loading (OBJ, PLY, GLB/glTF via trimesh), UV unwrapping
with xatlas when a file has none, centring and scaling to a unit box.

UVs follow the OpenGL/trimesh convention: (0, 0) is the texture's bottom-left corner, v points up.
"""

from __future__ import annotations

import faulthandler
import multiprocessing as mp
import os
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from diffparam.checks import shape
from diffparam.errors import UserError, first_line

MESH_SUFFIXES = (".obj", ".ply", ".glb", ".gltf", ".off", ".stl")
"""File types `load_mesh` reads (those without UVs are unwrapped)."""


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh: positions (V,3), faces (F,3) indexing them, one UV (V,2) per vertex.

    Vertices are split where the UV atlas has a cut (a seam), as in trimesh and glTF.
    `texture` is the file's own colour texture (3,H,W) in [0,1], or None.
    """

    vertices: Tensor
    faces: Tensor
    uv: Tensor
    texture: Tensor | None = None
    name: str = "mesh"

    def __post_init__(self) -> None:
        v, f, uv = self.vertices, self.faces, self.uv
        shape("mesh vertices", v, "V,3")
        if shape("mesh faces", f, "F,3").shape[0] == 0:
            raise UserError("mesh faces must be a non-empty (F,3) array, got no faces")
        if uv.shape != (v.shape[0], 2):
            raise UserError(f"mesh needs one UV per vertex: (V,2) = ({v.shape[0]},2), got {tuple(uv.shape)}")
        if int(f.min()) < 0 or int(f.max()) >= v.shape[0]:
            raise UserError(f"mesh faces index vertices outside 0..{v.shape[0] - 1}")
        if not bool(torch.isfinite(v).all() and torch.isfinite(uv).all()):
            raise UserError("mesh has non-finite vertex positions or UVs")

    @property
    def num_faces(self) -> int:
        """How many triangles."""
        return int(self.faces.shape[0])

    def to(self, device: torch.device | str) -> Mesh:
        """The same mesh with its tensors on `device`."""
        tex = None if self.texture is None else self.texture.to(device)
        return replace(self, vertices=self.vertices.to(device), faces=self.faces.to(device),
                       uv=self.uv.to(device), texture=tex)

    def normalized(self) -> Mesh:
        """Centred on its bounding box's centre and scaled so the box's longest side is 1."""
        lo, hi = self.vertices.min(0).values, self.vertices.max(0).values
        extent = float((hi - lo).max())
        if not extent > 0:
            raise UserError(f"mesh {self.name} is flat to a point: all vertices coincide")
        return replace(self, vertices=(self.vertices - (lo + hi) / 2) / extent)

    def welded(self) -> Tensor:
        """One id per distinct position (V,): vertices split at UV seams get the same id."""
        _, inverse = np.unique(self.vertices.detach().cpu().numpy().round(6), axis=0,
                               return_inverse=True)
        return torch.as_tensor(inverse.reshape(-1), dtype=torch.long, device=self.faces.device)


ATLAS_RESOLUTION, ATLAS_PADDING = 512, 8
"""xatlas packs charts for about this many texels with this many between them: a gap of about 1%
of the texture, wide enough that bilinear lookups do not mix neighbouring charts at 128² and up."""


UNWRAP_SECONDS = 600.0
"""Longest an unwrapping may take (xatlas took 47 s for 80k faces on a 2-core CPU)."""


def _xatlas(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(np.ascontiguousarray(vertices, dtype=np.float32),
                   np.ascontiguousarray(faces, dtype=np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution, pack.padding = ATLAS_RESOLUTION, ATLAS_PADDING
    atlas.generate(pack_options=pack)
    vmapping, indices, uvs = atlas[0]
    return vertices[vmapping], indices.astype(np.int64), uvs.astype(np.float32)


def _unwrap_child(vertices: np.ndarray, faces: np.ndarray, conn: Connection) -> None:
    faulthandler.disable()  # a crash here is the parent's one-line error, not a stack dump
    conn.send(_xatlas(vertices, faces))
    conn.close()


def unwrap(vertices: np.ndarray, faces: np.ndarray, name: str = "mesh",
           seconds: float = UNWRAP_SECONDS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UV-unwrap a mesh with xatlas: (vertices (V',3), faces (F,3), uv (V',2)), vertices split at cuts.

    xatlas runs in a child process: on some large meshes it crashes (seen at 82k and 327k faces) or
    runs for ever, and either becomes a one-line error here instead of taking the program down.
    """
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    context = mp.get_context(method)
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_unwrap_child, args=(vertices, faces, send), daemon=True)
    child.start()
    send.close()
    try:
        if not receive.poll(seconds):
            raise UserError(f"unwrapping mesh {name} ({len(faces)} faces) took over {seconds:.0f} s: give it "
                            "UVs (unwrap it in a 3D tool such as Blender) or simplify it")
        return receive.recv()
    except EOFError:
        child.join()
        raise UserError(f"xatlas failed (exit {child.exitcode}) unwrapping mesh {name} ({len(faces)} faces): "
                        "give it UVs (unwrap it in a 3D tool such as Blender) or simplify it") from None
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receive.close()


def check_geometry(vertices: np.ndarray, faces: np.ndarray, name: str) -> None:
    """Raise a UserError for geometry nothing can be made of: positions that are not finite, faces
    that index missing vertices, or no triangle with an area."""
    if not np.isfinite(vertices).all():
        raise UserError(f"mesh {name} has vertex positions that are not finite numbers (NaN or infinity)")
    if faces.min(initial=0) < 0 or faces.max(initial=0) >= len(vertices):
        raise UserError(f"mesh {name} has faces that index vertices outside 0..{len(vertices) - 1}")
    corners = vertices[faces].astype(np.float64)
    areas = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    if not (areas > 0).any():
        raise UserError(f"mesh {name} is degenerate: none of its {len(faces)} triangles has an area")


def from_arrays(vertices: np.ndarray | Tensor, faces: np.ndarray | Tensor,
                uv: np.ndarray | Tensor | None = None, texture: Tensor | None = None,
                name: str = "mesh", normalize: bool = True) -> Mesh:
    """A `Mesh` from arrays; without `uv` it is unwrapped by xatlas; `normalize` fits a unit box."""
    v = np.asarray(torch.as_tensor(vertices).cpu(), dtype=np.float32)
    f = np.asarray(torch.as_tensor(faces).cpu(), dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise UserError(f"mesh {name} needs (V,3) vertices and a non-empty (F,3) face array, got "
                        f"{v.shape} and {f.shape}")
    check_geometry(v, f, name)
    if uv is None:
        v, f, uv = unwrap(v, f, name)
    mesh = Mesh(torch.from_numpy(v), torch.from_numpy(f),
                torch.as_tensor(np.asarray(uv, dtype=np.float32)), texture, name)
    return mesh.normalized() if normalize else mesh


def _texture_of(visual) -> Tensor | None:
    """The colour texture of a trimesh visual as (3,H,W) in [0,1], or None."""
    material = getattr(visual, "material", None)
    if material is None:
        return None
    image = getattr(material, "image", None)
    if image is None:
        image = getattr(material, "baseColorTexture", None)
    if image is None:
        return None
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def load_mesh(path: str | os.PathLike, normalize: bool = True) -> Mesh:
    """Read OBJ, PLY, GLB/glTF (and OFF, STL) with its UVs and texture; unwrap with xatlas if no UVs.

    A scene with several meshes is merged into one. Bad or empty files raise UserError.
    """
    import trimesh

    p = Path(path)
    if p.is_dir():
        raise UserError(f"cannot read mesh {p}: it is a folder")
    if not p.is_file():
        raise UserError(f"mesh file not found: {p}")
    if p.stat().st_size == 0:
        raise UserError(f"cannot read mesh {p}: the file is empty")
    if p.suffix.lower() not in MESH_SUFFIXES:
        raise UserError(f"cannot read mesh {p}: unknown type {p.suffix!r} (use {', '.join(MESH_SUFFIXES)})")
    try:
        loaded = trimesh.load(p, force="mesh", process=False)
    except PermissionError as exc:
        raise UserError(f"cannot read mesh {p}: permission denied") from exc
    except Exception as exc:  # trimesh raises many kinds of errors on damaged or empty files
        raise UserError(f"cannot read mesh {p}: not a readable {p.suffix[1:].upper()} file "
                        f"({type(exc).__name__}: {first_line(exc)})") from exc
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise UserError(f"cannot read mesh {p}: it holds no triangles")
    uv = getattr(loaded.visual, "uv", None)
    texture = _texture_of(loaded.visual) if uv is not None else None
    if uv is not None and len(uv) != len(loaded.vertices):
        uv = None
    return from_arrays(loaded.vertices, loaded.faces, uv, texture, p.stem, normalize)
