"""Rendering an atlas: every unit of the job list, batched, resumable, sharded over ranks.

Files in the atlas folder:
  manifest.json        what is done: options, layers, one entry per finished unit, run timings
  LAYER/C.png          one image per unit
  .parts/batch-N.json  a finished batch's entries, written by the rank that rendered it
  index.html           the page (diffparam.atlas.page)
Every file is written to a temporary name and renamed, and a batch's part is written after its
PNGs, so a job killed at any moment leaves only whole files; at most the batch in flight is lost.
The next run with the same options removes stray temporaries, folds the parts into the manifest
and renders only the units that are not in it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from diffparam.atlas.distributed import Ranks, cpu_cores, device_for, join, launched_ranks, leave, spawn
from diffparam.atlas.jobs import Batch, Unit, batches, job_list, resolve_layers
from diffparam.checks import choice, image_size, positive_float, positive_int
from diffparam.constant import Constant
from diffparam.errors import UserError
from diffparam.evaluate import natural_photos, objective_values
from diffparam.evaluate.trust import json_number, plausibility_distance, unit_sanity
from diffparam.io import atomic_path, check_writable, photo_files, save_image
from diffparam.models.base import Model
from diffparam.models.registry import load_model
from diffparam.objectives import Activations, Objective
from diffparam.param import make_param
from diffparam.param.kinds import kind
from diffparam.pipeline import PRECISIONS
from diffparam.render import Callback, render, resolve_device
from diffparam.result import Result

VERSION = 1
MANIFEST = "manifest.json"
PARTS = ".parts"
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}(?P<suffix>\.[^./]*)?$")
"""The name `io.temp_beside` gives a temporary file: `.NAME.XXXXXXXX.SUFFIX` (NAME ends in SUFFIX)."""


@dataclass(frozen=True)
class Options:
    """What an image depends on besides its unit; a resumed atlas must use the same."""

    size: int = 128
    steps: int = 512
    lr: float | None = None
    param: str = "fourier"
    seed: int = 0
    batch: int = 32
    precision: str = "fp32"
    compile: bool = False
    """Speed only (see `render`): an atlas may be resumed with it changed."""
    spectrum_from: str | None = None
    """With param "maco": the folder whose photos give the spectrum (None: scikit-image's)."""
    trust: bool = True
    """Measure each unit's sanity score and plausibility distance (`diffparam.evaluate.trust`)."""
    photos: str | None = None
    """The folder of natural photos those numbers are measured against (None: scikit-image's)."""

    def resolved(self) -> Options:
        """Checked, with `lr` replaced by the parameterization's default when None and the folders
        made absolute."""
        image_size(self.size)
        positive_int("steps", self.steps)
        positive_int("batch", self.batch)
        choice("precision", self.precision, PRECISIONS)
        lr = kind(self.param).default_lr if self.lr is None else self.lr
        if self.spectrum_from is not None and self.param != "maco":
            raise UserError(f"`spectrum_from` applies to param maco, not {self.param}")
        folders = {name: str(Path(folder).resolve()) for name in ("spectrum_from", "photos")
                   if (folder := getattr(self, name)) is not None and photo_files(folder)}
        return replace(self, lr=positive_float("lr", lr), **folders)

    def param_settings(self) -> dict[str, Any]:
        """Settings of `make_param` beyond the kind."""
        return {} if self.spectrum_from is None else {"spectrum_from": self.spectrum_from}


@dataclass
class Plan:
    """What this run renders: the batches with units still to do, and how many units are done."""

    out: Path
    options: Options
    pending: list[Batch]
    total: int
    done: int
    layers: list[str]


# -- the objective -----------------------------------------------------------------------------
def units_objective(units: Sequence[Unit]) -> Objective:
    """Image i maximises the mean activation of units[i]: units of several layers in one batch.

    One gather per layer per step (like `objectives.channels`), safe inside a CUDA graph.
    """
    rows: dict[str, list[int]] = {}
    for i, unit in enumerate(units):
        rows.setdefault(unit.layer, []).append(i)
    groups = [(name, Constant(torch.tensor(r)), Constant(torch.tensor([units[i].channel for i in r])))
              for name, r in rows.items()]
    inverse = Constant(torch.tensor([i for r in rows.values() for i in r]).argsort())
    n = len(units)

    def fn(acts: Activations) -> Tensor:
        values = []
        for name, r, cs in groups:
            t = acts[name]
            if t.shape[0] != n:
                raise UserError(f"{n} units need a batch of {n} images, got {t.shape[0]}")
            v = t[r.on(t.device), cs.on(t.device)]
            values.append(v.flatten(1).mean(1) if v.dim() > 1 else v)
        out = torch.cat(values)
        return out[inverse.on(out.device)]

    first, last = units[0], units[-1]
    return Objective(fn, rows, f"atlas {first.key} … {last.key} ({n} units)")


def photo_best(model: Model, layers: Sequence[str]) -> dict[str, Tensor]:
    """Each channel's best mean activation over scikit-image's sample photos, per layer (on the CPU)."""
    photos = natural_photos(model.input_size).to(model.device)
    with torch.no_grad():
        acts = model.activations(photos, layers)
    return {name: (t.flatten(2).mean(2) if t.dim() > 2 else t).amax(0).float().cpu()
            for name, t in acts.items()}


# -- the manifest --------------------------------------------------------------------------------
def read_manifest(out: str | os.PathLike) -> dict[str, Any] | None:
    """The atlas manifest in folder `out`, or None when there is none yet."""
    path = Path(out) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: not an atlas manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("version") != VERSION:
        raise UserError(f"{path} is not a version-{VERSION} atlas manifest: choose another `out`")
    for key in ("layers", "units", "options"):
        if not isinstance(manifest.get(key), dict):
            raise UserError(f"{path} is damaged: its {key!r} must be an object; delete it to start the "
                            "atlas again")
    broken = [k for k, e in manifest["units"].items()
              if not isinstance(e, dict) or not {"layer", "channel", "image"} <= set(e)]
    if broken:
        raise UserError(f"{path} is damaged: unit {broken[0]} lacks its layer, channel or image; delete "
                        "the manifest to start the atlas again")
    return manifest


def write_manifest(out: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """Write `out/manifest.json` atomically."""
    path = Path(out) / MANIFEST
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return path


def _commit(out: Path, manifest: dict[str, Any], parts: list[Path]) -> None:
    """Stamp and write the manifest that now holds `parts`, then delete those parts (in that order,
    so an interruption leaves each finished batch recorded somewhere)."""
    manifest["updated"] = _now()
    write_manifest(out, manifest)
    for part in parts:
        part.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # the folder of parts, once empty (a batch in flight recreates it)
        (out / PARTS).rmdir()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _remove_temporaries(out: Path) -> int:
    """Delete the temporary files a killed run left behind (see `io.temp_beside`); return the count."""
    count = 0
    for folder, _, files in os.walk(out):
        for name in files:
            m = _TEMPORARY.match(name)
            if m and m["name"].endswith(m["suffix"] or ""):
                (Path(folder) / name).unlink(missing_ok=True)
                count += 1
    return count


def _absorb_parts(out: Path, manifest: dict[str, Any]) -> list[Path]:
    """Fold every finished batch's part into `manifest`; returns the part files folded."""
    parts = sorted((out / PARTS).glob("batch-*.json"))
    for part in parts:
        try:
            entries = json.loads(part.read_text(encoding="utf-8"))["units"]
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"cannot read {part}: {exc}; delete it to render that batch again") from exc
        for key, entry in entries.items():
            old = manifest["units"].get(key)
            if old is not None and old.get("role") == "unit":
                entry["role"] = "unit"
            manifest["units"][key] = entry
    return parts


def absorb(out: str | os.PathLike) -> dict[str, Any] | None:
    """Fold the finished batches' parts into the manifest and write it (then drop the parts)."""
    folder = Path(out)
    manifest = read_manifest(folder)
    if manifest is None:
        return None
    parts = _absorb_parts(folder, manifest)
    if parts:
        _commit(folder, manifest, parts)
    return manifest


SPEED_ONLY = {"compile"}
"""Options that change how fast an atlas renders, not what it shows."""


def _check_same(manifest: dict[str, Any], model: Model, options: Options, out: Path) -> None:
    """Resuming needs the options the atlas was started with; say which one differs."""
    if manifest.get("model") != model.name:
        raise UserError(f"{out} holds an atlas of model {manifest.get('model')}, not {model.name}: "
                        "use the same `model` or another `out`")
    before = {**asdict(Options()), **manifest.get("options", {})}  # an option added later: its default
    for name, value in asdict(options).items():
        if name not in SPEED_ONLY and before[name] != value:
            raise UserError(f"{out} holds an atlas made with {name} {_said(before[name])}, not "
                            f"{_said(value)}: resume with the same options or choose another `out`")


def _said(value: Any) -> str:
    """An option's value as a user wrote it: on/off for a switch, the value itself otherwise."""
    return ("on" if value else "off") if isinstance(value, bool) else repr(value)


def prepare(out: str | os.PathLike, model: Model, layers: str | Sequence[str], options: Options,
            circuits: bool = True) -> Plan:
    """Check everything, tidy the folder after an interruption, and plan the units still to render.

    Writes the manifest (options, layers, units done so far) before any rendering starts.
    """
    options = options.resolved()
    names = resolve_layers(model, layers)
    units = job_list(model, names, circuits)
    folder = Path(out)
    check_writable(folder / MANIFEST)
    _remove_temporaries(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        manifest = {"version": VERSION, "model": model.name, "options": asdict(options),
                    "created": _now(), "layers": {}, "units": {}, "timings": {"runs": []}}
    _check_same(manifest, model, options, folder)
    parts = _absorb_parts(folder, manifest)
    manifest["units"] = {k: e for k, e in manifest["units"].items() if (folder / e["image"]).is_file()}
    order = model.layer_order()
    wanted = set(names)
    for unit in units:
        old = manifest["layers"].get(unit.layer, {}).get("role")
        role = "unit" if unit.layer in wanted or old == "unit" else "circuit"
        manifest["layers"][unit.layer] = {"channels": model.channels(unit.layer),
                                          "index": order[unit.layer], "role": role}
        entry = manifest["units"].get(unit.key)
        if entry is not None and unit.role == "unit":
            entry["role"] = "unit"
    manifest["layers"] = dict(sorted(manifest["layers"].items(), key=lambda kv: kv[1]["index"]))
    _commit(folder, manifest, parts)
    done = set(manifest["units"])
    pending = []
    for b in batches(units, options.batch):
        todo = tuple(u for u in b.units if u.key not in done)
        if todo:
            pending.append(Batch(b.index, todo))
    left = sum(len(b.units) for b in pending)
    return Plan(folder, options, pending, len(units), len(units) - left, names)


# -- rendering -------------------------------------------------------------------------------------
def render_batch(model: Model, batch: Batch, options: Options, device: str | torch.device,
                 callback: Callback | None = None) -> tuple[Tensor, Tensor, float]:
    """Render one batch: (images (B,C,H,W) on the CPU, each unit's activation on its image, seconds)."""
    seed = batch.seed(options.seed)
    param = make_param(options.param, options.size, batch=len(batch.units),
                       generator=torch.Generator().manual_seed(seed), **options.param_settings())
    objective = units_objective(batch.units)
    result = render(model, objective, param=param, steps=options.steps, lr=options.lr, seed=seed,
                    device=device, progress=False, precision=options.precision, compile=options.compile,
                    callback=callback)
    values = objective_values(model, objective, result.images)
    return result.images, values, result.seconds


def batch_trust(model: Model, batch: Batch, images: Tensor, photos: str | None) -> dict[str, dict[str, Any]]:
    """Per unit of a rendered batch: its sanity score, what the photos that drive it score, and the
    plausibility distance of its image (`diffparam.evaluate.trust`; None where there is no score)."""
    distances = plausibility_distance(model, images, photos).tolist()
    found: dict[str, dict[str, Any]] = {}
    for layer in dict.fromkeys(u.layer for u in batch.units):
        which = [i for i, u in enumerate(batch.units) if u.layer == layer]
        checked = unit_sanity(model, layer, [batch.units[i].channel for i in which], images[which], photos)
        for i, score in zip(which, checked, strict=True):
            found[batch.units[i].key] = {"sanity": json_number(score.scores[0]),
                                         "sanity_of_photos": json_number(score.held_out),
                                         "plausibility_distance": json_number(distances[i])}
    return found


def _render_share(plan: Plan, model: Model, share: list[Batch], device: str, rank: int,
                  progress: bool, callback: Callback | None) -> dict[str, Any]:
    """Render this rank's batches, writing each batch's PNGs and then its part; returns timings."""
    start = time.perf_counter()
    busy = 0.0
    units = 0
    model.to(resolve_device(device))
    needed = sorted({u.layer for b in share for u in b.units})
    photos = photo_best(model, needed) if needed else {}
    bar = tqdm(total=sum(len(b.units) for b in share), unit="unit", desc=f"atlas rank {rank}",
               disable=not progress or not os.isatty(2), leave=False)
    parts = plan.out / PARTS
    for batch in share:
        images, values, seconds = render_batch(model, batch, plan.options, device, callback)
        judged = batch_trust(model, batch, images, plan.options.photos) if plan.options.trust else {}
        entries = {}
        for unit, image, value in zip(batch.units, images, values.tolist(), strict=True):
            save_image(image, plan.out / unit.image)
            entries[unit.key] = {
                "layer": unit.layer, "channel": unit.channel, "role": unit.role, "image": unit.image,
                "seed": batch.seed(plan.options.seed), "batch": batch.index,
                "activation": value, "photo_activation": float(photos[unit.layer][unit.channel]),
                **judged.get(unit.key, {}),
                "seconds": seconds / len(batch.units), "batch_seconds": seconds,
                "rank": rank, "device": str(device),
            }
        with atomic_path(parts / f"batch-{batch.index:06d}.json") as tmp:
            tmp.write_text(json.dumps({"units": entries}) + "\n", encoding="utf-8")
        busy += seconds
        units += len(batch.units)
        bar.update(len(batch.units))
    bar.close()
    return {"rank": rank, "device": str(device), "host": socket.gethostname(), "units": units,
            "batches": len(share), "render_seconds": busy, "seconds": time.perf_counter() - start}


def _finish(plan: Plan, stats: list[dict[str, Any]], started: float) -> dict[str, Any]:
    """Fold the parts into the manifest and add this run's timings."""
    manifest = read_manifest(plan.out)
    assert manifest is not None, "prepare wrote the manifest"
    parts = _absorb_parts(plan.out, manifest)
    run = {"started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
           "finished": _now(), "world_size": len(stats), "layers": plan.layers,
           "units": sum(s["units"] for s in stats), "batches": sum(s["batches"] for s in stats),
           "wall_seconds": time.time() - started,
           "render_seconds": sum(s["render_seconds"] for s in stats), "ranks": stats}
    timings = manifest.setdefault("timings", {"runs": []})
    timings["runs"].append(run)
    timings["render_seconds"] = sum(e["seconds"] for e in manifest["units"].values())
    timings["units"] = len(manifest["units"])
    _commit(plan.out, manifest, parts)
    return manifest


def _rank_main(ranks: Ranks, model: Model | str | nn.Module, layers: str | Sequence[str], out: Path,
               options: Options, device: str, circuits: bool, page: bool, progress: bool,
               callback: Callback | None, started: float) -> dict[str, Any]:
    """One rank's whole job: rank 0 plans, every rank renders its share, rank 0 merges and pages."""
    device = str(resolve_device(device_for(device, ranks)))
    net = load_model(model)
    plan: Plan | str = ""
    error: Exception | None = None
    if ranks.rank == 0:
        try:
            plan = prepare(out, net, layers, options, circuits)
        except Exception as exc:  # noqa: BLE001 - every rank must hear of it, then it is raised
            plan, error = f"{exc}", exc
    plan = ranks.broadcast(plan)
    if error is not None:
        raise error
    if isinstance(plan, str):
        raise UserError(plan)
    if ranks.rank == 0 and progress and plan.done:
        print(f"atlas {out}: resuming, {plan.done} of {plan.total} units already done", file=sys.stderr)
    share = plan.pending[ranks.rank::ranks.world]
    try:
        stats = _render_share(plan, net, share, device, ranks.rank, progress and ranks.rank == 0,
                              callback)
    except KeyboardInterrupt:
        if ranks.world == 1:
            absorb(out)  # the manifest shows what finished before the interruption
        raise
    gathered = ranks.gather(stats)
    manifest: dict[str, Any] | None = None
    if ranks.rank == 0:
        assert gathered is not None
        manifest = _finish(plan, gathered, started)
        if page:
            from diffparam.atlas.page import build_page

            begin = time.perf_counter()
            build_page(out, net, manifest, progress=progress)
            manifest["timings"]["runs"][-1]["page_seconds"] = time.perf_counter() - begin
            write_manifest(out, manifest)
    ranks.barrier()
    return manifest if manifest is not None else read_manifest(out) or {}


def atlas(
    model: Model | str | nn.Module,
    layers: str | Sequence[str],
    out: str | os.PathLike,
    *,
    size: int = 128,
    steps: int = 512,
    lr: float | None = None,
    param: str = "fourier",
    seed: int = 0,
    batch: int = 32,
    precision: str = "fp32",
    compile: bool = False,
    spectrum_from: str | os.PathLike | None = None,
    trust: bool = True,
    photos: str | os.PathLike | None = None,
    device: str = "auto",
    workers: int = 1,
    circuits: bool = True,
    page: bool = True,
    progress: bool = True,
    callback: Callback | None = None,
) -> Result:
    """Render every channel of `layers` ("all", "L1,L2" or a list) into folder `out`.

    Resumable: run it again with the same arguments after any interruption and only the units not
    yet in the manifest are rendered. Under torchrun, each rank renders every N-th batch (on
    cuda:LOCAL_RANK); `workers` > 1 starts that many CPU processes instead. Batch i is rendered
    with seed `seed + i`, so an image does not depend on the number of ranks or on interruptions.
    `circuits` adds the previous layer's channels that feed each unit when that layer is not
    asked for; `page` writes `out/index.html`. `compile` compiles the model's blocks once for all
    batches (see `render`; worth it on a GPU for big atlases). `callback(step, loss, images)` is
    passed to each batch's `render` (with workers > 1 it must be picklable). `param` names the kind
    of parameterization (`diffparam.param.KINDS`); `spectrum_from` is MACO's photo folder. `trust`
    adds each unit's sanity score and plausibility distance to the manifest and the page, measured
    against scikit-image's photos or the folder `photos` (docs/trust.md).

    The atlas is written as it renders (`out/manifest.json`, a PNG per unit, `out/index.html`):
    the Result lists those files, holds the manifest in its extras and this run's numbers in its
    metrics (`units` in the atlas, `rendered` by this run, `wall_seconds`, `world_size`).
    """
    started = time.time()
    options = Options(size, steps, lr, param, seed, batch, precision, compile,
                      None if spectrum_from is None else str(spectrum_from), bool(trust),
                      None if photos is None else str(photos))
    folder = Path(out)
    rank, world, local_rank = launched_ranks()
    workers = positive_int("workers", workers)
    if page:
        check_writable(folder / "index.html")
    if workers > cpu_cores():
        warnings.warn(f"{workers} workers on {cpu_cores()} CPU cores: each gets a fraction of a core and "
                      "the atlas renders slower than with fewer", RuntimeWarning, stacklevel=2)
    with folder_lock(folder) if world == 1 else nullcontext():
        manifest = _render_atlas(model, layers, folder, options, device, workers, circuits, page, progress,
                                 callback, started, (rank, world, local_rank))
    return _result(folder, manifest, started)


def _render_atlas(model: Model | str | nn.Module, layers: str | Sequence[str], folder: Path,
                  options: Options, device: str, workers: int, circuits: bool, page: bool, progress: bool,
                  callback: Callback | None, started: float, launched: tuple[int, int, int]
                  ) -> dict[str, Any]:
    """`atlas` once its folder is locked: in this process, in `workers` CPU processes, or as one rank
    of a torchrun job (rank 0 then holds the lock)."""
    rank, world, local_rank = launched
    if workers > 1:
        if world > 1:
            raise UserError("`workers` starts its own processes: leave it at 1 under torchrun")
        if resolve_device(device).type != "cpu":
            raise UserError("`workers` is for the CPU (add `device` cpu); on GPUs run "
                            "`torchrun --nproc-per-node N -m diffparam atlas ...`")
        prepare(folder, load_model(model), layers, options, circuits)  # one-line errors here, not in a child
        spawn(_rank_main, workers, (model, layers, folder, options, "cpu", circuits, page, progress,
                                    callback, started))
        return read_manifest(folder) or {}
    ranks = join(rank, world, local_rank)
    try:
        with folder_lock(folder) if world > 1 and rank == 0 else nullcontext():
            return _rank_main(ranks, model, layers, folder, options, device, circuits, page, progress,
                              callback, started)
    finally:
        leave(ranks)


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on the atlas folder while a run writes it (a second run is refused). A
    folder made here and still empty when the run fails is removed again."""
    made = not folder.exists()
    check_writable(folder / MANIFEST)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{folder} is being written by another atlas run: wait for it to finish or "
                            "choose another `out`") from None
        yield
    except BaseException:
        if made and not any(folder.iterdir()):
            folder.rmdir()
        raise
    finally:
        os.close(fd)  # closing releases the lock


def _result(folder: Path, manifest: dict[str, Any], started: float) -> Result:
    """The atlas's Result: the files it wrote, its manifest, this run's numbers."""
    files = {"manifest": folder / MANIFEST}
    if (folder / "index.html").is_file():
        files["page"] = folder / "index.html"
    runs = manifest.get("timings", {}).get("runs", [])
    run = runs[-1] if runs else {}
    size = manifest.get("options", {}).get("size", 16)
    metrics = {"units": len(manifest.get("units", {})), "rendered": run.get("units", 0),
               "wall_seconds": run.get("wall_seconds", 0.0), "world_size": run.get("world_size", 1)}
    return Result(torch.empty(0, 3, size, size), seconds=time.time() - started,
                  objective=f"atlas of {', '.join(manifest.get('layers', {}))}", metrics=metrics,
                  extras={"manifest": manifest}, files=files, writer=_written_in_place)


def _written_in_place(result: Result, out: Path) -> dict[str, Path]:
    """An atlas is written to its folder as it renders: saving it there again changes nothing."""
    folder = result.files["manifest"].parent
    if out.resolve() != folder.resolve():
        raise UserError(f"an atlas is written to its own folder ({folder}) as it renders; copy that "
                        f"folder to have it at {out}")
    return dict(result.files)
