"""The Model wrapper: layer listing, checks with close matches, hooks, early stop, ReLU redirect."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from diffparam.errors import UserError
from diffparam.models.base import OUTPUT, Model
from diffparam.models.registry import load_model


def test_layers_lists_channels(tiny: Model) -> None:
    by_name = {info.name: info for info in tiny.layers()}
    assert by_name["conv1"].channels == 8
    assert by_name["conv2"].shape == (16, 16, 16)
    assert by_name["conv3.0"].channels == 12
    assert by_name[OUTPUT].channels == 5


def test_unknown_layer_names_close_matches(tiny: Model) -> None:
    with pytest.raises(UserError, match=r"unknown layer 'conv4'.*closest: conv"):
        tiny.check_layer("conv4")


def test_activations_capture_only_needed_layers_and_stop_early(tiny: Model) -> None:
    calls = []
    tiny.layers()  # the model's layouts are read once, running it whole
    tiny.module.fc.register_forward_hook(lambda *a: calls.append("fc"))
    acts = tiny.activations(torch.rand(2, 3, 32, 32), ["conv2"])
    assert set(acts) == {"conv2"} and acts["conv2"].shape == (2, 16, 16, 16)
    assert calls == [], "the forward pass should stop after conv2"
    acts = tiny.activations(torch.rand(2, 3, 32, 32), ["conv2", OUTPUT])
    assert acts[OUTPUT].shape == (2, 5) and calls == ["fc"]


def test_normalisation_is_applied() -> None:
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(x)
            return x.mean((2, 3))

    model = Model(Probe(), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    model(torch.full((1, 3, 4, 4), 0.75))
    assert torch.allclose(seen[-1], torch.ones(1, 3, 4, 4))  # (earlier calls: the model's size probed)


def test_redirected_relu_passes_reviving_gradient(tiny: Model) -> None:
    relu = tiny.module.conv2[1]  # a ReLU6
    x = torch.tensor([-1.0, 3.0, 7.0], requires_grad=True)
    with tiny.redirected_relus():
        y = relu(x)
        # Maximising y: gradient of -y is -1 everywhere; it should reach x = -1 (reviving it),
        # x = 3 (inside), but not x = 7 (above the clip, pushing further up would not help).
        (-y).sum().backward()
    assert torch.equal(y.detach(), torch.tensor([0.0, 3.0, 6.0]))
    assert x.grad.tolist() == [-1.0, -1.0, 0.0]
    x.grad = None
    relu(x).sum().backward()  # outside the block: ordinary ReLU6 gradient
    assert x.grad.tolist() == [0.0, 1.0, 0.0]


def test_class_index(tiny: Model) -> None:
    assert tiny.class_index("cherry") == 2
    assert tiny.class_index(4) == 4
    with pytest.raises(UserError, match="closest: banana"):
        tiny.class_index("bananna")
    with pytest.raises(UserError, match="out of range: model tiny has 5 classes"):
        tiny.class_index(9)


def test_load_model_errors() -> None:
    with pytest.raises(UserError, match="unknown model 'resnet'"):
        load_model("resnet")
    with pytest.raises(UserError, match="weights file not found"):
        load_model("efficientnet_lite0", weights="/nonexistent/w.pt")


def test_load_model_wraps_any_module_and_loads_weights(tmp_path) -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 1))
    path = tmp_path / "w.pt"
    torch.save(nn.Sequential(nn.Conv2d(3, 4, 1)).state_dict(), path)
    model = load_model(net, weights=path)
    assert torch.equal(model.module[0].weight, torch.load(path)["0.weight"])
    torch.save({"0.weight": torch.zeros(1)}, path)
    with pytest.raises(UserError, match="do not fit"):
        load_model(nn.Sequential(nn.Conv2d(3, 4, 1)), weights=path)


def test_embedded_model_layer_names(lite0: Model) -> None:
    names = {info.name: info.channels for info in lite0.layers()}
    for required in ["stem", *(f"blocks.{i}" for i in range(16)), "head", "logits"]:
        assert required in names
    assert names["blocks.10"] == 112 and names["logits"] == 1000
    assert lite0.class_index("flamingo") == 130


def test_torchvision_adapter() -> None:
    pytest.importorskip("torchvision", reason="torchvision is an optional extra (GPU machine)")
    model = load_model("torchvision:resnet18", weights=_random_weights("torchvision", "resnet18"))
    assert model.channels("layer4") == 512
    with pytest.raises(UserError, match="closest"):
        load_model("torchvision:resnet5O")


def test_timm_adapter() -> None:
    pytest.importorskip("timm", reason="timm is an optional extra (GPU machine)")
    model = load_model("timm:resnet18", weights=_random_weights("timm", "resnet18"))
    assert model.channels("layer4") == 512 and model.class_names is not None


def _random_weights(kind: str, name: str) -> str:
    """A state-dict file of randomly initialised weights (no download needed)."""
    import tempfile

    if kind == "torchvision":
        import torchvision

        module = torchvision.models.get_model(name, weights=None)
    else:
        import timm

        module = timm.create_model(name, pretrained=False)
    path = tempfile.NamedTemporaryFile(suffix=".pt", delete=False).name
    torch.save(module.state_dict(), path)
    return path


@pytest.mark.gpu
def test_gpu_activations_match_cpu(lite0: Model) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    x = torch.rand(2, 3, 96, 96)
    cpu = lite0.to("cpu").activations(x, ["blocks.6"])["blocks.6"]
    gpu = lite0.to("cuda").activations(x.cuda(), ["blocks.6"])["blocks.6"].cpu()
    lite0.to("cpu")
    # cuDNN may run convolutions in TF32: compare by relative norm error, as for any tf32 result.
    assert (gpu - cpu).norm() / cpu.norm() < 5e-3


def test_fold_batchnorm_is_exact_and_keeps_layer_names() -> None:
    from diffparam.models.efficientnet_lite import load_efficientnet_lite0

    plain = Model(load_efficientnet_lite0(), mean=(0.5,) * 3, std=(0.5,) * 3)
    folded = Model(load_efficientnet_lite0(), mean=(0.5,) * 3, std=(0.5,) * 3)
    assert folded.fold_batchnorm() == 49
    assert "blocks.10.project.bn" in folded.layer_names()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.module.modules())
    x = torch.rand(2, 3, 96, 96)
    layers = ["blocks.10.project.bn", "blocks.10", "output"]
    a, b = plain.activations(x, layers), folded.activations(x, layers)
    for name in layers:
        assert (a[name] - b[name]).norm() / a[name].norm() < 1e-5, name
