"""3D art in a radiance field (`diffparam volume`): tiny fields and views on the CPU."""

from __future__ import annotations

import json

import pytest
import torch
import trimesh
from conftest import TinyNet

from diffparam.cli import main
from diffparam.errors import UserError
from diffparam.models.base import Model
from diffparam.param.radiance import RadianceField
from diffparam.recipes import nerf, volume

TINY = dict(steps=30, size=24, views=2, resolutions=(8, 16), samples=32, grid=16, held_out_views=4,
            lr=0.03, transforms=None, device="cpu", progress=False)
"""A field and views small enough for a few seconds a run."""
UNIT = "conv2:3"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """The same unit made with the opacity penalty (into a run folder) and without it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = Model(TinyNet(), input_size=32, name="tiny")
    folder = tmp_path_factory.mktemp("volume") / "run"
    try:
        return {"net": net, "folder": folder, "penalised": volume.volume_art(UNIT, net, out=folder, **TINY),
                "free": volume.volume_art(UNIT, net, sparsity=0.0, **TINY)}
    finally:
        torch.set_num_threads(before)


def test_unit_fires_on_held_out_views_far_more_than_on_the_field_it_started_from(runs) -> None:
    for name in ("penalised", "free"):
        m = runs[name].metrics
        assert m["held_out_value"] > max(4 * m["initial_held_out_value"], 0.0) + 0.05, (name, m)


def test_the_opacity_penalty_keeps_the_object_from_filling_the_volume(runs) -> None:
    penalised, free = runs["penalised"].metrics, runs["free"].metrics
    assert penalised["coverage"] < free["coverage"] - 0.05, (penalised, free)
    assert penalised["coverage"] < penalised["initial_coverage"] - 0.1


def test_saved_run_reloads_as_a_mesh_and_in_the_nerf_verbs(runs, tmp_path) -> None:
    result, folder = runs["penalised"], runs["folder"]
    written = {p.name for p in result.save(folder, frames=3, resolution=32)}
    assert {"checkpoint.pt", "mesh.glb", "turntable.gif", "preview.png", "metrics.json"} <= written
    mesh = trimesh.load(folder / "mesh.glb", force="mesh")
    metrics = json.loads((folder / "metrics.json").read_text())
    assert len(mesh.faces) > 0 and len(mesh.faces) == metrics["mesh_faces"]
    assert abs(mesh.bounds).max() <= 1.0 + 1e-4  # inside the field's box
    field, state = nerf.load_nerf(folder, "cpu")
    view = field.views.part(0, 1)
    assert torch.allclose(field.render(view)[0], result.param.cpu().render(view)[0], atol=1e-5)
    frame = nerf.render_path(folder, tmp_path / "orbit.gif", frames=2, size=16, progress=False)
    assert frame.images.shape == (1, 3, 16, 16)


def test_saving_into_another_runs_folder_is_refused_and_leaves_it_alone(runs, tmp_path) -> None:
    other = volume.volume_art(UNIT, runs["net"], out=tmp_path / "other", **{**TINY, "steps": 2, "seed": 1})
    before = (tmp_path / "other" / "checkpoint.pt").read_bytes()
    with pytest.raises(UserError, match="holds another run"):
        runs["penalised"].save(tmp_path / "other", frames=0)
    assert (tmp_path / "other" / "checkpoint.pt").read_bytes() == before
    assert other.metrics["steps"] == 2


def test_resuming_with_more_steps_keeps_the_first_runs_opacity_schedule(runs, tmp_path) -> None:
    small = {**TINY, "steps": 2, "size": 16, "samples": 8, "held_out_views": 1}
    volume.volume_art(UNIT, runs["net"], out=tmp_path / "run", **small)
    assert volume.anneal_steps(tmp_path / "run", 50) == volume.anneal_steps(None, 2)
    volume.volume_art(UNIT, runs["net"], out=tmp_path / "run", **{**small, "steps": 4})  # resumes


def test_an_interrupted_run_resumes_to_what_an_uninterrupted_one_makes(runs, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(volume, "OCCUPANCY_EVERY", 2)  # the occupancy grid is refreshed, and must resume too
    small = {**TINY, "steps": 6, "size": 16, "samples": 8, "held_out_views": 1}
    whole = volume.volume_art(UNIT, runs["net"], **small)
    calls, render_views = [0], RadianceField.render_views

    def interrupted(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 5:
            raise KeyboardInterrupt
        return render_views(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(RadianceField, "render_views", interrupted)
        with pytest.raises(KeyboardInterrupt):
            volume.volume_art(UNIT, runs["net"], out=tmp_path, **small)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 4
    resumed = volume.volume_art(UNIT, runs["net"], out=tmp_path, **small)
    assert resumed.history == whole.history
    for a, b in zip(resumed.param.state_dict().values(), whole.param.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(UserError, match="other settings"):
        volume.volume_art(UNIT, runs["net"], out=tmp_path, **{**small, "coverage": 0.3})


def test_cli_writes_the_run_folder(tmp_path, capsys) -> None:
    out = tmp_path / "art"
    args = ["volume", "blocks.2:3", "--out", str(out), "--steps", "2", "--size", "16", "--samples", "8",
            "--frames", "2", "--resolution", "16", "--device", "cpu", "--seed", "1"]
    assert main(args) == 0
    names = {p.name for p in out.iterdir()}
    assert {"checkpoint.pt", "turntable.gif", "preview.png", "metrics.json"} <= names
    assert "held-out views: blocks.2:3" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["steps"] == 2


@pytest.mark.parametrize("args, message", [
    (["nolayer:1"], "unknown layer"),
    (["blocks.2:3", "--size", "8"], "--size must be"),
    (["blocks.2:3", "--coverage", "1.5"], "--coverage must be"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, message) -> None:
    assert main(["volume", *args, "--out", str(tmp_path / "art"), "--steps", "1", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_folder_holding_other_files_is_refused(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        volume.volume_art(UNIT, "efficientnet_lite0", out=tmp_path, **TINY)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
