"""Figures of issue 4, parts 3 and 4: CPPN art, its large renders and morphs; transparent units.

Sections (all on by default, pick with --only):
  art     CPPNs optimised at --size for --units: activation / best over natural photos, at the
          optimisation size and after a 4x render area-downsampled back to it
  large   one trained CPPN rendered at --render-size on this machine: seconds and peak memory
          (growth of the peak resident set, each in a fresh process; Linux) for the streamed PNG
          writer and for a float render() of the whole image
  morph   weight interpolation between the CPPNs of `art`: change between adjacent frames
  alpha   RGBA images with the transparency objective vs. without it: mean opacity, and the unit
          composited over new noise, Fourier-noise and photo backgrounds, / best on photos

Example (CPU, one thread): python bench/cppn_figures.py --device cpu --threads 1 --out cppn.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from diffparam import objectives as O
from diffparam.evaluate import unit_ratio
from diffparam.models.registry import efficientnet_lite0
from diffparam.param import CPPN
from diffparam.recipes.cppn_art import cppn_art, morph, save_render
from diffparam.recipes.transparency import activation_over_backgrounds, opacity, render_transparent

UNITS = ("blocks.6:21", "blocks.10:27", "blocks.14:57")


def _unit(spec: str) -> tuple[str, int]:
    layer, c = spec.split(":")
    return layer, int(c)


def _stem(spec: str) -> str:
    return spec.replace(":", "_")


def art_section(model, args, folder: Path) -> dict:
    rows = []
    # Every unit from the same seed (the same initial network), and the first unit once more from
    # another seed, so the morphs compare shared and independent starts.
    runs = [(spec, args.seed, _stem(spec)) for spec in args.units]
    runs.append((args.units[0], args.seed + 1, _stem(args.units[0]) + "_seed" + str(args.seed + 1)))
    for spec, seed, stem in runs:
        layer, c = _unit(spec)
        start = time.perf_counter()
        art = cppn_art(model, spec, size=args.size, steps=args.steps, seed=seed,
                       device=args.device, progress=False)
        seconds = time.perf_counter() - start
        model.to("cpu")
        cppn = art.param.cpu()
        cppn.save(folder / f"{stem}.pt")
        fine = F.interpolate(cppn.render(4 * args.size), size=(args.size, args.size), mode="area")
        rows.append(dict(unit=spec, seed=seed, seconds=round(seconds, 1),
                         ratio=float(unit_ratio(model, layer, c, art.images)[0]),
                         ratio_4x_area_down=float(unit_ratio(model, layer, c, fine)[0]),
                         max_pixel_change_4x=float((fine - art.images).abs().max())))
    return dict(size=args.size, steps=args.steps, units=rows)


def _peak_rss_mb() -> float:
    """The process's peak resident set (VmHWM) in MB, on Linux."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status: peak memory is measured on Linux only")


def _child(mode: str, cppn_path: str, size: int, threads: int | None) -> None:
    """Runs in a fresh process: prints seconds and peak resident-set growth (MB) of one large render.

    The peak is reset (/proc/self/clear_refs) after loading: a fresh process's ru_maxrss starts
    at its parent's size, which would hide the growth.
    """
    if threads:
        torch.set_num_threads(threads)
    cppn = CPPN.load(cppn_path)
    cppn.render(64)  # warm up the allocator and thread pool before the baseline
    Path("/proc/self/clear_refs").write_text("5")
    base = _peak_rss_mb()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if mode == "png":
            save_render(cppn, Path(tmp) / "big.png", size)
        else:
            cppn.render(size)
        seconds = time.perf_counter() - start
    print(json.dumps(dict(seconds=seconds, base_mb=base, peak_growth_mb=_peak_rss_mb() - base)))


def large_section(args, folder: Path) -> dict:
    cppn_path = folder / f"{_stem(args.units[0])}.pt"
    if not cppn_path.exists():  # `art` was not run: an untrained CPPN costs the same to render
        CPPN(args.size, generator=torch.Generator().manual_seed(args.seed)).save(cppn_path)
    out = dict(size=args.render_size, threads=torch.get_num_threads() if not args.threads else args.threads)
    for mode in ("png", "float"):
        cmd = [sys.executable, __file__, "--child", mode, str(cppn_path), str(args.render_size)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        out[mode] = json.loads(line)
    return out


def morph_section(args, folder: Path) -> dict:
    paths = [folder / f"{_stem(spec)}.pt" for spec in args.units]
    pairs = list(zip(paths, paths[1:], strict=False))  # different units, the same initial network
    pairs.append((paths[0], folder / f"{_stem(args.units[0])}_seed{args.seed + 1}.pt"))  # same unit
    rows = []
    for a_path, b_path in pairs:
        m = morph(CPPN.load(a_path), CPPN.load(b_path), folder / f"{a_path.stem}-{b_path.stem}.gif",
                  frames=args.frames, size=args.size, device="cpu", progress=False)
        rows.append(dict(a=a_path.stem, b=b_path.stem, frames=args.frames,
                         mean_adjacent=sum(m.adjacent) / len(m.adjacent), max_adjacent=max(m.adjacent),
                         endpoints=m.endpoints, jump=m.jump, detour=m.detour))
    return dict(rows=rows)


def alpha_section(model, args) -> dict:
    rows = []
    for spec in args.units:
        layer, c = _unit(spec)
        obj = O.channel(layer, c)
        for transparent in (True, False):
            result = render_transparent(model, obj, size=args.size, steps=args.steps, seed=args.seed,
                                        device=args.device, progress=False, transparent=transparent)
            model.to("cpu")
            ratios = activation_over_backgrounds(model, obj, result.images, draws=args.draws)
            rows.append(dict(unit=spec, transparency_objective=transparent,
                             opacity=float(opacity(result.images)[0]),
                             **{f"{kind}_mean": float(r.mean()) for kind, r in ratios.items()},
                             **{f"{kind}_lowest": float(r.min()) for kind, r in ratios.items()}))
    return dict(size=args.size, steps=args.steps, rows=rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", nargs=3, metavar=("MODE", "CPPN", "SIZE"), help=argparse.SUPPRESS)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=256)
    p.add_argument("--render-size", type=int, default=4096)
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--draws", type=int, default=8, help="new random backgrounds per kind")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--units", default=",".join(UNITS))
    p.add_argument("--only", default="art,large,morph,alpha")
    p.add_argument("--folder", default="cppn_figures", help="CPPNs and morphs are written here")
    p.add_argument("--out", default="cppn_figures.json")
    args = p.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], int(args.child[2]), args.threads)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    args.units = args.units.split(",")
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = efficientnet_lite0()
    figures: dict = dict(device=str(args.device), torch=torch.__version__)
    sections = args.only.split(",")
    for name in ("art", "large", "morph", "alpha"):
        if name not in sections:
            continue
        start = time.perf_counter()
        if name == "art":
            figures[name] = art_section(model, args, folder)
        elif name == "large":
            figures[name] = large_section(args, folder)
        elif name == "morph":
            figures[name] = morph_section(args, folder)
        else:
            figures[name] = alpha_section(model, args)
        figures[name]["section_seconds"] = round(time.perf_counter() - start, 1)
        print(json.dumps({name: figures[name]}, indent=1), flush=True)
    Path(args.out).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
