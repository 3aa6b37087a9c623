"""Tests of the random image-batch transforms in diffparam.transforms."""

from __future__ import annotations

import pytest
import torch

from diffparam import transforms as T
from diffparam.errors import UserError


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def same_images(batch: int = 6, height: int = 24, width: int = 32) -> torch.Tensor:
    """A batch of identical, asymmetric images."""
    image = torch.rand(1, 3, height, width, generator=gen(0))
    return image.expand(batch, -1, -1, -1).contiguous()


def blob(height: int, width: int, sigma: float = 4.0) -> torch.Tensor:
    """A centred isotropic Gaussian, (1, 1, H, W)."""
    ys = torch.arange(height, dtype=torch.float32) + 0.5 - height / 2
    xs = torch.arange(width, dtype=torch.float32) + 0.5 - width / 2
    r2 = ys[:, None] ** 2 + xs[None, :] ** 2
    return torch.exp(-r2 / (2 * sigma**2))[None, None]


RANDOM = [
    T.jitter(5),
    T.random_scale((0.7, 1.3)),
    T.random_scale([0.8, 1.0, 1.25]),
    T.random_rotate(30),
    T.compose(T.random_scale((0.8, 1.2)), T.random_rotate(20)),
    T.standard(),
    T.color_shift(),
    T.roll(6),
    T.ghiasi(),
]
ALL = [T.pad(3), T.pad(2, mode="reflect"), *RANDOM]


def test_shapes():
    x = torch.rand(2, 3, 20, 30)
    assert T.pad(4)(x).shape == (2, 3, 28, 38)
    assert T.pad(4, mode="reflect")(x).shape == (2, 3, 28, 38)
    assert T.jitter(6)(x).shape == (2, 3, 14, 24)
    assert T.random_scale((0.9, 1.1))(x).shape == x.shape
    assert T.random_rotate(10)(x).shape == x.shape
    assert T.standard()(torch.rand(1, 3, 64, 64)).shape == (1, 3, 76, 76)


def test_pad_values():
    x = torch.rand(1, 2, 5, 6)
    out = T.pad(2, value=0.25)(x)
    assert torch.equal(out[:, :, 2:-2, 2:-2], x)
    assert (out[:, :, :2] == 0.25).all() and (out[:, :, :, -2:] == 0.25).all()
    reflected = T.pad(1, mode="reflect")(x)
    assert torch.equal(reflected[:, :, 0, 1:-1], x[:, :, 1])


def test_jitter_is_a_crop_with_per_image_offsets():
    x = same_images(batch=8)
    out = T.jitter(4)(x, generator=gen(1))
    crops = {
        (dy, dx)
        for i in range(8)
        for dy in range(5)
        for dx in range(5)
        if torch.equal(out[i], x[i, :, dy : dy + 20, dx : dx + 28])
    }
    assert len(crops) > 1, "each image should get its own offset"
    for i in range(8):
        assert any(
            torch.equal(out[i], x[i, :, dy : dy + 20, dx : dx + 28])
            for dy in range(5)
            for dx in range(5)
        )


def test_roll_is_a_circular_shift_per_image_keeping_the_size():
    x = same_images(batch=8)
    out = T.roll(5)(x, generator=gen(3))
    assert out.shape == x.shape
    shifts = [next((dy, dx) for dy in range(-5, 6) for dx in range(-5, 6)
                   if torch.equal(out[i], torch.roll(x[i], (dy, dx), (1, 2)))) for i in range(8)]
    assert len(set(shifts)) > 1


def test_color_shift_moves_each_channel_by_an_offset_and_gain():
    x = same_images(batch=4)
    out = T.color_shift(0.2, 0.5)(x, generator=gen(4))
    for i in range(4):
        for c in range(3):  # out = a·x + b per channel: a straight line through the pixel values
            dx, dy = x[i, c] - x[i, c].mean(), out[i, c] - out[i, c].mean()
            gain = float((dx * dy).sum() / (dx * dx).sum())
            assert torch.allclose(dy, gain * dx, atol=1e-5)
            assert 0.6 <= gain <= 1.65  # e^±0.5
    assert torch.equal(T.color_shift(0.0, 0.0)(x, generator=gen(4)), x)


@pytest.mark.parametrize("transform", RANDOM, ids=repr)
def test_per_image_randomness(transform):
    out = transform(same_images(), generator=gen(2))
    assert not all(torch.equal(out[0], out[i]) for i in range(1, out.shape[0]))


