"""CPPN art: activation against photos, renders at any size, the training video, morphs, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from diffparam.cli import main
from diffparam.errors import UserError
from diffparam.evaluate import unit_ratio
from diffparam.io import to_uint8
from diffparam.models.base import Model
from diffparam.param import CPPN
from diffparam.recipes.cppn_art import cppn_art, morph, save_render
from diffparam.result import Result

SIZE, STEPS = 64, 96


@pytest.fixture(scope="module")
def arts(lite0: Model, tmp_path_factory) -> dict[str, Result]:
    """Two CPPNs trained from the same seed for two units; the first one filmed."""
    video = tmp_path_factory.mktemp("video") / "evolution.gif"
    return {
        "blocks.10:27": cppn_art(lite0, "blocks.10:27", size=SIZE, steps=STEPS, device="cpu",
                                 progress=False, video=video, every=24),
        "blocks.6:21": cppn_art(lite0, "blocks.6:21", size=48, steps=48, device="cpu",
                                progress=False),
    }


def test_cppn_art_beats_natural_photos_at_its_size_and_when_rendered_finer(lite0, arts) -> None:
    """Measured 9.1x (64 px, 96 steps); a 4x render area-downsampled back keeps it within 1%."""
    art = arts["blocks.10:27"]
    ratio = float(unit_ratio(lite0, "blocks.10", 27, art.images)[0])
    assert ratio >= 5, ratio
    fine = F.interpolate(art.param.render(4 * SIZE), size=(SIZE, SIZE), mode="area")
    assert abs(float(unit_ratio(lite0, "blocks.10", 27, fine)[0]) - ratio) < 0.05 * ratio


def test_training_video_has_a_frame_every_k_steps(arts) -> None:
    art = arts["blocks.10:27"]
    assert art.video_frames == 1 + STEPS // 24  # the random start, then every 24 steps
    with Image.open(art.files["video"]) as gif:
        assert gif.n_frames == art.video_frames and gif.size == (SIZE, SIZE)


def test_save_render_writes_the_same_pixels_as_a_float_render(tmp_path) -> None:
    cppn = CPPN(32, generator=torch.Generator().manual_seed(3))
    path = save_render(cppn, tmp_path / "big.png", (300, 200), chunk_pixels=5000)
    with Image.open(path) as im:
        assert im.mode == "RGB" and im.size == (200, 300)
        assert np.array_equal(np.asarray(im), to_uint8(cppn.render(300, 200)[0]))
    rgba = CPPN(16, channels=4, generator=torch.Generator().manual_seed(3))
    with Image.open(save_render(rgba, tmp_path / "rgba.png", 40)) as im:
        assert im.mode == "RGBA" and im.size == (40, 40)
    with pytest.raises(UserError, match="outside 16..16384"):
        save_render(cppn, tmp_path / "huge.png", 20000)
    with pytest.raises(UserError, match=".png"):
        save_render(cppn, tmp_path / "big.jpg", 64)


def test_interpolate_runs_from_a_to_b_and_checks_architectures() -> None:
    a = CPPN(16, generator=torch.Generator().manual_seed(0))
    b = CPPN(16, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.interpolate(b, 0.0)(), a())
    assert torch.equal(a.interpolate(b, 1.0)(), b())
    half = a.interpolate(b, 0.5)
    assert torch.allclose(half.weights[3], (a.weights[3] + b.weights[3]) / 2)
    with pytest.raises(UserError, match="hidden 24 vs 8"):
        a.interpolate(CPPN(16, hidden=8), 0.5)


def test_morph_between_trained_cppns_is_smooth(arts, tmp_path) -> None:
    """Measured on 24 frames: the largest change between adjacent frames is 2.1x the mean one and
    0.088 in mean absolute pixel value (the first and last frames differ by 0.22): no jumps."""
    a, b = arts["blocks.10:27"].param, arts["blocks.6:21"].param
    result = morph(a, b, tmp_path / "morph.gif", frames=24, size=48, device="cpu", progress=False)
    assert len(result.adjacent) == 23 and result.endpoints > 0.05
    assert result.jump < 3 and max(result.adjacent) < 0.12, result
    with Image.open(result.files["animation"]) as gif:
        assert gif.size == (48, 48)
    assert result.images.shape == (2, 3, 48, 48) and result.detour >= 1


def test_cli_cppn_and_morph(tmp_path, capsys) -> None:
    args = ["--size", "32", "--steps", "3", "--device", "cpu", "--quiet"]
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    code = main(["cppn", "blocks.2:3", *args, "--out", str(tmp_path / "a.png"), "--render-size", "96",
                 "--save", str(a), "--video", str(tmp_path / "a.gif"), "--every", "1"])
    assert code == 0
    with Image.open(tmp_path / "a.png") as im:
        assert im.size == (96, 96)
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames >= 2
    assert main(["cppn", "blocks.2:4", *args, "--seed", "1", "--out", str(tmp_path / "b.png"),
                 "--save", str(b)]) == 0
    capsys.readouterr()
    assert main(["morph", str(a), str(b), "--frames", "6", "--size", "32", "--quiet",
                 "--out", str(tmp_path / "m.mp4")]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "m.mp4") in out and "adjacent-frame change" in out
    assert (tmp_path / "m.mp4").stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cppn", "blocks.2:3,4"], "one objective"),
        (["cppn", "blocks.2:3", "--render-size", "99999"], "outside 16..16384"),
        (["cppn", "blocks.2:3", "--video", "v.avi"], "--video must end in .gif or .mp4"),
        (["cppn", "blocks.2:3", "--out", "x.jpg"], "--out must be a .png file"),
        (["morph", "missing.pt", "missing.pt"], "CPPN file not found"),
        (["morph", "small.pt", "big.pt"], "different architectures: hidden 4 vs 6"),
        (["morph", "small.pt", "small.pt", "--frames", "1"], "--frames must be a whole number >= 2, got 1"),
    ],
)
def test_cli_errors_are_one_line(args, message, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    CPPN(16, hidden=4, depth=2).save(tmp_path / "small.pt")
    CPPN(16, hidden=6, depth=2).save(tmp_path / "big.pt")
    before = set(tmp_path.iterdir())
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("diffparam: error:") and message in err and err.count("\n") == 1
    assert set(tmp_path.iterdir()) == before
