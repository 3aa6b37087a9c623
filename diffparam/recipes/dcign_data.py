"""Training data for a DC-IGN (Kulkarni et al. 2015): textured meshes rendered by the project's
rasteriser, lit by one light, in mini-batches in which one factor varies and the others are fixed.

A data folder holds `batches.json` and one PNG strip per mini-batch (its images left to right). The
JSON lists, per batch, its strip, the factor that varies (`azimuth`, `elevation`, `light` or `object`)
and, when known, each image's true azimuth, elevation and light angle in degrees; and the ranges the
angles were drawn from and where each mesh came from (what a decoder that renders needs). A user's own
renders in this layout are data too; only the true angles may be left out (then nothing can be scored
on them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from diffparam.checks import choice, int_in, range_pair
from diffparam.errors import UserError, first_line
from diffparam.io import atomic_folder, read_image, sample_photos, save_image
from diffparam.result import Result
from diffparam.three_d.cameras import orbit
from diffparam.three_d.mesh import Mesh
from diffparam.three_d.shading import light_direction, render_lit
from diffparam.three_d.shapes import mesh_from

FACTORS = ("azimuth", "elevation", "light")
"""The graphics factors, in the order of each image's true values and of the code's graphics units."""
VARIES = (*FACTORS, "object")
"""What can vary in a mini-batch: one graphics factor, or the object (mesh and texture)."""
RANGES = {"azimuth": (-60.0, 60.0), "elevation": (0.0, 40.0), "light": (-70.0, 70.0)}
"""Default range of each factor, degrees (azimuth kept off ±180 so that a linear unit can hold it)."""
SHAPES = ("sphere", "torus", "knot")
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera")
"""scikit-image photos (shipped with it) that can texture the meshes."""
PATTERNS = ("hue", "checker")
"""Procedural textures: a colour wheel round the U axis, paler up the V axis (the colour seen tells the
turn and the tilt), and a coarse checker."""
TEXTURES = (*PATTERNS, *PHOTOS)
DEFAULT_TEXTURES = ("hue", "checker", "astronaut", "coffee")
"""The textures of the default objects: 3 shapes × 4 textures."""
DISTANCE, FOV = 2.2, 40.0
INDEX = "batches.json"
FORMAT = "diffparam-dcign-data"


@dataclass(frozen=True)
class DcignData:
    """Mini-batches of renders: `images` (N,B,C,H,W) in [0,1]; `varies` (N,) index into VARIES;
    `factors` (N,B,3) true degrees or None; `objects` (N,B) object names; `ranges` (low, high) degrees per
    factor; `sources`: mesh name → "shape:NAME" or a mesh file, where known (None: the folder doesn't say)."""

    images: Tensor
    varies: Tensor
    factors: Tensor | None
    objects: list[list[str]]
    ranges: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(RANGES))
    sources: dict[str, str] | None = None

    @property
    def size(self) -> int:
        """Image side, px."""
        return int(self.images.shape[-1])

    @property
    def channels(self) -> int:
        """1 (grey) or 3 (RGB)."""
        return int(self.images.shape[2])


def texture(name: str, size: int = 128) -> Tensor:
    """A texture (1,3,size,size) by name: a procedural pattern (PATTERNS) or a scikit-image photo (PHOTOS)."""
    name = choice("texture", name, TEXTURES)
    if name in PHOTOS:
        return sample_photos(size, (name,))
    v, u = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    if name == "hue":
        phase = 2 * torch.pi * (u[None] - torch.tensor([0.0, 1 / 3, 2 / 3])[:, None, None])
        return torch.lerp(0.55 + 0.45 * torch.cos(phase), torch.ones(()), 0.8 * v)[None]  # paler upwards
    odd = ((u * 4).floor() + (v * 2).floor()) % 2
    return torch.lerp(torch.tensor([0.95, 0.55, 0.15]), torch.tensor([0.2, 0.45, 0.95]), odd[..., None]
                      ).permute(2, 0, 1)[None]


def source_of(mesh: Mesh | str | os.PathLike) -> str | None:
    """Where a mesh given to `make_data` can be found again: "shape:NAME", an absolute file path, or None."""
    if isinstance(mesh, Mesh):
        return None
    text = os.fspath(mesh)
    return text if text.startswith("shape:") else str(Path(text).resolve())


