"""Posed views in the `transforms.json` layout (NeRF's synthetic "Blender" scenes, instant-ngp and
nerfstudio): reading and writing them, camera conversions, and the rays through their pixels.

A frame's `transform_matrix` is camera-to-world in OpenGL's convention (the camera looks down -z,
y is up), the inverse of `Cameras.view`. Intrinsics are `camera_angle_x` (horizontal field of view,
radians; optional `camera_angle_y`) or pixel focal lengths `fl_x`, `fl_y` with a principal point
`cx`, `cy` and a size `w`, `h`, at the top level or per frame. Pixel (i, j) is seen through its
centre, as the rasteriser draws it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from diffparam.errors import UserError, first_line
from diffparam.io import atomic_path, save_image
from diffparam.three_d.cameras import Cameras

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class PosedViews:
    """N posed pictures: camera-to-world matrices (N,4,4), intrinsics (N,4) as fx, fy, cx, cy in
    pixels, the image size, each frame's `file_path` as written, and the images (N,C,H,W) in [0,1]
    (C = 4 for RGBA, 3 for RGB; None for cameras without pictures)."""

    c2w: Tensor
    intrinsics: Tensor
    height: int
    width: int
    names: list[str]
    images: Tensor | None = None

    def __len__(self) -> int:
        return int(self.c2w.shape[0])

    def part(self, start: int, stop: int) -> PosedViews:
        """PosedViews `start` to `stop` (exclusive), with their images."""
        images = None if self.images is None else self.images[start:stop]
        return PosedViews(self.c2w[start:stop], self.intrinsics[start:stop], self.height, self.width,
                     self.names[start:stop], images)

    def rays(self, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """Origins and unit directions (N,H,W,3) of the rays through every pixel centre."""
        c2w, k = self.c2w.to(device), self.intrinsics.to(device)
        i, j = torch.meshgrid(torch.arange(self.height, device=device, dtype=torch.float32) + 0.5,
                              torch.arange(self.width, device=device, dtype=torch.float32) + 0.5,
                              indexing="ij")
        x = (j - k[:, 2, None, None]) / k[:, 0, None, None]
        y = -(i - k[:, 3, None, None]) / k[:, 1, None, None]
        cam = torch.stack([x, y, -torch.ones_like(x)], -1)  # (N,H,W,3)
        dirs = torch.nn.functional.normalize(torch.einsum("nij,nhwj->nhwi", c2w[:, :3, :3], cam), dim=-1)
        return c2w[:, None, None, :3, 3].expand_as(dirs), dirs


def posed_from_cameras(cameras: Cameras, size: int, names: list[str]) -> PosedViews:
    """`PosedViews` (square, `size` px) of `Cameras`: their view matrices inverted, their vertical field of
    view as focal lengths."""
    c2w = torch.linalg.inv(cameras.view.double()).float()
    focal = size / (2 * torch.tan(torch.deg2rad(cameras.fov.double()) / 2))
    half = torch.full_like(focal, size / 2)
    return PosedViews(c2w, torch.stack([focal, focal, half, half], 1).float(), size, size, names)


OPENCV_TO_OPENGL = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))
"""Flips a camera's y and z axes: OpenCV's and COLMAP's camera (x right, y down, looking down +z) to
OpenGL's (x right, y up, looking down -z), and back."""


def c2w_from_opencv(world_to_camera: Tensor) -> Tensor:
    """Camera-to-world matrices (N,4,4) in OpenGL's convention, float64, of world-to-camera matrices
    (N,3,4) or (N,4,4) in OpenCV's convention, as COLMAP estimates them."""
    w2c = world_to_camera.double()
    if w2c.shape[-2:] == (3, 4):
        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64).expand(len(w2c), 1, 4)
        w2c = torch.cat([w2c, bottom], 1)
    rot, t = w2c[:, :3, :3], w2c[:, :3, 3:]
    c2w = torch.eye(4, dtype=torch.float64).repeat(len(w2c), 1, 1)
    c2w[:, :3, :3] = rot.transpose(1, 2)  # a rotation's inverse is its transpose
    c2w[:, :3, 3:] = -rot.transpose(1, 2) @ t
    return c2w @ OPENCV_TO_OPENGL


