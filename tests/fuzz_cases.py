"""Bad inputs for every subcommand, and the standard each run must meet (issue 19).

Each case runs `diffparam COMMAND ARGS` in a folder of its own, which its `setup` fills with the
files it needs and which always holds `keep.png`, a good file that must survive. The standard:
- the exit status expected (2 for bad input, 1 for a run that diverged);
- exactly one line on stderr, starting "diffparam: error:", holding the case's `message`;
- no traceback;
- afterwards the folder holds exactly the files it held before, each unchanged.

`tests/test_fuzz.py` runs the quick cases in-process; `bench/fuzz.py` runs every case (and the
signal cases) as a separate process.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

QUICK = ("--steps", "1", "--size", "32", "--device", "cpu", "--quiet")
"""Options that make a run that gets past its checks short."""


@dataclass(frozen=True)
class Case:
    """One command line that must fail cleanly."""

    args: tuple[str, ...]
    message: str
    status: int = 2
    setup: Callable[[Path], None] | None = None
    slow: bool = False
    """Only `bench/fuzz.py` runs it (it takes more than a few seconds)."""

    @property
    def name(self) -> str:
        return " ".join(self.args)[:90]


# -- files the cases read ----------------------------------------------------------------------
def _png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path)


def keep(folder: Path) -> None:
    """The good file every case's folder holds, which no failed run may touch."""
    _png(folder / "keep.png", np.full((8, 8, 3), 200, np.uint8))


def photo(folder: Path) -> None:
    _png(folder / "photo.png", (np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8))


def clip(folder: Path) -> None:
    photo(folder)
    rng = np.random.default_rng(1)
    frames = [Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)) for _ in range(3)]
    frames[0].save(folder / "clip.gif", save_all=True, append_images=frames[1:], duration=100)
    (folder / "bad.gif").write_bytes(b"GIF89a not a video")


def thin(folder: Path) -> None:
    _png(folder / "thin.png", np.full((1, 300, 3), 128, np.uint8))


def corrupt(folder: Path) -> None:
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (folder / "empty.png").write_bytes(b"")


def bomb(folder: Path) -> None:
    """A PNG whose header claims 20000x20000 pixels (Pillow refuses it before decoding)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    (folder / "bomb.png").write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def folders(folder: Path) -> None:
    (folder / "dir.png").mkdir()
    (folder / "dir.pt").mkdir()
    (folder / "blocker").write_text("a file where a folder is wanted")


def photo_folders(folder: Path) -> None:
    """A folder with an unreadable photo and an empty one, for --photos and --spectrum-from."""
    (folder / "badphotos").mkdir()
    (folder / "badphotos" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    (folder / "nophotos").mkdir()
    (folder / "nophotos" / "notes.txt").write_text("no photos here")


def cppns(folder: Path) -> None:
    from diffparam.param import CPPN

    CPPN(16, hidden=4, depth=2, generator=torch.Generator().manual_seed(0)).save(folder / "small.pt")
    CPPN(16, hidden=6, depth=2).save(folder / "big.pt")
    nan = CPPN(16, hidden=4, depth=2)
    with torch.no_grad():
        nan.weights[0].fill_(float("nan"))
    nan.save(folder / "nan.pt")
    (folder / "garbage.pt").write_bytes(b"not a torch file")


def int_weights(folder: Path) -> None:
    """A state dict of the embedded model's keys holding integers."""
    from diffparam.models.efficientnet_lite import load_efficientnet_lite0

    state = {k: v.to(torch.int8) for k, v in load_efficientnet_lite0().state_dict().items()}
    torch.save(state, folder / "ints.pt")


def meshes(folder: Path) -> None:
    (folder / "inf.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1e999 0\nf 1 2 3\n")
    (folder / "flat.obj").write_text("v 0 0 0\nv 0 0 0\nv 0 0 0\nf 1 2 3\n")
    (folder / "bad.obj").write_bytes(b"\xff\xfe garbage \x00\x01 v 1 2")
    (folder / "empty.glb").write_bytes(b"")


