"""Fast style transfer (issue 17, first part): the shared training loop (checkpoints, resume) and a
style network that lowers the style loss on a photo it never saw."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from diffparam.cli import main
from diffparam.errors import UserError
from diffparam.io import sample_photos, save_image
from diffparam.recipes.style_net import apply_style_net, style_distance, train_style_net
from diffparam.train import StyleNet, fit


def _regression(steps: int, checkpoint, stop_at: int | None = None, settings=None) -> tuple[nn.Linear, list]:
    torch.manual_seed(0)
    net = nn.Linear(3, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)

    def step(i: int, generator: torch.Generator) -> float:
        if i == stop_at:
            raise KeyboardInterrupt
        x = torch.randn(8, 3, generator=generator)
        loss = (net(x).squeeze(1) - x.sum(1)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())

    history = fit(step, {"net": net}, {"opt": opt}, steps, settings or {"lr": 0.1}, checkpoint=checkpoint,
                  every=3, progress=False)
    return net, history


def test_an_interrupted_run_resumes_to_what_an_uninterrupted_one_makes(tmp_path) -> None:
    whole, history = _regression(10, tmp_path / "whole.pt")
    with pytest.raises(KeyboardInterrupt):
        _regression(10, tmp_path / "cut.pt", stop_at=7)
    assert torch.load(tmp_path / "cut.pt", weights_only=False)["step"] == 7  # saved on Ctrl-C
    resumed, resumed_history = _regression(10, tmp_path / "cut.pt")
    assert resumed_history == history and torch.equal(resumed.weight, whole.weight)
    assert history[-1] < 0.1 * history[0]


def test_resume_with_other_settings_is_refused(tmp_path) -> None:
    _regression(4, tmp_path / "run.pt")
    with pytest.raises(UserError, match=r"trained with other settings \(lr\)"):
        _regression(6, tmp_path / "run.pt", settings={"lr": 0.5})
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        _regression(4, tmp_path / "junk.pt")


def test_style_net_keeps_any_size() -> None:
    torch.manual_seed(0)
    with torch.no_grad():
        out = StyleNet(width=4, blocks=1)(torch.rand(2, 3, 37, 53))
    assert out.shape == (2, 3, 37, 53) and 0 <= float(out.min()) and float(out.max()) <= 1


@pytest.fixture(scope="module")
def trained(tmp_path_factory, lite0):
    """A tiny network trained on four photos for a blocky style; the fifth photo is held out."""
    where = tmp_path_factory.mktemp("style-net")
    photos = sample_photos(96)
    (where / "train").mkdir()
    for i in (0, 1, 2, 4):
        save_image(photos[i], where / "train" / f"{i}.png")
    torch.manual_seed(1)
    style = nn.functional.interpolate(torch.rand(1, 3, 6, 6), size=64, mode="nearest")
    save_image(style[0], where / "style.png")
    result = train_style_net(where / "style.png", where / "net.pt", images=where / "train", model=lite0,
                             steps=40, size=64, batch=2, width=8, device="cpu", progress=False)
    return where, style, photos[3:4, :, :64, :64], result


def test_trained_network_lowers_the_style_loss_on_a_photo_it_never_saw(trained, lite0) -> None:
    where, style, held_out, result = trained
    made = apply_style_net(where / "net.pt", held_out, device="cpu").images
    assert made.shape == held_out.shape
    before, after = float(style_distance(lite0, style, held_out)), float(style_distance(lite0, style, made))
    assert after < 0.8 * before, (before, after)
    assert result.history[-1] < result.history[0]


def test_cli_apply_and_errors(trained, tmp_path, capsys) -> None:
    where, _, held_out, _ = trained
    save_image(held_out[0], tmp_path / "photo.png")
    assert main(["style-net", "apply", str(where / "net.pt"), str(tmp_path / "photo.png"),
                 "--out", str(tmp_path / "styled.png"), "--device", "cpu"]) == 0
    assert (tmp_path / "styled.png").is_file()
    assert main(["style-net", "apply", str(tmp_path / "photo.png"), str(tmp_path / "photo.png"),
                 "--out", str(tmp_path / "bad.png")]) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err and not (tmp_path / "bad.png").exists()
    assert main(["style-net", "train", str(tmp_path / "missing.png"), "--out", str(tmp_path / "n.pt")]) == 2
    assert "image not found" in capsys.readouterr().err and not (tmp_path / "n.pt").exists()


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_videos_are_stylised_frame_by_frame(trained, tmp_path, suffix, capsys) -> None:
    from diffparam.io import read_frames, save_animation

    where, _, held_out, _ = trained
    pan = [held_out[0, :, :, i:i + 48] for i in range(0, 16, 4)]  # a pan across the held-out photo
    save_animation(pan, tmp_path / f"pan{suffix}", fps=8)
    assert main(["style-net", "apply", str(where / "net.pt"), str(tmp_path / f"pan{suffix}"),
                 "--out", str(tmp_path / f"styled{suffix}"), "--device", "cpu", "--quiet"]) == 0
    frames = list(read_frames(tmp_path / f"styled{suffix}"))
    assert len(frames) == 4 and frames[0].shape == (3, 64, 48)


def test_bad_videos_fail_in_one_line_and_write_nothing(trained, tmp_path, capsys) -> None:
    where = trained[0]
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    (tmp_path / "broken.gif").write_bytes(b"GIF89a")
    for name in ("broken.mp4", "broken.gif", "missing.gif"):
        assert main(["style-net", "apply", str(where / "net.pt"), str(tmp_path / name),
                     "--out", str(tmp_path / "out.gif"), "--device", "cpu"]) == 2
        assert "video" in capsys.readouterr().err and not (tmp_path / "out.gif").exists()
    assert main(["style-net", "apply", str(where / "net.pt"), str(tmp_path / "broken.gif"),
                 "--out", str(tmp_path / "out.png")]) == 2
    assert "must end in .gif or .mp4" in capsys.readouterr().err


@pytest.mark.parametrize("motion", ["pan", "zoom", "turntable"])
def test_warping_error_is_small_for_content_that_moves_with_the_camera(motion) -> None:
    from diffparam.evaluate.video import known_motion_video, warping_error

    video, grids = known_motion_video(sample_photos(192, ("chelsea",)), motion, frames=6, size=96)
    assert video.shape == (6, 3, 96, 96) and grids.shape == (5, 96, 96, 2)
    still = warping_error(video, grids)  # the photo itself: only resampling changes it
    noise = 0.05 * torch.randn(video.shape, generator=torch.Generator().manual_seed(0))
    flicker = warping_error((video + noise).clamp(0, 1), grids)
    frozen = warping_error(video[:1].expand(6, -1, -1, -1), grids)  # a video that does not move
    assert still < 0.015 and flicker > 3 * still and frozen > 2 * still


def test_stability_loss_makes_outputs_ignore_pixel_noise(tmp_path) -> None:
    photos = sample_photos(96)
    for i in range(3):
        save_image(photos[i], tmp_path / f"{i}.png")
    style = nn.functional.interpolate(torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(2)),
                                      size=64, mode="nearest")
    change = {}
    for weight in (0.0, 3000.0):
        result = train_style_net(style, tmp_path / f"net{weight:g}.pt", images=tmp_path, steps=25, size=48,
                                 batch=2, width=8, stability_weight=weight, device="cpu", progress=False)
        x = photos[3:4, :, :48, :48]
        noise = 0.04 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            change[weight] = float((result.param(x) - result.param((x + noise).clamp(0, 1))).abs().mean())
    assert change[3000.0] < 0.7 * change[0.0], change


def test_motion_loss_makes_outputs_move_with_the_picture(tmp_path) -> None:
    from diffparam.evaluate.video import known_motion_video, warping_error
    from diffparam.recipes.style_net import stylise_frames

    photos = sample_photos(96)
    for i in range(3):
        save_image(photos[i], tmp_path / f"{i}.png")
    style = nn.functional.interpolate(torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(4)),
                                      size=64, mode="nearest")
    video, grids = known_motion_video(sample_photos(128, ("coffee",)), "zoom", frames=5, size=64)
    flicker = {}
    for weight in (0.0, 1000.0):
        result = train_style_net(style, tmp_path / f"net{weight:g}.pt", images=tmp_path, steps=25, size=48,
                                 batch=2, width=8, motion_weight=weight, device="cpu", progress=False)
        flicker[weight] = warping_error(torch.stack(list(stylise_frames(result.param, video))), grids)
    assert flicker[1000.0] < 0.6 * flicker[0.0], flicker


def test_training_leaves_the_callers_random_state_alone(tmp_path) -> None:
    save_image(sample_photos(64)[0], tmp_path / "photo.png")
    style = torch.rand(1, 3, 48, 48)
    before = torch.get_rng_state()
    result = train_style_net(style, tmp_path / "net.pt", images=tmp_path, steps=2, size=40,
                             batch=1, width=4, device="cpu", progress=False)
    assert torch.equal(before, torch.get_rng_state())
    assert result.images.shape == (1, 3, 40, 40) and len(result.history) == 2


def test_stable_mode_follows_the_motion_and_flickers_less(trained, capsys) -> None:
    from diffparam.evaluate.video import known_motion_video, warping_error
    from diffparam.recipes.style_net import load_style_net, stylise_frames

    where = trained[0]
    net = load_style_net(where / "net.pt")
    video, grids = known_motion_video(sample_photos(128, ("coffee",)), "pan", frames=8, size=64)
    plain = torch.stack(list(stylise_frames(net, video, device="cpu")))
    stable = torch.stack(list(stylise_frames(net, video, stable=True, device="cpu")))
    assert torch.equal(stable[0], plain[0])  # nothing to follow in the first frame
    assert warping_error(stable, grids) < 0.8 * warping_error(plain, grids)
    assert main(["style-net", "apply", str(where / "net.pt"), str(where / "style.png"), "--out",
                 str(where / "x.png"), "--stable"]) == 2
    assert "--stable follows motion" in capsys.readouterr().err
    assert main(["style-net", "apply", str(where / "net.pt"), str(where / "style.png"), "--out",
                 str(where / "x.png"), "--blend", "0.5"]) == 2
    assert "give --stable too" in capsys.readouterr().err
    with pytest.raises(UserError, match="blend"):
        next(stylise_frames(net, video, stable=True, blend=1.0))
