"""The atlas analysis (circuits, patches, groups, names) and the page built from a small real atlas.

The fake atlas is real renders of a few channels of the tiny test net at 32 px, written with the
manifest layout the atlas renderer uses; some circuit inputs are rendered, some are not.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import spearmanr

from diffparam import objectives as O
from diffparam.atlas import circuits as C
from diffparam.atlas import grouping as G
from diffparam.atlas import naming as N
from diffparam.atlas import patches as P
from diffparam.atlas.page import build_page
from diffparam.errors import UserError
from diffparam.evaluate import objective_values, photo_reference
from diffparam.io import save_image
from diffparam.models.base import Model
from diffparam.render import render

LAYER = "conv2"
CHANNELS = list(range(8))


def fake_atlas(model: Model, folder: Path, layer: str = LAYER, channels: list[int] = CHANNELS,
               size: int = 32, steps: int = 8) -> dict:
    """Render `channels` of `layer` and the strongest excitatory input of each; return the manifest.

    The other circuit inputs are left unrendered, so the page must show some links as text.
    """
    units: dict[str, dict] = {}
    before = C.previous_layer(model, layer)
    inputs = sorted({C.circuit(model, layer, c)["excite"][0]["channel"] for c in channels})
    for name, cs, role in [(layer, channels, "unit"), (before, inputs, "circuit")]:
        result = render(model, O.channels(name, cs), size=size, batch=len(cs), steps=steps,
                        device="cpu", progress=False)
        for i, c in enumerate(cs):
            image = f"{name}/{c}.png"
            save_image(result.images[i], folder / image)
            value = objective_values(model, O.channel(name, c), result.images[i:i + 1])[0]
            units[f"{name}:{c}"] = {
                "layer": name, "channel": c, "image": image, "seed": 0, "role": role,
                "activation": float(value), "rank": 0, "seconds": result.seconds / len(cs),
                "photo_activation": photo_reference(model, O.channel(name, c)),
            }
    order = {info.name: i for i, info in enumerate(model.layers())}
    return {"version": 1, "model": model.name,
            "options": {"size": size, "steps": steps, "lr": 0.05, "param": "fourier", "seed": 0,
                        "batch": 8, "precision": "fp32"},
            "layers": {before: {"channels": model.channels(before), "index": order[before],
                                "role": "circuit"},
                       layer: {"channels": model.channels(layer), "index": order[layer], "role": "unit"}},
            "units": units, "timings": {}}


def page_json(page: Path) -> dict:
    """The data embedded in the page, read back the way the page's script reads it."""
    text = page.read_text(encoding="utf-8")
    match = re.search(r'<script id="atlas-data" type="application/json">(.*?)</script>', text, re.S)
    assert match is not None
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Model, dict]:
    from conftest import TinyNet

    torch.manual_seed(0)
    model = Model(TinyNet(), input_size=32, name="tiny")
    folder = tmp_path_factory.mktemp("atlas")
    manifest = fake_atlas(model, folder)
    build_page(folder, model, manifest, progress=False, crops=16)
    return folder, model, manifest


# -- circuits ----------------------------------------------------------------------------------------
def test_previous_layer(tiny: Model, lite0: Model) -> None:
    assert [C.previous_layer(tiny, n) for n in ("conv1", "conv2", "conv3", "fc", "conv2.1")] == \
        [None, "conv1", "conv2", "pool", "conv2.0"]
    assert [C.previous_layer(lite0, n) for n in ("stem", "blocks.0", "blocks.3", "head", "logits")] == \
        [None, "stem", "blocks.2", "blocks.15", "pool"]
    with pytest.raises(UserError, match="unknown layer 'conv9'"):
        C.previous_layer(tiny, "conv9")


