"""`diffparam cppn` (CPPN art at any resolution, optionally filmed) and `diffparam morph`."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffparam.checks import image_size
from diffparam.cli.common import (
    UNITS_HELP,
    Renamed,
    add_render_options,
    check_distinct,
    model_from_args,
    print_paths,
)
from diffparam.errors import UserError
from diffparam.io import check_animation, check_writable
from diffparam.objectives import channel_list, parse
from diffparam.param import CPPN


def _check_png(path: str) -> Path:
    out = check_writable(path)
    if out.suffix.lower() != ".png":
        raise UserError(f"--out must be a .png file, got {out}")
    return out


def _cmd_cppn(args: argparse.Namespace) -> int:
    from diffparam.recipes.cppn_art import RENDER_SIZES, cppn_art

    image_size(args.size)
    if channel_list(args.objective):
        raise UserError("cppn renders one objective; give one channel (LAYER:CHANNEL), not a list")
    if args.render_size is not None:
        image_size(args.render_size, "render_size", RENDER_SIZES)
    if args.video_size is not None:
        image_size(args.video_size, "video_size")
    model = model_from_args(args)
    objective = parse(args.objective, model)  # checked before anything touches the disk
    check_distinct(out=args.out, save=args.save, video=args.video)
    out = _check_png(args.out)
    video = None if args.video is None else check_animation(args.video, "--video")
    if args.save is not None:
        check_writable(args.save)
    art = cppn_art(model, objective, size=args.size, steps=args.steps, lr=args.lr, seed=args.seed,
                   device=args.device, progress=not args.quiet, video=video, every=args.every,
                   video_size=args.video_size, fps=args.fps, hidden=args.hidden, depth=args.depth)
    print_paths(art.save(out, render_size=args.render_size, network=args.save, progress=not args.quiet))
    if "video" in art.files:
        print(art.files["video"])
    return 0


def _cmd_morph(args: argparse.Namespace) -> int:
    from diffparam.recipes.cppn_art import RENDER_SIZES, morph

    if args.size is not None:
        image_size(args.size, "size", RENDER_SIZES)
    a, b = CPPN.load(args.a), CPPN.load(args.b)
    out = check_animation(args.out, "--out")
    result = morph(a, b, out, frames=args.frames, size=args.size, fps=args.fps, device=args.device,
                   progress=not args.quiet)
    print(result.files["animation"])
    adjacent = result.adjacent
    print(f"adjacent-frame change: mean {sum(adjacent) / len(adjacent):.4f}, largest {max(adjacent):.4f} "
          f"({result.jump:.1f}x the mean); first to last {result.endpoints:.4f}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `cppn` and `morph`."""
    p = sub.add_parser("cppn", help="CPPN art: optimise a CPPN, render it at any size, film it")
    p.add_argument("objective", help=f"LAYER, LAYER:CHANNEL, {UNITS_HELP}")
    add_render_options(p, lr=f"{CPPN.default_lr:g}")
    p.add_argument("--out", default="art.png", help="output PNG")
    p.add_argument("--render-size", type=int, default=None,
                   help="write --out at this many pixels (16..16384) instead of --size")
    p.add_argument("--save", default=None, help="also save the trained CPPN here (.pt)")
    p.add_argument("--video", default=None, help="film the training as a .gif or .mp4")
    p.add_argument("--every", type=int, default=4, help="one video frame every this many steps")
    p.add_argument("--video-size", type=int, default=None,
                   help="video frames rendered at this many pixels, 16..4096 (default --size)")
    p.add_argument("--fps", type=float, default=12.0, help="video frames per second")
    p.add_argument("--hidden", type=int, default=24, help="CPPN units per hidden layer")
    p.add_argument("--depth", type=int, default=8, help="CPPN hidden layers")
    p.add_argument("--layers", type=int, action=Renamed, new="--depth")
    p.set_defaults(func=_cmd_cppn)

    p = sub.add_parser("morph", help="a GIF/MP4 morph between two CPPNs saved by `cppn --save`")
    p.add_argument("a", help="first CPPN (.pt)")
    p.add_argument("b", help="second CPPN (.pt), same architecture")
    p.add_argument("--frames", type=int, default=48, help="frames from A to B, both included")
    p.add_argument("--out", default="morph.gif", help="output .gif or .mp4")
    p.add_argument("--size", type=int, default=None, help="frame size in pixels (default A's size)")
    p.add_argument("--fps", type=float, default=12.0, help="frames per second")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_morph)
