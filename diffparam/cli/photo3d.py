"""`diffparam photo3d`: a 3D photo from one RGB-D image (layered depth, a filled hidden layer, parallax)."""

from __future__ import annotations

import argparse

from diffparam.cli.common import add_model_options, model_from_args, print_paths


def _cmd(args: argparse.Namespace) -> int:
    from diffparam.recipes.photo3d import photo3d

    model = model_from_args(args) if args.fill == "context" else args.model
    result = photo3d(args.image, args.depth, disparity=args.disparity, fov=args.fov, size=args.size,
                     fill=args.fill, steps=args.steps, band=args.band, model=model, seed=args.seed,
                     device=args.device, progress=not args.quiet, out=args.out, path=args.path,
                     frames=args.frames, fps=args.fps, video=args.video, cameras=args.cameras)
    print_paths(list(result.files.values()))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `photo3d`."""
    from diffparam.recipes.photo3d import FOV, FPS, FRAMES, PATH_CHOICES, SIZE, VIDEO_FORMATS
    from diffparam.recipes.photo3d_fill import FILL_STEPS, FILLS

    p = sub.add_parser("photo3d", help="a 3D photo from one RGB-D image: parallax videos, GLB, web page",
                       description="Cut the photo at its depth edges into a layered depth image, fill what "
                       "the near side hides from the far side around it, and write "
                       "parallax videos (or the views of --cameras), scene.glb and index.html into --out.")
    p.add_argument("image", help="the photo")
    p.add_argument("depth", help="its z-depth (16-bit PNG, TIFF, PGM or .npy), or disparity with --disparity")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--path", default="all", choices=PATH_CHOICES, help="camera path of the videos")
    p.add_argument("--frames", type=int, default=FRAMES, help="frames per video")
    p.add_argument("--fps", type=float, default=FPS, help="frames per second of the videos")
    p.add_argument("--video", default="mp4", choices=VIDEO_FORMATS, help="video format")
    p.add_argument("--disparity", action="store_true", help="DEPTH is disparity (inverse depth)")
    p.add_argument("--fov", type=float, default=FOV, help="the photo's horizontal field of view (degrees)")
    p.add_argument("--cameras", default=None,
                   help="a transforms.json-layout file: render its views as PNGs instead of the videos")
    p.add_argument("--size", type=int, default=SIZE, help="width (px) of the layers and the outputs (at most "
                   "the photo's)")
    p.add_argument("--fill", default="exemplar", choices=FILLS,
                   help="hidden layer: copies from the far side at the best offsets; those refined to match "
                   "the far side's deep-feature statistics on --model (slower, measured worse); OpenCV's "
                   "Telea; or none (one stretched sheet)")
    p.add_argument("--steps", type=int, default=FILL_STEPS,
                   help="optimisation steps of the context-aware fill")
    p.add_argument("--band", type=int, default=None, help="width (px) of the hidden layer behind each depth "
                   "edge (default: 6%% of --size)")
    add_model_options(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd)
