"""Radiance fields from posed photos (NeRF's task): make test scenes, fit a field to a scene in the
`transforms.json` layout, render it from new cameras and along camera paths, export a mesh
(restyling: `recipes/nerf_style.py`).

Fitting trains on random batches of rays from all training views (not on whole images), so it
runs in the shared training loop `train.fit` (seed, progress, checkpoints, resume); the run folder
holds `checkpoint.pt`, `metrics.json` and `preview.png`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from skimage.metrics import structural_similarity
from torch import Tensor
from tqdm import tqdm

from diffparam.checks import choice, int_in, positive_float, positive_int, real
from diffparam.errors import UserError
from diffparam.io import (
    SAMPLE_PHOTOS,
    AnimationWriter,
    atomic_folder,
    atomic_path,
    check_writable,
    make_grid,
    sample_photos,
    save_image,
)
from diffparam.memory import available
from diffparam.param.radiance import RadianceField
from diffparam.render import resolve_device
from diffparam.result import Result
from diffparam.three_d.cameras import Cameras, orbit
from diffparam.three_d.mesh import Mesh, from_arrays, load_mesh
from diffparam.three_d.posed import PosedViews, load_posed, posed_from_cameras, write_posed
from diffparam.three_d.raster import render_mesh
from diffparam.three_d.shapes import shape
from diffparam.train import fit, load_checkpoint

STEPS = 5000
RAYS = 8192
"""Rays per training step."""
LR = 0.02
"""Adam's learning rate for the feature grids; the MLPs take a quarter of it. Both decay to a tenth."""
WARMUP = 64
"""Steps before the occupancy grid first skips empty space (every cell counts as occupied before)."""
OCCUPANCY_EVERY = 16
SCENES = {"sphere": ("sphere", "astronaut"), "torus": ("torus", "chelsea"), "knot": ("knot", "coffee"),
          "orrery": ("orrery", "rocket")}
"""The synthetic test scenes: a mesh and the photo it is textured with."""
CAMERA_DISTANCE, CAMERA_FOV = 4.0, 40.0
"""Test scenes are seen as NeRF's Blender scenes are: from 4 units away, a 40° field of view, the
object inside [-1, 1]³."""
PATHS = ("orbit", "spiral")
PREVIEW_SIZE = 160
"""Largest side of the preview video's frames."""


@contextlib.contextmanager
def _tf32(device: torch.device) -> Iterator[None]:
    """TF32 matrix products on a CUDA device for the MLPs, restored afterwards."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = before or device.type == "cuda"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def _scene_mesh(name: str) -> Mesh:
    """A test scene's mesh inside [-1, 1]³ ("orrery": a sphere inside a ring)."""
    if name != "orrery":
        mesh = shape(name)
        return from_arrays(mesh.vertices * 2, mesh.faces, mesh.uv, name=name, normalize=False)
    ball, ring = shape("sphere"), shape("torus")
    v = torch.cat([ball.vertices * 0.55, ring.vertices * 2])
    f = torch.cat([ball.faces, ring.faces + len(ball.vertices)])
    return from_arrays(v, f, torch.cat([ball.uv, ring.uv]), name=name, normalize=False)


def _random_cameras(n: int, generator: torch.Generator) -> Cameras:
    """`n` cameras around the object, uniform on the sphere between 30° below and 75° above it."""
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    lo, hi = math.sin(math.radians(-30)), math.sin(math.radians(75))
    elevation = torch.rad2deg(torch.asin(lo + (hi - lo) * u[:, 1]))
    full = torch.ones(n, dtype=torch.float64)
    return orbit(360 * u[:, 0], elevation, full * CAMERA_DISTANCE, full * CAMERA_FOV)


def _ring_cameras(n: int, elevation: float) -> Cameras:
    full = torch.ones(n, dtype=torch.float64)
    return orbit(torch.arange(n, dtype=torch.float64) * (360 / n) + 7, full * elevation,
                 full * CAMERA_DISTANCE, full * CAMERA_FOV)


