"""`diffparam volume`: 3D art with free geometry: a radiance field made so that its views maximise an
objective, written as a run folder (checkpoint, mesh, turntable, metrics)."""

from __future__ import annotations

import argparse

from diffparam.checks import int_in
from diffparam.cli.common import UNITS_HELP, add_render_options, model_from_args, print_paths
from diffparam.io import ANIMATION_SUFFIXES


def _cmd_volume(args: argparse.Namespace) -> int:
    from diffparam.recipes.volume import check_run_folder, volume_art

    int_in("frames", args.frames, 0, 10_000)
    int_in("resolution", args.resolution, 8, 1024)
    check_run_folder(args.out)
    result = volume_art(args.objective, model_from_args(args), out=args.out, steps=args.steps, size=args.size,
                        views=args.views, lr=args.lr, coverage=args.coverage, sparsity=args.sparsity,
                        samples=args.samples, seed=args.seed, device=args.device, progress=not args.quiet)
    print_paths(result.save(args.out, frames=args.frames, animation=args.animation,
                            resolution=args.resolution))
    if not args.quiet:
        m = result.metrics
        against = "" if m["held_out_vs_photo"] is None else f" = {m['held_out_vs_photo']:.2f}x the best photo"
        print(f"held-out views: {m['objective']} {m['held_out_value']:.3g}{against} (the field it started "
              f"from: {m['initial_held_out_value']:.3g}); mean opacity {m['coverage']:.2f}; "
              f"{m['seconds']:.1f} s")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `volume`."""
    from diffparam.recipes.volume import (
        COVERAGE,
        FRAMES,
        LR,
        MESH_RESOLUTION,
        SAMPLES,
        SIZE,
        SPARSITY,
        STEPS,
        VIEWS,
    )

    p = sub.add_parser("volume", help="3D art: a radiance field (shape and colour) made to maximise an "
                       "objective from every view")
    p.add_argument("objective", help=f"LAYER, LAYER:CHANNEL, {UNITS_HELP}")
    add_render_options(p, size=SIZE, steps=STEPS, lr=f"{LR:g}")
    p.add_argument("--views", type=int, default=VIEWS, help="random views per step")
    p.add_argument("--samples", type=int, default=SAMPLES, help="samples per ray, 2..4096")
    p.add_argument("--coverage", type=float, default=COVERAGE,
                   help="target mean opacity of a view (0..1]: more is penalised (annealed down to it)")
    p.add_argument("--sparsity", type=float, default=SPARSITY,
                   help="weight of the opacity penalty, relative to the objective (0: none)")
    p.add_argument("--frames", type=int, default=FRAMES, help="turntable frames (0: no turntable)")
    p.add_argument("--animation", default="gif", choices=[s[1:] for s in ANIMATION_SUFFIXES],
                   help="turntable format")
    p.add_argument("--resolution", type=int, default=MESH_RESOLUTION, help="marching-cubes grid per side")
    p.add_argument("--out", required=True, help="run folder (new, empty, or one to resume): checkpoint.pt, "
                   "mesh.glb, turntable, preview.png, metrics.json")
    p.set_defaults(func=_cmd_volume)
