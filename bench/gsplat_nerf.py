"""3D Gaussian splatting with gsplat on the same scenes as bench/nerf.py (issue 14's side-by-side).

Needs CUDA and `pip install gsplat==1.5.3` (it compiles its CUDA kernels on first use; set
TORCH_EXTENSIONS_DIR to keep them). Per scene (a folder written by `diffparam nerf scene`, the same
one bench/nerf.py fits): --points Gaussians start at random (--init says where; the
scenes have no structure-from-motion points), and train on the training views composited over white
with gsplat's `DefaultStrategy` (densification, pruning, opacity resets) and the loss of Kerbl et
al. 2023: 0.8 L1 + 0.2 (1 - SSIM), one view per step, spherical harmonics raised one degree every
1000 steps up to 3. A short calibration run times a step; a fresh run then takes the steps that fit
in --budget seconds, with densification stopping at half of them. Held-out PSNR and SSIM use the
same functions, views and white background as `fit_nerf`'s metrics.json; an --render-size view is
timed (median of 5).

  python bench/gsplat_nerf.py --scenes knot,torus,orrery,sphere --work /tmp/nerf_bench --out gsplat.json
  (--init gsplat: gsplat's own random start, far worse on these scenes; BENCHMARKS.md)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from gsplat import DefaultStrategy, rasterization

from diffparam.recipes.nerf import flatten, make_scene, psnr, ssim
from diffparam.three_d.posed import OPENCV_TO_OPENGL, PosedViews, load_posed


def viewmats(views: PosedViews, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """World-to-camera matrices (N,4,4) in OpenCV's convention and intrinsic matrices (N,3,3)."""
    w2c = torch.linalg.inv(views.c2w.double() @ OPENCV_TO_OPENGL).float()  # the flip is its own inverse
    k = torch.zeros(len(views), 3, 3)
    k[:, 0, 0], k[:, 1, 1] = views.intrinsics[:, 0], views.intrinsics[:, 1]
    k[:, 0, 2], k[:, 1, 2], k[:, 2, 2] = views.intrinsics[:, 2], views.intrinsics[:, 3], 1.0
    return w2c.to(device), k.to(device)


def _gauss_window(size: int = 11, sigma: float = 1.5, device: str = "cuda") -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=torch.float32) - size // 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(3, 1, size, size).contiguous()


