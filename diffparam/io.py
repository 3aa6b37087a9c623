"""Files: PNG, image grids and GIF/MP4 animations written atomically, user images read with clear
errors, sample photos."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError
from torch import Tensor

from diffparam.checks import IMAGE_SIZES, real, shape
from diffparam.errors import UserError, first_line

SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera")
"""scikit-image's sample photos used as the 'natural images' reference."""

REFERENCE_PHOTOS = (*SAMPLE_PHOTOS, "hubble_deep_field", "immunohistochemistry", "retina", "brick", "grass",
                    "gravel", "coins", "moon", "clock")
"""Every natural photo scikit-image ships with its wheel (none is downloaded): the default reference
set of `reference_photos`."""


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


def missing_folders(path: str | os.PathLike) -> list[Path]:
    """The folders above `path` that do not exist yet, deepest first (to remove after a failure)."""
    return [d for d in Path(path).parents if not d.exists()]


def remove_empty(folders: list[Path]) -> None:
    """Remove each of `folders` (deepest first) that is empty: what a failed write made and left."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path` (a new or empty folder); on success it becomes `path`,
    else it is removed with the folders made for it: a folder of many files appears whole or not at
    all."""
    folder = Path(path)
    made = missing_folders(folder / "_")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    except OSError as exc:
        raise UserError(f"cannot write {folder}: {exc.strerror or exc}") from exc
    try:
        tmp.chmod(0o777 & ~_umask())  # mkdtemp's 0700 would make the finished folder private
        yield tmp
        if folder.exists():
            folder.rmdir()
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_empty(made)
        raise


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it to `path`, else delete it (and
    the folders made for it, when they stay empty).

    No half-written file is ever left at `path`.
    """
    made = missing_folders(path)
    tmp_path = temp_beside(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        remove_empty(made)
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


NAME_MAX = 255
"""Longest file name (bytes) the usual file systems take; a temporary name needs room beside it."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""The image files diffparam writes."""


def check_run_folder(out: str | os.PathLike, marker: str, what: str) -> Path:
    """`out` if a training run can be written there: a new or empty folder, or a folder holding `marker`
    (the file a `what` run leaves: a run to resume); fails before any work otherwise."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {folder} is a file: give a folder for the {what}")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / marker).is_file():
        raise UserError(f"--out {folder} is not empty and holds no {marker} of a {what} to resume: give a "
                        "new or empty folder")
    check_writable(folder / marker)
    return folder


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, before long work, if a file cannot be written at `path`.

    Leaves no trace: folders made to try are removed again (the writers make them when they write).
    """
    p = Path(path)
    longest = NAME_MAX - len(".") - len(".XXXXXXXX") - len(p.suffix)  # room for `temp_beside`'s name
    if len(os.fsencode(p.name)) > longest:
        raise UserError(f"cannot write {p.name[:40]}…: the file name is {len(os.fsencode(p.name))} bytes "
                        f"long, at most {longest} can be written safely")
    if p.is_dir():
        raise UserError(f"cannot write {p}: it is a folder")
    blocking = next((d for d in p.parents if d.exists() and not d.is_dir()), None)
    if blocking is not None:
        raise UserError(f"cannot write {p}: {blocking} is a file, not a folder")
    missing = missing_folders(p)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=p.parent):
            pass
    except OSError as exc:
        raise UserError(f"cannot write {p}: {(exc.strerror or str(exc)).lower()}") from exc
    finally:
        remove_empty(missing)
    return p


def check_image_path(path: str | os.PathLike, what: str = "an image") -> Path:
    """`path` if it names an image file (.png, .jpg) that can be written; the name is checked first,
    so a wrong one touches nothing."""
    p = Path(path)
    if p.suffix.lower() not in IMAGE_SUFFIXES:
        shown = f"{p}/" if str(path).endswith(("/", os.sep)) else str(p)
        raise UserError(f"{what} must be a .png or .jpg file, got {shown}")
    return check_writable(p)


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
    """Write one image (C,H,W) or a batch (as a grid) to a PNG/JPEG, atomically. An image of other than
    1, 3 or 4 channels (for a multispectral model) is written as its channels in grey, side by side."""
    if img.dim() == 4:
        img = img[0] if img.shape[0] == 1 else make_grid(img)
    if img.dim() == 3 and img.shape[0] not in (1, 3, 4):
        img = make_grid(img[:, None], ncol=img.shape[0])
    arr = to_uint8(img)
    final = Path(path)
    fmt = Image.registered_extensions().get(final.suffix.lower())
    if fmt is None or final.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"cannot write {final}: unknown image extension {final.suffix!r} (use .png)")
    with atomic_path(final) as tmp:
        try:
            Image.fromarray(arr).save(tmp, format=fmt)
        except OSError as exc:
            raise UserError(f"cannot write {final}: {(exc.strerror or str(exc)).lower()}") from exc
    return final


