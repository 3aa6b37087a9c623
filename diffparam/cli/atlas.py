"""`diffparam atlas`: every channel of some layers (or of every block) rendered into a browsable folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffparam.cli.common import (
    add_no_trust_option,
    add_param_option,
    add_photos_option,
    add_precision_option,
    add_render_options,
    check_report_options,
    model_from_args,
    param_settings,
)


def _cmd_atlas(args: argparse.Namespace) -> int:
    from diffparam.atlas import atlas

    check_report_options(args)
    result = atlas(model_from_args(args), args.layers, args.out, size=args.size, steps=args.steps,
                   lr=args.lr, param=args.param, seed=args.seed, batch=args.batch,
                   precision=args.precision, compile=args.compile, device=args.device,
                   workers=args.workers, circuits=not args.no_circuits, progress=not args.quiet,
                   trust=not args.no_trust, photos=args.photos, **param_settings(args))
    if not args.quiet:
        print(f"{result.rendered} units rendered in {result.wall_seconds:.1f} s on {result.world_size} "
              f"process(es); {result.units} in {args.out}")
    print(Path(args.out) / "index.html")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `atlas`."""
    p = sub.add_parser("atlas", help="render every channel of some layers into a browsable folder",
                       description="Render every channel of the given layers, batched and resumable "
                       "(run the same command again after an interruption). Spread over GPUs with "
                       "`torchrun --nproc-per-node N -m diffparam atlas ...`, over CPU processes "
                       "with --workers K.")
    p.add_argument("--layers", required=True,
                   help="L1,L2,... or all (the model's blocks: blocks.0 … blocks.15 for the embedded "
                   "model)")
    add_render_options(p, size=128, steps=512)
    p.add_argument("--out", required=True, help="atlas folder (PNGs, manifest.json, index.html)")
    p.add_argument("--batch", type=int, default=32, help="units rendered together in one batch")
    add_param_option(p)
    add_precision_option(p)
    p.add_argument("--compile", action="store_true",
                   help="compile the model's blocks with torch.compile once for all batches (GPU speed)")
    p.add_argument("--workers", type=int, default=1, help="CPU processes (with --device cpu)")
    p.add_argument("--no-circuits", action="store_true",
                   help="do not add the previous layer's channels that feed each unit")
    add_photos_option(p)
    add_no_trust_option(p)
    p.set_defaults(func=_cmd_atlas)
