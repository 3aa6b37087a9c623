"""The core issue's quality figures on the embedded model, as JSON plus a markdown summary.

Sections (all on by default, pick with --only):
  units    every channel of the given blocks: activation on the visualization / best over photos
  choices  ReLU-gradient redirect on/off and feeding 128 px images as rendered vs upsampled to 224
  fourier  steps to reach 80% of the best activation: Fourier+decorrelated vs pixel
  classes  softmax probability of class objectives (default 224 px, 512 steps)

Example (GPU): python bench/figures.py --device cuda --out figures.json
Quick CPU run:  python bench/figures.py --device cpu --channels 4 --only units,classes
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from diffparam import objectives as O
from diffparam.evaluate import class_probability, objective_values, photo_reference
from diffparam.models.registry import efficientnet_lite0
from diffparam.param import FourierImage, PixelImage
from diffparam.render import render

BLOCKS = ("blocks.2", "blocks.6", "blocks.10", "blocks.14")
PROBE_UNITS = (("blocks.2", 3), ("blocks.2", 12), ("blocks.6", 21), ("blocks.6", 56),
               ("blocks.10", 27), ("blocks.10", 60), ("blocks.14", 57), ("blocks.14", 100))
CLASSES = ("flamingo", "goldfinch", "espresso", "tabby", "volcano", "jellyfish", "pizza", "lemon")


def _values(model, units, images) -> list[float]:
    return [float(objective_values(model, O.channel(layer, c), images[i:i + 1])[0])
            for i, (layer, c) in enumerate(units)]


def _ratios(model, units, device, chunk, **kw) -> list[dict]:
    """Render `units` in batches of `chunk`; each unit's value, photo reference and ratio."""
    rows = []
    for start in range(0, len(units), chunk):
        part = units[start:start + chunk]
        if len({layer for layer, _ in part}) == 1:
            obj = O.channels(part[0][0], [c for _, c in part])
        else:
            obj = O.Objective.sum(O.channel(layer, c, image=i) for i, (layer, c) in enumerate(part))
        result = render(model, obj, batch=len(part), device=device, progress=False, **kw)
        model.to(device)
        for (layer, c), value in zip(part, _values(model, part, result.images.to(device)),
                                     strict=True):
            ref = photo_reference(model, O.channel(layer, c))
            rows.append(dict(layer=layer, channel=c, value=value, photo=ref,
                             ratio=value / ref if ref > 0 else None))
    return rows


def units_section(model, args) -> dict:
    out = {}
    for block in args.blocks:
        n = model.channels(block)
        channels = range(n) if args.channels == 0 else range(min(n, args.channels))
        t = time.perf_counter()
        rows = _ratios(model, [(block, c) for c in channels], args.device, args.chunk,
                       size=args.size, steps=args.steps, seed=args.seed, precision=args.precision)
        ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
        out[block] = dict(
            channels=len(rows), positive_reference=len(ratios),
            median_ratio=statistics.median(ratios) if ratios else None,
            share_ge_5=sum(r >= 5 for r in ratios) / max(1, len(ratios)),
            share_ge_3=sum(r >= 3 for r in ratios) / max(1, len(ratios)),
            seconds=time.perf_counter() - t, rows=rows)
    return out


def choices_section(model, args) -> dict:
    variants = {"default (as rendered, no redirect)": {},
                "ReLU redirect for 16 steps": dict(relu_redirect_steps=16),
                "upsampled to 224 px": dict(input_size=224)}
    out = {}
    for name, kw in variants.items():
        rows = _ratios(model, list(PROBE_UNITS), args.device, args.chunk, size=args.size,
                       steps=args.steps, seed=args.seed, **kw)
        out[name] = dict(ratios=[r["ratio"] for r in rows],
                         median_ratio=statistics.median(r["ratio"] for r in rows if r["ratio"]))
    return out


