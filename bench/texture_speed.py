"""3D textures on the GPU: rasteriser speed, a full texture optimisation's time, and the 3D figures at
full size.

Sections (--only picks some; results go to OUT/texture_speed.json and OUT/texture_speed.md after each
section, so a run cut short keeps what it measured):
  raster   views per second for a ~100k-face torus at --size² (rasterise alone; rasterise + UV +
           texture lookup with 2x supersampling, as training renders), batches of 1, 4 and 16
  optimise a full texture feature visualization: --steps steps, --views views of --size², texture
           --texture-size², EfficientNet-Lite0 blocks.10:27, on the 100k-face torus and on the knot;
           writes the knot's outputs (OBJ/MTL/PNG, GLB, turntable GIF) under OUT/knot/
  seams    knot: colour jumps across UV seams vs interior edges on 16 held-out views, at spectrum
           decay 1 and 0.5, for the texture optimised through renderings in each texture space
           (surface field, UV image; with the unit's held-out activation) and for a 2D Fourier image
           of the texture's size optimised with the same objective and pasted on the atlas; and a
           texture baked from 3D position (the measure's floor)
  activation  the unit's mean activation on 16 held-out views (grey background, 224 px and --size)
           divided by its best over scikit-image's photos
  style    3D style transfer of an untextured sphere, moving-average Gram loss (--moving-averages,
           0 = plain) at --style-views views per step: plain style loss of 16 held-out views, per
           view and of their averaged Gram matrix

Runs from the repository root:  PYTHONPATH=. python bench/texture_speed.py --device cuda --out bench-3d
The seam figure alone:          ... --device cuda --only seams --out bench-3d-seams
Gram at 1 and 4 views per step: ... --device cuda --only style --style-views 1,4 --out bench-3d-style
CPU smoke run (tiny sizes):     PYTHONPATH=. python bench/texture_speed.py --device cpu --quick --out /tmp/t
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from diffparam.evaluate import unit_ratio
from diffparam.io import save_image
from diffparam.models.registry import efficientnet_lite0
from diffparam.objectives import style_targets
from diffparam.param import FourierImage
from diffparam.param.texture import SPACES
from diffparam.recipes.style import default_layers, load_image
from diffparam.recipes.texture import (
    STYLE_VIEWS,
    TEXTURE_SPACE,
    held_out_views,
    style_loss,
    texture_feature,
    texture_style,
    turntable_views,
)
from diffparam.render import render, resolve_device
from diffparam.three_d import seams, shapes, uvmap
from diffparam.three_d.cameras import ViewSampler, orbit
from diffparam.three_d.raster import rasterize, render_mesh, shade

UNIT = ("blocks.10", 27)
STYLES = ("hubble_deep_field", "astronaut")


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _timed(fn, dev: torch.device, repeats: int) -> float:
    fn()
    _sync(dev)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(dev)
    return (time.perf_counter() - start) / repeats


def raster_speed(dev: torch.device, size: int, resolution: int, repeats: int) -> list[dict]:
    mesh = shapes.torus(resolution).to(dev)
    texture = torch.rand(1, 3, 1024, 1024, device=dev)
    rows = []
    for batch in (1, 4, 16):
        cams = ViewSampler().sample(batch, torch.Generator().manual_seed(batch)).to(dev)
        clip = cams.project(mesh.vertices)
        alone = _timed(lambda: rasterize(clip, mesh.faces, size), dev, repeats)  # noqa: B023
        full = _timed(lambda: shade(mesh.vertices, mesh.faces, mesh.uv, cams, size, texture, 2),  # noqa: B023
                      dev, repeats)
        rows.append(dict(faces=mesh.num_faces, size=size, batch=batch,
                         raster_views_per_s=batch / alone, shaded_ss2_views_per_s=batch / full))
        print(rows[-1], flush=True)
    return rows


def _strip(mesh, path: Path, frames: int, size: int, device: torch.device) -> None:
    """A row of turntable frames over white, for the README."""
    shots = [f[:3] * f[3:] + (1 - f[3:]) for f in turntable_views(mesh, frames, size, device)]
    save_image(torch.cat(shots, 2), path)


def optimise(dev: torch.device, args, out: Path, model) -> list[dict]:
    rows = []
    for name, mesh in (("torus", shapes.torus(args.resolution)), ("knot", shapes.knot(32))):
        keep = out / name if name == "knot" else None
        _sync(dev)
        start = time.perf_counter()
        result = texture_feature(mesh, f"{UNIT[0]}:{UNIT[1]}", model,
                                 texture_size=args.texture_size, view_size=args.size, steps=args.steps,
                                 views=args.views, device=dev, progress=False,
                                 texture_space=args.texture_space, volume_size=args.volume_size)
        if keep is not None:
            result.save(keep, frames=args.frames, device=dev)
        total = time.perf_counter() - start
        rows.append(dict(mesh=name, faces=mesh.num_faces, steps=args.steps, views=args.views,
                         size=args.size, texture=args.texture_size, loop_seconds=result.seconds,
                         seconds_with_setup_and_export=total,
                         steps_per_s=args.steps / result.seconds))
        print(rows[-1], flush=True)
        if keep is not None:
            _strip(result.mesh, keep / "strip.png", 6, 192, dev)
            save_image(torch.nn.functional.interpolate(result.texture[None], size=256, mode="area"),
                       keep / "texture_256.png")
    return rows


def _baked(mesh, size: int, frequency: float = 8.0) -> torch.Tensor:
    """A texture holding a smooth function of 3D position: the measure's floor (continuous on the surface)."""
    pos, _, index = uvmap.position_map(mesh.vertices, mesh.faces, mesh.uv, size)
    tex = 0.5 + 0.5 * torch.sin(frequency * pos + torch.tensor([0.0, 1.0, 2.0]))
    return uvmap.pad(tex.permute(2, 0, 1)[None], index)


