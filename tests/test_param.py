"""Tests of the image parameterizations in diffparam.param."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from diffparam.errors import UserError
from diffparam.param import (
    CPPN,
    KINDS,
    FourierImage,
    Parameterization,
    PixelImage,
    RGBAImage,
    SharedImage,
    decorrelate_colors,
    kinds,
    make_param,
)
from diffparam.param.color import COLOR_CORRELATION, from_valid_rgb
from diffparam.param.fourier import spectrum_scale

CLASSES = [PixelImage, FourierImage, CPPN]
SIZES = [(16, None), (12, 20), (15, 9), (1, 1), (7, 7)]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def small(
    cls: type[Parameterization], height: int, width: int | None, **kwargs
) -> Parameterization:
    if cls is CPPN:
        kwargs.setdefault("hidden", 8)
        kwargs.setdefault("depth", 3)
    return cls(height, width, **kwargs)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("batch", [1, 3])
def test_shape_and_range(cls, size, batch):
    height, width = size
    param = small(cls, height, width, batch=batch, generator=gen(0))
    image = param()
    expected = (batch, 3, height, height if width is None else width)
    assert image.shape == expected
    assert param.shape == expected
    assert (param.batch, param.channels, param.height, param.width) == expected
    assert image.dtype == torch.float32
    assert torch.isfinite(image).all()
    assert image.min() >= 0 and image.max() <= 1


@pytest.mark.parametrize("cls", CLASSES)
def test_other_channel_counts(cls):
    image = small(cls, 8, 6, batch=2, channels=1, generator=gen(0))()
    assert image.shape == (2, 1, 8, 6)
    assert small(cls, 8, 6, channels=4)().shape == (1, 4, 8, 6)


@pytest.mark.parametrize("cls", CLASSES)
def test_seeding(cls):
    a = small(cls, 10, 14, batch=2, generator=gen(1))()
    b = small(cls, 10, 14, batch=2, generator=gen(1))()
    c = small(cls, 10, 14, batch=2, generator=gen(2))()
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a[0], a[1]), "images of a batch should be independent"


@pytest.mark.parametrize("cls", CLASSES)
def test_gradients_reach_every_parameter(cls):
    param = small(cls, 9, 12, batch=2, generator=gen(0))
    (param() * torch.linspace(0, 1, 12)).sum().backward()
    params = list(param.parameters())
    assert params
    for p in params:
        assert p.grad is not None and torch.isfinite(p.grad).all()
        assert p.grad.abs().sum() > 0


@pytest.mark.parametrize("cls", CLASSES)
def test_optimiser_changes_the_image(cls):
    param = small(cls, 8, 8, generator=gen(0))
    before = param().detach()
    optimiser = torch.optim.Adam(param.parameters(), lr=0.05)
    for _ in range(3):
        optimiser.zero_grad()
        (-param()[:, 0].mean()).backward()
        optimiser.step()
    assert param()[:, 0].mean() > before[:, 0].mean()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: PixelImage(0), r"`height` must be a whole number >= 1, got 0"),
        (lambda: PixelImage(8, 0), r"`width` must be a whole number >= 1, got 0"),
        (lambda: PixelImage(8, batch=0), r"`batch` must be a whole number >= 1, got 0"),
        (lambda: PixelImage(8, channels=0), r"`channels` must be a whole number >= 1, got 0"),
        (lambda: PixelImage(8.5), r"`height` must be a whole number >= 1, got 8\.5"),
        (lambda: PixelImage(True), r"`height` must be a whole number >= 1, got True"),
        (lambda: PixelImage(8, sd=-1.0), r"`sd` must be a finite number >= 0, got -1\.0"),
        (lambda: FourierImage(8, sd=float("nan")), r"`sd` must be a finite number >= 0, got nan"),
        (lambda: FourierImage(8, spectrum_decay=0.0), r"`spectrum_decay` must be a finite number > 0 \(1\.0"),
        (lambda: FourierImage(8, spectrum_decay=-1.0), r"`spectrum_decay` must be .* got -1\.0"),
        (lambda: FourierImage(-3), r"`height` must be a whole number >= 1, got -3"),
        (lambda: CPPN(8, hidden=0), r"`hidden` must be a whole number in 1..4096, got 0"),
        (lambda: CPPN(8, depth=0), r"`depth` must be a whole number in 1..256, got 0"),
        (lambda: CPPN(8, activation="swish"), r"unknown CPPN activation 'swish'; choose one of: composite"),
        (lambda: CPPN(8, batch=-1), r"`batch` must be a whole number >= 1, got -1"),
        (lambda: CPPN(4).render(0), r"`height` must be a whole number >= 1, got 0"),
        (lambda: spectrum_scale(8, 8, spectrum_decay=0), r"`spectrum_decay` must be a finite number > 0"),
    ],
)
def test_bad_arguments(make, message):
    with pytest.raises(UserError, match=message):
        make()


def test_color_matrix():
    norms = COLOR_CORRELATION.norm(dim=0)
    assert norms.max().item() == pytest.approx(1.0, abs=1e-12)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    expected = torch.einsum("ck,bkhw->bchw", COLOR_CORRELATION, x)
    assert torch.allclose(decorrelate_colors(x), expected)
    assert torch.allclose(decorrelate_colors(decorrelate_colors(x), inverse=True), x)


def test_decorrelation_is_identity_for_other_channel_counts():
    x = torch.randn(2, 4, 3, 3)
    assert torch.equal(decorrelate_colors(x), x)


def test_from_valid_rgb_inverts_the_squash():
    image = torch.rand(2, 3, 5, 5) * 0.9 + 0.05
    raw = from_valid_rgb(image)
    assert torch.allclose(torch.sigmoid(decorrelate_colors(raw)), image, atol=1e-5)
    assert torch.allclose(from_valid_rgb(image, decorrelate=False, activation="clamp"), image)
    with pytest.raises(UserError, match="unknown `activation` 'softplus'; choose one of: sigmoid, clamp"):
        from_valid_rgb(image, activation="softplus")


def test_fourier_scale_prefers_low_frequencies():
    for height, width in [(16, 16), (15, 22), (9, 1)]:
        param = FourierImage(height, width)
        scale = param.scale
        assert scale.shape == (height, width // 2 + 1)
        assert scale[0, 0] == scale.max()
        assert scale[0, 0] > 2 * scale[height // 2, width // 2]
        assert (scale[0, 1:] <= scale[0, :-1]).all()  # falls off along the positive x frequencies
    steep = spectrum_scale(32, 32, spectrum_decay=2.0)
    flat = spectrum_scale(32, 32, spectrum_decay=0.5)
    assert steep[0, 1] / steep[8, 8] > flat[0, 1] / flat[8, 8]


@pytest.mark.parametrize("size", [(16, 16), (15, 21), (8, 7)])
def test_fourier_normalisation_gives_gain_pixel_std(size):
    # An N(0, 1) spectrum gives pixels of std 2 before decorrelation and the sigmoid: Lucid's gain
    # (its sqrt(H*W) scaling then / 4 is 1.9 at 128 px, 2.0 at 224 px), so its learning rates carry over.
    height, width = size
    scale = spectrum_scale(height, width).double()
    spectrum = torch.randn(1000, height, width // 2 + 1, 2, generator=gen(0), dtype=torch.float64)
    raw = torch.fft.irfft2(torch.view_as_complex(spectrum) * scale, s=size, norm="ortho")
    assert raw.var(dim=0).mean().item() == pytest.approx(2.0**2, rel=0.05)


@pytest.mark.parametrize("size", [(16, 16), (15, 22), (9, 13)])
@pytest.mark.parametrize("decorrelate", [True, False])
def test_fourier_from_image_round_trip(size, decorrelate):
    image = torch.rand(2, 3, *size, generator=gen(3))
    image[0, 0, 0, 0] = 0.0
    image[1, 2, 1, 1] = 1.0
    param = FourierImage.from_image(image, spectrum_decay=1.3, decorrelate=decorrelate)
    assert param.spectrum_decay == 1.3 and param.decorrelate == decorrelate
    assert param.shape == image.shape
    error = (param() - image.clamp(1e-4, 1 - 1e-4)).abs().max().item()
    assert error < 1e-3


@pytest.mark.parametrize("cls", [FourierImage, PixelImage])
def test_from_image_rejects_non_4d(cls):
    with pytest.raises(UserError, match=r"image must be \(B,C,H,W\), got \(3, 8, 8\)"):
        cls.from_image(torch.rand(3, 8, 8))


def test_pixel_from_image_round_trip():
    image = torch.rand(2, 3, 9, 7, generator=gen(1))
    assert (PixelImage.from_image(image)() - image).abs().max() < 1e-5


def test_cppn_render_matches_forward():
    cppn = CPPN(24, 16, batch=2, generator=gen(0))
    image = cppn()
    same = cppn.render(24, 16, chunk_pixels=50)
    assert torch.allclose(same, image, atol=1e-6)
    assert not same.requires_grad
    big = cppn.render(512, 300)
    assert big.shape == (2, 3, 512, 300)
    assert big.min() >= 0 and big.max() <= 1
    # A finer render of the same aspect samples the same continuous pattern.
    fine = cppn.render(96, 64)
    assert (F.interpolate(fine, size=(24, 16), mode="area") - image).abs().mean() < 0.02


def test_cppn_options():
    for activation in ("composite", "tanh", "relu", "sin"):
        for use_radius in (True, False):
            cppn = CPPN(6, 5, hidden=4, depth=2, activation=activation, use_radius=use_radius)
            assert cppn().shape == (1, 3, 6, 5)
    assert CPPN(6, hidden=4, depth=2, use_radius=False).weights[0].shape == (1, 2, 4)
    composite = CPPN(6, batch=2, hidden=4, depth=2)
    assert [tuple(w.shape) for w in composite.weights] == [(2, 3, 4), (2, 8, 4), (2, 8, 3)]
    assert all(not b.any() for b in composite.biases)


def test_cppn_save_load(tmp_path):
    cppn = CPPN(10, 14, batch=2, hidden=6, depth=3, activation="tanh", generator=gen(5))
    path = tmp_path / "net.pt"
    cppn.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["net.pt"]
    loaded = CPPN.load(path)
    assert loaded.config() == cppn.config()
    assert torch.equal(loaded(), cppn())
    assert torch.equal(loaded.render(33, 20), cppn.render(33, 20))
    cppn.save(str(path))  # overwriting works too
    assert torch.equal(CPPN.load(str(path))(), cppn())


def test_cppn_bad_files(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="garbage.pt is not a CPPN file written by CPPN.save"):
        CPPN.load(garbage)
    with pytest.raises(UserError, match="CPPN file not found: .*missing.pt"):
        CPPN.load(tmp_path / "missing.pt")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(UserError, match="not a CPPN file"):
        CPPN.load(other)
    path = tmp_path / "net.pt"
    CPPN(8, hidden=4, depth=2).save(path)
    payload = torch.load(path, weights_only=True)
    payload["config"]["hidden"] = 5
    torch.save(payload, path)
    with pytest.raises(UserError, match="damaged"):
        CPPN.load(path)
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot write .*file/net.pt"):
        CPPN(8).save(tmp_path / "file" / "net.pt")  # its folder would be a file


def test_make_param():
    for kind, cls in [("fourier", FourierImage), ("pixel", PixelImage), ("cppn", CPPN)]:
        param = make_param(kind, 12, 10, batch=2, generator=gen(0))
        assert isinstance(param, cls) and isinstance(param, Parameterization)
        assert param().shape == (2, 3, 12, 10)
        rgba = make_param(kind, 12, 10, batch=2, generator=gen(0), alpha=True)
        assert rgba().shape == (2, 4, 12, 10) and rgba.default_lr == cls.default_lr
    assert make_param("pixel", 5)().shape == (1, 3, 5, 5)
    with pytest.raises(UserError, match="unknown `param` 'wavelet'; choose one of: fourier, pixel, maco"):
        make_param("wavelet", 8)
    image = torch.rand(1, 3, 6, 5, generator=gen(2))
    assert (make_param("fourier", 0, image=image)() - image).abs().max() < 1e-3
    with pytest.raises(UserError, match="a cppn parameterization cannot start from an image; use one of: "
                                        "fourier, pixel"):
        make_param("cppn", 6, image=image)


def test_kind_registry_reads_capabilities_off_the_classes():
    """What each kind can do, stated independently of the registry's code."""
    assert list(KINDS) == ["fourier", "pixel", "maco", "cppn"]
    assert kinds(composable=True) == ["fourier", "pixel", "maco"]
    assert kinds(from_image=True) == ["fourier", "pixel"]
    assert kinds(composable=False) == ["cppn"]
    assert [KINDS[k].default_lr for k in KINDS] == [0.05, 0.05, 0.5, 0.005]
    frames = make_param("pixel", 8, batch=3)
    SharedImage(frames, make_param(kinds(composable=True)[0], 4))  # composable kinds compose
    with pytest.raises(UserError, match="CPPN has no logits"):
        SharedImage(frames, make_param("cppn", 4))


def test_rgba_image_checks_its_parts():
    color, alpha = PixelImage(8, channels=3), PixelImage(8, channels=1)
    assert RGBAImage(color, alpha)().shape == (1, 4, 8, 8)
    with pytest.raises(UserError, match="3 colour channels and 1 alpha channel, got 3 and 3"):
        RGBAImage(color, PixelImage(8))
    with pytest.raises(UserError, match="differ in batch or size"):
        RGBAImage(color, PixelImage(9, channels=1))
