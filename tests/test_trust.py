"""Trust numbers: the sanity score's scale (top photo crops ~1, unrelated crops 0), plausibility
against held-out photos, Fréchet distance and diversity, the per-image report in Python, the CLI
and its JSON file."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from diffparam.cli import main
from diffparam.errors import UserError
from diffparam.evaluate import (
    batch_diversity,
    frechet_distance,
    objective_values,
    photo_pool,
    plausibility_distance,
    report,
    sanity,
)
from diffparam.evaluate.trust import _frechet, path_layers, unit_layer
from diffparam.io import sample_photos, save_images
from diffparam.models.base import Model
from diffparam.objectives import channel
from diffparam.param import make_param
from diffparam.render import render

PHOTOS = ("astronaut", "chelsea", "rocket", "coffee", "camera")


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """Five of scikit-image's photos at 256 px: a small reference set (70 crops at 224 px)."""
    folder = tmp_path_factory.mktemp("photos")
    for name, photo in zip(PHOTOS, sample_photos(256, PHOTOS), strict=True):
        save_images(photo[None], folder / f"{name}.png")
    return folder


def test_path_is_the_outer_layers_before_the_unit(tiny, lite0) -> None:
    assert path_layers(tiny, "conv3") == ["conv1", "conv2"]
    assert path_layers(tiny, "conv3.1") == ["conv1", "conv2", "conv3.0"]
    assert path_layers(tiny, "conv1") == []
    path = path_layers(lite0, "blocks.10")
    order = lite0.layer_order()
    assert len(path) == 6 and path[-1] == "blocks.9"
    assert [order[n] for n in path] == sorted(order[n] for n in path)
    assert unit_layer(tiny, channel("conv2", 1) + channel("conv3", 0)) == "conv3"
    # A stack of blocks counts as its blocks; the classifier that only carries the output is left out.
    assert path_layers(lite0, "output") == ["stem", "blocks.3", "blocks.6", "blocks.10", "blocks.13", "pool"]
    assert path_layers(tiny, "output") == ["conv1", "conv2", "conv3", "pool"]


def test_sanity_scale_is_the_photos(lite0) -> None:
    """Against scikit-image's photos: the crops that drive the unit score about 1, crops that do not
    drive it about 0; the next-best crops land between; noise below them."""
    obj = channel("blocks.10", 5)
    pool = photo_pool(lite0)
    order = pool.values(lite0, obj).argsort(descending=True)
    top, weakest = pool.crops[order[:16]], pool.crops[order[-16:]]
    crops = sanity(lite0, obj, torch.cat([top, weakest]))
    assert crops.layers == path_layers(lite0, "blocks.10") and crops.per_layer.shape == (32, 6)
    assert crops.scores[:16].mean() > 0.9
    assert crops.scores[16:].mean() < 0.3
    assert 0.1 < crops.held_out < 0.9
    noise = sanity(lite0, obj, torch.rand(3, 3, 224, 224, generator=torch.Generator().manual_seed(0)))
    assert noise.scores.max() < crops.held_out


def test_sanity_without_a_path_is_nan(tiny) -> None:
    checked = sanity(tiny, channel("conv1", 0), torch.rand(2, 3, 32, 32))
    assert checked.layers == [] and torch.isnan(checked.scores).all() and math.isnan(checked.held_out)


def test_plausibility_photos_near_1_flat_and_noise_far(lite0) -> None:
    crops = photo_pool(lite0).crops
    some = crops[torch.randperm(len(crops), generator=torch.Generator().manual_seed(1))[:48]]
    assert 0.5 < float(plausibility_distance(lite0, some).median()) < 1.2  # half are the reference itself
    strange = torch.full((3, 3, 224, 224), 0.5)
    strange[1] = torch.linspace(0, 1, 224).expand(3, 224, 224)
    strange[2] = torch.rand(3, 224, 224, generator=torch.Generator().manual_seed(0))
    assert (plausibility_distance(lite0, strange) > 1.5).all()


def test_few_photos_warn(tiny, photo_folder) -> None:
    with pytest.warns(RuntimeWarning, match="only 5 photos"):
        photo_pool(tiny, photo_folder)


def test_frechet_distance() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 5, generator=g, dtype=torch.float64)
    assert _frechet(a, a) == pytest.approx(0, abs=1e-6)
    shift = torch.tensor([1.0, 2, 0, 0, 0], dtype=torch.float64)
    assert _frechet(a + shift, a) == pytest.approx(5, rel=1e-6)
    assert _frechet(2 * a, a) == pytest.approx(float(torch.cov(a.T).trace()), rel=0.01)  # (2-1)^2 tr(C)


def test_frechet_and_diversity_need_two_images(tiny) -> None:
    one = torch.rand(1, 3, 32, 32)
    with pytest.raises(UserError, match="at least 2"):
        frechet_distance(tiny, one)
    with pytest.raises(UserError, match="at least 2"):
        batch_diversity(tiny, one)


def test_diversity_zero_for_copies(tiny) -> None:
    g = torch.Generator().manual_seed(0)
    same = torch.rand(1, 3, 32, 32, generator=g).expand(3, -1, -1, -1)
    assert batch_diversity(tiny, same) == pytest.approx(0, abs=1e-6)
    assert batch_diversity(tiny, torch.rand(3, 3, 32, 32, generator=g)) > 0.01


