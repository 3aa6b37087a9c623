"""`diffparam interpolate`: an animation from objective A to objective B with aligned frames."""

from __future__ import annotations

import argparse

from diffparam.checks import image_size, non_negative_float, real, whole
from diffparam.cli.common import (
    add_param_option,
    add_render_options,
    check_distinct,
    model_from_args,
    print_paths,
)
from diffparam.io import FPS, check_animation, check_image_path
from diffparam.param import kinds


def _cmd_interpolate(args: argparse.Namespace) -> int:
    from diffparam.recipes.interpolate import interpolation_objective, render_interpolation

    image_size(args.size)
    real("fps", args.fps, *FPS, hint="(frames per second)")
    whole("frames", args.frames, 2)
    non_negative_float("align_weight", args.align_weight)
    out = check_animation(args.out, "--out")
    check_distinct(out=args.out, strip=args.strip or out.with_suffix(".png"))
    if args.strip is not None:
        check_image_path(args.strip, "--strip")
    model = model_from_args(args)
    # Checked before the long render: objectives, alignment layer.
    interpolation_objective(model, args.a, args.b, args.align_weight, args.align_layer).validate(model)
    result = render_interpolation(
        model, args.a, args.b, args.frames, shared=not args.no_shared, align_weight=args.align_weight,
        align_layer=args.align_layer, param=args.param, size=args.size, steps=args.steps, lr=args.lr,
        seed=args.seed, device=args.device, progress=not args.quiet)
    print_paths(result.save(out, strip=args.strip, fps=args.fps))
    if not args.quiet:
        print(f"adjacent-frame correlation {result.alignment:.3f}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `interpolate`."""
    p = sub.add_parser("interpolate", help="animate from objective A to objective B, frames aligned")
    p.add_argument("a", help="objective of the first frame (LAYER:CHANNEL, logit:CLASS, ...)")
    p.add_argument("b", help="objective of the last frame")
    add_render_options(p, size=128, steps=512)
    p.add_argument("--frames", type=int, default=8, help="number of frames (at least 2)")
    p.add_argument("--no-shared", action="store_true",
                   help="optimise every frame independently (no shared parameterization)")
    p.add_argument("--align-weight", type=float, default=0.0,
                   help="weight of the alignment term between nearby frames (0: off; 0.1 is usual)")
    p.add_argument("--align-layer", default=None,
                   help="layer whose activations are aligned (default: objective A's layer; "
                   "for logit: objectives give a convolutional one, e.g. blocks.10)")
    add_param_option(p, kinds(composable=True), "parameterization of each frame and of the shared parts")
    p.add_argument("--fps", type=float, default=8.0, help="animation frames per second")
    p.add_argument("--strip", default=None, help="strip PNG of all frames (default: OUT with .png)")
    p.add_argument("--out", default="interpolation.gif", help="animation: .gif, or .mp4")
    p.set_defaults(func=_cmd_interpolate)
