"""Objectives: values on known activations, algebra, batch targeting, the string grammar's errors."""

from __future__ import annotations

import pytest
import torch

from diffparam import objectives as O
from diffparam.errors import UserError
from diffparam.models.base import OUTPUT, Model


def _acts(model: Model | None = None, b: int = 2) -> O.Activations:
    layer = torch.arange(b * 3 * 2 * 2, dtype=torch.float32).view(b, 3, 2, 2)
    logits = torch.tensor([[1.0, 2.0, 3.0, 0.0, 0.0]] * b)
    img = torch.full((b, 3, 4, 4), 0.5)
    img[:, :, :, 0] = 1.0
    return O.Activations({"conv": layer, OUTPUT: logits, O.INPUT: img}, model)


def test_channel_neuron_layer_values() -> None:
    acts = _acts()
    assert O.channel("conv", 1)(acts).tolist() == [5.5, 17.5]
    assert O.neuron("conv", 1, x=1, y=0)(acts).tolist() == [5.0, 17.0]
    assert O.neuron("conv", 0)(acts).tolist() == [3.0, 15.0]  # centre of 2x2 is (1, 1)
    expected = (acts["conv"] ** 2).flatten(1).mean(1)
    assert torch.allclose(O.layer("conv")(acts), expected)


def test_algebra_with_objectives_and_scalars() -> None:
    acts = _acts()
    a, b = O.channel("conv", 0), O.channel("conv", 2)
    va, vb = a(acts), b(acts)
    assert torch.allclose((a + b)(acts), va + vb)
    assert torch.allclose((a - 2 * b)(acts), va - 2 * vb)
    assert torch.allclose((a / 2 + 1)(acts), va / 2 + 1)
    assert torch.allclose((1 - a)(acts), 1 - va)
    assert torch.allclose((-a)(acts), -va)
    assert torch.allclose(sum([a, b, a])(acts), 2 * va + vb)
    assert torch.allclose(O.Objective.sum([a, b])(acts), va + vb)
    assert (a + b).layers == {"conv"}
    assert "conv:0" in (a - 0.5 * b).name


def test_batch_targets_one_image() -> None:
    acts = _acts(b=3)
    v = O.channel("conv", 0, image=1)(acts)
    assert v[0] == 0 and v[2] == 0 and v[1] == acts["conv"][1, 0].mean()
    mixed = O.channel("conv", 0, image=0) + O.channel("conv", 2, image=1)
    assert mixed(acts)[1] == acts["conv"][1, 2].mean()
    with pytest.raises(UserError, match="`image` 5 is out of range for a batch of 3"):
        O.channel("conv", 0, image=5)(acts)


def test_logits_and_log_softmax(tiny: Model) -> None:
    acts = _acts(tiny)
    assert O.logit("cherry")(acts).tolist() == [3.0, 3.0]
    expected = torch.log_softmax(acts[OUTPUT], 1)[:, 2]
    assert torch.allclose(O.log_softmax(2)(acts), expected)


def test_regularisers() -> None:
    acts = _acts()
    assert torch.allclose(O.l1()(acts), torch.tensor([0.125, 0.125]))
    assert torch.allclose(O.l2()(acts), torch.tensor([0.25, 0.25]), atol=1e-5)
    tv = O.total_variation()(acts)
    assert torch.allclose(tv, torch.tensor([0.5 / 3] * 2))


def test_diversity_prefers_different_images() -> None:
    same = O.Activations({"conv": torch.ones(2, 3, 4, 4)})
    diff = torch.ones(2, 3, 4, 4)
    diff[1, 0] = 0
    diff[0, 2] = 0
    different = O.Activations({"conv": diff})
    d = O.diversity("conv")
    assert torch.allclose(d(same), torch.tensor([-1.0, -1.0]))
    assert (d(different) > d(same)).all()


def test_direction() -> None:
    acts = _acts()
    v = O.direction("conv", [1.0, 0.0, 0.0])(acts)
    assert torch.allclose(v, O.channel("conv", 0)(acts))


def test_parse_grammar(tiny: Model) -> None:
    assert O.parse("conv2:3", tiny).name == "conv2:3"
    assert O.parse("conv2:3@1,2", tiny).name == "conv2:3@1,2"
    assert O.parse("conv2", tiny).layers == {"conv2"}
    assert O.parse("logit:banana", tiny).layers == {OUTPUT}
    assert O.parse("logit:4", tiny).name == "logit:4"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("conv9:1", r"unknown layer 'conv9'.*closest: conv"),
        ("conv2:99", r"conv2 has 16 channels: channel 99 is out of range 0..15"),
        ("conv2:x", r"cannot read objective 'conv2:x'"),
        ("logit:durian", r"unknown class 'durian'"),
        ("logit:", r"logit needs a class"),
        ("", r"empty objective"),
    ],
)
def test_parse_errors(tiny: Model, spec: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        O.parse(spec, tiny)


def test_embedded_model_errors(lite0: Model) -> None:
    with pytest.raises(UserError, match=r"blocks.10 has 112 channels"):
        O.parse("blocks.10:999", lite0)
    with pytest.raises(UserError, match=r"closest: blocks.1"):
        O.parse("block.10:3", lite0)
    assert O.parse("logit:flamingo", lite0).name == "logit:flamingo"


def test_channels_gives_each_image_its_own_channel(tiny: Model) -> None:
    acts = _acts(b=3)
    v = O.channels("conv", [2, 0, 1])(acts)
    expected = torch.stack([acts["conv"][i, c].mean() for i, c in enumerate([2, 0, 1])])
    assert torch.equal(v, expected)
    summed = sum(O.channel("conv", c, image=i) for i, c in enumerate([2, 0, 1]))
    assert torch.allclose(v, summed(acts))
    with pytest.raises(UserError, match="3 channels need a batch of 3 images, got 2"):
        O.channels("conv", [2, 0, 1])(_acts(b=2))


def test_channel_list_grammar(tiny: Model) -> None:
    assert O.channel_list("conv2:1,5,7") == ("conv2", [1, 5, 7])
    assert O.channel_list("conv2:1") is None
    assert O.parse("conv2:1,5", tiny).name == "conv2:1,5"
    with pytest.raises(UserError, match="conv2 has 16 channels: channel 40"):
        O.parse("conv2:1,40", tiny)