def _objects(meshes: Sequence[Mesh], textures: Sequence[str]) -> list[tuple[str, Mesh, Tensor]]:
    """(name, mesh, texture (1,3,T,T)) triples: each mesh with its own texture, or with each of `textures`."""
    out = []
    for mesh in meshes:
        if mesh.texture is not None:
            out.append((mesh.name, mesh, mesh.texture[None].float()))
        else:
            out += [(f"{mesh.name}/{t}", mesh, texture(t)) for t in textures]
    return out


def render_views(mesh: Mesh, texture: Tensor, factors: Tensor, size: int, grey: bool = False,
                 differentiable: bool = False) -> Tensor:
    """Images (B,C,size,size) of `mesh` with `texture` at `factors` (B,3): azimuth, elevation, light
    (degrees), on black, 2× supersampled; C = 1 when `grey`. `differentiable`: gradients reach `factors`
    through texture, shading and the outer silhouette (`render_lit`)."""
    factors = factors.double()
    n = len(factors)
    cams = orbit(factors[:, 0], factors[:, 1], factors.new_full((n,), DISTANCE), factors.new_full((n,), FOV))
    cams = type(cams)(cams.view.float(), cams.fov.float())
    rgba = render_lit(mesh, cams, size, texture, light_direction(factors[:, 2]), supersample=2,
                      differentiable=differentiable)
    rgb = rgba[:, :3] * rgba[:, 3:]
    if grey:
        rgb = (rgb * rgb.new_tensor([0.299, 0.587, 0.114])[:, None, None]).sum(1, keepdim=True)
    return rgb.clamp(0, 1)


def _draw(generator: torch.Generator, n: int, bounds: tuple[float, float]) -> Tensor:
    return bounds[0] + (bounds[1] - bounds[0]) * torch.rand(n, generator=generator, dtype=torch.float64)


def _empty_out(out: str | os.PathLike) -> Path:
    folder = Path(out)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        what = "is a file" if not folder.is_dir() else "is not empty"
        raise UserError(f"--out {folder} {what}: give a new or empty folder for the data")
    return folder