def test_circuit_of_one_conv_is_its_summed_weights(tiny: Model) -> None:
    found = C.circuit(tiny, "conv2", 5, k=3)
    summed = tiny.module.conv2[0].weight.detach().sum((2, 3))[5]
    assert found["method"] == "conv" and found["source"] == "conv1"
    assert [link["channel"] for link in found["excite"]] == summed.topk(3).indices.tolist()
    assert [link["channel"] for link in found["inhibit"]] == (-summed).topk(3).indices.tolist()
    assert all(link["weight"] > 0 for link in found["excite"])
    assert found["inhibit"][0]["weight"] == pytest.approx(float(summed.min()))
    assert C.circuit(tiny, "conv1", 0) == {"layer": "conv1", "source": None, "method": None,
                                           "excite": [], "inhibit": []}
    with pytest.raises(UserError, match="channel 16 is out of range 0..15"):
        C.circuit(tiny, "conv2", 16)


def test_circuit_across_a_nonlinearity_is_measured(tiny: Model) -> None:
    """conv2.0 → conv2.1 is a ReLU6, no convolution: the measured gradient is diagonal."""
    found = C.connections(tiny, "conv2.1")
    assert found is not None and found.method == "gradient" and found.source == "conv2.0"
    off = found.weights - torch.diag(found.weights.diagonal())
    assert float(off.abs().max()) == 0.0
    assert float(found.weights.diagonal().max()) > 0


def test_mbconv_circuit_matches_measured_gradients(lite0: Model) -> None:
    """The gated weight path through an MBConv block ranks inputs like gradients on other photos."""
    found = C.connections(lite0, "blocks.3")
    assert found is not None and found.method == "mbconv" and found.weights.shape == (40, 24)
    held_out = P.photo_set(160, crops=4, names=("hubble_deep_field", "immunohistochemistry", "coins")).images
    measured, _ = C.expected_gradient(lite0, "blocks.3", "blocks.2", held_out)
    rho = [spearmanr(found.weights[o], measured[o]).statistic for o in range(40)]
    assert float(np.median(rho)) > 0.8, rho


# -- photos and patches -------------------------------------------------------------------------------
def test_top_patches_are_the_strongest_distinct_views(tiny: Model) -> None:
    photos = P.photo_set(32, crops=24, seed=1)
    assert photos.images.shape == (len(P.PATCH_PHOTOS) + 24, 3, 32, 32)
    stats = P.photo_statistics(tiny, ["conv2"], photos, batch=10)["conv2"]
    assert stats.peak.shape == (len(photos.images), 16) and stats.grid == (16, 16)
    assert torch.allclose(stats.correlation.diagonal(), torch.ones(16), atol=1e-4)
    with torch.no_grad():
        acts = tiny.activations(photos.images, ["conv2"])["conv2"]
    patches = P.top_patches(stats, photos, 3, k=4, field=8, thumb=24)
    values = [p["activation"] for p in patches]
    assert values[0] == pytest.approx(float(acts[:, 3].max()), rel=1e-5)
    assert values == sorted(values, reverse=True) and len(patches) == 4
    assert all(p["image"].shape == (3, 24, 24) for p in patches)


