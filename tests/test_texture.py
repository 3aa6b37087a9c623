"""TextureImage, the texture recipes and CLI, and the 3D figures at small sizes on the CPU.

bench/texture_speed.py measures the same figures at full size (see BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from diffparam.cli import main
from diffparam.errors import UserError
from diffparam.evaluate import unit_ratio
from diffparam.io import load_image
from diffparam.models.base import Model
from diffparam.objectives import style_targets
from diffparam.param import FourierImage
from diffparam.param.surface import SolidField
from diffparam.param.texture import TextureImage
from diffparam.pipeline import stages_for
from diffparam.recipes.texture import (
    STYLE_VIEWS,
    held_out_views,
    style_loss,
    texture_feature,
    texture_style,
)
from diffparam.render import render
from diffparam.three_d import seams, shapes, uvmap
from diffparam.three_d.cameras import ViewSampler
from diffparam.three_d.mesh import Mesh

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def knot() -> Mesh:
    return shapes.knot(12)


@pytest.mark.parametrize("space", ["surface", "uv"])
def test_texture_image_random_views_and_fixed_previews(knot: Mesh, space: str) -> None:
    param = TextureImage(knot, texture_size=32, view_size=32, views=3, space=space,
                         generator=torch.Generator().manual_seed(0))
    views = param()
    assert views.shape == (3, 4, 32, 32) == param.shape
    assert 0 <= float(views.detach().min()) and float(views.detach().max()) <= 1
    assert 0.05 < float(views[:, 3].detach().mean()) < 0.9
    views[:, :3].sum().backward()
    learnt = param.field if space == "surface" else param.texture
    assert learnt is not None and learnt.spectrum.grad is not None and learnt.spectrum.grad.abs().sum() > 0
    assert [p is learnt.spectrum for p in param.parameters()] == [True]
    state = param.camera_generator.get_state()
    with torch.no_grad():
        a, b = param(), param()
    assert torch.equal(a, b) and torch.equal(state, param.camera_generator.get_state())
    assert not torch.equal(param().detach(), param().detach())  # new cameras every step


def test_solid_field_slices_have_the_spectrum_of_an_image_of_the_same_decay() -> None:
    """`spectrum_decay` means the same in 3D as in 2D: planes cut through the field have the power
    spectrum slope (−2·decay) of `FourierImage`s with that decay, and voxels the same std as their
    pixels (2·sd, Lucid's gain)."""

    def slope(images: torch.Tensor) -> float:  # log-log fit of the radial power spectrum
        n = images.shape[-1]
        power = torch.fft.fft2(images - images.mean((-2, -1), keepdim=True)).abs().pow(2).mean(0)
        f = torch.fft.fftfreq(n)
        radius = (f[:, None] ** 2 + f[None] ** 2).sqrt()
        sel = (radius > 4 / n) & (radius < 0.25)
        x = torch.stack([radius[sel].log(), torch.ones(int(sel.sum()))], 1)
        return float(torch.linalg.lstsq(x, power[sel].log()[:, None]).solution[0])

    for decay in (1.0, 0.5):
        field = SolidField(48, sd=1.0, spectrum_decay=decay, decorrelate=False,
                           generator=torch.Generator().manual_seed(0))
        vol = field.volume()[0].detach()
        planes = torch.cat([vol[:, i] for i in range(0, 48, 8)] + [vol[:, :, :, i] for i in range(0, 48, 8)])
        image = FourierImage(48, batch=4, sd=1.0, spectrum_decay=decay, decorrelate=False,
                             generator=torch.Generator().manual_seed(0)).logits().detach().reshape(-1, 48, 48)
        assert abs(slope(planes) - slope(image)) < 0.25 and abs(slope(planes) + 2 * decay) < 0.3, decay
        assert abs(float(vol.std()) - 2.0) < 0.2  # measured -2.07 vs -2.07, -1.21 vs -1.07; std 1.99, 2.00
    with pytest.raises(UserError, match="`volume_size` must be a whole number in 4..512 voxels, got 2"):
        SolidField(2)


def test_surface_texture_starts_from_init_and_needs_flat_uvs(knot: Mesh) -> None:
    """With a solid field the initial texture is a fixed base: the texture starts at it (padded),
    and only the field learns. Unknown spaces and tiled UVs are clear errors."""
    init = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1))
    param = TextureImage(knot, 32, 32, views=1, init=init, generator=torch.Generator().manual_seed(0))
    assert param.field is not None and param.field.size == 16 and param.texture is None
    want = uvmap.pad(torch.nn.functional.interpolate(init[None], size=32, mode="bilinear", antialias=True),
                     param.padding)
    with torch.no_grad():
        assert (param.texture_image() - want).abs().max() < 0.02
    with pytest.raises(UserError, match="unknown texture space 'hybrid'; choose one of: surface, uv"):
        TextureImage(knot, 32, 32, space="hybrid")
    tiled = Mesh(knot.vertices, knot.faces, knot.uv * 2)
    with pytest.raises(UserError, match="needs UVs inside"):
        TextureImage(tiled, 32, 32)
    assert TextureImage(tiled, 32, 32, space="uv").padding is None


