"""Trust figures (issue 13): how Fourier, pixel and MACO visualizations compare with natural photos,
what feature accentuation gains and costs, and optimisation power on random-weight transformers.

Sections:
  params       EfficientNet-Lite0, 12 units of blocks 2-15 rendered together, --seeds seeds, each
               parameterization at its default learning rate (MACO also at --maco-lrs): per unit
               the activation against the best photo crop, the plausibility distance, the sanity
               score; time per step (after an untimed warm-up render). Reference rows: what the
               photo crops that drive each unit (held out) and uniform noise score.
  accentuate   4 sample photos x 4 units x --strengths x --accent-lrs: activation gained over the
               photo, distance moved (features at the held layer, pixels), sanity, plausibility.
  transformers timm models with random weights (--timm), 6 logits each, at their native size: the
               logit reached against the best photo crop's, and time per step (trust numbers are
               not meaningful with random weights).
Writes every figure to --out as it goes and prints a markdown summary.

GPU:  python3 bench/trust.py --device cuda --out trust.json
CPU:  python bench/trust.py --device cpu --size 128 --steps 128 --seeds 1 --skip-accentuate \\
        --skip-transformers --out trust-cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from diffparam.atlas.jobs import Unit
from diffparam.atlas.run import units_objective
from diffparam.evaluate import photo_pool, report
from diffparam.io import sample_photos
from diffparam.models.base import OUTPUT, Model
from diffparam.models.registry import efficientnet_lite0
from diffparam.objectives import channel
from diffparam.param import KINDS, make_param
from diffparam.recipes.accentuate import accentuate
from diffparam.render import render

BLOCKS = (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15)
ACCENT_UNITS = (("blocks.6", 17), ("blocks.8", 40), ("blocks.10", 5), ("blocks.12", 100))
ACCENT_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
LOGITS = (1, 100, 300, 500, 700, 900)


def units_of(model: Model) -> list[Unit]:
    """12 fixed units, one per block of `BLOCKS`: channel 37·i mod the block's width."""
    return [Unit(f"blocks.{b}", (37 * i) % model.channels(f"blocks.{b}")) for i, b in enumerate(BLOCKS)]


