"""`diffparam render`: feature visualization of one objective, or of a channel list as one batch."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from diffparam.backgrounds import BACKGROUNDS
from diffparam.checks import image_size, non_negative_float, positive_int
from diffparam.cli.common import (
    UNITS_HELP,
    add_param_option,
    add_precision_option,
    add_render_options,
    add_report_options,
    check_report_options,
    model_from_args,
    param_settings,
    print_paths,
    print_report,
    write_report,
)
from diffparam.errors import UserError
from diffparam.evaluate.trust import batch_diversity, unit_layer
from diffparam.io import check_image_path, check_writable
from diffparam.objectives import channel, channel_list, diversity, parse
from diffparam.param import make_param
from diffparam.recipes.transparency import render_transparent
from diffparam.render import render


def _cmd_render(args: argparse.Namespace) -> int:
    image_size(args.size)
    positive_int("batch", args.batch)
    listed = channel_list(args.objective)
    if listed is not None and args.batch != 1:
        raise UserError("a channel list renders one image per channel: drop --batch")
    batch = len(listed[1]) if listed else args.batch
    out = Path(args.out)
    if listed and out.suffix.lower() in {".png", ".jpg", ".jpeg"}:
        raise UserError(f"a channel list writes one PNG per channel: give a folder, not {out}")
    settings = param_settings(args)
    report_path = check_report_options(args)
    if args.alpha and report_path:
        raise UserError("--report judges RGB images: it is not available with --alpha")
    if non_negative_float("diversity", args.diversity):
        if listed:
            raise UserError("--diversity makes the --batch images of one objective differ: not for a "
                            "channel list")
        if batch < 2:
            raise UserError("--diversity needs --batch 2 or more")
    model = model_from_args(args)
    objective = parse(args.objective, model)  # checked before anything touches the disk
    names = [f"{listed[0]}_{c}" for c in listed[1]] if listed else None
    if names:
        check_writable(out / f"{names[0]}.png")
    else:
        check_image_path(out, "--out")
    if args.alpha and not listed and out.suffix.lower() != ".png":
        raise UserError(f"--alpha writes an RGBA PNG: give a .png path, not {out}")
    judged_by = [channel(listed[0], c) for c in listed[1]] if listed else objective  # before --diversity
    judged = not args.alpha and (report_path is not None or not args.quiet) and not args.no_trust
    if args.diversity:
        layer = unit_layer(model, objective)
        shapes = {info.name: info.shape for info in model.layers()}
        if layer is None or len(shapes.get(layer, ())) != 3:
            reads = "none" if layer is None else f"a vector ({layer})"
            raise UserError(f"--diversity compares the images' feature maps at the objective's layer, and "
                            f"{args.objective} reads {reads}")
        objective = objective + args.diversity * diversity(layer)
    options = dict(steps=args.steps, lr=args.lr, seed=args.seed, device=args.device,
                   progress=not args.quiet, precision=args.precision, compile=args.compile,
                   checkpoint=args.checkpoint)
    param = args.param
    if settings:  # built here, as render would build it, with the settings
        h, w = image_size(args.size)
        param = make_param(args.param, h, w, batch, torch.Generator().manual_seed(args.seed),
                           alpha=args.alpha, **settings)
    else:
        options.update(size=args.size, batch=batch)
    save = dict(names=names) if names else dict(separate=args.separate)
    if args.alpha:
        result = render_transparent(model, objective, param, background=args.background, **options)
    else:
        result = render(model, objective, param, report=judged_by if judged else False, photos=args.photos,
                        **options)
    print_paths(result.save(out, **save))
    if judged:
        rows = result.metrics["report"]
        spread = batch_diversity(model, result.images, args.photos) if batch > 1 and not listed else None
        if report_path is not None:
            print(write_report(report_path, rows, model=model.name, input_size=model.input_size,
                               command="render", param=args.param, size=args.size, steps=args.steps,
                               lr=args.lr, seed=args.seed, diversity_weight=args.diversity,
                               photos=args.photos or "scikit-image", diversity=spread))
        if not args.quiet:
            print_report(rows, model.input_size)
            if spread is not None:
                print(f"diversity of the batch {spread:.3f} (0 = the same image)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `render`."""
    p = sub.add_parser("render", help="feature visualization of one objective",
                       description="Optimise an image (or a batch) to maximise OBJECTIVE and write it. "
                       "Unless --quiet or --no-trust, prints each image's activation against natural "
                       "photos, its plausibility distance and sanity score, judged at the model's input "
                       "size (docs/trust.md).")
    p.add_argument("objective", help="LAYER, LAYER:CHANNEL, LAYER:C1,C2,... (one image each, "
                   f"--out DIR/), {UNITS_HELP}")
    add_render_options(p)
    add_param_option(p)
    p.add_argument("--batch", type=int, default=1, help="images from different random starts")
    p.add_argument("--separate", action="store_true", help="one file per image instead of a grid")
    add_precision_option(p)
    p.add_argument("--compile", action="store_true",
                   help="compile the model's blocks with torch.compile (GPU speed for long or big "
                   "renders; the first steps wait for compilation)")
    p.add_argument("--checkpoint", action="store_true",
                   help="gradient checkpointing: about half the memory per image, a quarter more time")
    p.add_argument("--alpha", action="store_true",
                   help="semi-transparent: an RGBA image, composited over a random background each "
                   "step, objective x (1 - mean opacity); writes an RGBA PNG")
    p.add_argument("--background", default="noise", choices=sorted(BACKGROUNDS),
                   help="with --alpha: the random background drawn each step")
    p.add_argument("--diversity", type=float, default=0.0, metavar="WEIGHT",
                   help="make the --batch images differ (Olah et al.'s diversity term at the objective's "
                   "layer, times WEIGHT; try 100)")
    add_report_options(p)
    p.add_argument("--out", default="out.png", help="output PNG (a folder for a channel list)")
    p.set_defaults(func=_cmd_render)
