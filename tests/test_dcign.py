"""Inverse graphics (issue 18): lit renders in DC-IGN mini-batches, the paper's clamping, and a DC-IGN
whose azimuth unit carries azimuth better than the same unit of the network trained as a plain VAE
(at this tiny size the plain VAE's best unit can match it; BENCHMARKS.md compares best units at a
larger size)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from diffparam.cli import main
from diffparam.errors import UserError
from diffparam.io import read_frames, save_image
from diffparam.recipes.dcign import load_dcign, r2, sweep, train_dcign, vary
from diffparam.recipes.dcign_data import FACTORS, VARIES, load_data, make_data, render_views, texture
from diffparam.recipes.dcign_render import scene_objects
from diffparam.three_d.export import export_glb
from diffparam.three_d.shading import vertex_normals
from diffparam.three_d.shapes import shape, sphere
from diffparam.train.dcign import clamp_batch

TINY = dict(steps=1000, groups=2, lr=2e-3, width=8, free=5, device="cpu", progress=False)
"""The tiny CPU setting of the R² comparison; see the test for what was measured on other seeds."""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("dcign") / "data"
    make_data(out, meshes=["shape:sphere"], textures=("checker",), size=16, batches=32, batch=8,
              azimuth=(-45.0, 45.0), elevation=(-30.0, 30.0), varies=("azimuth", "elevation", "light"))
    return out


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    threads = torch.get_num_threads()
    with torch.random.fork_rng():
        torch.set_num_threads(1)
        runs = {plain: train_dcign(data_dir, folder / ("plain" if plain else "dcign"), plain=plain, **TINY)
                for plain in (False, True)}
    torch.set_num_threads(threads)
    return runs


def test_vertex_normals_point_out_of_a_sphere_and_light_comes_from_its_side() -> None:
    mesh = sphere(16)
    normals = vertex_normals(mesh.vertices, mesh.faces)
    used = mesh.faces.unique()
    outward = torch.nn.functional.normalize(mesh.vertices[used], dim=-1)
    assert float((normals[used] * outward).sum(-1).min()) > 0.99
    grey = texture("hue")[:, :1].expand(1, 3, -1, -1).clone().fill_(0.8)
    lit = render_views(mesh, grey, torch.tensor([[0.0, 0.0, 60.0], [0.0, 0.0, -60.0]]), 32)
    left, right = lit[..., :16].mean((1, 2, 3)), lit[..., 16:].mean((1, 2, 3))
    assert float(right[0]) > 1.5 * float(left[0]) and float(left[1]) > 1.5 * float(right[1])


def test_clamping_averages_the_other_units_and_pulls_them_to_the_mean() -> None:
    z = torch.randn(2, 4, 3, requires_grad=True)
    active = torch.tensor([[True, False, False], [False, False, True]])
    out = clamp_batch(z, active, weight=0.5)
    mean = z.detach().mean(1, keepdim=True)
    assert torch.allclose(out[0, :, 1:], mean[0, :, 1:].expand(4, 2))
    assert torch.equal(out[0, :, 0], z[0, :, 0])
    upstream = torch.randn(2, 4, 3)
    out.backward(upstream)
    clamped = ~active[:, None, :].expand(2, 4, 3)
    assert torch.allclose(z.grad[clamped], (0.5 * (z.detach() - mean))[clamped])
    assert torch.equal(z.grad[~clamped], upstream[~clamped])


def test_data_files_have_the_mini_batch_structure(data_dir) -> None:
    data = load_data(data_dir)
    meta = json.loads((data_dir / "batches.json").read_text())
    assert data.images.shape == (32, 8, 3, 16, 16) and len(meta["batches"]) == 32
    for k in range(32):
        j = int(data.varies[k])
        assert VARIES[j] == FACTORS[k % 3]
        f = data.factors[k]
        others = [i for i in range(len(FACTORS)) if i != j]
        assert torch.equal(f[:, others], f[:1, others].expand(8, -1))  # the other factors are fixed
        assert float(f[:, j].std()) > 5  # the one that varies, varies (degrees)
        assert float((data.images[k, 1:] - data.images[k, :1]).abs().amax()) > 0.1  # and the images show it
    # The PNG strips hold exactly what was rendered, to 8 bits.
    again = render_views(sphere(32), texture("checker"), data.factors[0], 16)
    assert float((again - data.images[0]).abs().max()) <= 1 / 255 + 1e-6


def test_a_users_textured_mesh_renders_grey_batches(tmp_path) -> None:
    path = export_glb(sphere(8), tmp_path / "ball.glb", texture("checker")[0])
    result = make_data(tmp_path / "data", meshes=[path], size=16, batches=4, batch=3, grey=True)
    data = load_data(tmp_path / "data")
    assert data.images.shape == (4, 3, 1, 16, 16) and result.metrics["objects"] == 1  # its own texture only
    assert {name for batch in data.objects for name in batch} == {"ball"}
    assert float(data.images.std()) > 0.05


def test_random_blobs_add_shapes_that_differ_and_come_back_by_name(tmp_path) -> None:
    make_data(tmp_path / "data", blobs=2, textures=("hue",), size=16, batches=4, batch=2)
    data = load_data(tmp_path / "data")
    assert {name for batch in data.objects for name in batch} <= {"blob0/hue", "blob1/hue"}
    assert data.sources == {"blob0": "shape:blob0", "blob1": "shape:blob1"}
    ball, a, again, b = sphere(32), shape("blob0"), shape("blob0"), shape("blob1")
    assert torch.equal(a.vertices, again.vertices) and a.faces.shape == ball.faces.shape
    radius = a.vertices.norm(dim=1)
    assert float(radius.max() / radius.min()) > 1.3  # not a sphere
    assert float((a.vertices - b.vertices).abs().max()) > 0.05
    unsaid = scene_objects(dataclasses.replace(data, sources=None))  # a folder that does not say: by name
    assert torch.equal(unsaid["blob0/hue"][0].vertices, a.vertices)
    with pytest.raises(UserError, match="blobs"):
        make_data(tmp_path / "more", blobs=-1)


def test_a_users_folder_is_read_and_a_bad_one_refused(tmp_path) -> None:
    strip = torch.rand(1, 16, 48)
    save_image(strip.expand(3, -1, -1), tmp_path / "a.png")
    index = {"size": 16, "channels": 1, "batches": [{"file": "a.png", "varies": "light"}]}
    (tmp_path / "batches.json").write_text(json.dumps(index))
    data = load_data(tmp_path)
    assert data.images.shape == (1, 3, 1, 16, 16) and data.factors is None
    index["batches"][0]["varies"] = "colour"
    (tmp_path / "batches.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match="`varies`"):
        load_data(tmp_path)
    index["batches"][0].update(varies="light", factors=[["a", "b", "c"]] * 3)
    (tmp_path / "batches.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match="`factors` must list"):
        load_data(tmp_path)
    with pytest.raises(UserError, match="holds no batches.json"):
        load_data(tmp_path / "..")


def test_clamping_puts_azimuth_in_its_unit_better_than_a_plain_vae(runs) -> None:
    dcign, plain = runs[False].metrics["r2"]["azimuth"], runs[True].metrics["r2"]["azimuth"]
    # The same unit of the same network: R² of azimuth from it. Measured in this setting on seeds 0, 1, 2:
    # DC-IGN 0.60, 0.23, 0.36; plain VAE 0.30, 0.08, 0.00 (at 400 steps seed 2 failed: 0.002 against 0.007).
    # The plain VAE's best single unit reached 0.59, 0.35, 0.09: at this size it can match the DC-IGN's.
    assert dcign[0] > plain[0] + 0.1


def test_r2_of_a_linear_fit() -> None:
    x = torch.linspace(0, 1, 50)[:, None]
    assert r2(x, 3 * x[:, 0] + 1) == pytest.approx(1.0) and r2(x, torch.cos(40 * x[:, 0])) < 0.2


def test_training_resumes_and_refuses_other_settings(data_dir, tmp_path) -> None:
    settings = dict(groups=1, width=4, free=2, device="cpu", progress=False, every=2)
    whole = train_dcign(data_dir, tmp_path / "whole", steps=4, **settings)
    train_dcign(data_dir, tmp_path / "cut", steps=2, **settings)
    resumed = train_dcign(data_dir, tmp_path / "cut", steps=4, **settings)
    assert resumed.history == pytest.approx(whole.history)
    for a, b in zip(whole.param.parameters(), resumed.param.parameters(), strict=True):
        assert torch.allclose(a, b)
    with pytest.raises(UserError, match=r"other settings \(plain\)"):
        train_dcign(data_dir, tmp_path / "cut", steps=4, plain=True, **settings)


def test_vary_sweeps_only_the_chosen_unit(runs, tmp_path) -> None:
    run = runs[False].files["run"]
    net, units = load_dcign(run)
    image = torch.rand(3, 16, 16)
    frames = sweep(net, units, image, "azimuth", frames=5)
    assert frames.shape == (5, 3, 16, 16) and float((frames[0] - frames[-1]).abs().mean()) > 0.01
    result = vary(run, image, "light", tmp_path / "light.gif", frames=6, scale=2)
    shown = list(read_frames(result.files["video"]))
    assert len(shown) == 10 and shown[0].shape[-1] == 32  # there and back; enlarged twice
    with pytest.raises(UserError, match="--object applies to a run with a rendering decoder"):
        sweep(net, units, image, "azimuth", frames=5, object="sphere/hue")


@pytest.mark.parametrize(("args", "message"), [
    (("data", "--size", "12", "--out", "d"), "--size must be a whole number in 16..256"),
    (("data", "--size", "20", "--out", "d"), "--size must be a multiple of 8"),
    (("data", "--azimuth", "-30", "--out", "d"), "invalid degrees_range value"),
    (("data", "--batches", "0", "--out", "d"), "--batches"),
    (("data", "--textures", "plaid", "--out", "d"), "unknown --textures 'plaid'"),
    (("data", "--out", "keep.png"), "is a file"),
    (("data", "--mesh", "nowhere.obj", "--out", "d"), "nowhere.obj"),
    (("train", "nowhere", "--out", "r"), "not found"),
    (("train", ".", "--out", "r"), "holds no batches.json"),
    (("vary", "nowhere", "keep.png", "--factor", "light", "--out", "v.gif"), "not found"),
])
def test_cli_bad_input_is_one_line_and_leaves_nothing(args, message, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    save_image(torch.full((3, 8, 8), 0.8), tmp_path / "keep.png")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["dcign", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
