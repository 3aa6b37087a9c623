"""Camera poses for plain photos (NeRF's data step): COLMAP's structure from motion, through its Python
bindings (`pycolmap`, the optional extra `diffparam[poses]`), written as a scene folder in the
transforms.json layout that `nerf fit` reads.

SIFT features, matching (every pair, or each photo with its neighbours in name order), incremental
mapping; the largest reconstruction is kept. One camera is shared by all photos (one size). With
the default `simple_radial` model its radial distortion is estimated and the photos are written
undistorted, so the pinhole intrinsics of the file describe them exactly; `simple_pinhole` and
`pinhole` assume photos without distortion and copy them as they are. The scene is moved so that
the point nearest to every camera's optical axis (what a 360° capture looks at) is the origin,
turned upright (+y up, as in the test scenes) and scaled so that the cameras stand `distance` from
it on average, as in the test scenes and NeRF's Blender scenes: the object then lies in the
radiance field's box (`nerf fit --bound 1.5`).
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import importlib.util
import json
import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from tqdm import tqdm

from diffparam.checks import choice, int_in, positive_float
from diffparam.errors import UserError, first_line
from diffparam.io import atomic_folder, atomic_path, check_writable, save_image
from diffparam.recipes.nerf import CAMERA_DISTANCE, CAMERA_FOV, flatten, no_more_files, up_direction
from diffparam.result import Result
from diffparam.three_d.cameras import Cameras, orbit
from diffparam.three_d.mesh import from_arrays
from diffparam.three_d.posed import PosedViews, c2w_from_opencv, posed_from_cameras, write_cameras
from diffparam.three_d.raster import render_mesh
from diffparam.three_d.shapes import shape

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
MATCHING = ("exhaustive", "sequential")
CAMERA_MODELS = ("simple_radial", "simple_pinhole", "pinhole")
MIN_PHOTOS = 3
INSTALL = "pip install 'diffparam[poses]'"
BOUND = 1.5
"""`nerf fit`'s default box, [-BOUND, BOUND]³: the report counts the sparse points inside it."""
CHUNK = 8
"""Photos per feature-extraction call: the progress bar moves after each."""
PR_SET_PDEATHSIG = 1
"""prctl's option: the signal a process gets when its parent dies (Linux)."""


def check_installed() -> None:
    """A one-line error that says how to install `pycolmap` where it is missing."""
    if importlib.util.find_spec("pycolmap") is None:
        raise UserError(f"`nerf poses` needs COLMAP's Python bindings (pycolmap), which are not installed: "
                        f"{INSTALL}")


