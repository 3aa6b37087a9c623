"""Restyling a radiance field against per-view 2D style transfer (issue 14): style distance on held-out
views, multi-view consistency between neighbouring views, and time.

Per scene: the synthetic 360° scene is rendered by the project's rasteriser (--size px, --train-views
training views, a test ring of 36 views 10° apart at 30° elevation); a field is fitted for
--fit-steps steps; `style_nerf` restyles it after the generated swirl painting (`swirl_pattern`) for
--steps steps of one random --size px view each (with an appearance grid; `--no-appearance`: the
colour MLP alone). The first --views test views are the held-out
views. Each is also stylised on its own by 2D style transfer (`style_transfer`: a Fourier image
started from the field's render, the same model, style layers, content layer and weight, --steps
steps per view). Both are scored by the style distance `nerf_style` reports (the style objective's
relative Gram distance at the style layers, the style image at --size px), and by
`evaluate.multiview.multiview_error` between each held-out view and the next (10° round: pixels
lifted through the field's depth into the neighbour, depth-tested, covered pixels only, mean absolute
colour change). Floors: the field's own renders and the scene's true pictures; and, for each method,
what resampling alone costs at its level of detail (`resampling_floor`). Time: `style_nerf`'s
training seconds, and the 2D transfer's wall time for all held-out views.

GPU (per scene about 2 minutes; two halves):
  python bench/nerf_style.py --device cuda --scenes sphere,torus --out nerf_style_gpu_1.json
  python bench/nerf_style.py --device cuda --scenes knot,orrery --out nerf_style_gpu_2.json
CPU (tiny):  python bench/nerf_style.py --device cpu --preset tiny --size 64 --train-views 20 \\
             --fit-steps 1500 --steps 100 --views 4 --scenes torus,knot --out nerf_style_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from diffparam.evaluate.multiview import correspondences, multiview_error
from diffparam.io import load_image, make_grid, save_image
from diffparam.models.registry import DEFAULT_MODEL, load_model
from diffparam.recipes.nerf import fit_nerf, flatten, load_nerf, make_scene
from diffparam.recipes.nerf_style import APPEARANCE_LR, STYLE_LR, style_nerf
from diffparam.recipes.style import STEPS, style_transfer, swirl_pattern
from diffparam.recipes.style_net import style_distance
from diffparam.three_d.posed import PosedViews, load_posed

PRESETS = {
    "full": {"rays": 8192, "resolutions": (64, 128, 256, 512), "features": 8, "hidden": 64, "samples": 256,
             "grid": 128},
    "tiny": {"rays": 512, "resolutions": (16, 32, 64), "features": 4, "hidden": 32, "samples": 48,
             "grid": 32},
}
"""As bench/nerf.py's."""
RING = 36
"""Test views on the ring: 10° apart."""


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def resampling_floor(images: torch.Tensor, depth: torch.Tensor, views: PosedViews, coverage: torch.Tensor
                     ) -> float:
    """The multi-view error of pictures as detailed as `images` but consistent by construction: for each
    pair (i, i+1), view i's picture carried into view i+1 through the depth and compared back (two
    bilinear resamplings: an upper estimate of what resampling alone costs at this level of detail)."""
    total, weight = 0.0, 0.0
    for i in range(len(views) - 1):
        grid, valid = correspondences(views, depth, i + 1, i, coverage)
        carried = F.grid_sample(images[i:i + 1], grid[None], mode="bilinear", padding_mode="border",
                                align_corners=False)[0]
        pair = torch.stack([images[i], torch.where(valid, carried, images[i + 1])])
        m = multiview_error(pair, depth[i:i + 2], views.part(i, i + 2), coverage=coverage[i:i + 2])
        total, weight = total + m["error"] * m["valid"], weight + m["valid"]
    return total / max(weight, 1e-12)


