"""Radiance fields (issue 14): the transforms.json layout and its camera convention, a tiny scene
fitted on the CPU well above a constant colour, resume, rendering, mesh export and the CLI's errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import trimesh
from PIL import Image

from diffparam.cli import main
from diffparam.errors import UserError
from diffparam.evaluate.multiview import multiview_error
from diffparam.objectives import Activations, style, style_targets
from diffparam.param.radiance import RadianceField
from diffparam.recipes import nerf, nerf_style
from diffparam.recipes.style import style_transfer
from diffparam.three_d import shapes
from diffparam.three_d.cameras import orbit, turntable
from diffparam.three_d.export import export_obj
from diffparam.three_d.posed import load_posed, posed_from_cameras
from diffparam.three_d.raster import rasterize
from diffparam.three_d.shapes import sphere

TINY = {"rays": 512, "resolutions": (8, 16, 32), "features": 4, "hidden": 32, "samples": 32, "grid": 16,
        "device": "cpu", "progress": False}
"""A field small enough to fit a 32 px scene in seconds on the CPU."""


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def module_thread():
    """One intra-op thread for the module's shared fixtures too (they are made before `one_thread`)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def scene(tmp_path_factory, module_thread):
    return nerf.make_scene(tmp_path_factory.mktemp("scene"), "sphere", size=32, train=16, test=4,
                           seed=1).files["train"].parent


@pytest.fixture(scope="module")
def fitted(scene, tmp_path_factory, module_thread):
    run = tmp_path_factory.mktemp("run")
    return run, nerf.fit_nerf(scene, run, steps=300, **TINY)


def test_rays_meet_the_sphere_where_the_rasteriser_draws_it() -> None:
    """Camera-to-world files and `Cameras.view` agree: the analytic hits of every pixel's ray on the
    unit sphere cover the pixels the rasteriser fills."""
    cams = turntable(3, elevation=35.0, distance=3.0, fov=50.0)
    drawn = rasterize(cams.project(sphere(48).vertices * 2), sphere(48).faces, 40).mask
    origins, dirs = posed_from_cameras(cams, 40, ["a", "b", "c"]).rays()
    b = (origins * dirs).sum(-1)
    hit = b * b - (origins * origins).sum(-1) + 1 > 0
    assert torch.allclose(torch.linalg.inv(posed_from_cameras(cams, 40, ["a"] * 3).c2w), cams.view, atol=1e-5)
    assert float((hit == drawn).float().mean()) > 0.98 and 0.2 < float(drawn.float().mean()) < 0.8


def test_a_field_is_a_parameterization_of_rgba_views() -> None:
    torch.manual_seed(0)
    field = RadianceField(size=12, batch=2, resolutions=(8,), features=2, hidden=8, samples=8, grid=4)
    views = field()
    views[:, :3].mean().backward()
    seen = views.detach()
    assert views.shape == field.shape == (2, 4, 12, 12) and 0 <= float(seen.min()) <= float(seen.max()) <= 1
    assert float(field.planes[0].grad.abs().sum()) > 0


def test_an_appearance_grid_starts_unseen_and_never_touches_the_density() -> None:
    """`add_appearance` leaves the field's renders as they were, to float rounding (its weights in the
    colour MLP start at zero); once they move, colour changes and density does not."""
    torch.manual_seed(0)
    field = RadianceField(size=12, batch=2, resolutions=(8,), features=2, hidden=8, samples=8, grid=4)
    x, d = torch.rand(300, 3) * 2 - 1, F.normalize(torch.randn(300, 3), dim=-1)
    with torch.no_grad():
        sigma, rgb = field.query(x, d)
    before = field.render(field.views)[0]
    field.add_appearance([4, 8], 3, generator=torch.Generator().manual_seed(1))
    assert float((field.render(field.views)[0] - before).abs().max()) < 1e-6  # float rounding at most
    assert len(field.appearance_parameters()) == 4 and field.color_net[0].in_features == 24 + 18
    with torch.no_grad():
        field.color_net[0].weight[:, 24:].normal_()
        sigma2, rgb2 = field.query(x, d)
    assert torch.equal(sigma2, sigma) and float((rgb2 - rgb).abs().mean()) > 0.01
    with pytest.raises(UserError, match="appearance grid already"):
        field.add_appearance([4], 3)


