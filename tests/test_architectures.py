"""Every architecture: token, channels-last, dict-returning, grey and odd-stride models render, with
their layouts, input sizes and transformer units read off the model (tests/tiny_models.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import DictNet, GreyNet, SkipNet, TinySwin, TinyViT

from diffparam import transforms as T
from diffparam.errors import UserError
from diffparam.models.base import OUTPUT, Model
from diffparam.models.layout import find_prefix, token_grid, tokens_key
from diffparam.objectives import (
    INPUT,
    Activations,
    channel,
    content,
    content_target,
    diversity,
    layer,
    neuron,
    parse,
    style,
    style_targets,
)
from diffparam.recipes.interpolate import interpolation_objective
from diffparam.render import render

STEPS = 48
SMALL = (T.pad(2), T.jitter(2), T.random_scale((0.95, 1.05)), T.jitter(1))
"""Lucid's transforms at the scale of these 32 px images (they make 36 px: sizes the models refuse)."""


def _model(cls, **kw) -> Model:
    torch.manual_seed(0)
    return Model(cls(), name=cls.__name__, **kw)


@pytest.fixture
def vit() -> Model:
    return _model(TinyViT)


@pytest.fixture
def swin() -> Model:
    return _model(TinySwin, input_size=64)


def _value(model: Model, objective, images: torch.Tensor) -> float:
    obj = parse(objective, model) if isinstance(objective, str) else objective
    with torch.no_grad():
        acts = Activations(model.activations(images, obj.layers), model)
    acts[INPUT] = images
    return float(obj(acts).mean())


def _gain(model: Model, objective, size: int, **options) -> tuple[float, float]:
    """(the best value of 16 random images, the rendered image's value), both seen at the model's size."""
    options.setdefault("transforms", SMALL)
    result = render(model, objective, steps=STEPS, size=size, device="cpu", progress=False, seed=0,
                    **options)
    noise = torch.rand((16, *result.images.shape[1:]), generator=torch.Generator().manual_seed(1))
    best = max(_value(model, objective, image[None]) for image in noise)
    return best, _value(model, objective, result.images)


# -- layouts ---------------------------------------------------------------------------------------
def test_vit_lists_token_layers_with_class_token_and_grid(vit: Model) -> None:
    infos = {info.name: info for info in vit.layers()}
    assert vit.geometry.fixed and vit.geometry.size == (32, 32)
    block = infos["blocks.1"]
    assert (block.layout, block.prefix, block.grid, block.channels) == ("tokens", 1, (4, 4), 24)
    assert infos["blocks.0.mlp.act"].channels == 48, "the MLP's hidden units are a layer"
    assert infos["blocks.0.attn"].grid == (4, 4), "a tuple-returning attention module is a layer"
    assert block.describe() == "tokens 1+4x4"


def test_registers_count_as_prefix_tokens() -> None:
    model = _model(TinyViT, input_size=32)
    model.module = TinyViT(registers=4)
    model._index_modules()
    assert model.layer_info("blocks.0").prefix == 5


def test_swin_like_model_is_channels_last_and_needs_multiples_of_32(swin: Model) -> None:
    assert swin.geometry.multiple == 32 and not swin.geometry.fixed
    info = swin.layer_info("layers.0")
    assert (info.layout, info.channels, info.grid) == ("hwc", 16, (16, 16))
    names = {i.name for i in swin.layers()}
    assert "layers.0.block.attn" not in names, "windows folded into the batch are not a layer"


def test_token_grid_and_prefix_arithmetic() -> None:
    assert token_grid(196, 224, 224) == (14, 14)
    assert token_grid(14 * 18, 224, 288) == (14, 18)
    assert token_grid(197, 224, 224) is None
    assert find_prefix([(261, 224, 224)], None) == (5, (16, 16))  # class token and 4 registers
    assert find_prefix([(198, 224, 224)], 2) == (2, (14, 14))  # DeiT's distillation token, from the model


