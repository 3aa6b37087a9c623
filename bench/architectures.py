"""Every architecture (issue 12): render a mid-depth unit of many timm and torchvision networks with
random weights, with no per-model flag, and record what renders, how the model's input and layers
were read, and the activation reached against natural photo crops.

Per model: the input geometry probed (channels; any size, multiples of k px, or fixed), how many
layers of each layout `layers()` lists, the middle building block (`block_layers`) and a channel of
it, a render of --steps steps at the native size (default parameterization and transforms, CUDA
graph when it captures), the unit's value on the rendered image and on the best of the 240 photo
crops, seconds per step, and any warning (a CUDA graph that fell back to eager) or error.
Writes --out as it goes and prints a markdown table.

GPU:  python3 bench/architectures.py --device cuda --out architectures.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

import torch

from diffparam.errors import first_line
from diffparam.evaluate import photo_pool
from diffparam.evaluate.photos import values_at_input_size
from diffparam.models.blocks import block_layers
from diffparam.models.registry import RANDOM, load_model
from diffparam.objectives import channel
from diffparam.render import render

MODELS = (
    # torchvision: CNNs, a ViT, Swin (v1, v2), MaxViT
    "torchvision:resnet50", "torchvision:vgg16_bn", "torchvision:densenet121", "torchvision:googlenet",
    "torchvision:inception_v3", "torchvision:mobilenet_v3_large", "torchvision:efficientnet_b0",
    "torchvision:regnet_y_800mf", "torchvision:convnext_tiny", "torchvision:shufflenet_v2_x1_0",
    "torchvision:vit_b_16", "torchvision:swin_t", "torchvision:swin_v2_t", "torchvision:maxvit_t",
    # timm: plain ViTs and their relatives
    "timm:vit_small_patch16_224", "timm:deit_small_distilled_patch16_224", "timm:beit_base_patch16_224",
    "timm:eva02_small_patch14_224", "timm:convit_tiny", "timm:cait_xxs24_224",
    "timm:vit_small_patch14_reg4_dinov2", "timm:vit_base_patch16_clip_224", "timm:xcit_tiny_12_p16_224",
    "timm:volo_d1_224", "timm:crossvit_tiny_240",
    # hierarchical and hybrid transformers
    "timm:swin_tiny_patch4_window7_224", "timm:swinv2_tiny_window8_256", "timm:maxvit_tiny_tf_224",
    "timm:coatnet_0_rw_224", "timm:levit_128s", "timm:hiera_tiny_224", "timm:mvitv2_tiny",
    "timm:pit_s_224", "timm:twins_pcpvt_small", "timm:pvt_v2_b0", "timm:edgenext_small",
    "timm:efficientformer_l1", "timm:mobilevit_s", "timm:fastvit_t8", "timm:tiny_vit_5m_224",
    "timm:davit_tiny", "timm:focalnet_tiny_srf",
    # MLPs and metaformers
    "timm:mixer_b16_224", "timm:resmlp_12_224", "timm:gmlp_s16_224", "timm:poolformer_s12",
    # CNNs of odd geometry and modern CNNs
    "timm:dla34", "timm:hrnet_w18_small", "timm:convnextv2_tiny", "timm:regnety_016", "timm:repvit_m1",
    "timm:efficientvit_b0", "timm:mobilenetv4_conv_small", "timm:inception_v4", "timm:nfnet_l0",
    "timm:ghostnet_100", "timm:res2net50_26w_4s", "timm:cspresnet50",
)


def family(model) -> str:
    """The model's family: the module its class is defined in (vision_transformer, swin_transformer...)."""
    return type(model.module).__module__.rsplit(".", 1)[-1]


def measure(name: str, steps: int, device: str) -> dict:
    row: dict = {"model": name}
    started = time.perf_counter()
    try:
        model = load_model(name, weights=RANDOM).to(device)
    except Exception as exc:  # noqa: BLE001 - a model missing from this timm/torchvision is a row
        row["error"] = f"load: {first_line(exc)}"
        return row
    row["family"] = family(model)
    try:
        geometry = model.geometry
        infos = model.layers()
        row["geometry"] = geometry.describe()
        row["layouts"] = dict(Counter(info.layout for info in infos))
        blocks = block_layers(model)
        layer = blocks[len(blocks) // 2]
        info = model.layer_info(layer)
        unit = channel(layer, info.channels // 3)
        row.update(layer=layer, layout=info.describe(), unit=unit.name,
                   probe_seconds=time.perf_counter() - started)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            result = render(model, unit, steps=steps, device=device, progress=False,
                            size=model.native_size)
            if device == "cuda":
                torch.cuda.synchronize()
            row["seconds_per_step"] = (time.perf_counter() - t0) / steps
        row["warnings"] = [first_line(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        value = float(values_at_input_size(model, unit, result.images)[0])
        crops = photo_pool(model).values(model, unit)
        row.update(value=value, best_photo=float(crops.max()), median_photo=float(crops.median()),
                   renders=True)
        row["vs_photos"] = value / row["best_photo"] if row["best_photo"] > 0 else None
    except Exception as exc:  # noqa: BLE001 - what fails is the figure
        row.update(renders=False, error=first_line(exc), trace=traceback.format_exc(limit=-3))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--out", type=Path, default=Path("architectures.json"))
    args = parser.parse_args()
    import timm
    import torchvision

    meta = {"device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor(),
            "torch": torch.__version__, "timm": timm.__version__, "torchvision": torchvision.__version__,
            "date": time.strftime("%Y-%m-%d"), "steps": args.steps}
    rows = []
    for name in args.models:
        row = measure(name, args.steps, args.device)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "trace"}), flush=True)
        args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        if args.device == "cuda":
            torch.cuda.empty_cache()
    ok = [r for r in rows if r.get("renders")]
    print(f"\n{len(ok)} of {len(rows)} render; {len({r.get('family') for r in rows})} families\n")
    print("| model | family | input | layer (layout) | value / best photo crop | ms/step | notes |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        ratio = ""
        if r.get("renders"):
            ratio = f"{r['value']:.3g} / {r['best_photo']:.3g}"
            ratio += "" if r.get("vs_photos") is None else f" ({r['vs_photos']:.2f})"
        notes = "; ".join(r.get("warnings", []) + ([r["error"]] if "error" in r else []))
        ms = f"{1000 * r['seconds_per_step']:.1f}" if "seconds_per_step" in r else ""
        print(f"| {r['model']} | {r.get('family', '')} | {r.get('geometry', '')} | {r.get('layer', '')} "
              f"({r.get('layout', '')}) | {ratio} | {ms} | {notes} |")


if __name__ == "__main__":
    main()