def make_scene(out: str | os.PathLike, scene: str | os.PathLike = "knot", size: int = 400, train: int = 50,
               test: int = 8, val: int = 0, seed: int = 0, device: str = "cpu", photo: str | None = None
               ) -> Result:
    """Render a textured 360° test scene — one of `SCENES`, or a mesh file with its own texture (else
    `photo`, one of scikit-image's, default astronaut) — with the project's rasteriser into `out` in
    the Blender layout: `train` random views, `test` and `val` held-out views on rings, RGBA
    (transparent background), rasterised on `device`; returns the files written and the training
    images."""
    size = int_in("size", size, 8, 2048)
    counts = {"train": positive_int("train", train), "test": int_in("test", test, 0, 10_000),
              "val": int_in("val", val, 0, 10_000)}
    check_writable(Path(out) / "transforms_train.json")
    folder = Path(out)
    if folder.is_dir() and any(folder.iterdir()):
        raise UserError(f"--out {folder} is not empty: give a new or empty folder for the scene")
    if str(scene) in SCENES:
        kind, default_photo = SCENES[str(scene)]
        mesh = _scene_mesh(kind)
    else:
        loaded, default_photo = load_mesh(scene), "astronaut"
        mesh = from_arrays(loaded.vertices * 2, loaded.faces, loaded.uv, loaded.texture, loaded.name, False)
    if mesh.texture is not None and photo is None:
        texture = mesh.texture[None]
    else:
        texture = sample_photos(512, (choice("photo", photo or default_photo, SAMPLE_PHOTOS),))
    texture = texture.to(resolve_device(device))
    generator = torch.Generator().manual_seed(seed)
    files: dict[str, Path] = {}
    images = None
    with atomic_folder(folder) as tmp:  # the scene appears whole or not at all
        for split, n in counts.items():
            if n == 0:
                continue
            ring = 30 if split == "test" else 15
            cams = _random_cameras(n, generator) if split == "train" else _ring_cameras(n, ring)
            cams = Cameras(cams.view.float(), cams.fov.float())
            rgba = torch.cat([render_mesh(mesh, Cameras(cams.view[i:i + 8], cams.fov[i:i + 8]), size, texture,
                                          supersample=2) for i in range(0, n, 8)])
            views = posed_from_cameras(cams, size, [f"{split}/r_{i}" for i in range(n)])
            views = PosedViews(views.c2w, views.intrinsics, size, size, views.names, rgba.cpu())
            files[split] = folder / write_posed(views, tmp, split).name
            images = views.images if split == "train" else images
    return Result(images=images, files=files, extras={"scene": str(scene)}, writer=no_more_files)


def no_more_files(result: Result, out: Path) -> dict[str, Path]:
    """The writer of a result whose files a call wrote itself (runs, scenes, videos)."""
    raise UserError("this result's files are already written (see result.files)")


def psnr(made: Tensor, truth: Tensor) -> float:
    """Peak signal-to-noise ratio (dB) of images in [0, 1]."""
    mse = float((made.float() - truth.float()).pow(2).mean())
    return 10 * math.log10(1 / max(mse, 1e-12))


def ssim(made: Tensor, truth: Tensor) -> float:
    """Mean structural similarity of image batches (N,3,H,W) in [0, 1], as NeRF papers measure it (a
    Gaussian window of σ = 1.5)."""
    scores = [structural_similarity(a.permute(1, 2, 0).cpu().numpy(), b.permute(1, 2, 0).cpu().numpy(),
                                    channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False)
              for a, b in zip(made.float(), truth.float(), strict=True)]
    return float(np.mean(scores))


def flatten(images: Tensor, background: float) -> Tensor:
    """RGB (N,3,H,W): RGBA images composited over a grey level in [0, 1] (RGB ones unchanged)."""
    if images.shape[1] == 3:
        return images
    alpha = images[:, 3:]
    return images[:, :3] * alpha + background * (1 - alpha)


