"""Files: atomic writes, grids, reading user images with clear errors, sample photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from diffparam import io
from diffparam.errors import UserError


def test_save_and_read_round_trip(tmp_path) -> None:
    img = torch.rand(3, 20, 30)
    path = io.save_image(img, tmp_path / "sub" / "a.png")
    back = io.read_image(path)
    assert back.shape == (1, 3, 20, 30)
    assert (back[0] - img).abs().max() < 1 / 255 + 1e-6
    assert [p.name for p in tmp_path.joinpath("sub").iterdir()] == ["a.png"]


def test_batch_becomes_grid_or_separate_files(tmp_path) -> None:
    batch = torch.rand(4, 3, 10, 10)
    (grid,) = io.save_images(batch, tmp_path / "g.png")
    assert Image.open(grid).size == (2 * 12 + 2, 2 * 12 + 2)
    files = io.save_images(batch, tmp_path / "s.png", separate=True)
    assert [f.name for f in files] == ["s_0.png", "s_1.png", "s_2.png", "s_3.png"]


def test_rgba_is_kept(tmp_path) -> None:
    path = io.save_image(torch.rand(4, 8, 8), tmp_path / "a.png")
    assert Image.open(path).mode == "RGBA"


def test_failed_write_leaves_no_file(tmp_path) -> None:
    target = tmp_path / "x.png"
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_unknown_extension_is_a_user_error(tmp_path) -> None:
    with pytest.raises(UserError, match="unknown image extension"):
        io.save_image(torch.rand(3, 4, 4), tmp_path / "a.xyz")
    assert list(tmp_path.iterdir()) == []


def test_read_errors(tmp_path) -> None:
    with pytest.raises(UserError, match="image not found"):
        io.read_image(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(UserError, match="not a readable image"):
        io.read_image(bad)


def test_check_writable(tmp_path) -> None:
    assert io.check_writable(tmp_path / "new" / "deeper" / "a.png") == tmp_path / "new" / "deeper" / "a.png"
    assert not (tmp_path / "new").exists()  # the folders made to try are gone again
    (tmp_path / "kept").mkdir()
    io.check_writable(tmp_path / "kept" / "a.png")
    assert (tmp_path / "kept").is_dir()
    with pytest.raises(UserError, match="it is a folder"):
        io.check_writable(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot write .*file/a.png: .*file is a file, not a folder"):
        io.check_writable(blocker / "a.png")


def test_sample_photos() -> None:
    photos = io.sample_photos(64)
    assert photos.shape == (5, 3, 64, 64)
    assert 0 <= photos.min() and photos.max() <= 1


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_animation_is_written_frame_by_frame(tmp_path, suffix) -> None:
    import imageio.v2 as imageio

    frames = torch.rand(4, 3, 33, 40)  # odd height: MP4 pads to even sizes
    path = io.save_animation(frames, tmp_path / f"anim{suffix}", fps=8)
    reader = imageio.get_reader(path)
    read = [f for f in reader]
    assert len(read) == 4
    assert read[0].shape[1] == 40 and read[0].shape[0] in (33, 34)
    assert [p.name for p in tmp_path.iterdir()] == [f"anim{suffix}"]  # no temporary files left


def test_animation_errors_leave_no_file(tmp_path) -> None:
    with pytest.raises(UserError, match="must end in .gif or .mp4"):
        io.AnimationWriter(tmp_path / "a.avi")
    with pytest.raises(UserError, match="must all be"), io.AnimationWriter(tmp_path / "a.gif") as w:
        w.add(torch.rand(3, 8, 8))
        w.add(torch.rand(3, 9, 8))
    with pytest.raises(UserError, match="no frames"), io.AnimationWriter(tmp_path / "b.gif"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_written_files_get_the_usual_mode_not_0600(tmp_path) -> None:
    import os

    mask = os.umask(0o022)
    try:
        path = io.save_image(torch.rand(3, 8, 8), tmp_path / "a.png")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_read_image_decodes_every_depth_and_mode(tmp_path) -> None:
    """16-bit grey, float, palette and transparent images come out as the picture they hold."""
    ramp = np.linspace(0, 1, 64 * 64).reshape(64, 64)
    Image.fromarray((ramp * 65535).astype(np.uint16)).save(tmp_path / "g16.png")
    Image.fromarray(ramp.astype(np.float32)).save(tmp_path / "f.tif")
    Image.fromarray((ramp * 4 - 1).astype(np.float32)).save(tmp_path / "wide.tif")  # -1..3: own range
    Image.fromarray((ramp * 255).astype(np.uint8)).convert("P").save(tmp_path / "p.png")
    clear = np.zeros((8, 8, 4), np.uint8)
    Image.fromarray(clear).save(tmp_path / "clear.png")
    for name in ("g16.png", "f.tif", "wide.tif", "p.png"):
        img = io.read_image(tmp_path / name)
        assert img.shape == (1, 3, 64, 64), name
        assert float(img.mean()) == pytest.approx(0.5, abs=0.01), name
        assert float(img[0, 0, -1, -1]) == pytest.approx(1.0, abs=0.01), name
    assert torch.equal(io.read_image(tmp_path / "clear.png"), torch.ones(1, 3, 8, 8))  # over white


def test_read_image_refuses_folders_and_bombs(tmp_path) -> None:
    import struct
    import zlib

    with pytest.raises(UserError, match="cannot read image .*: it is a folder"):
        io.read_image(tmp_path)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    with pytest.raises(UserError, match="400000000 pixels.*resize it first"):
        io.read_image(tmp_path / "bomb.png")


def test_failed_writes_leave_no_folder(tmp_path) -> None:
    with pytest.raises(RuntimeError), io.atomic_path(tmp_path / "a" / "b" / "x.png"):
        raise RuntimeError("the writer failed")
    assert not (tmp_path / "a").exists()
    with pytest.raises(UserError, match="no frames were written"):
        with io.AnimationWriter(tmp_path / "v" / "a.gif"):
            pass
    assert not (tmp_path / "v").exists()
    with pytest.raises(UserError, match="the file name is 304 bytes long"):
        io.check_writable(tmp_path / ("x" * 300 + ".png"))
    with pytest.raises(UserError, match=r"`fps` must be a finite number >= 0.1 and <= 1000"):
        io.AnimationWriter(tmp_path / "a.mp4", fps=float("inf"))