def test_blender_and_nerfstudio_files_give_the_same_cameras(scene, tmp_path) -> None:
    blender = load_posed(scene, "train")
    meta = json.loads((scene / "transforms_train.json").read_text())
    f = 0.5 * 32 / math.tan(meta["camera_angle_x"] / 2)
    studio = {"fl_x": 2 * f, "fl_y": 2 * f, "cx": 32.0, "cy": 32.0, "w": 64, "h": 64,  # intrinsics at 2x
              "frames": [{"file_path": str(scene / fr["file_path"]) + ".png",
                          "transform_matrix": fr["transform_matrix"]} for fr in meta["frames"]]}
    (tmp_path / "transforms.json").write_text(json.dumps(studio))
    other = load_posed(tmp_path, "train")
    assert torch.allclose(other.intrinsics, blender.intrinsics) and torch.equal(other.c2w, blender.c2w)
    assert other.images.shape == (16, 4, 32, 32) and torch.equal(other.images, blender.images)
    assert load_posed(tmp_path, "test") is None


def test_a_mesh_file_with_its_texture_is_a_scene(tmp_path) -> None:
    stripes = torch.zeros(3, 32, 32)
    stripes[0, :, ::4] = 1  # red stripes on black
    export_obj(shapes.torus(12), tmp_path / "ring.obj", texture=stripes)
    made = nerf.make_scene(tmp_path / "scene", tmp_path / "ring.obj", size=24, train=3, test=0)
    views = load_posed(tmp_path / "scene")
    assert sorted(made.files) == ["train"] and views.images.shape == (3, 4, 24, 24)
    seen = views.images[:, 3] > 0.5
    assert 0.1 < float(seen.float().mean()) < 0.9 and float(views.images[:, 1][seen].max()) < 0.05


def test_a_single_rgb_file_fits_without_held_out_metrics(scene, tmp_path) -> None:
    meta = json.loads((scene / "transforms_train.json").read_text())
    for n, frame in enumerate(meta["frames"][:6]):
        rgba = np.asarray(Image.open(scene / f"{frame['file_path']}.png"), dtype=np.float32) / 255
        rgb = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
        Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(tmp_path / f"{n}.jpg")
        frame["file_path"] = f"{n}.jpg"
    meta["frames"] = meta["frames"][:6]
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    result = nerf.fit_nerf(tmp_path / "transforms.json", tmp_path / "run", steps=5, preview_frames=2, **TINY)
    assert load_posed(tmp_path).images.shape == (6, 3, 32, 32)
    assert "psnr" not in result.metrics and sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "checkpoint.pt", "metrics.json", "preview.gif"]


def _broken(scene, tmp_path, fault: str):
    meta = json.loads((scene / "transforms_train.json").read_text())
    frames = meta["frames"]
    for fr in frames:
        fr["file_path"] = str(scene / fr["file_path"])
    if fault == "missing":
        frames[2]["file_path"] += "_gone"
    elif fault == "shape":
        frames[1]["transform_matrix"] = frames[1]["transform_matrix"][:2]
    elif fault == "nan":
        frames[3]["transform_matrix"][0][3] = float("nan")
    elif fault == "sizes":
        Image.new("RGB", (20, 20)).save(tmp_path / "small.png")
        frames[4]["file_path"] = str(tmp_path / "small.png")
    elif fault == "focal":
        del meta["camera_angle_x"]
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    return tmp_path / "transforms.json"


@pytest.mark.parametrize(("fault", "message"), [
    ("missing", "image not found"), ("shape", "must be a 4x4"), ("nan", "NaN or infinite"),
    ("sizes", "mixed sizes"), ("focal", "no focal length")])
def test_bad_data_is_one_line(scene, tmp_path, fault, message) -> None:
    with pytest.raises(UserError, match=message) as info:
        load_posed(_broken(scene, tmp_path, fault))
    assert "\n" not in str(info.value)


def test_fit_beats_a_constant_colour_on_held_out_views(fitted) -> None:
    run, result = fitted
    m = json.loads((run / "metrics.json").read_text())
    assert m == result.metrics and m["split"] == "test" and m["views"] == 4
    assert m["psnr"] > m["constant_color_psnr"] + 8 and m["psnr"] > 20, m
    assert m["ssim"] > 0.7 and m["train_seconds"] > 0
    assert (run / "preview.png").is_file() and (run / "preview.gif").is_file() and len(result.history) == 300
    assert 0.05 < float(result.param.occupied.float().mean()) < 0.9  # empty space is skipped


