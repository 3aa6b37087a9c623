"""`diffparam gan train|sample|animate|paint|harmonize`: a GAN learned from one image (SinGAN-style)."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffparam.checks import positive_int
from diffparam.cli.common import print_paths
from diffparam.errors import UserError
from diffparam.io import check_animation, check_image_path, check_writable, read_image
from diffparam.train.singan import read_meta


def _size(text: str | None) -> tuple[int, int] | None:
    """--size WxH → (height, width)."""
    if text is None:
        return None
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit():
        raise UserError(f"--size must be WIDTHxHEIGHT in pixels, such as 320x180, got {text!r}")
    return int(h), int(w)


def _cmd_train(args: argparse.Namespace) -> int:
    from diffparam.recipes.gan import check_run_folder, train_gan

    positive_int("every", args.every)
    check_run_folder(args.out)
    result = train_gan(args.images, args.out, scales=args.scales, size=args.size, min_size=args.min_size,
                       steps=args.steps, lr=args.lr, width=args.width, batch=args.batch, seed=args.seed,
                       device=args.device, progress=not args.quiet, every=args.every)
    print(result.files["run"])
    if not args.quiet:
        rec = result.metrics["reconstruction"]
        print(f"trained {len(rec)} scales in {result.seconds:.1f} s; the finest scale reconstructs the image "
              f"within {rec[-1]:.3g} RMS")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from diffparam.recipes.gan import gan_samples

    read_meta(args.run)
    check_writable(Path(args.out) / "sample_0.png")
    result = gan_samples(args.run, n=args.n, size=_size(args.size), seed=args.seed, device=args.device)
    print_paths(result.save(args.out))
    return 0


def _cmd_animate(args: argparse.Namespace) -> int:
    from diffparam.recipes.gan import gan_animation

    read_meta(args.run)
    check_animation(args.out, "--out")
    result = gan_animation(args.run, args.out, frames=args.frames, fps=args.fps, smoothness=args.smoothness,
                           size=_size(args.size), seed=args.seed, device=args.device)
    print(result.files["video"])
    return 0


def _cmd_paint(args: argparse.Namespace) -> int:
    from diffparam.recipes.gan import gan_paint

    read_meta(args.run)
    out = check_image_path(args.out, "--out")
    sketch = read_image(args.sketch)
    print_paths(gan_paint(args.run, sketch, start_scale=args.start_scale, seed=args.seed,
                          device=args.device).save(out))
    return 0


def _cmd_harmonize(args: argparse.Namespace) -> int:
    from diffparam.recipes.gan import gan_harmonize

    read_meta(args.run)
    out = check_image_path(args.out, "--out")
    image = read_image(args.image)
    mask = read_image(args.mask) if args.mask is not None else None
    print_paths(gan_harmonize(args.run, image, mask, start_scale=args.start_scale, seed=args.seed,
                              device=args.device).save(out))
    return 0


def _common(p: argparse.ArgumentParser, run: bool = True) -> None:
    if run:
        p.add_argument("run", help="a run folder written by `diffparam gan train`")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `gan train`, `gan sample`, `gan animate`, `gan paint` and `gan harmonize`."""
    from diffparam.recipes.gan import LR, MIN_SIZE, SCALES, SIZE, STEPS, WIDTH

    p = sub.add_parser("gan", help="a GAN learned from one image (SinGAN): train, sample, animate, paint, "
                       "harmonize", description="Train a pyramid of small generator/critic pairs on one "
                       "image (or a folder's patches), coarse to fine, then draw from it. A run folder is "
                       "also --param gan:RUN_DIR of render and atlas.")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="{train,sample,animate,paint,harmonize}")
    t = verbs.add_parser("train", help="train on IMAGE (or a folder) into --out (resumes when run again)")
    t.add_argument("images", help="the image, or a folder of images (patches of all of them)")
    t.add_argument("--out", required=True, help="the run folder (also what a second run resumes from)")
    t.add_argument("--scales", type=int, default=SCALES, help="scales of the pyramid")
    t.add_argument("--size", type=int, default=SIZE, help="longer side of the finest scale (px); larger "
                   "images are downscaled")
    t.add_argument("--min-size", type=int, default=MIN_SIZE, help="shorter side of the coarsest scale (px)")
    t.add_argument("--steps", type=int, default=STEPS, help="training iterations per scale")
    t.add_argument("--lr", type=float, default=LR, help="Adam's learning rate")
    t.add_argument("--width", type=int, default=WIDTH, help="channels at the coarsest scales")
    t.add_argument("--batch", type=int, default=1, help="samples per iteration")
    t.add_argument("--every", type=int, default=100, help="iterations between checkpoints")
    t.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    _common(t, run=False)
    t.set_defaults(func=_cmd_train)
    s = verbs.add_parser("sample", help="random images of a trained run, any size")
    _common(s)
    s.add_argument("--n", type=int, default=8, help="how many")
    s.add_argument("--size", default=None, metavar="WxH", help="size of each (default: the training image's)")
    s.add_argument("--out", required=True, help="folder for sample_0.png, sample_1.png, …")
    s.set_defaults(func=_cmd_sample)
    a = verbs.add_parser("animate", help="a random walk in the noise inputs, as a GIF or MP4")
    _common(a)
    a.add_argument("--frames", type=int, default=48)
    a.add_argument("--fps", type=float, default=12.0)
    a.add_argument("--smoothness", type=float, default=0.95,
                   help="share of each frame's noise kept in the next, 0..0.999 (higher: slower motion)")
    a.add_argument("--size", default=None, metavar="WxH", help="frame size (default: the training image's)")
    a.add_argument("--out", required=True, help="output .gif or .mp4")
    a.set_defaults(func=_cmd_animate)
    for verb, what in (("paint", "a rough colour sketch becomes a picture in the image's style"),
                       ("harmonize", "a pasted object takes on the image's look")):
        v = verbs.add_parser(verb, help=what)
        _common(v)
        if verb == "paint":
            v.add_argument("sketch", help="the colour sketch (PNG or JPEG)")
        else:
            v.add_argument("image", help="the image with the pasted object")
            v.add_argument("--mask", default=None, help="white where the object is: only there is changed")
        v.add_argument("--start-scale", type=int, default=None,
                       help="the scale the image enters at (1 = coarse; default a quarter of the way up for "
                       "paint, half way for harmonize)")
        v.add_argument("--out", required=True, help="output PNG")
        v.set_defaults(func=_cmd_paint if verb == "paint" else _cmd_harmonize)
