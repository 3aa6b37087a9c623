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
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from diffparam.atlas import analysis as A
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
    descriptions = [A.describe_image(img) for img in images]
    for c, d in zip(channels, descriptions, strict=True):
        units[f"{layer}:{c}"]["words"] = d["words"]
    grouping = A.group_channels(A.visualization_features(model, layer, images))
    quality = {"silhouette": grouping.silhouette, **A.judge_groups(grouping.labels, descriptions)}
    groups = []
    for g, members in enumerate(grouping.groups):
        name, carry = A.name_group([descriptions[i] for i in members])
        groups.append({"index": g + 1, "name": name, "carry": carry,
                       "channels": [channels[i] for i in members]})
        for i in members:
            units[f"{layer}:{channels[i]}"]["group"] = g + 1
    return {"groups": groups, "quality": quality}


def _patches(out: Path, layer: str, channel: int, stats: A.LayerStatistics, photos: A.PhotoSet,
             field: int, k: int) -> list[dict[str, Any]]:
    found = A.top_patches(stats, photos, channel, k=k, field=field)
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

    Photos are scikit-image's (`analysis.PATCH_PHOTOS`) plus `crops` random crops, at
    `photo_size` (default: the model's input size).
    """
    folder = Path(out)
    _check_manifest(manifest, model, folder)
    units = {k: dict(v) for k, v in manifest["units"].items()}
    layers = _layer_order(manifest, units)
    for name in layers:
        model.check_layer(name)
    size = photo_size or model.input_size
    photos = A.photo_set(size, crops, seed)
    bar = tqdm(total=len(photos.images) + len(units), desc="atlas page", unit="item", leave=False,
               disable=not progress or not sys.stderr.isatty())
    with_units = [n for n in layers if any(u["layer"] == n for u in units.values())]
    stats = A.photo_statistics(model, with_units, photos, progress=bar.update)
    sections = []
    for name in with_units:
        field = A.effective_field(model, name, photos.images)
        for key, unit in units.items():
            if unit["layer"] != name:
                continue
            c = int(unit["channel"])
            unit["patches"] = _patches(folder, name, c, stats[name], photos, field, patches)
            photo = unit.get("photo_activation")
            act = unit.get("activation")
            unit["ratio"] = act / photo if act is not None and photo and photo > 0 else None
            links = A.circuit(model, name, c, circuit_size)
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
        found = A.connections(model, name)
        section = {"name": name, "channels": model.channels(name), "shown": shown,
                   "source": found.source if found else None,
                   "method": A.METHODS[found.method] if found else None,
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
    """The page for `page_data`'s result: one HTML string, CSS, script and data inline."""
    title = f"diffparam atlas: {data['model']}"
    return (_TEMPLATE.replace("%TITLE%", html.escape(title))
            .replace("%DATA%", _json_for_script(data)))


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>%TITLE%</title>
<style>
:root { --fg:#1d1d1f; --muted:#6b6b70; --line:#e2e2e6; --bg:#fafafa; --accent:#2458c6;
  --neg:#b3261e; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg);
  background:var(--bg); }
header { position:sticky; top:0; z-index:5; background:#fff; border-bottom:1px solid var(--line);
  padding:10px 20px; display:flex; flex-wrap:wrap; gap:8px 18px; align-items:center; }
header h1 { font-size:17px; margin:0; }
header .meta { color:var(--muted); font-size:12.5px; }
nav a { margin-right:10px; color:var(--accent); text-decoration:none; font-size:13px; }
.toggle { margin-left:auto; display:flex; border:1px solid var(--line); border-radius:6px;
  overflow:hidden; }
.toggle button { border:0; background:#fff; padding:5px 11px; cursor:pointer; font:inherit; }
.toggle button[aria-pressed=true] { background:var(--accent); color:#fff; }
main { padding:4px 20px 40px; }
section.layer { margin-top:22px; }
section.layer > h2 { font-size:18px; margin:8px 0 2px; }
.layer-note { color:var(--muted); font-size:12.5px; margin:0 0 8px; max-width:70em; }
section.group { margin:10px 0 14px; }
section.group > h3 { font-size:13.5px; margin:0 0 6px; font-weight:600; }
section.group > h3 .size { color:var(--muted); font-weight:400; }
.grid { display:flex; flex-wrap:wrap; gap:6px; }
.tile { width:92px; padding:0; border:1px solid var(--line); border-radius:6px; background:#fff;
  cursor:pointer; font:inherit; text-align:left; overflow:hidden; }
.tile:hover, .tile:focus { border-color:var(--accent); outline:none;
  box-shadow:0 0 0 2px rgba(36,88,198,.2); }
.tile img { width:90px; height:90px; display:block; object-fit:cover; }
.tile span { display:block; font-size:11.5px; padding:2px 5px; color:var(--muted);
  white-space:nowrap; }
.tile b { color:var(--fg); }
#detail { position:fixed; inset:0; background:rgba(20,20,24,.55); z-index:10; display:flex;
  align-items:flex-start; justify-content:center; overflow:auto; padding:28px 12px; }
#detail[hidden] { display:none; }
.panel { background:#fff; border-radius:10px; max-width:980px; width:100%; padding:18px 22px 22px;
  box-shadow:0 10px 40px rgba(0,0,0,.3); }
.panel-head { display:flex; align-items:center; gap:10px; }
.panel-head h2 { margin:0; font-size:19px; flex:1; }
.panel-head button { font:inherit; border:1px solid var(--line); background:#fff; border-radius:6px;
  padding:4px 10px; cursor:pointer; }
.panel-body { display:flex; flex-wrap:wrap; gap:22px; margin-top:12px; }
.big { width:min(384px, 100%); image-rendering:auto; border-radius:6px;
  border:1px solid var(--line); }
.facts { font-size:13px; min-width:220px; flex:1; }
.facts dt { color:var(--muted); }
.facts dd { margin:0 0 6px; }
h4 { margin:16px 0 6px; font-size:14px; }
.strip { display:flex; flex-wrap:wrap; gap:10px; }
.strip figure { margin:0; width:112px; font-size:11.5px; color:var(--muted); }
.strip figure img { width:112px; height:112px; display:block; border-radius:4px;
  border:1px solid var(--line); object-fit:cover; }
.strip a { color:inherit; text-decoration:none; }
.strip a:hover img { border-color:var(--accent); }
.w-pos { color:var(--accent); } .w-neg { color:var(--neg); }
.textlink { white-space:pre-line; width:112px; height:112px; display:flex; align-items:center;
  justify-content:center; border:1px dashed var(--line); border-radius:4px; font-size:12px;
  text-align:center; color:var(--fg); }
.none { color:var(--muted); font-size:12.5px; }
</style></head>
<body>
<header>
  <h1 id="title"></h1><span class="meta" id="meta"></span>
  <nav id="nav"></nav>
  <div class="toggle" role="group" aria-label="order">
    <button type="button" id="by-group" aria-pressed="true">groups</button>
    <button type="button" id="by-channel" aria-pressed="false">channel order</button>
  </div>
</header>
<main id="layers"></main>
<div id="detail" hidden><div class="panel" role="dialog" aria-modal="true" aria-labelledby="detail-title">
  <div class="panel-head"><h2 id="detail-title"></h2>
    <button type="button" id="prev-unit" title="previous channel (left arrow)">&larr;</button>
    <button type="button" id="next-unit" title="next channel (right arrow)">&rarr;</button>
    <button type="button" id="close" title="close (Esc)">close</button></div>
  <div id="detail-body"></div>
</div></div>
<script id="atlas-data" type="application/json">%DATA%</script>
<script>
"use strict";
const DATA = JSON.parse(document.getElementById("atlas-data").textContent);
let mode = "group";
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v; else if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
  return e;
};
const fmt = (x, d = 2) => (x === null || x === undefined || !isFinite(x)) ? "n/a" : Number(x).toFixed(d);
const plural = (n, w) => `${n} ${w}${n === 1 ? "" : "s"}`;

function tile(layer, c) {
  const u = DATA.units[`${layer}:${c}`];
  const b = el("button", {type: "button", class: "tile", "data-unit": `${layer}:${c}`,
                          title: `${layer}:${c}` + (u.words ? " (" + u.words.join(", ") + ")" : "")});
  b.append(el("img", {src: u.image, alt: `${layer} channel ${c}`, width: "90", height: "90"}),
           el("span", {}, el("b", {text: String(c)}),
              u.ratio !== null && u.ratio !== undefined ? ` · ${fmt(u.ratio, 1)}×` : ""));
  b.addEventListener("click", () => { location.hash = encodeURIComponent(`${layer}:${c}`); });
  return b;
}

function groupTitle(g) {
  const t = el("h3", {}, `Group ${g.index}`);
  if (g.name) t.append(` · ${g.name}`);
  t.append(el("span", {class: "size", text: ` · ${plural(g.channels.length, "channel")}`}));
  return t;
}

function drawLayers() {
  const root = document.getElementById("layers");
  root.replaceChildren();
  for (const L of DATA.layers) {
    const s = el("section", {class: "layer", id: `layer-${L.name}`, "data-layer": L.name});
    s.append(el("h2", {text: `${L.name}`}));
    const q = L.quality;
    let note = `${plural(L.shown.length, "channel")} of ${L.channels}; ${plural(L.groups.length, "group")}` +
      ` by the model's own response to each visualization (silhouette ${fmt(q.silhouette)}).`;
    if (L.groups.length > 1) {
      note += ` Within a group, mean colours are ${fmt(q.colour_within, 1)} apart (CIELAB a*b*;` +
        ` ${fmt(q.colour_random, 1)} in random groups)`;
      if (q.angle_within !== null) {
        note += ` and line orientations ${fmt(q.angle_within, 0)}° (random: ${fmt(q.angle_random, 0)}°)`;
      }
      note += ".";
    }
    if (L.source) note += ` Circuits from ${L.source}: ${L.method}.`;
    s.append(el("p", {class: "layer-note", text: note}));
    if (mode === "group") {
      for (const g of L.groups) {
        const gs = el("section", {class: "group", "data-group": String(g.index)});
        gs.append(groupTitle(g), el("div", {class: "grid"}, ...g.channels.map(c => tile(L.name, c))));
        s.append(gs);
      }
    } else {
      s.append(el("div", {class: "grid plain"}, ...L.shown.map(c => tile(L.name, c))));
    }
    root.append(s);
  }
}

function setMode(m) {
  mode = m;
  document.getElementById("by-group").setAttribute("aria-pressed", String(m === "group"));
  document.getElementById("by-channel").setAttribute("aria-pressed", String(m === "channel"));
  drawLayers();
}

function circuitStrip(links, cls) {
  if (!links.length) return el("p", {class: "none", text: "none"});
  const strip = el("div", {class: "strip"});
  for (const k of links) {
    const label = el("figcaption", {}, `${k.layer}:${k.channel} · `,
                     el("span", {class: cls, text: fmt(k.weight, 3)}));
    let body;
    if (k.image) body = el("img", {src: k.image, alt: `${k.layer} channel ${k.channel}`});
    else body = el("div", {class: "textlink", text: `${k.layer}:${k.channel}\\nweight ${fmt(k.weight, 3)}`});
    const fig = el("figure", {"data-link": k.key}, body, label);
    strip.append(DATA.units[k.key] ? el("a", {href: "#" + encodeURIComponent(k.key)}, fig) : fig);
  }
  return strip;
}

function openUnit(key) {
  const u = DATA.units[key];
  if (!u) { closeDetail(); return; }
  const box = document.getElementById("detail");
  document.getElementById("detail-title").textContent = key;
  const L = DATA.layers.find(l => l.name === u.layer);
  const facts = el("dl", {class: "facts"});
  const add = (k, v) => facts.append(el("dt", {text: k}), el("dd", {text: v}));
  add("activation on its image (mean over positions)", fmt(u.activation));
  add("best over the sample photos (same measure)", fmt(u.photo_activation));
  if (u.ratio !== null && u.ratio !== undefined) add("ratio", `${fmt(u.ratio, 1)}×`);
  if (u.group && L) {
    const g = L.groups[u.group - 1];
    add("group", `Group ${g.index}${g.name ? " · " + g.name : ""} (${plural(g.channels.length, "channel")})`);
  }
  if (u.words) add("colour / lines", u.words.join(", "));
  if (u.role === "circuit") add("role", "rendered as a circuit input");
  add("seed", String(u.seed ?? "n/a"));
  const body = el("div", {class: "panel-body"}, el("img", {class: "big", src: u.image, alt: key}), facts);
  const patches = el("div", {class: "strip patches"});
  for (const p of (u.patches || [])) {
    patches.append(el("figure", {}, el("img", {src: p.image, alt: `${p.photo} patch`}),
                      el("figcaption", {text: `${p.photo} · ${fmt(p.activation)}`})));
  }
  const c = u.circuit || {excite: [], inhibit: []};
  const parts = [body, el("h4", {text: "Natural-photo patches where it fires most (peak activation)"}),
                 (u.patches && u.patches.length) ? patches : el("p", {class: "none", text: "none"})];
  if (c.source) {
    parts.push(el("h4", {text: `Circuit: strongest excitatory inputs from ${c.source}`}),
               circuitStrip(c.excite, "w-pos"),
               el("h4", {text: `Strongest inhibitory inputs from ${c.source}`}),
               circuitStrip(c.inhibit, "w-neg"));
  } else {
    parts.push(el("h4", {text: "Circuit"}),
               el("p", {class: "none", text: "first layer: its input is the image"}));
  }
  document.getElementById("detail-body").replaceChildren(...parts);
  box.hidden = false;
  document.getElementById("close").focus();
}

function closeDetail() {
  document.getElementById("detail").hidden = true;
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
}

function step(delta) {
  const key = decodeURIComponent(location.hash.slice(1));
  const u = DATA.units[key];
  if (!u) return;
  const L = DATA.layers.find(l => l.name === u.layer);
  if (!L) return;
  const order = mode === "group" ? L.groups.flatMap(g => g.channels) : L.shown;
  const i = order.indexOf(u.channel);
  const next = order[(i + delta + order.length) % order.length];
  location.hash = encodeURIComponent(`${u.layer}:${next}`);
}

function route() {
  const key = decodeURIComponent(location.hash.slice(1));
  if (key && DATA.units[key]) openUnit(key); else document.getElementById("detail").hidden = true;
}

document.getElementById("title").textContent = `Atlas of ${DATA.model}`;
const o = DATA.options || {};
document.getElementById("meta").textContent =
  [`${Object.keys(DATA.units).length} units`, o.size && `${o.size} px`, o.steps && `${o.steps} steps`,
   o.param, `patches from ${DATA.photos.views} views of ${DATA.photos.names.length} scikit-image photos`]
  .filter(Boolean).join(" · ");
document.getElementById("nav").append(
  ...DATA.layers.map(L => el("a", {href: `#layer-${L.name}`, text: L.name})));
for (const a of document.querySelectorAll("#nav a")) a.addEventListener("click", ev => {
  ev.preventDefault(); document.getElementById(a.getAttribute("href").slice(1)).scrollIntoView();
});
document.getElementById("by-group").addEventListener("click", () => setMode("group"));
document.getElementById("by-channel").addEventListener("click", () => setMode("channel"));
document.getElementById("close").addEventListener("click", closeDetail);
document.getElementById("prev-unit").addEventListener("click", () => step(-1));
document.getElementById("next-unit").addEventListener("click", () => step(1));
document.getElementById("detail").addEventListener("click", ev => {
  if (ev.target.id === "detail") closeDetail();
});
document.addEventListener("keydown", ev => {
  if (document.getElementById("detail").hidden) return;
  if (ev.key === "Escape") closeDetail();
  else if (ev.key === "ArrowLeft") step(-1);
  else if (ev.key === "ArrowRight") step(1);
});
window.addEventListener("hashchange", route);
drawLayers();
route();
</script>
</body></html>
"""
