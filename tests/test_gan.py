"""The single-image GAN (issue 16) at a tiny size on the CPU: training makes samples a fresh critic can
hardly tell from the image, samples differ from each other and from the image, an interrupted run
resumes to what an uninterrupted one makes, the generator works as a parameterization, and bad input
fails in one line with nothing written."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from diffparam.cli import main
from diffparam.errors import UserError
from diffparam.evaluate import pixel_diversity, sifid
from diffparam.io import read_frames, read_image, sample_photos, save_image
from diffparam.recipes import gan
from diffparam.recipes.gan import (
    critic_advantage,
    gan_animation,
    gan_paint,
    gan_samples,
    train_gan,
    training_images,
)
from diffparam.render import render
from diffparam.train import load_pyramid
from diffparam.train.singan import Pyramid, ScaleGenerator

TINY = dict(scales=3, size=32, min_size=14, steps=40, width=16, lr=2e-3, device="cpu", progress=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run trained on a 32 px crop of scikit-image's cat: the folder, the image, the result (one thread:
    tiny convolutions are fastest so; the session's setting is restored after this module)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    where = tmp_path_factory.mktemp("gan")
    image = sample_photos(32, ("chelsea",))
    save_image(image[0], where / "cat.png")
    result = train_gan(where / "cat.png", where / "run", **TINY)
    yield where, read_image(where / "cat.png"), result
    torch.set_num_threads(threads)


def test_training_leaves_a_fresh_critic_little_advantage(run) -> None:
    where, image, result = run
    trained = load_pyramid(where / "run")
    torch.manual_seed(0)
    fresh = [ScaleGenerator(g.width) for g in trained.generators]
    untrained = Pyramid(fresh, trained.amplitudes, trained.shapes)
    after = critic_advantage(trained, image, steps=40, width=16, device="cpu")
    before = critic_advantage(untrained, image, steps=40, width=16, device="cpu")
    assert after < 0.25 * before, (after, before)
    assert result.metrics["reconstruction"][-1] < 0.05  # the fixed noise gives the image back


def test_samples_differ_from_each_other_and_from_the_image(run) -> None:
    where, image, result = run
    samples = gan_samples(where / "run", n=6, seed=1, device="cpu").images
    assert samples.shape == (6, 3, 32, 32) and result.images.shape == (4, 3, 32, 32)
    assert pixel_diversity(samples, image) > 0.1
    assert float((samples - image).abs().flatten(1).mean(1).min()) > 0.03  # none is the image itself
    gaps = (samples[:, None] - samples[None]).abs().flatten(2).mean(2) + torch.eye(6)
    assert float(gaps.min()) > 0.02
    assert abs(float(samples.mean()) - float(image.mean())) < 0.05  # the image's colours, though
    wide = gan_samples(where / "run", n=2, size=(24, 56), device="cpu").images
    assert wide.shape == (2, 3, 24, 56)


def test_command_line_samples_animates_paints_and_harmonizes(run, capsys) -> None:
    where, image, _ = run
    assert main(["gan", "sample", str(where / "run"), "--n", "3", "--size", "40x20", "--out",
                 str(where / "samples"), "--device", "cpu"]) == 0
    assert sorted(p.name for p in (where / "samples").iterdir()) == [f"sample_{i}.png" for i in range(3)]
    assert read_image(where / "samples" / "sample_0.png").shape == (1, 3, 20, 40)
    video = gan_animation(where / "run", where / "walk.gif", frames=5, device="cpu")
    frames = torch.stack(list(read_frames(where / "walk.gif")))
    assert video.metrics["frames"] == 5 and frames.shape[0] == 5
    moves = (frames[1:] - frames[:-1]).abs().mean((1, 2, 3))
    assert float(moves.min()) > 0.002 and float(moves.max()) < 0.1  # it moves, smoothly
    def blocks(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(F.avg_pool2d(x, 8), scale_factor=8, mode="nearest")

    sketch = blocks(image)  # flat 8 px blocks of the cat's colours
    paint = gan_paint(where / "run", sketch, device="cpu")
    painted = paint.images
    assert painted.shape == (1, 3, 32, 32)
    assert float((blocks(painted) - sketch).abs().mean()) < 0.05  # the sketch's layout and colours
    shape = load_pyramid(where / "run").shapes[paint.metrics["start_scale"]]
    at_scale = F.interpolate(sketch, size=shape, mode="bilinear", antialias=True)
    smoothed = F.interpolate(at_scale, size=(32, 32), mode="bilinear")  # the sketch with no detail added
    detail = float((painted - blocks(painted)).abs().mean())
    assert detail > 1.5 * float((smoothed - blocks(smoothed)).abs().mean())
    pasted, mask = image.clone(), torch.zeros(1, 3, 32, 32)
    pasted[..., 8:20, 8:20], mask[..., 8:20, 8:20] = torch.tensor([0.0, 0.0, 1.0])[:, None, None], 1.0
    save_image(pasted[0], where / "pasted.png")
    save_image(mask[0], where / "mask.png")
    assert main(["gan", "harmonize", str(where / "run"), str(where / "pasted.png"), "--mask",
                 str(where / "mask.png"), "--out", str(where / "harmonized.png"), "--device", "cpu"]) == 0
    made = read_image(where / "harmonized.png")
    outside = mask == 0
    assert float((made - read_image(where / "pasted.png")).abs()[outside].max()) <= 1 / 255
    assert float((made - pasted).abs()[~outside].mean()) > 0.05  # the pasted square was changed
    capsys.readouterr()


def test_the_gan_is_a_parameterization_for_render(run, tiny, capsys) -> None:
    where, image, _ = run
    result = render(tiny, "conv3:1", param=f"gan:{where / 'run'}", size=(32, 48), steps=12, lr=0.1,
                    device="cpu", progress=False, transforms=[])
    assert result.images.shape == (1, 3, 32, 48)
    assert result.history[-1] < result.history[0]  # the unit's activation went up
    assert abs(float(result.images.mean()) - float(image.mean())) < 0.1  # in the image's colours
    out = where / "render.png"
    assert main(["render", "blocks.2:3", "--param", f"gan:{where / 'run'}", "--size", "32", "--steps", "3",
                 "--device", "cpu", "--quiet", "--no-trust", "--out", str(out)]) == 0
    assert read_image(out).shape == (1, 3, 32, 32)
    capsys.readouterr()
    assert main(["render", "blocks.2:3", "--param", f"gan:{where / 'nothing'}", "--size", "32", "--steps",
                 "3", "--device", "cpu", "--quiet", "--no-trust", "--out", str(where / "never.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not found" in err and "\n" not in err and not (where / "never.png").exists()


def _step_that_stops(at: tuple[int, int]):
    original = gan._ScaleStep.__call__
    calls = {"scale": -1}

    def step(self, i: int, generator: torch.Generator) -> torch.Tensor:
        if i == 0:
            calls["scale"] += 1
        if (calls["scale"], i) == at:
            raise KeyboardInterrupt
        return original(self, i, generator)

    return step


def test_an_interrupted_run_resumes_to_what_an_uninterrupted_one_makes(tmp_path, monkeypatch) -> None:
    grey = sample_photos(24, ("camera",))  # scikit-image's grey photographer, as RGB
    save_image(grey[0], tmp_path / "grey.png")
    small = dict(scales=2, size=24, min_size=12, steps=6, width=4, every=2, device="cpu", progress=False)
    whole = train_gan(tmp_path / "grey.png", tmp_path / "whole", **small)
    with monkeypatch.context() as m:
        m.setattr(gan._ScaleStep, "__call__", _step_that_stops((1, 3)))
        with pytest.raises(KeyboardInterrupt):
            train_gan(tmp_path / "grey.png", tmp_path / "cut", **small)
    with pytest.raises(UserError, match="not fully trained"):
        load_pyramid(tmp_path / "cut")
    resumed = train_gan(tmp_path / "grey.png", tmp_path / "cut", **small)
    assert resumed.history == whole.history
    for a, b in zip(load_pyramid(tmp_path / "whole").state_dict().values(),
                    load_pyramid(tmp_path / "cut").state_dict().values(), strict=True):
        assert torch.equal(a, b)
    samples = gan_samples(tmp_path / "cut", n=2, device="cpu").images
    assert torch.equal(samples[:, 0], samples[:, 1]) and torch.equal(samples[:, 0], samples[:, 2])  # grey
    with pytest.raises(UserError, match=r"other settings \(steps\)"):
        train_gan(tmp_path / "grey.png", tmp_path / "cut", **{**small, "steps": 8})


def test_bad_images_fail_in_one_line_and_write_nothing(tmp_path, capsys) -> None:
    save_image(torch.rand(3, 10, 40), tmp_path / "thin.png")
    assert main(["gan", "train", str(tmp_path / "thin.png"), "--out", str(tmp_path / "run"), "--min-size",
                 "12", "--steps", "1", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "too small" in err and "\n" not in err and not (tmp_path / "run").exists()
    assert main(["gan", "sample", str(tmp_path), "--out", str(tmp_path / "s")]) == 2
    assert "no GAN run" in capsys.readouterr().err and not (tmp_path / "s").exists()
    (tmp_path / "junk.png").write_bytes(b"not a png")
    assert main(["gan", "train", str(tmp_path / "junk.png"), "--out", str(tmp_path / "run2")]) == 2
    assert "\n" not in capsys.readouterr().err.strip() and not (tmp_path / "run2").exists()
    save_image(torch.rand(3, 16, 20), tmp_path / "ok.png")
    train = ["gan", "train", str(tmp_path / "ok.png"), "--out", str(tmp_path / "ok"), "--scales", "2",
             "--min-size", "8", "--width", "4", "--device", "cpu", "--quiet", "--steps"]
    assert main([*train, "2"]) == 0 and main([*train, "2"]) == 0  # the second run finds it finished
    assert capsys.readouterr().out.split() == [str(tmp_path / "ok")] * 2
    assert main([*train, "3"]) == 2
    assert "other settings (steps)" in capsys.readouterr().err
    assert main(["gan", "sample", str(tmp_path / "ok"), "--n", "9000", "--size", "4000x4000", "--out",
                 str(tmp_path / "s")]) == 2
    assert "ask for fewer (--n) or smaller (--size)" in capsys.readouterr().err  # a verb's options as flags
    assert not (tmp_path / "s").exists()
    with pytest.warns(RuntimeWarning, match="training at 32x16"):
        big = training_images(torch.rand(3, 50, 100), size=32, min_size=8)
    assert big.shape == (1, 3, 16, 32)


def test_fit_takes_tensor_losses_and_returns_floats(tmp_path) -> None:
    """A GAN step returns its loss as a tensor (no host sync per step); fit hands back floats all the same."""
    from diffparam.train import fit

    def step(i: int, generator: torch.Generator) -> torch.Tensor:
        return torch.tensor(float(i)) * 2

    history = fit(step, {}, {}, 5, {"a": 1}, checkpoint=tmp_path / "c.pt", every=2, progress=False)
    assert history == [0.0, 2.0, 4.0, 6.0, 8.0] and all(type(x) is float for x in history)
    assert torch.load(tmp_path / "c.pt", weights_only=True)["history"] == history


def test_a_folder_trains_one_gan_on_the_patches_of_all_its_images(tmp_path) -> None:
    photos = sample_photos(40, ("chelsea", "coffee", "rocket"))
    (tmp_path / "photos").mkdir()
    for i, p in enumerate(photos):
        save_image(p[:, :, : 40 - 8 * i], tmp_path / "photos" / f"{i}.png")  # other shapes: cropped alike
    (tmp_path / "photos" / "notes.txt").write_text("not a photo")
    with pytest.warns(RuntimeWarning, match="training at 32x32"):  # 40 px: over `size`, so downscaled
        result = train_gan(tmp_path / "photos", tmp_path / "run", scales=2, size=32, min_size=12, steps=3,
                           width=4, device="cpu", progress=False)
    meta = torch.load(tmp_path / "run" / "run.pt", weights_only=True)
    assert meta["reals"][-1].shape == (3, 3, 32, 32) and meta["z_rec"].shape[0] == 3
    assert result.images.shape == (4, 3, 32, 32) and len(result.history) == 6



def test_sifid_reads_an_images_internal_statistics(lite0) -> None:
    image = sample_photos(64, ("chelsea",))
    noise = torch.rand(1, 3, 64, 64)
    itself, mirror, other = sifid(lite0, torch.cat([image, image.flip(-1), noise]), image).tolist()
    assert itself < 1e-3 * other and mirror < 0.5 * other  # the mirror image has the photo's statistics
    assert pixel_diversity(image.expand(3, -1, -1, -1), image) == 0
    assert pixel_diversity(torch.cat([image, noise]), image) > 0.5
