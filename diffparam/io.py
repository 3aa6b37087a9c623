"""Files: PNG, image grids and GIF/MP4 animations written atomically, user images read with clear
errors, sample photos."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from diffparam.checks import positive_float, shape
from diffparam.errors import UserError

SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera")
"""scikit-image's sample photos used as the 'natural images' reference."""


def temp_beside(path: str | os.PathLike) -> Path:
    """A new empty temporary file in `path`'s folder with the same suffix (for write-then-rename)."""
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=final.suffix, dir=final.parent)
    except OSError as exc:
        raise UserError(f"cannot write {final}: {exc.strerror or exc}") from exc
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a finished file gets the usual mode
    return Path(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it to `path`, else delete it.

    No half-written file is ever left at `path`.
    """
    tmp_path = temp_beside(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, before long work, if a file cannot be written at `path`.

    Leaves no trace: folders made to try are removed again (the writers make them when they write).
    """
    p = Path(path)
    if p.is_dir():
        raise UserError(f"cannot write {p}: it is a folder")
    missing = [d for d in (p.parent, *p.parent.parents) if not d.exists()]
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=p.parent):
            pass
    except OSError as exc:
        raise UserError(f"cannot write {p}: {exc.strerror or exc}") from exc
    finally:
        for folder in missing:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
    return p


def to_uint8(img: Tensor) -> np.ndarray:
    """(C,H,W) in [0,1] → (H,W,C) uint8 array."""
    shape("an image", img, "C,H,W", C=(1, 3, 4))
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


ANIMATION_SUFFIXES = (".gif", ".mp4")


def check_animation(path: str | os.PathLike, what: str = "an animation") -> Path:
    """`path` if it names an animation file (.gif or .mp4) that can be written; the name is checked
    first, so a wrong one touches nothing."""
    out = Path(path)
    if out.suffix.lower() not in ANIMATION_SUFFIXES:
        raise UserError(f"{what} must end in .gif or .mp4, got {out}")
    return check_writable(out)


class AnimationWriter:
    """Write frames (C,H,W) in [0,1] one at a time to a GIF or an MP4 (chosen by the suffix).

    Frames go to disk as they come, so long runs hold none in memory: an MP4 is piped to ffmpeg
    (imageio-ffmpeg) frame by frame; a GIF's frames wait as PNGs in a temporary folder and are
    assembled on `close()` (a GIF's palette needs them all). The file appears, atomically, only
    when the writer closes without an error. RGBA frames are flattened over white.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 12.0) -> None:
        self.fps = positive_float("fps", fps, hint="(frames per second)")
        self.path = check_animation(path)
        suffix = self.path.suffix.lower()
        self.count = 0
        self._size: tuple[int, int] | None = None
        self._tmp = temp_beside(self.path)
        self._frames_dir: Path | None = None
        self._ffmpeg = None
        if suffix == ".gif":
            self._frames_dir = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
        else:
            import imageio.v2 as imageio

            self._ffmpeg = imageio.get_writer(self._tmp, format="FFMPEG", mode="I", fps=self.fps,
                                              codec="libx264", quality=8, macro_block_size=2)

    def add(self, frame: Tensor) -> None:
        """Append one frame; every frame must have the first frame's height and width."""
        arr = to_uint8(frame)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        if arr.shape[-1] == 4:
            alpha = arr[..., 3:].astype(np.float32) / 255.0
            arr = (arr[..., :3] * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
        size = arr.shape[:2]
        if self._size is None:
            self._size = size
        elif size != self._size:
            raise UserError(f"animation frames must all be {self._size[0]}x{self._size[1]}, "
                            f"got {size[0]}x{size[1]}")
        if self._ffmpeg is not None:
            if size[0] % 2 or size[1] % 2:  # H.264 needs even sizes: repeat the last row/column
                arr = np.pad(arr, ((0, size[0] % 2), (0, size[1] % 2), (0, 0)), mode="edge")
            self._ffmpeg.append_data(arr)
        else:
            assert self._frames_dir is not None
            Image.fromarray(arr).save(self._frames_dir / f"{self.count:06d}.png")
        self.count += 1

    def close(self, ok: bool = True) -> Path:
        """Finish the file (or, with `ok=False`, discard it) and return its path."""
        try:
            if ok and self.count == 0:
                raise UserError(f"no frames were written to {self.path}")
            if self._ffmpeg is not None:
                self._ffmpeg.close()
            elif ok:
                self._write_gif()
        except BaseException:
            ok = False
            raise
        finally:
            if self._frames_dir is not None:
                shutil.rmtree(self._frames_dir, ignore_errors=True)
            if ok:
                os.replace(self._tmp, self.path)
            self._tmp.unlink(missing_ok=True)
        return self.path

    def _write_gif(self) -> None:
        assert self._frames_dir is not None
        files = sorted(self._frames_dir.glob("*.png"))
        frames = (Image.open(f).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
                  for f in files[1:])
        first = Image.open(files[0]).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        first.save(self._tmp, format="GIF", save_all=True, append_images=frames, loop=0,
                   duration=round(1000 / self.fps), optimize=False)

    def __enter__(self) -> AnimationWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(ok=exc_type is None)


def save_animation(frames: Iterable[Tensor] | Tensor, path: str | os.PathLike, fps: float = 12.0) -> Path:
    """Write frames (an iterable of (C,H,W), or a (N,C,H,W) batch) as a GIF or MP4 at `path`."""
    with AnimationWriter(path, fps) as writer:
        for frame in frames:
            writer.add(frame)
    return writer.path