def list_photos(folder: str | os.PathLike) -> list[Path]:
    """The photos (.jpg, .jpeg, .png) directly in `folder`, by name: at least `MIN_PHOTOS`, each readable,
    all one size."""
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"photo folder not found: {root}")
    photos = sorted(p for p in root.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
    if len(photos) < MIN_PHOTOS:
        raise UserError(f"{root} holds {len(photos)} photos (.jpg, .jpeg, .png): poses need at least "
                        f"{MIN_PHOTOS} overlapping photos of one scene, 20 or more for a radiance field")
    sizes = {}
    for p in photos:
        try:
            with Image.open(p) as im:
                im.load()
                sizes[p] = im.size
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise UserError(f"cannot read photo {p}: {first_line(exc)}") from exc
    first = sizes[photos[0]]
    odd = next((p for p in photos if sizes[p] != first), None)
    if odd is not None:
        raise UserError(f"the photos have mixed sizes ({photos[0].name} is {first[0]}x{first[1]}, {odd.name} "
                        f"is {sizes[odd][0]}x{sizes[odd][1]}): give photos of one camera and size")
    return photos


def _reconstruct(pycolmap: Any, folder: Path, names: list[str], work: Path, matching: str, camera_model: str,
                 seed: int, say: Callable[..., None]) -> Any:
    """COLMAP's largest reconstruction of the photos `names` in `folder` (features, matches and mapping in
    `work`), telling `say` each stage and step."""
    db = work / "database.db"
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = camera_model.upper()
    say("stage", "features", len(names))
    for i in range(0, len(names), CHUNK):
        pycolmap.extract_features(db, folder, image_names=names[i:i + CHUNK],
                                  camera_mode=pycolmap.CameraMode.SINGLE, reader_options=reader)
        if reader.existing_camera_id < 0:  # later chunks share the first chunk's camera
            database = pycolmap.Database.open(db)
            reader.existing_camera_id = database.read_all_cameras()[0].camera_id
            database.close()
        say("step", len(names[i:i + CHUNK]))
    say("stage", f"{matching} matching", None)
    (pycolmap.match_exhaustive if matching == "exhaustive" else pycolmap.match_sequential)(db)
    options = pycolmap.IncrementalPipelineOptions()
    options.min_model_size = MIN_PHOTOS
    options.random_seed = options.mapper.random_seed = options.triangulation.random_seed = seed
    (work / "sparse").mkdir()
    say("stage", "mapping", len(names))
    models = pycolmap.incremental_mapping(db, folder, work / "sparse", options,
                                          next_image_callback=lambda: say("step", 1))
    if not models:
        raise UserError(f"COLMAP found no camera poses for the {len(names)} photos: they must overlap, show "
                        "a textured, still scene and differ in viewpoint (not only by turning the camera)")
    return max(models.values(), key=lambda r: r.num_reg_images())


def _solve(folder: Path, names: list[str], work: Path, matching: str, camera_model: str, seed: int,
           say: Callable[..., None]) -> dict[str, Any]:
    """The registered photos of COLMAP's reconstruction in plain arrays: names (sorted), world-to-camera
    matrices (N,3,4, OpenCV's convention), pinhole intrinsics (N,4: fx, fy, cx, cy), the size, the sparse
    points (P,3), the radial distortion, the reprojection error, and the folder of the pictures these
    describe (the photos undistorted into `work` with `simple_radial`)."""
    import pycolmap

    pycolmap.logging.minloglevel = 3  # silent: failures are told as one line by the parent
    rec = _reconstruct(pycolmap, folder, names, work, matching, camera_model, seed, say)
    cam = rec.cameras[next(iter(rec.cameras))]
    k1 = float(cam.params[3]) if camera_model == "simple_radial" else 0.0
    error = float(rec.compute_mean_reprojection_error())
    source = folder
    if camera_model == "simple_radial":  # pictures and cameras without the distortion
        say("stage", "undistorting", None)
        (work / "model").mkdir()
        rec.write(work / "model")
        pycolmap.undistort_images(work / "undistorted", work / "model", folder)
        rec = pycolmap.Reconstruction(work / "undistorted" / "sparse")
        source = work / "undistorted" / "images"
    images = sorted((rec.images[i] for i in rec.reg_image_ids()), key=lambda im: im.name)
    cams = [rec.cameras[im.camera_id] for im in images]
    return {"names": [im.name for im in images],
            "w2c": np.stack([im.cam_from_world().matrix() for im in images]),
            "intrinsics": np.array([[c.focal_length_x, c.focal_length_y, c.principal_point_x,
                                     c.principal_point_y] for c in cams]),
            "height": int(cams[0].height), "width": int(cams[0].width),
            "points": np.array([p.xyz for p in rec.points3D.values()]).reshape(-1, 3),
            "k1": k1, "error": error, "source": str(source)}


def _die_with_parent(parent: int) -> None:
    """Linux: have the kernel kill this process when its parent dies (even by kill -9)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(137)


def _child(conn: Connection, parent: int, *args: Any) -> None:
    """`_solve` in a process of its own, its messages and outcome sent through `conn`."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent ends this one
    faulthandler.disable()  # a crash is the parent's one-line error, not a stack dump
    try:
        conn.send(("done", _solve(*args, say=lambda *message: conn.send(message))))
    except UserError as exc:
        conn.send(("error", str(exc)))
    except Exception as exc:
        conn.send(("error", f"COLMAP failed: {type(exc).__name__}: {first_line(exc)}"))
    conn.close()


def _run(folder: Path, names: list[str], work: Path, matching: str, camera_model: str, seed: int,
         progress: bool) -> dict[str, Any]:
    """`_solve` in a child process, with a progress bar per stage: COLMAP's calls cannot be interrupted
    cleanly (a cancelled call leaves threads that abort the program), so Ctrl-C and SIGTERM kill the
    child, and a crash in it becomes a one-line error."""
    context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, daemon=True,
                            args=(send, os.getpid(), folder, names, work, matching, camera_model, seed))
    show = progress and sys.stderr.isatty()
    bar = None
    child.start()
    send.close()
    try:
        while True:
            if not receive.poll(0.2):
                if bar is not None:
                    bar.refresh()  # the clock of a stage without steps moves
                continue
            message = receive.recv()
            if message[0] == "stage":
                if bar is not None:
                    bar.close()
                bar = tqdm(total=message[2], desc=f"poses: {message[1]}", unit="photo", disable=not show,
                           leave=False, bar_format=None if message[2] else "{desc} {elapsed}")
            elif message[0] == "step":
                bar.update(min(message[1], bar.total - bar.n))
            elif message[0] == "error":
                raise UserError(message[1])
            else:
                return message[1]
    except EOFError:
        child.join()
        raise UserError(f"COLMAP stopped unexpectedly (exit {child.exitcode}) on the photos in {folder}"
                        ) from None
    finally:
        if bar is not None:
            bar.close()
        if child.is_alive():
            child.kill()
        child.join()
        receive.close()


