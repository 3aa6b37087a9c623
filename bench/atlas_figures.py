"""The atlas's figures on the embedded model, as JSON plus a markdown summary.

Sections (both on by default, pick with --only):
  circuits  each MBConv block's connections from its weights (gated, as the page uses them, and
            plain: ReLU6s ignored) against the mean gradient measured on held-out photos
            (Spearman per unit, overlap of the top-4 inputs); gradient x activation for contrast.
  groups    render the layers' atlases with two seeds (diffparam.atlas.atlas), group each layer
            and judge the groups: silhouette; colour and line orientation within groups against
            random groupings of the same sizes (permutation p); stability across the two seeds
            (adjusted Rand); agreement with co-activation on photos; how many groups get a name.
            Done for the page's features (the layer and every layer before it) and for the layer
            alone.

Example (GPU): python bench/atlas_figures.py --device cuda --layers blocks.2,blocks.6,blocks.10 \
                   --size 128 --steps 512 --out atlas_figures.json
Quick CPU run: python bench/atlas_figures.py --device cpu --layers blocks.2,blocks.3 --size 64 \
                   --steps 128 --only groups
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform
from scipy.stats import spearmanr
from torch import Tensor

from diffparam.atlas import atlas
from diffparam.atlas import circuits as C
from diffparam.atlas import grouping as G
from diffparam.atlas import naming as N
from diffparam.atlas import patches as P
from diffparam.io import read_image
from diffparam.models.registry import efficientnet_lite0
from diffparam.render import resolve_device

HELD_OUT = tuple(name for name in P.PATCH_PHOTOS if name not in C.GATE_PHOTOS)


# -- measures only these figures use --------------------------------------------------------------
def adjusted_rand(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two labelings: 1 identical, about 0 for unrelated ones."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(table, (ai, bi), 1)

    def pairs(x: np.ndarray) -> float:
        return float((x * (x - 1) / 2).sum())

    n = len(a)
    index, rows, cols = pairs(table), pairs(table.sum(1)), pairs(table.sum(0))
    expected = rows * cols / (n * (n - 1) / 2) if n > 1 else 0.0
    top = (rows + cols) / 2 - expected
    return float((index - expected) / top) if top > 0 else 1.0


def cluster_similarity(similarity: Tensor, groups: int) -> np.ndarray:
    """Labels 0..groups-1 from average-linkage clustering of a (N, N) similarity (1 - s as distance)."""
    distance = G.cosine_distance(similarity)
    tree = hierarchy.linkage(squareform(distance, checks=False), method="average")
    labels = hierarchy.fcluster(tree, groups, criterion="maxclust") - 1
    return G.ranked_labels(labels, hierarchy.leaves_list(tree))


def separation(similarity: Tensor, labels: np.ndarray) -> dict[str, float]:
    """Mean similarity within groups and between groups under a (N, N) similarity matrix."""
    s = similarity.double().numpy()
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(labels), dtype=bool)
    within = s[same & off]
    between = s[~same]
    return {"within": float(within.mean()) if within.size else float("nan"),
            "between": float(between.mean()) if between.size else float("nan")}




def _agreement(weights: torch.Tensor, measured: torch.Tensor, k: int = 4) -> dict:
    rho = [spearmanr(weights[o], measured[o]).statistic for o in range(weights.shape[0])]

    def overlap(sign: float) -> float:
        return float(np.mean([len(set((sign * weights[o]).topk(k).indices.tolist())
                                  & set((sign * measured[o]).topk(k).indices.tolist())) / k
                              for o in range(weights.shape[0])]))

    return {"spearman_median": float(np.nanmedian(rho)), "top4_excite": overlap(1.0),
            "top4_inhibit": overlap(-1.0)}


def circuits_section(model, blocks: list[str], size: int, crops: int) -> dict:
    photos = P.photo_set(size, crops, seed=1, names=HELD_OUT).images
    out = {"held_out_photos": list(HELD_OUT), "views": len(photos), "size": size, "blocks": {}}
    for layer in blocks:
        source = C.previous_layer(model, layer)
        started = time.perf_counter()
        grad, attribution = C.expected_gradient(model, layer, source, photos.to(model.device))
        gated, plain = C.mbconv_weights(model, layer), C.mbconv_weights(model, layer, gated=False)
        out["blocks"][layer] = {
            "source": source, "inputs": gated.shape[1], "chance_top4": 4 / gated.shape[1],
            "gated_vs_gradient": _agreement(gated, grad),
            "plain_vs_gradient": _agreement(plain, grad),
            "gated_vs_gradient_x_activation": _agreement(gated, attribution),
            "gradient_vs_gradient_x_activation": _agreement(grad, attribution),
            "seconds": time.perf_counter() - started,
        }
        print(layer, json.dumps(out["blocks"][layer]), flush=True)
    return out


def _layer_only(model, layer: str, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        t = model.activations(images.to(model.device), [layer])[layer]
    f = t.flatten(2).mean(2).float().cpu()
    return F.normalize((f - f.mean(0)) / f.std(0, unbiased=False).clamp_min(1e-6), dim=1)


def _null_ari(labels: np.ndarray, other: np.ndarray, rounds: int = 1000) -> float:
    rng = np.random.default_rng(0)
    return float(np.percentile([adjusted_rand(rng.permutation(labels), other) for _ in range(rounds)], 95))


def groups_section(model, layers: list[str], args) -> dict:
    folders = []
    for seed in (args.seed, args.seed + 1000):
        folder = Path(args.work) / f"seed{seed}"
        started = time.perf_counter()
        atlas(model, layers, folder, size=args.size, steps=args.steps, seed=seed, batch=args.batch,
              device=args.device, circuits=False, page=False, progress=not args.quiet)
        print(f"rendered {layers} with seed {seed} in {time.perf_counter() - started:.0f} s", flush=True)
        folders.append(folder)
    manifests = [json.loads((f / "manifest.json").read_text()) for f in folders]
    photos = P.photo_set(model.input_size, 48, seed=0)
    stats = P.photo_statistics(model, layers, photos)
    out = {"size": args.size, "steps": args.steps, "layers": {}}
    for layer in layers:
        n = model.channels(layer)
        images = [torch.cat([read_image(f / m["units"][f"{layer}:{c}"]["image"]) for c in range(n)])
                  for f, m in zip(folders, manifests, strict=True)]
        descriptions = [N.describe_image(img) for img in images[0]]
        row = {"channels": n}
        for name, features in (("layer_and_before", G.visualization_features),
                               ("layer_only", _layer_only)):
            a, b = (G.group_channels(features(model, layer, imgs)) for imgs in images)
            k = int(a.labels.max()) + 1
            photo = cluster_similarity(stats[layer].correlation, k)
            named = [N.name_group([descriptions[i] for i in g]) for g in a.groups]
            row[name] = {
                "groups": k, "sizes": np.bincount(a.labels).tolist(), "silhouette": a.silhouette,
                **N.judge_groups(a.labels, descriptions),
                "seed_ari": adjusted_rand(a.labels, b.labels),
                "seed_ari_null95": _null_ari(a.labels, b.labels),
                "coactivation_ari": adjusted_rand(a.labels, photo),
                "coactivation_ari_null95": _null_ari(a.labels, photo),
                "coactivation": separation(stats[layer].correlation, a.labels),
                "named_groups": sum(bool(nm) for nm, _ in named),
                "named_share_carrying": float(np.mean([c for nm, c in named if nm])) if any(
                    nm for nm, _ in named) else None,
                "names": [nm for nm, _ in named],
            }
        out["layers"][layer] = row
        print(layer, json.dumps(row), flush=True)
    return out


def markdown(results: dict) -> str:
    lines = []
    if "circuits" in results:
        lines += ["| block | inputs | gated: Spearman | top-4 excite | top-4 inhibit | plain: Spearman | "
                  "top-4 excite | gated vs grad×act: Spearman |", "|---" * 8 + "|"]
        for layer, r in results["circuits"]["blocks"].items():
            g, p, x = r["gated_vs_gradient"], r["plain_vs_gradient"], r["gated_vs_gradient_x_activation"]
            lines.append(f"| {layer} | {r['inputs']} | {g['spearman_median']:.2f} | {g['top4_excite']:.2f} | "
                         f"{g['top4_inhibit']:.2f} | {p['spearman_median']:.2f} | {p['top4_excite']:.2f} | "
                         f"{x['spearman_median']:.2f} |")
        lines.append("")
    if "groups" in results:
        lines += ["| layer | features | groups | silhouette | colour within / random (p) | "
                  "angle within / random (p) | seed ARI (null 95%) | co-activation ARI (null 95%) | named |",
                  "|---" * 9 + "|"]
        for layer, row in results["groups"]["layers"].items():
            for name in ("layer_and_before", "layer_only"):
                r = row[name]
                lines.append(
                    f"| {layer} | {name} | {r['groups']} | {r['silhouette']:.2f} | "
                    f"{r['colour_within']:.1f} / {r['colour_random']:.1f} ({r['colour_p']:.3f}) | "
                    f"{r['angle_within']:.0f}° / {r['angle_random']:.0f}° ({r['angle_p']:.3f}) | "
                    f"{r['seed_ari']:.2f} ({r['seed_ari_null95']:.2f}) | "
                    f"{r['coactivation_ari']:.2f} ({r['coactivation_ari_null95']:.2f}) | "
                    f"{r['named_groups']}/{r['groups']} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", default="blocks.2,blocks.3", help="layers to group")
    p.add_argument("--blocks", default=",".join(f"blocks.{i}" for i in range(1, 16)),
                   help="MBConv blocks whose circuits to check")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=128)
    p.add_argument("--batch", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--photo-size", type=int, default=160, help="held-out photo size for circuits")
    p.add_argument("--crops", type=int, default=16, help="random crops of the held-out photos")
    p.add_argument("--work", default="atlas_figures", help="folder for the rendered atlases")
    p.add_argument("--only", default="circuits,groups")
    p.add_argument("--out", default=None, help="write the JSON here")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    model = efficientnet_lite0().to(resolve_device(args.device))
    only = set(args.only.split(","))
    results: dict = {"device": args.device, "torch": torch.__version__}
    if "circuits" in only:
        results["circuits"] = circuits_section(model, args.blocks.split(","), args.photo_size, args.crops)
    if "groups" in only:
        results["groups"] = groups_section(model, args.layers.split(","), args)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
