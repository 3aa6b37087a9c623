"""Old public names keep working for one release: each warns, names its replacement, and does what
the new name does."""

from __future__ import annotations

import importlib

import pytest
import torch

from diffparam import objectives as O
from diffparam.cli import main
from diffparam.models.base import Model
from diffparam.param import CPPN, FourierImage, PixelImage, RGBAImage, TextureImage, make_param
from diffparam.recipes.cppn_art import cppn_art
from diffparam.recipes.interpolate import frames_param
from diffparam.recipes.transparency import render_transparent
from diffparam.result import Result
from diffparam.three_d import shapes
from diffparam.three_d.cameras import ViewSampler

pytestmark = pytest.mark.filterwarnings("default::DeprecationWarning")


def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _old(new: str):
    return pytest.warns(DeprecationWarning, match=f"goes in diffparam 0.3: use {new}")


def test_renamed_keywords_do_what_the_new_ones_do() -> None:
    with _old("spectrum_decay="):
        old = FourierImage(8, decay=1.5, generator=gen())
    assert old.spectrum_decay == 1.5
    assert torch.equal(old(), FourierImage(8, spectrum_decay=1.5, generator=gen())())
    with _old("depth="):
        assert CPPN(8, layers=2).depth == 2
    with _old("CPPN.depth"):
        assert CPPN(8, depth=3).layers == 3
    with _old("falloff="):
        old_align = O.alignment("x", reach=2, decay=3.0)
    acts = O.Activations({"x": torch.arange(3.0).view(3, 1, 1, 1)})
    assert torch.equal(old_align(acts), O.alignment("x", reach=2, falloff=3.0)(acts))
    with _old("moving_average="):
        assert "moving average 0.5" in O.style({"x": torch.eye(2)}, decay=0.5).name
    with _old("param="):
        assert frames_param(8, 2, shared=False, kind="pixel").__class__.__name__ == "PixelImage"
    with pytest.raises(TypeError, match="FourierImage.. got both decay= and its new name spectrum_decay="):
        FourierImage(8, decay=2.0, spectrum_decay=3.0)
    with _old("image="):
        assert O.channel("x", 0, batch=1).name == "x:0[1]" == O.channel("x", 0, image=1).name


def test_texture_image_views_and_cameras(tiny: Model) -> None:
    sphere = shapes.sphere(8)
    cams = ViewSampler(distance=(2.0, 2.5))
    with _old("views="):
        old = TextureImage(sphere, 16, 16, batch=3)
    assert old.views == 3 and old.shape == (3, 4, 16, 16)
    with _old("cameras="):
        assert TextureImage(sphere, 16, 16, views=cams).cameras is cams


def test_old_positional_sizes_and_kinds(tiny: Model) -> None:
    with _old("size="):
        art = cppn_art(tiny, "conv2:3", 24, steps=1, progress=False, device="cpu")
    assert art.images.shape == (1, 3, 24, 24)
    with _old("size="), _old("param="):
        rgba = render_transparent(tiny, "conv2:3", 24, steps=1, progress=False, device="cpu", kind="pixel")
    assert rgba.images.shape == (1, 4, 24, 24) and isinstance(rgba.param, RGBAImage)
    with _old("make_param"):
        old = RGBAImage(16, batch=2, kind="pixel", generator=gen())
    assert torch.equal(old(), make_param("pixel", 16, batch=2, generator=gen(), alpha=True)())


