"""Files: PNG and image grids written atomically, user images read with clear errors, sample photos."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from diffparam.errors import UserError

SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera")
"""scikit-image's sample photos used as the 'natural images' reference."""


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it to `path`, else delete it.

    No half-written file is ever left at `path`.
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=final.suffix, dir=final.parent)
    except OSError as exc:
        raise UserError(f"cannot write {final}: {exc.strerror or exc}") from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        tmp_path.unlink(missing_ok=True)


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, before long work, if a file cannot be written at `path`."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"cannot write {p}: it is a folder")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=p.parent):
            pass
    except OSError as exc:
        raise UserError(f"cannot write {p}: {exc.strerror or exc}") from exc
    return p


def to_uint8(img: Tensor) -> np.ndarray:
    """(C,H,W) in [0,1] → (H,W,C) uint8 array."""
    if img.dim() != 3 or img.shape[0] not in (1, 3, 4):
        raise UserError(f"expected an image of shape (C,H,W) with 1, 3 or 4 channels, got {tuple(img.shape)}")
    arr = img.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def make_grid(images: Tensor, ncol: int | None = None, pad: int = 2, value: float = 1.0) -> Tensor:
    """Tile a batch (B,C,H,W) into one image (C,H',W'), `ncol` per row (default: near square)."""
    b, c, h, w = images.shape
    ncol = ncol or math.ceil(math.sqrt(b))
    nrow = math.ceil(b / ncol)
    grid = images.new_full((c, nrow * (h + pad) + pad, ncol * (w + pad) + pad), value)
    for i in range(b):
        r, k = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        grid[:, y:y + h, x:x + w] = images[i]
    return grid


def save_image(img: Tensor, path: str | os.PathLike) -> Path:
    """Write one image (C,H,W) or a batch (as a grid) to a PNG/JPEG, atomically."""
    if img.dim() == 4:
        img = img[0] if img.shape[0] == 1 else make_grid(img)
    arr = to_uint8(img)
    final = Path(path)
    with atomic_path(final) as tmp:
        fmt = Image.registered_extensions().get(final.suffix.lower())
        if fmt is None:
            raise UserError(f"cannot write {final}: unknown image extension {final.suffix!r} (use .png)")
        try:
            Image.fromarray(arr).save(tmp, format=fmt)
        except OSError as exc:
            raise UserError(f"cannot write {final}: {exc}") from exc
    return final


def save_images(images: Tensor, path: str | os.PathLike, separate: bool = False) -> list[Path]:
    """Save a batch as one grid at `path`, or with `separate` as `stem_0.png`, `stem_1.png`, …."""
    p = Path(path)
    if not separate or images.shape[0] == 1:
        return [save_image(images, p)]
    return [save_image(img, p.with_name(f"{p.stem}_{i}{p.suffix}")) for i, img in enumerate(images)]


def read_image(path: str | os.PathLike, size: int | tuple[int, int] | None = None) -> Tensor:
    """Read an image file as a (1,3,H,W) tensor in [0,1]; `size` resizes (an int: shorter side)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"image not found: {p}")
    try:
        with Image.open(p) as im:
            im = im.convert("RGB")
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"cannot read image {p}: not a readable image file") from exc
    img = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()
    return img if size is None else resize(img, size)


def resize(img: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Resize a batch; an int sets the shorter side and keeps the aspect ratio."""
    h, w = img.shape[-2:]
    if isinstance(size, int):
        s = size / min(h, w)
        size = (max(1, round(h * s)), max(1, round(w * s)))
    return F.interpolate(img, size=size, mode="bilinear", align_corners=False, antialias=True)


def center_crop(img: Tensor, size: int) -> Tensor:
    """Crop the central size×size square of a batch."""
    h, w = img.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return img[..., top:top + size, left:left + size]


def sample_photos(size: int = 224, names: tuple[str, ...] = SAMPLE_PHOTOS) -> Tensor:
    """scikit-image's sample photos, shorter side resized to `size` and centre-cropped: (N,3,S,S)."""
    from skimage import data

    out = []
    for name in names:
        arr = np.asarray(getattr(data, name)(), dtype=np.float32) / 255.0
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        img = torch.from_numpy(arr[..., :3]).permute(2, 0, 1).unsqueeze(0).contiguous()
        out.append(center_crop(resize(img, size), size))
    return torch.cat(out)
