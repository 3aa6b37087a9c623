"""The registry of parameterization kinds: one table that the Python API and the command line read.

A kind is a named family of image parameterizations ("fourier", "pixel", "cppn") that can be built
from a size and a batch alone. Whether it composes into shared frames and whether it starts from an
image are read off the class; how it carries an opacity channel is the one thing its `Kind` line
says. A new kind is one `Kind(...)` line here, and every command offers it where it fits.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from diffparam import deprecation
from diffparam.checks import choice, positive_int
from diffparam.errors import UserError
from diffparam.param.base import Parameterization
from diffparam.param.cppn import CPPN
from diffparam.param.fourier import FourierImage
from diffparam.param.gan import GANImage
from diffparam.param.maco import MacoImage
from diffparam.param.pixel import PixelImage
from diffparam.param.rgba import RGBAImage


@dataclass(frozen=True)
class Kind:
    """One parameterization kind: its name, its class and a line of help."""

    name: str
    cls: type[Parameterization]
    help: str
    alpha_channel: bool = False
    """True: the RGBA version is one network with 4 output channels; False: colour and alpha are
    two parameterizations of this kind (`RGBAImage`)."""

    @property
    def default_lr(self) -> float:
        """The Adam learning rate that suits this kind (render's default)."""
        return self.cls.default_lr

    @property
    def composable(self) -> bool:
        """Whether it has logits(), so frames can share parts of it (`SharedImage`)."""
        return self.cls.logits is not Parameterization.logits

    @property
    def from_image(self) -> bool:
        """Whether it can start from a given image (`cls.from_image`), as style transfer does."""
        return callable(getattr(self.cls, "from_image", None))


KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind("fourier", FourierImage, "a 1/f-scaled Fourier spectrum with decorrelated colour (the default)"),
    Kind("pixel", PixelImage, "every pixel a free parameter"),
    Kind("maco", MacoImage, "MACO: only the Fourier phase is optimised, the magnitude is natural photos'"),
    Kind("cppn", CPPN, "a CPPN: a network from pixel coordinates to colour, renders at any size",
         alpha_channel=True),
)}
"""Every kind by name."""

SOURCED: dict[str, Kind] = {kind.name: kind for kind in (
    Kind("gan", GANImage, "gan:RUN_DIR: a GAN trained by `diffparam gan train`, its noise inputs optimised"),
)}
"""Kinds built from a file as well as a size, named `NAME:PATH` (the path goes to the class as `run`)."""


def split_sourced(param: str) -> tuple[str, str] | None:
    """(kind, path) for a `NAME:PATH` of a sourced kind (`SOURCED`), else None."""
    name, sep, path = param.partition(":")
    if not sep or name not in SOURCED:
        return None
    if not path:
        raise UserError(f"`param` {param!r} needs a path after the colon: {name}:RUN_DIR")
    return name, path


class KindChoices(list):
    """The kind names a command offers, which also take `NAME:PATH` for the sourced kinds (`SOURCED`):
    what argparse checks a --param against."""

    def __contains__(self, value: object) -> bool:
        name, sep, path = value.partition(":") if isinstance(value, str) else ("", "", "")
        return super().__contains__(value) or bool(sep and path and name in SOURCED)

    @property
    def metavar(self) -> str:
        """How a usage line shows them: `{fourier,...,gan:RUN_DIR}`."""
        return "{" + ",".join([*self, *(f"{name}:RUN_DIR" for name in SOURCED)]) + "}"


def kinds(*, composable: bool | None = None, from_image: bool | None = None) -> list[str]:
    """The names of the kinds that can (True) or cannot (False) do what is asked; all by default."""
    return [name for name, kind in KINDS.items()
            if (composable is None or kind.composable == composable)
            and (from_image is None or kind.from_image == from_image)]