def test_activations_put_tokens_on_the_patch_grid(vit: Model) -> None:
    x = torch.rand(2, 3, 32, 32)
    acts = vit.activations(x, ["blocks.1"])
    grid, tokens = acts["blocks.1"], acts[tokens_key("blocks.1")]
    assert grid.shape == (2, 24, 4, 4) and tokens.shape == (2, 24, 17)
    # patch (x=3, y=1) is token 1 + 1*4 + 3
    assert torch.equal(grid[:, :, 1, 3], tokens[:, :, 1 + 4 + 3])


def test_channels_last_maps_are_seen_channels_first(swin: Model) -> None:
    seen = []
    swin.module.layers[0].register_forward_hook(lambda m, i, o: seen.append(o))
    acts = swin.activations(torch.rand(1, 3, 64, 64), ["layers.0"])
    assert torch.equal(acts["layers.0"], seen[-1].permute(0, 3, 1, 2))


# -- input geometry --------------------------------------------------------------------------------
def test_fixed_size_model_gets_its_size_after_transforms(vit: Model) -> None:
    before, after = _gain(vit, "blocks.1:3", 40)  # pad, jitter and scale change the size; 40 px too
    assert after > before


def test_windowed_model_gets_multiples_of_its_windows(swin: Model) -> None:
    before, after = _gain(swin, "layers.2:5", 64)
    assert after > before


def test_odd_stride_skip_connections_get_a_multiple_of_their_stride() -> None:
    model = _model(SkipNet, input_size=32)
    assert model.geometry.multiple == 4
    assert model.fitted(torch.rand(1, 3, 30, 37)).shape[-2:] == (32, 36)
    before, after = _gain(model, "fuse:2", 30)
    assert after > before


def test_grey_model_gets_a_one_channel_image(tmp_path) -> None:
    model = _model(GreyNet, input_size=32)
    assert model.geometry.channels == 1
    result = render(model, "conv2:4", steps=STEPS, size=32, device="cpu", progress=False, transforms=SMALL)
    assert result.images.shape == (1, 1, 32, 32)
    assert _value(model, "conv2:4", result.images) > _value(model, "conv2:4", torch.full((1, 1, 32, 32), 0.5))
    written = result.save(tmp_path / "grey.png")
    assert written and (tmp_path / "grey.png").stat().st_size > 0
    with pytest.raises(UserError, match="takes grey images"):
        model.activations(torch.rand(1, 3, 32, 32), ["conv2"])


def test_rgba_param_is_refused_by_a_grey_model() -> None:
    from diffparam.param import make_param

    model = _model(GreyNet, input_size=32)
    with pytest.raises(UserError, match="takes 1 channels"):
        render(model, "conv2:4", param=make_param("fourier", 32, alpha=True), steps=1, device="cpu",
               progress=False)


def test_model_returning_a_dict_renders_its_logits_or_the_output_named() -> None:
    model = _model(DictNet, input_size=32)
    assert model.channels(OUTPUT) == 4
    before, after = _gain(model, "logit:2", 32)
    assert after > before
    features = _model(DictNet, input_size=32, output="features")
    assert features.channels(OUTPUT) == 12
    with pytest.raises(UserError, match="no tensor 'scores'"):
        _model(DictNet, input_size=32, output="scores").layers()


def test_a_model_that_runs_at_no_size_asks_for_its_size() -> None:
    with pytest.raises(UserError, match=r"does not run on a 3-channel 224x224 image .*input_size"):
        Model(TinySwin(window=5), name="swin").layers()  # 224 px: 56 positions, not whole windows


# -- transformer units -----------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["blocks.1:3@cls", "blocks.1:3@token=6", "blocks.0.mlp.act:7",
                                  "blocks.1:3@2,1", "blocks.1"])
def test_transformer_units_render(vit: Model, spec: str) -> None:
    before, after = _gain(vit, spec, 32)
    assert after > before


