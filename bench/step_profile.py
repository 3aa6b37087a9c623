"""Where a render step's GPU time goes: kernel time per step by kind, for one configuration.

Runs `render` eagerly (no CUDA graph, so the profiler sees every kernel) under torch.profiler after
an untimed warm-up, then sums CUDA kernel time per step into kinds (convolution, depthwise
convolution, elementwise, reduction, FFT, grid sampling, Adam, copies) and lists the top kernels.
Launch gaps are not counted: the sum is the GPU's busy time, what a CUDA graph cannot remove.

GPU:  python bench/step_profile.py --batch 64 --size 128 --variants "fp32,bf16,bf16 compiled"
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from diffparam import objectives as O
from diffparam.models import load_model
from diffparam.render import render

KINDS = (  # first match wins; kernel names differ between cuDNN, cuBLAS, ATen and Triton
    ("adam", r"adam|multi_tensor"),
    ("fft", r"fft|regular_fft|vector_fft"),
    ("grid sampling", r"grid_sampler|upsample|interp"),
    ("depthwise conv", r"depthwise|dw_|conv_depthwise|dgrad2d_grouped|grouped"),
    ("conv / matmul", r"conv|gemm|xmma|cutlass|implicit|wgrad|dgrad|fprop|sm\d\d_"),
    ("triton (compiled)", r"^triton_"),
    ("reduction", r"reduce|sum|norm|mean"),
    ("copy / layout", r"copy|transpose|nchw|nhwc|memcpy|memset|cat"),
    ("elementwise", r"elementwise|vectorized|unrolled|clamp|threshold|hardtanh|sigmoid|mul|add"),
)
VARIANTS = {
    "fp32": dict(),
    "bf16": dict(precision="bf16"),
    "fp32 compiled": dict(compile=True),
    "bf16 compiled": dict(precision="bf16", compile=True),
    "bf16 NCHW": dict(precision="bf16", channels_last=False),
}


def kind_of(name: str) -> str:
    """The kind of a CUDA kernel, from its name."""
    low = name.lower()
    for kind, pattern in KINDS:
        if re.search(pattern, low):
            return kind
    return "other"


def profile_variant(model, layer: str, size: int, batch: int, steps: int, options: dict) -> dict:
    """Kernel time per step of `steps` eager render steps with `options`, by kind and by kernel."""
    obj = O.Objective.sum(O.channel(layer, (27 + i) % model.channels(layer), image=i) for i in range(batch))
    run = dict(size=size, batch=batch, device="cuda", progress=False, cuda_graph=False, **options)
    render(model, obj, steps=8, **run)  # warm-up: cuDNN choices, compilation
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        render(model, obj, steps=steps, **run)
        torch.cuda.synchronize()
    per_kernel: dict[str, float] = defaultdict(float)
    for evt in prof.key_averages():
        us = getattr(evt, "device_time_total", None) or getattr(evt, "cuda_time_total", 0.0)
        if us and evt.device_type == torch.autograd.DeviceType.CUDA:
            per_kernel[evt.key] += us / 1e3 / steps
    by_kind: dict[str, float] = defaultdict(float)
    for name, ms in per_kernel.items():
        by_kind[kind_of(name)] += ms
    top = sorted(per_kernel.items(), key=lambda kv: -kv[1])[:25]
    kinds = dict(sorted(by_kind.items(), key=lambda kv: -kv[1]))
    return dict(total_ms=sum(per_kernel.values()), by_kind=kinds,
                top=[dict(kernel=k[:140], ms=v, kind=kind_of(k)) for k, v in top])


def main() -> None:
    """Profile each variant asked for and print a summary; the full figures go to --out."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--layer", default="blocks.10")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--variants", default="fp32,bf16,bf16 compiled", help=f"of: {', '.join(VARIANTS)}")
    p.add_argument("--out", default="step_profile.json")
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("step_profile needs a CUDA GPU")
    model = load_model("efficientnet_lite0")
    results = {}
    for name in [v.strip() for v in args.variants.split(",")]:
        res = profile_variant(model, args.layer, args.size, args.batch, args.steps, VARIANTS[name])
        results[name] = res
        print(f"\n## {name}: {res['total_ms']:.2f} ms of kernels per step "
              f"(Lite0 {args.layer}, {args.size} px, batch {args.batch})")
        for kind, ms in res["by_kind"].items():
            print(f"  {kind:18s} {ms:7.3f} ms  {100 * ms / res['total_ms']:5.1f}%")
        for row in res["top"][:12]:
            print(f"    {row['ms']:7.3f} ms  [{row['kind']}] {row['kernel'][:100]}")
        with open(args.out, "w") as f:
            json.dump(dict(args=vars(args), gpu=torch.cuda.get_device_name(), torch=torch.__version__,
                           results=results), f, indent=1)


if __name__ == "__main__":
    main()
