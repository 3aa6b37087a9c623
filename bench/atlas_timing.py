"""Atlas wall time: every channel of the embedded model's 16 blocks on 1 GPU and on N GPUs (torchrun).

Each configuration runs the real command line in a fresh folder, as a user would:
  1 GPU:   python -m diffparam atlas --layers all --out DIR ...
  N GPUs:  python -m torch.distributed.run --standalone --nproc-per-node N -m diffparam atlas ...
  CPU:     python -m diffparam atlas --device cpu --workers K ...
and records the outer wall time (process start, model load, rendering and the page), the atlas's
own wall time up to the merged manifest (`wall_seconds`, page excluded), the page's time and the
summed per-rank render time. Scaling efficiency = T(1) / (N × T(N)) on the atlas wall time.
With --kill-after S, it also kills the largest configuration's process group (SIGKILL) S seconds
in, resumes it with the same command and checks that no finished unit was rendered again.

GPU (the 2-GPU machine; NCCL is never used, ranks talk over gloo, NCCL_NVLS_ENABLE=0 anyway):
  python bench/atlas_timing.py --gpus 1,2 --kill-after 30 --out atlas_timing.json
CPU (one early layer, this 2-core machine):
  python bench/atlas_timing.py --device cpu --layers blocks.0 --workers 1,2 --out atlas_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def _command(n: int, device: str, args: argparse.Namespace, out: Path) -> list[str]:
    atlas = ["-m", "diffparam", "atlas", "--layers", args.layers, "--out", str(out), "--size",
             str(args.size), "--steps", str(args.steps), "--batch", str(args.batch), "--precision",
             args.precision, "--seed", str(args.seed), "--quiet"]
    if device == "cpu":
        return [sys.executable, *atlas, "--device", "cpu", "--workers", str(n)]
    if n == 1:
        return [sys.executable, *atlas, "--device", "cuda"]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
            *atlas, "--device", "cuda"]


def _env() -> dict[str, str]:
    env = dict(os.environ, NCCL_NVLS_ENABLE="0")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[1]),
                                                    env.get("PYTHONPATH")) if p)
    return env


def _run(cmd: list[str], kill_after: float | None = None) -> tuple[float, int, str]:
    """Run `cmd` in its own process group; (seconds, return code, stderr tail)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    return time.perf_counter() - start, proc.returncode, err[-2000:]


def _manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def _parts(out: Path) -> set[str]:
    """Units in finished batches that a killed run left as parts (not yet in the manifest)."""
    keys: set[str] = set()
    for part in (out / ".parts").glob("batch-*.json"):
        keys.update(json.loads(part.read_text(encoding="utf-8"))["units"])
    return keys


