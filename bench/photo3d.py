"""3D photos (issue 15) measured on synthetic RGB-D scenes with known novel views, and timed.

Quality: each scene of `diffparam.three_d.rgbd_scenes` (objects before a textured wall, drawn by
the project's rasteriser) is seen from the input camera (the photo and its true z-depth) and from
four novel views (the extreme point of each camera path). Each method makes a 3D photo of the
photo and renders those views: (a) `none`, the photo as one stretched mesh; (b) `telea`, the
layered depth image filled by OpenCV's Telea inpainting; `exemplar`, the context-aware fill's
first guess alone (copies from the far side); (c) `context`, the context-aware fill.
Against the true views: PSNR and SSIM over whole frames and over the disoccluded pixels alone
(surfaces the photo does not see), and a perceptual distance on the embedded model's features
(LPIPS-like: unit-normalised channels at the style layers, squared differences averaged; on the
disoccluded pixels, weighted by their share of each feature cell).

Timing: a 1024x768 synthetic RGB-D input written as PNG files → `photo3d(...)` (default `exemplar`
fill, and `context`) → one 240-frame, 512-px-wide MP4 (plus scene.glb and index.html), end to end.

    PYTHONPATH=. python bench/photo3d.py --device cpu
    PYTHONPATH=. python bench/photo3d.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.metrics import structural_similarity

from diffparam.io import save_image
from diffparam.models.registry import efficientnet_lite0
from diffparam.recipes.photo3d import photo3d
from diffparam.recipes.style import default_layers
from diffparam.three_d import rgbd_scenes
from diffparam.three_d.ldi import render_views
from diffparam.three_d.pinhole import PATHS, PinholeViews, camera_path

FOV = 60.0
METHODS = ("none", "telea", "exemplar", "context")
POINT = {"zoom-in": 0.5, "dolly-zoom-in": 0.5, "circle": 0.25, "swing": 0.25}
"""Where on each camera path the novel view is taken (share of the path): its farthest point."""
MIN_DISOCCLUDED = 20
"""Views uncovering fewer pixels than this are left out (their disoccluded numbers mean nothing)."""


def novel_views(reference_depth: float) -> PinholeViews:
    """One view per camera path, at its farthest point from the input camera."""
    picks = [camera_path(name, 240, reference_depth, FOV)[round(240 * t):round(240 * t) + 1]
             for name, t in POINT.items()]
    return PinholeViews(torch.cat([p.pose for p in picks]), torch.cat([p.fov for p in picks]))


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean(0)[mask].mean())
    return 10 * np.log10(1 / max(mse, 1e-10))


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    _, full = structural_similarity(a.permute(1, 2, 0).numpy(), b.permute(1, 2, 0).numpy(), channel_axis=2,
                                    data_range=1.0, full=True)
    return full.mean(2)


class Perceptual:
    """LPIPS-like distance on the embedded model's style layers (unit-normalised channels)."""

    def __init__(self, device: torch.device) -> None:
        self.model = efficientnet_lite0().to(device)
        self.layers = default_layers(self.model)[0]
        self.device = device

    @torch.no_grad()
    def __call__(self, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
        acts = self.model.activations(torch.stack([a, b]).to(self.device), self.layers)
        total = 0.0
        for layer in self.layers:
            fa, fb = (F.normalize(x.float(), dim=0) for x in acts[layer])
            d = (fa - fb).pow(2).sum(0)
            w = F.interpolate(mask[None, None].float().to(d), size=d.shape, mode="area")[0, 0]
            total += float((d * w).sum() / w.sum().clamp_min(1e-6))
        return total / len(self.layers)


def quality(args: argparse.Namespace, device: torch.device) -> list[dict]:
    h, w = args.height, args.width
    perceptual = Perceptual(device)
    rows = []
    for name in rgbd_scenes.SCENES:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            mesh = rgbd_scenes.scene(name, seed).to(device)
            identity = PinholeViews(torch.eye(4)[None], torch.tensor([FOV]))
            photo = rgbd_scenes.observe(mesh, identity, h, w)
            views = novel_views(float(photo.depth[0].median()))
            truth = rgbd_scenes.observe(mesh, views, h, w)
            masks = [rgbd_scenes.disoccluded(truth.depth[i], photo.depth[0], views[i:i + 1], FOV)
                     for i in range(len(views))]
            for method in METHODS:
                start = time.perf_counter()
                result = photo3d(photo.images[0], photo.depth[0], fill=method, steps=args.steps,
                                 progress=False, device=str(device), size=w, model=perceptual.model)
                frames = list(render_views(result.mesh.to(device), views, h, w))
                seconds = time.perf_counter() - start
                for i, (frame, true, hole) in enumerate(zip(frames, truth.images.cpu(), masks, strict=True)):
                    if int(hole.sum()) < MIN_DISOCCLUDED:  # a view that uncovers (almost) nothing
                        continue
                    whole = torch.ones_like(hole)
                    smap = ssim_map(frame, true)
                    rows.append({"scene": f"{name}/{seed}", "view": list(POINT)[i], "method": method,
                                 "disoccluded_share": float(hole.float().mean()),
                                 "psnr": psnr(frame, true, whole), "ssim": float(smap.mean()),
                                 "psnr_disoccluded": psnr(frame, true, hole),
                                 "ssim_disoccluded": float(smap[hole.numpy()].mean()),
                                 "perceptual": perceptual(frame, true, whole),
                                 "perceptual_disoccluded": perceptual(frame, true, hole), "seconds": seconds})
                mine = [r for r in rows if r["scene"] == f"{name}/{seed}" and r["method"] == method]
                print(f"{name}/{seed} {method:8s} {seconds:6.1f} s  disoccluded PSNR "
                      f"{np.mean([r['psnr_disoccluded'] for r in mine]):.2f} dB over {len(mine)} views",
                      flush=True)
    return rows


def summary(rows: list[dict]) -> str:
    """Markdown tables: per method, means over scenes and views; per scene, disoccluded numbers."""
    keys = ("psnr", "ssim", "perceptual", "psnr_disoccluded", "ssim_disoccluded", "perceptual_disoccluded")
    lines = ["| method | PSNR | SSIM | perceptual ↓ | PSNR disocc. | SSIM disocc. | perceptual disocc. ↓ |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        lines.append(f"| {method} | " + " | ".join(
            f"{np.mean([r[k] for r in mine]):.{2 if 'psnr' in k else 3}f}" for k in keys) + " |")
    lines += ["", "| scene | " + " | ".join(f"{m}: PSNR / SSIM / perc." for m in METHODS) + " |",
              "| --- |" + " --- |" * len(METHODS)]
    for scene in dict.fromkeys(r["scene"] for r in rows):
        cells = []
        for method in METHODS:
            mine = [r for r in rows if r["scene"] == scene and r["method"] == method]
            cells.append(f"{np.mean([r['psnr_disoccluded'] for r in mine]):.2f} / "
                         f"{np.mean([r['ssim_disoccluded'] for r in mine]):.3f} / "
                         f"{np.mean([r['perceptual_disoccluded'] for r in mine]):.3f}")
        lines.append(f"| {scene} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def timing(args: argparse.Namespace, device: torch.device) -> dict:
    """Seconds from 1024x768 PNG files to a 240-frame 512-px MP4 (and scene.glb, index.html), per fill."""
    identity = PinholeViews(torch.eye(4)[None], torch.tensor([FOV]))
    photo = rgbd_scenes.observe(rgbd_scenes.scene("stack", 0).to(device), identity, 768, 1024)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        save_image(photo.images[0], tmp / "photo.png")
        millimetres = (photo.depth[0].cpu().numpy() * 1000).round().astype(np.uint16)
        Image.fromarray(millimetres).save(tmp / "depth.png")  # a 16-bit PNG, as RGB-D sensors write
        model = efficientnet_lite0()
        times = {}
        for fill in args.timing_fills.split(","):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, cpu = time.perf_counter(), time.process_time()
            result = photo3d(tmp / "photo.png", tmp / "depth.png", path="swing", frames=240, fill=fill,
                             device=str(device), model=model, progress=False, out=tmp / fill)
            total = time.perf_counter() - start
            # CPU seconds of this process (all its threads): on a machine shared with other jobs,
            # this over the thread count estimates the wall time the machine alone would take.
            times[fill] = {"seconds_total": total, "cpu_seconds": time.process_time() - cpu,
                           "threads": torch.get_num_threads(), "seconds_layers_and_fill": result.seconds,
                           "seconds_render_and_write": total - result.seconds,
                           "size": list(result.images.shape[-2:])}
            print(fill, json.dumps(times[fill]), flush=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=int, default=256, help="width of the quality scenes (px)")
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--seeds", type=int, default=2, help="texture seeds per scene")
    parser.add_argument("--first-seed", type=int, default=0, help="the first of them")
    parser.add_argument("--steps", type=int, default=None, help="context-aware fill steps (default: its own)")
    parser.add_argument("--timing-fills", default="exemplar,context", help="fills to time, comma-separated")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--out", default="bench/photo3d.json")
    args = parser.parse_args()
    from diffparam.recipes.photo3d_fill import FILL_STEPS

    args.steps = args.steps or FILL_STEPS
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    report: dict = {"device": name or platform.machine(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__, "date": datetime.now(UTC).strftime("%Y-%m-%d"),
                    "paths": list(PATHS), "steps": args.steps}
    if not args.skip_quality:
        rows = quality(args, device)
        report["quality"] = rows
        report["summary"] = summary(rows)
        print(report["summary"])
    if not args.skip_timing:
        report["timing"] = timing(args, device)
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