def test_reference_views_share_cameras_and_backgrounds(knot: Mesh) -> None:
    black = torch.zeros(3, 8, 8)
    param = TextureImage(knot, 32, 32, views=2, reference=black, generator=torch.Generator().manual_seed(0))
    rgba = param()
    assert rgba.shape == (4, 4, 32, 32) == param.shape and param.copies == 2
    assert torch.equal(rgba[:2, 3], rgba[2:, 3])  # the same cameras
    (composite,) = stages_for(param, None, "noise", None)  # what render does with it
    views = composite(rgba, torch.Generator().manual_seed(0))
    assert views.shape == (4, 3, 32, 32)
    mine, ref = views[:2], views[2:]
    with torch.no_grad():
        alpha = param.render_views(param.preview)[:, 3]
    assert alpha.shape == (2, 32, 32)
    same = (mine - ref).abs().amax(1) < 1e-6
    assert same.float().mean() > 0.3  # the background, identical behind a view and its reference
    assert (~same).float().mean() > 0.05  # the object, grey noise here, black in the reference


def test_texture_feature_writes_a_mesh_3d_software_opens(tmp_path, tiny: Model, knot: Mesh) -> None:
    kwargs = dict(texture_size=32, view_size=32, steps=3, views=2, device="cpu", progress=False)
    result = texture_feature(knot, "conv2:3", tiny, **kwargs)
    assert not any(tmp_path.iterdir()) and result.files == {}  # nothing is written before save()
    written = result.save(tmp_path, frames=3)
    assert sorted(written) == sorted(result.files.values()) and len(written) == 5
    again = texture_feature(knot, "conv2:3", tiny, **kwargs)
    assert torch.equal(result.texture, again.texture) and result.history == again.history
    assert torch.equal(result.images[0], result.texture) and result.mesh.texture is result.texture
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
                 "--animation", "mp4", "--texture-space", "uv", *common]) == 0
    assert (tmp_path / "st" / "turntable.mp4").stat().st_size > 0
    out = capsys.readouterr().out
    assert "mesh.obj" in out and "texture.png" in out
    assert main(["texture", "missing.obj", "blocks.2:3", "--out", str(tmp_path / "x"), *common]) == 2
    assert main(["texture", "shape:sphere", "blocks.2:9999", "--out", str(tmp_path / "x"), *common]) == 2
    assert main(["texture-style", "shape:sphere", str(style), "--out", str(tmp_path / "x"),
                 "--moving-average", "1", *common]) == 2
    assert main(["texture", "shape:knot", "blocks.2:3", "--out", str(tmp_path / "x"), "--volume-size", "2",
                 *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("diffparam: error:") for line in err)
    assert "mesh file not found" in err[0] and "out of range" in err[1]
    assert "--moving-average must be a finite number >= 0 and < 1 (0 turns it off), got 1.0" in err[2]
    assert "--volume-size must be a whole number in 4..512 voxels, got 2" in err[3]
    assert not (tmp_path / "x").exists()


# -- the figures -------------------------------------------------------------------------------------
UNIT = ("blocks.10", 27)
FIGURE = dict(texture_size=256, view_size=64, steps=60, views=2, device="cpu", progress=False)


@pytest.fixture(scope="module")
def seam_knot() -> Mesh:
    return shapes.knot(16)


@pytest.fixture(scope="module")
def fv_knot(seam_knot: Mesh, lite0: Model):
    """blocks.10:27 on the knot's texture, optimised through renderings, by texture space (made once,
    on one thread like the tests, which then gets restored)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {space: texture_feature(seam_knot, f"{UNIT[0]}:{UNIT[1]}", lite0, texture_space=space,
                                       **FIGURE) for space in ("surface", "uv")}
    finally:
        torch.set_num_threads(before)


def test_seams_vanish_on_a_surface_field_not_uv_or_2d(seam_knot: Mesh, lite0: Model, fv_knot) -> None:
    """Colour jumps across UV seams vs interior edges on 8 views never used in optimisation: the
    texture as a solid field read on the surface (the default), as a UV image optimised through
    renderings, and a 2D image (same size, objective, steps) pasted on the atlas."""
    image = render(lite0, f"{UNIT[0]}:{UNIT[1]}", steps=FIGURE["steps"], device="cpu", progress=False,
                   param=FourierImage(FIGURE["texture_size"], generator=torch.Generator().manual_seed(0)))
    cams = ViewSampler().sample(8, torch.Generator().manual_seed(99))
    ratio = {space: seams.seam_contrast(seam_knot, r.texture[None], cams, FIGURE["view_size"]).ratio
             for space, r in fv_knot.items()}
    pasted = seams.seam_contrast(seam_knot, image.images, cams, FIGURE["view_size"]).ratio
    assert ratio["surface"] < 1.15, ratio  # measured 1.01
    assert 1.25 < ratio["uv"] < pasted, (ratio, pasted)  # measured 1.35 and 2.19
    assert pasted > 1.9, pasted


def test_unit_fires_on_held_out_views_more_than_on_photos(lite0: Model, fv_knot) -> None:
    ratio = {space: float(unit_ratio(lite0, *UNIT, held_out_views(r.mesh, 8, FIGURE["view_size"])).mean())
             for space, r in fv_knot.items()}
    # measured 3.16 (surface) and 1.85 (uv) here; 3.39 and 3.45 at full size (BENCHMARKS.md). The
    # claim: both beat natural photos, and the seamless field loses no activation.
    assert ratio["uv"] > 1.5, ratio
    assert ratio["surface"] > 0.9 * ratio["uv"], ratio


def test_surface_field_learns_the_style_better_than_the_uv_image(tiny: Model) -> None:
    """Style loss of 12 held-out views (of their mean Gram matrix): after training, far below the
    plain grey sphere's, and lower with the solid field than with the UV image, with the
    moving-average Gram loss or the plain one (which of those two wins is not consistent:
    BENCHMARKS.md)."""
    from skimage import data

    style_img = torch.from_numpy(data.rocket()[::2, ::2].astype(np.float32) / 255).permute(2, 0, 1)
    layers = ["conv1", "conv2", "conv3"]
    targets = style_targets(tiny, load_image(style_img.contiguous(), 48), layers)
    grey = replace(shapes.sphere(), texture=torch.full((3, 16, 16), 0.5))
    before = style_loss(tiny, targets, held_out_views(grey, 12, 48, seed=777, cameras=STYLE_VIEWS))[1]
    losses = {}
    for space, average in (("surface", 0.95), ("surface", None), ("uv", None)):
        result = texture_style("shape:sphere", style_img, tiny, moving_average=average, style_layers=layers,
                               content_layer="conv2", texture_size=64, view_size=48, steps=80, views=2,
                               device="cpu", progress=False, texture_space=space)
        views = held_out_views(result.mesh, 12, 48, seed=777, cameras=STYLE_VIEWS)
        losses[space, average] = style_loss(tiny, targets, views)[1]
    # measured: grey 2.66; surface 0.84 (moving average), 0.81 (plain); uv 1.63 (plain)
    assert max(losses.values()) < 0.7 * before, (before, losses)
    assert max(losses["surface", 0.95], losses["surface", None]) < 0.7 * losses["uv", None], losses
