"""The render loop on a tiny network: it optimises, is deterministic, saves frames, stops on NaN."""

from __future__ import annotations

import pytest
import torch

from diffparam import objectives as O
from diffparam.errors import NonFiniteLossError, UserError
from diffparam.models.base import Model
from diffparam.param import PixelImage, RGBAImage
from diffparam.render import render


def _quick(tiny: Model, objective, **kw):
    opts = dict(steps=20, size=32, progress=False, device="cpu")
    opts.update(kw)
    return render(tiny, objective, **opts)


def test_render_raises_the_objective(lite0: Model) -> None:
    result = _quick(lite0, "blocks.4:3", steps=30, size=64)
    assert result.images.shape == (1, 3, 64, 64)
    assert 0 <= result.images.min() and result.images.max() <= 1
    assert len(result.history) == 30
    # The loss is minus the mean activation: it starts near -3 and must fall well below.
    assert result.history[-1] < 3 * result.history[0] < 0


def test_same_seed_same_image_other_seed_differs(tiny: Model) -> None:
    a = _quick(tiny, "conv2:1", seed=3).images
    b = _quick(tiny, "conv2:1", seed=3).images
    c = _quick(tiny, "conv2:1", seed=4).images
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_batch_objectives_make_different_images(tiny: Model) -> None:
    obj = O.channel("conv3.0", 0, batch=0) + O.channel("conv3.0", 5, batch=1)
    result = _quick(tiny, obj, batch=2, steps=30)
    with torch.no_grad():
        acts = tiny.activations(result.images, ["conv3.0"])["conv3.0"].mean((2, 3))
    assert acts[0, 0] > acts[1, 0] and acts[1, 5] > acts[0, 5]


def test_thresholds_callback_and_custom_param(tiny: Model) -> None:
    seen = []
    param = PixelImage(24, 40, batch=2, generator=torch.Generator().manual_seed(0))
    result = _quick(tiny, "conv1", param=param, thresholds=(5, 10), transforms=None,
                    optimizer=torch.optim.SGD, lr=0.5,
                    callback=lambda step, loss, img: seen.append((step, img.shape)))
    assert sorted(result.frames) == [5, 10] and result.frames[5].shape == (2, 3, 24, 40)
    assert [s for s, _ in seen] == list(range(1, 21))
    assert result.param is param


def test_nan_loss_stops_with_last_finite_image(tiny: Model) -> None:
    calls = {"n": 0}

    def explode(acts: O.Activations) -> torch.Tensor:
        calls["n"] += 1
        v = acts["conv1"].mean((1, 2, 3))
        return v * float("nan") if calls["n"] >= 4 else v

    with pytest.raises(NonFiniteLossError, match="loss became nan at step 4") as info:
        _quick(tiny, O.Objective(explode, ["conv1"], "explode"))
    images = info.value.result.images
    assert images.shape == (1, 3, 32, 32) and torch.isfinite(images).all()
    assert len(info.value.result.history) == 3


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(steps=0), "steps must be at least 1"),
        (dict(size=8), "outside 16..4096"),
        (dict(size=5000), "outside 16..4096"),
        (dict(lr=-1.0), "learning rate must be positive"),
        (dict(device="tpu"), "unknown device"),
        (dict(transforms="wobbly"), "unknown transforms"),
        (dict(compile=3), "compile must be True, False or a torch.compile backend name"),
        (dict(compile="warp"), r"compile must be .*inductor.*got 'warp'"),
    ],
)
def test_bad_options(tiny: Model, kw, message) -> None:
    with pytest.raises(UserError, match=message):
        _quick(tiny, "conv1:0", **kw)


def test_input_size_upsamples_before_the_model(tiny: Model) -> None:
    shapes = []
    tiny.module.conv1.register_forward_hook(lambda m, i, o: shapes.append(i[0].shape[-1]))
    _quick(tiny, "conv1:0", steps=1, input_size=48, transforms=None)
    assert shapes[-1] == 48  # (an earlier call is the one-off layer probe at native size)


def test_blocks_are_the_largest_units_without_a_hooked_layer_inside(tiny: Model) -> None:
    assert [n for n, _ in tiny.blocks(["conv3"])] == ["conv1", "conv2", "conv3", "pool"]
    assert [n for n, _ in tiny.blocks(["conv2.0", "output"])] == ["conv1", "conv3", "pool"]


