"""Video style transfer by optimisation (issue 17, Ruder et al.): the temporal objective, the turntable
test video, and frames that carry their texture along the motion instead of flickering."""

from __future__ import annotations

import pytest
import torch

from diffparam.cli import main
from diffparam.evaluate.video import known_motion_video, warping_error
from diffparam.io import read_frames, sample_photos, save_animation, save_image
from diffparam.models.base import Model
from diffparam.objectives import Activations, temporal
from diffparam.objectives.core import INPUT
from diffparam.recipes.style import swirl_pattern
from diffparam.recipes.style_net import style_distance
from diffparam.recipes.style_video import style_frames


def test_temporal_objective_counts_only_the_masked_pixels_at_the_size_seen() -> None:
    target = torch.rand(1, 3, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4] = 1
    objective = temporal(target, mask, weight=2.0)
    same = target.clone()
    same[..., 4:] = 1 - same[..., 4:]  # differs only where the mask is 0
    assert float(objective(Activations({INPUT: same}))[0]) == pytest.approx(0.0, abs=1e-7)
    off = target + 0.1
    assert float(objective(Activations({INPUT: off}))[0]) == pytest.approx(-2.0 * 0.01, rel=1e-4)
    bigger = torch.nn.functional.interpolate(off, size=16, mode="bilinear", align_corners=False)
    assert float(objective(Activations({INPUT: bigger}))[0]) == pytest.approx(-0.02, rel=0.05)


def test_turntable_marks_hidden_and_uncovered_pixels_as_having_no_source() -> None:
    video, grids = known_motion_video(sample_photos(128, ("coffee",)), "turntable", frames=4, size=64)
    assert video.shape == (4, 3, 64, 64) and grids.shape == (3, 64, 64, 2)
    kept = (grids.abs() <= 1).all(-1)
    assert 0.9 < float(kept.float().mean()) < 1.0  # most pixels have a source, some were hidden
    # the backdrop stands still: a corner pixel comes from itself
    identity = torch.nn.functional.affine_grid(torch.eye(2, 3)[None], [1, 3, 64, 64], align_corners=False)[0]
    assert torch.allclose(grids[0, 0, 0], identity[0, 0])


@pytest.fixture(scope="module")
def pan() -> tuple[torch.Tensor, torch.Tensor]:
    return known_motion_video(sample_photos(160, ("chelsea",)), "pan", frames=4, size=80)


def test_video_mode_carries_the_texture_along_the_motion(lite0: Model, pan) -> None:
    video, grids = pan
    style_img = swirl_pattern(80, seed=3)
    options = dict(size=80, steps=40, frame_steps=20, device="cpu")
    alone = torch.stack(list(style_frames(video, style_img, lite0, start="content", temporal_weight=0.0,
                                          **options)))
    carried = torch.stack(list(style_frames(video, style_img, lite0, **options)))
    assert carried.shape == alone.shape == video.shape
    assert torch.equal(carried[0], alone[0])  # the first frame has nothing to follow
    assert warping_error(carried, grids) < 0.5 * warping_error(alone, grids)
    styled = style_distance(lite0, style_img, carried).mean()
    assert styled < 1.15 * style_distance(lite0, style_img, alone).mean()
    assert styled < 0.8 * style_distance(lite0, style_img, video).mean()  # and it is styled


def test_cli_styles_a_video_frame_for_frame_and_refuses_bad_input(tmp_path, pan, capsys) -> None:
    save_animation(pan[0][:3], tmp_path / "in.gif", fps=8)
    save_image(swirl_pattern(48)[0], tmp_path / "style.png")
    common = [str(tmp_path / "in.gif"), str(tmp_path / "style.png"), "--size", "48", "--device", "cpu",
              "--quiet"]
    assert main(["style", *common, "--out", str(tmp_path / "out.mp4"), "--steps", "3",
                 "--frame-steps", "2"]) == 0
    assert len(list(read_frames(tmp_path / "out.mp4"))) == 3
    before = sorted(p.name for p in tmp_path.iterdir())
    gif = str(tmp_path / "o.gif")
    for args, message in ([["--out", str(tmp_path / "o.png")], "must end in .gif or .mp4"],
                          [["--out", gif, "--temporal-weight", "-1"], "--temporal-weight"],
                          [["--out", gif, "--init", "noise"], "--init applies to a photo"]):
        assert main(["style", *common, *args]) == 2
        assert message in capsys.readouterr().err
    (tmp_path / "empty.gif").write_bytes(b"GIF89a")
    assert main(["style", str(tmp_path / "empty.gif"), *common[1:], "--out", str(tmp_path / "o.gif")]) == 2
    assert "video" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "empty.gif"])