def look_at_point(c2w: Tensor) -> Tensor | None:
    """The point (3,) nearest, in least squares, to every camera's optical axis (OpenGL camera-to-world
    matrices); None when the axes are nearly parallel (no point is looked at)."""
    c2w = c2w.double()
    centres, forward = c2w[:, :3, 3], -c2w[:, :3, 2]
    proj = torch.eye(3, dtype=torch.float64) - forward[:, :, None] * forward[:, None, :]  # off-axis parts
    a, b = proj.sum(0), (proj @ centres[:, :, None]).sum(0)[:, 0]
    if float(torch.linalg.eigvalsh(a / len(c2w))[0]) < 0.02:  # axes within ~8° of one direction
        return None
    return torch.linalg.solve(a, b)


def normalise(c2w: Tensor, points: Tensor, distance: float) -> tuple[Tensor, Tensor]:
    """Camera-to-world matrices moved so that the point the cameras look at (else the sparse points'
    median) is the origin, turned so that the scene's up (`nerf.up_direction`) is +y and the first
    camera's x axis lies in the x-y plane, and scaled so that they stand `distance` from the origin on
    average; with the transform (4,4) applied to the world (a similarity). Upright, a floor or a table
    lies along the axes of a radiance field's grids."""
    c2w = c2w.double()
    centre = look_at_point(c2w)
    if centre is None:
        centre = points.double().median(0).values if len(points) else c2w[:, :3, 3].mean(0)
    scale = distance / max(float((c2w[:, :3, 3] - centre).norm(dim=1).mean()), 1e-12)
    up = up_direction(c2w)
    x = torch.nn.functional.normalize(c2w[0, :3, 0] - (c2w[0, :3, 0] @ up) * up, dim=0)
    world = torch.eye(4, dtype=torch.float64)
    world[:3, :3] = scale * torch.stack([x, up, torch.linalg.cross(x, up)])  # rows: the new axes
    world[:3, 3] = -world[:3, :3] @ centre
    out = world @ c2w
    out[:, :3, :3] /= scale  # rotations stay rotations
    return out, world


def held_out(n: int, test: int) -> list[int]:
    """Indices of `test` of `n` frames spread evenly through them (none when `test` is 0)."""
    return sorted({round(i) for i in np.linspace(0, n - 1, test + 2)[1:-1]}) if test else []


def _write_scene(folder: Path, views: PosedViews, source: Path, test_ids: list[int], report: dict[str, Any]
                 ) -> dict[str, Path]:
    """The scene folder, whole or not at all: the pictures of `views` (from `source`) in images/, their
    cameras in transforms.json (and the train/test splits), and `report` as poses.json."""
    written = {}
    with atomic_folder(folder) as tmp:
        (tmp / "images").mkdir()
        for name in views.names:
            shutil.copyfile(source / Path(name).name, tmp / name)
        extra = {"camera_model": "PINHOLE"}
        written["transforms"] = write_cameras(views, tmp / "transforms.json", extra)
        if test_ids:
            train = [i for i in range(len(views)) if i not in test_ids]
            for split, ids in (("train", train), ("test", test_ids)):
                part = PosedViews(views.c2w[ids], views.intrinsics[ids], views.height, views.width,
                                  [views.names[i] for i in ids])
                written[split] = write_cameras(part, tmp / f"transforms_{split}.json", extra)
        written["report"] = tmp / "poses.json"
        with atomic_path(written["report"]) as path:
            path.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return {key: folder / path.name for key, path in written.items()}


