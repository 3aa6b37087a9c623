"""`diffparam layers`: what images a model takes, and its layers: names, channels, layouts and grids."""

from __future__ import annotations

import argparse

from diffparam.cli.common import add_model_options, model_from_args


def _cmd_layers(args: argparse.Namespace) -> int:
    model = model_from_args(args)
    infos = model.layers()
    print(f"# {model.name} takes {model.geometry.describe()}")
    width = max(len(info.name) for info in infos)
    for info in infos:
        print(f"{info.name:<{width}}  {info.channels:>5}  {info.describe()}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `layers`."""
    p = sub.add_parser("layers", help="list a model's layers: channels, layout (image, channels-last, "
                                      "tokens with prefix + grid, heads, vector) and grid")
    add_model_options(p)
    p.set_defaults(func=_cmd_layers)
