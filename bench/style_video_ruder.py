"""Optimisation-based video style transfer (issue 17): every frame styled on its own against Ruder et
al.'s video mode (each frame starts from the one before moved along the optical flow, held to it by
a temporal term), on videos whose true motion is known (a pan, a zoom, a turntable): the warping
error between consecutive stylised frames and the style distance of the frames.

GPU:  python3 bench/style_video_ruder.py --device cuda --size 256 --frames 12 --out ruder.json
CPU:  python bench/style_video_ruder.py --device cpu --size 96 --frames 5 --steps 60 --frame-steps 30
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from diffparam.evaluate.video import MOTIONS, known_motion_video, warping_error
from diffparam.io import sample_photos
from diffparam.models.registry import load_model
from diffparam.recipes.style import STEPS, swirl_pattern
from diffparam.recipes.style_net import style_distance
from diffparam.recipes.style_video import FRAME_STEPS, style_frames

PHOTO = "coffee"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--frame-steps", type=int, default=FRAME_STEPS)
    parser.add_argument("--weights", type=float, nargs="+", default=[100.0, 200.0, 1000.0],
                        help="temporal weights of the video mode to judge")
    parser.add_argument("--out", type=Path, default=Path("style_video_ruder.json"))
    args = parser.parse_args()
    style = swirl_pattern(args.size)
    model = load_model().to(args.device)
    photo = sample_photos(2 * args.size, (PHOTO,))
    videos = {motion: known_motion_video(photo, motion, args.frames, args.size) for motion in MOTIONS}
    modes = [("each frame on its own", "content", 0.0)] + [
        (f"video mode, temporal weight {w:g}", "warped", w) for w in args.weights]
    floor = {m: {"warping": warping_error(v, g)} for m, (v, g) in videos.items()}
    rows = [{"mode": "the photo frames", **floor}]
    for label, start, weight in modes:
        row: dict = {"mode": label}
        began = time.perf_counter()
        for motion, (video, grids) in videos.items():
            made = torch.stack(list(style_frames(video, style, model, start=start, temporal_weight=weight,
                                                 size=args.size, steps=args.steps,
                                                 frame_steps=args.frame_steps, device=args.device)))
            row[motion] = {"warping": warping_error(made, grids),
                           "style": float(style_distance(model, style, made).mean())}
        row["seconds per frame"] = (time.perf_counter() - began) / (len(videos) * args.frames)
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.write_text(json.dumps({"size": args.size, "frames": args.frames, "steps": args.steps,
                                    "frame_steps": args.frame_steps, "rows": rows}, indent=1))
    print("\n| mode | " + " | ".join(f"warping, {m}" for m in videos) + " | mean warping | mean style |"
          " s/frame |")
    print("| --- |" + " ---: |" * (len(videos) + 3))
    for row in rows:
        warps = [row[m]["warping"] for m in videos]
        styles = [row[m]["style"] for m in videos if "style" in row[m]]
        mean_style = f"{statistics.fmean(styles):.3f}" if styles else ""
        per_frame = f"{row['seconds per frame']:.2f}" if "seconds per frame" in row else ""
        print(f"| {row['mode']} | " + " | ".join(f"{w:.4f}" for w in warps)
              + f" | {statistics.fmean(warps):.4f} | {mean_style} | {per_frame} |")


if __name__ == "__main__":
    main()