def _number(frame: dict, meta: dict, key: str) -> float | None:
    value = frame.get(key, meta.get(key))
    if value is None:
        return None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value <= 0:
        raise UserError(f"`{key}` must be a positive number, got {value!r}")
    return float(value)


def _intrinsics(frame: dict, meta: dict, width: int, height: int) -> list[float]:
    """fx, fy, cx, cy in pixels of a `width`×`height` image, from the frame's keys or the file's."""
    w, h = _number(frame, meta, "w") or width, _number(frame, meta, "h") or height  # what they refer to
    fx, fy = _number(frame, meta, "fl_x"), _number(frame, meta, "fl_y")
    angle_x, angle_y = _number(frame, meta, "camera_angle_x"), _number(frame, meta, "camera_angle_y")
    if fx is None and angle_x is not None:
        fx = 0.5 * w / math.tan(angle_x / 2)
    if fy is None and angle_y is not None:
        fy = 0.5 * h / math.tan(angle_y / 2)
    if fx is None and fy is None:
        raise UserError("the cameras have no focal length: give `camera_angle_x` or `fl_x`")
    fx, fy = fx or fy, fy or fx
    sx, sy = width / w, height / h  # intrinsics given for another resolution are scaled to the images'
    cx, cy = _number(frame, meta, "cx") or w / 2, _number(frame, meta, "cy") or h / 2
    return [fx * sx, fy * sy, cx * sx, cy * sy]


def _image_file(root: Path, file_path: str) -> Path:
    p = root / file_path
    if p.suffix.lower() not in (".png", ".jpg", ".jpeg", ".exr") and p.with_suffix(".png").is_file():
        return p.with_suffix(".png")  # Blender scenes name "./train/r_0" for ./train/r_0.png
    if not p.is_file():
        raise UserError(f"image not found: {p} (frame file_path {file_path!r})")
    return p


def _read_rgba(path: Path) -> np.ndarray:
    """(H,W,4) float32 in [0,1]: RGB images get alpha 1."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UserError(f"cannot read image {path}: {first_line(exc)}") from exc


def _matrix(frame: dict, index: int, where: Path) -> list[list[float]]:
    m = frame.get("transform_matrix")
    try:
        arr = np.asarray(m, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.zeros(0)
    if arr.shape not in ((4, 4), (3, 4)):
        raise UserError(f"{where}: frame {index}'s transform_matrix must be a 4x4 (or 3x4) matrix, got "
                        f"{'shape ' + str(arr.shape) if arr.size else repr(m)[:40]}")
    if not np.isfinite(arr).all():
        raise UserError(f"{where}: frame {index}'s transform_matrix has NaN or infinite values")
    if arr.shape == (3, 4):
        arr = np.concatenate([arr, [[0, 0, 0, 1]]])
    return arr.tolist()


def _transforms_file(source: Path, split: str) -> Path | None:
    """The file of `split` in a scene folder (transforms_SPLIT.json, else transforms.json for train),
    or `source` itself, a file, for train; None when there is no such split."""
    if source.is_file():
        return source if split == "train" else None
    if not source.is_dir():
        raise UserError(f"scene not found: {source}")
    own = source / f"transforms_{split}.json"
    if own.is_file():
        return own
    if split == "train" and (source / "transforms.json").is_file():
        return source / "transforms.json"
    if split == "train":
        raise UserError(f"{source} holds no transforms.json or transforms_train.json")
    return None


def read_cameras(path: str | os.PathLike) -> tuple[dict, list[dict], Path]:
    """A transforms.json file's top-level keys and frames, with a one-line error for a bad file."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"cameras file not found: {p}")
    try:
        meta = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read {p}: not a JSON file ({first_line(exc)})") from exc
    frames = meta.get("frames") if isinstance(meta, dict) else None
    if not isinstance(frames, list) or not frames or not all(isinstance(f, dict) for f in frames):
        raise UserError(f"{p} has no \"frames\": a transforms.json lists its frames")
    return meta, frames, p


