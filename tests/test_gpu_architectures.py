"""timm and torchvision transformers render with no per-model flag (GPU machine only: CUDA, timm and
torchvision; random weights, since no pretrained ones are reachable)."""

from __future__ import annotations

import pytest
import torch

from diffparam.models.registry import RANDOM, load_model
from diffparam.render import render

MODELS = [
    # (model, objective, layout of its layer)
    ("timm:vit_small_patch16_224", "blocks.6:5", "tokens 1+14x14"),
    ("timm:vit_small_patch16_224", "blocks.6.mlp.act:100@cls", "tokens 1+14x14"),
    ("timm:deit_small_distilled_patch16_224", "blocks.5:7@token=1", "tokens 2+14x14"),
    ("timm:swin_tiny_patch4_window7_224", "layers.2:9", "hwc 14x14"),
    ("timm:maxvit_tiny_tf_224", "stages.2:9", "chw 14x14"),
    ("torchvision:vit_b_16", "encoder.layers.encoder_layer_6:3@4,5", "tokens 1+14x14"),
    ("torchvision:swin_t", "features.5:11", "hwc 14x14"),
]


@pytest.mark.gpu
@pytest.mark.parametrize(("name", "objective", "layout"), MODELS)
def test_transformers_render_on_gpu(name: str, objective: str, layout: str) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    pytest.importorskip("timm")
    pytest.importorskip("torchvision")
    model = load_model(name, weights=RANDOM)
    layer = objective.split(":")[0]
    assert model.layer_info(layer).describe() == layout
    result = render(model, objective, steps=48, device="cuda", progress=False)
    assert torch.isfinite(result.images).all()
    assert result.history[-1] < result.history[0] - 0.05 * abs(result.history[0])
