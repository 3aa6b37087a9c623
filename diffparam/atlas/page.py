"""The atlas's web page: `index.html` beside the images, self-contained, openable from a file.

`build_page` reads the manifest's units, computes what the page shows beyond the images (channel
groups, top natural-photo patches saved as PNGs under `patches/`, circuits) and writes one HTML
file with its CSS, JavaScript and data inline, so it works from file:// with no server and no
network.
"""

from __future__ import annotations

import html
import json
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from diffparam.atlas import circuits as C
from diffparam.atlas import grouping as G
from diffparam.atlas import naming as N
from diffparam.atlas import patches as P
from diffparam.errors import UserError
from diffparam.io import atomic_path, read_image, save_image
from diffparam.models.base import Model

PAGE = "index.html"
PATCHES = "patches"


def _check_manifest(manifest: dict[str, Any], model: Model, out: Path) -> None:
    if not isinstance(manifest, dict) or not isinstance(manifest.get("units"), dict) \
            or not isinstance(manifest.get("layers"), dict):
        raise UserError(f"{out}: not an atlas manifest (it needs 'layers' and 'units')")
    if manifest.get("model") not in (None, model.name):
        raise UserError(f"{out} holds an atlas of model {manifest['model']}, not {model.name}: "
                        "pass the model it was made with")
    for key, unit in manifest["units"].items():
        if not all(k in unit for k in ("layer", "channel", "image")):
            raise UserError(f"{out}: manifest unit {key} lacks layer, channel or image")
        if not (out / unit["image"]).is_file():
            raise UserError(f"{out / unit['image']} is listed in the manifest but missing: render the "
                            "atlas again (it resumes) to make it")


def _layer_order(manifest: dict[str, Any], units: dict[str, dict[str, Any]]) -> list[str]:
    infos = manifest["layers"]
    names = set(infos) | {u["layer"] for u in units.values()}
    return sorted(names, key=lambda n: (infos.get(n, {}).get("index", 1 << 30), n))


def _shown(units: dict[str, dict[str, Any]], layer: str) -> list[int]:
    """The channels a layer's section shows: its units rendered for themselves, in channel order."""
    return sorted(u["channel"] for u in units.values()
                  if u["layer"] == layer and u.get("role", "unit") != "circuit")


def _group_layer(model: Model, out: Path, units: dict[str, dict[str, Any]], layer: str,
                 channels: list[int]) -> dict[str, Any]:
    """Groups of one layer's channels, their names and the numbers that judge them."""
    images = torch.cat([read_image(out / units[f"{layer}:{c}"]["image"]) for c in channels])
    descriptions = [N.describe_image(img) for img in images]
    for c, d in zip(channels, descriptions, strict=True):
        units[f"{layer}:{c}"]["words"] = d["words"]
    grouping = G.group_channels(G.visualization_features(model, layer, images))
    quality = {"silhouette": grouping.silhouette, **N.judge_groups(grouping.labels, descriptions)}
    groups = []
    for g, members in enumerate(grouping.groups):
        name, carry = N.name_group([descriptions[i] for i in members])
        groups.append({"index": g + 1, "name": name, "carry": carry,
                       "channels": [channels[i] for i in members]})
        for i in members:
            units[f"{layer}:{channels[i]}"]["group"] = g + 1
    return {"groups": groups, "quality": quality}


def _patches(out: Path, layer: str, channel: int, stats: P.LayerStatistics, photos: P.PhotoSet,
             field: int, k: int) -> list[dict[str, Any]]:
    found = P.top_patches(stats, photos, channel, k=k, field=field)
    rows = []
    for j, patch in enumerate(found):
        rel = f"{PATCHES}/{layer}/{channel}-{j}.png"
        save_image(patch["image"], out / rel)
        rows.append({"image": rel, "photo": patch["photo"], "activation": patch["activation"],
                     "box": list(patch["box"])})
    return rows


def page_data(out: str | os.PathLike, model: Model, manifest: dict[str, Any], *, progress: bool = True,
              photo_size: int | None = None, crops: int = 48, patches: int = 4,
              circuit_size: int = 4, seed: int = 0) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data; writes the patch thumbnails under `out/patches`.

    Photos are scikit-image's (`patches.PATCH_PHOTOS`) plus `crops` random crops, at
    `photo_size` (default: the model's input size).
    """
    folder = Path(out)
    _check_manifest(manifest, model, folder)
    units = {k: dict(v) for k, v in manifest["units"].items()}
    layers = _layer_order(manifest, units)
    for name in layers:
        model.check_layer(name)
    size = photo_size or model.input_size
    photos = P.photo_set(size, crops, seed)
    bar = tqdm(total=len(photos.images) + len(units), desc="atlas page", unit="item", leave=False,
               disable=not progress or not sys.stderr.isatty())
    with_units = [n for n in layers if any(u["layer"] == n for u in units.values())]
    stats = P.photo_statistics(model, with_units, photos, progress=bar.update)
    sections = []
    for name in with_units:
        field = P.effective_field(model, name, photos.images)
        for key, unit in units.items():
            if unit["layer"] != name:
                continue
            c = int(unit["channel"])
            unit["patches"] = _patches(folder, name, c, stats[name], photos, field, patches)
            photo = unit.get("photo_activation")
            act = unit.get("activation")
            unit["ratio"] = act / photo if act is not None and photo and photo > 0 else None
            links = C.circuit(model, name, c, circuit_size)
            for kind in ("excite", "inhibit"):
                for link in links[kind]:
                    link["key"] = f"{link['layer']}:{link['channel']}"
                    target = units.get(link["key"])
                    link["image"] = target["image"] if target else None
            unit["circuit"] = links
            unit["key"] = key
            bar.update()
        shown = _shown(units, name)
        if not shown:
            continue
        found = C.connections(model, name)
        section = {"name": name, "channels": model.channels(name), "shown": shown,
                   "source": found.source if found else None,
                   "method": C.METHODS[found.method] if found else None,
                   "field": field, "photo_size": size}
        section.update(_group_layer(model, folder, units, name, shown))
        sections.append(section)
    bar.close()
    return {"model": manifest.get("model", model.name), "options": manifest.get("options", {}),
            "layers": sections, "units": units,
            "photos": {"names": photos.names, "views": len(photos.images), "size": size}}


def build_page(out_dir: Path, model: Model, manifest: dict[str, Any], progress: bool = True,
               **options: Any) -> Path:
    """Write `out_dir/index.html` (and the patch PNGs it shows) for an atlas manifest; return its path.

    `options` go to `page_data` (photo_size, crops, patches, circuit_size, seed).
    """
    folder = Path(out_dir)
    data = page_data(folder, model, manifest, progress=progress, **options)
    page = folder / PAGE
    with atomic_path(page) as tmp:
        tmp.write_text(render_html(data), encoding="utf-8")
    return page


def _plain(value: Any) -> Any:
    """JSON-ready: NumPy scalars become numbers, NaN and infinities become null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _json_for_script(data: Any) -> str:
    """JSON that is safe inside a <script> element (no '</' can close it)."""
    text = json.dumps(_plain(data), ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("</", "<\\/")


def render_html(data: dict[str, Any]) -> str:
    """The page for `page_data`'s result: one HTML string, CSS, script and data inline (the layout,
    style and script are the package file `page.html`, with %TITLE% and %DATA% filled in)."""
    title = f"diffparam atlas: {data['model']}"
    template = resources.files("diffparam.atlas").joinpath("page.html").read_text("utf-8")
    return template.replace("%TITLE%", html.escape(title)).replace("%DATA%", _json_for_script(data))
