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


STAGE = 3
"""A container of this many building blocks (each of two or more convolutions or linear layers) is a
stage: its blocks are listed, not the module holding it (torchvision's ViT `encoder`, timm's Swin
stages); a block's own convolution-norm-activation units are not blocks of a stage."""


def block_layers(model: Model) -> list[str]:
    """What `layers="all"` means: the model's building blocks, in order.

    The outermost modules of a class defined outside torch that hold a convolution or a linear layer
    and output a feature map or tokens, looking inside a module that holds a stage (a Sequential or
    ModuleList of `STAGE` or more such blocks): `blocks.0` … `blocks.15` for the embedded model,
    `layer1.0` … `layer4.2` for a torchvision ResNet-50, `conv1` … `inception5b` for GoogLeNet,
    `encoder.layers.encoder_layer_0` … for torchvision's ViT. A model without such modules (a plain
    stack of torch layers) gets each of its Conv2d layers instead.
    """
    maps = {info.name for info in model.layers() if len(info.shape) == 3}

    def candidate(name: str, module: nn.Module) -> bool:
        return name in maps and _is_block(module)

    def rich(name: str, module: nn.Module) -> bool:
        return candidate(name, module) and sum(
            isinstance(m, nn.Conv2d | nn.Linear) for m in module.modules()) >= 2

    def holds_stage(name: str, module: nn.Module) -> bool:
        return any(isinstance(sub, nn.Sequential | nn.ModuleList)
                   and sum(rich(f"{inner}.{n}", c) for n, c in sub.named_children()) >= STAGE
                   for inner, sub in module.named_modules(prefix=name))

    blocks: list[str] = []

    def visit(prefix: str, module: nn.Module) -> None:
        for n, child in module.named_children():
            full = prefix + n
            if candidate(full, child) and not holds_stage(full, child):
                blocks.append(full)
            else:
                visit(full + ".", child)

    visit("", model.module)
    if not blocks:
        blocks = [name for name, module in model.module.named_modules()
                  if name in maps and isinstance(module, nn.Conv2d)]
    if not blocks:
        raise UserError(f"model {model.name} has no convolutional layers: name the layers to render")
    return blocks
