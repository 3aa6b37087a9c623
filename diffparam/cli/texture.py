"""`diffparam texture` and `diffparam texture-style`: a mesh's texture optimised through renderings
(feature visualization, style transfer), written as OBJ + MTL + PNG, GLB and a turntable."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffparam.cli.common import add_render_options, model_from_args
from diffparam.errors import UserError
from diffparam.render import check_size


def _layer_list(text: str) -> list[str]:
    layers = [name.strip() for name in text.split(",") if name.strip()]
    if not layers:
        raise UserError(f"--style-layers needs layer names separated by commas, got {text!r}")
    return layers


def _common(args: argparse.Namespace) -> dict:
    check_size(args.size)
    if args.views < 1:
        raise UserError(f"--views must be at least 1, got {args.views}")
    if args.frames < 0:
        raise UserError(f"--frames must be 0 (no turntable) or more, got {args.frames}")
    return dict(out=Path(args.out), texture_size=args.texture_size, view_size=args.size, steps=args.steps,
                views=args.views, lr=args.lr, seed=args.seed, device=args.device, progress=not args.quiet,
                turntable_frames=args.frames, animation=args.animation, texture_space=args.texture_space,
                volume_size=args.volume_size)


def _report(files: dict[str, Path], history: list[float], seconds: float, quiet: bool) -> int:
    for path in files.values():
        print(path)
    if not quiet:
        print(f"{len(history)} steps in {seconds:.1f} s; final loss {history[-1]:.4g}")
    return 0


def _cmd_texture(args: argparse.Namespace) -> int:
    from diffparam.recipes.texture import texture_feature

    options = _common(args)
    result = texture_feature(args.mesh, args.objective, model_from_args(args), **options)
    return _report(result.files, result.history, result.seconds, args.quiet)


def _cmd_texture_style(args: argparse.Namespace) -> int:
    from diffparam.recipes.texture import texture_style

    options = _common(args)
    if args.content_weight is not None and not args.content_weight >= 0:
        raise UserError(f"--content-weight must be >= 0, got {args.content_weight}")
    if not 0 <= args.decay < 1:
        raise UserError(f"--decay must be in [0, 1) (0 turns the moving average off), got {args.decay}")
    result = texture_style(
        args.mesh, args.style, model_from_args(args),
        style_layers=_layer_list(args.style_layers) if args.style_layers else None,
        content_layer=args.content_layer, content_weight=args.content_weight,
        decay=args.decay or None, init=args.init, **options,
    )
    return _report(result.files, result.history, result.seconds, args.quiet)


def _add_options(p: argparse.ArgumentParser, steps: int, size: int, texture_size: int, views: int,
                 frames: int) -> None:
    from diffparam.param.texture import SPACES
    from diffparam.recipes.texture import TEXTURE_SPACE

    add_render_options(p, size=size, steps=steps)
    p.add_argument("--view-size", dest="size", type=int, default=argparse.SUPPRESS,
                   help="the same as --size: pixels of each rendered view")
    p.add_argument("--texture-size", type=int, default=texture_size, help="texture pixels (16..8192)")
    p.add_argument("--views", type=int, default=views, help="random views per step")
    p.add_argument("--texture-space", default=TEXTURE_SPACE, choices=SPACES,
                   help="where the texture is parameterized: surface (a 3D field read at each texel's "
                   f"surface point: no seams) or uv (the image: seams show) (default {TEXTURE_SPACE})")
    p.add_argument("--volume-size", type=int, default=None,
                   help="voxels per side of the surface field (default: texture size / 8, 16..128, for "
                   "texture; / 2, 16..256, for texture-style)")
    p.add_argument("--frames", type=int, default=frames, help="turntable frames (0: no turntable)")
    p.add_argument("--animation", default="gif", choices=["gif", "mp4"], help="turntable format")
    p.add_argument("--out", required=True, help="output folder (mesh.obj/.mtl, texture.png, mesh.glb, "
                   "turntable)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `texture` and `texture-style`."""
    from diffparam.recipes.texture import (
        CONTENT_WEIGHT,
        STEPS,
        STYLE_DECAY,
        TEXTURE_SIZE,
        TURNTABLE_FRAMES,
        VIEW_SIZE,
        VIEWS,
    )

    mesh_help = "mesh file (OBJ, PLY, GLB/glTF; unwrapped if it has no UVs) or shape:sphere|torus|knot"
    p = sub.add_parser("texture", help="feature visualization on a 3D object's texture")
    p.add_argument("mesh", help=mesh_help)
    p.add_argument("objective", help="LAYER, LAYER:CHANNEL, LAYER:CHANNEL@X,Y or logit:CLASS")
    _add_options(p, STEPS, VIEW_SIZE, TEXTURE_SIZE, VIEWS, TURNTABLE_FRAMES)
    p.set_defaults(func=_cmd_texture)

    p = sub.add_parser("texture-style", help="3D style transfer: restyle an object's texture after an image")
    p.add_argument("mesh", help=mesh_help)
    p.add_argument("style", help="style image file (PNG, JPEG, ...)")
    _add_options(p, STEPS, VIEW_SIZE, TEXTURE_SIZE, VIEWS, TURNTABLE_FRAMES)
    p.add_argument("--style-layers", default=None,
                   help="comma-separated layer names (default: the model's known choice)")
    p.add_argument("--content-layer", default=None, help="layer name (default: the model's known choice)")
    p.add_argument("--content-weight", type=float, default=None,
                   help=f"weight of the content loss: views with the mesh's own texture (default "
                   f"{CONTENT_WEIGHT:g}; 0 for a mesh without a texture)")
    p.add_argument("--decay", type=float, default=STYLE_DECAY,
                   help="moving average of the style Gram matrices over views (0: plain per-view loss)")
    p.add_argument("--init", default=None, choices=["content", "noise"],
                   help="start from the mesh's texture (default when it has one) or from noise")
    p.set_defaults(func=_cmd_texture_style)
