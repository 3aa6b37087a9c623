"""Neural style transfer (Gatys et al.) on any network, with a Fourier or a pixel parameterization.

The article's point: with a decorrelated (Fourier, colour-decorrelated) parameterization, style
transfer works on networks other than VGG, where a pixel parameterization fills the image with
high-frequency (checkerboard) artefacts. `high_frequency_share` measures those artefacts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from diffparam import deprecation
from diffparam import transforms as T
from diffparam.checks import choice, image_size, non_negative_float
from diffparam.errors import UserError
from diffparam.evaluate import objective_values
from diffparam.io import ImageSource, load_image
from diffparam.memory import check_fits
from diffparam.models.base import Model
from diffparam.models.registry import DEFAULT_MODEL, load_model
from diffparam.objectives import content, content_target, style, style_targets
from diffparam.param import Parameterization, kinds, make_param
from diffparam.render import render, resolve_device
from diffparam.result import Result

DEFAULT_LAYERS: dict[str, tuple[tuple[str, ...], str]] = {
    DEFAULT_MODEL: (("stem", "blocks.1.expand.act", "blocks.3.expand.act", "blocks.5.expand.act",
                     "blocks.8.expand.act"), "blocks.7"),
    # ReLU outputs relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 and relu4_2, as in Gatys et al.
    "torchvision:vgg19": (("features.1", "features.6", "features.11", "features.20", "features.29"),
                          "features.22"),
    "torchvision:vgg16": (("features.1", "features.6", "features.11", "features.18", "features.25"),
                          "features.20"),
}
"""(style layers, content layer) for the models whose layers we know; others must name theirs."""

CONTENT_WEIGHT = 1.0
STEPS = 256
SIZE = 224
SHIFT = 4
INITS = ("content", "noise")
HIGH_FREQUENCY = 0.25
"""Frequencies above this many cycles per pixel (half of Nyquist) count as 'high'."""

def default_layers(model: Model) -> tuple[tuple[str, ...], str]:
    """The style layers and the content layer for a model we know, else a UserError saying what to do."""
    if model.name not in DEFAULT_LAYERS:
        raise UserError(f"no default style layers for model {model.name}: name the style and content layers "
                        f"(`style_layers` and `content_layer`; `diffparam layers --model {model.name}` "
                        "lists them)")
    return DEFAULT_LAYERS[model.name]


def style_layers_of(model: Model, style_layers: Sequence[str] | None,
                    content_layer: str | None) -> tuple[tuple[str, ...], str]:
    """The style layers and content layer to use: those given, the rest from `default_layers`; all checked."""
    layers, layer = (tuple(style_layers) if style_layers else None), content_layer
    if layers is None or layer is None:
        known = default_layers(model)
        layers, layer = layers or known[0], layer or known[1]
    for name in (*layers, layer):
        model.check_layer(name)
    return layers, layer


def high_frequency_share(images: Tensor, cutoff: float = HIGH_FREQUENCY) -> Tensor:
    """Per image (B,C,H,W): share of the mean-removed spectral energy above `cutoff` cycles/pixel."""
    x = images.double()
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.rfft2(x, norm="ortho").abs().pow(2)
    h, w = x.shape[-2:]
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(w, dtype=torch.float64)[None, :]
    # rfft2 holds the mirrored columns once: count them twice, as the full spectrum does.
    count = torch.full((h, w // 2 + 1), 2.0, dtype=torch.float64)
    count[:, 0] = 1.0
    if w % 2 == 0:
        count[:, -1] = 1.0
    high = (torch.sqrt(fy * fy + fx * fx) > cutoff).double()
    energy = (power * count).sum(dim=(1,))
    total = energy.sum(dim=(-2, -1)).clamp_min(1e-30)
    return ((energy * high).sum(dim=(-2, -1)) / total).float()


def swirl_pattern(size: int = 256, seed: int = 0) -> Tensor:
    """A generated style image (1,3,size,size): blue and yellow wavy strokes, like a painting's texture.

    Stripes follow the level lines of smooth random noise; colours blend two palettes by another
    noise field. No download needed, and the texture is far from a photo's, so its transfer shows.
    """
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)

    def noise(sigma: float) -> np.ndarray:
        n = gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")
        return n / n.std()

    y, x = np.mgrid[0:size, 0:size] / size
    phase = 10 * (x + 0.6 * y) + 2.0 * noise(size / 10) + 0.6 * noise(size / 30)
    stripes = (0.5 + 0.5 * np.sin(2 * np.pi * phase))[..., None] ** 1.5
    mix = (0.5 + 0.5 * np.tanh(noise(size / 8)))[..., None]
    dark = mix * np.array([0.05, 0.15, 0.45]) + (1 - mix) * np.array([0.1, 0.5, 0.6])
    light = mix * np.array([0.95, 0.8, 0.2]) + (1 - mix) * np.array([0.98, 0.95, 0.85])
    img = dark * (1 - stripes) + light * stripes
    return torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1).unsqueeze(0).contiguous()


def random_shift(shift: int = SHIFT) -> T.Transform | None:
    """Random shifts of up to ±`shift` px that keep the size (reflect-pad, then crop back); 0: none.

    A size-keeping transform keeps the content loss aligned with its target.
    """
    return T.compose(T.pad(shift, mode="reflect"), T.jitter(2 * shift)) if shift else None


def _start(param: str, init: str, content_img: Tensor, seed: int) -> Parameterization:
    """The image to optimise: of kind `param`, starting from the content image or from noise."""
    choice("parameterization for style transfer", param, kinds(from_image=True))
    choice("start", init, INITS)
    _, _, h, w = content_img.shape
    if init == "content":
        return make_param(param, h, w, image=content_img)
    return make_param(param, h, w, generator=torch.Generator().manual_seed(seed))


def style_transfer(
    content_image: ImageSource,
    style_image: ImageSource,
    model: Model | str = DEFAULT_MODEL,
    *,
    param: str = "fourier",
    init: str = "content",
    style_layers: Sequence[str] | None = None,
    content_layer: str | None = None,
    content_weight: float = CONTENT_WEIGHT,
    style_weights: Mapping[str, float] | None = None,
    size: int = SIZE,
    style_size: int | None = None,
    steps: int = STEPS,
    lr: float | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    shift: int = SHIFT,
) -> Result:
    """Paint `content_image` in the style of `style_image` (files or (1,3,H,W) tensors in [0,1]).

    The output keeps the content's aspect ratio with its shorter side `size`; the style image is
    resized to shorter side `style_size` (default `size`). Layers default to `DEFAULT_LAYERS`.
    The loss is style + content_weight · content (see `diffparam.objectives.style`); `init`
    starts from the content image (a Fourier image inverts it) or from noise; `param` names the
    kind of image (`kinds(from_image=True)`). Each step shifts the image by up to ±`shift` px
    (`random_shift`). `Result.metrics` hold the final `style_loss` (weighted), `content_loss`
    (unweighted), both measured without transforms, and `high_frequency`, the share of the image's
    spectral energy above HIGH_FREQUENCY cycles per pixel; `history` is the optimised loss per step.
    """
    image_size(size)
    non_negative_float("content_weight", content_weight)
    net = load_model(model)
    layers, layer = style_layers_of(net, style_layers, content_layer)
    content_img = load_image(content_image, size, "the content image")
    style_img = load_image(style_image, style_size or size, "the style image")
    h, w = content_img.shape[-2:]
    check_fits(net, lambda: make_param(param, h, w), resolve_device(device))
    start = _start(param, init, content_img, seed)
    s_targets = style_targets(net, style_img, layers)
    c_target = content_target(net, content_img, layer)
    objective = style(s_targets, style_weights) + content(layer, c_target, content_weight)
    result = render(net, objective, param=start, steps=steps, lr=lr, seed=seed, device=device,
                    progress=progress, transforms=random_shift(shift))
    image = result.images
    result.metrics.update(
        style_loss=-float(objective_values(net, style(s_targets, style_weights), image)[0]),
        content_loss=-float(objective_values(net, content(layer, c_target), image)[0]),
        high_frequency=float(high_frequency_share(image)[0]))
    return result


__getattr__ = deprecation.module_getattr(__name__, {"StyleResult": "diffparam.result:Result"})