def field_settings(bound: float, resolutions: Sequence[int], features: int, hidden: int, samples: int,
                   grid: int, rays: int, lr: float, background: float) -> dict[str, Any]:
    """A run's settings: the field's shape (what `field_from` and `load_nerf` build from) and training's."""
    return {"bound": bound, "resolutions": list(resolutions), "features": features, "hidden": hidden,
            "samples": samples, "grid": grid, "rays": rays, "lr": lr, "background": background}


def field_from(settings: dict[str, Any], seed: int = 0) -> RadianceField:
    """A field of these settings, initialised from `seed` (torch's own generators left as they were);
    with an appearance grid where they name one (a restyled run's)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        field = RadianceField(bound=settings["bound"], resolutions=settings["resolutions"],
                              features=settings["features"], hidden=settings["hidden"],
                              samples=settings["samples"], grid=settings["grid"],
                              blob=settings.get("blob", 0.0))
        if settings.get("appearance"):
            field.add_appearance(**settings["appearance"])
        return field


def fit_nerf(data: str | os.PathLike, out: str | os.PathLike, steps: int = STEPS, rays: int = RAYS,
             lr: float = LR, bound: float = 1.5, resolutions: Sequence[int] = (64, 128, 256, 512),
             features: int = 8, hidden: int = 64, samples: int = 256, grid: int = 128,
             background: float = 1.0, seed: int = 0, device: str = "auto", progress: bool = True,
             every: int = 500, preview_frames: int = 24) -> Result:
    """Fit a `RadianceField` to the training views of the scene `data` (a folder or a transforms.json)
    into the run folder `out`, resuming from its checkpoint; then measure PSNR and SSIM on the test
    split (else val), composited over `background`, and write `metrics.json`, `preview.png` (held-out
    views above the field's) and `preview.gif` (an orbit of `preview_frames` frames)."""
    steps = int_in("steps", steps, 1, 10_000_000)
    preview_frames = int_in("preview_frames", preview_frames, 0, 1000)
    rays = int_in("rays", rays, 1, 1 << 22)
    lr = positive_float("lr", lr)
    background = real("background", background, 0.0, 1.0)
    settings = field_settings(positive_float("bound", bound), [int(r) for r in resolutions],
                         positive_int("features", features), positive_int("hidden", hidden),
                         int_in("samples", samples, 2, 4096), int_in("grid", grid, 2, 1024), rays, lr,
                         background)
    settings["seed"] = seed  # another seed is another run, not a resume
    run = Path(out)
    checkpoint = check_writable(run / "checkpoint.pt")
    dev = resolve_device(device)
    views = load_posed(data, "train")
    split = "test" if load_posed(data, "test", images=False, size=(1, 1)) is not None else "val"
    held_out = load_posed(data, split)
    assert views is not None and views.images is not None
    field = field_from(settings, seed)
    check_memory(views, field, rays, dev)
    field = field.to(dev)
    origins, dirs = (r.reshape(-1, 3) for r in views.rays(dev))
    target = views.images.to(dev).permute(0, 2, 3, 1).reshape(-1, views.images.shape[1])
    if target.shape[1] == 3:
        target = torch.cat([target, torch.ones_like(target[:, :1])], 1)
    transparent = bool((target[:, 3] < 1).any())
    opt = torch.optim.Adam([{"params": field.grid_parameters(), "lr": lr, "base_lr": lr},
                            {"params": field.mlp_parameters(), "lr": lr / 4, "base_lr": lr / 4}],
                           betas=(0.9, 0.99), eps=1e-15)
    device_generator = torch.Generator(dev)

    def step(i: int, generator: torch.Generator) -> Tensor:
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * 0.1 ** (i / steps)
        pick = torch.randint(len(target), (rays,), generator=generator).to(dev, non_blocking=True)
        jitter = torch.rand(rays, generator=generator).to(dev, non_blocking=True)
        bg = (torch.rand(rays, 3, generator=generator) if transparent
              else torch.full((rays, 3), background)).to(dev, non_blocking=True)
        color, acc, _ = field.render_rays(origins[pick], dirs[pick], jitter)
        want = target[pick]
        loss = (color + (1 - acc)[:, None] * bg - (want[:, :3] * want[:, 3:] + (1 - want[:, 3:]) * bg)
                ).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i + 1 >= WARMUP and (i + 1) % OCCUPANCY_EVERY == 0:  # last: a step cut short leaves the grid alone
            device_generator.manual_seed(int(torch.randint(1 << 62, (1,), generator=generator)))
            field.update_occupancy(device_generator)
        return loss.detach()

    before = float(load_checkpoint(checkpoint).get("seconds", 0.0)) if checkpoint.exists() else 0.0
    start = time.perf_counter()

    trained = {"seconds": before}

    def elapsed() -> dict[str, Any]:
        """What a checkpoint holds besides the weights: the training time so far (the final save's
        own time is not training), and the cameras' placement for camera paths."""
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        trained["seconds"] = before + time.perf_counter() - start
        return {"seconds": trained["seconds"], "camera": _camera_of(views)}

    with _tf32(dev):
        history = fit(step, {"field": field}, {"adam": opt}, steps, settings, checkpoint=checkpoint,
                      every=every, seed=seed, progress=progress, desc="nerf fit", extra=elapsed)
        seconds = trained["seconds"]
        metrics: dict[str, Any] = {"steps": steps, "train_seconds": round(seconds, 2), "device": str(dev)}
        renders = None
        if held_out is not None and held_out.images is not None:
            field.eval()
            start_render = time.perf_counter()
            renders = field.render(held_out)[0].cpu()
            per_view = (time.perf_counter() - start_render) / len(held_out)
            metrics["render_seconds_per_view"] = round(per_view, 4)
            made, truth = flatten(renders, background), flatten(held_out.images, background)
            mean = flatten(views.images, background).mean((0, 2, 3))[None, :, None, None]
            metrics.update({"split": split,
                            "views": len(held_out), "psnr": round(psnr(made, truth), 3),
                            "ssim": round(ssim(made, truth), 4),
                            "constant_color_psnr": round(psnr(mean.expand_as(truth), truth), 3)})
    with atomic_path(run / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    files = {"checkpoint": checkpoint, "metrics": run / "metrics.json"}
    if preview_frames:
        camera = _camera_of(views)
        files["preview_video"] = film(field, camera, run / "preview.gif", "orbit", preview_frames,
                                      min(PREVIEW_SIZE, camera["size"]), background=background)[1]["video"]
    if renders is not None:
        pairs = torch.cat([flatten(held_out.images[:4], background), flatten(renders[:4], background)])
        files["preview"] = save_image(make_grid(pairs, ncol=len(pairs) // 2), run / "preview.png")
    return Result(images=renders if renders is not None else torch.zeros(0, 4, 1, 1), history=history,
                  param=field, seconds=seconds, metrics=metrics, files=files, writer=no_more_files)


SAMPLE_BYTES = 2700
"""Bytes a sample along a training ray holds through a step at most, when every sample is occupied
and visible (positions, masks, features, MLP activations, gradients, compositing): 2640 measured
on the CPU (peak resident memory) with the default field, 4096 rays of 256 samples."""


def check_memory(views: PosedViews, field: RadianceField, rays: int, device: torch.device) -> None:
    """Refuse, before training, a fit whose pictures, rays, weights (with Adam's state) and one step's
    samples clearly cannot fit in `device`'s free memory."""
    free = available(device)
    if free is None or os.environ.get("DIFFPARAM_NO_MEMORY_CHECK"):
        return
    pixels = len(views) * views.height * views.width
    weights = sum(p.numel() for p in field.parameters())
    need = 4 * (10 * pixels + 4 * weights + field.density_grid.numel()) + SAMPLE_BYTES * rays * field.samples
    if need > free:
        raise UserError(f"this fit needs about {need / 2**30:.1f} GiB of memory ({len(views)} pictures "
                        f"of {views.width}x{views.height} px, {rays} rays of {field.samples} samples a "
                        f"step) but {free / 2**30:.1f} GiB is free on {device}: lower `rays` or `samples`")


def up_direction(c2w: Tensor) -> Tensor:
    """The scene's up (3,), float64, from camera-to-world matrices (N,4,4): level cameras' x axes are
    horizontal, so up is the direction normal to them all, on the side of the cameras' own y axes.
    Where the x axes barely turn (cameras all facing one way), that normal is ill-posed (with roll it
    can be the viewing direction): up is then whichever of the two directions normal to the common x
    axis is nearer the cameras' mean y axis."""
    right, ys = c2w[:, :3, 0].double(), c2w[:, :3, 1].double().sum(0)
    values, vectors = torch.linalg.eigh(right.T @ right)
    up = vectors[:, 0]
    if values[1] < 0.05 * values[2]:  # the x axes spread over less than about 13°
        up = vectors[:, int((vectors[:, :2].T @ ys).abs().argmax())]
    return up if float(up @ ys) >= 0 else -up


def _camera_of(views: PosedViews) -> dict[str, Any]:
    """The training cameras' mean distance from the origin, elevation, field of view, image size and
    up direction (the one normal to every camera's x axis, which a camera without roll keeps level:
    y in the project's scenes, z in NeRF's Blender scenes): what a camera path around the scene is
    made from."""
    centres = views.c2w[:, :3, 3]
    up = up_direction(views.c2w)
    distance = centres.norm(dim=1)
    height = centres.double() @ up
    elevation = torch.rad2deg(torch.asin((height / distance.double().clamp_min(1e-9)).clamp(-1, 1)))
    fov = math.degrees(2 * math.atan(0.5 * views.height / float(views.intrinsics[:, 1].mean())))
    return {"distance": float(distance.mean()), "elevation": float(elevation.mean()), "fov": fov,
            "size": min(views.height, views.width), "up": up.tolist()}


def upright(cams: Cameras, up: Sequence[float]) -> Cameras:
    """`cams`, made around the y axis, turned so that y becomes `up` (a unit vector, world space)."""
    y = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    u = torch.nn.functional.normalize(torch.tensor(up, dtype=torch.float64), dim=0)
    axis, cos = torch.linalg.cross(y, u), float(y @ u)
    if 1 + cos < 1e-6:  # up is -y: a half turn about x (Rodrigues' formula divides by 1 + cos)
        rot = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    else:
        k = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]],
                         dtype=torch.float64)
        rot = torch.eye(3, dtype=torch.float64) + k + k @ k / (1 + cos)  # Rodrigues: y onto u
    turn = torch.eye(4, dtype=torch.float64)
    turn[:3, :3] = rot
    return Cameras((cams.view.double() @ turn.T).float(), cams.fov.float())


def load_nerf(run: str | os.PathLike, device: str = "auto") -> tuple[RadianceField, dict[str, Any]]:
    """The field fitted in the run folder `run` (on `device`) and its checkpoint's settings and camera."""
    path = Path(run) / "checkpoint.pt"
    if not path.is_file():
        raise UserError(f"{run} is not a fitted run: it holds no checkpoint.pt (run `nerf fit` first)")
    state = load_checkpoint(path)
    if "field" not in state["modules"] or "camera" not in state:
        raise UserError(f"{path} is not a radiance-field checkpoint")
    field = field_from(state["settings"])
    field.load_state_dict(state["modules"]["field"])
    return field.to(resolve_device(device)).eval(), state


def _frame_file(folder: Path, name: str, suffix: str = "") -> Path:
    """`folder/NAME[suffix].png` for a frame's file_path (its extension dropped), kept inside `folder`."""
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts:
        raise UserError(f"frame file_path {name!r} leaves the output folder: give relative names")
    stem = rel.with_suffix("") if rel.suffix.lower() in (".png", ".jpg", ".jpeg", ".exr") else rel
    return folder / stem.parent / f"{stem.name}{suffix}.png"


def depth_image(depth: Tensor, alpha: Tensor) -> Tensor:
    """Depth maps (N,1,H,W) as grey pictures: near is white, far dark, nothing hit black; each view
    scaled between its own nearest and farthest hit."""
    hit = alpha > 0.5
    out = torch.zeros_like(depth)
    for i in range(len(depth)):
        if bool(hit[i].any()):
            d = depth[i][hit[i]]
            lo, hi = float(d.min()), float(d.max())
            out[i] = torch.where(hit[i], 1 - 0.8 * (depth[i] - lo) / max(hi - lo, 1e-6), 0.0)
    return out


def render_cameras(run: str | os.PathLike, cameras: str | os.PathLike, depth: bool = False,
                   background: float | None = None, device: str = "auto") -> Result:
    """The fitted field of `run` seen by every camera of a transforms.json file (at its `w`×`h`, else
    the training images' size): RGBA images, composited over `background` when one is given;
    `result.save(DIR)` writes DIR/FILE_PATH.png for each frame (and FILE_PATH_depth.png with `depth`)."""
    field, state = load_nerf(run, device)
    size = int(state["camera"]["size"])
    views = load_posed(cameras, "train", images=False, size=(size, size))
    assert views is not None
    for name in views.names:
        _frame_file(Path("."), name)
    start = time.perf_counter()
    rgba, dist = field.render(views)
    seconds = time.perf_counter() - start
    images = rgba.cpu()
    if background is not None:
        images = flatten(images, real("background", background, 0.0, 1.0))
    extras = {"names": views.names, "depth": depth_image(dist.cpu(), rgba[:, 3:].cpu()) if depth else None}
    return Result(images=images, seconds=seconds, extras=extras, writer=_write_frames)


def _write_frames(result: Result, out: Path) -> dict[str, Path]:
    files = {}
    for i, name in enumerate(result.extras["names"]):
        files[name] = save_image(result.images[i], _frame_file(out, name))
        if result.extras["depth"] is not None:
            files[f"{name}_depth"] = save_image(result.extras["depth"][i], _frame_file(out, name, "_depth"))
    return files


def path_cameras(camera: dict[str, Any], path: str, frames: int) -> Cameras:
    """`frames` cameras circling the scene's up axis once at the training cameras' mean distance and
    field of view: at their mean elevation ("orbit"), or rising and falling between -15° and 60°
    ("spiral")."""
    path = choice("path", path, PATHS)
    frames = int_in("frames", frames, 1, 100_000)
    az = torch.arange(frames, dtype=torch.float64) * (360 / frames)
    full = torch.ones(frames, dtype=torch.float64)
    if path == "orbit":
        elevation = full * max(min(camera["elevation"], 80.0), -80.0)
    else:
        elevation = 22.5 + 37.5 * torch.sin(az * (2 * math.pi / 360))
    cams = orbit(az, elevation, full * camera["distance"], full * camera["fov"])
    return upright(cams, camera.get("up", (0.0, 1.0, 0.0)))


def render_path(run: str | os.PathLike, out: str | os.PathLike, path: str = "orbit", frames: int = 60,
                size: int | None = None, depth: bool = False, fps: float = 24.0,
                background: float = 1.0, device: str = "auto", progress: bool = True) -> Result:
    """A video (.mp4 or .gif) of the fitted field of `run` along a camera path, streamed frame by
    frame to `out` (and its depth maps to OUT_depth.SUFFIX with `depth`); returns the first frame."""
    background = real("background", background, 0.0, 1.0)
    field, state = load_nerf(run, device)
    size = int_in("size", size or int(state["camera"]["size"]), 8, 4096)
    start = time.perf_counter()
    first, files = film(field, state["camera"], out, path, frames, size, depth, fps, background, progress)
    return Result(images=first[None], seconds=time.perf_counter() - start, files=files, writer=no_more_files)


def film(field: RadianceField, camera: dict[str, float], out: str | os.PathLike, path: str, frames: int,
         size: int, depth: bool = False, fps: float = 24.0, background: float = 1.0, progress: bool = False
         ) -> tuple[Tensor, dict[str, Path]]:
    """Stream `field`'s views along a camera path (`path_cameras`) to the video `out` (and depth maps
    to OUT_depth.SUFFIX); returns the first frame and the files."""
    views = posed_from_cameras(path_cameras(camera, path, frames), size, [str(i) for i in range(frames)])
    target = Path(out)
    names = [target] + ([target.with_name(f"{target.stem}_depth{target.suffix}")] if depth else [])
    writers: list[AnimationWriter] = []
    first, ok = None, False
    try:
        writers += [AnimationWriter(name, fps) for name in names]
        for i in tqdm(range(len(views)), disable=not progress, desc="nerf render", leave=False):
            rgba, dist = field.render(views.part(i, i + 1))
            frame = flatten(rgba.cpu(), background)[0]
            first = frame if first is None else first
            writers[0].add(frame)
            if depth:
                writers[1].add(depth_image(dist.cpu(), rgba[:, 3:].cpu())[0].expand(3, -1, -1))
        ok = True
    finally:
        paths = [w.close(ok) for w in writers]
    assert first is not None
    return first, {"video": paths[0], **({"depth_video": paths[1]} if depth else {})}


def extract_mesh(field: RadianceField, resolution: int = 256, level: float | None = None,
                 chunk: int = 1 << 18) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Marching cubes on the field's density: vertices (V,3) in world units, faces (F,3) and vertex
    colours (V,3) in [0, 1] (the mean of the colours seen from six directions). `level` defaults to
    the density at which one sample step is half opaque."""
    from skimage.measure import marching_cubes

    resolution = int_in("resolution", resolution, 8, 1024)
    level = math.log(2) / field.step_size if level is None else positive_float("level", level)
    device = field.density_grid.device
    axis = torch.linspace(-1, 1, resolution, device=device)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    with torch.no_grad():
        sigma = torch.cat([field.query(p)[0] for p in points.split(chunk)]).view((resolution,) * 3)
    volume = sigma.cpu().numpy()
    if not volume.min() < level < volume.max():
        raise UserError(f"the field's density never crosses `level` {level:.3g} (it spans "
                        f"{volume.min():.3g}..{volume.max():.3g}): give a level inside that range")
    verts, faces, _, _ = marching_cubes(volume, level=level, spacing=(2 / (resolution - 1),) * 3)
    box = torch.from_numpy(verts.copy()).float().to(device) - 1
    dirs = torch.cat([torch.eye(3), -torch.eye(3)]).to(device)
    with torch.no_grad():
        colors = torch.zeros(len(box), 3, device=device)
        for d in dirs:
            colors += torch.cat([field.query(p, d.expand(len(p), 3))[1] for p in box.split(chunk)]) / 6
    return (box * field.bound).cpu().numpy(), faces.astype(np.int64), colors.cpu().numpy()


EXPORT_SUFFIXES = (".glb", ".ply")


def export_nerf(run: str | os.PathLike, resolution: int = 256, level: float | None = None,
                device: str = "auto") -> Result:
    """A triangle mesh with vertex colours of the fitted field of `run` (marching cubes on its density);
    `result.save(MESH.glb|.ply)` writes it; `result.mesh` is the `trimesh.Trimesh`."""
    return export_field(load_nerf(run, device)[0], resolution, level)


def export_field(field: RadianceField, resolution: int = 256, level: float | None = None) -> Result:
    """`export_nerf`'s mesh of a field in memory."""
    import trimesh

    verts, faces, colors = extract_mesh(field, resolution, level)
    rgba = np.concatenate([np.round(colors * 255), np.full((len(colors), 1), 255)], 1).astype(np.uint8)
    mesh = trimesh.Trimesh(verts, faces, vertex_colors=rgba, process=False)
    return Result(images=torch.zeros(0, 3, 1, 1), extras={"mesh": mesh}, writer=_write_mesh)


def check_mesh_path(path: str | os.PathLike) -> Path:
    """`path` if it names a .glb or .ply file that can be written."""
    p = Path(path)
    if p.suffix.lower() not in EXPORT_SUFFIXES:
        raise UserError(f"a mesh file must end in .glb or .ply, got {p}")
    return check_writable(p)


def _write_mesh(result: Result, out: Path) -> dict[str, Path]:
    out = check_mesh_path(out)
    data = result.extras["mesh"].export(file_type=out.suffix.lower()[1:])
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    return {"mesh": out}