def mean(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.fmean(values) if values else None


def timed_render(model: Model, units: list[Unit], param: str, args: argparse.Namespace, seed: int,
                 lr: float | None = None) -> tuple[torch.Tensor, float]:
    """The units rendered together from `param`; seconds per step of the timed (second) render."""
    def once(steps: int) -> tuple[torch.Tensor, float]:
        made = make_param(param, args.size, batch=len(units), generator=torch.Generator().manual_seed(seed))
        result = render(model, units_objective(units), param=made, steps=steps, lr=lr, seed=seed,
                        device=args.device, progress=False, input_size=model.input_size)
        return result.images, result.seconds / steps

    once(min(16, args.steps))  # warm-up: graph capture, kernels, the photo spectrum
    return once(args.steps)


def params_section(model: Model, args: argparse.Namespace, out: dict) -> None:
    units = units_of(model)
    objectives = [channel(u.layer, u.channel) for u in units]
    runs = [(p, None) for p in args.params] + [("maco", lr) for lr in args.maco_lrs]
    for param, lr in runs:
        rows, times = [], []
        for seed in range(args.seeds):
            images, per_step = timed_render(model, units, param, args, seed, lr)
            rows += report(model, images, objectives)
            times.append(per_step)
        name = param if lr is None else f"{param} lr {lr:g}"
        out["params"][name] = {"lr": lr or KINDS[param].default_lr,
                               "seconds_per_step": statistics.fmean(times), "rows": rows}
        save(args, out)
    side = model.input_size
    noise = torch.rand(len(units), 3, side, side, generator=torch.Generator().manual_seed(0))
    out["params"]["uniform noise"] = {"rows": report(model, noise, objectives)}
    save(args, out)


def accentuate_section(model: Model, args: argparse.Namespace, out: dict) -> None:
    photos = sample_photos(args.size, ACCENT_PHOTOS)
    for lr in args.accent_lrs:
        for strength in args.strengths:
            rows = []
            for photo_name, photo in zip(ACCENT_PHOTOS, photos, strict=True):
                for layer, c in ACCENT_UNITS:
                    r = accentuate(model, channel(layer, c), photo[None], strength=strength, lr=lr,
                                   steps=args.accent_steps, size=args.size, device=args.device,
                                   progress=False)
                    rows.append({"photo": photo_name, "unit": f"{layer}:{c}", "value": r.value,
                                 "seed_value": r.seed_value, "feature_distance": r.feature_distance,
                                 "pixel_rmse": r.pixel_rmse, **{k: r.report[0][k] for k in
                                 ("vs_photos", "plausibility_distance", "sanity_score")}})
            out["accentuate"][f"strength {strength:g} lr {lr:g}"] = rows
            save(args, out)


def transformers_section(args: argparse.Namespace, out: dict) -> None:
    import timm

    for name in args.timm:
        torch.manual_seed(0)
        module = timm.create_model(name, pretrained=False)
        cfg = module.pretrained_cfg
        model = Model(module, mean=cfg["mean"], std=cfg["std"], input_size=cfg["input_size"][-1],
                      name=f"timm:{name}")
        units = [Unit(OUTPUT, c) for c in LOGITS]
        best = [float(photo_pool(model).values(model, channel(OUTPUT, c)).max()) for c in LOGITS]
        for param in args.params:
            images, per_step = timed_render(model, units, param, args, 0)
            values = [float(report(model, images[i:i + 1], channel(OUTPUT, c))[0]["value"])
                      for i, c in enumerate(LOGITS)]
            out["transformers"].setdefault(name, {})[param] = {
                "seconds_per_step": per_step, "values": values, "photo_best": best,
                "vs_photos": statistics.fmean(v / b for v, b in zip(values, best, strict=True) if b > 0)}
            save(args, out)


def save(args: argparse.Namespace, out: dict) -> None:
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


def summary(out: dict) -> str:
    lines = ["| parameterization | activation / best photo crop | plausibility distance | sanity score | "
             "ms / step |", "| --- | --- | --- | --- | --- |"]
    for name, run in out["params"].items():
        rows = run["rows"]
        ms = f"{1000 * run['seconds_per_step']:.1f}" if "seconds_per_step" in run else ""
        lines.append(f"| {name} | {mean(rows, 'vs_photos'):.2f} | "
                     f"{mean(rows, 'plausibility_distance'):.2f} | {mean(rows, 'sanity_score'):.2f} | {ms} |")
    held = [r["sanity_of_photos"] for r in out["params"].get("fourier", {}).get("rows", [])
            if r["sanity_of_photos"] is not None]
    if held:
        lines.append(f"| photo crops that drive the unit (held out) | | 1 (by construction) | "
                     f"{statistics.fmean(held):.2f} | |")
    if out["accentuate"]:
        lines += ["", "| accentuation | activation / photo's | activation / best photo crop | "
                  "feature distance | pixel RMSE | sanity | plausibility |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for name, rows in out["accentuate"].items():
            gain = statistics.fmean(r["value"] / r["seed_value"] for r in rows if r["seed_value"] > 0)
            lines.append(f"| {name} | {gain:.1f}x | {mean(rows, 'vs_photos'):.2f} | "
                         f"{mean(rows, 'feature_distance'):.3f} | {mean(rows, 'pixel_rmse'):.3f} | "
                         f"{mean(rows, 'sanity_score'):.2f} | {mean(rows, 'plausibility_distance'):.2f} |")
    for model, runs in out["transformers"].items():
        for param, run in runs.items():
            lines.append(f"- {model} {param}: logit {run['vs_photos']:.2f}x the best photo crop's, "
                         f"{1000 * run['seconds_per_step']:.1f} ms/step")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=512)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--params", nargs="+", default=["fourier", "pixel", "maco"])
    p.add_argument("--maco-lrs", nargs="*", type=float, default=[0.05, 0.2])
    p.add_argument("--strengths", nargs="+", type=float, default=[0, 8, 32, 128])
    p.add_argument("--accent-lrs", nargs="+", type=float, default=[0.01, 0.02])
    p.add_argument("--accent-steps", type=int, default=256)
    p.add_argument("--timm", nargs="*", default=["vit_small_patch16_224", "deit_small_patch16_224"])
    p.add_argument("--skip-params", action="store_true")
    p.add_argument("--skip-accentuate", action="store_true")
    p.add_argument("--skip-transformers", action="store_true")
    p.add_argument("--out", default="trust.json")
    args = p.parse_args()
    out = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor()
           or "cpu", "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "args": vars(args),
           "params": {}, "accentuate": {}, "transformers": {}}
    model = efficientnet_lite0()
    if not args.skip_params:
        params_section(model, args, out)
    if not args.skip_accentuate:
        accentuate_section(model, args, out)
    if not args.skip_transformers:
        transformers_section(args, out)
    print(summary(out))


if __name__ == "__main__":
    main()
