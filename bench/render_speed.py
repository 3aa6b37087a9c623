"""Render-loop speed on a GPU: diffparam's `render` against torch-lucent 0.1.8, and against a floor.

Sections (each timed render of --steps steps follows an untimed warm-up render of --warmup steps):
  ceilings     device-to-device copy bandwidth and 8192³ matmul rates (fp32, TF32, bf16)
  lite0        EfficientNet-Lite0, channel objectives on blocks.10, --sizes × --batches, the --variants
               of diffparam (eager or CUDA graph, fp32 or bf16, compiled blocks, checkpointing) and
               lucent's render_vis
  torchvision  GoogLeNet (inception4c) and ResNet-50 (layer3), random weights, 224 px, batch 1 and 64
  cpu          Lite0 at 128 px, batch 1, 2 threads, --cpu-steps steps (scaled to --steps)
The floor of a step is max(FLOPs / matmul rate, bytes / copy bandwidth), from the work that the step
cannot avoid (see `step_work`). Defaults fit in about 8 minutes on an H200: lucent is capped (batch,
pixels, warm-up estimate), and no render starts after --budget-seconds. A failing configuration (OOM,
error) is recorded and the rest runs on. Prints a markdown table last; writes every figure to --out
after each run, so a run cut short still leaves its figures.

GPU run (lucent's wheels carried in .whl/; torchvision and timm are already there):
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \\
    && export PYTHONPATH=/tmp/site:$PWD && python3 bench/render_speed.py --skip-cpu --out speed.json
CPU row:  python bench/render_speed.py --device cpu --sizes 32 --batches 1 \\
            --skip-lucent --skip-torchvision --out speed-cpu.json
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib
import importlib.util
import inspect
import json
import platform
import statistics
import sys
import time
import types
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from diffparam import objectives as O
from diffparam import transforms as T
from diffparam.models import Model, load_model
from diffparam.render import render, resolve_device

FIRST_CHANNEL = 27
"""Image i of a batch maximises channel (27 + i) mod the layer's channel count."""

VARIANTS: dict[str, dict[str, Any]] = {
    "eager fp32": dict(cuda_graph=False, channels_last=False),
    "graph fp32": dict(cuda_graph=True),
    "graph bf16": dict(cuda_graph=True, precision="bf16"),
    "graph bf16 NCHW": dict(cuda_graph=True, precision="bf16", channels_last=False),
    "graph fp32 compiled": dict(cuda_graph=True, compile=True),
    "graph bf16 compiled": dict(cuda_graph=True, precision="bf16", compile=True),
    "graph fp32 checkpoint": dict(cuda_graph=True, checkpoint=True),
    "graph bf16 compiled checkpoint": dict(cuda_graph=True, precision="bf16", compile=True, checkpoint=True),
}
DEFAULT_VARIANTS = "eager fp32,graph fp32,graph bf16,graph fp32 compiled,graph bf16 compiled"
LUCENT = "lucent 0.1.8"
TV_SIZE, TV_BATCHES, TV_LUCENT_BATCH = 224, (1, 64), 1
TV_VARIANTS = ["eager fp32", "graph fp32", "graph fp32 compiled"]
CPU_SIZE, CPU_THREADS = 128, 2

Prepared = Callable[[int], Callable[[], object]]
"""steps → a ready-to-run render: setup that must not be timed happens in the outer call."""


@dataclass
class Run:
    """One timed render: what ran, its wall time and its peak GPU memory (None where not measured)."""

    section: str
    network: str
    layer: str
    size: int
    batch: int
    variant: str
    steps: int
    status: str = "ok"
    note: str = ""
    seconds: float | None = None
    """The median over --repeats timed renders."""
    repeats: list[float] | None = None
    """Every timed render's seconds."""
    warmup_seconds: float | None = None
    """The untimed warm-up render (for compiled variants: compilation)."""
    peak_mib: float | None = None
    mib_per_image: float | None = None
    floor_ms: float | None = None
    vs_lucent: float | None = None

    @property
    def ms_per_step(self) -> float | None:
        """Wall milliseconds per optimisation step (setup and final copy spread over the steps)."""
        return None if self.seconds is None else 1e3 * self.seconds / self.steps

    def to_json(self) -> dict[str, Any]:
        """The record with its derived rates, for the JSON file."""
        out = asdict(self)
        ms = self.ms_per_step
        out["ms_per_step"] = ms
        out["image_steps_per_s"] = None if ms is None else 1e3 * self.batch / ms
        out["x_floor"] = None if ms is None or not self.floor_ms else ms / self.floor_ms
        return out


