"""3D photos from one RGB-D image (after Shih et al. 2020): a layered depth image cut at the depth
edges, its hidden layer filled (by default copied from the far side; the context-aware fill on
request), then parallax videos along the paper's four camera paths, a GLB mesh, a mouse-parallax web
page, or the views of a transforms.json file.

`photo3d(image, depth)` computes the layers and returns a `Result`; `result.save(DIR)` (or
`out=DIR`) renders and writes the files, streaming video frames; a failure part-way removes what
it wrote.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from diffparam.checks import choice, int_in, positive_int, real
from diffparam.errors import UserError, first_line
from diffparam.io import (
    AnimationWriter,
    ImageSource,
    check_writable,
    missing_folders,
    read_image,
    remove_empty,
    save_image,
)
from diffparam.models.base import Model
from diffparam.models.registry import DEFAULT_MODEL, load_model
from diffparam.recipes.photo3d_fill import FILL_STEPS, FILLS, context_fill, exemplar, telea
from diffparam.recipes.photo3d_page import PAGE, write_page
from diffparam.render import resolve_device
from diffparam.result import Result
from diffparam.three_d.export import export_glb
from diffparam.three_d.ldi import build_layers, layered_mesh, render_views
from diffparam.three_d.pinhole import PATHS, PinholeViews, camera_path, read_transforms

PATH_CHOICES = (*PATHS, "all")
FRAMES = 240
FPS = 30.0
SIZE = 512
"""Width (px) the layers, videos and page are made at (a narrower photo keeps its own width)."""
FOV = 60.0
MIN_SIDE = 8
VIDEO_FORMATS = ("mp4", "gif")
SCENE = "scene.glb"
DEPTH_SUFFIXES = (".npy", ".png", ".tif", ".tiff", ".pgm")

DepthSource = str | os.PathLike | Tensor
"""A depth map's file (16-bit PNG, TIFF, PGM or .npy) or a tensor (H,W)."""


def read_depth(source: DepthSource, disparity: bool = False) -> Tensor:
    """A z-depth map (H,W) > 0 from a file or tensor; `disparity` reads inverse depth instead (0 = far
    away: put at twice the farthest depth given). NaN, infinite, negative or all-equal values are refused."""
    if isinstance(source, Tensor):
        values, name = source.detach().cpu().double(), "the depth"
    else:
        p, name = Path(source), str(source)
        if not p.is_file():
            raise UserError(f"depth not found: {p}")
        if p.suffix.lower() not in DEPTH_SUFFIXES:
            raise UserError(f"cannot read depth {p}: give a 16-bit PNG, TIFF, PGM or .npy file")
        try:
            if p.suffix.lower() == ".npy":
                array = np.load(p, allow_pickle=False)
            else:
                with Image.open(p) as im:
                    array = np.asarray(im)
        except (OSError, ValueError, UnidentifiedImageError) as exc:
            raise UserError(f"cannot read depth {p}: {first_line(exc)}") from exc
        if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
            raise UserError(f"cannot read depth {p}: it holds {array.dtype} values, not numbers")
        values = torch.from_numpy(array.astype(np.float64))
    if values.dim() == 3 and values.shape[-1] == 1:
        values = values[..., 0]
    if values.dim() != 2:
        raise UserError(f"{name} must be one channel (H,W), got shape {tuple(values.shape)}")
    what = "disparity" if disparity else "depth"
    if not bool(torch.isfinite(values).all()):
        raise UserError(f"{name} holds NaN or infinite values: every pixel needs a finite {what}")
    if bool((values < 0).any()):
        raise UserError(f"{name} holds negative values: {what} must be >= 0")
    if disparity:
        if not bool((values > 0).any()):
            raise UserError(f"{name} is all zero: a disparity map needs values > 0")
        finite = 1.0 / values[values > 0]
        values = torch.where(values > 0, 1.0 / values.clamp_min(1e-300), 2.0 * finite.max())
    elif bool((values == 0).any()):
        raise UserError(f"{name} holds zeros: z-depth must be > 0 (0 often marks a missing measurement: fill "
                        "those holes first; inverse depth? pass `disparity`)")
    if float(values.max()) <= float(values.min()) * (1 + 1e-6):
        raise UserError(f"{name} is all one value: a flat {what} map makes no parallax")
    return values.float()


def _inputs(image: ImageSource, depth: DepthSource, disparity: bool, size: int) -> tuple[Tensor, Tensor]:
    """The photo (3,h,w) and its z-depth (h,w), checked and brought to at most `size` px wide."""
    img = read_image(image) if not isinstance(image, Tensor) else image.detach().float().cpu()
    img = img[0] if img.dim() == 4 else img
    if img.dim() != 3 or img.shape[0] != 3:
        raise UserError(f"the image must be RGB (3,H,W), got shape {tuple(img.shape)}")
    h, w = img.shape[1:]
    if min(h, w) < MIN_SIDE:
        raise UserError(f"the image is {w}x{h} px: a 3D photo needs at least {MIN_SIDE} px a side")
    z = read_depth(depth, disparity)
    if tuple(z.shape) != (h, w):
        raise UserError(f"the depth is {z.shape[1]}x{z.shape[0]} px but the image {w}x{h}: give a depth "
                        "map of the image's size")
    if w > size:
        th = max(MIN_SIDE, round(h * size / w))
        img = F.interpolate(img[None], size=(th, size), mode="bilinear", antialias=True,
                            align_corners=False)[0]
        # Nearest neighbours: no depths between the two sides of an edge ("flying pixels").
        z = F.interpolate(z[None, None], size=(th, size), mode="nearest-exact")[0, 0]
    return img.clamp(0, 1), z


