"""Feature accentuation: the unit rises, the image stays nearer its photo than a plain visualization
seeded with it; pairs move alike; the CLI writes the image, the seed beside it and a report."""

from __future__ import annotations

import json

import pytest
import torch

from diffparam.cli import main
from diffparam.errors import UserError
from diffparam.io import sample_photos, save_images
from diffparam.objectives import Activations, channel, closeness, first_half
from diffparam.param import make_param
from diffparam.param.pair import ReferencePair
from diffparam.recipes.accentuate import accentuate, default_layer


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return sample_photos(32, ("chelsea",))


def test_closeness_and_first_half(tiny) -> None:
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    same = Activations(tiny.activations(torch.cat([x, x]), ["conv2"]), tiny)
    assert torch.allclose(closeness("conv2")(same), torch.zeros(4), atol=1e-6)
    moved = Activations(tiny.activations(torch.cat([x.flip(-1), x]), ["conv2"]), tiny)
    value = closeness("conv2")(moved)
    assert (value[:2] < -0.01).all() and (value[2:] == 0).all()
    unit = first_half(channel("conv2", 3))(moved)
    assert torch.equal(unit[2:], torch.zeros(2)) and (unit[:2] != 0).all()
    with pytest.raises(UserError, match="even size"):
        closeness("conv2")(Activations(tiny.activations(x[:1], ["conv2"]), tiny))


def test_reference_pair(photo) -> None:
    pair = ReferencePair(make_param("pixel", 32, 32, image=photo), photo)
    out = pair()
    assert pair.copies == 2 and out.shape == (2, 3, 32, 32)
    assert torch.allclose(out[1], photo[0]) and [n for n, _ in pair.named_parameters()] == ["param.pixels"]
    with pytest.raises(UserError, match="must match"):
        ReferencePair(make_param("pixel", 16, 16), photo)


def test_default_layer_is_halfway_along_the_path(tiny, lite0) -> None:
    assert default_layer(tiny, channel("conv3", 0)) == "conv2"
    assert default_layer(tiny, channel("conv1", 0)) == "conv1"
    order = lite0.layer_order()
    assert order[default_layer(lite0, channel("blocks.10", 5))] < order["blocks.10"]


def test_accentuation_rises_and_stays_near_the_photo(tiny, photo) -> None:
    obj = channel("conv3", 2)
    common = dict(size=32, steps=40, progress=False, evaluate=False, lr=0.02)
    held = accentuate(tiny, obj, photo, strength=20, **common)
    free = accentuate(tiny, obj, photo, strength=0, **common)
    assert held.images.shape == (1, 3, 32, 32) and held.extras["layer"] == "conv2"
    assert held.value > held.seed_value
    assert held.feature_distance < free.feature_distance and held.pixel_rmse < free.pixel_rmse
    assert free.value > held.value  # the price of staying close


def test_accentuate_errors(tiny, photo) -> None:
    with pytest.raises(UserError, match="strength"):
        accentuate(tiny, channel("conv3", 2), photo, strength=-1)
    with pytest.raises(UserError, match="unknown `param` 'cppn'; choose one of: fourier, pixel"):
        accentuate(tiny, channel("conv3", 2), photo, param="cppn")
    with pytest.raises(UserError, match="unknown layer"):
        accentuate(tiny, channel("conv3", 2), photo, layer="conv9")
    with pytest.raises(UserError, match="runs after the objective's layer conv2"):
        accentuate(tiny, channel("conv2", 2), photo, layer="conv3")


def test_cli_accentuate(tmp_path, capsys) -> None:
    image, out, path = tmp_path / "cat.png", tmp_path / "acc.png", tmp_path / "r.json"
    save_images(sample_photos(48, ("chelsea",)), image)
    photos = tmp_path / "photos"
    photos.mkdir()
    save_images(sample_photos(64, ("coffee",)), photos / "coffee.png")
    code = main(["accentuate", str(image), "blocks.6:3", "--size", "32", "--steps", "2", "--with-seed",
                 "--photos", str(photos), "--report", str(path), "--out", str(out)])
    assert code == 0
    from PIL import Image

    assert Image.open(out).size[0] > 32  # the seed beside the accentuation
    written = json.loads(path.read_text())
    assert written["command"] == "accentuate" and written["images"][0]["objective"] == "blocks.6:3"
    assert "on the photo" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["missing.png", "blocks.6:3"], "not found"),
    (["cat.png", "blocks.99:3"], "unknown layer"),
    (["cat.png", "blocks.6:3", "--strength", "-2"], "strength"),
    (["cat.png", "blocks.6:3", "--report", "r.csv"], "--report must be a .json file"),
])
def test_cli_accentuate_errors(args, message, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    save_images(sample_photos(32, ("chelsea",)), tmp_path / "cat.png")
    assert main(["accentuate", *args, "--out", "acc.png"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "acc.png").exists()


def test_cli_accentuate_no_trust(tmp_path, capsys) -> None:
    image, out = tmp_path / "cat.png", tmp_path / "acc.png"
    save_images(sample_photos(40, ("chelsea",)), image)
    assert main(["accentuate", str(image), "blocks.6:3", "--size", "32", "--steps", "2", "--no-trust",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.exists() and "on the photo" in printed and "sanity" not in printed