@dataclass
class Work:
    """The least one step must do per image, counted at batch 1 on the transformed input size.

    Forward FLOPs of convolutions and matmuls up to the deepest needed layer (FlopCounterMode), the
    summed output elements of every leaf module that ran, and the weight elements those modules hold.
    """

    input_size: int
    forward_flops: float
    activation_elements: int
    weight_elements: int


def step_work(model: Model, layer: str, size: int) -> Work:
    """Count `Work` for rendering `layer` from size×size images through diffparam's standard transforms.

    An estimate, not a bound: it leaves out elementwise FLOPs (BatchNorm, ReLU), the Fourier
    parameterization, transforms, loss and Adam, and kernel launch overhead (usually the real limit at
    small batch); it also assumes every activation goes through memory, which fusion could avoid.
    """
    input_size = T.standard()(torch.zeros(1, 3, size, size)).shape[-1]
    elements = 0
    ran: dict[int, torch.nn.Module] = {}

    def count(module: torch.nn.Module, _inputs: object, out: object) -> None:
        nonlocal elements
        if isinstance(out, torch.Tensor):
            elements += out.numel()
        ran[id(module)] = module

    leaves = [m for m in model.module.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.activations(torch.rand(1, 3, input_size, input_size, device=model.device), [layer])
    finally:
        for h in handles:
            h.remove()
    weights = sum(t.numel() for m in ran.values()
                  for t in (*m.parameters(recurse=False), *m.buffers(recurse=False)))
    return Work(input_size, float(counter.get_total_flops()), elements, weights)


def floor_ms(work: Work, batch: int, bf16: bool, ceilings: dict[str, Any]) -> float:
    """max(compute, memory) time of one step: 3× forward FLOPs (forward + backward to the input) at the
    matmul rate; weights read twice and each activation touched ~4 times (written and read forward, read
    and its gradient written backward) at the copy bandwidth. fp32 uses the TF32 rate when cuDNN
    convolutions may use TF32 (PyTorch's default), since convolutions are nearly all the FLOPs.
    """
    itemsize = 2 if bf16 else 4
    flops = 3 * work.forward_flops * batch
    nbytes = (2 * work.weight_elements + 4 * work.activation_elements * batch) * itemsize
    if bf16:
        tflops = ceilings["bf16_tflops"]
    else:
        tflops = ceilings["tf32_tflops"] if ceilings["cudnn_allow_tf32"] else ceilings["fp32_tflops"]
    return 1e3 * max(flops / (tflops * 1e12), nbytes / (ceilings["copy_gbps"] * 1e9))


def _sync(dev: torch.device) -> None:
    """Wait for the GPU's queued work, so wall-clock times cover it (no-op on the CPU)."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _free(dev: torch.device) -> None:
    """Drop the last render's garbage (graphs, activations) so the next one starts from a clean pool."""
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def _event_seconds(fn: Callable[[], object], reps: int = 10, warm: int = 3) -> float:
    """Median seconds of `fn` on the current CUDA stream, timed with events after `warm` calls."""
    for _ in range(warm):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def _copy_gbps(dev: torch.device, elements: int = 2**28) -> float:
    """Device-to-device copy rate of a 1 GiB fp32 buffer, counting bytes read and written."""
    src = torch.empty(elements, device=dev)
    dst = torch.empty_like(src)
    return 2 * src.nbytes / _event_seconds(lambda: dst.copy_(src)) / 1e9


def _matmul_tflops(dev: torch.device, dtype: torch.dtype, n: int) -> float:
    """Rate of an n×n by n×n product of random matrices under the current matmul settings."""
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    return 2 * n**3 / _event_seconds(lambda: a @ b) / 1e12


def measure_ceilings(dev: torch.device, n: int = 8192) -> dict[str, Any]:
    """The two roofs of the floor: copy bandwidth (bytes read + written) and n³ matmul rates.

    fp32 runs with PyTorch's default matmul precision (reported); TF32 is measured separately with
    precision 'high', because cuDNN convolutions use TF32 by default even when matmuls do not.
    """
    before = torch.get_float32_matmul_precision()
    out: dict[str, Any] = dict(
        float32_matmul_precision=before,
        cuda_matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
        cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
        copy_gbps=_copy_gbps(dev),
        fp32_tflops=_matmul_tflops(dev, torch.float32, n),
        bf16_tflops=_matmul_tflops(dev, torch.bfloat16, n),
    )
    torch.set_float32_matmul_precision("high")
    try:
        out["tf32_tflops"] = _matmul_tflops(dev, torch.float32, n)
    finally:
        torch.set_float32_matmul_precision(before)
    _free(dev)
    return out


def import_lucent() -> tuple[types.SimpleNamespace | None, str]:
    """lucent's render, param and objectives modules, or None and the reason they cannot be imported."""
    if importlib.util.find_spec("IPython") is None:
        # lucent.misc.io.showing does `import IPython.display` at import time, only to show images in
        # notebooks; render_vis(show_image=False) never calls it, so an empty stand-in is enough and
        # spares carrying IPython's wheels. It lives only in this benchmark's process.
        ipython, display = types.ModuleType("IPython"), types.ModuleType("IPython.display")
        ipython.display = display  # type: ignore[attr-defined]
        sys.modules.setdefault("IPython", ipython)
        sys.modules.setdefault("IPython.display", display)
    try:
        lucent = importlib.import_module("lucent")
        kornia = importlib.import_module("kornia")
        modules = {name: importlib.import_module(f"lucent.optvis.{name}")
                   for name in ("render", "param", "objectives")}
        spatial = importlib.import_module("lucent.optvis.param.spatial")
    except Exception as exc:  # ImportError, or kornia/torchvision breaking against this torch
        return None, f"lucent cannot be imported ({type(exc).__name__}: {exc})"
    return types.SimpleNamespace(version=lucent.__version__, kornia=kornia.__version__,
                                 device=torch.device(spatial.device), **modules), ""


class _OverBudget(Exception):
    """The benchmark has used its time budget: the remaining runs are recorded as skipped."""


def _canonical(dev: torch.device) -> torch.device:
    """'cuda' → 'cuda:N' (the current GPU), so it compares equal to lucent's fixed 'cuda:0'."""
    if dev.type == "cuda" and dev.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return dev


def _channels(n: int, batch: int) -> list[int]:
    """The channel each image of a batch maximises, for a layer of n channels."""
    return [(FIRST_CHANNEL + i) % n for i in range(batch)]


class Bench:
    """Runs the sections, keeps every record and rewrites the JSON file after each one."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dev = _canonical(resolve_device(args.device))
        self.runs: list[Run] = []
        self.work: dict[str, Work] = {}
        self.ceilings: dict[str, Any] = {}
        self.skipped: list[str] = []
        self.accepted = set(inspect.signature(render).parameters)
        self.lucent: types.SimpleNamespace | None = None
        self.lucent_off = args.skip_lucent
        self.started = time.perf_counter()
        self.meta: dict[str, Any] = dict(
            device=torch.cuda.get_device_name(self.dev) if self.dev.type == "cuda" else
            f"cpu ({platform.processor() or platform.machine()})",
            torch=torch.__version__, cuda=torch.version.cuda, python=platform.python_version(),
            date=time.strftime("%Y-%m-%d %H:%M"), args=vars(args),
            render_accepts={k: k in self.accepted for k in ("cuda_graph", "precision", "channels_last")})

    # -- bookkeeping ---------------------------------------------------------------------------
    def skip(self, reason: str) -> None:
        """Record and print why a section or part of one did not run."""
        self.skipped.append(reason)
        print(f"skipped: {reason}", flush=True)

    def save(self) -> None:
        """Write everything measured so far (a run cut short still leaves its figures)."""
        data = dict(self.meta, seconds_total=time.perf_counter() - self.started,
                    cudnn_benchmark=torch.backends.cudnn.benchmark, ceilings=self.ceilings,
                    work={k: asdict(w) for k, w in self.work.items()}, skipped=self.skipped,
                    runs=[r.to_json() for r in self.runs])
        Path(self.args.out).write_text(json.dumps(data, indent=1))

    def measure(self, run: Run, prepare: Prepared, dev: torch.device, cap_s: float | None = None) -> None:
        """Warm up (untimed), then time the full render between syncs; OOM and errors are recorded."""
        warm = min(self.args.warmup, run.steps)
        elapsed = time.perf_counter() - self.started
        try:
            if elapsed > self.args.budget_seconds:
                raise _OverBudget(f"{elapsed:.0f} s spent > --budget-seconds {self.args.budget_seconds:.0f}")
            t = time.perf_counter()
            prepare(warm)()
            _sync(dev)
            run.warmup_seconds = time.perf_counter() - t
            estimate = run.warmup_seconds / warm * run.steps
            if cap_s is not None and estimate > cap_s:
                run.status = "skipped"
                run.note = f"~{estimate:.0f} s estimated from the warm-up > cap {cap_s:.0f} s"
            else:
                fn = prepare(run.steps)
                _free(dev)
                if dev.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(dev)
                    base = torch.cuda.memory_allocated(dev)
                run.repeats = []
                for _ in range(self.args.repeats):
                    _sync(dev)
                    t = time.perf_counter()
                    fn()
                    _sync(dev)
                    run.repeats.append(time.perf_counter() - t)
                run.seconds = statistics.median(run.repeats)
                if dev.type == "cuda":
                    peak = torch.cuda.max_memory_allocated(dev)
                    run.peak_mib = peak / 2**20
                    run.mib_per_image = (peak - base) / 2**20 / run.batch
        except _OverBudget as exc:
            run.status, run.note = "skipped", str(exc)
        except Exception as exc:  # one configuration's failure (OOM above all) must not end the run
            oom = isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc)
            run.status = "OOM" if oom else "error"
            run.note = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        _free(dev)
        self.runs.append(run)
        self.save()
        what = f"[{run.network} {run.layer} {run.size}px B={run.batch} {run.variant}]"
        if run.seconds is not None:
            mem = f", {run.mib_per_image:.1f} MiB/img" if run.mib_per_image is not None else ""
            print(f"{what} {run.seconds:.2f} s, {run.ms_per_step:.2f} ms/step{mem} "
                  f"(warm-up {run.warmup_seconds:.1f} s)", flush=True)
        else:
            print(f"{what} {run.status}: {run.note}", flush=True)

    # -- renders -------------------------------------------------------------------------------
    def diffparam(self, section: str, label: str, model: Model, layer: str, channels: list[int],
                  size: int, variant: str, dev: torch.device, steps: int, shown: str = "") -> None:
        """Time diffparam's render with one variant's options, image i maximising channels[i]; options
        `render` does not accept yet are left out, and the row is starred."""
        wanted = VARIANTS[variant]
        kwargs = {k: v for k, v in wanted.items() if k in self.accepted}
        missing = sorted(set(wanted) - set(kwargs))
        batch = len(channels)
        run = Run(section, label, layer, size, batch, (shown or variant) + "*" * bool(missing), steps,
                  note=f"render() has no {', '.join(missing)}: left out" if missing else "")
        obj = O.Objective.sum(O.channel(layer, c, image=i) for i, c in enumerate(channels))

        def prepare(n: int) -> Callable[[], object]:
            return lambda: render(model, obj, steps=n, device=dev, progress=False, size=size,
                                  batch=batch, **kwargs)

        self.measure(run, prepare, dev)

    def lucent_run(self, section: str, label: str, module: torch.nn.Module, layer: str,
                   channels: list[int], size: int) -> None:
        """Time lucent's render_vis on `module` (frozen weights, on lucent's device) with the same units."""
        lu = self.lucent
        assert lu is not None
        batch = len(channels)
        name = layer.replace(".", "_")  # lucent joins module names with underscores
        objective: object = (f"{name}:{channels[0]}" if batch == 1 else
                             lu.objectives.Objective.sum([lu.objectives.channel(name, c, batch=i)
                                                          for i, c in enumerate(channels)]))

        def prepare(n: int) -> Callable[[], object]:
            # render_vis hooks every module and never removes its hooks: each call gets its own copy.
            net = copy.deepcopy(module)

            def go() -> None:
                torch.manual_seed(0)
                np.random.seed(0)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    lu.render.render_vis(net, objective, param_f=lambda: lu.param.image(size, batch=batch),
                                         thresholds=(n,), show_image=False, progress=False)
                # render_vis turns any RuntimeError of the forward pass (OOM included) into a warning.
                for w in caught:
                    if "could not be computed" in str(w.message):
                        raise RuntimeError(f"render_vis swallowed an error: {w.message}")

            return go

        run = Run(section, label, layer, size, batch, LUCENT, self.args.steps)
        self.measure(run, prepare, lu.device, cap_s=self.args.lucent_max_seconds)

    def lucent_ready(self) -> bool:
        """Whether lucent can run: imported on first use (reasons it cannot are recorded once)."""
        if self.lucent is None and not self.lucent_off:
            self.lucent, reason = import_lucent()
            if self.lucent is None:
                self.lucent_off = True
                self.skip(reason)
            else:
                self.meta.update(lucent=self.lucent.version, kornia=self.lucent.kornia)
                if self.lucent.device != self.dev:
                    self.lucent_off = True
                    self.skip(f"lucent renders on {self.lucent.device} (fixed at its import), not {self.dev}")
        return not self.lucent_off

    # -- sections ------------------------------------------------------------------------------
    def network(self, section: str, label: str, base: Model, layer: str, grid: list[tuple[int, int]],
                variants: list[str], lucent_max_batch: int) -> None:
        """Every (size, batch) of `grid`: diffparam's variants, each on its own copy of the model, and
        lucent up to `lucent_max_batch` and --lucent-max-pixels; `Work` is counted once per size."""
        cuda_only = [v for v in variants if VARIANTS[v].get("cuda_graph")]
        if self.dev.type != "cuda" and cuda_only:
            self.skip(f"{label}: the CUDA-graph variants ({', '.join(cuda_only)}) need a CUDA device")
            variants = [v for v in variants if v not in cuda_only]
        models = {v: copy.deepcopy(base).to(self.dev) for v in variants}
        frozen = copy.deepcopy(base.module).to(self.dev)
        n = base.channels(layer)
        for size, batch in grid:
            key = f"{label} {layer} {size}"
            if key not in self.work:
                self.work[key] = step_work(base, layer, size)
            for variant in variants:
                self.diffparam(section, label, models[variant], layer, _channels(n, batch), size, variant,
                               self.dev, self.args.steps)
            small = batch <= lucent_max_batch and batch * size**2 <= self.args.lucent_max_pixels
            if small and self.lucent_ready():
                self.lucent_run(section, label, frozen, layer, _channels(n, batch), size)
        del models, frozen
        _free(self.dev)

    def lite0(self) -> None:
        """EfficientNet-Lite0, blocks.10, every size and batch asked for."""
        base = load_model("efficientnet_lite0")
        grid = [(s, b) for s in self.args.sizes for b in self.args.batches]
        self.network("lite0", "Lite0", base, "blocks.10", grid, self.args.variants,
                     self.args.lucent_max_batch)

    def torchvision(self) -> None:
        """GoogLeNet and ResNet-50 from torchvision with random weights (nothing to download)."""
        try:
            tv = importlib.import_module("torchvision")
        except Exception as exc:  # ImportError, or a torchvision built for another torch
            self.skip(f"torchvision section: torchvision cannot be imported ({type(exc).__name__}: {exc})")
            return
        self.meta["torchvision"] = tv.__version__
        nets = (("GoogLeNet", "inception4c",
                 lambda: tv.models.googlenet(weights=None, aux_logits=False, init_weights=True)),
                ("ResNet-50", "layer3", lambda: tv.models.resnet50(weights=None)))
        grid = [(TV_SIZE, b) for b in TV_BATCHES]
        for label, layer, make in nets:
            torch.manual_seed(0)
            self.network("torchvision", label, load_model(make()), layer, grid, TV_VARIANTS,
                         min(TV_LUCENT_BATCH, self.args.lucent_max_batch))

    def cpu(self) -> None:
        """Lite0 at 128 px, batch 1, on 2 CPU threads: the laptop figure."""
        threads = torch.get_num_threads()
        torch.set_num_threads(CPU_THREADS)
        try:
            model = load_model("efficientnet_lite0")
            self.diffparam("cpu", "Lite0", model, "blocks.10", _channels(model.channels("blocks.10"), 1),
                           CPU_SIZE, "eager fp32", torch.device("cpu"), self.args.cpu_steps,
                           shown=f"CPU, {CPU_THREADS} threads, eager fp32")
        finally:
            torch.set_num_threads(threads)

    # -- results -------------------------------------------------------------------------------
    def finish(self) -> None:
        """Fill in floors and lucent ratios, write the JSON and print the markdown summary."""
        lucent = {(r.network, r.layer, r.size, r.batch): r.seconds
                  for r in self.runs if r.variant == LUCENT and r.seconds is not None}
        for r in self.runs:
            work = self.work.get(f"{r.network} {r.layer} {r.size}")
            if self.ceilings and work is not None and r.section != "cpu":
                r.floor_ms = floor_ms(work, r.batch, "bf16" in r.variant, self.ceilings)
            ref = lucent.get((r.network, r.layer, r.size, r.batch))
            if ref and r.seconds is not None and r.variant != LUCENT and r.section != "cpu":
                r.vs_lucent = r.seconds / ref
        self.save()
        print(self.markdown())

    def markdown(self) -> str:
        """A compact summary: ceilings, per-step work, then one row per run, then what it means."""
        steps = self.args.steps
        m = self.meta
        lines = [f"## render speed: {m['device']}, torch {m['torch']}, lucent {m.get('lucent', '-')}, "
                 f"kornia {m.get('kornia', '-')}, torchvision {m.get('torchvision', '-')}, "
                 f"{time.perf_counter() - self.started:.0f} s in all", ""]
        c = self.ceilings
        if c:
            lines += [f"Ceilings: copy {c['copy_gbps']:.0f} GB/s (read + written); 8192³ matmul "
                      f"fp32 {c['fp32_tflops']:.0f} (default precision '{c['float32_matmul_precision']}', "
                      f"cuda.matmul.allow_tf32={c['cuda_matmul_allow_tf32']}), TF32 {c['tf32_tflops']:.0f}, "
                      f"bf16 {c['bf16_tflops']:.0f} TFLOP/s; cudnn.allow_tf32={c['cudnn_allow_tf32']}, "
                      f"cudnn.benchmark={torch.backends.cudnn.benchmark}.", ""]
        if self.work:
            lines += ["| network · layer · px | input px | fwd GFLOP/img | activations MB/img (fp32) "
                      "| weights MB |", "|---|---|---|---|---|"]
            lines += [f"| {k} | {w.input_size} | {w.forward_flops / 1e9:.3f} | "
                      f"{4 * w.activation_elements / 1e6:.1f} | {4 * w.weight_elements / 1e6:.1f} |"
                      for k, w in self.work.items()]
            lines.append("")
        lines += [f"| network · layer | px | B | variant | s / {steps} steps | img·steps/s | ms/step "
                  "| MiB/img | t / t_lucent | × floor |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in self.runs:
            ms = r.ms_per_step
            if ms is None:
                cells = [r.status] + ["–"] * 5
            else:
                x_floor = ms / r.floor_ms if r.floor_ms else None
                cells = [f"{ms * steps / 1e3:.1f}", f"{1e3 * r.batch / ms:,.0f}", f"{ms:.2f}",
                         "–" if r.mib_per_image is None else f"{r.mib_per_image:.1f}",
                         "–" if r.vs_lucent is None else f"{r.vs_lucent:.3f}",
                         "–" if x_floor is None else f"{x_floor:.1f}" if x_floor < 100 else f"{x_floor:,.0f}"]
            lines.append(f"| {r.network} {r.layer} | {r.size} | {r.batch} | {r.variant} | "
                         + " | ".join(cells) + " |")
        lines += ["", f"- s: wall time of one render of {steps} steps between device syncs (setup, "
                  "CUDA-graph capture and the final copy to the CPU included), after an untimed "
                  f"{self.args.warmup}-step warm-up. MiB/img: peak allocated above what was allocated "
                  "before the render, per image."]
        if any(r.section == "cpu" for r in self.runs):
            lines.append(f"- CPU row: {self.args.cpu_steps} steps on {CPU_THREADS} threads, scaled to "
                         f"{steps}.")
        if any(r.variant == LUCENT for r in self.runs):
            lines.append(f"- lucent: render_vis, eager fp32, only where B ≤ {self.args.lucent_max_batch} "
                         f"and B × px² ≤ {self.args.lucent_max_pixels:,} (B = 1 for torchvision's nets), "
                         "on the same module and weights (frozen, as diffparam's), a fresh copy per call "
                         "(its hooks are never removed); it upsamples "
                         "images under 224 px to 224 (its cost, counted), runs the whole network, and "
                         "normalises with ImageNet mean/std instead of Lite0's (x·255−127)/128 (irrelevant "
                         "to timing).")
        if c:
            lines.append("- × floor: ms/step over max(3 × forward FLOPs / matmul rate, bytes / copy "
                         "bandwidth) of diffparam's own step (also for lucent's rows); it leaves out launch "
                         "overhead, elementwise work, FFT, transforms and Adam, so small batches sit far "
                         "above it.")
        if any(r.variant.endswith("*") for r in self.runs):
            lines.append("- *: render() did not accept every option of the variant (see the JSON notes).")
        lines += [f"- skipped: {s}" for s in self.skipped]
        lines += [f"- {r.network} {r.size}px B={r.batch} {r.variant}: {r.status} {r.note[:160]}"
                  for r in self.runs if r.status != "ok"]
        return "\n".join(lines)


def _ints(text: str) -> list[int]:
    """A comma-separated list of whole numbers (argparse type)."""
    return [int(x) for x in text.split(",") if x.strip()]


def _variants(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown variants {unknown}: use {', '.join(VARIANTS)}")
    return names


def main() -> None:
    """Parse the flags and run the sections asked for."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cuda or cpu")
    p.add_argument("--steps", type=int, default=512)
    p.add_argument("--warmup", type=int, default=5, help="steps of the untimed warm-up render")
    p.add_argument("--repeats", type=int, default=1, help="timed renders per row (the median is shown)")
    p.add_argument("--sizes", type=_ints, default=[128, 224], help="Lite0 image sizes, comma-separated")
    p.add_argument("--batches", type=_ints, default=[1, 8, 64, 256], help="Lite0 batch sizes")
    p.add_argument("--variants", type=_variants, default=_variants(DEFAULT_VARIANTS),
                   help=f"Lite0 variants, comma-separated, of: {', '.join(VARIANTS)}")
    p.add_argument("--skip-lucent", action="store_true")
    p.add_argument("--lucent-max-batch", type=int, default=64, help="no lucent run above this batch")
    p.add_argument("--lucent-max-pixels", type=int, default=64 * 128**2,
                   help="no lucent run above this batch × size² (default: batch 64 at 128 px, 8 at 224)")
    p.add_argument("--lucent-max-seconds", type=float, default=45.0,
                   help="skip a lucent run whose warm-up predicts more than this")
    p.add_argument("--skip-torchvision", action="store_true")
    p.add_argument("--skip-cpu", action="store_true")
    p.add_argument("--cpu-steps", type=int, default=64)
    p.add_argument("--budget-seconds", type=float, default=400.0,
                   help="start no render after this many seconds; the rest is recorded as skipped")
    p.add_argument("--out", default="render_speed.json")
    args = p.parse_args()
    bench = Bench(args)
    print(f"device {bench.meta['device']}; render() accepts {bench.meta['render_accepts']}", flush=True)
    if bench.dev.type == "cuda":
        bench.ceilings = measure_ceilings(bench.dev)
        print(f"ceilings: {bench.ceilings}", flush=True)
    else:
        bench.skip("ceilings and floors: GPU only")
    if args.skip_lucent:
        bench.skip("lucent: --skip-lucent")
    bench.lite0()
    if args.skip_torchvision:
        bench.skip("torchvision section: --skip-torchvision")
    else:
        bench.torchvision()
    if args.skip_cpu:
        bench.skip("CPU row: --skip-cpu")
    else:
        bench.cpu()
    bench.finish()


if __name__ == "__main__":
    main()
