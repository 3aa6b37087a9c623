"""Camera poses from plain photos (`nerf poses`, issue 14): photos of the knot on its floor
(`recipes.nerf_poses.make_photos`) rendered at --size px from --views cameras, their poses stripped and
estimated by COLMAP (pycolmap, CPU); reported: the registered fraction, the camera-centre error (in
units of the true camera distance, 4) and the rotation error (degrees) after the best similarity
transform, and the wall time. With --fit, a small radiance field is fitted twice with the same
settings and held-out photos: on the estimated poses and on the true ones (`--camera-model
simple_pinhole`, so both see the same pictures); PSNR on the held-out photos over white.

CPU (as measured for BENCHMARKS.md):
  python bench/nerf_poses.py --seeds 0,1,2 --out nerf_poses_cpu.json
  python bench/nerf_poses.py --seeds 0 --fit --device cpu --steps 1500 --out nerf_poses_fit_cpu.json
GPU (the fit comparison at a larger size; the poses are on the CPU either way):
  python bench/nerf_poses.py --seeds 0 --size 400 --views 40 --fit --device cuda --steps 3000 \\
      --preset full --out nerf_poses_gpu.json
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

from diffparam.recipes.nerf import fit_nerf
from diffparam.recipes.nerf_poses import estimate_poses, held_out, make_photos, pose_errors
from diffparam.three_d.posed import PosedViews, write_cameras

PRESETS = {
    "tiny": {"rays": 1024, "resolutions": (16, 32, 64), "features": 4, "hidden": 32, "samples": 64,
             "grid": 32},
    "full": {"rays": 8192, "resolutions": (64, 128, 256, 512), "features": 8, "hidden": 64, "samples": 256,
             "grid": 128},
}


def true_scene(true: PosedViews, estimated: Path, folder: Path) -> Path:
    """A scene folder with the true cameras of the same photos and the same test split as `estimated`."""
    shutil.copytree(estimated / "images", folder / "images")
    names = [f"images/{n}" for n in true.names]
    named = PosedViews(true.c2w, true.intrinsics, true.height, true.width, names)
    test = json.loads((estimated / "poses.json").read_text())["test"]
    ids = {"test": [named.names.index(n) for n in test]}
    ids["train"] = [i for i in range(len(named)) if i not in ids["test"]]
    for split, chosen in ids.items():
        part = PosedViews(named.c2w[chosen], named.intrinsics[chosen], named.height, named.width,
                          [named.names[i] for i in chosen])
        write_cameras(part, folder / f"transforms_{split}.json")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0", help="scene seeds (the texture), comma-separated")
    ap.add_argument("--views", type=int, default=24)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--camera-model", default="simple_radial")
    ap.add_argument("--matching", default="exhaustive")
    ap.add_argument("--fit", action="store_true", help="also fit fields on estimated and true poses")
    ap.add_argument("--test", type=int, default=4, help="held-out photos for --fit")
    ap.add_argument("--preset", default="tiny", choices=list(PRESETS))
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--bound", type=float, default=3.0, help="the field's box (the floor reaches 3)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (COLMAP uses all cores)")
    ap.add_argument("--out", default="nerf_poses_bench.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            true = make_photos(root / "photos", views=args.views, size=args.size, seed=seed)
            model = "simple_pinhole" if args.fit else args.camera_model
            start = time.perf_counter()
            result = estimate_poses(root / "photos", root / "estimated", matching=args.matching,
                                    camera_model=model, test=args.test if args.fit else 0, progress=False)
            seconds = time.perf_counter() - start
            views = result.extras["views"]
            ids = [true.names.index(n.removeprefix("images/")) for n in views.names]
            centre, angle = pose_errors(views.c2w, true.c2w[ids])
            row = {"seed": seed, "views": args.views, "size": args.size, "camera_model": model,
                   "registered": f"{len(views)}/{args.views}", "seconds": round(seconds, 1),
                   "centre_error_median": round(float(centre.median()) / 4, 5),
                   "centre_error_max": round(float(centre.max()) / 4, 5),
                   "rotation_error_median_deg": round(float(angle.median()), 4),
                   "rotation_error_max_deg": round(float(angle.max()), 4),
                   "focal_ratio": round(float(views.intrinsics[0, 0] / true.intrinsics[0, 0]), 5),
                   "reprojection_error_px": result.metrics["mean_reprojection_error_px"]}
            if args.fit:
                split = [views.names.index(n) for n in result.metrics["test"]]
                assert held_out(len(views), args.test) == split
                settings = {**PRESETS[args.preset], "steps": args.steps, "bound": args.bound,
                            "device": args.device, "progress": False, "preview_frames": 0}
                for name, data in (("estimated", root / "estimated"),
                                   ("true", true_scene(true, root / "estimated", root / "true"))):
                    fitted = fit_nerf(data, root / f"run_{name}", **settings)
                    row[f"psnr_{name}_poses"] = fitted.metrics["psnr"]
                    row[f"train_seconds_{name}"] = fitted.metrics["train_seconds"]
                row["constant_color_psnr"] = fitted.metrics["constant_color_psnr"]
            print(json.dumps(row))
            rows.append(row)
    summary = {"device": args.device, "torch": torch.__version__, "python": platform.python_version(),
               "cpu": platform.processor() or platform.machine(), "rows": rows,
               "rotation_error_median_deg": statistics.median(r["rotation_error_median_deg"] for r in rows)}
    Path(args.out).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
