"""The render loop on a tiny network: it optimises, is deterministic, saves frames, stops on NaN."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from diffparam import objectives as O
from diffparam.errors import NonFiniteLossError, SaturatedError, UserError
from diffparam.models.base import Model
from diffparam.param import CPPN, Parameterization, PixelImage, TextureImage, make_param
from diffparam.pipeline import Pipeline, stages_for
from diffparam.render import render, saturation
from diffparam.three_d import shapes


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
    obj = O.channel("conv3.0", 0, image=0) + O.channel("conv3.0", 5, image=1)
    result = _quick(tiny, obj, batch=2, steps=30)
    with torch.no_grad():
        acts = tiny.activations(result.images, ["conv3.0"])["conv3.0"].mean((2, 3))
    assert acts[0, 0] > acts[1, 0] and acts[1, 5] > acts[0, 5]


def test_thresholds_callback_and_custom_param(tiny: Model) -> None:
    seen = []
    param = PixelImage(24, 40, batch=2, generator=torch.Generator().manual_seed(0))
    result = render(tiny, "conv1", param=param, thresholds=(5, 10), transforms=None, steps=20,
                    optimizer=torch.optim.SGD, lr=0.5, progress=False, device="cpu",
                    callback=lambda step, loss, img: seen.append((step, img.shape)))
    assert sorted(result.snapshots) == [5, 10] and result.snapshots[5].shape == (2, 3, 24, 40)
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
        (dict(steps=0), "`steps` must be a whole number in 1..1000000, got 0"),
        (dict(steps=10**23), "`steps` must be a whole number in 1..1000000, got 1"),
        (dict(seed=-1), "`seed` must be a whole number in 0..4611686018427387904, got -1"),
        (dict(seed=2**64), "`seed` must be a whole number in 0..4611686018427387904, got 1844"),
        (dict(device="mps"), "`device` 'mps' is not supported: use auto, cpu or cuda"),
        (dict(size=4096, batch=64), r"needs about .* GiB of memory \(64 image\(s\) of 4096x4096 px"),
        (dict(size=8), "`size` 8 is outside 16..4096 pixels"),
        (dict(size=5000), "`size` 5000 is outside 16..4096 pixels"),
        (dict(lr=-1.0), "`lr` must be a finite number > 0, got -1.0"),
        (dict(lr=float("nan")), "`lr` must be a finite number > 0, got nan"),
        (dict(batch=0), "`batch` must be a whole number >= 1, got 0"),
        (dict(precision="fp8"), "unknown `precision` 'fp8'; choose one of: fp32, bf16"),
        (dict(param="voxel"), "unknown `param` 'voxel'; choose one of: fourier, pixel, maco, cppn"),
        (dict(device="tpu"), "unknown `device` 'tpu': use auto, cpu or cuda"),
        (dict(transforms="wobbly"), "unknown transforms"),
        (dict(compile=3), "`compile` must be True, False or a torch.compile backend name"),
        (dict(compile="warp"), r"`compile` must be .*inductor.*got 'warp'"),
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

    param = make_param("fourier", 32, batch=2, generator=torch.Generator().manual_seed(0), alpha=True)
    result = render(tiny, "conv2:3", param=param, steps=3, seed=0, progress=False, background=background)
    assert result.images.shape == (2, 4, 32, 32)
    assert len(seen) == 3 and not torch.equal(seen[0], seen[1])
    for kind in ("noise", "fourier"):
        out = render(tiny, "conv2:3", param=make_param("pixel", 32, alpha=True), steps=2, progress=False,
                     background=kind)
        assert out.images.shape == (1, 4, 32, 32)
    with pytest.raises(UserError, match="unknown `background` 'plaid'; choose one of: noise, fourier"):
        render(tiny, "conv2:3", param=make_param("pixel", 32, alpha=True), steps=1, progress=False,
               background="plaid")


class _SharedBackground(Parameterization):
    """Two RGBA images: the second is the first, so with copies 2 they must come out equal."""

    copies = 2

    def __init__(self) -> None:
        super().__init__(16, 16, 2, 4)
        self.inner = make_param("pixel", 16, alpha=True, generator=torch.Generator().manual_seed(1))

    def forward(self) -> torch.Tensor:
        one = self.inner()
        return torch.cat([one, one])


def test_images_in_copies_share_their_backgrounds(tiny: Model) -> None:
    seen = []
    pipeline = Pipeline(_SharedBackground(), tiny, O.channel("conv2", 3),
                        stages_for(_SharedBackground(), None, "noise", None))
    x = pipeline.model_input(pipeline.param(), torch.Generator().manual_seed(0))
    seen.append(x)
    assert x.shape == (2, 3, 16, 16) and torch.equal(x[0], x[1])
    assert [type(s).__name__ for s in pipeline.stages] == ["Composite"]


def test_images_in_copies_move_alike_under_the_transforms(tiny: Model) -> None:
    """An RGB pair in copies 2 gets one transform draw; a plain batch of the same images gets two."""
    from diffparam import transforms as T

    pair = _SharedBackground()
    image = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(2))
    x = torch.cat([image, image])
    stack = T.standard()
    shared = stages_for(pair, stack, None, None)[0](x, torch.Generator().manual_seed(0))
    plain = make_param("pixel", 20, batch=2)
    apart = stages_for(plain, stack, None, None)[0](x, torch.Generator().manual_seed(0))
    assert shared.shape == apart.shape == (2, 3, 32, 32)
    assert torch.equal(shared[0], shared[1]) and not torch.equal(apart[0], apart[1])


def test_the_pipeline_runs_its_stages_in_order(tiny: Model) -> None:
    param = make_param("pixel", 20, alpha=True)
    stages = stages_for(param, "standard", "fourier", 40)
    assert [type(s).__name__ for s in stages] == ["Composite", "Transforms", "Resize"]
    pipeline = Pipeline(param, tiny, O.channel("conv2", 3), stages)
    assert pipeline.model_input(param(), torch.Generator().manual_seed(0)).shape == (1, 3, 40, 40)
    assert stages_for(make_param("pixel", 20), None, "noise", None) == []  # RGB: nothing to composite
    assert pipeline.blockers() == []
    texture = TextureImage(shapes.sphere(8), texture_size=16, view_size=16, views=1)
    slow = O.Objective(lambda acts: acts["conv2"].mean((1, 2, 3)), ["conv2"], "host sync", graph_safe=False)
    assert Pipeline(texture, tiny, slow).blockers() == ["TextureImage", "objective host sync"]
    assert Pipeline(texture, tiny, 2 * slow + O.channel("conv2", 3)).blockers()[1].startswith("objective")


def test_size_and_batch_belong_to_the_parameterization(tiny: Model) -> None:
    param = PixelImage(32)
    for kw in (dict(size=64), dict(batch=2)):
        with pytest.raises(UserError, match="`size` and `batch` describe the image render makes itself"):
            render(tiny, "conv2:3", param=param, steps=1, progress=False, **kw)
    made = render(tiny, "conv2:3", "cppn", size=(24, 20), batch=2, steps=1, progress=False)
    assert isinstance(made.param, CPPN) and made.images.shape == (2, 3, 24, 20)


class _UserNet(nn.Module):
    """A user's own network, mid-training: train mode, weights that need gradients, one of them
    channels-last, an instance-level forward of its own on one submodule."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU6())
        self.c = nn.Conv2d(8, 4, 1)
        self.b[0].weight.data = self.b[0].weight.data.contiguous(memory_format=torch.channels_last)
        # A forward of its own on one submodule, to be kept.
        self.c.forward = lambda x: self.c._conv_forward(x, self.c.weight, self.c.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.b(self.a(x)))


