"""`diffparam demo`: a small gallery on the embedded model (what `make demo` runs)."""

from __future__ import annotations

import argparse

from diffparam.render import check_size


def _cmd_demo(args: argparse.Namespace) -> int:
    from diffparam.recipes.demo import run_demo

    check_size(args.size)
    page = run_demo(args.out, size=args.size, steps=args.steps, seed=args.seed,
                    device=args.device, progress=not args.quiet)
    print(page)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `demo`."""
    p = sub.add_parser("demo", help="render a small gallery on the embedded model")
    p.add_argument("--out", default="demo", help="output folder")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_demo)
