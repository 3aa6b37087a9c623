"""EfficientNet-Lite0: real ImageNet predictions, layer names and shapes, loading weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from torch import nn

from diffparam.errors import UserError
from diffparam.models.efficientnet_lite import (
    INPUT_MEAN,
    INPUT_SIZE,
    INPUT_STD,
    EfficientNetLite0,
    convert_lukemelas_state_dict,
    load_efficientnet_lite0,
)
from diffparam.models.imagenet import imagenet_class_names

# Output channels and spatial size at 224 px of blocks.0 … blocks.15, worked out from the stage
# table (kernel, stride, expand, out, repeats) after the stride-2 stem (224 -> 112).
BLOCK_CHANNELS = [16, 24, 24, 40, 40, 80, 80, 80, 112, 112, 112, 192, 192, 192, 192, 320]
BLOCK_SIZES = [112, 56, 56, 28, 28, 14, 14, 14, 14, 14, 14, 7, 7, 7, 7, 7]
LAYERS = ["stem", *(f"blocks.{i}" for i in range(16)), "head", "pool", "logits"]
CATS = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}


@pytest.fixture(scope="module")
def model() -> EfficientNetLite0:
    return load_efficientnet_lite0()


def photo(array: np.ndarray) -> torch.Tensor:
    """Shorter side to 224, centre crop, normalize: a (1, 3, 224, 224) network input."""
    image = Image.fromarray(np.ascontiguousarray(array))
    scale = INPUT_SIZE / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    left, top = (image.width - INPUT_SIZE) // 2, (image.height - INPUT_SIZE) // 2
    image = image.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE))
    x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255
    mean, std = torch.tensor(INPUT_MEAN), torch.tensor(INPUT_STD)
    return ((x - mean[:, None, None]) / std[:, None, None])[None]


def top_classes(model: nn.Module, x: torch.Tensor, k: int) -> list[str]:
    names = imagenet_class_names()
    with torch.no_grad():
        return [names[i] for i in model(x)[0].topk(k).indices.tolist()]


def test_class_names() -> None:
    names = imagenet_class_names()
    assert len(names) == 1000
    assert names[967] == "espresso" and names[130] == "flamingo"


def test_coffee_is_espresso(model: EfficientNetLite0) -> None:
    assert top_classes(model, photo(data.coffee()), 1) == ["espresso"]


def test_chelsea_is_a_cat(model: EfficientNetLite0) -> None:
    assert CATS & set(top_classes(model, photo(data.chelsea()), 3))


def test_layers_run_once_in_order_with_config_shapes(model: EfficientNetLite0) -> None:
    calls: list[tuple[str, tuple[int, ...]]] = []
    hooks = [
        model.get_submodule(name).register_forward_hook(
            lambda _m, _i, out, name=name: calls.append((name, tuple(out.shape)))
        )
        for name in LAYERS
    ]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, 224, 224))
    finally:
        for hook in hooks:
            hook.remove()
    assert [name for name, _ in calls] == LAYERS
    shapes = dict(calls)
    assert shapes["stem"] == (1, 32, 112, 112)
    for i, (channels, size) in enumerate(zip(BLOCK_CHANNELS, BLOCK_SIZES, strict=True)):
        assert shapes[f"blocks.{i}"] == (1, channels, size, size)
    assert shapes["head"] == (1, 1280, 7, 7)
    assert shapes["pool"] == (1, 1280)
    assert shapes["logits"] == (1, 1000)


def test_block_structure(model: EfficientNetLite0) -> None:
    children = [name for name, _ in model.named_children()]
    assert children == ["stem", "blocks", "head", "pool", "logits"]
    assert model.blocks[0].expand is None
    assert all(isinstance(block.expand, nn.Sequential) for block in model.blocks[1:])
    # Every activation is a ReLU6 module: stem, head, and expand + depthwise of each block.
    assert sum(isinstance(m, nn.ReLU6) for m in model.modules()) == 2 + 1 + 2 * 15
    assert not any(isinstance(m, nn.ReLU6) for m in model.blocks[3].project.modules())


@pytest.mark.parametrize("size", [(97, 130), (128, 128), (33, 64)])
def test_any_input_size(model: EfficientNetLite0, size: tuple[int, int]) -> None:
    with torch.no_grad():
        assert model(torch.rand(1, 3, *size)).shape == (1, 1000)


def test_reload_own_layout(model: EfficientNetLite0, tmp_path) -> None:
    path = tmp_path / "lite0.pth"
    torch.save(model.state_dict(), path)
    reloaded = load_efficientnet_lite0(path)
    assert not reloaded.training
    x = photo(data.coffee())
    with torch.no_grad():
        assert torch.equal(model(x), reloaded(x))


def test_convert_lukemelas_keys() -> None:
    converted = convert_lukemelas_state_dict(
        {"_conv_stem.weight": 1, "_blocks.7._bn2.running_var": 2, "_fc.bias": 3}
    )
    assert converted == {
        "stem.conv.weight": 1,
        "blocks.7.project.bn.running_var": 2,
        "logits.bias": 3,
    }
    with pytest.raises(UserError, match="_se_reduce"):
        convert_lukemelas_state_dict({"_blocks.1._se_reduce.weight": 0})


def test_bad_weight_files_are_user_errors(model: EfficientNetLite0, tmp_path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint\n" * 10)
    partial = tmp_path / "partial.pth"
    sd = model.state_dict()
    torch.save({k: v for k, v in sd.items() if k != "logits.bias"}, partial)
    wrong_shape = tmp_path / "wrong_shape.pth"
    torch.save({**sd, "logits.bias": torch.zeros(10)}, wrong_shape)
    cases = [
        (tmp_path / "missing.pth", "not found"),
        (garbage, "cannot read"),
        (partial, "logits.bias"),
        (wrong_shape, "shape"),
    ]
    for path, message in cases:
        with pytest.raises(UserError, match=message) as info:
            load_efficientnet_lite0(path)
        assert "\n" not in str(info.value)