def estimate_poses(photos: str | os.PathLike, out: str | os.PathLike, matching: str = "exhaustive",
                   camera_model: str = "simple_radial", test: int = 0, distance: float = CAMERA_DISTANCE,
                   seed: int = 0, progress: bool = True) -> Result:
    """Estimate the cameras of the photos in the folder `photos` with COLMAP and write the scene folder
    `out`: `images/` (the registered photos, undistorted with `simple_radial`), `transforms.json` (all
    of them), with `test` > 0 also `transforms_train.json` and `transforms_test.json` (every k-th photo
    held out), and `poses.json` (what was registered, what was not, the similarity applied to COLMAP's
    world)."""
    check_installed()
    matching = choice("matching", matching, MATCHING)
    camera_model = choice("camera_model", camera_model, CAMERA_MODELS)
    test = int_in("test", test, 0, 100_000)
    distance = positive_float("distance", distance)
    seed = int_in("seed", seed, 0, 2**31 - 1)
    folder = Path(out)
    check_writable(folder / "transforms.json")
    if folder.is_dir() and any(folder.iterdir()):
        raise UserError(f"--out {folder} is not empty: give a new or empty folder for the scene")
    files = list_photos(photos)
    if test and (len(held_out(len(files), test)) != test or test >= len(files)):
        raise UserError(f"`test` {test} leaves too few of the {len(files)} photos to train on: hold out "
                        "fewer")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="diffparam-poses-") as tmp:
        found = _run(files[0].parent, [p.name for p in files], Path(tmp), matching, camera_model, seed,
                     progress)
        if len(found["names"]) < MIN_PHOTOS:
            raise UserError(f"COLMAP placed only {len(found['names'])} of the {len(files)} photos: they must "
                            "overlap more, show a textured, still scene and differ in viewpoint")
        points = torch.from_numpy(found["points"])
        c2w, world = normalise(c2w_from_opencv(torch.from_numpy(found["w2c"])), points, distance)
        views = PosedViews(c2w.float(), torch.from_numpy(found["intrinsics"]).float(), found["height"],
                           found["width"], [f"images/{name}" for name in found["names"]])
        test_ids = held_out(len(views), test)
        if test and (len(test_ids) != test or test >= len(views)):
            raise UserError(f"`test` {test} leaves too few of the {len(views)} registered photos to train "
                            "on: hold out fewer")
        moved = points.double() @ world[:3, :3].T + world[:3, 3]
        inside = moved.abs().amax(1).le(BOUND).double()  # points in the field's box
        report = {"photos": len(files), "registered": len(views),
                  "unregistered": [p.name for p in files if p.name not in found["names"]],
                  "matching": matching, "camera_model": camera_model, "radial_distortion_k1": found["k1"],
                  "mean_reprojection_error_px": round(found["error"], 4), "points": len(points),
                  "points_in_box": round(float(inside.mean()), 4), "world_from_colmap": world.tolist(),
                  "test": [views.names[i] for i in test_ids],
                  "seconds": round(time.perf_counter() - start, 2)}
        files_out = _write_scene(folder, views, Path(found["source"]), test_ids, report)
    return Result(images=torch.zeros(0, 3, 1, 1), seconds=report["seconds"], metrics=report, files=files_out,
                  extras={"views": views}, writer=no_more_files)