def measure(n: int, device: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One configuration on `n` GPUs or workers, in a fresh folder."""
    out = work / f"{device}-{n}"
    cmd = _command(n, device, args, out)
    seconds, code, err = _run(cmd)
    row: dict[str, Any] = {"device": device, "processes": n, "command": " ".join(cmd[1:]),
                           "outer_seconds": seconds, "status": "ok" if code == 0 else f"exit {code}"}
    if code != 0:
        row["stderr"] = err
        return row
    manifest = _manifest(out)
    run = manifest["timings"]["runs"][-1]
    row.update(units=run["units"], batches=run["batches"], wall_seconds=run["wall_seconds"],
               page_seconds=run.get("page_seconds"), render_seconds=run["render_seconds"],
               rank_units=[r["units"] for r in run["ranks"]],
               rank_seconds=[r["seconds"] for r in run["ranks"]])
    ratios = [e["activation"] / e["photo_activation"] for e in manifest["units"].values()
              if e["role"] == "unit" and e["photo_activation"] > 0]
    ratios.sort()
    row["median_ratio"] = ratios[len(ratios) // 2] if ratios else None
    return row


def kill_and_resume(n: int, device: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """SIGKILL the whole job `kill_after` seconds in, resume it, and check nothing finished is redone."""
    out = work / f"{device}-{n}-killed"
    cmd = _command(n, device, args, out)
    first, code, err = _run(cmd, kill_after=args.kill_after)
    manifest = _manifest(out) if (out / "manifest.json").is_file() else {"units": {}}
    finished = set(manifest["units"]) | _parts(out)
    mtimes = {k: (out / "{}/{}.png".format(*k.rsplit(":", 1))).stat().st_mtime_ns for k in finished}
    second, code2, err2 = _run(cmd)
    row: dict[str, Any] = {"device": device, "processes": n, "killed_after": args.kill_after,
                           "first_exit": code, "finished_before_kill": len(finished),
                           "resume_seconds": second, "resume_exit": code2}
    if code2 != 0:
        row["stderr"] = err2
        return row
    after = _manifest(out)
    run = after["timings"]["runs"][-1]
    unchanged = all((out / after["units"][k]["image"]).stat().st_mtime_ns == t for k, t in mtimes.items())
    stray = [str(p) for p in out.rglob(".*") if p.is_file()]
    row.update(resumed_units=run["units"], total_units=len(after["units"]),
               redone=run["units"] + len(finished) - len(after["units"]),
               finished_images_untouched=unchanged, stray_temporaries=stray)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--gpus", default="1,2", help="GPU counts (torchrun ranks) to time")
    p.add_argument("--workers", default="1,2", help="CPU worker counts (with --device cpu)")
    p.add_argument("--layers", default="all")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=512)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kill-after", type=float, default=None,
                   help="also kill -9 the largest configuration this many seconds in and resume it")
    p.add_argument("--work", default=None, help="folder for the atlases (default: a temporary one)")
    p.add_argument("--out", default="atlas_timing.json")
    args = p.parse_args()
    counts = [int(c) for c in (args.gpus if args.device == "cuda" else args.workers).split(",")]
    if args.device == "cuda":
        counts = [c for c in counts if c <= torch.cuda.device_count()]
        if not counts:
            sys.exit("no CUDA GPU here: use --device cpu")
    work = Path(args.work or tempfile.mkdtemp(prefix="atlas-timing-"))
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor()
        or platform.machine(),
        "cpus": os.cpu_count(), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
        "options": {k: getattr(args, k) for k in ("layers", "size", "steps", "batch", "precision", "seed")},
        "runs": [],
    }
    for n in counts:
        row = measure(n, args.device, args, work)
        report["runs"].append(row)
        print(json.dumps(row), flush=True)
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    base = next((r for r in report["runs"] if r["processes"] == 1 and r["status"] == "ok"), None)
    for r in report["runs"]:
        if base is not None and r["status"] == "ok":
            r["speedup"] = base["wall_seconds"] / r["wall_seconds"]
            r["efficiency"] = r["speedup"] / r["processes"]
    if args.kill_after is not None:
        report["resume"] = kill_and_resume(max(counts), args.device, args, work)
        print(json.dumps(report["resume"]), flush=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    unit = "GPUs" if args.device == "cuda" else "workers"
    print(f"\n{report['device']}, torch {report['torch']}, {report['date']}; {report['options']}\n")
    print(f"| {unit} | units | batches | atlas wall s | page s | outer wall s | speedup | efficiency "
          "| median ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in report["runs"]:
        if r["status"] != "ok":
            print(f"| {r['processes']} | {r['status']} | | | | | | | |")
            continue

        def f(x: Any, d: int = 1) -> str:
            return "–" if x is None else f"{x:.{d}f}"

        print(f"| {r['processes']} | {r['units']} | {r['batches']} | {f(r['wall_seconds'])} | "
              f"{f(r['page_seconds'])} | {f(r['outer_seconds'])} | {f(r.get('speedup'), 2)} | "
              f"{f(r.get('efficiency'), 2)} | {f(r['median_ratio'])} |")


if __name__ == "__main__":
    main()