def test_class_token_and_patch_mean_are_different_units(vit: Model) -> None:
    x = torch.rand(1, 3, 32, 32)
    cls_value, mean_value = _value(vit, "blocks.1:3@cls", x), _value(vit, "blocks.1:3", x)
    tokens = vit.activations(x, ["blocks.1"])[tokens_key("blocks.1")]
    assert cls_value == pytest.approx(float(tokens[0, 3, 0]))
    assert mean_value == pytest.approx(float(tokens[0, 3, 1:].mean()), abs=1e-6)


def test_direction_from_a_file_row(vit: Model, tmp_path) -> None:
    dictionary = np.random.default_rng(0).normal(size=(6, 24)).astype(np.float32)
    np.save(tmp_path / "sae.npy", dictionary)
    torch.save(torch.from_numpy(dictionary[2]), tmp_path / "one.pt")
    by_row = parse(f"blocks.1:direction={tmp_path / 'sae.npy'}[2]", vit)
    by_file = parse(f"blocks.1:direction={tmp_path / 'one.pt'}@cls", vit)
    x = torch.rand(1, 3, 32, 32)
    tokens = vit.activations(x, ["blocks.1"])[tokens_key("blocks.1")][0]
    unit = torch.from_numpy(dictionary[2] / np.linalg.norm(dictionary[2]))
    assert _value(vit, by_row, x) == pytest.approx(float((unit @ tokens[:, 1:]).mean()), abs=1e-5)
    assert _value(vit, by_file, x) == pytest.approx(float(unit @ tokens[:, 0]), abs=1e-5)
    before, after = _gain(vit, by_row, 32)
    assert after > before


@pytest.mark.parametrize(("spec", "message"), [
    ("blocks.1:3@token=17", r"17 tokens \(1 before the patch grid\)"),
    ("patch_embed:3@cls", "has no tokens"),
    ("blocks.1:direction=missing.npy", "no such file"),
    ("blocks.1:direction={dir}/sae.npy", r"pick a row \(FILE\[ROW\], 0..5\)"),
    ("blocks.1:direction={dir}/sae.npy[9]", "row 9 is out of range"),
    ("blocks.1:direction={dir}/short.npy", "direction has 5 values but blocks.1 has 24 channels"),
    ("blocks.1:direction={dir}/sae.npy[1]@2,2", "not at a position"),
    ("blocks.1:direction={dir}/sae.npy[-1]", r"must be a whole number 0 or more: FILE\[ROW\]"),
    ("blocks.1:direction={dir}/sae.npy[]", r"must be a whole number 0 or more"),
])
def test_transformer_unit_errors(vit: Model, tmp_path, spec: str, message: str) -> None:
    np.save(tmp_path / "sae.npy", np.ones((6, 24), np.float32))
    np.save(tmp_path / "short.npy", np.ones(5, np.float32))
    with pytest.raises(UserError, match=message):
        parse(spec.format(dir=tmp_path), vit)


# -- every objective on every layout ---------------------------------------------------------------
@pytest.mark.parametrize("kind", ["vit", "swin"])
def test_every_objective_family_runs_on_tokens_and_channels_last(kind: str) -> None:
    model = _model(TinyViT) if kind == "vit" else _model(TinySwin, input_size=64)
    name, size = ("blocks.1", 32) if kind == "vit" else ("layers.2", 64)
    photo = torch.rand(1, 3, size, size)
    objectives = {
        "channel": channel(name, 1),
        "neuron": neuron(name, 1, 1, 1),
        "layer": layer(name),
        "diversity": channel(name, 1) + diversity(name),
        "style": style(style_targets(model, photo, [name])),
        "content": content(name, content_target(model, photo, name)),
        "interpolation": interpolation_objective(model, f"{name}:1", f"{name}:2"),
    }
    for label, objective in objectives.items():
        batch = 3 if label in ("diversity", "interpolation") else 1
        result = render(model, objective, steps=4, size=size, batch=batch, device="cpu", progress=False,
                        transforms=SMALL)
        assert torch.isfinite(result.images).all() and len(result.history) == 4, label
        assert result.history[-1] < result.history[0], f"{label} did not improve"