def similarity(source: Tensor, target: Tensor) -> tuple[float, Tensor, Tensor]:
    """Scale s, rotation R (3,3) and shift t with s R p + t nearest to `target` (N,3) for the points p of
    `source` (N,3), in least squares (Umeyama 1991): how estimated cameras are compared with true ones,
    whose frame and scale they cannot know."""
    src, dst = source.double(), target.double()
    a, b = src - src.mean(0), dst - dst.mean(0)
    u, d, vt = torch.linalg.svd(b.T @ a / len(a))
    flip = torch.ones(3, dtype=torch.float64)
    flip[2] = torch.sign(torch.linalg.det(u @ vt))
    rot = u @ torch.diag(flip) @ vt
    scale = float((d * flip).sum() / a.pow(2).sum(1).mean())
    return scale, rot, dst.mean(0) - scale * rot @ src.mean(0)


def pose_errors(estimated: Tensor, true: Tensor) -> tuple[Tensor, Tensor]:
    """Per camera, the distance (in the true units) between the estimated centre, moved by the
    `similarity` of all estimated centres onto the true ones, and the true centre, and the angle
    (degrees) between the estimated orientation so turned and the true one; camera-to-world (N,4,4)."""
    est, ref = estimated.double(), true.double()
    scale, rot, shift = similarity(est[:, :3, 3], ref[:, :3, 3])
    centre = (scale * est[:, :3, 3] @ rot.T + shift - ref[:, :3, 3]).norm(dim=1)
    rel = ref[:, :3, :3].transpose(1, 2) @ rot @ est[:, :3, :3]  # the turn left between them
    cos = (rel.diagonal(dim1=1, dim2=2).sum(1) - 1) / 2
    sin = torch.stack([rel[:, 2, 1] - rel[:, 1, 2], rel[:, 0, 2] - rel[:, 2, 0], rel[:, 1, 0] - rel[:, 0, 1]],
                      1).norm(dim=1) / 2
    return centre, torch.rad2deg(torch.atan2(sin, cos))  # well conditioned at small angles, unlike arccos


def make_photos(out: str | os.PathLike, views: int = 24, size: int = 200, seed: int = 0) -> PosedViews:
    """Plain photos (RGB PNGs on white) of a test scene for `estimate_poses`, written to the folder `out`:
    the knot standing on a floor, both textured with colourful noise of many scales (features for
    SIFT), seen from `views` cameras on two rings around it (15° and 40° up, the second turned half a
    step); returns their true cameras and pictures."""
    views, size = int_in("views", views, MIN_PHOTOS, 1000), int_in("size", size, 32, 2048)
    generator = torch.Generator().manual_seed(seed)
    texture = sum(torch.nn.functional.interpolate(torch.rand(1, 3, n, n, generator=generator), size=512,
                                                  mode="bicubic", align_corners=False)
                  for n in (8, 16, 32, 64, 128))
    texture = ((texture - texture.mean()) / texture.std() * 0.25 + 0.5).clamp(0, 1)
    knot = shape("knot")
    r, y = 3.0, -1.2
    floor = torch.tensor([[-r, y, -r], [r, y, -r], [r, y, r], [-r, y, r]])
    mesh = from_arrays(torch.cat([knot.vertices * 2, floor]),
                       torch.cat([knot.faces, torch.tensor([[0, 2, 1], [0, 3, 2]]) + len(knot.vertices)]),
                       torch.cat([knot.uv, torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])]),
                       name="knot on a floor", normalize=False)
    low = views // 2
    step = torch.tensor([360 / low] * low + [360 / (views - low)] * (views - low), dtype=torch.float64)
    index = torch.cat([torch.arange(low), torch.arange(views - low) + 0.5]).double()
    elevation = torch.tensor([15.0] * low + [40.0] * (views - low), dtype=torch.float64)
    full = torch.ones(views, dtype=torch.float64)
    cams = orbit(index * step, elevation, full * CAMERA_DISTANCE, full * CAMERA_FOV)
    cams = Cameras(cams.view.float(), cams.fov.float())
    rgba = torch.cat([render_mesh(mesh, Cameras(cams.view[i:i + 8], cams.fov[i:i + 8]), size, texture,
                                  supersample=2) for i in range(0, views, 8)])
    names = [f"photo_{i:03d}.png" for i in range(views)]
    images = flatten(rgba, 1.0)
    for name, image in zip(names, images, strict=True):
        save_image(image, Path(out) / name)
    true = posed_from_cameras(cams, size, names)
    return PosedViews(true.c2w, true.intrinsics, size, size, names, images)
