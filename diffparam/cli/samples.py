"""`diffparam samples`: the inputs the README's examples use, made here (a photo, a painting, a mesh)."""

from __future__ import annotations

import argparse

from diffparam.cli.common import print_paths


def _cmd_samples(args: argparse.Namespace) -> int:
    from diffparam.recipes.samples import samples

    print_paths(samples().save(args.out))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `samples`."""
    p = sub.add_parser("samples", help="write sample inputs: photo.jpg, painting.png, model.glb",
                       description="Write the files the README's examples use: photo.jpg (scikit-image's "
                       "chelsea), painting.png (a generated swirl pattern) and model.glb (a torus wearing "
                       "the photo). Nothing is downloaded.")
    p.add_argument("--out", default="examples", help="output folder")
    p.set_defaults(func=_cmd_samples)
