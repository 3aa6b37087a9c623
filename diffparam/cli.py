"""Command line: one subcommand per user task, each a thin layer over the Python API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from diffparam import __version__
from diffparam.errors import NonFiniteLossError, UserError
from diffparam.io import check_writable, save_image
from diffparam.models.registry import DEFAULT_MODEL, load_model
from diffparam.objectives import channel_list, parse
from diffparam.param import make_param
from diffparam.render import check_size, render


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see `{self.prog} --help`)")


def add_render_options(p: argparse.ArgumentParser, size: int = 224, steps: int = 512) -> None:
    """The options every rendering subcommand shares, with the same meaning everywhere."""
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"{DEFAULT_MODEL} (embedded), torchvision:NAME or timm:NAME")
    p.add_argument("--weights", default=None, help="state-dict file to load into the model")
    p.add_argument("--size", type=int, default=size, help="image size in pixels (16..4096)")
    p.add_argument("--steps", type=int, default=steps, help="optimisation steps")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (Adam); default 0.05, or 0.005 for --param cppn")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _cmd_render(args: argparse.Namespace) -> int:
    check_size(args.size)
    if args.batch < 1:
        raise UserError(f"--batch must be at least 1, got {args.batch}")
    listed = channel_list(args.objective)
    if listed is not None and args.batch != 1:
        raise UserError("a channel list renders one image per channel: drop --batch")
    batch = len(listed[1]) if listed else args.batch
    out = Path(args.out)
    if listed and out.suffix.lower() in {".png", ".jpg", ".jpeg"}:
        raise UserError(f"a channel list writes one PNG per channel: give a folder, not {out}")
    model = load_model(args.model, args.weights)
    objective = parse(args.objective, model)  # checked before anything touches the disk
    check_writable(out / f"{listed[0]}_{listed[1][0]}.png" if listed else out)
    param = make_param(args.param, args.size, batch=batch,
                       generator=torch.Generator().manual_seed(args.seed))
    try:
        result = render(model, objective, param=param, steps=args.steps, lr=args.lr,
                        seed=args.seed, device=args.device, progress=not args.quiet,
                        precision=args.precision)
    except NonFiniteLossError as exc:
        if exc.result is not None and not listed:
            exc.result.save(out, separate=args.separate)
        raise
    if listed:
        layer, cs = listed
        paths = [save_image(img, out / f"{layer}_{c}.png") for img, c in zip(result.images, cs,
                                                                              strict=True)]
    else:
        paths = result.save(out, separate=args.separate)
    for path in paths:
        print(path)
    return 0


def _cmd_layers(args: argparse.Namespace) -> int:
    model = load_model(args.model, args.weights)
    width = max(len(info.name) for info in model.layers())
    for info in model.layers():
        shape = "x".join(str(s) for s in info.shape)
        print(f"{info.name:<{width}}  {info.channels:>5}  {shape}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from diffparam.recipes.demo import run_demo

    check_size(args.size)
    page = run_demo(args.out, size=args.size, steps=args.steps, seed=args.seed,
                    device=args.device, progress=not args.quiet)
    print(page)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `diffparam` argument parser with all its subcommands."""
    parser = _Parser(prog="diffparam", description="Images made by optimising differentiable "
                     "parameterizations through neural networks.")
    parser.add_argument("--version", action="version", version=f"diffparam {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("render", help="feature visualization of one objective")
    p.add_argument("objective", help="LAYER, LAYER:CHANNEL, LAYER:C1,C2,... (one image each, "
                   "--out DIR/), LAYER:CHANNEL@X,Y or logit:CLASS")
    add_render_options(p)
    p.add_argument("--param", default="fourier", choices=["fourier", "pixel", "cppn"],
                   help="image parameterization")
    p.add_argument("--batch", type=int, default=1, help="images from different random starts")
    p.add_argument("--separate", action="store_true", help="one file per image instead of a grid")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="bf16 autocasts the model (GPU speed)")
    p.add_argument("--out", default="out.png", help="output PNG (a folder for a channel list)")
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("layers", help="list a model's layers and their channel counts")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--weights", default=None)
    p.set_defaults(func=_cmd_layers)

    p = sub.add_parser("demo", help="render a small gallery on the embedded model")
    p.add_argument("--out", default="demo", help="output folder")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors print one line to stderr and return status 2."""
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "steps", 1) < 1:
            raise UserError(f"--steps must be at least 1, got {args.steps}")
        return args.func(args)
    except UserError as exc:
        print(f"diffparam: error: {exc}", file=sys.stderr)
        return 2
    except NonFiniteLossError as exc:
        print(f"diffparam: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("diffparam: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
