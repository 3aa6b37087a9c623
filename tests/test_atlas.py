"""The atlas's rendering half: job lists, batched units, the manifest, resuming, gloo sharding, CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from diffparam.atlas import (
    Options,
    Unit,
    atlas,
    batches,
    block_layers,
    job_list,
    prepare,
    resolve_layers,
    units_objective,
)
from diffparam.atlas.distributed import cpu_threads
from diffparam.cli import main
from diffparam.errors import UserError
from diffparam.evaluate import objective_values, photo_reference, plausibility_distance, sanity
from diffparam.io import read_image
from diffparam.models.base import Model
from diffparam.objectives import channel

TESTS = Path(__file__).resolve().parent
TINY = dict(size=32, steps=4, batch=5, device="cpu", circuits=False, page=False, progress=False)
"""Tiny-model atlas options: conv1.0 (8) + conv2.0 (16) = 24 units in 5 batches, the first mixed."""


def _files(folder: Path) -> dict[str, int]:
    """Every file under `folder` (relative path → modification time in ns)."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def _hidden(folder: Path) -> list[str]:
    return [p for p in _files(folder) if Path(p).name.startswith(".")]


def _pngs(folder: Path) -> dict[str, np.ndarray]:
    return {p: np.asarray(Image.open(folder / p), dtype=np.int16) for p in _files(folder)
            if p.endswith(".png")}


# -- job lists -----------------------------------------------------------------------------------
class _Block(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_layers_all_means_the_blocks(lite0, tiny) -> None:
    assert block_layers(lite0) == [f"blocks.{i}" for i in range(16)]
    assert resolve_layers(lite0, "all") == block_layers(lite0)
    staged = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(_Block(4, 6), _Block(6, 6)),
                           nn.Sequential(_Block(6, 8)), nn.AdaptiveAvgPool2d(1))
    assert block_layers(Model(staged, input_size=32)) == ["1.0", "1.1", "2.0"]  # outermost blocks
    assert block_layers(tiny) == ["conv1.0", "conv2.0", "conv3.0"]  # no blocks: every Conv2d


def test_layer_lists_are_checked_and_ordered(lite0) -> None:
    assert resolve_layers(lite0, "blocks.3, blocks.1,blocks.3") == ["blocks.1", "blocks.3"]
    with pytest.raises(UserError, match=r"unknown layer 'blocks\.99'.*closest: blocks\.9"):
        resolve_layers(lite0, "blocks.1,blocks.99")
    with pytest.raises(UserError, match="no layers given"):
        resolve_layers(lite0, " , ")


def test_batches_are_cut_from_the_whole_job_list(tiny) -> None:
    units = job_list(tiny, ["conv2.0", "conv1.0"], circuits=False)
    assert [u.key for u in units[:9]] == [f"conv1.0:{c}" for c in range(8)] + ["conv2.0:0"]
    cut = batches(units, 5)
    assert [len(b.units) for b in cut] == [5, 5, 5, 5, 4] and [b.seed(7) for b in cut] == [7, 8, 9, 10, 11]
    assert {u.layer for u in cut[1].units} == {"conv1.0", "conv2.0"}


def test_units_objective_is_each_images_own_channel(tiny) -> None:
    units = [Unit("conv2.0", 3), Unit("conv1.0", 5), Unit("conv2.0", 0), Unit("pool", 7)]
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    got = objective_values(tiny, units_objective(units), images)
    want = torch.stack([objective_values(tiny, channel(u.layer, u.channel), images[i:i + 1])[0]
                        for i, u in enumerate(units)])
    torch.testing.assert_close(got, want)