def load_array(path: str | os.PathLike) -> Tensor:
    """A float tensor from a .npy file or a .pt/.pth file holding one tensor (a vector or matrix the
    user saved), with a one-line error for anything else."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"{p}: no such file")
    suffix = p.suffix.lower()
    if suffix not in (".npy", ".pt", ".pth"):
        raise UserError(f"cannot read {p}: give a .npy, .pt or .pth file")
    try:
        if suffix == ".npy":
            values = torch.from_numpy(np.load(p, allow_pickle=False))
        else:
            values = torch.load(p, map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError, EOFError) as exc:
        what = "not a NumPy array file" if suffix == ".npy" else first_line(exc)
        raise UserError(f"cannot read {p}: {what}") from exc
    if not isinstance(values, Tensor):
        raise UserError(f"{p} holds a {type(values).__name__}, not one tensor")
    if not (values.is_floating_point() or values.dtype in (torch.int32, torch.int64)):
        raise UserError(f"{p} holds {values.dtype} values, not numbers")
    return values.float()


def save_images(images: Tensor, path: str | os.PathLike, separate: bool = False) -> list[Path]:
    """Save a batch as one grid at `path`, or with `separate` as `stem_0.png`, `stem_1.png`, …."""
    p = Path(path)
    if not separate or images.shape[0] == 1:
        return [save_image(images, p)]
    return [save_image(img, p.with_name(f"{p.stem}_{i}{p.suffix}")) for i, img in enumerate(images)]


def read_image(path: str | os.PathLike, size: int | tuple[int, int] | None = None) -> Tensor:
    """Read an image file as a (1,3,H,W) tensor in [0,1]; `size` resizes (an int: shorter side).

    Decodes what Pillow opens: 8- and 16-bit, grey and colour, palette, float (scaled into [0, 1]
    by its own range when it leaves it); transparent pixels are shown over white; the camera's
    EXIF orientation is applied. Images over Pillow's decompression-bomb limit are refused.
    """
    p = Path(path)
    if p.is_dir():
        raise UserError(f"cannot read image {p}: it is a folder")
    if not p.is_file():
        raise UserError(f"image not found: {p}")
    try:
        with Image.open(p) as im:
            arr = _rgb_pixels(ImageOps.exif_transpose(im) or im)
    except Image.DecompressionBombError as exc:
        raise UserError(f"cannot read image {p}: {first_line(exc)}; resize it first") from exc
    except PermissionError as exc:
        raise UserError(f"cannot read image {p}: permission denied") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"cannot read image {p}: not a readable image file ({first_line(exc)})") from exc
    img = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()
    return img if size is None else resize(img, size)


ImageSource = str | os.PathLike | Tensor
"""An image file's path, or an image tensor (3,H,W) or (1,3,H,W) in [0,1]."""


def load_image(source: ImageSource, size: int | tuple[int, int], what: str = "the image") -> Tensor:
    """A (1,3,H,W) image in [0,1] from a file or a tensor, resized (an int sets the shorter side);
    refused when the resized image would leave 16..4096 px a side (a very elongated one)."""
    if isinstance(source, Tensor):
        img = source.unsqueeze(0) if source.dim() == 3 else source
        img = shape(what, img, "1,3,H,W").float().clamp(0, 1)
    else:
        img = read_image(source)
    h, w = img.shape[-2:]
    th, tw = resized_shape(h, w, size)
    low, high = IMAGE_SIZES
    if not (low <= th <= high and low <= tw <= high):
        raise UserError(f"{what} is {w}x{h} px: resized to a shorter side of {size} px it would be "
                        f"{tw}x{th}, outside {low}..{high} px a side; use a less elongated image or "
                        "another `size`")
    return resize(img, (th, tw))


