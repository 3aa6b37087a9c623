"""`diffparam style`: neural style transfer of a content photo in the style of another image."""

from __future__ import annotations

import argparse

from diffparam.cli.common import add_param_option, add_render_options, model_from_args, style_layer_weights
from diffparam.io import check_image_path
from diffparam.param import kinds


def _cmd_style(args: argparse.Namespace) -> int:
    from diffparam.recipes.style import style_transfer

    out = check_image_path(args.out, "--out")
    weights = style_layer_weights(args.style_layers) if args.style_layers else None
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

    p = sub.add_parser("style", help="paint a photo in the style of another image (Gatys et al.)",
                       description="Paint CONTENT in the style of STYLE. The output keeps CONTENT's aspect "
                       "ratio with its shorter side --size; STYLE is resized to the same shorter side.")
    p.add_argument("content", help="content image file (PNG, JPEG, ...)")
    p.add_argument("style", help="style image file")
    add_render_options(p, size=SIZE, steps=STEPS)
    p.add_argument("--out", default="style.png", help="output PNG")
    add_param_option(p, kinds(from_image=True))
    p.add_argument("--init", default="content", choices=list(INITS),
                   help="start from the content image or from noise")
    p.add_argument("--style-layers", default=None,
                   help="comma-separated layer names, each optionally LAYER=WEIGHT (default: the "
                   "model's known choice, weights 1)")
    p.add_argument("--content-layer", default=None, help="layer name (default: the model's known choice)")
    p.add_argument("--content-weight", type=float, default=CONTENT_WEIGHT,
                   help="weight of the content loss against the style loss")
    p.set_defaults(func=_cmd_style)
