"""Style transfer figures: Fourier vs pixel parameterization at equal steps on one model.

Writes under --out: content.png (scikit-image's chelsea), style.png (a generated swirl pattern),
{fourier,pixel}_from_{content,noise}.png, side_by_side.jpg (the README picture: column 1 content
over style, then Fourier and pixel results, from the content image on top and from noise below)
and results.json, and prints a Markdown table: final style and content losses (as defined in
diffparam.objectives.style) and the share of spectral energy above 0.25 cycles/pixel.

    python bench/style_figures.py --out bench_out/style                       # embedded model, CPU ok
    python bench/style_figures.py --model torchvision:vgg19 --device cuda --out bench_out/style_vgg19
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data

from diffparam.evaluate import objective_values
from diffparam.io import atomic_path, make_grid, read_image, resize, save_image, to_uint8
from diffparam.models.registry import load_model
from diffparam.objectives import content, content_target, style, style_targets
from diffparam.param import kinds
from diffparam.recipes.style import (
    CONTENT_WEIGHT,
    SIZE,
    STEPS,
    default_layers,
    high_frequency_share,
    style_transfer,
    swirl_pattern,
)
from diffparam.render import resolve_device


def _photo(name: str) -> torch.Tensor:
    arr = np.asarray(getattr(data, name)(), dtype=np.float32) / 255.0
    return torch.from_numpy(arr[..., :3]).permute(2, 0, 1).unsqueeze(0).contiguous()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="bench_out/style")
    ap.add_argument("--size", type=int, default=SIZE, help="shorter side of the output")
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--inits", default="content,noise", help="starts to compare: content, noise or both")
    ap.add_argument("--style-layers", default=None, help="comma-separated; default: the model's known set")
    ap.add_argument("--content-layer", default=None)
    ap.add_argument("--content-weight", type=float, default=CONTENT_WEIGHT)
    args = ap.parse_args()

    out = Path(args.out)
    model = load_model(args.model, args.weights)
    known = default_layers(model) if not (args.style_layers and args.content_layer) else ((), "")
    layers = tuple(args.style_layers.split(",")) if args.style_layers else known[0]
    layer = args.content_layer or known[1]
    content_path, style_path = out / "content.png", out / "style.png"
    save_image(_photo("chelsea"), content_path)
    save_image(swirl_pattern(256, seed=0), style_path)

    rows, images = {}, {}
    inits = [name.strip() for name in args.inits.split(",") if name.strip()]
    for init in inits:
        for kind in kinds(from_image=True):
            result = style_transfer(content_path, style_path, model, param=kind, init=init,
                                    style_layers=layers, content_layer=layer,
                                    content_weight=args.content_weight, size=args.size, steps=args.steps,
                                    seed=args.seed, device=args.device, progress=True)
            name = f"{kind} from {init}"
            result.save(out / f"{kind}_from_{init}.png")
            images[name] = result.images
            rows[name] = {"style_loss": result.style_loss, "content_loss": result.content_loss,
                          "high_frequency": result.high_frequency, "seconds": result.seconds}
            print(f"{name}: {rows[name]}", flush=True)

    # References: the content photo's own losses and spectrum (the starting point), the style's spectrum.
    content_img = read_image(content_path, args.size)
    style_img = read_image(style_path, args.size)
    s_obj = style(style_targets(model, style_img, layers))
    c_obj = content(layer, content_target(model, content_img, layer))
    rows["content image"] = {"style_loss": -float(objective_values(model, s_obj, content_img)[0]),
                             "content_loss": -float(objective_values(model, c_obj, content_img)[0]),
                             "high_frequency": float(high_frequency_share(content_img)[0])}
    rows["style image"] = {"high_frequency": float(high_frequency_share(style_img)[0])}

    h, w = content_img.shape[-2:]
    big = resize(style_img, max(h, w))
    top, left = (big.shape[-2] - h) // 2, (big.shape[-1] - w) // 2
    firsts = [content_img, big[..., top:top + h, left:left + w]]
    panels = [p for i, init in enumerate(inits)
              for p in (firsts[i % 2], images[f"fourier from {init}"], images[f"pixel from {init}"])]
    with atomic_path(out / "side_by_side.jpg") as tmp:  # quality 90: keeps the artefacts, < 300 KB
        Image.fromarray(to_uint8(make_grid(torch.cat(panels), ncol=3))).save(tmp, format="JPEG",
                                                                             quality=90)
    dev = resolve_device(args.device)
    meta = {"model": model.name, "device": str(dev),
            "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else
            f"{platform.machine()}, {os.cpu_count()} cores",
            "date": time.strftime("%Y-%m-%d"), "size": args.size, "steps": args.steps, "seed": args.seed,
            "inits": inits, "style_layers": list(layers), "content_layer": layer,
            "content_weight": args.content_weight, "results": rows}
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    print(f"\n{model.name}, {args.size}px, {args.steps} steps, {dev}")
    print("| start / result | style loss | content loss | energy above 0.25 cycles/px |")
    print("| --- | ---: | ---: | ---: |")
    for name, row in rows.items():
        cells = [f"{row[k]:.3f}" if k in row else "" for k in ("style_loss", "content_loss")]
        print(f"| {name} | {cells[0]} | {cells[1]} | {100 * row['high_frequency']:.2f}% |")
    print(f"\nwrote {out}/side_by_side.jpg and results.json")


if __name__ == "__main__":
    main()