def photo3d(
    image: ImageSource,
    depth: DepthSource,
    *,
    disparity: bool = False,
    fov: float = FOV,
    size: int = SIZE,
    fill: str = "exemplar",
    steps: int = FILL_STEPS,
    band: int | None = None,
    model: Model | str = DEFAULT_MODEL,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    out: str | os.PathLike | None = None,
    path: str = "all",
    frames: int = FRAMES,
    fps: float = FPS,
    video: str = "mp4",
    cameras: str | os.PathLike | None = None,
) -> Result:
    """A 3D photo of `image` with z-depth `depth` (or disparity, with `disparity`) seen with horizontal
    field of view `fov` degrees: the layered depth image, its hidden layer coloured by `fill`
    (`FILLS`; `context` optimises `steps` steps on `model`), as a `Result` whose images are the photo
    and the hidden colour and whose `mesh` is the layered mesh. With `out`, it is saved there at
    once (see `save_3d_photo` for the other options).
    """
    fov = real("fov", fov, 1.0, 170.0, hint="(degrees, horizontal)")
    size = int_in("size", size, MIN_SIDE, 4096, " px")
    fill = choice("fill", fill, FILLS)
    steps = positive_int("steps", steps)
    band = None if band is None else int_in("band", band, 1, 1024, " px")
    options = _save_options(path, frames, fps, video, cameras)
    if out is not None:
        check_writable(Path(out) / SCENE)
    img, z = _inputs(image, depth, disparity, size)
    dev = resolve_device(device)
    start = time.perf_counter()
    layers = build_layers(img.to(dev), z.to(dev), band)
    history: list[float] = []
    if fill == "context":
        net = load_model(model) if isinstance(model, str) else model
        color, history = context_fill(layers, net, steps=steps, seed=seed, device=dev, progress=progress)
        layers = layers.with_color(color)
    elif fill == "telea":
        layers = layers.with_color(telea(layers))
    elif fill == "exemplar":
        layers = layers.with_color(exemplar(layers))
    else:  # one sheet: nothing hidden, in the mesh or on the page
        layers = replace(layers, band=torch.zeros_like(layers.band))
    mesh = layered_mesh(layers, fov, cut=fill != "none")
    result = Result(torch.stack([layers.image, layers.hidden_color]).cpu(), history=history,
                    objective=f"photo3d ({fill} fill)", seconds=time.perf_counter() - start,
                    metrics={"hidden_share": float(layers.band.float().mean())},
                    extras={"layers": layers, "mesh": mesh, "fov": fov,
                            "reference_depth": float(z.median())},
                    writer=save_3d_photo)
    if out is not None:
        result.save(out, **options)
    return result


def _save_options(path: str, frames: int, fps: float, video: str, cameras: str | os.PathLike | None
                  ) -> dict[str, object]:
    """The writer's options, checked (the cameras file read) before any work."""
    choice("path", path, PATH_CHOICES)
    positive_int("frames", frames)
    real("fps", fps, 1.0, 120.0)
    choice("video", video, VIDEO_FORMATS)
    if cameras is not None:
        read_transforms(cameras)
    return {"path": path, "frames": frames, "fps": fps, "video": video, "cameras": cameras}


def views_for(result: Result, path: str, frames: int) -> PinholeViews:
    """The cameras of path `path` for a 3D photo `result`, `frames` of them."""
    return camera_path(path, frames, result.reference_depth, result.fov)


def save_3d_photo(result: Result, out: Path, path: str = "all", frames: int = FRAMES, fps: float = FPS,
                  video: str = "mp4", cameras: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write into folder `out`: a video per camera path (`path`, or all four) of `frames` frames, or
    with `cameras` (a transforms.json-layout file) one PNG per view named after its `file_path`, all
    at the layers' size; and `scene.glb` and `index.html`. Nothing stays behind when it fails."""
    _save_options(path, frames, fps, video, cameras)
    check_writable(out / SCENE)
    made = missing_folders(out / SCENE)
    written: dict[str, Path] = {}
    mesh, (h, w) = result.mesh, result.images.shape[-2:]
    try:
        if cameras is not None:
            views, names = read_transforms(cameras)
            for name, frame in zip(names, render_views(mesh, views, h, w), strict=True):
                target = out / (name if name.lower().endswith(".png") else f"{name}.png")
                written[name] = save_image(frame, target)
        else:
            for name in PATHS if path == "all" else (path,):
                with AnimationWriter(out / f"{name}.{video}", fps) as writer:
                    for frame in render_views(mesh, views_for(result, name, frames), h, w):
                        writer.add(frame)
                written[name] = writer.path
        written["scene"] = export_glb(mesh.to("cpu"), out / SCENE)
        written["page"] = write_page(result.layers, out / PAGE)
    except BaseException:
        for p in written.values():
            p.unlink(missing_ok=True)
        for folder in sorted({p.parent for p in written.values()}, key=lambda d: -len(d.parts)):
            remove_empty([folder])
        remove_empty(made)
        raise
    return written