def test_four_channel_model_gets_four_channels_not_rgba(tmp_path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.ReLU())
    model = Model(net, input_size=24, name="rgbn")
    result = render(model, "1:2", steps=8, size=24, device="cpu", progress=False, transforms=SMALL)
    assert result.images.shape == (1, 4, 24, 24)
    assert model.geometry.describe() == "4-channel images of any size (native 24x24)"


def test_multispectral_images_save_as_channels_side_by_side(tmp_path) -> None:
    from PIL import Image

    from diffparam.io import save_image

    save_image(torch.rand(5, 8, 10), tmp_path / "bands.png")
    with Image.open(tmp_path / "bands.png") as im:
        assert im.mode == "L" and im.size == (5 * 10 + 6 * 2, 8 + 4)


class _Encoder(torch.nn.Module):
    """torchvision's ViT keeps its blocks inside one `encoder` module."""

    def __init__(self) -> None:
        super().__init__()
        from tiny_models import Block

        self.layers = torch.nn.Sequential(*(Block(24, 2) for _ in range(3)))

    def forward(self, x):
        return self.layers(x)


def test_building_blocks_of_a_vit_are_its_transformer_blocks(vit: Model) -> None:
    from diffparam.models.blocks import block_layers

    assert block_layers(vit) == ["blocks.0", "blocks.1"]
    vit.module.blocks = _Encoder()
    vit._index_modules()
    assert block_layers(vit) == ["blocks.layers.0", "blocks.layers.1", "blocks.layers.2"]


def test_random_weights_are_for_torchvision_and_timm_names() -> None:
    from diffparam.models.registry import load_model

    with pytest.raises(UserError, match="random applies to torchvision and timm"):
        load_model("efficientnet_lite0", weights="random")
    with pytest.raises(UserError, match="random applies to torchvision and timm"):
        load_model(TinyViT(), weights="random")


@pytest.mark.parametrize(("content", "message"), [
    ("matrix.txt", r"cannot read \S+matrix.txt: give a .npy, .pt or .pth file$"),
    ("dict.pt", "holds a dict, not one tensor"),
    ("broken.npy", r"broken.npy: not a NumPy array file$"),
    ("cube.npy", r"shape \(2, 3, 4\): a direction is a vector"),
])
def test_direction_files_that_are_not_vectors(vit: Model, tmp_path, content: str, message: str) -> None:
    (tmp_path / "matrix.txt").write_text("1 2 3")
    torch.save({"w": torch.ones(3)}, tmp_path / "dict.pt")
    (tmp_path / "broken.npy").write_bytes(b"not numpy")
    np.save(tmp_path / "cube.npy", np.ones((2, 3, 4)))
    with pytest.raises(UserError, match=message):
        parse(f"blocks.1:direction={tmp_path / content}", vit)


def test_embedded_models_declared_geometry_is_what_a_probe_finds(lite0: Model) -> None:
    assert Model(lite0.module, name="probed").geometry == lite0.geometry


def test_attention_heads_are_units() -> None:
    torch.manual_seed(0)
    model = Model(TinyViT(timm_attention=True), name="vit")
    queries = model.layer_info("blocks.1.attn.q_norm")  # (B, 2 heads, 17 tokens, 12): one channel a head
    assert (queries.layout, queries.channels, queries.prefix) == ("heads", 2, 1)
    assert queries.describe() == "heads x 17 tokens x 12"
    x = torch.rand(1, 3, 32, 32)
    outputs = model.activations(x, ["blocks.1.attn.norm"])["blocks.1.attn.norm"]  # heads side by side
    assert _value(model, "blocks.1.attn.norm:head=1/2", x) == pytest.approx(
        float((outputs[:, 12:] ** 2).mean()), rel=1e-5)
    before, after = _gain(model, "blocks.1.attn.norm:head=1/2", 32)
    assert after > before
    with pytest.raises(UserError, match="do not split into 5 heads"):
        parse("blocks.1.attn.norm:head=1/5", model)
    with pytest.raises(UserError, match=r"head 2 is out of range 0..1"):
        parse("blocks.1.attn.norm:head=2/2", model)


