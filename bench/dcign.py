"""DC-IGN (issue 18) against the same network trained as a plain VAE, and against the same encoder
decoding through the project's renderer (`--decoder render`: the code is the angles), on renders made here.

Data: the sample sphere and knot (and `--blobs N` random shapes blob0..blobN-1), each with the `checker`
and `hue` textures, in mini-batches where azimuth, elevation, light or the object varies. Test sets: the
training objects at freshly drawn angles (new angles), and each `--held` mesh (never seen; default the
torus and blob1000, a random shape without symmetry) with the same textures (held-out objects).
Disentanglement: per true factor, R² of a linear fit from its own graphics unit, and from all the other
units together (for the plain VAE, "its own" is the single unit that fits it best on the training data).
Manipulation: in each azimuth batch of a test set, image 0 is encoded, its azimuth unit set to the value
the training data's linear fit gives for image j's azimuth, decoded and compared with the true render j
(PSNR, SSIM); against the reconstruction of j itself (the network's ceiling) and image 0 decoded
unchanged (no turn at all: the floor).
For the rendering decoder, decoding renders the batch's object (given: its name in the data, the
torus's mesh included) at the code; its units are its own by construction. Its codes of the held-out
objects' first `--refine-batches` batches are also refined by descent through the renderer, from the
encoder's guess alone and with `--refine-starts` more azimuth hypotheses (`refine_codes(starts=...)`):
scored by R², the azimuth error (median and share within 5°) and the reconstruction PSNR.
Time: training wall time on the device.

    PYTHONPATH=. python bench/dcign.py --device cpu
    PYTHONPATH=. python bench/dcign.py --device cpu --blobs 24 --render-steps 600 --refine-steps 40
    PYTHONPATH=. python bench/dcign.py --device cuda --size 64 --steps 20000 --width 64
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
from skimage.metrics import structural_similarity

from diffparam.io import make_grid, save_image
from diffparam.recipes.dcign import encode_all, r2, train_dcign
from diffparam.recipes.dcign_data import FACTORS, VARIES, load_data, make_data
from diffparam.recipes.dcign_render import BLUR, refine_codes, render_codes, scene_objects


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / (a - b).pow(2).mean().clamp_min(1e-10)))


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(structural_similarity(a.permute(1, 2, 0).numpy(), b.permute(1, 2, 0).numpy(), channel_axis=2,
                                       data_range=1.0, win_size=7))


def own_units(codes: torch.Tensor, true: torch.Tensor, named: bool) -> list[int]:
    """Each factor's unit: its named one, or (plain VAE) the single unit that fits it best."""
    if named:
        return list(range(len(FACTORS)))
    return [max(range(codes.shape[1]), key=lambda u, j=j: r2(codes[:, [u]], true[:, j])) for j in range(3)]


def disentanglement(codes: torch.Tensor, true: torch.Tensor, units: list[int]) -> dict[str, dict[str, float]]:
    out = {}
    for j, f in enumerate(FACTORS):
        rest = [u for u in range(codes.shape[1]) if u != units[j]]
        out[f] = {"own": round(r2(codes[:, [units[j]]], true[:, j]), 3),
                  "others": round(r2(codes[:, rest], true[:, j]), 3)}
    return out


