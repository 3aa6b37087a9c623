"""`diffparam style-net train|apply`: fast style transfer with a trained network (Johnson et al. 2016)."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffparam.checks import positive_int
from diffparam.cli.common import add_model_options, model_from_args, print_paths
from diffparam.errors import UserError
from diffparam.io import (
    ANIMATION_SUFFIXES,
    check_animation,
    check_image_path,
    check_writable,
    load_image,
    photo_files,
)


def _cmd_train(args: argparse.Namespace) -> int:
    from diffparam.recipes.style_net import train_style_net

    check_writable(args.out)
    positive_int("every", args.every)
    if args.images is not None:
        photo_files(args.images)  # a bad folder fails before anything loads
    load_image(args.style, args.size, "the style image")
    model = model_from_args(args)
    result = train_style_net(args.style, args.out, images=args.images, model=model, steps=args.steps,
                             size=args.size, batch=args.batch, lr=args.lr, width=args.width,
                             style_weight=args.style_weight, content_weight=args.content_weight,
                             stability_weight=args.stability_weight, motion_weight=args.motion_weight,
                             seed=args.seed, device=args.device, progress=not args.quiet, every=args.every)
    print(result.files["net"])
    if not args.quiet and result.history:
        print(f"trained {len(result.history)} steps: loss {result.history[0]:.3g} at the first, "
              f"{result.history[-1]:.3g} at the last")
    return 0


def _cmd_apply(args: argparse.Namespace) -> int:
    from diffparam.recipes.style_net import STABLE_BLEND, apply_style_net, load_style_net, stylise_video

    video = Path(args.input).suffix.lower() in ANIMATION_SUFFIXES
    if args.stable and not video:
        raise UserError("--stable follows motion from frame to frame: it applies to videos (.gif, .mp4)")
    if args.blend is not None and not args.stable:
        raise UserError("--blend sets how much --stable carries over: give --stable too")
    out = check_animation(args.out, "--out for a video") if video else check_image_path(args.out, "--out")
    net = load_style_net(args.net)
    if video:
        result = stylise_video(net, args.input, out, size=args.size, device=args.device,
                               progress=not args.quiet, stable=args.stable,
                               blend=STABLE_BLEND if args.blend is None else args.blend)
        print(result.files["video"])
    else:
        print_paths(apply_style_net(net, args.input, size=args.size, device=args.device).save(out))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `style-net train` and `style-net apply`."""
    from diffparam.recipes.style_net import BATCH, LR, SIZE, STEPS

    p = sub.add_parser("style-net", help="fast style transfer: train a network for one style, apply it",
                       description="Train an image-transformation network (Johnson et al. 2016) whose "
                       "outputs minimise the style and content objectives on --model, then stylise photos "
                       "in one pass.")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="{train,apply}")
    t = verbs.add_parser("train", help="train a network for STYLE into --out (resumes when run again)")
    t.add_argument("style", help="the style image")
    t.add_argument("--out", required=True, help="the network file (.pt), also the checkpoint to resume from")
    t.add_argument("--images", default=None, help="folder of content photos (default: scikit-image's)")
    add_model_options(t)
    t.add_argument("--steps", type=int, default=STEPS,
                   help="optimiser steps in all (asking for more resumes and goes on)")
    t.add_argument("--size", type=int, default=SIZE, help="side of the training crops (px)")
    t.add_argument("--batch", type=int, default=BATCH, help="crops per step")
    t.add_argument("--lr", type=float, default=LR, help="Adam's learning rate")
    t.add_argument("--width", type=int, default=32, help="channels of the network at full resolution")
    t.add_argument("--style-weight", type=float, default=1.0, help="weight of the style loss")
    t.add_argument("--content-weight", type=float, default=1.0, help="weight of the content loss")
    t.add_argument("--stability-weight", type=float, default=0.0,
                   help="weight of the stability loss (a network that ignores pixel noise flickers less "
                   "on video)")
    t.add_argument("--motion-weight", type=float, default=0.0,
                   help="weight of the motion loss (the output should move with the picture under small "
                   "random camera motions: less flicker on video)")
    t.add_argument("--every", type=int, default=100, help="steps between checkpoints")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help="auto, cpu or cuda")
    t.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    t.set_defaults(func=_cmd_train)
    a = verbs.add_parser("apply", help="stylise an image with a trained network")
    a.add_argument("net", help="a network file written by `style-net train`")
    a.add_argument("input", help="the image, or the video (.gif, .mp4: streamed frame by frame), to stylise")
    a.add_argument("--out", required=True, help="output PNG, or .gif/.mp4 for a video")
    a.add_argument("--size", type=int, default=None, help="shorter side of the output (default: the input's)")
    a.add_argument("--device", default="auto", help="auto, cpu or cuda")
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    a.add_argument("--stable", action="store_true",
                   help="for a video: carry each output along the optical flow into the next frame (less "
                   "flicker)")
    from diffparam.recipes.style_net import STABLE_BLEND

    a.add_argument("--blend", type=float, default=None,
                   help=f"with --stable: the share of each pixel carried over from the frame before, in "
                   f"[0, 1) (default {STABLE_BLEND}; more is steadier and less styled)")
    a.set_defaults(func=_cmd_apply)
