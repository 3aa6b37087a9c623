"""`diffparam texture` and `diffparam texture-style`: a mesh's texture optimised through renderings
(feature visualization, style transfer), written as OBJ + MTL + PNG, GLB and a turntable."""

from __future__ import annotations

import argparse

from diffparam.checks import image_size, non_negative_int, positive_int, real
from diffparam.cli.common import (
    UNITS_HELP,
    Renamed,
    add_render_options,
    model_from_args,
    print_paths,
    style_layer_weights,
)
from diffparam.io import ANIMATION_SUFFIXES


def _common(args: argparse.Namespace) -> dict:
    """The recipe options both commands share, checked; the output folder is checked too."""
    from diffparam.recipes.texture import check_out

    image_size(args.size)
    positive_int("views", args.views)
    non_negative_int("frames", args.frames)
    check_out(args.out, args.animation)
    return dict(texture_size=args.texture_size, view_size=args.size, steps=args.steps, views=args.views,
                lr=args.lr, seed=args.seed, device=args.device, progress=not args.quiet,
                texture_space=args.texture_space, volume_size=args.volume_size)


def _save(result, args: argparse.Namespace) -> int:
    print_paths(result.save(args.out, frames=args.frames, animation=args.animation, device=args.device))
    if not args.quiet:
        print(f"{len(result.history)} steps in {result.seconds:.1f} s; final loss {result.history[-1]:.4g}")
    return 0


def _cmd_texture(args: argparse.Namespace) -> int:
    from diffparam.recipes.texture import texture_feature

    options = _common(args)
    return _save(texture_feature(args.mesh, args.objective, model_from_args(args), **options), args)


def _cmd_texture_style(args: argparse.Namespace) -> int:
    from diffparam.recipes.texture import texture_style

    options = _common(args)
    if args.content_weight is not None:
        real("content_weight", args.content_weight, 0.0)
    real("moving_average", args.moving_average, 0.0, 1.0, high_open=True, hint="(0 turns it off)")
    weights = style_layer_weights(args.style_layers) if args.style_layers else None
    result = texture_style(
        args.mesh, args.style, model_from_args(args),
        style_layers=list(weights) if weights else None, style_weights=weights,
        content_layer=args.content_layer, content_weight=args.content_weight,
        moving_average=args.moving_average or None, init=args.init, **options,
    )
    return _save(result, args)


def _add_options(p: argparse.ArgumentParser, steps: int, size: int, texture_size: int, views: int,
                 frames: int, lr: float) -> None:
    from diffparam.param.texture import SPACES
    from diffparam.recipes.texture import TEXTURE_SPACE

    add_render_options(p, size=size, steps=steps, lr=f"{lr:g}")
    p.add_argument("--view-size", dest="size", type=int, default=argparse.SUPPRESS,
                   help="the same as --size: pixels of each rendered view")
    p.add_argument("--texture-size", type=int, default=texture_size, help="texture pixels (16..8192)")
    p.add_argument("--views", type=int, default=views, help="random views per step")
    p.add_argument("--texture-space", default=TEXTURE_SPACE, choices=SPACES,
                   help="where the texture is parameterized: surface (a 3D field read at each texel's "
                   f"surface point: no seams) or uv (the image: seams show) (default {TEXTURE_SPACE})")
    p.add_argument("--volume-size", type=int, default=None,
                   help="voxels per side of the surface field, 4..512 (default: texture size / 8, "
                   "kept within 16..128, for texture; / 2, kept within 16..256, for texture-style)")
    p.add_argument("--frames", type=int, default=frames, help="turntable frames (0: no turntable)")
    p.add_argument("--animation", default="gif", choices=[s[1:] for s in ANIMATION_SUFFIXES],
                   help="turntable format")
    p.add_argument("--out", required=True, help="output folder (mesh.obj/.mtl, texture.png, mesh.glb, "
                   "turntable)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `texture` and `texture-style`."""
    from diffparam.param.texture import TextureImage
    from diffparam.recipes.texture import (
        CONTENT_WEIGHT,
        INITS,
        MOVING_AVERAGE,
        STEPS,
        STYLE_LR,
        TEXTURE_SIZE,
        TURNTABLE_FRAMES,
        VIEW_SIZE,
        VIEWS,
    )

    mesh_help = "mesh file (OBJ, PLY, GLB/glTF; unwrapped if it has no UVs) or shape:sphere|torus|knot"
    p = sub.add_parser("texture", help="feature visualization on a 3D object's texture")
    p.add_argument("mesh", help=mesh_help)
    p.add_argument("objective", help=f"LAYER, LAYER:CHANNEL, {UNITS_HELP}")
    _add_options(p, STEPS, VIEW_SIZE, TEXTURE_SIZE, VIEWS, TURNTABLE_FRAMES, TextureImage.default_lr)
    p.set_defaults(func=_cmd_texture)

    p = sub.add_parser("texture-style", help="3D style transfer: restyle an object's texture after an image")
    p.add_argument("mesh", help=mesh_help)
    p.add_argument("style", help="style image file (PNG, JPEG, ...)")
    _add_options(p, STEPS, VIEW_SIZE, TEXTURE_SIZE, VIEWS, TURNTABLE_FRAMES, STYLE_LR)
    p.add_argument("--style-layers", default=None,
                   help="comma-separated layer names, each optionally LAYER=WEIGHT (default: the model's "
                   "known choice, weights 1)")
    p.add_argument("--content-layer", default=None, help="layer name (default: the model's known choice)")
    p.add_argument("--content-weight", type=float, default=None,
                   help=f"weight of the content loss: views with the mesh's own texture (default "
                   f"{CONTENT_WEIGHT:g}; 0 for a mesh without a texture)")
    p.add_argument("--moving-average", type=float, default=MOVING_AVERAGE,
                   help="momentum of the moving average of the style Gram matrices over views (0: the "
                   "plain per-view loss)")
    p.add_argument("--decay", type=float, action=Renamed, new="--moving-average")
    p.add_argument("--init", default=None, choices=list(INITS),
                   help="start from the mesh's texture (default when it has one) or from noise")
    p.set_defaults(func=_cmd_texture_style)