def make_data(out: str | os.PathLike, meshes: Sequence[Mesh | str | os.PathLike] | None = None,
              size: int = 32, batches: int = 240, batch: int = 8, grey: bool = False, seed: int = 0,
              textures: Sequence[str] = DEFAULT_TEXTURES, azimuth: tuple[float, float] = RANGES["azimuth"],
              elevation: tuple[float, float] = RANGES["elevation"],
              light: tuple[float, float] = RANGES["light"], varies: Sequence[str] = VARIES,
              blobs: int = 0) -> Result:
    """Render `batches` mini-batches of `batch` images into the new folder `out`: in each, one of `varies`
    (in turn; default all of VARIES) varies over its range and the rest is drawn once. `meshes`: files,
    "shape:NAME" or `Mesh`es (default the sample shapes, none when only `blobs` are asked for), each with
    its own texture or each of `textures`; `blobs` adds the random shapes blob0 .. blob(N-1) (variety, so
    that an encoder can meet shapes it never saw). The folder appears whole or not at all.
    `result.images` is the first batch of each kind."""
    size = int_in("size", size, 16, 256)
    if size % 8:
        raise UserError(f"`size` must be a multiple of 8 (the network halves it three times), got {size}")
    kinds = [choice("varies", v, VARIES) for v in varies]
    if not kinds or len(set(kinds)) != len(kinds):
        raise UserError(f"`varies` must name one or more of {', '.join(VARIES)}, each once")
    batches = int_in("batches", batches, len(kinds), 100_000)
    batch = int_in("batch", batch, 2, 256)
    ranges = {"azimuth": range_pair("azimuth", azimuth, -180.0, 180.0),
              "elevation": range_pair("elevation", elevation, -80.0, 80.0),
              "light": range_pair("light", light, -90.0, 90.0)}
    for name in textures:
        choice("textures", name, TEXTURES)
    blobs = int_in("blobs", blobs, 0, 10_000)
    folder = _empty_out(out)
    given = list(meshes or ([] if blobs else [f"shape:{s}" for s in SHAPES]))
    given += [f"shape:blob{i}" for i in range(blobs)]
    loaded = [mesh_from(m) for m in given]
    objects = _objects(loaded, textures)
    sources = {mesh.name: source_of(m) for mesh, m in zip(loaded, given, strict=True) if source_of(m)}
    generator = torch.Generator().manual_seed(seed)
    with atomic_folder(folder) as tmp:
        index, firsts = [], []
        for k in range(batches):
            vary = kinds[k % len(kinds)]
            fixed = torch.stack([_draw(generator, 1, ranges[f]) for f in FACTORS], 1)
            factors = fixed.repeat(batch, 1)
            which = torch.randint(len(objects), (batch if vary == "object" else 1,), generator=generator)
            which = which.repeat(batch // len(which))
            if vary != "object":
                j = FACTORS.index(vary)
                factors[:, j] = _draw(generator, batch, ranges[vary]).sort().values
            if vary == "object":
                images = torch.cat([render_views(objects[o][1], objects[o][2], factors[i:i + 1], size, grey)
                                    for i, o in enumerate(which.tolist())])
            else:
                _, mesh, tex = objects[int(which[0])]
                images = render_views(mesh, tex, factors, size, grey)
            name = f"batch_{k:05d}.png"
            save_image(torch.cat(list(images), -1), tmp / name)
            index.append({"file": name, "varies": vary, "objects": [objects[o][0] for o in which.tolist()],
                          "factors": [[round(float(v), 4) for v in row] for row in factors]})
            if k < len(kinds):
                firsts.append(images)
        meta = {"format": FORMAT, "size": size, "batch": batch, "channels": 1 if grey else 3,
                "factors": list(FACTORS), "ranges": ranges, "sources": sources, "batches": index}
        (tmp / INDEX).write_text(json.dumps(meta, indent=1))
    return Result(torch.cat(firsts), metrics={"batches": batches, "objects": len(objects)},
                  files={"data": folder})


def load_data(folder: str | os.PathLike) -> DcignData:
    """A data folder written by `make_data`, or a user's renders in its layout, checked."""
    root = Path(folder)
    index = root / INDEX
    if not index.is_file():
        state = "not found" if not root.exists() else f"holds no {INDEX}"
        raise UserError(f"DC-IGN data folder {root} {state}: give the --out folder of `diffparam dcign data`")
    try:
        meta = json.loads(index.read_text())
        size, channels, entries = int(meta["size"]), int(meta["channels"]), list(meta["batches"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"cannot read {index}: {first_line(exc) or type(exc).__name__}") from exc
    if size % 8 or not 16 <= size <= 256 or channels not in (1, 3) or not entries:
        raise UserError(f"{index} needs a size (a multiple of 8, 16..256), channels 1 or 3, and batches")
    images, varies, factors, objects = [], [], [], []
    for e in entries:
        if not isinstance(e, dict) or e.get("varies") not in VARIES or "file" not in e:
            raise UserError(f"{index}: each batch needs a file and `varies` (one of {', '.join(VARIES)})")
        strip = read_image(root / str(e["file"]))[0]
        if strip.shape[-2] != size or strip.shape[-1] % size:
            raise UserError(f"{root / e['file']} is {strip.shape[-1]}x{strip.shape[-2]} px: a batch is a "
                            f"strip of {size} px images side by side")
        batch = strip.reshape(3, size, -1, size).permute(2, 0, 1, 3)
        images.append(batch[:, :1] if channels == 1 else batch)
        varies.append(VARIES.index(e["varies"]))
        factors.append(e.get("factors"))
        objects.append(list(e.get("objects") or ["?"] * len(batch)))
    ranges, sources = meta.get("ranges", RANGES), meta.get("sources")
    try:
        ranges = {f: range_pair(f"{index} ranges: {f}", ranges[f], -180.0, 180.0) for f in FACTORS}
        sources = None if sources is None else {str(k): str(v) for k, v in dict(sources).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{index}: `ranges` must give low, high degrees for {', '.join(FACTORS)}; "
                        "`sources` must map mesh names to files") from exc
    if len({len(b) for b in images}) != 1 or min(len(b) for b in images) < 2:
        raise UserError(f"{index}: every batch must hold the same number of images, at least 2")
    true = None
    if all(f is not None for f in factors):
        try:
            true = torch.tensor(factors, dtype=torch.float32)
        except (TypeError, ValueError):
            true = torch.zeros(0)
        if true.shape != (len(images), len(images[0]), len(FACTORS)):
            raise UserError(f"{index}: `factors` must list {', '.join(FACTORS)} for every image of a batch")
    return DcignData(torch.stack(images), torch.tensor(varies), true, objects, ranges, sources)
