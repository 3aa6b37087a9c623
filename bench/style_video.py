"""Stable video from a style network (issue 17): networks trained with and without Gupta et al.'s
stability loss, each applied frame by frame and in the stable mode (outputs carried along the
optical flow, at several blends), judged on videos whose true motion is known (a pan and a zoom over
held-out photos, and a textured torus on a turntable): the warping error between consecutive
stylised frames, and the style distance of the frames.

GPU:  python3 bench/style_video.py --device cuda --steps 2000 --weights 0 50 200 --out style_video.json
CPU, a trained network:  python bench/style_video.py --device cpu --net NET.pt --size 128 --out v.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from diffparam.evaluate.video import MOTIONS, known_motion_video, warping_error
from diffparam.io import REFERENCE_PHOTOS, sample_photos, save_image
from diffparam.models.registry import load_model
from diffparam.recipes.style import swirl_pattern
from diffparam.recipes.style_net import load_style_net, style_distance, stylise_frames, train_style_net

HELD_OUT = ("chelsea", "coffee")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 100.0, 1000.0])
    parser.add_argument("--motion-weights", type=float, nargs="*", default=[],
                        help="also train networks with these motion-loss weights (stability weight 0)")
    parser.add_argument("--blends", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.75, 0.8],
                        help="stable-mode blends to judge")
    parser.add_argument("--net", type=Path, default=None, help="judge this network instead of training")
    parser.add_argument("--out", type=Path, default=Path("style_video.json"))
    args = parser.parse_args()
    style = swirl_pattern(args.size)
    model = load_model().to(args.device)
    videos = {(name, motion): known_motion_video(photo[None], motion, args.frames, args.size)
              for name, photo in zip(HELD_OUT, sample_photos(2 * args.size, HELD_OUT), strict=True)
              for motion in MOTIONS}
    rows = [{"network": "the photo frames", "weight": None,
             **{f"{n} {m}": {"warping": warping_error(v, g)} for (n, m), (v, g) in videos.items()}}]
    def judge(net, label: str, weight: float | None, extra: dict) -> None:
        for blend in (None, *args.blends):
            row = {"network": f"{label}{'' if blend is None else f', stable mode, blend {blend:g}'}",
                   "weight": weight, "blend": blend, **extra}
            for (name, motion), (video, grids) in videos.items():
                made = torch.stack(list(stylise_frames(net, video, stable=blend is not None,
                                                       device=args.device, blend=blend or 0.0)))
                row[f"{name} {motion}"] = {"warping": warping_error(made, grids),
                                           "style": float(style_distance(model, style, made).mean())}
            rows.append(row)
            print(json.dumps(row), flush=True)

    if args.net is not None:
        judge(load_style_net(args.net), f"{args.net.name}", None, {})
    else:
        with tempfile.TemporaryDirectory() as folder:
            names = [n for n in REFERENCE_PHOTOS if n not in HELD_OUT]
            for name, photo in zip(names, sample_photos(2 * args.size, tuple(names)), strict=True):
                save_image(photo, Path(folder) / f"{name}.png")
            save_image(style[0], Path(folder) / "style.png")
            nets = [("stability", w) for w in args.weights] + [("motion", w) for w in args.motion_weights]
            for loss, weight in nets:
                start = time.perf_counter()
                result = train_style_net(Path(folder) / "style.png", Path(folder) / f"{loss}{weight:g}.pt",
                                         images=folder, steps=args.steps, size=args.size,
                                         device=args.device, progress=False, **{f"{loss}_weight": weight})
                judge(result.param, f"{loss} weight {weight:g}", weight,
                      {"train_seconds": time.perf_counter() - start})
    args.out.write_text(json.dumps({"steps": args.steps, "rows": rows}, indent=1))
    keys = [f"{n} {m}" for n, m in videos]
    print("\n| network | " + " | ".join(f"warping, {k}" for k in keys) + " | mean warping | mean style |")
    print("| --- |" + " ---: |" * (len(keys) + 2))
    for row in rows:
        warps = [row[k]["warping"] for k in keys]
        styles = [row[k]["style"] for k in keys if "style" in row[k]]
        mean_style = f"{statistics.fmean(styles):.3f}" if styles else ""
        print(f"| {row['network']} | " + " | ".join(f"{w:.4f}" for w in warps)
              + f" | {statistics.fmean(warps):.4f} | {mean_style} |")


if __name__ == "__main__":
    main()
