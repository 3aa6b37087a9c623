"""What every subcommand shares: the one-line-error parser and the common options."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from diffparam.deprecation import RELEASE
from diffparam.errors import UserError
from diffparam.models.base import Model
from diffparam.models.registry import DEFAULT_MODEL, load_model
from diffparam.param.kinds import KINDS, help_text
from diffparam.pipeline import PRECISIONS


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see `{self.prog} --help`)")


class Renamed(argparse.Action):
    """An old flag that still works for one release: it warns and sets the new flag's value."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str, **kwargs: Any) -> None:
        self.new = new
        kwargs.setdefault("default", argparse.SUPPRESS)
        super().__init__(option_strings, dest=new.lstrip("-").replace("-", "_"), help=argparse.SUPPRESS,
                         **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"diffparam: warning: {option_string} is deprecated and goes in diffparam {RELEASE}: use "
              f"{self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--model and --weights, as every command that loads a network takes them."""
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"{DEFAULT_MODEL} (embedded), torchvision:NAME or timm:NAME")
    p.add_argument("--weights", default=None, help="state-dict file to load into the model")


def add_render_options(p: argparse.ArgumentParser, size: int = 224, steps: int = 512,
                       lr: str | None = None) -> None:
    """The options every rendering subcommand shares, with the same meaning everywhere. `lr` says
    what the default learning rate is (default: the parameterizations' own)."""
    add_model_options(p)
    p.add_argument("--size", type=int, default=size, help=f"image size in pixels, 16..4096 (default {size})")
    p.add_argument("--steps", type=int, default=steps, help=f"optimisation steps (default {steps})")
    lrs = lr or "the parameterization's own: " + ", ".join(
        f"{kind.default_lr:g} for {name}" for name, kind in KINDS.items())
    p.add_argument("--lr", type=float, default=None, help=f"learning rate (Adam); default {lrs}")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_param_option(p: argparse.ArgumentParser, among: list[str] | None = None,
                     what: str = "image parameterization") -> None:
    """--param: a kind from the registry (`diffparam.param.KINDS`), `among` those that fit here."""
    choices = among if among is not None else list(KINDS)
    p.add_argument("--param", default=choices[0], choices=choices,
                   help=f"{what} ({help_text(choices)})")


def add_precision_option(p: argparse.ArgumentParser) -> None:
    """--precision, as the commands that render on a GPU take it."""
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                   help="bf16 autocasts the model (GPU speed)")


def model_from_args(args: argparse.Namespace) -> Model:
    """The network named by --model/--weights."""
    return load_model(args.model, args.weights)


def print_paths(paths: Sequence[Path]) -> None:
    """The files a command wrote, one per line on stdout."""
    for path in paths:
        print(path)
