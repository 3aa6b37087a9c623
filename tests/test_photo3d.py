"""3D photos (issue 15): camera paths, the layered depth image against a rubber sheet at a depth
edge, the fills against trivial ones on a synthetic scene, depth input, files and bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from diffparam.cli import main
from diffparam.errors import UserError
from diffparam.io import read_frames, read_image, sample_photos, save_image
from diffparam.recipes.photo3d import photo3d, read_depth
from diffparam.recipes.photo3d_fill import context_fill, exemplar, telea
from diffparam.three_d import ldi, rgbd_scenes
from diffparam.three_d.mesh import Mesh
from diffparam.three_d.pinhole import PATHS, PinholeViews, camera_path, read_transforms

FOV = 60.0
IDENTITY = PinholeViews(torch.eye(4)[None], torch.tensor([FOV]))


def _psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    mse = ((a - b) ** 2).mean(0)[mask].mean()
    return float(10 * torch.log10(1 / mse))


@pytest.fixture(scope="module")
def cards() -> tuple[Mesh, rgbd_scenes.Truth]:
    """Two textured cards in front of a textured wall, 48x64 px, with its photo and depth."""
    mesh = rgbd_scenes.scene("cards", seed=1)
    return mesh, rgbd_scenes.observe(mesh, IDENTITY, 48, 64)


def test_camera_paths_start_at_the_photo_and_dolly_keeps_the_subject_size() -> None:
    for name in PATHS:
        views = camera_path(name, 12, depth=4.0, fov=FOV)
        assert views.pose.shape == (12, 4, 4) and views.fov.shape == (12,)
        assert torch.allclose(views.pose[0], torch.eye(4), atol=1e-6), name
        assert float(views.pose[:, :3, 3].norm(dim=1).max()) > 0.05, name  # it moves
        assert torch.equal(views.pose[:, :3, :3], torch.eye(3).expand(12, 3, 3))  # and looks ahead
    dolly = camera_path("dolly-zoom-in", 12, depth=4.0, fov=FOV)
    distance = 4.0 + dolly.pose[:, 2, 3]  # the camera moves down -z, toward the subject
    size = 1 / (distance * torch.tan(torch.deg2rad(dolly.fov) / 2))
    assert torch.allclose(size, size[0].expand(12), rtol=1e-5)
    assert float(dolly.fov.max()) > FOV + 5


def test_layered_depth_image_reveals_the_background_where_a_rubber_sheet_smears(cards) -> None:
    mesh, truth = cards
    layers = ldi.build_layers(truth.images[0], truth.depth[0])
    assert 0.02 < float(layers.band.float().mean()) < 0.5
    # The band lies on the near side and its depth is the far side's.
    assert bool((truth.depth[0][layers.band] < 4.5).all())  # the cards are at 3 and 4, the wall at 6
    assert float(layers.hidden_depth[layers.band].min()) > 5.5
    blue = torch.tensor([0.0, 0.0, 1.0])[:, None, None].expand_as(layers.image)
    painted = layers.with_color(blue)
    view = camera_path("swing", 8, depth=4.0, fov=FOV)[2:3]  # to the right and in
    seen = rgbd_scenes.observe(mesh, view, 48, 64)
    layered = next(ldi.render_views(ldi.layered_mesh(painted, FOV), view, 48, 64))
    sheet = next(ldi.render_views(ldi.layered_mesh(painted, FOV, cut=False), view, 48, 64))
    # Disoccluded: pixels of the new view whose surface the photo did not see.
    revealed = rgbd_scenes.disoccluded(seen.depth[0], truth.depth[0], view, FOV)
    assert int(revealed.sum()) > 30

    def blue_share(frame: torch.Tensor) -> float:
        is_blue = (frame[2] > 0.9) & (frame[:2] < 0.1).all(0)
        return float(is_blue[revealed].float().mean())

    assert blue_share(layered) > 0.75  # the hidden layer shows
    assert blue_share(sheet) == 0.0  # the sheet stretches the photo's own colours instead
    assert bool(((sheet - seen.images[0]).abs().sum(0)[revealed] > 0).all())
    # Away from the disoccluded pixels the layered image is the scene (it reproduces the photo).
    photo = next(ldi.render_views(ldi.layered_mesh(layers, FOV), IDENTITY, 48, 64))
    assert float(((photo - truth.images[0]).abs().max(0).values < 0.02).float().mean()) > 0.98


def test_fills_beat_trivial_fills_on_the_hidden_wall(cards, lite0) -> None:
    mesh, truth = cards
    wall = Mesh(mesh.vertices, mesh.faces[:2], mesh.uv, mesh.texture)  # the scene without its cards
    hidden = rgbd_scenes.observe(wall, IDENTITY, 48, 64).images[0]
    layers = ldi.build_layers(truth.images[0], truth.depth[0])
    band = layers.band
    mean = layers.image[:, layers.far].mean(1)[:, None, None].expand_as(layers.image)
    unfilled = _psnr(layers.image, hidden, band)  # the occluder's own colours, as a sheet shows them
    flat = _psnr(mean, hidden, band)  # one colour: the mean of the far side
    by_telea = _psnr(telea(layers), hidden, band)
    by_exemplar = _psnr(exemplar(layers), hidden, band)
    filled, history = context_fill(layers, lite0, steps=30, device="cpu")
    by_context = _psnr(filled, hidden, band)
    assert len(history) == 30 and history[-1] < history[0]
    start = exemplar(layers)  # where the context-aware fill starts; it changes the band alone
    assert torch.equal(filled[:, ~band], start[:, ~band]) and not torch.equal(filled[:, band], start[:, band])
    print(f"band PSNR (dB): unfilled {unfilled:.2f}, far-side mean {flat:.2f}, Telea {by_telea:.2f}, "
          f"exemplar {by_exemplar:.2f}, context-aware {by_context:.2f}")
    assert min(by_telea, by_exemplar, by_context) > unfilled + 3
    assert min(by_telea, by_exemplar, by_context) > flat + 0.5


def test_depth_files_and_disparity(tmp_path) -> None:
    depth = np.linspace(1.0, 4.0, 12 * 10).reshape(10, 12)
    Image.fromarray((depth * 1000).round().astype(np.uint16)).save(tmp_path / "d.png")
    np.save(tmp_path / "disp.npy", 1 / depth)
    assert torch.allclose(read_depth(tmp_path / "d.png"), torch.from_numpy(depth).float() * 1000, atol=0.6)
    assert torch.allclose(read_depth(tmp_path / "disp.npy", disparity=True), torch.from_numpy(depth).float())
    with pytest.raises(UserError, match="holds zeros"):
        read_depth(torch.zeros(4, 4).index_fill_(0, torch.tensor([0]), 1.0))
    sky = read_depth(torch.tensor([[1.0, 0.5], [0.25, 0.0]]), disparity=True)  # 0 disparity: far away
    assert sky.tolist() == [[1.0, 2.0], [4.0, 8.0]]


def test_command_writes_videos_glb_and_page(tmp_path, cards, capsys) -> None:
    _, truth = cards
    save_image(truth.images[0], tmp_path / "photo.png")
    np.save(tmp_path / "depth.npy", truth.depth[0].numpy())
    out = tmp_path / "out"
    args = ["photo3d", str(tmp_path / "photo.png"), str(tmp_path / "depth.npy"), "--out", str(out),
            "--frames", "4", "--fill", "telea", "--video", "gif", "--quiet"]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*(f"{p}.gif" for p in PATHS), "scene.glb",
                                                             "index.html"])
    frames = list(read_frames(out / "circle.gif"))
    assert len(frames) == 4 and frames[0].shape == (3, 48, 64)
    assert not torch.equal(frames[0], frames[2])
    glb = trimesh.load(out / "scene.glb")
    vertices = sum(len(g.vertices) for g in glb.geometry.values())
    assert vertices > 48 * 64  # the photo's sheet and the hidden band behind it
    page = (out / "index.html").read_text()
    assert "data:image/png;base64," in page and "http" not in page.replace("http-equiv", "")


@pytest.mark.parametrize("fill", ["exemplar", "context"])
def test_a_gentle_slope_without_depth_edges_has_nothing_hidden(fill, lite0) -> None:
    photo = sample_photos(64, ("coffee",))[0, :, :32, :48]
    ramp = torch.linspace(2.0, 2.5, 48).expand(32, 48).clone()  # a wall seen at an angle: no cut
    result = photo3d(photo, ramp, fill=fill, steps=2, model=lite0, device="cpu", progress=False)
    assert result.images.shape[-2:] == (32, 48)
    assert torch.isfinite(result.images).all()


def test_cameras_file_renders_named_views(tmp_path, cards) -> None:
    mesh, truth = cards
    save_image(truth.images[0], tmp_path / "photo.png")
    np.save(tmp_path / "depth.npy", truth.depth[0].numpy())
    side = camera_path("swing", 8, 4.0, FOV).pose[2]
    frames = [{"file_path": "./views/r_0", "transform_matrix": torch.eye(4).tolist()},
              {"file_path": "./views/r_1", "transform_matrix": side.tolist()}]
    layout = {"camera_angle_x": math.radians(FOV), "frames": frames}
    (tmp_path / "transforms.json").write_text(json.dumps(layout))
    views, names = read_transforms(tmp_path / "transforms.json")
    assert names == ["./views/r_0", "./views/r_1"] and torch.allclose(views.fov, torch.full((2,), FOV))
    twice = {"camera_angle_x": math.radians(FOV), "frames": [frames[0], frames[0]]}
    (tmp_path / "twice.json").write_text(json.dumps(twice))
    with pytest.raises(UserError, match="share a file_path"):
        read_transforms(tmp_path / "twice.json")
    result = photo3d(tmp_path / "photo.png", tmp_path / "depth.npy", fill="telea", progress=False,
                     out=tmp_path / "out", cameras=tmp_path / "transforms.json")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["index.html", "scene.glb", "views"]
    same = read_image(tmp_path / "out" / "views" / "r_0.png")[0]
    # The photo again, but for its 8-bit rounding and a one-pixel seam along the near side's bottom
    # and right edges (the mesh joins pixel centres: the last half pixel shows the hidden layer).
    assert float(((same - truth.images[0]).abs().max(0).values < 0.05).float().mean()) > 0.95
    moved = read_image(tmp_path / "out" / "views" / "r_1.png")[0]
    true_view = rgbd_scenes.observe(mesh, PinholeViews(side[None], torch.tensor([FOV])), 48, 64).images[0]
    assert _psnr(moved, true_view, torch.ones(48, 64, dtype=torch.bool)) > 20
    assert set(result.files) == {"./views/r_0", "./views/r_1", "scene", "page"}


@pytest.mark.parametrize(("image", "depth", "message"), [
    ((20, 24), np.linspace(1, 2, 400).reshape(20, 20), "the depth is 20x20 px but the image 24x20"),
    ((20, 24), np.full((20, 24), 3.0), "all one value"),
    ((20, 24), np.where(np.eye(20, 24) > 0, np.nan, 2.0), "NaN or infinite"),
    ((20, 24), np.linspace(-1, 1, 480).reshape(20, 24), "negative values"),
    ((1, 1), np.ones((1, 1)), "at least 8 px a side"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, image, depth, message) -> None:
    Image.fromarray(np.full((*image, 3), 120, np.uint8)).save(tmp_path / "photo.png")
    np.save(tmp_path / "depth.npy", depth)
    out = tmp_path / "out"
    assert main(["photo3d", str(tmp_path / "photo.png"), str(tmp_path / "depth.npy"), "--out", str(out),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()


def test_a_failure_while_saving_leaves_nothing(tmp_path, cards, monkeypatch) -> None:
    _, truth = cards
    result = photo3d(truth.images[0], truth.depth[0], fill="telea", progress=False)

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("diffparam.recipes.photo3d.export_glb", broken)
    with pytest.raises(OSError, match="No space"):
        result.save(tmp_path / "out" / "deeper", path="circle", frames=3, video="gif")
    assert list(tmp_path.iterdir()) == []  # the videos written before the failure are gone, folders too
