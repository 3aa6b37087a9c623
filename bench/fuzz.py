"""Bad input, faults and signals against the command line, each in a process of its own (issue 19).

Runs every case of `tests/fuzz_cases.py` (the slow ones too) as `python -m diffparam ...` in a fresh
folder, and the signal cases below: SIGINT and SIGTERM during a render, during a filmed CPPN, during
a texture's turntable and during `nerf poses` (COLMAP in its child process); SIGTERM and kill -9 of
an atlas whose work is spread over two worker processes (the workers must not outlive it); and a
second atlas run on a folder that one is writing.
Each must meet the standard: the expected exit status, one line on stderr, no traceback, no file
left that was not there and no file changed.

    python bench/fuzz.py --out fuzz.json     (about 10 minutes on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fuzz_cases import CASES, Case, keep, snapshot, violations  # noqa: E402

COMMAND = [sys.executable, "-m", "diffparam"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def run_case(case: Case, timeout: float) -> dict:
    """One bad-input case as its own process."""
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        keep(folder)
        if case.setup is not None:
            case.setup(folder)
        before = snapshot(folder)
        start = time.perf_counter()
        try:
            done = subprocess.run(
                [*COMMAND, *case.args], cwd=folder, env=ENV, capture_output=True, text=True, timeout=timeout
            )
            status, stderr = done.returncode, done.stderr
        except subprocess.TimeoutExpired as exc:
            status = None
            stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        problems = (
            ["timed out"] if status is None else violations(case, status, stderr, before, snapshot(folder))
        )
        return {
            "case": case.name,
            "seconds": round(time.perf_counter() - start, 1),
            "status": status,
            "problems": problems,
        }


@dataclass(frozen=True)
class SignalCase:
    """A long command that receives `sig` after `after` seconds."""

    name: str
    args: tuple[str, ...]
    sig: int
    after: float
    status: int
    line: str
    setup: Callable[[Path], None] | None = None


def _photos(folder: Path) -> None:
    """24 rendered photos for `nerf poses` (its COLMAP child runs some 15 s on them)."""
    from diffparam.recipes.nerf_poses import make_photos

    make_photos(folder / "photos", views=24, size=200)


LONG = ("--size", "64", "--device", "cpu", "--steps", "100000")
SIGNALS = [
    SignalCase(
        "SIGINT during render",
        ("render", "blocks.6:21", *LONG, "--out", "o.png"),
        signal.SIGINT,
        6,
        130,
        "diffparam: interrupted",
    ),
    SignalCase(
        "SIGTERM during render",
        ("render", "blocks.6:21", *LONG, "--out", "o.png"),
        signal.SIGTERM,
        6,
        143,
        "diffparam: terminated",
    ),
    SignalCase(
        "SIGTERM during a filmed CPPN",
        ("cppn", "blocks.6:21", *LONG, "--video", "v.gif", "--every", "1", "--out", "o.png"),
        signal.SIGTERM,
        8,
        143,
        "diffparam: terminated",
    ),
    SignalCase(
        "SIGTERM during a texture",
        (
            "texture",
            "shape:knot",
            "blocks.6:21",
            "--size",
            "64",
            "--texture-size",
            "128",
            "--steps",
            "100000",
            "--device",
            "cpu",
            "--out",
            "t",
        ),
        signal.SIGTERM,
        10,
        143,
        "diffparam: terminated",
    ),
    *(
        SignalCase(f"{name} during nerf poses (COLMAP in a child process)",
                   ("nerf", "poses", "photos", "--out", "scene"), sig, 9, status, line, _photos)
        for name, sig, status, line in (("SIGINT", signal.SIGINT, 130, "diffparam: interrupted"),
                                        ("SIGTERM", signal.SIGTERM, 143, "diffparam: terminated"))
    ),
]


def _children(pid: int) -> set[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def run_signal(case: SignalCase) -> dict:
    """A signal case: the standard, plus no temporary file or frame folder left behind."""
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        keep(folder)
        if case.setup is not None:
            case.setup(folder)
        before = snapshot(folder)
        proc = subprocess.Popen(
            [*COMMAND, *case.args],
            cwd=folder,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(case.after)
        proc.send_signal(case.sig)
        try:
            _, stderr = proc.communicate(timeout=60)
            status = proc.returncode
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
            status = None
        lines = [line for line in stderr.splitlines() if line.strip()]
        problems = []
        if status != case.status:
            problems.append(f"exit {status}, not {case.status}")
        if "Traceback" in stderr or lines != [case.line]:
            problems.append(f"stderr {stderr.strip()[-300:]!r}")
        if snapshot(folder) != before:
            problems.append(f"files left: {sorted(set(snapshot(folder)) - set(before))[:5]}")
        return {"case": case.name, "status": status, "problems": problems}


def run_atlas_workers(kill: int) -> dict:
    """An atlas on 2 worker processes; its parent gets `kill` mid-run: the workers must go too, and
    a run on the same folder while the first one writes is refused."""
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        args = [
            "atlas",
            "--layers",
            "blocks.4",
            "--size",
            "48",
            "--steps",
            "2000",
            "--device",
            "cpu",
            "--workers",
            "2",
            "--quiet",
            "--out",
            "a",
        ]
        proc = subprocess.Popen(
            [*COMMAND, *args], cwd=folder, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        problems = []
        deadline = time.time() + 60
        workers: set[int] = set()
        while time.time() < deadline and len(workers) < 2:
            time.sleep(1)
            workers = {p for p in _children(proc.pid) if "spawn" in Path(f"/proc/{p}/cmdline").read_text()}
        if len(workers) < 2:
            problems.append(f"saw {len(workers)} workers")
        second = subprocess.run(
            [*COMMAND, *args], cwd=folder, env=ENV, capture_output=True, text=True, timeout=120
        )
        if second.returncode != 2 or "being written by another atlas run" not in second.stderr:
            problems.append(
                f"a second run on the folder: exit {second.returncode}, {second.stderr.strip()!r}"
            )
        proc.send_signal(kill)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            problems.append("the parent did not stop")
        time.sleep(5)
        left = _alive(workers)
        if left:
            problems.append(f"workers {sorted(left)} outlived their parent")
            for pid in left:
                os.kill(pid, signal.SIGKILL)
        name = "SIGTERM" if kill == signal.SIGTERM else "kill -9"
        return {"case": f"{name} of an atlas with 2 workers", "status": proc.returncode, "problems": problems}


def run_big_mesh() -> dict:
    """An 82k-face mesh without UVs (xatlas crashed on one of that size): it is unwrapped, or the
    command says in one line why not; either way the program is not taken down."""
    import trimesh

    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        trimesh.creation.icosphere(6).export(folder / "big.ply")
        done = subprocess.run(
            [
                *COMMAND,
                "texture",
                "big.ply",
                "blocks.2:3",
                "--steps",
                "1",
                "--size",
                "32",
                "--texture-size",
                "64",
                "--frames",
                "0",
                "--device",
                "cpu",
                "--quiet",
                "--out",
                "t",
            ],
            cwd=folder,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=900,
        )
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        problems = []
        if done.returncode not in (0, 2) or "Traceback" in done.stderr:
            problems.append(f"exit {done.returncode}: {done.stderr.strip()[-300:]!r}")
        if done.returncode == 2 and len(lines) != 1:
            problems.append(f"{len(lines)} lines on stderr")
        return {
            "case": "texture of an 82k-face mesh without UVs",
            "status": done.returncode,
            "problems": problems,
            "stderr": done.stderr.strip()[-300:],
        }


def run_full_disk() -> list[dict]:
    """Commands that fill a 300 kB tmpfs (where this process may mount one): one line, exit 1 or 2,
    nothing left but what an atlas keeps to resume."""
    mount = Path(tempfile.mkdtemp(prefix="diffparam-full-"))
    if (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)], capture_output=True
        ).returncode
        != 0
    ):
        mount.rmdir()
        skipped = "no tmpfs could be mounted"
        return [{"case": "a full disk", "status": None, "problems": [], "skipped": skipped}]
    results = []
    try:
        for name, args in (
            (
                "interpolate",
                [
                    "interpolate",
                    "blocks.2:3",
                    "blocks.2:4",
                    "--steps",
                    "2",
                    "--size",
                    "128",
                    "--frames",
                    "6",
                    "--out",
                    str(mount / "i.gif"),
                ],
            ),
            (
                "render",
                [
                    "render",
                    "blocks.2:3",
                    "--steps",
                    "2",
                    "--size",
                    "512",
                    "--batch",
                    "4",
                    "--separate",
                    "--out",
                    str(mount / "r.png"),
                ],
            ),
        ):
            done = subprocess.run(
                [*COMMAND, *args, "--device", "cpu", "--quiet"],
                env=ENV,
                capture_output=True,
                text=True,
                timeout=300,
            )
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            problems = []
            if done.returncode not in (1, 2) or len(lines) != 1 or "Traceback" in done.stderr:
                problems.append(f"exit {done.returncode}: {done.stderr.strip()[-300:]!r}")
            if any(mount.iterdir()):
                problems.append(f"left {sorted(p.name for p in mount.iterdir())}")
            for p in mount.iterdir():
                subprocess.run(["rm", "-rf", str(p)])
            results.append(
                {
                    "case": f"{name} onto a full disk",
                    "status": done.returncode,
                    "problems": problems,
                    "stderr": done.stderr.strip(),
                }
            )
    finally:
        subprocess.run(["umount", str(mount)])
        mount.rmdir()
    return results


def main() -> None:
    """Run everything; print a summary and write every result to --out."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default="fuzz.json")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds a bad-input case may take")
    p.add_argument("--only", default="cases,signals,atlas,disk,mesh")
    args = p.parse_args()
    # Started in the background (`&`, nohup) this process ignores SIGINT, and so would every command
    # it starts: Ctrl-C must be live again for the SIGINT case to test anything.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    only = set(args.only.split(","))
    results: list[dict] = []

    def report(result: dict) -> None:
        results.append(result)
        mark = "SKIP" if "skipped" in result else "FAIL" if result["problems"] else "ok  "
        print(mark, result["case"], result["problems"], result.get("skipped", result.get("stderr", "")),
              flush=True)

    if "cases" in only:
        for case in CASES:
            report(run_case(case, args.timeout))
    if "signals" in only:
        for sig_case in SIGNALS:
            report(run_signal(sig_case))
    if "atlas" in only:
        for kill in (signal.SIGTERM, signal.SIGKILL):
            report(run_atlas_workers(kill))
    if "disk" in only:
        for result in run_full_disk():
            report(result)
    if "mesh" in only:
        report(run_big_mesh())
    skipped = [r for r in results if "skipped" in r]
    failing = [r for r in results if r["problems"]]
    tried = len(results) - len(skipped)
    summary = {"cases": tried, "failing": len(failing), "skipped": len(skipped), "results": results}
    Path(args.out).write_text(json.dumps(summary, indent=1))
    print(f"\n{tried} cases, {len(failing)} failing the standard, {len(skipped)} not run")


if __name__ == "__main__":
    main()