def _one_view(mesh, textures: list[torch.Tensor], path: Path, size: int, dev: torch.device) -> None:
    """One view of `mesh` with each texture, side by side over white (for the README)."""
    cam = orbit(torch.tensor([35.0]), torch.tensor([25.0]), torch.tensor([1.5]), torch.tensor([35.0]))
    shots = []
    for tex in textures:
        with torch.no_grad():
            rgba = render_mesh(mesh, cam, size, tex.to(dev), supersample=2)[0].cpu()
        shots.append(rgba[:3] * rgba[3:] + (1 - rgba[3:]))
    save_image(torch.cat(shots, 2), path)


def figure_seams(dev: torch.device, args, out: Path, model) -> list[dict]:
    """Seam ÷ interior colour jumps for every texture space and a pasted 2D image, at both decays,
    with the unit's activation on 16 held-out views (÷ best photo) for the textures made in 3D;
    OUT/seams.png shows one view with each decay-1 texture (surface, uv, pasted 2D)."""
    mesh = shapes.knot(32)
    cams = ViewSampler().sample(16, torch.Generator().manual_seed(4242))
    rows = []
    shown = []

    def row(label: str, decay: float | None, tex: torch.Tensor, textured=None) -> None:
        c = seams.seam_contrast(mesh, tex.to(dev), cams, args.size)
        act = (float(unit_ratio(model, *UNIT, held_out_views(textured, 16, args.size, device=dev)).mean())
               if textured is not None else None)
        rows.append(dict(texture=label, spectrum_decay=decay, seam=c.seam, interior=c.interior, ratio=c.ratio,
                         held_out_activation=act, seam_pairs=c.seam_pairs, interior_pairs=c.interior_pairs))
        print(rows[-1], flush=True)

    for decay in (1.0, 0.5):
        for space in SPACES:
            result = texture_feature(mesh, f"{UNIT[0]}:{UNIT[1]}", model, texture_size=args.texture_size,
                                     view_size=args.size, steps=args.steps, views=args.views, device=dev,
                                     progress=False, spectrum_decay=decay,
                                     texture_space=space, volume_size=args.volume_size)
            row(f"3D, {space}", decay, result.texture[None], result.mesh)
            shown.append(result.texture[None])
        flat = render(model, f"{UNIT[0]}:{UNIT[1]}", steps=args.steps, device=dev, progress=False,
                      param=FourierImage(args.texture_size, spectrum_decay=decay,
                                         generator=torch.Generator().manual_seed(0)))
        row("2D image pasted", decay, flat.images)
        shown.append(flat.images.cpu())
        if decay == 1.0:
            _one_view(mesh, shown, out / "seams.png", args.size, dev)
    row("baked from 3D position (reference)", None, _baked(mesh, args.texture_size))
    return rows


