"""Fast style transfer (issue 17): training time of a `StyleNet`, its speed in frames per second, and
its style and content distances on held-out photos against the optimisation-based `style` command.

Style: the project's swirl painting (`swirl_pattern`). Training photos: scikit-image's reference
photos but the four held out (chelsea, coffee, astronaut, rocket), written to a temporary folder.
Quality: on each held-out photo at --size, the network's output and `style_transfer`'s (Fourier,
--style-steps steps), each scored by `style_distance` (the style objective's relative Gram distance
at the embedded model's style layers) and `content_distance` (relative feature distance to the photo
at its content layer).

GPU:  python3 bench/style_net.py --device cuda --steps 1500 --out style_net.json
CPU, the content-weight trade-off:  python bench/style_net.py --device cpu --steps 300 --size 128
      --style-steps 100 --content-weights 1 3 10 --sizes --out style_net_cpu.json
CPU speed only:  python bench/style_net.py --device cpu --speed-only --sizes 256 --out style_net_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from diffparam.io import REFERENCE_PHOTOS, sample_photos, save_image
from diffparam.models.registry import load_model
from diffparam.recipes.style import style_layers_of, style_transfer, swirl_pattern
from diffparam.recipes.style_net import content_distance, style_distance, train_style_net
from diffparam.train import StyleNet

HELD_OUT = ("chelsea", "coffee", "astronaut", "rocket")


def frames_per_second(net: StyleNet, size: int, device: str, bf16: bool, repeats: int) -> float:
    """Frames per second of `net` on one size x size frame at a time (after a warm-up)."""
    net = net.to(device).eval()
    x = torch.rand(1, 3, size, size, device=device)
    if device == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
        net = net.to(memory_format=torch.channels_last)
    amp = torch.autocast(device, dtype=torch.bfloat16, enabled=bf16)
    with torch.no_grad(), amp:
        for _ in range(3):
            net(x)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            net(x)
        if device == "cuda":
            torch.cuda.synchronize()
    return repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--style-steps", type=int, default=256)
    parser.add_argument("--sizes", type=int, nargs="*", default=[512, 1024])
    parser.add_argument("--content-weights", type=float, nargs="+", default=[1.0],
                        help="train one network per content weight (the trade-off of style for content)")
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("style_net.json"))
    args = parser.parse_args()
    meta = {"device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor(),
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "threads": torch.get_num_threads()}
    report: dict = {"meta": meta, "speed": {}}
    torch.manual_seed(0)
    net = StyleNet()
    if not args.speed_only:
        style = swirl_pattern(args.size)
        nets = {}
        with tempfile.TemporaryDirectory() as folder:
            names = [n for n in REFERENCE_PHOTOS if n not in HELD_OUT]
            for name, photo in zip(names, sample_photos(args.size * 2, tuple(names)), strict=True):
                save_image(photo, Path(folder) / f"{name}.png")
            save_image(style[0], Path(folder) / "style.png")
            for weight in args.content_weights:
                start = time.perf_counter()
                result = train_style_net(Path(folder) / "style.png", Path(folder) / f"net{weight:g}.pt",
                                         images=folder, steps=args.steps, size=args.size, device=args.device,
                                         content_weight=weight, progress=False)
                report[f"train_seconds content weight {weight:g}"] = time.perf_counter() - start
                nets[f"network, content weight {weight:g}"] = result.param
        net = next(iter(nets.values()))
        model = load_model().to(args.device)
        _, content_layer = style_layers_of(model, None, None)
        rows = []
        for name, photo in zip(HELD_OUT, sample_photos(args.size, HELD_OUT), strict=True):
            photo = photo[None].to(args.device)
            made = {}
            with torch.no_grad():
                for label, trained in nets.items():
                    made[label] = trained.to(args.device)(photo)
            made["optimised"] = style_transfer(photo.cpu(), style, size=args.size, steps=args.style_steps,
                                               device=args.device, progress=False).images.to(args.device)
            made["photo itself"] = photo
            row = {"photo": name}
            for label, image in made.items():
                row[label] = {"style": float(style_distance(model, style, image)[0]),
                              "content": float(content_distance(model, content_layer, image, photo)[0])}
            rows.append(row)
            print(json.dumps(row), flush=True)
        report["quality"] = rows
    for size in args.sizes:
        for bf16 in (False, True) if args.device == "cuda" else (False,):
            key = f"{size}{' bf16' if bf16 else ''}"
            report["speed"][key] = frames_per_second(net, size, args.device, bf16,
                                                     repeats=200 if args.device == "cuda" else 5)
            print(key, f"{report['speed'][key]:.1f} fps", flush=True)
    args.out.write_text(json.dumps(report, indent=1))
    if "quality" in report:
        for label in [k for k in report["quality"][0] if k != "photo"]:
            s = statistics.fmean(r[label]["style"] for r in report["quality"])
            c = statistics.fmean(r[label]["content"] for r in report["quality"])
            print(f"{label}: style distance {s:.3f}, content distance {c:.3f}")
        for key, seconds in report.items():
            if key.startswith("train_seconds"):
                print(f"training ({key[14:]}) {seconds:.0f} s for {args.steps} steps")


if __name__ == "__main__":
    main()