@pytest.mark.parametrize("transform", RANDOM, ids=repr)
def test_seeding(transform):
    x = torch.rand(4, 3, 32, 32, generator=gen(0))
    a = transform(x, generator=gen(7))
    b = transform(x, generator=gen(7))
    c = transform(x, generator=gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("transform", ALL, ids=repr)
def test_gradient_flows(transform):
    x = torch.rand(2, 3, 32, 32, generator=gen(0), requires_grad=True)
    (transform(x, generator=gen(1)) * torch.rand(1, generator=gen(2))).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


def test_identities():
    x = torch.rand(3, 3, 17, 26, generator=gen(0))
    assert torch.allclose(T.random_rotate(0)(x, generator=gen(1)), x, atol=1e-5)
    assert torch.allclose(T.random_scale((1, 1))(x, generator=gen(1)), x, atol=1e-5)
    assert torch.allclose(T.random_scale([1.0])(x), x, atol=1e-5)
    assert torch.equal(T.jitter(0)(x), x)
    assert torch.equal(T.pad(0)(x), x)
    assert torch.equal(T.compose()(x), x)


def test_rotation_keeps_non_square_images_unsheared():
    x = blob(32, 64)
    rotate = T.random_rotate(45, padding_mode="zeros")
    out = rotate(x.expand(4, -1, -1, -1), generator=gen(3))
    assert (out - x).abs().max() < 0.02


def test_scale_zooms_about_the_centre():
    x = blob(40, 60, sigma=4.0)
    out = T.random_scale((2.0, 2.0))(x)
    assert torch.allclose(out, blob(40, 60, sigma=8.0), atol=0.02)


def test_fused_compose_matches_steps():
    # Content well inside the frame, so resampling twice loses nothing at the borders.
    x = blob(48, 64, sigma=5.0) + 0.5 * blob(48, 64, sigma=3.0).roll((6, -4), dims=(-2, -1))
    x = x.expand(4, 3, -1, -1)
    scale = T.random_scale((0.8, 1.2), padding_mode="zeros")
    rotate = T.random_rotate(40, padding_mode="zeros")
    g = gen(4)
    stepwise = rotate(scale(x, generator=g), generator=g)
    fused = T.compose(scale, rotate)(x, generator=gen(4))
    assert (fused - stepwise).abs().max() < 0.03


def test_repr():
    text = repr(T.standard())
    assert text.startswith("compose(pad(12, mode='constant', value=0.5), jitter(8), random_scale(")
    assert "random_rotate(10" in text and text.endswith("jitter(4))")
    assert repr(T.random_scale([0.9, 1.1])).startswith("random_scale([0.9, 1.1]")


@pytest.mark.parametrize("transform", ALL, ids=repr)
def test_non_4d_input(transform):
    for bad in (torch.rand(3, 32, 32), torch.rand(1, 1, 3, 32, 32)):
        with pytest.raises(UserError, match=r"a transform's input must be \(B,C,H,W\), got \("):
            transform(bad)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: T.pad(-1), "pad width must be a whole number >= 0, got -1"),
        (lambda: T.pad(2, value=float("inf")), "pad value must be a finite number, got inf"),
        (lambda: T.pad(2, mode="wrap"), "unknown pad mode 'wrap'; choose one of: constant, reflect"),
        (lambda: T.jitter(-2), "jitter d must be a whole number >= 0, got -2"),
        (lambda: T.jitter(1.5), "jitter d must be a whole number >= 0, got 1.5"),
        (lambda: T.random_scale((1.2, 0.8)), r"scale range must be \(min, max\) with .* got \(1.2, 0.8\)"),
        (lambda: T.random_scale((0.0, 1.0)), r"scale range must be \(min, max\) with 1e-06 <= min"),
        (lambda: T.random_scale((0.9, 1.0, 1.1)), r"a scale range must be a \(low, high\) tuple"),
        (lambda: T.random_scale([]), "scales must be a .* or a non-empty list of values, got"),
        (lambda: T.random_scale([1.0, -1.0]), "`scale` must be a finite number > 0, got -1.0"),
        (lambda: T.random_rotate(-5), "`degrees` must be a finite number >= 0, got -5"),
        (lambda: T.random_rotate(5, padding_mode="wrap"),
         "unknown `padding_mode` 'wrap'; choose one of: reflection, border, zeros"),
        (lambda: T.compose(lambda x, generator=None: x),
         "compose takes transforms from diffparam.transforms"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(UserError, match=message):
        make()


def test_too_small_images():
    x = torch.rand(1, 3, 4, 8)
    with pytest.raises(UserError, match=r"jitter\(4\) needs images larger than 4 pixels a side, got 4x8"):
        T.jitter(4)(x)
    with pytest.raises(UserError, match="reflect padding of 4 needs images larger than 4 pixels a side"):
        T.pad(4, mode="reflect")(x)