def test_an_interrupted_fit_resumes_to_what_an_uninterrupted_one_makes(scene, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(nerf, "WARMUP", 4)  # the occupancy grid is refreshed, and must resume too
    monkeypatch.setattr(nerf, "OCCUPANCY_EVERY", 3)
    options = {**TINY, "rays": 64, "grid": 8, "every": 5, "preview_frames": 0}
    whole = nerf.fit_nerf(scene, tmp_path / "whole", steps=16, **options)
    calls, render_rays = [0], RadianceField.render_rays

    def interrupted(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 12:
            raise KeyboardInterrupt
        return render_rays(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(RadianceField, "render_rays", interrupted)
        with pytest.raises(KeyboardInterrupt):
            nerf.fit_nerf(scene, tmp_path / "cut", steps=16, **options)
    resumed = nerf.fit_nerf(scene, tmp_path / "cut", steps=16, **options)
    assert resumed.history == whole.history
    assert bool(torch.isfinite(resumed.param.density_grid).all())  # refreshed, and saved with the field
    for a, b in zip(resumed.param.state_dict().values(), whole.param.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(UserError, match="other settings"):
        nerf.fit_nerf(scene, tmp_path / "cut", steps=16, **{**options, "samples": 16})


def test_render_names_files_after_file_path_and_exports_a_mesh(fitted, scene, tmp_path) -> None:
    run, _ = fitted
    result = nerf.render_cameras(run, scene / "transforms_test.json", depth=True, device="cpu")
    written = result.save(tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == sorted(
        [f"test/r_{i}.png" for i in range(4)] + [f"test/r_{i}_depth.png" for i in range(4)])
    assert Image.open(tmp_path / "out/test/r_0.png").mode == "RGBA"
    video = nerf.render_path(run, tmp_path / "orbit.gif", "spiral", frames=4, size=24, depth=True,
                             device="cpu", progress=False)
    assert video.files["video"].is_file() and video.files["depth_video"].name == "orbit_depth.gif"
    nerf.export_nerf(run, resolution=48, device="cpu").save(tmp_path / "mesh.ply")
    mesh = trimesh.load(tmp_path / "mesh.ply")
    radius = np.linalg.norm(mesh.vertices, axis=1)
    assert len(mesh.faces) > 100 and abs(float(np.median(radius)) - 1.0) < 0.1  # the unit sphere
    assert mesh.visual.vertex_colors.shape == (len(mesh.vertices), 4)


def test_a_fit_that_cannot_fit_in_memory_is_refused_before_it_starts(scene, tmp_path) -> None:
    with pytest.raises(UserError, match=r"needs about .* GiB .* lower `rays` or `samples`"):
        nerf.fit_nerf(scene, tmp_path / "run", steps=1, **{**TINY, "rays": 1 << 22, "samples": 4096})
    assert not (tmp_path / "run").exists()


def test_restyling_comes_near_per_view_style_transfer_and_stays_consistent(fitted, tmp_path, tiny) -> None:
    """Issue 14's restyling target on the tiny network: on four held-out views (two pairs 10° apart) the
    restyled field (an appearance grid, by default) moves every view toward the style, ends within 25%
    of the style distance that 2D style transfer of each view reaches with the same objective and steps
    (measured 0.99–1.12 over network seeds 0–2 and restyling seeds 0–2), and its neighbouring views
    agree far better than those painted one by one (multi-view error 0.10–0.24 of theirs); the density
    is the fitted one, bit for bit, and the run folder loads with its grid. The background stays
    white, so the style distance falls by only ~12%."""
    run, _ = fitted
    stripes = torch.zeros(3, 32, 32)
    stripes[2, ::4] = 1  # blue stripes on black
    settings = {"model": tiny, "steps": 80, "style_layers": ["conv2", "conv3"], "content_layer": "conv3",
                "content_weight": 0.1, "device": "cpu", "progress": False}
    result = nerf_style.style_nerf(run, stripes, tmp_path / "styled", size=32, lr=0.03, **settings)
    m = result.metrics
    assert m["style_distance"] < m["style_distance_before"] and 0.2 < m["multiview_valid"] <= 1, m
    styled, styled_state = nerf.load_nerf(tmp_path / "styled", "cpu")
    field, state = nerf.load_nerf(run, "cpu")
    assert styled_state["settings"]["appearance"]["resolutions"] == [8, 16, 32]
    assert styled.appearance_parameters()
    x = torch.rand(500, 3) * 2 - 1
    assert torch.equal(styled.query(x)[0], field.query(x)[0])  # the same density everywhere
    assert (tmp_path / "styled" / "preview.png").is_file()

    full = torch.ones(4, dtype=torch.float64)
    cams = orbit(torch.tensor([20.0, 30.0, 200.0, 210.0], dtype=torch.float64), 25 * full,
                 state["camera"]["distance"] * full, state["camera"]["fov"] * full)
    views = posed_from_cameras(cams, 32, ["a", "b", "c", "d"])
    rgba, depth = field.render(views)
    before, restyled = nerf.flatten(rgba, 1.0), nerf.flatten(styled.render(views)[0], 1.0)
    painted = torch.cat([style_transfer(before[i:i + 1], stripes, size=32, **settings).images
                         for i in range(4)])  # each view stylised on its own
    objective = style(style_targets(tiny, stripes[None], ["conv2", "conv3"]))

    def distance(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return -objective(Activations(tiny.activations(images, ["conv2", "conv3"]), tiny))

    assert bool((distance(restyled) < distance(before)).all())  # every view nearer the style
    assert float(distance(restyled).mean()) < 1.25 * float(distance(painted).mean())

    def error(images: torch.Tensor) -> float:
        return multiview_error(images, depth, views, [(0, 1), (2, 3)], rgba[:, 3:])["error"]

    assert error(restyled) < 0.5 * error(painted), (error(restyled), error(painted))


@pytest.mark.parametrize("args", [
    ["nerf", "fit", "MISSING", "--out", "run", "--device", "cpu"],
    ["nerf", "fit", "scene", "--out", "run", "--resolutions", "8,x"],
    ["nerf", "render", "MISSING", "--path", "orbit", "--out", "v.gif"],
    ["nerf", "render", "RUN", "--cameras", "scene/transforms_test.json", "--out", "v.gif"],
    ["nerf", "export", "RUN", "--out", "mesh.obj"],
    ["nerf", "export", "RUN", "--out", "mesh.ply", "--level", "1e9", "--resolution", "16"],
])
def test_cli_bad_input_exits_2_and_writes_nothing(fitted, scene, tmp_path, monkeypatch, capsys, args) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scene").symlink_to(scene)
    (tmp_path / "RUN").symlink_to(fitted[0])
    before = sorted(fitted[0].iterdir())
    assert main([*args, "--device", "cpu"] if args[1] != "fit" else args) == 2
    err = capsys.readouterr().err
    assert err.startswith("diffparam: error:") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["RUN", "scene"]
    assert sorted(fitted[0].iterdir()) == before


@pytest.mark.parametrize("up", [(0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.0, -0.6, 0.8)])
def test_camera_paths_circle_the_scenes_own_up_axis(up) -> None:
    """NeRF's Blender scenes have z up, the project's y: paths follow the training cameras' up."""
    from diffparam.recipes.nerf import _camera_of, path_cameras, upright
    from diffparam.three_d.cameras import Cameras, orbit
    from diffparam.three_d.posed import posed_from_cameras

    g = torch.Generator().manual_seed(0)
    n = 10
    elevation = 10 + 50 * torch.rand(n, generator=g, dtype=torch.float64)
    cams = orbit(360 * torch.rand(n, generator=g, dtype=torch.float64), elevation,
                 torch.full((n,), 4.0, dtype=torch.float64), torch.full((n,), 40.0, dtype=torch.float64))
    views = posed_from_cameras(upright(Cameras(cams.view.float(), cams.fov.float()), up), 32,
                               [str(i) for i in range(n)])
    camera = _camera_of(views)
    axis = torch.nn.functional.normalize(torch.tensor(up, dtype=torch.float64), dim=0)
    assert torch.allclose(torch.tensor(camera["up"], dtype=torch.float64), axis, atol=1e-4)
    assert camera["elevation"] == pytest.approx(float(elevation.mean()), abs=0.05)
    c2w = torch.linalg.inv(path_cameras(camera, "orbit", 8).view.double())
    centres = c2w[:, :3, 3]
    heights = torch.rad2deg(torch.asin(centres @ axis / centres.norm(dim=1)))
    assert torch.allclose(heights, torch.full_like(heights, camera["elevation"]), atol=0.05)
    assert bool((c2w[:, :3, 1] @ axis > 0).all())  # the paths' cameras are upright in the scene


def test_up_of_cameras_facing_one_way_is_their_mean_y_axis_not_their_viewing_direction() -> None:
    """Forward-facing, hand-held: yaw spread ±1°, roll jitter ±3°. The normal to the x axes is then
    ill-posed (it can be the viewing direction); up falls back to the cameras' mean y axis."""
    from diffparam.recipes.nerf import up_direction

    g = torch.Generator().manual_seed(1)
    n = 12
    yaw = torch.deg2rad(2 * torch.rand(n, generator=g) - 1)
    roll = torch.deg2rad(6 * torch.rand(n, generator=g) - 3)
    c2w = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    for i in range(n):
        cy, sy, cr, sr = yaw[i].cos(), yaw[i].sin(), roll[i].cos(), roll[i].sin()
        about_y = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]], dtype=torch.float64)
        about_z = torch.tensor([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]], dtype=torch.float64)
        c2w[i, :3, :3] = about_y @ about_z
    up = up_direction(c2w)
    assert float(up @ torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)) > 0.99
