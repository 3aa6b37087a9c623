"""Aligned interpolation: the shared parameterization, the interpolation and alignment objectives,
the two figures (toy problem; adjacent-frame alignment on the embedded model) and the CLI."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from diffparam import objectives as O
from diffparam.cli import main
from diffparam.errors import UserError
from diffparam.evaluate import objective_values
from diffparam.models.base import Model
from diffparam.objectives import INPUT, Activations
from diffparam.param import FourierImage, Parameterization, PixelImage
from diffparam.param.shared import SharedImage, frame_weights
from diffparam.recipes.interpolate import (
    alignment_figure,
    frame_alignment,
    frames_param,
    save_interpolation,
    toy_alignment,
)
from diffparam.render import render


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class NoLogits(Parameterization):
    """A parameterization without logits(): it cannot be composed."""

    def __init__(self) -> None:
        super().__init__(8, 8, 1, 3)

    def forward(self) -> torch.Tensor:
        return torch.full(self.shape, 0.5)


@pytest.mark.parametrize("param", [FourierImage(12, 9, batch=2, generator=gen(0)),
                                   FourierImage(8, batch=1, decorrelate=False, generator=gen(1)),
                                   PixelImage(7, batch=3, decorrelate=True, generator=gen(2)),
                                   PixelImage(7, batch=3, generator=gen(3))])
def test_logits_are_the_values_before_the_sigmoid(param) -> None:
    assert torch.equal(torch.sigmoid(param.logits()), param())


def test_shared_image_adds_upsampled_shared_logits() -> None:
    unique = FourierImage(32, batch=5, generator=gen(0))
    common = PixelImage(8, batch=1, sd=1.0, generator=gen(1))
    keys = FourierImage(16, 12, batch=2, sd=1.0, generator=gen(2))
    param = SharedImage(unique, [common, keys])
    assert param.shape == (5, 3, 32, 32) and param.default_lr == unique.default_lr
    up = lambda x: F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)  # noqa: E731
    k = up(keys.logits())
    t = torch.linspace(0, 1, 5).view(5, 1, 1, 1)
    expected = unique.logits() + up(common.logits()) + (1 - t) * k[0] + t * k[1]
    torch.testing.assert_close(param.logits(), expected)
    assert torch.equal(param(), torch.sigmoid(param.logits()))
    # The common part is the same in every frame: frames differ only by unique + keyed parts.
    diff = param.logits() - unique.logits() - ((1 - t) * k[0] + t * k[1])
    torch.testing.assert_close(diff, diff[:1].expand_as(diff))
    param().square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in param.parameters())


def test_shared_images_compose() -> None:
    inner = SharedImage(PixelImage(16, batch=3, generator=gen(0)), FourierImage(8, generator=gen(1)))
    outer = SharedImage(inner, PixelImage(4, batch=3, sd=1.0, generator=gen(2)))
    assert outer().shape == (3, 3, 16, 16)
    with torch.no_grad():
        assert 0 < float(outer().min()) and float(outer().max()) < 1


def test_frame_weights_interpolate_keys() -> None:
    w = frame_weights(4, 3)
    assert torch.allclose(w.sum(1), torch.ones(4))
    assert torch.equal(w[0], torch.tensor([1.0, 0, 0])) and torch.equal(w[-1], torch.tensor([0, 0, 1.0]))
    assert torch.allclose(w[1], torch.tensor([1 / 3, 2 / 3, 0]))
    assert torch.equal(frame_weights(3, 1), torch.ones(3, 1))


@pytest.mark.parametrize(("make", "message"), [
    (lambda: SharedImage(NoLogits(), PixelImage(4)), "unique part NoLogits has no logits()"),
    (lambda: SharedImage(PixelImage(8), NoLogits()), "shared part NoLogits has no logits()"),
    (lambda: SharedImage(PixelImage(8, batch=2), PixelImage(4, batch=3)), "batch 3 cannot be spread"),
    (lambda: SharedImage(PixelImage(8), PixelImage(4, channels=1)), "1 channels but the frames have 3"),
    (lambda: SharedImage(PixelImage(8), []), "at least one shared part"),
    (lambda: NoLogits().logits(), "NoLogits has no logits()"),
    (lambda: frames_param(16, 4, param="voxel"),
     "unknown parameterization for shared frames 'voxel'; choose one of: fourier, pixel"),
    (lambda: frames_param(16, 4, param="cppn"), "for shared frames 'cppn'; choose one of: fourier, pixel"),
])
def test_shared_image_errors(make, message) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_interpolation_objective_weights_frames(tiny: Model) -> None:
    images = torch.rand(4, 3, 32, 32, generator=gen(0))
    a, b = O.channel("conv2", 3), O.channel("conv3", 5)
    value = objective_values(tiny, O.interpolation(a, b), images)
    va, vb = objective_values(tiny, a, images), objective_values(tiny, b, images)
    t = torch.tensor([0, 1 / 3, 2 / 3, 1])
    torch.testing.assert_close(value, (1 - t) * va + t * vb)
    assert O.interpolation(a, b).layers == {"conv2", "conv3"}


def test_alignment_penalises_differences_between_nearby_frames() -> None:
    layer = torch.tensor([0.0, 1.0, 3.0]).view(3, 1, 1, 1).expand(3, 2, 2, 2)
    acts = Activations({"conv1": layer, INPUT: torch.zeros(3, 3, 4, 4)})
    # Adjacent pairs cost 1 and 4 (mean squared difference), split between their two frames.
    torch.testing.assert_close(O.alignment("conv1")(acts), -torch.tensor([0.5, 2.5, 2.0]))
    # With reach 2 the pair (0, 2) costs 9 / falloff.
    torch.testing.assert_close(O.alignment("conv1", reach=2, falloff=3.0)(acts),
                               -torch.tensor([0.5 + 1.5, 2.5, 2.0 + 1.5]))
    same = Activations({"conv1": torch.ones(3, 2, 2, 2)})
    assert torch.equal(O.alignment("conv1")(same), torch.zeros(3))
    with pytest.raises(UserError, match=r"reach \(frames apart\) must be a whole number >= 1, got 0"):
        O.alignment("conv1", reach=0)


def test_alignment_makes_frames_alike_on_a_tiny_model(tiny: Model) -> None:
    obj = O.interpolation(O.channel("conv3", 1), O.channel("conv3", 7))
    gaps = []
    for weight in (0.0, 10.0):
        param = PixelImage(32, batch=3, sd=0.5, generator=gen(0))
        images = render(tiny, obj + weight * O.alignment("conv2"), param=param, steps=30,
                        transforms=None, device="cpu", progress=False).images
        with torch.no_grad():
            acts = tiny.activations(images, ["conv2"])["conv2"]
        gaps.append(float((acts[1:] - acts[:-1]).pow(2).mean()))
    assert gaps[1] < 0.5 * gaps[0], gaps


def test_frame_alignment_measure() -> None:
    x = torch.rand(1, 3, 16, 16, generator=gen(0))
    assert frame_alignment(torch.cat([x, 0.5 * x + 0.2, x])) == pytest.approx(1.0)
    noise = torch.rand(6, 3, 16, 16, generator=gen(1))
    assert abs(frame_alignment(noise)) < 0.05
    with pytest.raises(UserError, match="at least 2 frames"):
        frame_alignment(x)


def test_toy_problem_shared_term_aligns_the_signs() -> None:
    """Figure (a): from the same 1000 starts, a shared term makes the two signs agree far more often."""
    fig = toy_alignment(starts=1000, steps=1000, seed=0)
    assert 0.45 <= fig["independent"] <= 0.55, fig
    assert fig["shared"] >= 0.9, fig
    assert fig["independent_converged"] == 1.0 and fig["shared_converged"] == 1.0, fig


def test_shared_parameterization_aligns_frames_on_the_embedded_model(lite0: Model) -> None:
    """Figure (b): adjacent frames correlate far more with the shared parameterization and the
    alignment term, while the end frames still reach their objectives."""
    a, b = "blocks.6:21", "blocks.6:56"
    fig = alignment_figure(lite0, a, b, frames=6, size=64, steps=48, device="cpu",
                           measure_layer="blocks.4", progress=False)
    ind, shared = fig["independent"], fig["shared+align"]
    assert shared.alignment >= ind.alignment + 0.4, (ind, shared)
    assert shared.feature_alignment >= ind.feature_alignment + 0.3, (ind, shared)
    assert shared.first_a >= 0.8 * ind.first_a and shared.last_b >= 0.8 * ind.last_b, (ind, shared)
    va = objective_values(lite0, O.parse(a, lite0), shared.frames)
    vb = objective_values(lite0, O.parse(b, lite0), shared.frames)
    assert va[0] > va[-1] and vb[-1] > vb[0], (va, vb)


def test_save_interpolation_gif_mp4_and_strip(tmp_path) -> None:
    frames = torch.rand(3, 3, 20, 24, generator=gen(0))
    anim, strip = save_interpolation(frames, tmp_path / "a.gif", fps=5)
    assert strip == tmp_path / "a.png" and Image.open(strip).size == (3 * 26 + 2, 24)
    with Image.open(anim) as gif:
        assert gif.n_frames == 4 and gif.size == (24, 20)  # 0 1 2 1: forward, then back
    anim, strip = save_interpolation(frames, tmp_path / "b.mp4", tmp_path / "s.png", bounce=False)
    assert anim.stat().st_size > 0 and strip.exists()
    with pytest.raises(UserError, match="same file"):
        save_interpolation(frames, tmp_path / "c.gif", tmp_path / "c.gif")


def test_cli_writes_animation_and_strip(tmp_path, capsys) -> None:
    out = tmp_path / "anim.gif"
    code = main(["interpolate", "blocks.2:3", "blocks.2:12", "--frames", "3", "--size", "32",
                 "--steps", "2", "--align-weight", "0.1", "--device", "cpu", "--quiet",
                 "--out", str(out)])
    assert code == 0
    assert capsys.readouterr().out.split() == [str(out), str(tmp_path / "anim.png")]
    assert Image.open(tmp_path / "anim.png").size == (3 * 34 + 2, 36)
    with Image.open(out) as gif:
        assert gif.n_frames == 4


@pytest.mark.parametrize(("args", "message"), [
    (["--frames", "1"], "--frames must be a whole number >= 2, got 1"),
    (["--out", "x.png"], "--out must end in .gif or .mp4"),
    (["--align-weight", "0.1", "--align-layer", "block.2"], "unknown layer 'block.2'"),
    (["--align-weight", "-1"], "--align-weight must be a finite number >= 0, got -1.0"),
    (["--fps", "0"], "--fps must be a finite number >= 0.1 and <= 1000 (frames per second), got 0.0"),
    (["--size", "8"], "outside 16..4096"),
])
def test_cli_errors(args, message, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["interpolate", "blocks.2:3", "blocks.2:12", "--steps", "1", "--quiet", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("diffparam: error:") and message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