def figure_activation(dev: torch.device, args, model) -> list[dict]:
    rows = []
    for name in ("knot", "sphere"):
        result = texture_feature(f"shape:{name}", f"{UNIT[0]}:{UNIT[1]}", model,
                                 texture_size=args.texture_size, view_size=args.size, steps=args.steps,
                                 views=args.views, device=dev, progress=False,
                                 texture_space=args.texture_space, volume_size=args.volume_size)
        for size in (224, args.size):
            r = unit_ratio(model, *UNIT, held_out_views(result.mesh, 16, size, device=dev))
            rows.append(dict(mesh=name, view_size=size, mean=float(r.mean()), min=float(r.min()),
                             max=float(r.max())))
            print(rows[-1], flush=True)
    return rows


def _numbers(text: str, kind: type) -> list:
    return [kind(x) for x in text.split(",") if x.strip()]


def figure_style(dev: torch.device, args, model) -> list[dict]:
    from skimage import data

    layers, _ = default_layers(model)
    rows = []
    for name in STYLES:
        arr = np.asarray(getattr(data, name)())[..., :3].astype(np.float32) / 255
        image = torch.from_numpy(arr).permute(2, 0, 1).contiguous()
        targets = style_targets(model, load_image(image, args.size), layers)
        for per_step in _numbers(args.style_views, int):
            for average in _numbers(args.moving_averages, float):
                result = texture_style("shape:sphere", image, model, moving_average=average or None,
                                       texture_size=args.texture_size, view_size=args.size, steps=args.steps,
                                       views=per_step, device=dev, progress=False,
                                       texture_space=args.texture_space, volume_size=args.volume_size)
                views = held_out_views(result.mesh, 16, args.size, seed=777, cameras=STYLE_VIEWS, device=dev)
                per_view, pooled = style_loss(model, targets, views)
                rows.append(dict(style=name, views_per_step=per_step,
                                 gram=f"moving average {average:g}" if average else "plain",
                                 held_out_per_view=per_view, held_out_pooled=pooled,
                                 final_training_loss=result.history[-1]))
                print(rows[-1], flush=True)
    return rows


def _markdown(res: dict) -> str:
    lines = [f"# 3D textures: {res['device']} ({res['date']})", ""]
    for section, rows in res.items():
        if not isinstance(rows, list) or not rows:
            continue
        keys = list(rows[0])
        lines += [f"## {section}", "", "| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
        for row in rows:
            lines.append("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v)
                                           for v in row.values()) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--size", type=int, default=512, help="view size")
    p.add_argument("--texture-size", type=int, default=1024)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--texture-space", default=TEXTURE_SPACE, choices=SPACES,
                   help="texture space of optimise, activation and style (seams measures every one)")
    p.add_argument("--volume-size", type=int, default=None, help="surface field voxels per side "
                   "(default: texture size / 8)")
    p.add_argument("--style-views", default="4", help="style: views per step, comma-separated (e.g. 1,4)")
    p.add_argument("--moving-averages", default="0.95,0",
                   help="style: momenta of the Gram moving average, comma-separated (0: the plain loss)")
    p.add_argument("--frames", type=int, default=48, help="turntable frames of the knot")
    p.add_argument("--resolution", type=int, default=158, help="torus resolution (158: 99,856 faces)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--only", default="raster,optimise,seams,activation,style")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for a CPU check of the script")
    args = p.parse_args()
    if args.quick:
        args.size, args.texture_size, args.steps, args.views, args.style_views = 48, 64, 4, 2, "1,2"
        args.frames, args.resolution, args.repeats = 4, 24, 1
    dev = resolve_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"
    res: dict = dict(device=name, date=time.strftime("%Y-%m-%d"), torch=torch.__version__, args=vars(args))
    model = efficientnet_lite0()
    sections = {"raster": lambda: raster_speed(dev, args.size, args.resolution, args.repeats),
                "optimise": lambda: optimise(dev, args, out, model),
                "seams": lambda: figure_seams(dev, args, out, model),
                "activation": lambda: figure_activation(dev, args, model),
                "style": lambda: figure_style(dev, args, model)}
    for section in args.only.split(","):
        start = time.perf_counter()
        res[section] = sections[section]()
        res[f"{section}_seconds"] = time.perf_counter() - start
        (out / "texture_speed.json").write_text(json.dumps(res, indent=1))
        (out / "texture_speed.md").write_text(_markdown(res))
    print(_markdown(res))


if __name__ == "__main__":
    main()