@pytest.mark.parametrize(("module", "name", "new"), [
    ("diffparam.param", "composite", "diffparam.backgrounds.composite"),
    ("diffparam.param.rgba", "over_checkerboard", "diffparam.backgrounds.over_checkerboard"),
    ("diffparam.param.rgba", "make_rgba", "diffparam.param.kinds.make_rgba"),
    ("diffparam.render", "check_size", "diffparam.checks.image_size"),
    ("diffparam.recipes.style", "StyleResult", "diffparam.result.Result"),
    ("diffparam.recipes.texture", "TextureResult", "diffparam.result.Result"),
    ("diffparam.recipes.texture", "STYLE_DECAY", "diffparam.recipes.texture.MOVING_AVERAGE"),
    ("diffparam.recipes.cppn_art", "CPPNArt", "diffparam.result.Result"),
    ("diffparam.recipes.cppn_art", "Morph", "diffparam.result.Result"),
])
def test_moved_names(module: str, name: str, new: str) -> None:
    with _old(new):
        found = getattr(importlib.import_module(module), name)
    where, _, attr = new.rpartition(".")
    assert found is getattr(importlib.import_module(where), attr)
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        importlib.import_module(module).nothing  # noqa: B018


def test_old_result_attributes() -> None:
    result = Result(torch.zeros(1, 3, 4, 4), param="net", files={"video": "v.gif", "animation": "m.gif"})
    for old, new, value in (("image", "Result.images", result.images), ("cppn", "Result.param", "net"),
                            ("result", "the Result itself", result),
                            ("video", r'Result.files\["video"\]', "v.gif"),
                            ("path", r'Result.files\["animation"\]', "m.gif")):
        with _old(new):
            assert getattr(result, old) is value
    with pytest.raises(AttributeError, match="this Result has no 'colour'"):
        result.colour  # noqa: B018


def test_background_copies_is_copies() -> None:
    param = make_param("pixel", 8, batch=2)
    with pytest.warns(DeprecationWarning, match="Parameterization.copies"):
        param.background_copies = 2
    assert param.copies == 2
    with pytest.warns(DeprecationWarning, match="Parameterization.copies"):
        assert param.background_copies == 2
    with pytest.warns(DeprecationWarning, match="Pairs.copies"):

        class Pairs(PixelImage):
            background_copies = 2

    assert Pairs(8, batch=2).copies == 2 and "background_copies" not in Pairs.__dict__


def test_to_valid_rgb_still_squashes() -> None:
    from diffparam.param.color import decorrelate_colors, to_valid_rgb

    x = torch.randn(1, 3, 4, 4)
    with _old("torch.sigmoid"):
        assert torch.equal(to_valid_rgb(x), torch.sigmoid(decorrelate_colors(x)))


def test_texture_recipes_still_write_when_given_out(tiny: Model, tmp_path) -> None:
    from diffparam.recipes.texture import held_out_views, texture_feature

    with _old(r"texture_feature\(...\).save"):
        result = texture_feature(shapes.sphere(8), "conv2:3", tiny, texture_size=16, view_size=16, steps=1,
                                 views=1, device="cpu", progress=False, out=tmp_path, turntable_frames=0)
    assert sorted(result.files) == ["glb", "mtl", "obj", "texture"]
    assert all(p.parent == tmp_path for p in result.files.values())
    with _old("cameras="):
        assert held_out_views(result.mesh, 2, 16, views=ViewSampler()).shape == (2, 3, 16, 16)


def test_cppn_files_written_before_the_rename_load(tmp_path) -> None:
    net = CPPN(8, hidden=4, depth=2, generator=gen())
    net.save(tmp_path / "net.pt")
    payload = torch.load(tmp_path / "net.pt", weights_only=True)
    payload["config"]["layers"] = payload["config"].pop("depth")
    torch.save(payload, tmp_path / "old.pt")
    assert torch.equal(CPPN.load(tmp_path / "old.pt")(), net())


def test_old_flags_warn_on_one_line(tmp_path, capsys) -> None:
    args = ["--size", "16", "--steps", "1", "--device", "cpu", "--quiet"]
    assert main(["cppn", "blocks.2:3", *args, "--layers", "2", "--out", str(tmp_path / "a.png"),
                 "--save", str(tmp_path / "a.pt")]) == 0
    assert CPPN.load(tmp_path / "a.pt").depth == 2
    err = capsys.readouterr().err
    assert err == "diffparam: warning: --layers is deprecated and goes in diffparam 0.3: use --depth\n"