def manipulation(net, data, unit: int, slope: float, offset: float, dev: str,
                 shown: list, objects=None, codes=None) -> dict[str, float]:
    """Scores over the azimuth batches of `data`; appends to `shown` the first batch's true images (if it is
    empty) and its turned ones. With `objects`, decoding renders the batch's object at the code; `codes`
    (N, B, D) replace the encoder's."""
    scores = {k: [] for k in ("turned_psnr", "turned_ssim", "ceiling_psnr", "ceiling_ssim", "floor_psnr",
                              "floor_ssim")}
    with torch.no_grad():
        for i, k in enumerate((data.varies == VARIES.index("azimuth")).nonzero().flatten().tolist()):
            x, az = data.images[k].to(dev), data.factors[k, :, 0]
            mean = net.encode(x)[0] if codes is None else codes[k].to(dev)
            turned = mean[:1].repeat(len(x), 1)
            turned[:, unit] = (slope * az + offset).to(dev)

            def decode(code, k=k):
                if objects is None:
                    return net.decode(code).cpu()
                names = data.objects[k][:len(code)]
                return render_codes(objects, names, code, data.size, data.channels).cpu()

            made = {"turned": decode(turned), "ceiling": decode(mean),
                    "floor": decode(mean[:1]).expand(len(x), -1, -1, -1)}
            if i == 0:
                shown += [] if shown else [x.cpu()]
                shown.append(made["turned"])
            for j in range(1, len(x)):
                for name, img in made.items():
                    scores[f"{name}_psnr"].append(psnr(img[j], x[j].cpu()))
                    scores[f"{name}_ssim"].append(ssim(img[j], x[j].cpu()))
    return {k: round(float(np.mean(v)), 3) for k, v in scores.items()}