def atlases(folder: Path) -> None:
    broken = folder / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text(
        json.dumps({"version": 1, "model": "efficientnet_lite0", "options": {}, "layers": {}, "units": []})
    )
    paged = folder / "paged"
    (paged / "index.html").mkdir(parents=True)


def all_files(folder: Path) -> None:
    for make in (photo, thin, corrupt, bomb, folders, cppns, meshes, atlases):
        make(folder)


def nerf_scenes(folder: Path) -> None:
    """Scenes in the transforms.json layout, each with one fault: a missing image, a NaN pose, a
    3x3 matrix, images of two sizes, a file that is not JSON."""
    eye = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]
    faults = {"missing": ("gone", eye), "nanpose": ("a", [[float("nan")] * 4] * 4),
              "badmatrix": ("a", [[1, 0, 0], [0, 1, 0], [0, 0, 1]]), "sizes": ("small", eye)}
    for name, (second, matrix) in faults.items():
        scene = folder / name
        scene.mkdir()
        _png(scene / "a.png", np.full((16, 16, 4), 128, np.uint8))
        _png(scene / "small.png", np.full((8, 8, 4), 128, np.uint8))
        frames = [{"file_path": "a", "transform_matrix": eye},
                  {"file_path": second, "transform_matrix": matrix}]
        (scene / "transforms.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": frames}))
    (folder / "notjson").mkdir()
    (folder / "notjson" / "transforms.json").write_text("{ not json")