def scene_row(scene: str, work: Path, args: argparse.Namespace, style_image: torch.Tensor) -> dict:
    """Fit, restyle and stylise per view one scene; its numbers (and a picture of the views)."""
    data, run, styled = work / scene / "data", work / scene / "run", work / scene / "styled"
    if not (data / "transforms_train.json").is_file():
        make_scene(data, scene, size=args.size, train=args.train_views, test=RING, device=args.device)
    fit = fit_nerf(data, run, steps=args.fit_steps, device=args.device, progress=False, preview_frames=0,
                   every=args.fit_steps, **PRESETS[args.preset]).metrics
    model = load_model(args.model)
    restyle = style_nerf(run, style_image, styled, model=model, steps=args.steps, size=args.size,
                         lr=args.lr, appearance=args.appearance, appearance_lr=args.appearance_lr,
                         seed=args.seed, device=args.device, progress=False).metrics
    truth = load_posed(data, "test")
    assert truth is not None and truth.images is not None
    views = truth.part(0, args.views)
    field, _ = load_nerf(run, args.device)
    restyled, _ = load_nerf(styled, args.device)
    with torch.no_grad():
        rgba, depth = field.render(views)
        shown = flatten(rgba, 1.0).cpu()
        nerf = flatten(restyled.render(views)[0], 1.0).cpu()
    rgba, depth = rgba.cpu(), depth.cpu()
    _sync(args.device)
    start = time.perf_counter()
    painted = torch.cat([style_transfer(shown[i:i + 1], style_image, model, size=args.size, steps=args.steps,
                                        seed=args.seed, device=args.device, progress=False).images.cpu()
                         for i in range(len(views))])
    _sync(args.device)
    seconds_2d = time.perf_counter() - start
    styled_image = load_image(style_image, args.size)

    def consistency(images: torch.Tensor) -> float:
        return round(multiview_error(images, depth, views, coverage=rgba[:, 3:])["error"], 4)

    def floor(images: torch.Tensor) -> float:
        return round(resampling_floor(images, depth, views, rgba[:, 3:]), 4)

    def distance(images: torch.Tensor) -> float:
        return round(float(style_distance(model, styled_image, images).mean()), 4)

    out = work / scene / "comparison.png"
    save_image(make_grid(torch.cat([shown, nerf, painted]), ncol=len(views)), out)
    return {"scene": scene, "fit_steps": args.fit_steps, "psnr": fit.get("psnr"),
            "train_seconds": fit["train_seconds"], "style_steps": args.steps,
            "style_distance": {"field": distance(shown), "nerf_style": distance(nerf), "per_view_2d":
                               distance(painted)},
            "multiview_error": {"truth": consistency(flatten(views.images, 1.0)), "field": consistency(shown),
                                "nerf_style": consistency(nerf), "per_view_2d": consistency(painted)},
            "resampling_floor": {"nerf_style": floor(nerf), "per_view_2d": floor(painted)},
            "multiview_valid": round(multiview_error(shown, depth, views, coverage=rgba[:, 3:])["valid"], 3),
            "seconds": {"nerf_style": restyle["seconds"], "per_view_2d": round(seconds_2d, 2)},
            "nerf_style_metrics": restyle, "picture": str(out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--preset", default="full", choices=list(PRESETS))
    ap.add_argument("--scenes", default="sphere,torus,knot,orrery")
    ap.add_argument("--size", type=int, default=256, help="pixels of the scene, training and held-out views")
    ap.add_argument("--train-views", type=int, default=50)
    ap.add_argument("--fit-steps", type=int, default=5000, help="about 55 s on an H200 with the full preset")
    ap.add_argument("--steps", type=int, default=STEPS, help="style steps: of the field, and per 2D view")
    ap.add_argument("--lr", type=float, default=STYLE_LR, help="the restyling's learning rate (the 2D "
                    "transfer keeps its parameterization's own)")
    ap.add_argument("--appearance", action=argparse.BooleanOptionalAction, default=True,
                    help="restyle with an appearance grid (the default), or the colour MLP alone")
    ap.add_argument("--appearance-lr", type=float, default=APPEARANCE_LR)
    ap.add_argument("--views", type=int, default=8, help="held-out views (consecutive ones 10° apart)")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", default=None, help="folder to keep the scenes, runs and pictures in")
    ap.add_argument("--out", default="nerf_style_bench.json")
    args = ap.parse_args()
    if not 2 <= args.views <= RING:
        ap.error(f"--views must be 2..{RING}")
    if args.device == "cpu":
        torch.set_num_threads(1)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="nerf_style_bench_"))
    style_image = swirl_pattern(256)
    rows = []
    for scene in args.scenes.split(","):
        for old in ("run", "styled"):  # an earlier bench's runs would resume
            shutil.rmtree(work / scene / old, ignore_errors=True)
        rows.append(scene_row(scene, work, args, style_image))
        print(json.dumps(rows[-1]), flush=True)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor()
    report = {"device": device_name or platform.machine(), "torch": torch.__version__, "args": vars(args),
              "date": time.strftime("%Y-%m-%d"), "scenes": rows, "work": str(work)}
    Path(args.out).write_text(json.dumps(report, indent=1))
    print("| scene | PSNR | style distance: field / NeRF style / 2D | multi-view error: truth / field / "
          "NeRF style / 2D | resampling floor: NeRF style / 2D | seconds: NeRF style / 2D |")
    print("| --- | ---: | --- | --- | --- | --- |")
    for r in rows:
        d, e, f, s = r["style_distance"], r["multiview_error"], r["resampling_floor"], r["seconds"]
        print(f"| {r['scene']} | {r['psnr']} | {d['field']} / {d['nerf_style']} / {d['per_view_2d']} | "
              f"{e['truth']} / {e['field']} / {e['nerf_style']} / {e['per_view_2d']} | "
              f"{f['nerf_style']} / {f['per_view_2d']} | {s['nerf_style']} / {s['per_view_2d']} |")
    if len(rows) > 1:
        mean = {k: {m: round(statistics.mean(r[k][m] for r in rows), 4) for m in rows[0][k]}
                for k in ("style_distance", "multiview_error", "resampling_floor")}
        print("mean:", json.dumps(mean))


if __name__ == "__main__":
    main()
