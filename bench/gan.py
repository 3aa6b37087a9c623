"""The single-image GAN (issue 16): realism (SIFID) and diversity of its samples against the project's
own Gram-matrix texture synthesis from noise, on the same photos, and its training time.

Photos: scikit-image's, scaled so that the longer side is --size px. For each photo:
- GAN: `train_gan` (--scales scales, --steps iterations per scale), then --samples samples.
- Texture: `style_transfer(photo, photo, init="noise", content_weight=0)`: the `style` objective (Gram
  matrices at the embedded model's style layers) from a Fourier image of noise, one seed per sample,
  --texture-steps steps each.
- SIFID (Shaham et al. 2019): the Fréchet distance between the per-position features of a sample and
  of the photo at `evaluate.trust.SIFID_LAYERS` of the embedded EfficientNet-Lite0 (1/4 resolution),
  averaged over samples; the photo's left-right mirror is scored too, as a reference for "as real as a
  photo". Diversity: the mean per-pixel standard deviation of intensity across the samples over the
  photo's (the SinGAN paper's measure). Lower SIFID is more realistic.

GPU (H200, 250 px, 8 scales; one photo per command keeps each under 10 minutes):
    python3 bench/gan.py --device cuda --photos chelsea --out gan_gpu_chelsea.json
CPU (small):  python bench/gan.py --device cpu --size 48 --scales 3 --min-size 16 --steps 250 --width 16 \
    --samples 4 --texture-steps 128 --photos chelsea --figure docs/images/gan_cpu.png --out gan_cpu.json
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

from diffparam.evaluate import pixel_diversity, sifid
from diffparam.io import make_grid, save_image
from diffparam.models.registry import load_model
from diffparam.recipes.gan import gan_samples, train_gan
from diffparam.recipes.style import style_transfer

PHOTOS = ("chelsea", "coffee", "rocket")


def photo(name: str, size: int) -> torch.Tensor:
    """scikit-image's photo `name` with its longer side at `size` px, (1, 3, H, W)."""
    from skimage import data

    pixels = torch.from_numpy(getattr(data, name)()).float() / 255
    rgb = pixels[..., None].expand(-1, -1, 3) if pixels.dim() == 2 else pixels[..., :3]
    img = rgb.permute(2, 0, 1)[None]
    h, w = img.shape[-2:]
    s = size / max(h, w)
    return torch.nn.functional.interpolate(img, size=(round(h * s), round(w * s)), mode="bilinear",
                                           antialias=True, align_corners=False)


def synced(device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def bench_photo(name: str, args: argparse.Namespace, model, folder: Path) -> tuple[dict, torch.Tensor]:
    """The numbers for one photo, and a figure row: the photo, two GAN samples, two textures."""
    image = photo(name, args.size)
    start = synced(args.device)
    trained = train_gan(image, folder / name, scales=args.scales, size=args.size, min_size=args.min_size,
                        steps=args.steps, width=args.width, device=args.device, progress=not args.quiet)
    train_s = synced(args.device) - start
    samples = gan_samples(folder / name, n=args.samples, seed=1, device=args.device).images
    start = synced(args.device)
    textures = torch.cat([style_transfer(image, image, model, init="noise", content_weight=0.0,
                                         size=min(image.shape[-2:]), steps=args.texture_steps, seed=seed,
                                         device=args.device, progress=False).images
                          for seed in range(args.samples)])
    texture_s = synced(args.device) - start
    row = {
        "shape": list(image.shape[-2:]),
        "gan": {"sifid": statistics.mean(sifid(model, samples, image).tolist()),
                "diversity": pixel_diversity(samples, image), "train_seconds": train_s,
                "seconds_per_scale": trained.metrics["seconds"],
                "reconstruction_rms": trained.metrics["reconstruction"][-1]},
        "texture": {"sifid": statistics.mean(sifid(model, textures, image).tolist()),
                    "diversity": pixel_diversity(textures, image), "seconds": texture_s},
        "mirror_sifid": float(sifid(model, image.flip(-1), image)[0]),
    }
    return row, torch.cat([image, samples[:2], textures[:2]])


def summarise(report: dict) -> None:
    """The means over the photos measured so far, for each method."""
    rows = report["photos"].values()
    for method in ("gan", "texture"):
        report[method] = {k: statistics.mean(r[method][k] for r in rows) for k in ("sifid", "diversity")}
    report["gan"]["train_seconds"] = statistics.mean(r["gan"]["train_seconds"] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--photos", nargs="*", default=list(PHOTOS))
    parser.add_argument("--size", type=int, default=250)
    parser.add_argument("--scales", type=int, default=8)
    parser.add_argument("--min-size", type=int, default=25)
    parser.add_argument("--steps", type=int, default=1000, help="GAN iterations per scale")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--texture-steps", type=int, default=256)
    parser.add_argument("--figure", type=Path, default=None,
                        help="PNG: per photo, the photo, 2 GAN samples, 2 textures")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("gan.json"))
    args = parser.parse_args()
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu"
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "figure", "quiet")}
    meta = {"device": device_name, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
            "threads": torch.get_num_threads(), "settings": settings}
    report: dict = {"meta": meta, "photos": {}}
    model = load_model("efficientnet_lite0").to(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.photos:
            report["photos"][name], figure_row = bench_photo(name, args, model, Path(folder))
            rows.append(figure_row)
            r = report["photos"][name]
            print(f"{name} {r['shape'][1]}x{r['shape'][0]}: GAN SIFID {r['gan']['sifid']:.3f} diversity "
                  f"{r['gan']['diversity']:.3f} trained in {r['gan']['train_seconds']:.1f} s | texture SIFID "
                  f"{r['texture']['sifid']:.3f} diversity {r['texture']['diversity']:.3f} in "
                  f"{r['texture']['seconds']:.1f} s | mirror SIFID {r['mirror_sifid']:.3f}", flush=True)
            summarise(report)
            # written after every photo, so that a run cut short keeps what it measured
            args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in ("gan", "texture")}))
    if args.figure is not None and rows:
        same = all(r.shape == rows[0].shape for r in rows)
        grids = rows if same else rows[:1]
        save_image(make_grid(torch.cat(grids), ncol=5), args.figure)


if __name__ == "__main__":
    main()
