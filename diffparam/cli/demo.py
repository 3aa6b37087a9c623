"""`diffparam demo`: a small gallery on the embedded model (what `make demo` runs)."""

from __future__ import annotations

import argparse

from diffparam.checks import image_size


def _cmd_demo(args: argparse.Namespace) -> int:
    from diffparam.recipes.demo import demo

    image_size(args.size)
    result = demo(size=args.size, steps=args.steps, seed=args.seed, device=args.device,
                  progress=not args.quiet)
    result.save(args.out)
    print(result.files["page"])
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `demo`."""
    p = sub.add_parser("demo", help="render a small gallery on the embedded model")
    p.add_argument("--out", default="demo", help="output folder")
    p.add_argument("--size", type=int, default=128, help="image size in pixels (16..4096)")
    p.add_argument("--steps", type=int, default=256, help="optimisation steps")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_demo)