def refined_scores(held, codes: torch.Tensor, objects, ranges, args) -> dict[str, dict[str, float]]:
    """The first `--refine-batches` batches' codes refined through the renderer, from the encoder's guess
    alone and with `--refine-starts` more azimuths: R² per factor, azimuth error, reconstruction PSNR."""
    images = held.images[:args.refine_batches].flatten(0, 1)
    true = held.factors[:args.refine_batches].flatten(0, 1)
    names = [n for b in held.objects[:args.refine_batches] for n in b]
    out = {}
    for starts in (0, args.refine_starts):
        start = time.perf_counter()
        fit = refine_codes(objects, names, images.to(args.device), codes[:len(images)].to(args.device),
                           ranges, steps=args.refine_steps, starts=starts).cpu()
        seconds = time.perf_counter() - start
        made = render_codes(objects, names, fit, held.size, held.channels)
        error = (fit[:, 0] - true[:, 0]).abs()
        per_texture = {t: round(float(error[[n.endswith("/" + t) for n in names]].median()), 2)
                       for t in sorted({n.partition("/")[2] for n in names})}
        out[f"starts_{starts}"] = {
            "r2": {f: round(r2(fit[:, [j]], true[:, j]), 3) for j, f in enumerate(FACTORS)},
            "azimuth_error_median": round(float(error.median()), 2), "azimuth_error_median_by_texture":
            per_texture, "azimuth_within_5": round(float((error < 5).float().mean()), 3),
            "reconstruction_psnr": round(float(np.mean([psnr(m, x) for m, x in zip(made, images,
                                                                                     strict=True)])), 2),
            "seconds": round(seconds, 1)}
    encoder_error = (codes[:len(images), 0] - true[:, 0]).abs()
    out["encoder_azimuth_error_median"] = round(float(encoder_error.median()), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--groups", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batches", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--blobs", type=int, default=0, help="random shapes added to training")
    ap.add_argument("--held", default="torus,blob1000", help="held-out sample meshes, comma-separated")
    ap.add_argument("--render-steps", type=int, default=1500, help="steps of the rendering decoder's run")
    ap.add_argument("--render-groups", type=int, default=2, help="mini-batches per step, rendering decoder")
    ap.add_argument("--render-blur", type=float, default=BLUR, help="the rendering decoder's starting blur")
    ap.add_argument("--render-plain", action="store_true", help="rendering decoder: no batch clamping")
    ap.add_argument("--refine-steps", type=int, default=100, help="descent steps refining the rendering "
                    "decoder's codes of the held-out objects")
    ap.add_argument("--refine-batches", type=int, default=4, help="held-out batches refined (0: none)")
    ap.add_argument("--refine-starts", type=int, default=3, help="extra azimuth hypotheses when refining")
    ap.add_argument("--methods", default="dcign,plain,render", help="which of dcign, plain, render to run")
    ap.add_argument("--out", default="dcign.json")
    ap.add_argument("--figure", default=None, help="a PNG: for new angles, then for the first held-out "
                    "object, an azimuth batch and each method turning its first image to those azimuths")
    args = ap.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(1)  # the 2-core CPU is shared with other jobs
    common = dict(size=args.size, textures=("checker", "hue"), azimuth=(-45.0, 45.0), elevation=(-20.0, 30.0))
    report: dict = {"device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
                    "cpu": platform.processor() or platform.machine(), "date": datetime.now(UTC).isoformat(),
                    "settings": vars(args), "methods": {}}
    with tempfile.TemporaryDirectory() as tmp:
        trained = ["shape:sphere", "shape:knot"]
        make_data(Path(tmp) / "train", meshes=trained, batches=args.batches, seed=1, blobs=args.blobs,
                  **common)
        make_data(Path(tmp) / "angles", meshes=trained, batches=24, seed=2, blobs=args.blobs, **common)
        train, angles = load_data(Path(tmp) / "train"), load_data(Path(tmp) / "angles")
        held_out = {}
        for i, mesh in enumerate(args.held.split(",")):
            make_data(Path(tmp) / mesh, meshes=[f"shape:{mesh}"], batches=24, seed=3 + i, **common)
            held_out[mesh] = load_data(Path(tmp) / mesh)
        report["training_objects"] = sorted({n for b in train.objects for n in b})
        shown: dict[str, list[torch.Tensor]] = {"angles": [], "held": []}  # true batch, each method's turn
        names = {"dcign": "DC-IGN", "plain": "plain VAE", "render": "DC-IGN, rendering decoder"}
        for method in args.methods.split(","):
            name, plain, render = names[method], method == "plain", method == "render"

            def objects(data, render=render):
                return scene_objects(data) if render else None

            if render:
                result = train_dcign(train, Path(tmp) / method, steps=args.render_steps, decoder="render",
                                     groups=args.render_groups, lr=args.lr, width=args.width, seed=args.seed,
                                     blur=args.render_blur, blur_steps=max(1, args.render_steps // 2),
                                     plain=args.render_plain, device=args.device, progress=False)
            else:
                result = train_dcign(train, Path(tmp) / method, steps=args.steps, plain=plain,
                                     groups=args.groups, lr=args.lr, width=args.width, free=5, seed=args.seed,
                                     device=args.device, progress=False)
            net = result.param.to(args.device)
            codes, true = encode_all(net, train.images.flatten(0, 1)), train.factors.flatten(0, 1)
            units = own_units(codes, true, named=not plain)
            a = torch.stack([true[:, 0].double(), torch.ones(len(true), dtype=torch.float64)], 1)
            fitted = torch.linalg.lstsq(a, codes[:, units[0]:units[0] + 1].double()).solution
            slope, offset = fitted[:, 0].tolist()
            entry = report["methods"][name] = {
                "train_seconds": round(result.seconds, 1), "units": units,
                "disentanglement_train": disentanglement(codes, true, units),
                "azimuth_fit": {"slope": round(slope, 4), "offset": round(offset, 3)},
                "manipulation_new_angles": manipulation(net, angles, units[0], slope, offset, args.device,
                                                        shown["angles"], objects(angles)),
                "held_out": {}}
            for i, (mesh, held) in enumerate(held_out.items()):
                held_codes = encode_all(net, held.images.flatten(0, 1))
                entry["held_out"][mesh] = {
                    "disentanglement": disentanglement(held_codes, held.factors.flatten(0, 1), units),
                    "manipulation": manipulation(net, held, units[0], slope, offset, args.device,
                                                 shown["held"] if i == 0 else [], objects(held))}
                if render and args.refine_batches:
                    entry["held_out"][mesh]["refined"] = refined_scores(
                        held, held_codes, objects(held), [train.ranges[f] for f in FACTORS], args)
            print(name, json.dumps(entry))
    if args.figure:
        rows = torch.cat(shown["angles"] + shown["held"])  # each: true renders, then each method's turn
        grid = make_grid(rows, ncol=len(shown["held"][0]), pad=1)
        save_image(F.interpolate(grid[None], scale_factor=4, mode="nearest")[0], args.figure)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