def _state(net: nn.Module) -> dict:
    import torch._dynamo

    return {
        "training": [m.training for m in net.modules()],
        "requires_grad": [p.requires_grad for p in net.parameters()],
        "layout": [(tuple(p.stride()), p.is_contiguous(memory_format=torch.channels_last))
                   for p in net.parameters()],
        "forward": [vars(m).get("forward") for m in net.modules()],
        "hooks": [len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
                  for m in net.modules()],
        "dynamo": (torch._dynamo.config.recompile_limit, torch._dynamo.config.accumulated_recompile_limit),
        "rng": torch.get_rng_state(),
        "threads": torch.get_num_threads(),
        "grad_enabled": torch.is_grad_enabled(),
        "dtype": torch.get_default_dtype(),
    }


@pytest.mark.parametrize("options", [
    dict(),
    dict(channels_last=True, relu_redirect_steps=2),
    dict(compile="aot_eager", checkpoint=True, channels_last=True),
])
def test_render_leaves_the_callers_model_and_torch_as_it_found_them(options) -> None:
    torch.manual_seed(5)
    net = _UserNet().train()
    before = _state(net)
    running = net.a[1].running_mean.clone()
    result = render(net, "b:3", size=24, steps=4, progress=False, device="cpu", **options)
    assert result.images.shape == (1, 3, 24, 24)
    after = _state(net)
    for key in before:
        if key == "rng":
            assert torch.equal(before[key], after[key])
        else:
            assert before[key] == after[key], key
    assert torch.equal(net.a[1].running_mean, running)  # rendered in eval mode: BN statistics kept


