"""`diffparam accentuate`: push one unit in a photo while staying close to it (feature accentuation)."""

from __future__ import annotations

import argparse

from diffparam.checks import non_negative_float
from diffparam.cli.common import (
    UNITS_HELP,
    add_param_option,
    add_render_options,
    add_report_options,
    check_distinct,
    check_report_options,
    model_from_args,
    print_paths,
    print_report,
    write_report,
)
from diffparam.io import check_image_path, load_image
from diffparam.objectives import parse
from diffparam.param import kinds


def _cmd_accentuate(args: argparse.Namespace) -> int:
    from diffparam.recipes.accentuate import accentuate

    out = check_image_path(args.out, "--out")
    report_path = check_report_options(args)
    check_distinct(out=out, report=report_path)
    non_negative_float("strength", args.strength)
    photo = load_image(args.image, args.size, "the image")  # a bad image fails before the model loads
    model = model_from_args(args)
    objective = parse(args.objective, model)
    if args.layer is not None:
        model.check_layer(args.layer)
    judged = not args.no_trust and (report_path is not None or not args.quiet)
    result = accentuate(model, objective, photo, strength=args.strength, layer=args.layer, param=args.param,
                        size=args.size, steps=args.steps, lr=args.lr, seed=args.seed, device=args.device,
                        progress=not args.quiet, photos=args.photos, evaluate=judged)
    print_paths(result.save(out, with_seed=args.with_seed))
    if report_path is not None:
        print(write_report(report_path, result.metrics["report"], model=model.name,
                           input_size=model.input_size, command="accentuate", image=str(args.image),
                           layer=result.extras["layer"], strength=args.strength, size=args.size,
                           steps=args.steps, lr=args.lr, seed=args.seed,
                           seed_value=result.seed_value, feature_distance=result.feature_distance,
                           pixel_rmse=result.pixel_rmse, photos=args.photos or "scikit-image"))
    if not args.quiet:
        moved = f"{result.feature_distance:.2f} at {result.extras['layer']} (relative)"
        h, w = result.images.shape[-2:]
        print(f"{objective.name} at {w}x{h} px: {result.seed_value:.3g} on the photo, {result.value:.3g} "
              f"accentuated; moved {moved}, pixel RMSE {result.pixel_rmse:.3f}")
        if judged:
            print_report(result.metrics["report"], model.input_size)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `accentuate`."""
    from diffparam.recipes.accentuate import LR, SIZE, STEPS, STRENGTH

    p = sub.add_parser("accentuate", help="what in this photo drives a unit: push the unit, stay close",
                       description="Start from IMAGE and maximise OBJECTIVE while holding the image's "
                       "activations at a middle layer of the path into the unit close to the photo's "
                       "(feature accentuation, Hamblin et al. 2024). The output keeps IMAGE's aspect ratio "
                       "with its shorter side --size.")
    p.add_argument("image", help="the photo to start from (PNG, JPEG, ...)")
    p.add_argument("objective", help=f"LAYER:CHANNEL, LAYER, {UNITS_HELP}")
    add_render_options(p, size=SIZE, steps=STEPS, lr=f"{LR:g}")
    add_param_option(p, kinds(from_image=True), "parameterization, started from the photo")
    p.add_argument("--strength", type=float, default=STRENGTH,
                   help="how strongly the image is held to the photo (0: a visualization that merely "
                   "starts from it)")
    p.add_argument("--layer", default=None,
                   help="where the image is held to the photo, a layer at or before the objective's "
                   "(default: halfway along the path into it)")
    p.add_argument("--with-seed", action="store_true", help="write the photo beside the accentuation")
    add_report_options(p)
    p.add_argument("--out", default="accentuated.png", help="output PNG")
    p.set_defaults(func=_cmd_accentuate)