def test_sequence_first_tokens_and_learned_queries() -> None:
    from tiny_models import SequenceFirstViT

    torch.manual_seed(0)
    model = Model(SequenceFirstViT(), input_size=32, name="clip-like")
    block = model.layer_info("blocks.layers.1")
    assert (block.describe(), block.sequence_first) == ("tokens 1+4x4", True)
    assert model.layer_info("decoder").describe() == "tokens 1x5", "5 queries whatever the image: no grid"
    acts = model.activations(torch.rand(2, 3, 20, 60), ["blocks.layers.1"])
    assert acts["blocks.layers.1"].shape == (2, 16, 2, 7), "20x60 px in 8 px patches, rounded down: 2x7"
    assert acts[tokens_key("blocks.layers.1")].shape == (2, 16, 15)
    before, after = _gain(model, "blocks.layers.1:3@1,1", 32)
    assert after > before


def test_channels_last_with_a_non_square_native_size() -> None:
    torch.manual_seed(0)

    class Wide(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 8, 4, 4)
            self.mix = torch.nn.Linear(8, 16)

        def forward(self, x):
            if tuple(x.shape[-2:]) != (32, 64):
                raise ValueError("32x64 only")
            return self.mix(self.stem(x).permute(0, 2, 3, 1))  # (B, 8, 16, 16): 16 channels, 8x16 grid

    model = Model(Wide(), input_size=(32, 64), name="wide")
    assert model.layer_info("mix").describe() == "hwc 8x16" and model.channels("mix") == 16


def test_direction_file_names_may_hold_at_signs_and_brackets(vit: Model, tmp_path) -> None:
    folder = tmp_path / "run@2[v1]"
    folder.mkdir()
    np.save(folder / "feat@cls.npy", np.ones((3, 24), np.float32))
    spec = f"blocks.1:direction={folder / 'feat@cls.npy'}[2]@cls"
    assert parse(spec, vit).name == spec, "a report names the file and row"


@pytest.mark.parametrize("kind", ["vit", "swin"])
def test_circuits_connect_channels_of_token_and_channels_last_layers(kind: str) -> None:
    from diffparam.atlas.circuits import circuit, connections

    model = _model(TinyViT) if kind == "vit" else _model(TinySwin, input_size=64)
    layer, channels = ("blocks.1", 24) if kind == "vit" else ("layers.2", 32)
    found = connections(model, layer)
    assert found is not None and found.weights.shape[0] == channels
    assert found.weights.shape[1] == model.channels(found.source)
    links = circuit(model, layer, channels - 1)
    sources = model.channels(found.source)
    assert links["excite"] and all(0 <= link["channel"] < sources for link in links["excite"])


def test_report_on_a_grey_model_is_refused_before_rendering() -> None:
    model = _model(GreyNet, input_size=32)
    with pytest.raises(UserError, match="compares with natural RGB photos: not available for model GreyNet"):
        render(model, "conv2:4", steps=1, size=32, device="cpu", progress=False, report=True)


def test_memory_estimate_counts_the_pixels_a_fixed_size_model_sees(vit: Model) -> None:
    from diffparam import memory
    from diffparam.param import FourierImage

    small = memory.render_bytes(vit, FourierImage(32), 32 * 32)
    assert small is not None
    with pytest.MonkeyPatch.context() as patch:
        seen = []
        patch.setattr(memory, "render_bytes", lambda m, p, pixels, bf16=False: seen.append(pixels) or 1)
        memory.check_fits(vit, lambda: FourierImage(512), torch.device("cpu"))
    assert seen == [32 * 32], "a 32 px ViT sees 32x32 px, however large the image rendered"


def test_direction_paths_expand_the_home_folder(vit: Model, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    np.save(tmp_path / "v.npy", np.ones(24, np.float32))
    assert parse("blocks.1:direction=~/v.npy", vit).name == "blocks.1:direction=~/v.npy"