# -- groups and names ---------------------------------------------------------------------------------
def test_group_channels_recovers_planted_groups() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 32, generator=gen)
    truth = np.repeat([0, 1, 2], [7, 5, 4])
    feats = centres[truth] + 0.15 * torch.randn(16, 32, generator=gen)
    grouping = G.group_channels(feats)
    assert _same_partition(grouping.labels, truth)
    assert grouping.silhouette > 0.7
    assert sorted(len(g) for g in grouping.groups) == [4, 5, 7] and len(grouping.groups[0]) == 7
    noise = G.group_channels(torch.randn(16, 32, generator=gen))
    assert noise.silhouette < 0.2


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two labelings put the same items together (whatever the labels' numbers)."""
    return bool(((a[:, None] == a[None, :]) == (b[:, None] == b[None, :])).all())


def _stripes(angle: float, colours: tuple[tuple[float, ...], tuple[float, ...]]) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
    phase = torch.cos(torch.tensor(angle).deg2rad()) * y + torch.sin(torch.tensor(angle).deg2rad()) * x
    on = (torch.sin(phase * 0.7) > 0).float()
    a, b = torch.tensor(colours[0])[:, None, None], torch.tensor(colours[1])[:, None, None]
    return on * a + (1 - on) * b


def test_describe_image_names_colour_and_orientation() -> None:
    gray = _stripes(90, ((0.9,) * 3, (0.1,) * 3))  # phase along x: vertical lines
    red_blue = _stripes(0, ((0.9, 0.1, 0.1), (0.1, 0.2, 0.9)))  # phase along y: horizontal lines
    assert N.describe_image(gray)["words"] == ["black & white", "vertical lines"]
    words = N.describe_image(red_blue)["words"]
    assert words[1] == "horizontal lines" and set(words[0].split("–")) == {"red", "blue"}
    assert N.describe_image(_stripes(45, ((0.9,) * 3, (0.1,) * 3)))["words"][1] == "diagonal / lines"
    flat = torch.full((3, 48, 48), 0.5)
    assert N.describe_image(flat)["words"] == ["black & white"]
    name, carry = N.name_group([N.describe_image(gray)] * 3 + [N.describe_image(red_blue)])
    assert name == "black & white, vertical lines" and carry == 0.75
    judged = N.judge_groups(np.array([0, 0, 1, 1]), [N.describe_image(i) for i in
                                                     (gray, gray, red_blue, red_blue)], rounds=50)
    assert judged["colour_within"] == pytest.approx(0.0) and judged["colour_random"] > 10
    assert judged["angle_within"] == pytest.approx(0.0, abs=1) and judged["angle_random"] > 30


# -- the page -----------------------------------------------------------------------------------------
def test_page_data_and_files(built) -> None:
    folder, model, manifest = built
    data = page_json(folder / "index.html")
    assert [s["name"] for s in data["layers"]] == [LAYER]  # circuit-only layers get no section
    section = data["layers"][0]
    grouped = sorted(c for g in section["groups"] for c in g["channels"])
    assert grouped == CHANNELS == section["shown"]
    assert len(section["groups"]) >= 2 and section["quality"]["silhouette"] > 0
    assert section["source"] == "conv1" and "summed over its kernel" in section["method"]
    assert set(data["units"]) == set(manifest["units"])
    texts = images = 0
    for key, unit in data["units"].items():
        assert (folder / unit["image"]).is_file()
        assert len(unit["patches"]) == 4, key
        for patch in unit["patches"]:
            with Image.open(folder / patch["image"]) as im:
                assert im.size == (64, 64)
        if unit["layer"] != LAYER:
            continue
        assert unit["ratio"] == pytest.approx(unit["activation"] / unit["photo_activation"])
        expected = C.circuit(model, LAYER, unit["channel"])
        assert [link["channel"] for link in unit["circuit"]["excite"]] == \
            [link["channel"] for link in expected["excite"]]
        for link in unit["circuit"]["excite"] + unit["circuit"]["inhibit"]:
            rendered = link["key"] in manifest["units"]
            assert (link["image"] is not None) == rendered
            texts += not rendered
            images += rendered
    assert texts > 0 and images > 0
    html = (folder / "index.html").read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html and "fetch(" not in html
    assert not [p for p in folder.rglob(".*") if p.is_file()]  # no temporary files left


def test_build_page_refuses_a_wrong_manifest(built, tmp_path) -> None:
    folder, model, manifest = built
    with pytest.raises(UserError, match="atlas of model efficientnet_lite0, not tiny"):
        build_page(folder, model, {**manifest, "model": "efficientnet_lite0"}, progress=False)
    units = dict(manifest["units"])
    units["conv2:9"] = {**units["conv2:0"], "channel": 9, "image": "conv2/9.png"}
    with pytest.raises(UserError, match="conv2/9.png is listed in the manifest but missing"):
        build_page(folder, model, {**manifest, "units": units}, progress=False)
    with pytest.raises(UserError, match="not an atlas manifest"):
        build_page(tmp_path, model, {"units": []}, progress=False)