# -- rendering, manifest -----------------------------------------------------------------------
def test_atlas_beats_photos_and_records_what_it_measured(lite0, tmp_path) -> None:
    out = tmp_path / "atlas"
    result = atlas(lite0, "blocks.1", out, size=48, steps=48, batch=32, device="cpu",
                   circuits=False, page=False, progress=False, trust=False)
    manifest = result.manifest
    assert result.files == {"manifest": out / "manifest.json"} and len(result.images) == 0
    assert (result.units, result.rendered, result.world_size) == (24, 24, 1)
    assert result.save(out) == [out / "manifest.json"]
    with pytest.raises(UserError, match="written to its own folder"):
        result.save(tmp_path / "elsewhere")
    assert manifest["model"] == "efficientnet_lite0" and manifest["version"] == 1
    assert manifest["options"] == {"size": 48, "steps": 48, "lr": 0.05, "param": "fourier", "seed": 0,
                                   "batch": 32, "precision": "fp32", "compile": False,
                                   "spectrum_from": None, "trust": False, "photos": None}
    assert manifest["layers"] == {"blocks.1": {"channels": 24, "index": 26, "role": "unit"}}
    units = manifest["units"]
    assert sorted(units) == sorted(f"blocks.1:{c}" for c in range(24))
    assert json.loads((out / "manifest.json").read_text()) == manifest
    positive = [e for e in units.values() if e["photo_activation"] > 0]
    assert len(positive) >= 18 and all(e["activation"] > e["photo_activation"] for e in positive)
    for key in ("blocks.1:0", "blocks.1:17"):
        e = units[key]
        img = read_image(out / e["image"])
        assert img.shape == (1, 3, 48, 48) and e["image"] == f"blocks.1/{e['channel']}.png"
        unit = channel("blocks.1", e["channel"])
        assert float(objective_values(lite0, unit, img)) == pytest.approx(e["activation"], rel=0.03, abs=0.05)
        assert photo_reference(lite0, unit) == pytest.approx(e["photo_activation"], rel=1e-4, abs=1e-4)
        assert e["rank"] == 0 and e["seed"] == 0 and e["seconds"] > 0
    run = manifest["timings"]["runs"][-1]
    assert run["units"] == 24 and run["world_size"] == 1 and run["wall_seconds"] > 0


def test_keyboard_interrupt_then_resume_redoes_nothing(tiny, tmp_path) -> None:
    out = tmp_path / "atlas"
    calls = 0

    def interrupt(step: int, loss: float, images: torch.Tensor) -> None:
        nonlocal calls
        calls += 1
        if calls == TINY["steps"] + 2:  # in the middle of the second batch
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atlas(tiny, "conv1.0,conv2.0", out, callback=interrupt, **TINY)
    kept = json.loads((out / "manifest.json").read_text())["units"]
    assert sorted(kept) == [f"conv1.0:{c}" for c in range(5)] and not _hidden(out)
    before = _files(out)
    manifest = atlas(tiny, "conv1.0,conv2.0", out, **TINY).manifest
    assert manifest["timings"]["runs"][-1]["units"] == 24 - 5 and len(manifest["units"]) == 24
    after = _files(out)
    assert all(after[kept[k]["image"]] == before[kept[k]["image"]] for k in kept)  # not rewritten
    assert not _hidden(out) and len(_pngs(out)) == 24
    again = atlas(tiny, "conv1.0,conv2.0", out, **TINY).manifest
    assert again["timings"]["runs"][-1]["units"] == 0 and _files(out).keys() == after.keys()


_KILLED = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import torch
from conftest import TinyNet
from diffparam.atlas import atlas
from diffparam.models.base import Model

torch.manual_seed(0)
model = Model(TinyNet(), input_size=32, name="tiny")
calls = 0

def kill(step, loss, images):
    global calls
    calls += 1
    if calls == 2 * {steps} + 2:  # the third batch is in flight
        os.kill(os.getpid(), signal.SIGKILL)