def load_posed(source: str | os.PathLike, split: str = "train", images: bool = True,
               size: tuple[int, int] | None = None) -> PosedViews | None:
    """The frames of `split` from a scene folder or one transforms.json file (None when the folder has
    no file for that split). With `images`, the pictures are read and must all be one size; without,
    the file's `w`, `h` give it, else `size` (height, width)."""
    found = _transforms_file(Path(source), split)
    if found is None:
        return None
    meta, frames, path = read_cameras(found)
    names, c2w, pictures = [], [], []
    for n, frame in enumerate(frames):
        name = frame.get("file_path", f"frame_{n:04d}")
        if not isinstance(name, str) or not name:
            raise UserError(f"{path}: frame {n}'s file_path must be a file name, got {name!r}")
        names.append(name)
        c2w.append(_matrix(frame, n, path))
        if images:
            pictures.append(_read_rgba(_image_file(path.parent, name)))
            if pictures[-1].shape != pictures[0].shape:
                raise UserError(f"{path}: the images have mixed sizes ({pictures[0].shape[1]}x"
                                f"{pictures[0].shape[0]} and {pictures[-1].shape[1]}x{pictures[-1].shape[0]} "
                                f"for {name}); give images of one size")
    w, h = _number({}, meta, "w"), _number({}, meta, "h")
    if images:
        height, width = pictures[0].shape[:2]
    elif w and h:
        height, width = int(h), int(w)
    elif size is not None:
        height, width = size
    else:
        raise UserError(f"{path} gives no image size (`w`, `h`): pass one")
    k = [_intrinsics(f, meta, width, height) for f in frames]
    stacked = None
    if images:
        stacked = torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).contiguous()
        if bool((stacked[:, 3] == 1).all()):
            stacked = stacked[:, :3].contiguous()  # no transparency anywhere: RGB
    return PosedViews(torch.tensor(c2w, dtype=torch.float32), torch.tensor(k, dtype=torch.float32),
                 int(height), int(width), names, stacked)


def write_posed(views: PosedViews, folder: str | os.PathLike, split: str) -> Path:
    """Write `views` (with images) as `folder/SPLIT/NAME.png` and `folder/transforms_SPLIT.json` in the
    Blender layout (file paths without extension), each file atomically, the JSON last."""
    if views.images is None:
        raise UserError("these views have no images to write")
    root = Path(folder)
    fx = float(views.intrinsics[0, 0])
    frames = []
    for name, image, c2w in zip(views.names, views.images, views.c2w, strict=True):
        save_image(image, root / f"{name}.png")
        frames.append({"file_path": f"./{name}", "transform_matrix": c2w.tolist()})
    meta = {"camera_angle_x": 2 * math.atan(0.5 * views.width / fx), "w": views.width, "h": views.height,
            "frames": frames}
    out = root / f"transforms_{split}.json"
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return out


def write_cameras(views: PosedViews, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write the cameras of `views` atomically as the transforms.json-layout file `path` (instant-ngp's
    and nerfstudio's keys): pixel intrinsics `fl_x`, `fl_y`, `cx`, `cy` and the size `w`, `h`, at the top
    level when every frame shares them, else per frame; each frame's `file_path` as named; `extra`
    top-level keys besides."""
    size = {"w": views.width, "h": views.height}
    keys = [dict(zip(("fl_x", "fl_y", "cx", "cy"), k, strict=True)) for k in views.intrinsics.tolist()]
    shared = all(k == keys[0] for k in keys)
    frames = [{"file_path": name, "transform_matrix": c2w.tolist(), **({} if shared else k)}
              for name, c2w, k in zip(views.names, views.c2w, keys, strict=True)]
    meta = {**(extra or {}), **(keys[0] if shared else {}), **size, "frames": frames}
    out = Path(path)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return out
