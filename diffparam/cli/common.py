"""What every subcommand shares: the one-line-error parser and the common rendering options."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffparam.errors import UserError
from diffparam.io import ANIMATION_SUFFIXES, check_writable
from diffparam.models.base import Model
from diffparam.models.registry import DEFAULT_MODEL, load_model


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see `{self.prog} --help`)")


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--model and --weights, as every command that loads a network takes them."""
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"{DEFAULT_MODEL} (embedded), torchvision:NAME or timm:NAME")
    p.add_argument("--weights", default=None, help="state-dict file to load into the model")


def add_render_options(p: argparse.ArgumentParser, size: int = 224, steps: int = 512) -> None:
    """The options every rendering subcommand shares, with the same meaning everywhere."""
    add_model_options(p)
    p.add_argument("--size", type=int, default=size, help="image size in pixels (16..4096)")
    p.add_argument("--steps", type=int, default=steps, help="optimisation steps")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (Adam); default: tuned per command (0.05 for images, 0.005 "
                   "for CPPNs, 0.02 for texture-style)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def model_from_args(args: argparse.Namespace) -> Model:
    """The network named by --model/--weights."""
    return load_model(args.model, args.weights)


def check_animation(path: str, option: str) -> Path:
    """`path` as an animation file (.gif or .mp4) that can be written; the name is checked first,
    so a wrong one creates no folder."""
    out = Path(path)
    if out.suffix.lower() not in ANIMATION_SUFFIXES:
        raise UserError(f"{option} must end in .gif or .mp4, got {out}")
    return check_writable(out)