def test_compiled_and_checkpointed_blocks_change_nothing(tiny: Model) -> None:
    """Each block compiled (aot_eager: no C++ compiler needed) and checkpointed: same images, same
    losses, and a hook inside a block (conv2.0) still sees its layer; afterwards nothing is left."""
    plain = _quick(tiny, "conv2.0:3", steps=6)
    fast = _quick(tiny, "conv2.0:3", steps=6, compile="aot_eager", checkpoint=True)
    assert torch.allclose(plain.images, fast.images, atol=1e-6)
    assert fast.history == pytest.approx(plain.history, rel=1e-5)
    assert all("forward" not in vars(m) for m in tiny.module.modules())


def test_checkpoint_keeps_less_for_backward(lite0: Model) -> None:
    """Tensors autograd keeps for backward (outside the checkpoints' own recomputation), summed."""
    x = torch.rand(2, 3, 64, 64, requires_grad=True)

    def kept(checkpoint: bool) -> int:
        total = 0

        def pack(t: torch.Tensor) -> torch.Tensor:
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with lite0.accelerated(["blocks.10"], checkpoint=checkpoint), \
                torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            acts = lite0.activations(x, ["blocks.10"])
        acts["blocks.10"][:, 3].mean().backward()
        return total

    plain, checkpointed = kept(False), kept(True)
    assert checkpointed < 0.2 * plain, (plain, checkpointed)


@pytest.mark.gpu
def test_render_on_gpu(tiny: Model) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    result = _quick(tiny, "conv3.0:2", steps=40, device="cuda")
    assert result.images.device.type == "cpu"
    assert result.history[-1] < result.history[0]


def _unit_ratios(model: Model, **kw) -> list[float]:
    from diffparam.evaluate import unit_ratio

    cs = [27, 60, 5, 90]
    result = render(model, O.channels("blocks.10", cs), batch=len(cs), size=128, steps=128,
                    device="cuda", progress=False, **kw)
    model.to("cpu")
    return [float(unit_ratio(model, "blocks.10", c, result.images[i:i + 1])[0])
            for i, c in enumerate(cs)]


@pytest.mark.gpu
def test_cuda_graph_and_bf16_keep_quality(lite0: Model) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    eager = _unit_ratios(lite0, cuda_graph=False, channels_last=False)
    graph = _unit_ratios(lite0, cuda_graph=True)
    bf16 = _unit_ratios(lite0, cuda_graph=True, precision="bf16")
    for fast in (graph, bf16):
        assert sum(fast) >= 0.85 * sum(eager), (eager, graph, bf16)


@pytest.mark.gpu
def test_compiled_graph_keeps_quality(lite0: Model) -> None:
    """Inductor-compiled blocks inside the captured step, fp32 and bf16, reach the eager figures."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    eager = _unit_ratios(lite0, cuda_graph=False, channels_last=False)
    for precision in ("fp32", "bf16"):
        fast = _unit_ratios(lite0, cuda_graph=True, compile=True, precision=precision)
        assert sum(fast) >= 0.85 * sum(eager), (precision, eager, fast)


@pytest.mark.gpu
def test_cuda_graph_reports_nan(lite0: Model) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    obj = O.channel("blocks.4", 3) / 0.0 * 0.0  # NaN from the first step, inside the graph too
    try:
        with pytest.raises(NonFiniteLossError, match="at step 1 "):
            render(lite0, obj, size=64, steps=40, device="cuda", progress=False, cuda_graph=True)
    finally:
        lite0.to("cpu")  # the model is shared by the whole session


def test_rgba_image_is_composited_over_fresh_backgrounds(tiny: Model) -> None:
    seen = []

    def background(shape, device, generator):
        bg = torch.rand(shape, device=device, generator=generator)
        seen.append(bg)
        return bg

    param = RGBAImage(32, batch=2, generator=torch.Generator().manual_seed(0))
    result = render(tiny, "conv2:3", param=param, steps=3, seed=0, progress=False, background=background)
    assert result.images.shape == (2, 4, 32, 32)
    assert len(seen) == 3 and not torch.equal(seen[0], seen[1])
    for kind in ("noise", "fourier"):
        out = render(tiny, "conv2:3", param=RGBAImage(32, kind="pixel"), steps=2, progress=False,
                     background=kind)
        assert out.images.shape == (1, 4, 32, 32)
    with pytest.raises(UserError, match="unknown background"):
        render(tiny, "conv2:3", param=RGBAImage(32), steps=1, progress=False, background="plaid")
