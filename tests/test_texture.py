"""TextureImage, the texture recipes and CLI, and the 3D figures at small sizes on the CPU.

bench/texture_speed.py measures the same figures at full size (see BENCHMARKS.md).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from diffparam.cli import main
from diffparam.evaluate import unit_ratio
from diffparam.models.base import Model
from diffparam.objectives import style_targets
from diffparam.param import FourierImage
from diffparam.param.texture import TextureImage
from diffparam.recipes.style import load_image
from diffparam.recipes.texture import (
    STYLE_VIEWS,
    held_out_views,
    style_loss,
    texture_feature,
    texture_style,
)
from diffparam.render import render
from diffparam.three_d import seams, shapes
from diffparam.three_d.cameras import ViewSampler
from diffparam.three_d.mesh import Mesh

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def knot() -> Mesh:
    return shapes.knot(12)


def test_texture_image_random_views_and_fixed_previews(knot: Mesh) -> None:
    param = TextureImage(knot, texture_size=32, view_size=32, batch=3,
                         generator=torch.Generator().manual_seed(0))
    views = param()
    assert views.shape == (3, 4, 32, 32) == param.shape
    assert 0 <= float(views.detach().min()) and float(views.detach().max()) <= 1
    assert 0.05 < float(views[:, 3].detach().mean()) < 0.9
    views[:, :3].sum().backward()
    assert param.texture.spectrum.grad is not None and param.texture.spectrum.grad.abs().sum() > 0
    state = param.camera_generator.get_state()
    with torch.no_grad():
        a, b = param(), param()
    assert torch.equal(a, b) and torch.equal(state, param.camera_generator.get_state())
    assert not torch.equal(param().detach(), param().detach())  # new cameras every step


def test_reference_views_share_cameras_and_backgrounds(knot: Mesh) -> None:
    black = torch.zeros(3, 8, 8)
    param = TextureImage(knot, 32, 32, batch=2, reference=black, background="noise",
                         generator=torch.Generator().manual_seed(0))
    views = param()
    assert views.shape == (4, 3, 32, 32) == param.shape
    mine, ref = views[:2], views[2:]
    with torch.no_grad():
        alpha = param.render_views(param.preview)[:, 3]
    assert alpha.shape == (2, 32, 32)
    same = (mine - ref).abs().amax(1) < 1e-6
    assert same.float().mean() > 0.3  # the background, identical behind a view and its reference
    assert (~same).float().mean() > 0.05  # the object, grey noise here, black in the reference


def test_texture_feature_writes_a_mesh_3d_software_opens(tmp_path, tiny: Model, knot: Mesh) -> None:
    kwargs = dict(texture_size=32, view_size=32, steps=3, views=2, device="cpu", progress=False)
    result = texture_feature(knot, "conv2:3", tiny, out=tmp_path, turntable_frames=3, **kwargs)
    again = texture_feature(knot, "conv2:3", tiny, turntable_frames=0, **kwargs)
    assert torch.equal(result.texture, again.texture) and result.history == again.history
    assert again.files == {}
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["mesh.glb", "mesh.mtl", "mesh.obj", "texture.png", "turntable.gif"]
    png = np.asarray(Image.open(tmp_path / "texture.png"))
    assert png.shape == (32, 32, 3)
    assert np.array_equal(png, (result.texture.permute(1, 2, 0) * 255).round().byte().numpy())
    for name in ("mesh.obj", "mesh.glb"):
        loaded = trimesh.load(tmp_path / name, force="mesh", process=False)
        image = getattr(loaded.visual.material, "image", None) or loaded.visual.material.baseColorTexture
        assert np.array_equal(np.asarray(image.convert("RGB")), png), name
        assert len(loaded.faces) == knot.num_faces
    assert Image.open(tmp_path / "turntable.gif").n_frames == 3


def test_cli_texture_and_texture_style(tmp_path, capsys) -> None:
    common = ["--size", "32", "--texture-size", "32", "--steps", "2", "--views", "1", "--frames", "2",
              "--device", "cpu", "--quiet"]
    assert main(["texture", "shape:sphere", "blocks.2:3", "--out", str(tmp_path / "fv"), *common]) == 0
    assert (tmp_path / "fv" / "mesh.glb").is_file() and (tmp_path / "fv" / "turntable.gif").is_file()
    style = tmp_path / "style.png"
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(style)
    assert main(["texture-style", "shape:torus", str(style), "--out", str(tmp_path / "st"),
                 "--animation", "mp4", *common]) == 0
    assert (tmp_path / "st" / "turntable.mp4").stat().st_size > 0
    out = capsys.readouterr().out
    assert "mesh.obj" in out and "texture.png" in out
    assert main(["texture", "missing.obj", "blocks.2:3", "--out", str(tmp_path / "x"), *common]) == 2
    assert main(["texture", "shape:sphere", "blocks.2:9999", "--out", str(tmp_path / "x"), *common]) == 2
    assert main(["texture-style", "shape:sphere", str(style), "--out", str(tmp_path / "x"), "--decay", "1",
                 *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("diffparam: error:") for line in err)
    assert "mesh file not found" in err[0] and "out of range" in err[1] and "--decay" in err[2]
    assert not (tmp_path / "x").exists()


# -- the figures -------------------------------------------------------------------------------------
UNIT = ("blocks.10", 27)
FIGURE = dict(texture_size=256, view_size=64, steps=60, views=2, device="cpu", progress=False)


@pytest.fixture(scope="module")
def seam_knot() -> Mesh:
    return shapes.knot(16)


@pytest.fixture(scope="module")
def fv_knot(seam_knot: Mesh, lite0: Model):
    """blocks.10:27 on the knot's texture, optimised through renderings (module-wide, made once)."""
    torch.set_num_threads(1)
    return texture_feature(seam_knot, f"{UNIT[0]}:{UNIT[1]}", lite0, turntable_frames=0, **FIGURE)


