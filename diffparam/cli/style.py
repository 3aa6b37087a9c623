"""`diffparam style`: neural style transfer of a content photo in the style of another image."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffparam.cli.common import add_param_option, add_render_options, model_from_args, style_layer_weights
from diffparam.errors import UserError
from diffparam.io import ANIMATION_SUFFIXES, check_animation, check_image_path
from diffparam.param import kinds


def _cmd_style_video(args: argparse.Namespace, weights: dict[str, float] | None) -> int:
    from diffparam.recipes.style_video import style_video

    if args.init != "content":
        raise UserError("--init applies to a photo; a video's frames start from the frame before (--start)")
    out = check_animation(args.out, "--out for a video")
    result = style_video(
        args.content, args.style, out, model_from_args(args), progress=not args.quiet, param=args.param,
        style_layers=list(weights) if weights else None, style_weights=weights,
        content_layer=args.content_layer, content_weight=args.content_weight,
        temporal_weight=args.temporal_weight, start=args.start, size=args.size, steps=args.steps,
        frame_steps=args.frame_steps, lr=args.lr, seed=args.seed, device=args.device)
    print(result.files["video"])
    return 0


def _cmd_style(args: argparse.Namespace) -> int:
    from diffparam.recipes.style import style_transfer

    weights = style_layer_weights(args.style_layers) if args.style_layers else None
    if Path(args.content).suffix.lower() in ANIMATION_SUFFIXES:
        return _cmd_style_video(args, weights)
    out = check_image_path(args.out, "--out")
    result = style_transfer(
        args.content, args.style, model_from_args(args), param=args.param, init=args.init,
        style_layers=list(weights) if weights else None, style_weights=weights,
        content_layer=args.content_layer, content_weight=args.content_weight, size=args.size,
        steps=args.steps, lr=args.lr, seed=args.seed, device=args.device, progress=not args.quiet,
    )
    for path in result.save(out):
        print(path)
    if not args.quiet:
        print(f"style loss {result.style_loss:.3f}, content loss {result.content_loss:.3f}, "
              f"high-frequency energy {100 * result.high_frequency:.2f}%")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `style`."""
    from diffparam.recipes.style import CONTENT_WEIGHT, INITS, SIZE, STEPS
    from diffparam.recipes.style_video import FRAME_STEPS, STARTS, TEMPORAL_WEIGHT

    p = sub.add_parser("style", help="paint a photo or a video in the style of another image (Gatys et al.)",
                       description="Paint CONTENT in the style of STYLE. The output keeps CONTENT's aspect "
                       "ratio with its shorter side --size; STYLE is resized to the same shorter side. "
                       "A video (.gif, .mp4) is painted frame by frame, each frame starting from the one "
                       "before moved along the optical flow (Ruder et al. 2016), into --out (.gif or .mp4).")
    p.add_argument("content", help="content image file (PNG, JPEG, ...) or video (.gif, .mp4)")
    p.add_argument("style", help="style image file")
    add_render_options(p, size=SIZE, steps=STEPS)
    p.add_argument("--out", default="style.png", help="output PNG, or .gif/.mp4 for a video")
    add_param_option(p, kinds(from_image=True))
    p.add_argument("--init", default="content", choices=list(INITS),
                   help="start from the content image or from noise")
    p.add_argument("--style-layers", default=None,
                   help="comma-separated layer names, each optionally LAYER=WEIGHT (default: the "
                   "model's known choice, weights 1)")
    p.add_argument("--content-layer", default=None, help="layer name (default: the model's known choice)")
    p.add_argument("--content-weight", type=float, default=CONTENT_WEIGHT,
                   help="weight of the content loss against the style loss")
    v = p.add_argument_group("video")
    v.add_argument("--temporal-weight", type=float, default=TEMPORAL_WEIGHT,
                   help="how strongly each frame is held to the frame before moved along the flow (0: off)")
    v.add_argument("--frame-steps", type=int, default=FRAME_STEPS,
                   help="steps for each frame after the first (the first gets --steps)")
    v.add_argument("--start", default="warped", choices=list(STARTS),
                   help="start each later frame from the frame before moved along the flow, or from its "
                   "content")
    p.set_defaults(func=_cmd_style)
