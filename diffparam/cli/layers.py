"""`diffparam layers`: a model's layer names, channel counts and output shapes."""

from __future__ import annotations

import argparse

from diffparam.cli.common import add_model_options, model_from_args


def _cmd_layers(args: argparse.Namespace) -> int:
    model = model_from_args(args)
    width = max(len(info.name) for info in model.layers())
    for info in model.layers():
        shape = "x".join(str(s) for s in info.shape)
        print(f"{info.name:<{width}}  {info.channels:>5}  {shape}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `layers`."""
    p = sub.add_parser("layers", help="list a model's layers and their channel counts")
    add_model_options(p)
    p.set_defaults(func=_cmd_layers)