def plain_photos(folder: Path) -> None:
    """Folders of photos for `nerf poses`, each with one fault: none, two, one unreadable, two sizes,
    unrelated noise (nothing to match); and a good one."""
    rng = np.random.default_rng(2)
    for name, shapes in {"none": [], "two": [(32, 32)] * 2, "broken": [(32, 32)] * 3,
                         "mixed": [(32, 32), (32, 32), (24, 32)], "noise": [(64, 64)] * 3}.items():
        (folder / name).mkdir()
        for i, (h, w) in enumerate(shapes):
            _png(folder / name / f"p{i}.png", (rng.random((h, w, 3)) * 255).astype(np.uint8))
    (folder / "broken" / "p1.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    (folder / "full").mkdir()
    (folder / "full" / "old.txt").write_text("a folder in use")


LONG = "x" * 300 + ".png"


def rgbd(folder: Path) -> None:
    """A photo with good and bad depth maps, a 1x1 photo and a broken cameras file, for photo3d."""
    photo(folder)
    ramp = np.linspace(1.0, 3.0, 40 * 48).reshape(40, 48)
    for name, depth in {"depth": ramp, "small": ramp[:30, :30], "flat": np.full((40, 48), 2.0),
                        "nan": np.where(ramp > 2, np.nan, ramp), "negative": ramp - 2}.items():
        np.save(folder / f"{name}.npy", depth)
    _png(folder / "dot.png", np.full((1, 1, 3), 90, np.uint8))
    np.save(folder / "dot.npy", np.ones((1, 1)))
    (folder / "cams.json").write_text(json.dumps({"camera_angle_x": 0.8, "frames": [{"file_path": "a"}]}))


CASES: list[Case] = [
    # -- render: numbers, devices, sizes ------------------------------------------------------
    *(
        Case(
            ("render", "blocks.2:3", *QUICK, "--lr", v, "--out", "o.png"), "--lr must be a finite number > 0"
        )
        for v in ("nan", "inf", "-1", "0")
    ),
    Case(
        ("render", "blocks.2:3", *QUICK, "--seed", "18446744073709551616", "--out", "o.png"),
        "--seed must be a whole number in 0..",
    ),
    Case(("render", "blocks.2:3", *QUICK, "--seed", "-1", "--out", "o.png"), "--seed must be a whole number"),
    Case(
        ("render", "blocks.2:3", "--steps", "99999999999999999999999", "--out", "o.png"),
        "--steps must be a whole number in 1..1000000",
    ),
    Case(("render", "blocks.2:3", "--steps", "0", "--out", "o.png"), "--steps must be a whole number"),
    Case(("render", "blocks.2:3", "--steps", "1.5", "--out", "o.png"), "invalid int value"),
    *(
        Case(("render", "blocks.2:3", *QUICK[:4], "--device", d, "--out", "o.png"), m)
        for d, m in (
            ("mps", "--device 'mps' is not supported"),
            ("meta", "--device 'meta' is not supported"),
            ("xpu", "--device 'xpu' is not supported"),
            ("gpu", "unknown --device 'gpu'"),
        )
    ),
    Case(("render", "blocks.2:3", "--size", "8", "--out", "o.png"), "--size 8 is outside 16..4096"),
    Case(("render", "blocks.2:3", "--size", "9000", "--out", "o.png"), "--size 9000 is outside 16..4096"),
    Case(("render", "blocks.2:3", "--batch", "0", "--out", "o.png"), "--batch must be a whole number"),
    Case(
        (
            "render",
            "blocks.2:3",
            "--steps",
            "1",
            "--batch",
            "1000000000",
            "--device",
            "cpu",
            "--out",
            "o.png",
        ),
        "this render needs about",
    ),
    Case(
        (
            "render",
            "blocks.2:3",
            "--steps",
            "1",
            "--size",
            "4096",
            "--batch",
            "64",
            "--device",
            "cpu",
            "--out",
            "o.png",
        ),
        "this render needs about",
    ),
    # -- render: outputs ------------------------------------------------------------------------
    Case(("render", "blocks.2:3", *QUICK, "--out", "result"), "--out must be a .png or .jpg file"),
    Case(("render", "blocks.2:3", *QUICK, "--out", "x.txt"), "--out must be a .png or .jpg file"),
    Case(("render", "blocks.2:3", *QUICK, "--out", "out/"), "--out must be a .png or .jpg file"),
    Case(("render", "blocks.2:3", *QUICK, "--out", LONG), "the file name is 304 bytes long"),
    Case(("render", "blocks.2:3", *QUICK, "--out", "dir.png"), "it is a folder", setup=folders),
    Case(
        ("render", "blocks.2:3", *QUICK, "--out", "blocker/o.png"),
        "blocker is a file, not a folder",
        setup=folders,
    ),
    Case(("render", "blocks.2:3,4", *QUICK, "--out", "units.png"), "give a folder"),
    # -- render: models, objectives, weights ------------------------------------------------------
    Case(("render", "block.10:3", *QUICK, "--out", "o.png"), "unknown layer 'block.10'"),
    Case(("render", "blocks.10:999", *QUICK, "--out", "o.png"), "blocks.10 has 112 channels"),
    Case(("render", "logit:notaclass", *QUICK, "--out", "o.png"), "unknown class"),
    Case(("render", "blocks.2:3", *QUICK, "--model", "nope", "--out", "o.png"), "unknown model 'nope'"),
    Case(
        ("render", "blocks.2:3", *QUICK, "--weights", "missing.pt", "--out", "o.png"),
        "weights file not found",
    ),
    Case(
        ("render", "blocks.2:3", *QUICK, "--weights", "dir.pt", "--out", "o.png"),
        "it is a folder",
        setup=folders,
    ),
    Case(
        ("render", "blocks.2:3", *QUICK, "--weights", "garbage.pt", "--out", "o.png"),
        "not a PyTorch state dict",
        setup=cppns,
    ),
    Case(
        ("render", "blocks.2:3", *QUICK, "--weights", "ints.pt", "--out", "o.png"),
        "holds torch.int8 numbers",
        setup=int_weights,
        slow=True,
    ),
    # -- render: runs that diverge write nothing and keep the good file --------------------------
    Case(
        (
            "render",
            "blocks.6:21",
            "--steps",
            "24",
            "--size",
            "32",
            "--device",
            "cpu",
            "--quiet",
            "--lr",
            "1e6",
            "--out",
            "keep.png",
        ),
        "diverged",
        status=1,
    ),
    # -- cppn and morph --------------------------------------------------------------------------
    Case(("cppn", "blocks.2:3", *QUICK, "--hidden", "1000000", "--out", "o.png"),
         "--hidden must be a whole number in 1..4096"),
    Case(("cppn", "blocks.2:3", *QUICK, "--depth", "100000", "--out", "o.png"),
         "--depth must be a whole number in 1..256"),
    Case(("cppn", "blocks.2:3", *QUICK, "--hidden", "4096", "--depth", "256", "--size", "256",
          "--out", "o.png"), "lower --hidden, --depth or --size"),
    Case(("cppn", "blocks.2:3", *QUICK, "--depth", "0", "--out", "o.png"), "--depth must be a whole number"),
    Case(
        ("cppn", "blocks.2:3", *QUICK, "--render-size", "99999", "--out", "o.png"),
        "--render-size 99999 is outside 16..16384",
    ),
    Case(
        ("cppn", "blocks.2:3", *QUICK, "--video", "v.avi", "--out", "o.png"),
        "--video must end in .gif or .mp4",
    ),
    Case(("cppn", "blocks.2:3", *QUICK, "--out", "o.jpg"), "--out must be a .png file"),
    Case(
        ("cppn", "blocks.2:3", *QUICK, "--out", "o.png", "--save", "o.png"),
        "--out and --save name the same file",
    ),
    *(
        Case(
            ("cppn", "blocks.2:3", *QUICK, "--video", "v.mp4", "--fps", f, "--out", "o.png"),
            "--fps must be a finite number >= 0.1",
        )
        for f in ("inf", "1e-9", "nan")
    ),
    Case(
        ("cppn", "blocks.2:3", *QUICK, "--video", "v.gif", "--every", "0", "--out", "o.png"),
        "--every must be a whole number >= 1, got 0",
    ),
    Case(("morph", "missing.pt", "small.pt", "--quiet"), "CPPN file not found", setup=cppns),
    Case(
        ("morph", "dir.pt", "small.pt", "--quiet"), "it is a folder", setup=lambda f: (cppns(f), folders(f))
    ),
    Case(("morph", "garbage.pt", "small.pt", "--quiet"), "not a CPPN file", setup=cppns),
    Case(("morph", "nan.pt", "small.pt", "--quiet"), "NaN or infinite weights", setup=cppns),
    Case(("morph", "small.pt", "big.pt", "--quiet"), "different architectures: hidden 4 vs 6", setup=cppns),
    Case(
        ("morph", "small.pt", "small.pt", "--frames", "1", "--quiet"),
        "--frames must be a whole number >= 2",
        setup=cppns,
    ),
    Case(
        ("morph", "small.pt", "small.pt", "--out", "m.avi", "--quiet"),
        "--out must end in .gif or .mp4",
        setup=cppns,
    ),
    # -- interpolate -----------------------------------------------------------------------------
    Case(
        ("interpolate", "blocks.2:3", "blocks.2:4", *QUICK, "--frames", "1"),
        "--frames must be a whole number",
    ),
    Case(
        ("interpolate", "blocks.2:3", "blocks.2:4", *QUICK, "--frames", "100000000"),
        "this render needs about",
    ),
    Case(
        ("interpolate", "blocks.2:3", "blocks.2:4", *QUICK, "--fps", "inf"), "--fps must be a finite number"
    ),
    Case(
        ("interpolate", "blocks.2:3", "blocks.2:4", *QUICK, "--align-weight", "nan"),
        "--align-weight must be a finite number",
    ),
    Case(
        ("interpolate", "blocks.2:3", "blocks.2:4", *QUICK, "--align-layer", "blok.10"),
        "unknown layer 'blok.10'",
    ),
    Case(("interpolate", "blocks.10:3,4", "blocks.10:4", *QUICK), "`a` is a channel list"),
    Case(
        ("interpolate", "blocks.2:3", "blocks.2:4", *QUICK, "--strip", "strip"),
        "--strip must be a .png or .jpg file",
    ),
    Case(
        ("interpolate", "blocks.2:3", "blocks.2:4", *QUICK, "--out", "a.gif", "--strip", "a.gif"),
        "--out and --strip name the same file",
    ),
    Case(
        ("interpolate", "blocks.2:3", "blocks.2:4", *QUICK, "--out", "x.png"),
        "--out must end in .gif or .mp4",
    ),
    # -- style -----------------------------------------------------------------------------------
    Case(("style", "missing.png", "photo.png", *QUICK, "--out", "s.png"), "image not found", setup=photo),
    Case(
        ("style", "bad.png", "photo.png", *QUICK, "--out", "s.png"),
        "not a readable image file",
        setup=lambda f: (photo(f), corrupt(f)),
    ),
    Case(
        ("style", "empty.png", "photo.png", *QUICK, "--out", "s.png"),
        "not a readable image file",
        setup=lambda f: (photo(f), corrupt(f)),
    ),
    Case(
        ("style", "dir.png", "photo.png", *QUICK, "--out", "s.png"),
        "it is a folder",
        setup=lambda f: (photo(f), folders(f)),
    ),
    Case(
        ("style", "bomb.png", "photo.png", *QUICK, "--out", "s.png"),
        "resize it first",
        setup=lambda f: (photo(f), bomb(f)),
    ),
    Case(
        (
            "style",
            "thin.png",
            "photo.png",
            "--steps",
            "1",
            "--size",
            "4096",
            "--device",
            "cpu",
            "--out",
            "s.png",
        ),
        "the content image is 300x1 px",
        setup=lambda f: (photo(f), thin(f)),
    ),
    Case(
        ("style", "photo.png", "photo.png", *QUICK, "--content-weight", "nan", "--out", "s.png"),
        "--content-weight must be a finite number",
        setup=photo,
    ),
    Case(
        ("style", "photo.png", "photo.png", *QUICK, "--style-layers", "stem=x", "--out", "s.png"),
        "cannot read the weight",
        setup=photo,
    ),
    Case(
        ("style", "photo.png", "photo.png", *QUICK, "--out", "s.txt"),
        "--out must be a .png or .jpg file",
        setup=photo,
    ),
    Case(("style", "missing.gif", "photo.png", *QUICK, "--out", "s.gif"), "video not found", setup=photo),
    Case(("style", "bad.gif", "photo.png", *QUICK, "--out", "s.gif"), "cannot read video", setup=clip),
    Case(
        ("style", "clip.gif", "photo.png", *QUICK, "--out", "s.png"),
        "--out for a video must end in .gif or .mp4",
        setup=clip,
    ),
    Case(
        ("style", "clip.gif", "photo.png", *QUICK, "--frame-steps", "0", "--out", "s.mp4"),
        "--frame-steps must be a whole number",
        setup=clip,
    ),
    # -- texture and texture-style ---------------------------------------------------------------
    *(
        Case(("texture", mesh, "blocks.2:3", *QUICK, "--texture-size", "32", "--out", "t"), m, setup=meshes)
        for mesh, m in (
            ("missing.obj", "mesh file not found"),
            ("empty.glb", "the file is empty"),
            ("bad.obj", "holds no triangles"),
            ("inf.obj", "not finite numbers"),
            ("flat.obj", "is degenerate"),
        )
    ),
    Case(
        ("texture", "shape:sphere", "blocks.2:3", *QUICK, "--views", "0", "--out", "t"),
        "--views must be a whole number",
    ),
    Case(
        ("texture", "shape:sphere", "blocks.2:3", *QUICK, "--views", "100000000", "--out", "t"),
        "--views must be a whole number in 1..256",
    ),
    Case(
        ("texture", "shape:sphere", "blocks.2:3", *QUICK, "--texture-size", "8", "--out", "t"),
        "--texture-size must be a whole number in 16..8192",
    ),
    Case(
        ("texture", "shape:sphere", "blocks.2:3", *QUICK, "--volume-size", "2", "--out", "t"),
        "--volume-size must be a whole number in 4..512",
    ),
    Case(
        ("texture", "shape:sphere", "blocks.2:3", *QUICK, "--frames", "-1", "--out", "t"),
        "--frames must be a whole number >= 0",
    ),
    Case(
        ("texture", "shape:sphere", "blocks.2:3", *QUICK, "--out", "keep.png"),
        "must be a folder, but it is a file",
    ),
    Case(
        ("texture-style", "shape:sphere", "photo.png", *QUICK, "--moving-average", "1", "--out", "t"),
        "--moving-average must be a finite number",
        setup=photo,
    ),
    # -- trust numbers, MACO, accentuation (issue 13) --------------------------------------------
    Case(("render", "blocks.2:3", *QUICK, "--report", "r.txt", "--out", "o.png"), "--report must be a .json"),
    Case(("render", "blocks.2:3", *QUICK, "--report", "keep.png", "--out", "o.png"),
         "--report must be a .json"),
    Case(("render", "blocks.2:3", *QUICK, "--photos", "badphotos", "--out", "o.png"), "cannot read photo",
         setup=photo_folders),
    Case(("render", "blocks.2:3", *QUICK, "--photos", "nophotos", "--out", "o.png"), "holds no photos",
         setup=photo_folders),
    Case(("render", "blocks.2:3", *QUICK, "--no-trust", "--photos", "nophotos", "--out", "o.png"),
         "drop --no-trust", setup=photo_folders),
    Case(("render", "blocks.2:3", *QUICK, "--batch", "2", "--diversity", "nan", "--out", "o.png"),
         "diversity"),
    Case(("render", "logit:3", *QUICK, "--batch", "2", "--diversity", "9", "--out", "o.png"),
         "reads a vector"),
    Case(("render", "blocks.2:3", *QUICK, "--param", "maco", "--spectrum-from", "badphotos",
          "--out", "o.png"), "cannot read photo", setup=photo_folders),
    Case(("render", "blocks.2:3", *QUICK, "--spectrum-from", "nophotos", "--out", "o.png"),
         "applies to --param maco", setup=photo_folders),
    Case(("accentuate", "photo.png", "blocks.2:3", *QUICK, "--strength", "-1", "--out", "o.png"), "strength",
         setup=photo),
    Case(("accentuate", "bad.png", "blocks.2:3", *QUICK, "--out", "o.png"), "bad.png", setup=corrupt),
    Case(("accentuate", "photo.png", "blocks.2:3", *QUICK, "--layer", "blocks.9", "--out", "o.png"),
         "runs after the objective's layer", setup=photo),
    Case(("accentuate", "photo.png", "blocks.2:3", *QUICK, "--param", "cppn", "--out", "o.png"),
         "invalid choice", setup=photo),
    Case(("accentuate", "photo.png", "blocks.2:3", *QUICK, "--out", "keep.png/o.png"), "", setup=photo),
    Case(("atlas", "--layers", "blocks.0", *QUICK, "--photos", "badphotos", "--out", "a"),
         "cannot read photo", setup=photo_folders),
    Case(("atlas", "--layers", "blocks.0", *QUICK, "--no-trust", "--photos", "nophotos", "--out", "a"),
         "--photos needs the trust numbers: drop --no-trust", setup=photo_folders),
    # -- atlas, demo, layers ---------------------------------------------------------------------
    Case(("atlas", "--layers", "blocks.0", *QUICK, "--workers", "0", "--out", "a"), "--workers must be"),
    Case(("atlas", "--layers", "blocks.0", *QUICK, "--batch", "0", "--out", "a"), "--batch must be"),
    Case(("atlas", "--layers", "blocks.99", *QUICK, "--out", "a"), "unknown layer 'blocks.99'"),
    Case(
        ("atlas", "--layers", "blocks.0", *QUICK, "--out", "broken"),
        "'units' must be an object",
        setup=atlases,
    ),
    Case(
        ("atlas", "--layers", "blocks.0", *QUICK, "--out", "paged"),
        "index.html: it is a folder",
        setup=atlases,
    ),
    Case(("atlas", "--layers", "blocks.0", *QUICK, "--out", "keep.png"), "not a folder"),
    Case(("demo", "--size", "8", "--out", "d"), "--size 8 is outside"),
    Case(("demo", "--steps", "0", "--out", "d"), "--steps must be"),
    Case(("layers", "--model", "nope"), "unknown model 'nope'"),
    # -- gan (issue 16) --------------------------------------------------------------------------
    Case(("gan", "train", "thin.png", "--steps", "1", "--device", "cpu", "--out", "g"), "too small",
         setup=thin),
    Case(("gan", "train", "bad.png", "--steps", "1", "--out", "g"), "bad.png", setup=corrupt),
    Case(("gan", "train", "photo.png", "--scales", "0", "--out", "g"), "--scales must be", setup=photo),
    Case(("gan", "train", "photo.png", "--steps", "1", "--out", "keep.png"), "is a file", setup=photo),
    Case(("gan", "sample", ".", "--out", "s"), "holds no GAN run"),
    Case(("gan", "paint", "nowhere", "photo.png", "--out", "p.png"), "not found", setup=photo),
    Case(("render", "blocks.2:3", *QUICK, "--param", "gan:nowhere", "--out", "o.png"), "not found"),
    Case(("render", "blocks.2:3", *QUICK, "--param", "gan:", "--out", "o.png"), "invalid choice"),
    # -- dcign (issue 18) -----------------------------------------------------------------------
    Case(("dcign", "data", "--size", "20", "--out", "d"), "--size must be a multiple of 8"),
    Case(("dcign", "data", "--textures", "plaid", "--out", "d"), "unknown --textures 'plaid'"),
    Case(("dcign", "data", "--out", "keep.png"), "is a file"),
    Case(("dcign", "data", "--blobs", "-1", "--out", "d"), "--blobs must be a whole number"),
    Case(("dcign", "data", "--mesh", "shape:blobby", "--out", "d"), "unknown sample shape 'blobby'"),
    Case(("dcign", "train", "nowhere", "--out", "r"), "not found"),
    Case(("dcign", "train", ".", "--steps", "0", "--out", "r"), "--steps must be"),
    Case(("dcign", "vary", ".", "keep.png", "--factor", "light", "--out", "v.gif"), "no finished DC-IGN"),
    Case(("dcign", "train", ".", "--decoder", "pixels", "--out", "r"), "invalid choice: 'pixels'"),
    Case(("dcign", "train", "nowhere", "--decoder", "render", "--blur", "-1", "--out", "r"),
         "--blur must be"),
    Case(("dcign", "train", "nowhere", "--decoder", "render", "--blur-steps", "0", "--out", "r"),
         "--blur-steps must be"),
    Case(("dcign", "train", "nowhere", "--decoder", "render", "--blur", "5", "--out", "r"), "--blur must be"),
    Case(("dcign", "train", "nowhere", "--blur", "0.2", "--out", "r"), "apply to --decoder render"),
    Case(("dcign", "train", "nowhere", "--mesh", "shape:torus", "--out", "r"), "apply to --decoder render"),
    Case(("dcign", "train", "nowhere", "--decoder", "render", "--free", "3", "--out", "r"),
         "apply to the learned decoder"),
    # -- photo3d: bad depth maps, sizes, options -------------------------------------------------
    *(
        Case(("photo3d", "photo.png", depth, *QUICK, "--out", "o"), message, setup=rgbd)
        for depth, message in (("small.npy", "the depth is 30x30 px but the image 48x40"),
                               ("flat.npy", "is all one value"), ("nan.npy", "NaN or infinite"),
                               ("negative.npy", "negative values"), ("missing.npy", "depth not found"),
                               ("photo.png", "must be one channel"))
    ),
    Case(("photo3d", "dot.png", "dot.npy", *QUICK, "--out", "o"), "at least 8 px a side", setup=rgbd),
    Case(("photo3d", "photo.png", "depth.npy", *QUICK, "--cameras", "cams.json", "--out", "o"),
         "transform_matrix", setup=rgbd),
    Case(("photo3d", "photo.png", "depth.npy", *QUICK, "--fov", "0", "--out", "o"), "--fov must be",
         setup=rgbd),
    Case(("photo3d", "photo.png", "depth.npy", *QUICK, "--frames", "0", "--out", "o"), "--frames must be",
         setup=rgbd),
    Case(("photo3d", "photo.png", "depth.npy", *QUICK, "--out", "keep.png"), "is a file, not a folder",
         setup=rgbd),
    # -- nerf: scenes in the transforms.json layout ------------------------------------------
    *(
        Case(("nerf", "fit", scene, "--out", "run", "--steps", "1", "--device", "cpu", "--quiet"), message,
             setup=nerf_scenes)
        for scene, message in (("missing", "image not found"), ("nanpose", "NaN or infinite"),
                               ("badmatrix", "must be a 4x4"), ("sizes", "mixed sizes"),
                               ("notjson", "not a JSON file"), ("nowhere", "scene not found"))
    ),
    Case(("nerf", "fit", "missing", "--out", "keep.png", "--device", "cpu"), "is a file", setup=nerf_scenes),
    Case(("nerf", "render", "norun", "--path", "orbit", "--out", "v.gif"), "not a fitted run"),
    Case(("nerf", "render", "norun", "--path", "orbit", "--out", "v.png"), "--out for a camera path"),
    Case(("nerf", "export", "norun", "--out", "mesh.obj"), "must end in .glb or .ply"),
    Case(("nerf", "style", "norun", "keep.png", "--out", "styled"), "not a fitted run"),
    Case(("nerf", "style", "norun", "keep.png", "--out", "keep.png"), "is a file"),
    Case(("nerf", "style", "norun", "keep.png", "--out", "styled", "--appearance-lr", "0"),
         "--appearance-lr must"),
    Case(("nerf", "scene", "--scene", "cube", "--out", "s"), "mesh file not found: cube"),
    Case(("nerf", "scene", "--photo", "moon", "--out", "s"), "unknown --photo"),
    *(
        Case(("nerf", "poses", *args, "--quiet"), message, setup=plain_photos)
        for args, message in (
            (("none", "--out", "s"), "holds 0 photos"), (("two", "--out", "s"), "at least 3"),
            (("broken", "--out", "s"), "cannot read photo"), (("mixed", "--out", "s"), "mixed sizes"),
            (("noise", "--out", "s"), "found no camera poses"), (("nowhere", "--out", "s"), "not found"),
            (("noise", "--out", "full"), "is not empty"), (("noise", "--out", "keep.png"), "is a file"),
            (("noise", "--out", "s", "--test", "-1"), "--test must be"),
            (("noise", "--out", "s", "--test", "99"), "leaves too few"),
            (("noise", "--out", "s", "--distance", "nan"), "--distance must be"),
            (("noise", "--out", "s", "--matching", "spatial"), "--matching"),
        )
    ),
    # -- volume: 3D art in a radiance field --------------------------------------------------
    Case(("volume", "blocks.3:9999", *QUICK, "--out", "v"), "channel 9999 is out of range"),
    Case(("volume", "nolayer:1", *QUICK, "--out", "v"), "unknown layer 'nolayer'"),
    Case(("volume", "blocks.3:5", *QUICK, "--size", "8", "--out", "v"), "--size must be a whole number"),
    Case(("volume", "blocks.3:5", *QUICK, "--views", "0", "--out", "v"), "--views must be"),
    Case(("volume", "blocks.3:5", *QUICK, "--coverage", "0", "--out", "v"), "--coverage must be"),
    Case(("volume", "blocks.3:5", *QUICK, "--frames", "-1", "--out", "v"), "--frames must be"),
    Case(("volume", "blocks.3:5", *QUICK, "--out", "."), "is not empty and holds no checkpoint.pt"),
    Case(("volume", "blocks.3:5", *QUICK, "--out", "keep.png"), "is a file"),
]

def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder below `folder`, with a hash of each file's content."""
    return {
        str(p.relative_to(folder)) + ("/" if p.is_dir() else ""): (
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        )
        for p in sorted(folder.rglob("*"))
    }


def violations(
    case: Case, status: int, stderr: str, before: dict[str, str], after: dict[str, str]
) -> list[str]:
    """What this run did against the standard (empty: it met it)."""
    found = []
    lines = [line for line in stderr.splitlines() if line.strip()]
    if status != case.status:
        found.append(f"exit {status}, not {case.status}")
    if "Traceback" in stderr:
        found.append("a traceback")
    if len(lines) != 1 or not lines[0].startswith("diffparam: error:"):
        found.append(f"{len(lines)} lines on stderr: {stderr.strip()[:300]!r}")
    elif case.message not in lines[0]:
        found.append(f"message {lines[0]!r} lacks {case.message!r}")
    if after != before:
        added = sorted(set(after) - set(before))
        changed = sorted(k for k in before if after.get(k) != before[k])
        found.append(f"files added {added[:5]}, changed or removed {changed[:5]}")
    return found
