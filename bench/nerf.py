"""Radiance fields (issue 14): held-out PSNR and SSIM of a field fitted within a time budget on the
synthetic 360° scenes (`diffparam nerf scene`), and the time to render a novel view.

Per scene: the scene is rendered by the project's rasteriser (--size px, --train-views training views,
--test held-out views on a ring at 30° elevation, RGBA); a short calibration run measures the time
per step (past the occupancy grid's warm-up), and a fresh run then trains the steps that fit in
--budget seconds (training time as the run records it, data loading and evaluation excluded); its
metrics.json gives PSNR and SSIM on the held-out views over white, and one --render-size view is
timed (median of 5, after a warm-up). bench/gsplat_nerf.py trains 3D Gaussian splatting on the same
scene folders.

GPU (two halves, each well under 10 minutes):
  python bench/nerf.py --device cuda --scenes sphere,torus --keep nerf_bench --out nerf_gpu_1.json
  python bench/nerf.py --device cuda --scenes knot,orrery --keep nerf_bench --out nerf_gpu_2.json
CPU (tiny):  python bench/nerf.py --device cpu --preset tiny --size 48 --train-views 20 --test 4 --budget 60 \
             --calibration 160 --render-size 128 --out nerf_cpu.json
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

from diffparam.recipes.nerf import SCENES, fit_nerf, load_nerf, make_scene, path_cameras
from diffparam.three_d.posed import posed_from_cameras

PRESETS = {
    "full": {"rays": 8192, "resolutions": (64, 128, 256, 512), "features": 8, "hidden": 64, "samples": 256,
             "grid": 128},
    "tiny": {"rays": 512, "resolutions": (16, 32, 64), "features": 4, "hidden": 32, "samples": 48,
             "grid": 32},
}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def render_seconds(run: Path, size: int, device: str, repeats: int = 5) -> float:
    """Median wall time of rendering one `size` px novel view of the run's field."""
    field, state = load_nerf(run, device)
    views = posed_from_cameras(path_cameras(state["camera"], "orbit", repeats + 1), size,
                               [str(i) for i in range(repeats + 1)])
    field.render(views.part(0, 1))  # warm-up
    times = []
    for i in range(1, repeats + 1):
        _sync(device)
        start = time.perf_counter()
        field.render(views.part(i, i + 1))
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--preset", default="full", choices=list(PRESETS))
    ap.add_argument("--scenes", default=",".join(SCENES))
    ap.add_argument("--size", type=int, default=400)
    ap.add_argument("--train-views", type=int, default=50)
    ap.add_argument("--test", type=int, default=20)
    ap.add_argument("--budget", type=float, default=60.0, help="training seconds per scene")
    ap.add_argument("--calibration", type=int, default=300, help="steps of the run that times a step")
    ap.add_argument("--render-size", type=int, default=800)
    ap.add_argument("--rays", type=int, default=None, help="rays per step (default: the preset's)")
    ap.add_argument("--samples", type=int, default=None, help="samples per ray (default: the preset's)")
    ap.add_argument("--keep", default=None, help="folder to keep the scenes and runs in")
    ap.add_argument("--out", default="nerf_bench.json")
    args = ap.parse_args()
    options = {**PRESETS[args.preset], **{k: v for k in ("rays", "samples") if (v := getattr(args, k))}}
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="nerf_bench_"))
    rows = []
    for scene in args.scenes.split(","):
        data = work / scene / "data"
        if not (data / "transforms_train.json").is_file():
            make_scene(data, scene, size=args.size, train=args.train_views, test=args.test,
                       device=args.device)
        for old in ("calibration", "run"):  # runs of an earlier bench would resume
            shutil.rmtree(work / scene / old, ignore_errors=True)
        # Steps past the warm-up (empty space skipped) are timed: half the calibration, then resumed.
        half = args.calibration // 2
        times = [fit_nerf(data, work / scene / "calibration", steps=n, device=args.device, progress=False,
                          preview_frames=0, **options).metrics["train_seconds"]
                 for n in (half, args.calibration)]
        steps = max(1, int(args.budget * (args.calibration - half) / (times[1] - times[0])))
        m = fit_nerf(data, work / scene / "run", steps=steps, device=args.device, progress=False,
                     preview_frames=0, every=steps, **options).metrics  # no checkpoint until the end
        seconds = render_seconds(work / scene / "run", args.render_size, args.device)
        row = {"scene": scene, "steps": steps, "train_seconds": m["train_seconds"], "psnr": m["psnr"],
               "ssim": m["ssim"], "constant_color_psnr": m["constant_color_psnr"],
               f"render_ms_{args.render_size}": round(1000 * seconds, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    mean = {k: round(statistics.mean(r[k] for r in rows), 3) for k in ("psnr", "ssim", "train_seconds")}
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor()
    report = {"device": device_name or platform.machine(), "torch": torch.__version__, "args": vars(args),
              "date": time.strftime("%Y-%m-%d"), "scenes": rows, "mean": mean, "work": str(work)}
    Path(args.out).write_text(json.dumps(report, indent=1))
    print("| scene | steps | train s | PSNR | SSIM | constant-colour PSNR | render ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['scene']} | {r['steps']} | {r['train_seconds']} | {r['psnr']} | {r['ssim']} | "
              f"{r['constant_color_psnr']} | {r[f'render_ms_{args.render_size}']} |")
    print(f"| mean | | {mean['train_seconds']} | {mean['psnr']} | {mean['ssim']} | | |")


if __name__ == "__main__":
    main()