def kind(name: str, among: list[str] | None = None) -> Kind:
    """The kind called `name` (or `NAME:PATH`, a sourced kind where every kind is allowed), checked
    against `among` (default: every kind)."""
    sourced = split_sourced(name) if among is None and isinstance(name, str) else None
    if sourced is not None:
        return SOURCED[sourced[0]]
    return KINDS[choice("param", name, among if among is not None else list(KINDS))]


def help_text(among: list[str] | None = None) -> str:
    """One line naming each kind (of `among`; default every kind, the sourced ones too) and what it is,
    for command-line help."""
    listed = [f"{name}: {KINDS[name].help}" for name in (among or list(KINDS))]
    return "; ".join(listed if among else [*listed, *(k.help for k in SOURCED.values())])


_MADE_HERE = ("height", "width", "batch", "channels", "generator", "img", "run")
"""Arguments `make_param` gives a class itself: not settings a caller may pass."""


def _check_settings(param: str, target: Any, options: dict[str, Any]) -> None:
    takes = set(inspect.signature(target).parameters) - set(_MADE_HERE)
    for name in options:
        if name not in takes:
            raise UserError(f"`{name}` is not a setting of the {param} param; it takes "
                            f"{', '.join(sorted(takes)) or 'none'}")


@deprecation.renames(kind="param")
def make_param(
    param: str,
    height: int,
    width: int | None = None,
    batch: int = 1,
    generator: torch.Generator | None = None,
    *,
    alpha: bool = False,
    image: Tensor | None = None,
    channels: int = 3,
    **options: Any,
) -> Parameterization:
    """A parameterization of kind `param`: `batch` images of height x width with `channels` channels
    (3: RGB; 1 or more for a model that takes grey or multispectral images), with its default settings
    but for `options` (keyword arguments of its class, `spectrum_from` of "maco", say).

    `alpha` adds an opacity channel to RGB (RGBA); `image` (B,C,H,W) in [0,1] starts from that image
    instead of noise (kinds with `from_image`; size, batch and device then come from the image, and
    nothing is drawn from `generator`).
    """
    found = kind(param)
    sourced = split_sourced(param)
    if sourced is not None:
        if alpha or image is not None:
            raise UserError(f"a {sourced[0]} param draws its own RGB images: drop "
                            f"{'alpha' if alpha else 'image'}")
        _check_settings(param, found.cls, options)
        return found.cls(height, width, batch=positive_int("batch", batch), channels=channels,
                         generator=generator, run=sourced[1], **options)
    if image is not None:
        if alpha:
            raise UserError("a parameterization started from an image has no opacity channel: drop alpha")
        if not found.from_image:
            raise UserError(f"a {param} parameterization cannot start from an image; use one of: "
                            f"{', '.join(kinds(from_image=True))}")
        _check_settings(param, found.cls.from_image, options)  # type: ignore[attr-defined]
        return found.cls.from_image(image, **options)  # type: ignore[attr-defined]
    _check_settings(param, found.cls, options)
    positive_int("batch", batch)
    if positive_int("channels", channels) != 3:
        if alpha:
            raise UserError(f"an opacity channel goes with RGB images, not {channels} channels: drop alpha")
        return found.cls(height, width, batch=batch, channels=channels, generator=generator, **options)
    if not alpha:
        return found.cls(height, width, batch=batch, generator=generator, **options)
    if found.alpha_channel:
        return found.cls(height, width, batch=batch, channels=4, generator=generator, **options)
    color = found.cls(height, width, batch=batch, channels=3, generator=generator, **options)
    return RGBAImage(color, found.cls(height, width, batch=batch, channels=1, generator=generator, **options))


_RGBA_KINDS = tuple(KINDS)
"""What `param.rgba.RGBA_KINDS` was (deprecated): every kind can carry an opacity channel."""


def make_rgba(kind: str, height: int, width: int | None = None, batch: int = 1,
              generator: torch.Generator | None = None) -> Parameterization:
    """Deprecated: `make_param(kind, height, width, batch, generator, alpha=True)`."""
    deprecation.warn("make_rgba", "make_param(..., alpha=True)")
    return make_param(kind, height, width, batch, generator, alpha=True)
