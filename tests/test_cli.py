"""The command line: files written, one-line errors with status 2, layers listing, demo gallery."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

from diffparam.cli import main


def test_render_writes_png(tmp_path, capsys) -> None:
    out = tmp_path / "unit.png"
    code = main(["render", "blocks.2:3", "--size", "48", "--steps", "3", "--device", "cpu",
                 "--quiet", "--out", str(out)])
    assert code == 0 and Image.open(out).size == (48, 48)
    assert str(out) in capsys.readouterr().out


def test_render_batch_separate_files(tmp_path) -> None:
    out = tmp_path / "u.png"
    code = main(["render", "blocks.2:3", "--size", "32", "--steps", "2", "--batch", "2",
                 "--separate", "--param", "pixel", "--checkpoint", "--quiet", "--out", str(out)])
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u_0.png", "u_1.png"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["render", "blocks.99:1"], "unknown layer 'blocks.99'"),
        (["render", "blocks.10:999"], "blocks.10 has 112 channels"),
        (["render", "logit:notaclass"], "unknown class"),
        (["render", "blocks.2:1", "--size", "8"], "outside 16..4096"),
        (["render", "blocks.2:1", "--size", "9000"], "outside 16..4096"),
        (["render", "blocks.2:1", "--steps", "0"], "--steps must be a whole number >= 1, got 0"),
        (["render", "blocks.2:1", "--param", "voxel"], "invalid choice"),
        (["render", "blocks.2:1", "--model", "nope"], "unknown model 'nope'"),
        (["render", "blocks.2:1", "--weights", "/no/such.pt"], "weights file not found"),
        (["render", "blocks.2:1", "--out", "/proc/forbidden/x.png"], "cannot write"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_user_errors_are_one_line_status_2(args, message, capsys, tmp_path) -> None:
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "x.png")] if args[0] == "render" else args
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("diffparam: error:") and message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()


def test_channel_list_writes_one_png_per_channel(tmp_path) -> None:
    out = tmp_path / "units"
    code = main(["render", "blocks.4:3,7,11", "--size", "32", "--steps", "2", "--quiet",
                 "--device", "cpu", "--out", f"{out}/"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["blocks.4_11.png", "blocks.4_3.png",
                                                     "blocks.4_7.png"]


def test_channel_list_errors(tmp_path, capsys) -> None:
    assert main(["render", "blocks.4:3,7", "--out", str(tmp_path / "a.png")]) == 2
    assert "give a folder" in capsys.readouterr().err
    assert main(["render", "blocks.4:3,7", "--batch", "2", "--out", str(tmp_path)]) == 2
    assert "drop --batch" in capsys.readouterr().err
    assert main(["render", "blocks.4:3,700", "--out", str(tmp_path / "d")]) == 2
    assert "blocks.4 has 40 channels" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_layers_lists_blocks(capsys) -> None:
    assert main(["layers"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header == "# efficientnet_lite0 takes RGB images of any size (native 224x224)"
    rows = {line.split()[0]: line.split()[1:] for line in lines}
    assert rows["blocks.15"] == ["320", "chw", "7x7"] and rows["logits"] == ["1000", "vector"]


def test_console_script_no_traceback(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "diffparam", "render", "nolayer:1", "--out",
                           str(tmp_path / "a.png")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_demo_writes_gallery(tmp_path) -> None:
    code = main(["demo", "--out", str(tmp_path), "--size", "32", "--steps", "2", "--quiet",
                 "--device", "cpu"])
    assert code == 0
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert len(pngs) == 6 and "logit_flamingo.png" in pngs
    page = (tmp_path / "index.html").read_text()
    assert all(name in page for name in pngs) and "best natural photo" in page