def test_seams_vanish_through_renderings_not_in_2d(seam_knot: Mesh, lite0: Model, fv_knot) -> None:
    """Colour jumps across UV seams vs interior edges on 8 views never used in optimisation: the
    texture optimised through renderings vs a 2D image (same size, objective, steps) pasted on."""
    image = render(lite0, f"{UNIT[0]}:{UNIT[1]}", steps=FIGURE["steps"], device="cpu", progress=False,
                   param=FourierImage(FIGURE["texture_size"], generator=torch.Generator().manual_seed(0)))
    cams = ViewSampler().sample(8, torch.Generator().manual_seed(99))
    through_views = seams.seam_contrast(seam_knot, fv_knot.texture[None], cams, FIGURE["view_size"])
    pasted = seams.seam_contrast(seam_knot, image.images, cams, FIGURE["view_size"])
    assert through_views.ratio < 1.5, through_views  # measured 1.35
    assert pasted.ratio > 1.9, pasted  # measured 2.19


def test_unit_fires_on_held_out_views_more_than_on_photos(lite0: Model, fv_knot) -> None:
    views = held_out_views(fv_knot.mesh, 8, FIGURE["view_size"])
    ratios = unit_ratio(lite0, *UNIT, views)
    assert float(ratios.mean()) > 1.5, ratios  # measured 1.85; the knot fills ~30% of each view


def test_moving_average_gram_spreads_the_style_over_views(tiny: Model) -> None:
    """Style loss of 12 held-out views (the plain Gram loss per view, and of their mean Gram
    matrix): lower after training with the moving-average Gram than with the plain one."""
    from skimage import data

    style_img = torch.from_numpy(data.rocket()[::2, ::2].astype(np.float32) / 255).permute(2, 0, 1)
    layers = ["conv1", "conv2", "conv3"]
    targets = style_targets(tiny, load_image(style_img.contiguous(), 48), layers)
    losses = {}
    for decay in (0.95, None):
        result = texture_style("shape:sphere", style_img, tiny, decay=decay, style_layers=layers,
                               content_layer="conv2", texture_size=64, view_size=48, steps=80, views=2,
                               device="cpu", progress=False, turntable_frames=0)
        views = held_out_views(result.mesh, 12, 48, seed=777, views=STYLE_VIEWS)
        losses[decay] = style_loss(tiny, targets, views)
    (avg_view, avg_pooled), (plain_view, plain_pooled) = losses[0.95], losses[None]
    assert avg_pooled < 0.97 * plain_pooled, losses  # measured 1.562 vs 1.635
    assert avg_view < plain_view, losses  # measured 1.579 vs 1.641
