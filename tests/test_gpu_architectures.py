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
    assert result.history[-1] < result.history[0]


_FAILING_KERNEL = """
import torch
from diffparam.errors import ModelError
from diffparam.render import render

class OutOfRange(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.register_buffer("index", torch.tensor([10 ** 7]))

    def forward(self, x):
        y = self.conv(x)
        return y.flatten(1)[:, self.index] if x.is_cuda and x.shape[-1] == 40 else y.mean((2, 3))

try:
    render(OutOfRange(), "logit:0", size=32, steps=8, device="cuda", progress=False, transforms=None,
           input_size=40)
except ModelError as exc:
    print("ModelError:", exc)
"""


@pytest.mark.gpu
def test_device_side_assert_is_a_model_error_naming_the_model(tmp_path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    import subprocess
    import sys

    script = tmp_path / "failing.py"
    script.write_text(_FAILING_KERNEL)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert "ModelError: model OutOfRange failed on the GPU" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert "CUDA_LAUNCH_BLOCKING=1" in proc.stdout
