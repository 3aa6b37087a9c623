"""Procedural sample meshes with UVs, made in code (nothing downloaded): for demos and tests."""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np

from diffparam.checks import choice, int_in
from diffparam.three_d.mesh import Mesh, from_arrays, load_mesh


def _resolution(value: object) -> int:
    return int_in("resolution", value, 4, 1024)


def _grid_faces(rows: int, cols: int, stride: int) -> np.ndarray:
    """Two triangles per cell of a (rows+1)×(cols+1) vertex grid laid out row-major with `stride`."""
    i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    a = (i * stride + j).ravel()
    b = a + 1
    c = a + stride
    d = c + 1
    return np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)])


def _drop_degenerate(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    p = vertices[faces]
    area = np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)
    return faces[area > 1e-12]


def sphere(resolution: int = 32) -> Mesh:
    """A UV sphere: longitude/latitude UVs (equirectangular), one seam along a meridian."""
    n = _resolution(resolution)
    theta = np.linspace(0, math.pi, n + 1)[:, None]  # from the north pole
    phi = np.linspace(0, 2 * math.pi, 2 * n + 1)[None, :]
    xyz = np.stack([np.sin(theta) * np.cos(phi), np.cos(theta) + 0 * phi,
                    -np.sin(theta) * np.sin(phi)], -1).reshape(-1, 3)
    uv = np.stack([np.broadcast_to(phi / (2 * math.pi), (n + 1, 2 * n + 1)),
                   np.broadcast_to(1 - theta / math.pi, (n + 1, 2 * n + 1))], -1).reshape(-1, 2)
    faces = _drop_degenerate(xyz, _grid_faces(n, 2 * n, 2 * n + 1))
    return from_arrays(xyz, faces, uv, name="sphere")


def torus(resolution: int = 32, ratio: float = 0.4) -> Mesh:
    """A torus (tube radius `ratio` of the ring's): UVs are the two angles, seams where they wrap."""
    n = _resolution(resolution)
    a = np.linspace(0, 2 * math.pi, 2 * n + 1)[:, None]  # around the ring
    b = np.linspace(0, 2 * math.pi, n + 1)[None, :]  # around the tube
    r = 1 + ratio * np.cos(b)
    xyz = np.stack([r * np.cos(a), ratio * np.sin(b) + 0 * a, -r * np.sin(a)], -1).reshape(-1, 3)
    uv = np.stack([np.broadcast_to(a / (2 * math.pi), (2 * n + 1, n + 1)),
                   np.broadcast_to(b / (2 * math.pi), (2 * n + 1, n + 1))], -1).reshape(-1, 2)
    return from_arrays(xyz, _grid_faces(2 * n, n, n + 1), uv, name="torus")


def knot(resolution: int = 32, thickness: float = 0.45) -> Mesh:
    """A trefoil-knot tube (chiral, no mirror symmetry), UV-unwrapped by xatlas into an atlas of charts."""
    n = _resolution(resolution)
    along, around = 8 * n, max(6, n // 2)
    t = np.linspace(0, 2 * math.pi, along, endpoint=False)
    curve = np.stack([np.sin(t) + 2 * np.sin(2 * t), np.cos(t) - 2 * np.cos(2 * t), -np.sin(3 * t)], -1)
    d1 = np.stack([np.cos(t) + 4 * np.cos(2 * t), -np.sin(t) + 4 * np.sin(2 * t), -3 * np.cos(3 * t)], -1)
    d2 = np.stack([-np.sin(t) - 8 * np.sin(2 * t), -np.cos(t) + 8 * np.cos(2 * t), 9 * np.sin(3 * t)], -1)
    tangent = d1 / np.linalg.norm(d1, axis=1, keepdims=True)
    binormal = np.cross(d1, d2)
    binormal /= np.linalg.norm(binormal, axis=1, keepdims=True)
    normal = np.cross(binormal, tangent)
    s = np.linspace(0, 2 * math.pi, around, endpoint=False)[None, :, None]
    xyz = curve[:, None] + thickness * (np.cos(s) * normal[:, None] + np.sin(s) * binormal[:, None])
    i, j = np.meshgrid(np.arange(along), np.arange(around), indexing="ij")
    a = (i * around + j).ravel()
    b = (i * around + (j + 1) % around).ravel()
    c = (((i + 1) % along) * around + j).ravel()
    d = (((i + 1) % along) * around + (j + 1) % around).ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([b, d, c], 1)])
    return from_arrays(xyz.reshape(-1, 3), faces, name="knot")


def blob(seed: int = 0, resolution: int = 32) -> Mesh:
    """A random lumpy shape, `blobSEED`: a sphere stretched along random axes and pushed out by a few
    random low-frequency waves (no symmetry in general); the sphere's UVs. Same seed, same shape."""
    rng = np.random.default_rng(int_in("blob seed", seed, 0, 10**9))
    ball = sphere(resolution)
    d = ball.vertices.double().numpy()
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    waves = rng.normal(size=(4, 3)) * rng.uniform(1.0, 2.5, (4, 1))
    radius = 1 + (rng.uniform(0.06, 0.16, 4) * np.cos(d @ waves.T + rng.uniform(0, 2 * math.pi, 4))).sum(1)
    axes, _ = np.linalg.qr(rng.normal(size=(3, 3)))  # a random rotation of the stretch axes
    xyz = ((d * radius[:, None]) @ axes * rng.uniform(0.7, 1.3, 3)) @ axes.T
    return from_arrays(xyz, ball.faces.numpy(), ball.uv.numpy(), name=f"blob{seed}")


SHAPES: dict[str, Callable[..., Mesh]] = {"sphere": sphere, "torus": torus, "knot": knot}
"""The sample meshes by name; also "blobN" (N = 0, 1, ...): `blob` with seed N."""


def is_shape(name: str) -> bool:
    """Whether `shape` knows `name` (a sample shape, or "blobN")."""
    return name in SHAPES or (name.startswith("blob") and name[4:].isdigit())


def shape(name: str, resolution: int = 32) -> Mesh:
    """A sample mesh by name ("sphere", "torus", "knot", or "blobN": a random blob, seed N)."""
    if name not in SHAPES and is_shape(name):
        return blob(int(name[4:]), resolution)
    return SHAPES[choice("sample shape", name, SHAPES)](resolution)


def mesh_from(source: Mesh | str | os.PathLike) -> Mesh:
    """A mesh from a `Mesh`, a sample shape named "shape:NAME" (e.g. "shape:knot") or a mesh file."""
    if isinstance(source, Mesh):
        return source
    text = os.fspath(source)
    if text.startswith("shape:"):
        return shape(text[len("shape:"):])
    return load_mesh(text)