def _rgb_pixels(im: Image.Image) -> np.ndarray:
    """(H,W,3) float32 in [0,1] from any Pillow image: integer modes by their bit depth, float by
    their range, alpha composited over white."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(im, dtype=np.float32)
        if im.mode.startswith("I;16") or (im.mode == "I" and arr.max(initial=0) > 255):
            arr = arr / 65535.0  # 16-bit samples (Pillow opens 16-bit PNGs as I or I;16)
        elif im.mode == "I":
            arr = arr / 255.0
        elif arr.size and (arr.min() < 0 or arr.max() > 1):  # float: its own range
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) / max(hi - lo, 1e-12)
        return np.repeat(np.clip(arr, 0, 1)[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
        return rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:])
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def resized_shape(height: int, width: int, size: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) after `resize`: an int sets the shorter side and keeps the aspect ratio."""
    if not isinstance(size, int):
        return int(size[0]), int(size[1])
    s = size / min(height, width)
    return max(1, round(height * s)), max(1, round(width * s))


def resize(img: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Resize a batch; an int sets the shorter side and keeps the aspect ratio."""
    target = resized_shape(img.shape[-2], img.shape[-1], size)
    return F.interpolate(img, size=target, mode="bilinear", align_corners=False, antialias=True)


def center_crop(img: Tensor, size: int) -> Tensor:
    """Crop the central size×size square of a batch."""
    h, w = img.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return img[..., top:top + size, left:left + size]


def _skimage_photo(name: str) -> Tensor:
    """One of scikit-image's bundled photos as (1,3,H,W) in [0,1] (grey ones repeated to RGB)."""
    from skimage import data

    arr = np.asarray(getattr(data, name)(), dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return torch.from_numpy(arr[..., :3]).permute(2, 0, 1).unsqueeze(0).contiguous()


def sample_photos(size: int = 224, names: tuple[str, ...] = SAMPLE_PHOTOS) -> Tensor:
    """scikit-image's sample photos, shorter side resized to `size` and centre-cropped: (N,3,S,S)."""
    return torch.cat([center_crop(resize(_skimage_photo(name), size), size) for name in names])


PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""The files a folder of photos is read for."""

LARGEST_PHOTO_SIDE = 1024
"""Photos read as a reference are scaled down to this shorter side (they stand for statistics)."""

FEWEST_PHOTOS = 10
"""Below this many photos in a user's folder, numbers measured on them are noisy (crops of one photo
look alike, so a few photos give few independent views): the trust numbers and MACO's spectrum warn."""

MOST_PHOTOS = 32
"""Photos of a user's folder read as a reference at most (their crops are held in memory)."""


def photo_files(folder: str | os.PathLike) -> list[Path]:
    """The photos in `folder` (by suffix, `PHOTO_SUFFIXES`), checked: a folder that holds some."""
    where = Path(folder)
    if not where.is_dir():
        raise UserError(f"photo folder {where} {'is a file' if where.exists() else 'not found'}: give a "
                        "folder of .png or .jpg photos")
    files = sorted(p for p in where.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
    if not files:
        raise UserError(f"photo folder {where} holds no photos ({', '.join(PHOTO_SUFFIXES)})")
    for path in files:  # each one's header, so a bad file fails now, not after a render
        try:
            with Image.open(path):
                pass
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
            raise UserError(f"cannot read photo {path}: {first_line(exc)}") from None
    return files


def reference_photos(folder: str | os.PathLike | None = None) -> list[Tensor]:
    """Natural photos that stand for 'natural images' where a reference is needed (MACO's spectrum,
    the sanity score, plausibility), each (1,3,H,W) in [0,1] at its own size: scikit-image's
    `REFERENCE_PHOTOS`, or the images in `folder` (shorter side at most `LARGEST_PHOTO_SIDE`; at
    most `MOST_PHOTOS` of them, evenly spread over the sorted names, with a warning)."""
    if folder is None:
        return [_skimage_photo(name) for name in REFERENCE_PHOTOS]
    files = photo_files(folder)
    if len(files) > MOST_PHOTOS:
        warnings.warn(f"{folder} holds {len(files)} photos: using {MOST_PHOTOS} of them, evenly spread over "
                      "their sorted names (their crops are kept in memory)", RuntimeWarning, stacklevel=2)
        files = [files[round(i * (len(files) - 1) / (MOST_PHOTOS - 1))] for i in range(MOST_PHOTOS)]
    photos = []
    for path in files:
        img = read_image(path)
        photos.append(resize(img, LARGEST_PHOTO_SIDE) if min(img.shape[-2:]) > LARGEST_PHOTO_SIDE else img)
    return photos


ANIMATION_SUFFIXES = (".gif", ".mp4")
FPS = (0.1, 1000.0)
"""Frames per second an animation may play at (GIF and H.264 both handle this range)."""


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
        self.fps = real("fps", fps, *FPS, hint="(frames per second)")
        self.path = check_animation(path)
        self._made = missing_folders(self.path)
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
        try:
            if self._ffmpeg is not None:
                if size[0] % 2 or size[1] % 2:  # H.264 needs even sizes: repeat the last row/column
                    arr = np.pad(arr, ((0, size[0] % 2), (0, size[1] % 2), (0, 0)), mode="edge")
                self._ffmpeg.append_data(arr)
            else:
                assert self._frames_dir is not None
                Image.fromarray(arr).save(self._frames_dir / f"{self.count:06d}.png")
        except OSError as exc:
            raise UserError(f"cannot write {self.path}: {(exc.strerror or first_line(exc)).lower()}") from exc
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
        except OSError as exc:
            ok = False
            raise UserError(f"cannot write {self.path}: {(exc.strerror or first_line(exc)).lower()}") from exc
        except BaseException:
            ok = False
            raise
        finally:
            if self._frames_dir is not None:
                shutil.rmtree(self._frames_dir, ignore_errors=True)
            if ok:
                os.replace(self._tmp, self.path)
            self._tmp.unlink(missing_ok=True)
            if not ok:
                remove_empty(self._made)
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


def animation_fps(path: str | os.PathLike) -> float:
    """The frame rate of a GIF or MP4 (12 when the file does not say), checked readable."""
    p = _readable_animation(path)
    try:
        if p.suffix.lower() == ".gif":
            with Image.open(p) as im:
                duration = im.info.get("duration") or 0
            return 1000.0 / duration if duration else 12.0
        import imageio.v2 as imageio

        with imageio.get_reader(p, format="FFMPEG") as reader:
            return float(reader.get_meta_data().get("fps") or 12.0)
    except (OSError, RuntimeError, ValueError, IndexError) as exc:
        raise UserError(f"cannot read video {p}: {first_line(exc)}") from exc


def read_frames(path: str | os.PathLike) -> Iterator[Tensor]:
    """The frames of a GIF or MP4 one at a time, each (3, H, W) in [0, 1] (a long video is never held
    whole); an unreadable file or one without frames is a UserError."""
    p = _readable_animation(path)
    count = 0
    try:
        if p.suffix.lower() == ".gif":
            with Image.open(p) as im:
                for frame in ImageSequence.Iterator(im):
                    count += 1
                    yield torch.from_numpy(_rgb_pixels(frame.convert("RGBA"))).permute(2, 0, 1)
        else:
            import imageio.v2 as imageio

            with imageio.get_reader(p, format="FFMPEG") as reader:
                for arr in reader:
                    count += 1
                    pixels = np.ascontiguousarray(arr[..., :3], dtype=np.float32) / 255.0
                    yield torch.from_numpy(pixels).permute(2, 0, 1)
    except (OSError, RuntimeError, ValueError, IndexError, UnidentifiedImageError) as exc:
        raise UserError(f"cannot read video {p}: {first_line(exc)}") from exc
    if count == 0:
        raise UserError(f"video {p} has no frames")


def _readable_animation(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.suffix.lower() not in ANIMATION_SUFFIXES:
        raise UserError(f"a video must be a .gif or .mp4 file, got {p}")
    if not p.is_file():
        raise UserError(f"video not found: {p}")
    return p


def save_animation(frames: Iterable[Tensor] | Tensor, path: str | os.PathLike, fps: float = 12.0) -> Path:
    """Write frames (an iterable of (C,H,W), or a (N,C,H,W) batch) as a GIF or MP4 at `path`."""
    with AnimationWriter(path, fps) as writer:
        for frame in frames:
            writer.add(frame)
    return writer.path