def ssim_loss(a: torch.Tensor, b: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """1 - SSIM of image batches (N,3,H,W), differentiable (Gaussian window, as in 3DGS)."""
    pad = window.shape[-1] // 2
    mu_a, mu_b = (F.conv2d(x, window, padding=pad, groups=3) for x in (a, b))
    var_a = F.conv2d(a * a, window, padding=pad, groups=3) - mu_a ** 2
    var_b = F.conv2d(b * b, window, padding=pad, groups=3) - mu_b ** 2
    cov = F.conv2d(a * b, window, padding=pad, groups=3) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return 1 - s.mean()


def knn_scale(points: torch.Tensor, k: int = 3, chunk: int = 8192) -> torch.Tensor:
    """Each point's RMS distance to its `k` nearest neighbours (gsplat's initial Gaussian size)."""
    out = []
    for part in points.split(chunk):
        d2 = torch.cdist(part, points).pow(2)
        out.append(d2.topk(k + 1, largest=False).values[:, 1:].mean(-1).sqrt())
    return torch.cat(out)


INITS = {"gsplat": "gsplat's simple_trainer (`init_type=\"random\"`): a cube of half side 3 x the scene "
                   "scale, random colours",
         "kerbl": "Kerbl et al.'s synthetic scenes: a cube of half side 1.3, grey"}


def init_splats(n: int, scene_scale: float, device: str, seed: int, init: str = "kerbl"
                ) -> tuple[torch.nn.ParameterDict, dict]:
    """`n` random Gaussians placed and coloured as `INITS[init]` says, sized by their nearest neighbours,
    opacity 0.1, with the learning rates of gsplat's trainer."""
    g = torch.Generator().manual_seed(seed)
    half = 3 * scene_scale if init == "gsplat" else 1.3
    means = ((torch.rand(n, 3, generator=g) * 2 - 1) * half).to(device)
    colours = torch.rand(n, 1, 3, generator=g) if init == "gsplat" else torch.full((n, 1, 3), 0.5)
    params = torch.nn.ParameterDict({
        "means": torch.nn.Parameter(means),
        "scales": torch.nn.Parameter(torch.log(knn_scale(means))[:, None].repeat(1, 3)),
        "quats": torch.nn.Parameter(torch.rand(n, 4, generator=g).to(device)),
        "opacities": torch.nn.Parameter(torch.logit(torch.full((n,), 0.1, device=device))),
        "sh0": torch.nn.Parameter(((colours - 0.5) / 0.28209479).to(device)),
        "shN": torch.nn.Parameter(torch.zeros(n, 15, 3, device=device)),
    })
    lrs = {"means": 1.6e-4 * scene_scale, "scales": 5e-3, "quats": 1e-3, "opacities": 5e-2,
           "sh0": 2.5e-3, "shN": 2.5e-3 / 20}
    optimizers = {k: torch.optim.Adam([{"params": params[k], "lr": lr, "name": k}], eps=1e-15)
                  for k, lr in lrs.items()}
    return params, optimizers


def render(params: torch.nn.ParameterDict, w2c: torch.Tensor, k: torch.Tensor, width: int, height: int,
           sh_degree: int) -> tuple[torch.Tensor, dict]:
    """RGB (N,3,H,W) over white of cameras (w2c, k), and gsplat's info for the strategy."""
    colors = torch.cat([params["sh0"], params["shN"]], 1)
    image, alpha, info = rasterization(
        means=params["means"], quats=params["quats"], scales=torch.exp(params["scales"]),
        opacities=torch.sigmoid(params["opacities"]), colors=colors, viewmats=w2c, Ks=k,
        width=width, height=height, sh_degree=sh_degree, packed=False)
    return (image + (1 - alpha)).permute(0, 3, 1, 2).clamp(0, 1), info


def train(data: Path, steps: int, device: str, points: int, seed: int, init: str = "kerbl"
          ) -> tuple[torch.nn.ParameterDict, float]:
    """Train Gaussians for `steps` on the scene's training views; returns them and the training time."""
    torch.manual_seed(seed)
    views = load_posed(data, "train")
    images = flatten(views.images, 1.0).to(device)
    w2c, k = viewmats(views, device)
    centres = views.c2w[:, :3, 3]
    scene_scale = float((centres - centres.mean(0)).norm(dim=1).max()) * 1.1
    params, optimizers = init_splats(points, scene_scale, device, seed, init)
    strategy = DefaultStrategy(refine_start_iter=min(500, steps // 4), refine_stop_iter=steps // 2,
                               reset_every=3000, refine_every=100, verbose=False)
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale=scene_scale)
    decay = torch.optim.lr_scheduler.ExponentialLR(optimizers["means"], gamma=0.01 ** (1.0 / steps))
    window = _gauss_window(device=device)
    order = torch.Generator().manual_seed(seed)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for step in range(steps):
        i = int(torch.randint(len(views), (1,), generator=order))
        made, info = render(params, w2c[i:i + 1], k[i:i + 1], views.width, views.height, min(3, step // 1000))
        truth = images[i:i + 1]
        loss = 0.8 * (made - truth).abs().mean() + 0.2 * ssim_loss(made, truth, window)
        strategy.step_pre_backward(params, optimizers, state, step, info)
        loss.backward()
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        decay.step()
        strategy.step_post_backward(params, optimizers, state, step, info, packed=False)
    torch.cuda.synchronize()
    return params, time.perf_counter() - start


@torch.no_grad()
def evaluate(params: torch.nn.ParameterDict, data: Path, device: str, render_size: int) -> dict:
    """Held-out PSNR/SSIM over white (as fit_nerf measures), and the median time of one render_size view."""
    held_out = load_posed(data, "test")
    w2c, k = viewmats(held_out, device)
    made = torch.cat([render(params, w2c[i:i + 1], k[i:i + 1], held_out.width, held_out.height, 3)[0]
                      for i in range(len(held_out))]).cpu()
    truth = flatten(held_out.images, 1.0)
    scale = render_size / held_out.width
    big = k.clone()
    big[:, :2] *= scale
    times = []
    for i in range(6):
        torch.cuda.synchronize()
        t = time.perf_counter()
        render(params, w2c[i % len(w2c):i % len(w2c) + 1], big[i % len(w2c):i % len(w2c) + 1], render_size,
               render_size, 3)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return {"psnr": round(psnr(made, truth), 3), "ssim": round(ssim(made, truth), 4),
            "gaussians": len(params["means"]),
            f"render_ms_{render_size}": round(1000 * statistics.median(times[1:]), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", default="knot,torus,orrery,sphere")
    ap.add_argument("--work", default="nerf_bench", help="folder of the scenes (bench/nerf.py's --keep)")
    ap.add_argument("--size", type=int, default=400)
    ap.add_argument("--train-views", type=int, default=50)
    ap.add_argument("--test", type=int, default=20)
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--calibration", type=int, default=1000)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--render-size", type=int, default=800)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", default="kerbl", choices=list(INITS), help="where the Gaussians start")
    ap.add_argument("--out", default="gsplat_bench.json")
    args = ap.parse_args()
    device = "cuda"
    rows = []
    for scene in args.scenes.split(","):
        data = Path(args.work) / scene / "data"
        if not (data / "transforms_train.json").is_file():
            make_scene(data, scene, size=args.size, train=args.train_views, test=args.test, device=device)
        _, seconds = train(data, args.calibration, device, args.points, args.seed, args.init)
        # Later steps are slower (more Gaussians): a 0.8 margin keeps the run inside the budget.
        steps = int(0.8 * args.budget * args.calibration / seconds)
        params, seconds = train(data, steps, device, args.points, args.seed, args.init)
        row = {"scene": scene, "steps": steps, "train_seconds": round(seconds, 1),
               **evaluate(params, data, device, args.render_size)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    mean = {k: round(statistics.mean(r[k] for r in rows), 3) for k in ("psnr", "ssim", "train_seconds")}
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "args": vars(args),
              "date": time.strftime("%Y-%m-%d"), "scenes": rows, "mean": mean}
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(mean))


if __name__ == "__main__":
    main()