def test_report_rows(tiny) -> None:
    a, b = channel("conv3", 1), channel("conv3", 4)
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    rows = report(tiny, images, [a, b, a])
    assert [r["objective"] for r in rows] == ["conv3:1", "conv3:4", "conv3:1"]
    assert [r["image"] for r in rows] == [0, 1, 2]
    best = float(photo_pool(tiny).values(tiny, a).max())
    values = objective_values(tiny, a, images)
    assert rows[2]["value"] == pytest.approx(float(values[2]), rel=1e-4)
    assert rows[2]["vs_photos"] == pytest.approx(float(values[2]) / best, rel=1e-4)
    assert rows[0]["path"] == ["conv1", "conv2"] and isinstance(rows[0]["sanity_score"], float)
    json.dumps(rows)
    with pytest.raises(UserError, match="2 objectives for 3 images"):
        report(tiny, images, [a, b])


def test_render_reports(tiny) -> None:
    result = render(tiny, channel("conv3", 1), size=32, batch=2, steps=2, progress=False, report=True)
    rows = result.metrics["report"]
    assert len(rows) == 2 and all(r["objective"] == "conv3:1" for r in rows)


def test_cli_report_file(tmp_path, photo_folder, capsys) -> None:
    out, path = tmp_path / "u.png", tmp_path / "r.json"
    code = main(["render", "blocks.6:3", "--size", "32", "--steps", "2", "--batch", "2", "--diversity", "50",
                 "--photos", str(photo_folder), "--report", str(path), "--out", str(out)])
    assert code == 0 and out.exists()
    written = json.loads(path.read_text())
    assert written["command"] == "render" and written["photos"] == str(photo_folder)
    assert [row["objective"] for row in written["images"]] == ["blocks.6:3"] * 2  # not the diversity term
    assert {"objective", "value", "vs_photos", "plausibility_distance", "sanity_score",
            "sanity_of_photos"} <= set(written["images"][0])
    printed = capsys.readouterr()
    assert "sanity" in printed.out and "plausibility" in printed.out and "diversity" in printed.out
    assert "warning: only 5 photos" in printed.err


@pytest.mark.parametrize(("extra", "message"), [
    (["--report", "r.txt"], "--report must be a .json file"),
    (["--photos", "nowhere"], "not found"),
    (["--diversity", "-1"], "diversity"),
    (["--diversity", "10"], "--diversity needs --batch 2"),
    (["--alpha", "--report", "r.json"], "not available with --alpha"),
    (["--no-trust", "--report", "r.json"], "--report needs the trust numbers: drop --no-trust"),
    (["--photos", "bad"], "cannot read photo"),
])
def test_cli_report_errors(extra, message, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "notes.png").write_text("not an image")
    assert main(["render", "blocks.6:3", *extra, "--out", "u.png"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "u.png").exists() and not (tmp_path / "r.json").exists()


def test_cli_no_trust_prints_no_trust_numbers(tmp_path, capsys) -> None:
    out = tmp_path / "u.png"
    assert main(["render", "blocks.2:3", "--size", "32", "--steps", "2", "--no-trust",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.exists() and "sanity" not in printed and "plausibility" not in printed


def test_render_report_is_checked_before_work(tiny, tmp_path) -> None:
    obj = channel("conv3", 1)
    steps = []

    def count(step, loss, images):
        steps.append(step)

    common = dict(steps=2, progress=False, callback=count)
    with pytest.raises(UserError, match="3 objectives for 2 images"):
        render(tiny, obj, size=32, batch=2, report=[obj] * 3, **common)
    with pytest.raises(UserError, match="not found"):
        render(tiny, obj, size=32, report=True, photos=tmp_path / "none", **common)
    with pytest.raises(UserError, match="judges RGB images"):
        render(tiny, obj, make_param("pixel", 32, alpha=True), report=True, **common)
    assert steps == []


def test_images_are_judged_cropped_not_squashed(tiny) -> None:
    """A wide image is judged on its centre square at the model's input size, as photos are."""
    wide = torch.rand(1, 3, 32, 64, generator=torch.Generator().manual_seed(0))
    centre = wide[..., 16:48]
    obj = channel("conv3", 1)
    assert report(tiny, wide, obj)[0]["value"] == pytest.approx(report(tiny, centre, obj)[0]["value"])


def test_no_sanity_score_for_a_unit_photos_do_not_drive() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
    dead = Model(net, input_size=32, name="dead")
    with torch.no_grad():
        dead.module[2].weight.zero_()
        dead.module[2].bias.zero_()
    checked = sanity(dead, channel("2", 0), torch.rand(1, 3, 32, 32))
    assert torch.isnan(checked.scores).all() and math.isnan(checked.held_out)


def test_a_large_photo_folder_is_sampled(tmp_path) -> None:
    from diffparam.io import MOST_PHOTOS, reference_photos

    for i in range(MOST_PHOTOS + 3):
        save_images(torch.full((1, 3, 8, 8), i / 64), tmp_path / f"p{i:03d}.png")
    with pytest.warns(RuntimeWarning, match=f"using {MOST_PHOTOS} of them"):
        photos = reference_photos(tmp_path)
    assert len(photos) == MOST_PHOTOS
    last = (MOST_PHOTOS + 2) / 64
    assert float(photos[0].mean()) == 0 and float(photos[-1].mean()) == pytest.approx(last, abs=0.01)


def test_cli_diversity_needs_a_feature_map(capsys, tmp_path) -> None:
    out = str(tmp_path / "a.png")
    assert main(["render", "logit:1", "--batch", "2", "--diversity", "100", "--out", out]) == 2
    assert "reads a vector (output)" in capsys.readouterr().err


def test_report_gives_the_value_as_made_beside_the_one_at_input_size(tiny) -> None:
    small = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    obj = channel("conv3", 1)
    row = report(tiny, small, obj)[0]
    assert row["value_as_made"] == pytest.approx(float(objective_values(tiny, obj, small)[0]), rel=1e-5)
    assert row["value"] != row["value_as_made"]
