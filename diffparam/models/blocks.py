"""A model's building blocks: the layers an atlas of "all" renders and the trust numbers read."""

from __future__ import annotations

from torch import nn

from diffparam.errors import UserError
from diffparam.models.base import Model


def _is_block(module: nn.Module) -> bool:
    """A module of a class defined outside torch that holds a convolution or a linear layer (a
    transformer block): a network's building block."""
    if type(module).__module__.startswith("torch.") or isinstance(module, nn.Conv2d | nn.Linear):
        return False
    return any(isinstance(m, nn.Conv2d | nn.Linear) for m in module.modules())


def block_layers(model: Model) -> list[str]:
    """What `layers="all"` means: the model's building blocks, in order.

    The outermost modules of a class defined outside torch that hold a convolution or a linear layer
    and output a feature map or tokens: `blocks.0` … `blocks.15` for the embedded model, `layer1.0` …
    `layer4.2` for a torchvision ResNet-50, `conv1` … `inception5b` for GoogLeNet, `patch_embed`,
    `blocks.0` … `blocks.11` for a timm ViT. A model without such modules (a plain stack of torch
    layers) gets each of its Conv2d layers instead.
    """
    maps = {info.name for info in model.layers() if len(info.shape) == 3}
    modules = [(name, m) for name, m in model.module.named_modules() if name and name in maps]
    blocks: list[str] = []
    for name, module in modules:
        if _is_block(module) and not any(name.startswith(b + ".") for b in blocks):
            blocks.append(name)
    if not blocks:
        blocks = [name for name, module in modules if isinstance(module, nn.Conv2d)]
    if not blocks:
        raise UserError(f"model {model.name} has no convolutional layers: name the layers to render")
    return blocks
