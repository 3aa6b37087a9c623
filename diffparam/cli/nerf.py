"""`diffparam nerf scene|poses|fit|render|style|export`: radiance fields fitted to posed photos (NeRF)."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffparam.checks import positive_float
from diffparam.cli.common import add_model_options, model_from_args, print_paths
from diffparam.errors import UserError
from diffparam.io import ANIMATION_SUFFIXES, SAMPLE_PHOTOS, check_animation, check_writable, load_image


def _resolutions(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise UserError(f"--resolutions must be comma-separated whole numbers, e.g. 64,128,256, got {text!r}"
                        ) from None


def _cmd_scene(args: argparse.Namespace) -> int:
    from diffparam.recipes.nerf import make_scene

    result = make_scene(args.out, args.scene, size=args.size, train=args.train, test=args.test,
                        val=args.val, seed=args.seed, device=args.device, photo=args.photo)
    print_paths(list(result.files.values()))
    return 0


def _cmd_poses(args: argparse.Namespace) -> int:
    from diffparam.recipes.nerf_poses import estimate_poses

    result = estimate_poses(args.photos, args.out, matching=args.matching, camera_model=args.camera_model,
                            test=args.test, distance=args.distance, seed=args.seed, progress=not args.quiet)
    print_paths(list(result.files.values()))
    if not args.quiet:
        m = result.metrics
        print(f"registered {m['registered']} of {m['photos']} photos in {m['seconds']:.1f} s (mean "
              f"reprojection error {m['mean_reprojection_error_px']:.2f} px)")
        if m["unregistered"]:
            print(f"not registered (left out): {', '.join(m['unregistered'])}")
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    from diffparam.recipes.nerf import fit_nerf

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out must be a run folder, and {args.out} is a file")
    check_writable(Path(args.out) / "metrics.json")
    result = fit_nerf(args.data, args.out, steps=args.steps, rays=args.rays, lr=args.lr, bound=args.bound,
                      resolutions=_resolutions(args.resolutions), features=args.features, hidden=args.hidden,
                      samples=args.samples, grid=args.grid, background=args.background, seed=args.seed,
                      device=args.device, progress=not args.quiet, every=args.every,
                      preview_frames=args.preview_frames)
    print_paths(list(result.files.values()))
    if not args.quiet and "psnr" in result.metrics:
        m = result.metrics
        print(f"held-out {m['split']} views: PSNR {m['psnr']:.2f} dB (a constant colour: "
              f"{m['constant_color_psnr']:.2f} dB), SSIM {m['ssim']:.3f}; trained {m['train_seconds']:.1f} s")
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from diffparam.recipes.nerf import render_cameras, render_path

    if (args.cameras is None) == (args.path is None):
        raise UserError("give --cameras FILE.json (PNGs into the folder --out) or --path orbit|spiral "
                        "(a video --out)")
    if args.path is not None:
        check_animation(args.out, "--out for a camera path")
        result = render_path(args.run, args.out, args.path, frames=args.frames, size=args.size,
                             depth=args.depth, background=1.0 if args.background is None else args.background,
                             device=args.device, progress=not args.quiet)
        print_paths(list(result.files.values()))
        return 0
    if Path(args.out).suffix.lower() in (*ANIMATION_SUFFIXES, ".png"):
        raise UserError(f"with --cameras, --out is a folder for the PNGs, got {args.out}")
    check_writable(Path(args.out) / "probe.png")
    result = render_cameras(args.run, args.cameras, depth=args.depth, background=args.background,
                            device=args.device)
    print_paths(result.save(args.out))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from diffparam.recipes.nerf import check_mesh_path, export_nerf

    check_mesh_path(args.out)
    print_paths(export_nerf(args.run, resolution=args.resolution, level=args.level,
                            device=args.device).save(args.out))
    return 0


def _cmd_style(args: argparse.Namespace) -> int:
    from diffparam.recipes.nerf import load_nerf
    from diffparam.recipes.nerf_style import style_nerf

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out must be a run folder, and {args.out} is a file")
    if Path(args.out).resolve() == Path(args.run).resolve():
        raise UserError("--out must be another run folder: the fitted RUN stays as it is")
    check_writable(Path(args.out) / "metrics.json")
    positive_float("--appearance-lr", args.appearance_lr)
    load_nerf(args.run, "cpu")  # a bad run fails before the model loads
    load_image(args.style, args.size, "the style image")
    result = style_nerf(args.run, args.style, args.out, model=model_from_args(args), steps=args.steps,
                        size=args.size, lr=args.lr, appearance=not args.no_appearance,
                        appearance_lr=args.appearance_lr, content_weight=args.content_weight, seed=args.seed,
                        device=args.device, progress=not args.quiet)
    print_paths(list(result.files.values()))
    if not args.quiet:
        m = result.metrics
        print(f"style distance on 8 held-out views: {m['style_distance_before']:.3f} before, "
              f"{m['style_distance']:.3f} after; multi-view error to views 10° round: "
              f"{m['multiview_error_before']:.4f} before, {m['multiview_error']:.4f} after")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `nerf scene`, `nerf poses`, `nerf fit`, `nerf render`, `nerf style` and `nerf export`."""
    from diffparam.recipes.nerf import CAMERA_DISTANCE, LR, RAYS, SCENES, STEPS
    from diffparam.recipes.nerf_poses import CAMERA_MODELS, MATCHING
    from diffparam.recipes.nerf_style import APPEARANCE_LR, STYLE_LR, STYLE_SIZE, STYLE_STEPS

    p = sub.add_parser("nerf", help="radiance fields: fit a scene from posed photos, render new views, "
                       "export a mesh", description="Fit a radiance field to photos with known cameras "
                       "(the transforms.json layout of NeRF's Blender scenes, instant-ngp and nerfstudio), "
                       "render it from new cameras and along camera paths, export a mesh, restyle it.")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="{scene,poses,fit,render,style,export}")
    s = verbs.add_parser("scene", help="render a 360° test scene into --out (transforms.json layout)")
    s.add_argument("--out", required=True, help="the scene folder to write")
    s.add_argument("--scene", default="knot",
                   help=f"{', '.join(SCENES)}, or a mesh file (OBJ, PLY, GLB/glTF) with its texture")
    s.add_argument("--photo", default=None,
                   help=f"texture: one of scikit-image's photos ({', '.join(SAMPLE_PHOTOS)}; default: the "
                   "scene's own)")
    s.add_argument("--size", type=int, default=400, help="image side (px)")
    s.add_argument("--train", type=int, default=50, help="training views")
    s.add_argument("--test", type=int, default=8, help="held-out test views")
    s.add_argument("--val", type=int, default=0, help="held-out validation views")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu", help="where to rasterise: cpu, cuda or auto")
    s.set_defaults(func=_cmd_scene)

    o = verbs.add_parser("poses", help="camera poses for a folder of plain photos (COLMAP, through "
                         "pycolmap): a scene folder --out for `nerf fit`")
    o.add_argument("photos", help="a folder of photos (.jpg, .png) of one scene, one size, from all around")
    o.add_argument("--out", required=True, help="the scene folder to write (images/, transforms.json, "
                   "poses.json)")
    o.add_argument("--matching", default="exhaustive", choices=MATCHING,
                   help="match every pair of photos, or each with its neighbours in name order (frames)")
    o.add_argument("--camera-model", default="simple_radial", choices=CAMERA_MODELS,
                   help="simple_radial: estimate lens distortion and write the photos undistorted; "
                   "simple_pinhole, pinhole: photos without distortion, copied as they are")
    o.add_argument("--test", type=int, default=0, help="photos held out as a test split (every k-th)")
    o.add_argument("--distance", type=float, default=CAMERA_DISTANCE,
                   help="the cameras' mean distance from the scene's centre after scaling")
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    o.set_defaults(func=_cmd_poses)

    f = verbs.add_parser("fit", help="fit a field to DATA into the run folder --out (resumes when run again)")
    f.add_argument("data", help="a scene folder (transforms_train.json or transforms.json) or one such file")
    f.add_argument("--out", required=True, help="the run folder: checkpoint.pt, metrics.json, previews")
    f.add_argument("--steps", type=int, default=STEPS, help="optimiser steps in all (more: resumes, goes on)")
    f.add_argument("--rays", type=int, default=RAYS, help="rays per step")
    f.add_argument("--lr", type=float, default=LR, help="Adam's learning rate for the feature grids")
    f.add_argument("--bound", type=float, default=1.5, help="the scene lies inside [-bound, bound]³")
    f.add_argument("--resolutions", default="64,128,256,512", help="feature-grid resolutions, coarse to fine")
    f.add_argument("--features", type=int, default=8, help="features per grid resolution and plane")
    f.add_argument("--hidden", type=int, default=64, help="width of the MLPs")
    f.add_argument("--samples", type=int, default=256, help="samples per ray")
    f.add_argument("--grid", type=int, default=128, help="occupancy-grid resolution")
    f.add_argument("--background", type=float, default=1.0,
                   help="grey level RGBA pictures are composited over for the held-out metrics")
    f.add_argument("--every", type=int, default=500, help="steps between checkpoints")
    f.add_argument("--preview-frames", type=int, default=24, help="frames of the orbit preview.gif (0: none)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--device", default="auto", help="auto, cpu or cuda")
    f.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    f.set_defaults(func=_cmd_fit)

    r = verbs.add_parser("render", help="render a fitted RUN from the cameras of a file, or along a path")
    r.add_argument("run", help="a run folder written by `nerf fit`")
    r.add_argument("--cameras", default=None, help="a transforms.json-layout file: one PNG per frame")
    r.add_argument("--path", default=None, choices=["orbit", "spiral"], help="a camera path, as a video")
    r.add_argument("--out", required=True, help="folder for --cameras, .mp4/.gif for --path")
    r.add_argument("--frames", type=int, default=60, help="frames of a --path video")
    r.add_argument("--size", type=int, default=None, help="side of --path frames (default: training size)")
    r.add_argument("--depth", action="store_true", help="depth maps too (NAME_depth.png, OUT_depth.mp4)")
    r.add_argument("--background", type=float, default=None,
                   help="grey level to composite over (default: RGBA PNGs; white for videos)")
    r.add_argument("--device", default="auto", help="auto, cpu or cuda")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_render)

    y = verbs.add_parser("style", help="restyle a fitted RUN after STYLE into the run folder --out "
                         "(geometry kept; resumes when run again)")
    y.add_argument("run", help="a run folder written by `nerf fit`")
    y.add_argument("style", help="the style image")
    y.add_argument("--out", required=True, help="the new run folder (render and export it like any run)")
    add_model_options(y)
    y.add_argument("--steps", type=int, default=STYLE_STEPS, help="optimiser steps (one random view each)")
    y.add_argument("--size", type=int, default=STYLE_SIZE, help="side of the views rendered for the model")
    y.add_argument("--lr", type=float, default=STYLE_LR, help="Adam's learning rate for the colour MLP")
    y.add_argument("--appearance-lr", type=float, default=APPEARANCE_LR, help="... for the appearance grid")
    y.add_argument("--no-appearance", action="store_true", help="train the colour MLP alone, no appearance "
                   "grid (nearer the field's look, less far toward the style)")
    y.add_argument("--content-weight", type=float, default=1.0, help="how close views stay to the original")
    y.add_argument("--seed", type=int, default=0)
    y.add_argument("--device", default="auto", help="auto, cpu or cuda")
    y.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    y.set_defaults(func=_cmd_style)

    e = verbs.add_parser("export", help="a mesh of a fitted RUN (marching cubes; .glb/.ply, vertex colours)")
    e.add_argument("run", help="a run folder written by `nerf fit`")
    e.add_argument("--out", required=True, help="MESH.glb or MESH.ply")
    e.add_argument("--resolution", type=int, default=256, help="density samples per side")
    e.add_argument("--level", type=float, default=None,
                   help="density of the surface (default: where one sample step is half opaque)")
    e.add_argument("--device", default="auto", help="auto, cpu or cuda")
    e.set_defaults(func=_cmd_export)