atlas(model, "conv1.0,conv2.0", {out!r}, callback=kill, **{options!r})
"""


def test_kill_9_then_resume(tiny, tmp_path) -> None:
    out = tmp_path / "atlas"
    options = {k: v for k, v in TINY.items()}
    script = _KILLED.format(tests=str(TESTS), steps=TINY["steps"], out=str(out), options=options)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    parts = sorted(p.name for p in (out / ".parts").iterdir())
    assert parts == ["batch-000000.json", "batch-000001.json"]
    assert json.loads((out / "manifest.json").read_text())["units"] == {}
    stray = out / "conv2.0" / ".9.png.k1ll3d_x.png"  # what a kill during a PNG write leaves
    stray.write_bytes(b"\x89PNG half")
    before = _files(out)
    manifest = atlas(tiny, "conv1.0,conv2.0", out, **TINY).manifest
    assert manifest["timings"]["runs"][-1]["units"] == 24 - 10
    done = [e for e in manifest["units"].values() if e["batch"] < 2]
    assert len(done) == 10 and all(_files(out)[e["image"]] == before[e["image"]] for e in done)
    assert not _hidden(out) and not (out / ".parts").exists() and len(_pngs(out)) == 24


def test_atlas_measures_trust_per_unit(tiny, tmp_path) -> None:
    manifest = atlas(tiny, "conv1.0,conv2.0", tmp_path, **TINY).manifest
    assert manifest["units"]["conv1.0:0"]["sanity"] is None  # nothing comes before conv1.0
    entry = manifest["units"]["conv2.0:3"]
    image = read_image(tmp_path / entry["image"])
    checked = sanity(tiny, channel("conv2.0", 3), image)
    assert entry["sanity"] == pytest.approx(float(checked.scores[0]), abs=0.05)
    assert entry["sanity_of_photos"] == pytest.approx(checked.held_out, abs=1e-5)
    distance = float(plausibility_distance(tiny, image)[0])
    assert entry["plausibility_distance"] == pytest.approx(distance, rel=0.05)


def test_an_atlas_from_before_an_option_existed_resumes(tiny, tmp_path) -> None:
    atlas(tiny, "conv3.0", tmp_path, **TINY)
    path = tmp_path / "manifest.json"
    manifest = json.loads(path.read_text())
    for name in ("spectrum_from", "trust", "photos"):
        del manifest["options"][name]
    path.write_text(json.dumps(manifest))
    options = Options(size=32, steps=4, batch=5)
    assert prepare(tmp_path, tiny, "conv3.0", options, circuits=False).pending == []
    with pytest.raises(UserError, match="made with trust on, not off"):
        atlas(tiny, "conv3.0", tmp_path, **{**TINY, "trust": False})


def test_resume_needs_the_same_options(tiny, tmp_path) -> None:
    atlas(tiny, "conv3.0", tmp_path, **TINY)
    with pytest.raises(UserError, match=r"made with steps 4, not 5: resume with the same options"):
        atlas(tiny, "conv3.0", tmp_path, **{**TINY, "steps": 5})
    other = Model(nn.Sequential(nn.Conv2d(3, 4, 3)), input_size=32, name="other")
    with pytest.raises(UserError, match="holds an atlas of model tiny, not other"):
        atlas(other, "0", tmp_path, **TINY)
    # A speed-only option may change: everything is done, so nothing renders (or compiles).
    same = Options(size=32, steps=4, batch=5, compile=True)
    assert prepare(tmp_path, tiny, "conv3.0", same, circuits=False).pending == []


def test_two_gloo_workers_share_the_batches(tiny, tmp_path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(cpu_threads(2))  # each worker's thread count: the same arithmetic
    try:
        single = atlas(tiny, "conv1.0,conv2.0", tmp_path / "one", **TINY).manifest
    finally:
        torch.set_num_threads(threads)
    shared = atlas(tiny, "conv1.0,conv2.0", tmp_path / "two", workers=2, **TINY).manifest
    assert shared.keys() == single.keys() and shared["units"].keys() == single["units"].keys()
    assert {e["batch"]: e["rank"] for e in shared["units"].values()} == {0: 0, 1: 1, 2: 0, 3: 1, 4: 0}
    run = shared["timings"]["runs"][-1]
    assert run["world_size"] == 2 and [r["units"] for r in run["ranks"]] == [14, 10]
    one, two = _pngs(tmp_path / "one"), _pngs(tmp_path / "two")
    assert one.keys() == two.keys() and len(one) == 24
    assert max(np.abs(one[k] - two[k]).max() for k in one) <= 2  # same seeds and thread counts
    for key, e in single["units"].items():
        assert shared["units"][key]["activation"] == pytest.approx(e["activation"], rel=0.02, abs=0.01)


# -- command line ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layers", "blocks.1,blocks.99"], "unknown layer 'blocks.99' in model efficientnet_lite0; "
                                             "closest: blocks.9"),
        (["--layers", "blocks.1", "--workers", "0"], "--workers must be a whole number >= 1, got 0"),
        (["--layers", "blocks.1", "--workers", "2", "--device", "cuda"], "--device cpu"),
        (["--layers", "blocks.1", "--batch", "0"], "--batch must be a whole number >= 1, got 0"),
        (["--layers", "blocks.1", "--size", "8"], "outside 16..4096"),
    ],
)
def test_cli_errors_are_one_line(args, message, tmp_path, capsys) -> None:
    assert main(["atlas", "--out", str(tmp_path / "a"), "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("diffparam: error:") and message in err and err.count("\n") == 1
    assert not (tmp_path / "a" / "manifest.json").exists()


def test_cli_atlas_writes_images_manifest_and_page(tmp_path, capsys) -> None:
    out = tmp_path / "atlas"
    assert main(["atlas", "--layers", "blocks.0", "--size", "32", "--steps", "2", "--batch", "64",
                 "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "index.html")
    manifest = json.loads((out / "manifest.json").read_text())
    roles = {e["role"] for k, e in manifest["units"].items() if k.startswith("blocks.0:")}
    assert roles == {"unit"} and len(manifest["units"]) > 16  # + the stem channels feeding them
    assert {e["role"] for k, e in manifest["units"].items() if k.startswith("stem:")} == {"circuit"}
    layers = manifest["layers"]
    assert layers["stem"]["role"] == "circuit" and layers["blocks.0"]["role"] == "unit"
    assert all((out / e["image"]).is_file() for e in manifest["units"].values())
    assert "blocks.0/15.png" in (out / "index.html").read_text()
    assert manifest["timings"]["runs"][-1]["page_seconds"] > 0