def fourier_section(model, args) -> dict:
    """Activation curves (no transforms, every 4 steps) for Fourier+decorrelated and pixel images.

    Each unit's target is 80% of the best activation either parameterization reaches within the
    step budget; the figure is the number of steps each needs to reach it.
    """
    units = list(PROBE_UNITS)
    obj = O.Objective.sum(O.channel(layer, c, image=i) for i, (layer, c) in enumerate(units))
    gen = torch.Generator().manual_seed(args.seed)
    params = {"fourier + decorrelated": FourierImage(args.size, batch=len(units), generator=gen),
              "pixel": PixelImage(args.size, batch=len(units), generator=gen)}
    curves: dict[str, list[tuple[int, list[float]]]] = {}
    for name, param in params.items():
        curve: list[tuple[int, list[float]]] = []

        def record(step, _loss, images, curve=curve):
            if step % 4 == 0:
                model.to(args.device)
                curve.append((step, _values(model, units, images.to(args.device))))

        render(model, obj, param=param, steps=args.fourier_steps, seed=args.seed,
               device=args.device, progress=False, callback=record)
        curves[name] = curve
    best = [max(vals[i] for curve in curves.values() for _, vals in curve) for i in range(len(units))]
    out: dict = {"units": [f"{layer}:{c}" for layer, c in units], "max_steps": args.fourier_steps,
                 "target": [0.8 * b for b in best]}
    for name, curve in curves.items():
        out[name] = dict(
            steps_to_target=[next((s for s, v in curve if v[i] >= 0.8 * best[i]), None)
                             for i in range(len(units))],
            final=curve[-1][1], curve=curve)
    return out


def classes_section(model, args) -> dict:
    out = {}
    for kind in ("logit", "log_softmax"):
        make = getattr(O, kind)
        obj = O.Objective.sum(make(c, image=i) for i, c in enumerate(CLASSES))
        result = render(model, obj, batch=len(CLASSES), size=args.class_size,
                        steps=args.class_steps, seed=args.seed,
                        device=args.device, progress=False)
        model.to("cpu")
        out[kind] = {c: float(class_probability(model, result.images[i:i + 1], c)[0])
                     for i, c in enumerate(CLASSES)}
    return out


def _markdown(res: dict) -> str:
    lines = []
    if "units" in res:
        lines += ["| block | channels | median ratio | share ≥ 5× | share ≥ 3× |",
                  "|---|---|---|---|---|"]
        for block, r in res["units"].items():
            lines.append(f"| {block} | {r['positive_reference']}/{r['channels']} | "
                         f"{r['median_ratio']:.1f} | {r['share_ge_5']:.0%} | {r['share_ge_3']:.0%} |")
    if "choices" in res:
        lines += ["", "| variant | median ratio over probe units | ratios |", "|---|---|---|"]
        lines += [f"| {k} | {v['median_ratio']:.2f} | "
                  + ", ".join(f"{r:.1f}" for r in v["ratios"] if r is not None) + " |"
                  for k, v in res["choices"].items()]
    if "fourier" in res:
        f = res["fourier"]
        never = f">{f['max_steps']}"
        lines += ["", "| unit | target | Fourier steps | pixel steps | Fourier final | pixel final |",
                  "|---|---|---|---|---|---|"]
        for i, u in enumerate(f["units"]):
            a, b = (f[k]["steps_to_target"][i] or never for k in ("fourier + decorrelated", "pixel"))
            fa, fb = (f[k]["final"][i] for k in ("fourier + decorrelated", "pixel"))
            lines.append(f"| {u} | {f['target'][i]:.1f} | {a} | {b} | {fa:.1f} | {fb:.1f} |")
    if "classes" in res:
        lines += ["", "| objective | " + " | ".join(CLASSES) + " |",
                  "|---|" + "---|" * len(CLASSES)]
        for kind, probs in res["classes"].items():
            lines.append(f"| {kind} | " + " | ".join(f"{probs[c]:.3f}" for c in CLASSES) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--blocks", default=",".join(BLOCKS))
    p.add_argument("--channels", type=int, default=0, help="first N channels per block (0: all)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=256)
    p.add_argument("--fourier-steps", type=int, default=512)
    p.add_argument("--class-size", type=int, default=224)
    p.add_argument("--class-steps", type=int, default=512)
    p.add_argument("--chunk", type=int, default=64, help="images rendered together")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="for the units section")
    p.add_argument("--only", default="units,choices,fourier,classes")
    p.add_argument("--out", default="figures.json")
    args = p.parse_args()
    args.blocks = args.blocks.split(",")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    model = efficientnet_lite0()
    sections = dict(units=units_section, choices=choices_section, fourier=fourier_section,
                    classes=classes_section)
    res: dict = dict(device=torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
                     torch=torch.__version__, date=time.strftime("%Y-%m-%d"), args=vars(args))
    for name in args.only.split(","):
        t = time.perf_counter()
        res[name] = sections[name](model, args)
        print(f"{name}: {time.perf_counter() - t:.1f} s", flush=True)
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(_markdown(res))


if __name__ == "__main__":
    main()