class _SyncsWithTheHost(nn.Module):
    """A network whose forward, between two layers, waits for the GPU (reads a value on the host): a
    CUDA graph cannot capture that."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        return self.b(y * float(y.abs().mean() > 0))


@pytest.mark.gpu
def test_a_failed_capture_falls_back_to_eager_with_a_warning() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    with pytest.warns(RuntimeWarning, match="CUDA graph capture failed .*running eagerly"):
        result = render(_SyncsWithTheHost(), "b:1", size=32, steps=20, device="cuda", progress=False)
    assert torch.isfinite(result.images).all() and result.history[-1] < result.history[0]
    again = render(_SyncsWithTheHost(), "b:1", size=32, steps=20, device="cuda", progress=False,
                   cuda_graph=False)  # the GPU still works, and eager gives the same kind of result
    assert again.history[-1] < again.history[0]


@pytest.mark.gpu
def test_texture_image_renders_on_cuda_without_turning_graphs_off(tiny: Model, recwarn) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    param = TextureImage(shapes.sphere(12), texture_size=32, view_size=32, views=2)
    result = render(tiny, "conv2:3", param=param, steps=5, device="cuda", progress=False)
    assert result.images.shape == (2, 4, 32, 32) and len(result.history) == 5
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]  # no capture was tried
    with pytest.raises(UserError, match="cannot be captured in a CUDA graph: TextureImage"):
        render(tiny, "conv2:3", param=param, steps=1, device="cuda", progress=False, cuda_graph=True)


@pytest.mark.gpu
@pytest.mark.parametrize("options", [dict(), dict(precision="bf16", compile=True, checkpoint=True)])
def test_render_on_cuda_leaves_the_model_as_it_found_it(options) -> None:
    """Graph capture, channels-last and compiled blocks on the GPU; the model stays on the GPU (that
    is documented), the rest is as it was, its layouts included."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    net = _UserNet().train().cuda()
    before = _state(net)
    cuda_rng = torch.cuda.get_rng_state()
    render(net, "b:3", size=32, steps=8, progress=False, device="cuda", **options)
    after = _state(net)
    for key in before:
        assert torch.equal(before[key], after[key]) if key == "rng" else before[key] == after[key], key
    assert torch.equal(cuda_rng, torch.cuda.get_rng_state())


def test_a_diverged_optimisation_is_an_error_not_a_picture(tiny: Model) -> None:
    """At lr 1e6 every colour saturates (an 8-colour image): render says so instead of returning it."""
    with pytest.raises(SaturatedError, match=r"diverged: 100% of the images' colour values ended at 0 or 1 "
                                             r"\(try a lower `lr`\)") as info:
        render(tiny, "conv2:3", size=32, steps=8, lr=1e6, progress=False, device="cpu")
    assert info.value.result.images.shape == (1, 3, 32, 32)
    assert saturation(info.value.result.images) == 1.0
    assert saturation(torch.full((1, 3, 8, 8), 0.5)) == 0.0
