"""A GAN learned from one image, or from a folder's patches, in the manner of SinGAN (Shaham et al.
2019): a pyramid of small fully convolutional generator/critic pairs trained coarse to fine, each
scale by WGAN-GP plus a reconstruction term, with per-scale noise amplitudes set by how much the
scale below misses. Then: samples of any size, an animation (a random walk in the noise inputs),
paint-to-image and harmonization (an image injected at a middle scale).

The run folder (`--out`) holds the images at every scale and one `train.fit` checkpoint per scale:
the same command run again resumes; other settings are refused. A run stopped between iterations
resumes to what an uninterrupted run makes; a Ctrl-C in the middle of one keeps that iteration's
critic updates, so the run goes on correctly but not bit for bit. A trained `Pyramid` given to a call
is moved to its device and left there, as `render` does with a model.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from diffparam.checks import int_in, non_negative_float, positive_float, real
from diffparam.errors import UserError
from diffparam.io import (
    AnimationWriter,
    ImageSource,
    atomic_path,
    read_image,
    reference_photos,
    save_image,
)
from diffparam.io import check_run_folder as io_check_run_folder
from diffparam.render import resolve_device
from diffparam.result import Result
from diffparam.train import fit
from diffparam.train.singan import (
    KIND,
    Critic,
    Pyramid,
    RunFiles,
    ScaleGenerator,
    load_pyramid,
    read_meta,
    to_image,
    upsample,
    width_at,
)

SCALES, SIZE, MIN_SIZE = 8, 250, 25
"""Scales of the pyramid, the finest image's longer side and the coarsest's shorter side (px)."""
STEPS = 1000
"""Training iterations per scale (SinGAN: 2000), each `CRITIC_STEPS` critic and `GENERATOR_STEPS`
generator updates."""
CRITIC_STEPS = GENERATOR_STEPS = 3
LR, BETAS, LR_DROP = 5e-4, (0.5, 0.999), 0.8
"""Adam's rate and betas; the rate is cut tenfold after this share of each scale's steps."""
WIDTH = 32
"""Channels at the coarsest scales, doubled every 4 scales (`width_at`)."""
REC_WEIGHT, GP_WEIGHT, AMPLITUDE = 10.0, 0.1, 0.1
"""Reconstruction weight, gradient-penalty weight, and noise amplitude per unit of the RMS error of
the scale below's reconstruction."""
BATCH = 1
MOST_PIXELS = 2**28
"""Pixels of all the samples of one `gan_samples` call at most (they are returned in memory: 3 GiB)."""


def _checked(name: str, img: Tensor, size: int, min_size: int) -> Tensor:
    h, w = img.shape[-2:]
    if min(h, w) < min_size:
        raise UserError(f"{name} is {w}x{h} px: too small for a GAN whose coarsest scale is {min_size} px; "
                        f"give an image at least {min_size} px on its shorter side, or a smaller `min_size`")
    if max(h, w) <= size:
        return img
    s = size / max(h, w)
    th, tw = max(1, round(h * s)), max(1, round(w * s))
    if min(th, tw) < min_size:
        raise UserError(f"{name} is {w}x{h} px: with its longer side at {size} px its shorter side is under "
                        f"{min_size} px; give a less elongated image or a larger `size`")
    warnings.warn(f"{name} is {w}x{h} px: training at {tw}x{th} (its longer side at `size`)", RuntimeWarning,
                  stacklevel=3)
    return F.interpolate(img, size=(th, tw), mode="bilinear", align_corners=False, antialias=True)


def _cover_crop(img: Tensor, h: int, w: int) -> Tensor:
    """`img` scaled to cover h x w, then its centre h x w."""
    s = max(h / img.shape[-2], w / img.shape[-1])
    th, tw = max(h, round(img.shape[-2] * s)), max(w, round(img.shape[-1] * s))
    img = F.interpolate(img, size=(th, tw), mode="bilinear", align_corners=False, antialias=True)
    top, left = (th - h) // 2, (tw - w) // 2
    return img[..., top:top + h, left:left + w]


def training_images(source: ImageSource, size: int = SIZE, min_size: int = MIN_SIZE) -> Tensor:
    """What a GAN trains on, (K, 3, H, W) in [0, 1]: one image, or a folder's (each scaled and
    centre-cropped to the first one's shape). Longer side at most `size`: larger images are downscaled
    with a warning; an image under `min_size` px on its shorter side is refused."""
    if isinstance(source, Tensor):
        img = (source[None] if source.dim() == 3 else source).detach().cpu()
        if img.dim() != 4 or img.shape[1] != 3:
            raise UserError("a training image tensor must be (3, H, W) or (K, 3, H, W), got "
                            f"{tuple(source.shape)}")
        return _checked("the image", img.float().clamp(0, 1), size, min_size)
    path = Path(source)
    if not path.is_dir():
        return _checked(str(path), read_image(path), size, min_size)
    photos = reference_photos(path)  # at most io.MOST_PHOTOS of them
    first = _checked(f"the first image of {path}", photos[0], size, min_size)
    h, w = first.shape[-2:]
    return torch.cat([first, *(_cover_crop(p, h, w) for p in photos[1:])])


def scale_shapes(height: int, width: int, scales: int, min_size: int) -> list[tuple[int, int]]:
    """(height, width) at every scale, coarsest first: a geometric series from a shorter side of
    `min_size` to height x width."""
    r = (min_size / min(height, width)) ** (1 / (scales - 1)) if scales > 1 else 1.0
    return [(max(1, round(height * r ** (scales - 1 - n))), max(1, round(width * r ** (scales - 1 - n))))
            for n in range(scales)]


def _fingerprint(images: Tensor) -> str:
    return hashlib.sha256((images * 255).round().to(torch.uint8).numpy().tobytes()).hexdigest()[:16]


def check_run_folder(out: str | os.PathLike) -> Path:
    """`out` if a run can be written there: a new or empty folder, or a GAN run to resume."""
    return io_check_run_folder(out, RunFiles(Path(out)).meta.name, "GAN run")


def _start_run(files: RunFiles, images: Tensor, settings: dict[str, Any]) -> dict[str, Any]:
    """The run's meta: read and checked against `settings` when it exists, else made and written."""
    if files.meta.exists():
        meta = read_meta(files.folder)
        if meta["settings"] != settings:
            changed = sorted(k for k in set(meta["settings"]) | set(settings)
                             if meta["settings"].get(k) != settings.get(k))
            raise UserError(f"{files.folder} was trained with other settings ({', '.join(changed)}): give "
                            "the same ones to resume, or another --out to start afresh")
        return meta
    h, w = images.shape[-2:]
    shapes = scale_shapes(h, w, settings["scales"], settings["min_size"])
    generator = torch.Generator().manual_seed(settings["seed"])
    meta = {"kind": KIND, "settings": settings, "shapes": shapes,
            "grey": bool((images.amax(1) - images.amin(1)).max() < 1 / 255),
            "reals": [F.interpolate(images, size=s, mode="bilinear", align_corners=False, antialias=True)
                      for s in shapes],
            "z_rec": torch.randn(len(images), 3, *shapes[0], generator=generator)}
    with atomic_path(files.meta) as tmp:
        torch.save(meta, tmp)
    return meta


@contextlib.contextmanager
def _tuned_convs(device: torch.device) -> Iterator[None]:
    """cuDNN picks its fastest convolutions for the fixed shapes of a scale; the setting is restored."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = device.type == "cuda" or before
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def _gradient_penalty(critic: Critic, real: Tensor, fake: Tensor, generator: torch.Generator) -> Tensor:
    """WGAN-GP's (|grad critic| - 1)^2 at random mixtures of real and fake images, the norm taken over
    the whole image (SinGAN takes it per pixel: see BENCHMARKS.md, issue 16)."""
    t = torch.rand(len(fake), 1, 1, 1, generator=generator, device=fake.device)
    mix = (t * real + (1 - t) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(mix).sum(), mix, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()


def train_gan(
    images: ImageSource,
    out: str | os.PathLike,
    *,
    scales: int = SCALES,
    size: int = SIZE,
    min_size: int = MIN_SIZE,
    steps: int = STEPS,
    lr: float = LR,
    width: int = WIDTH,
    critic_steps: int = CRITIC_STEPS,
    generator_steps: int = GENERATOR_STEPS,
    rec_weight: float = REC_WEIGHT,
    gp_weight: float = GP_WEIGHT,
    amplitude: float = AMPLITUDE,
    batch: int = BATCH,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    every: int = 100,
) -> Result:
    """Train a SinGAN-style pyramid on `images` (an image file or tensor, or a folder) into the run folder
    `out` (resumed when it holds this run). Returns four samples, the critic's advantage per step
    (`history`: its mean score of the real image minus that of the samples), the `Pyramid` (`param`) and
    per scale the noise amplitude, the reconstruction's RMS error (in [0, 1] units) and the seconds.
    """
    scales = int_in("scales", scales, 1, 16)
    size = int_in("size", size, 8, 4096)
    min_size = int_in("min_size", min_size, 4, size)
    steps = int_in("steps", steps, 1, 1_000_000)
    width = int_in("width", width, 1, 128)
    critic_steps, generator_steps = (int_in(n, v, 1, 100) for n, v in
                                     (("critic_steps", critic_steps), ("generator_steps", generator_steps)))
    batch = int_in("batch", batch, 1, 256)
    lr = positive_float("lr", lr)
    rec_weight = non_negative_float("rec_weight", rec_weight)
    gp_weight = non_negative_float("gp_weight", gp_weight)
    amplitude = positive_float("amplitude", amplitude)
    folder = check_run_folder(out)
    reals_01 = training_images(images, size, min_size)
    dev = resolve_device(device)
    settings = dict(fingerprint=_fingerprint(reals_01), scales=scales, size=size, min_size=min_size,
                    steps=steps, lr=lr, width=width, critic_steps=critic_steps,
                    generator_steps=generator_steps, rec_weight=rec_weight, gp_weight=gp_weight,
                    amplitude=amplitude, batch=batch, seed=seed)
    files = RunFiles(folder)
    meta = _start_run(files, reals_01, settings)
    start = time.perf_counter()
    trained: list[ScaleGenerator] = []
    amplitudes: list[float] = []
    history: list[float] = []
    metrics: dict[str, list[float]] = {"amplitudes": [], "reconstruction": [], "seconds": []}
    rec: Tensor | None = None
    below: tuple[ScaleGenerator, Critic] | None = None
    z_rec = meta["z_rec"].to(dev)
    with _tuned_convs(dev):
        for n in range(scales):
            began = time.perf_counter()
            real = meta["reals"][n].to(dev) * 2 - 1
            rec_up = torch.zeros_like(real) if rec is None else upsample(rec, real.shape[-2:])
            sigma = 1.0 if n == 0 else amplitude * float((real - rec_up).square().mean().sqrt())
            rec_in = rec_up + sigma * z_rec if n == 0 else rec_up
            gen, critic = _networks(n, width, seed, dev, below)
            step = _ScaleStep(gen, critic, Pyramid(trained, amplitudes, meta["shapes"][:n]), real, rec_in,
                               rec_up, sigma, lr, steps, critic_steps, generator_steps, rec_weight, gp_weight,
                               batch, dev)
            history += fit(step, {"generator": gen, "critic": critic},
                           {"generator": step.g_opt, "critic": step.d_opt}, steps, {**settings, "scale": n},
                           checkpoint=files.scale(n), every=every, seed=seed + n, progress=progress,
                           desc=f"gan scale {n + 1}/{scales}",
                           extra=lambda g=gen, s=sigma: {"width": g.width, "amplitude": s, "kind": KIND})
            gen.eval().requires_grad_(False)
            critic.eval().requires_grad_(False)
            with torch.no_grad():
                rec = gen(rec_in, rec_up)
            trained.append(gen)
            amplitudes.append(sigma)
            below = (gen, critic)
            missed = float((rec - real).square().mean().sqrt() / 2)  # in [0, 1] units
            for key, value in (("amplitudes", sigma), ("reconstruction", missed),
                               ("seconds", time.perf_counter() - began)):
                metrics[key].append(value)
    pyramid = Pyramid(trained, amplitudes, meta["shapes"], grey=meta["grey"]).eval()
    with torch.no_grad():
        preview = to_image(pyramid(pyramid.noise(4, generator=torch.Generator(device=dev).manual_seed(seed),
                                                 device=dev))).cpu()
    return Result(preview, history, objective="critic advantage", param=pyramid,
                  seconds=time.perf_counter() - start, metrics=metrics, files={"run": folder})


def _networks(n: int, width: int, seed: int, device: torch.device,
              below: tuple[ScaleGenerator, Critic] | None) -> tuple[ScaleGenerator, Critic]:
    """Scale n's generator and critic, seeded; they start as the scale below's where they have as many
    channels (SinGAN's warm start)."""
    w = width_at(n, width)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 1000 + n)
        gen, critic = ScaleGenerator(w), Critic(w)
    if below is not None and below[0].width == w:
        gen.load_state_dict(below[0].state_dict())
        critic.load_state_dict(below[1].state_dict())
    return gen.to(device), critic.to(device)


class _ScaleStep:
    """One training iteration of one scale (the `train.fit` step): `critic_steps` critic updates, then
    `generator_steps` generator updates, on noise drawn on the device from a seed the run's generator
    gives. Returns the critic's last advantage as a device tensor (no host synchronisation)."""

    def __init__(self, gen: ScaleGenerator, critic: Critic, below: Pyramid, real: Tensor, rec_in: Tensor,
                 rec_up: Tensor, sigma: float, lr: float, steps: int, critic_steps: int, generator_steps: int,
                 rec_weight: float, gp_weight: float, batch: int, device: torch.device) -> None:
        self.gen, self.critic, self.below, self.real = gen, critic, below, real
        self.rec_in, self.rec_up, self.sigma, self.batch = rec_in, rec_up, sigma, batch
        self.lr, self.drop = lr, int(LR_DROP * steps)
        self.counts, self.weights = (critic_steps, generator_steps), (rec_weight, gp_weight)
        fused = device.type == "cuda"  # one kernel per update instead of one per tensor
        self.g_opt = torch.optim.Adam(gen.parameters(), lr=lr, betas=BETAS, fused=fused)
        self.d_opt = torch.optim.Adam(critic.parameters(), lr=lr, betas=BETAS, fused=fused)
        self.noise = torch.Generator(device=device)

    def previous(self, generator: torch.Generator, batch: int) -> Tensor:
        """`batch` random images of the trained scales below, upsampled to this scale (zeros at scale 0)."""
        shape = self.real.shape[-2:]
        if not self.below.scales:
            return self.real.new_zeros(batch, 3, *shape)
        with torch.no_grad():
            made = self.below(self.below.noise(batch, generator=generator, device=self.real.device))
        return upsample(made, shape)

    def _fake(self, up: Tensor) -> Tensor:
        z = torch.randn(up.shape, generator=self.noise, device=up.device)
        return self.gen(up + self.sigma * z, up)

    def __call__(self, i: int, generator: torch.Generator) -> Tensor:
        self.noise.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        for opt in (self.g_opt, self.d_opt):
            for group in opt.param_groups:
                group["lr"] = self.lr * (0.1 if i >= self.drop else 1.0)
        up = self.previous(self.noise, self.batch)
        rec_weight, gp_weight = self.weights
        real = self.real[torch.randint(len(self.real), (self.batch,), generator=self.noise, device=up.device)]
        advantage = up.new_zeros(())
        for _ in range(self.counts[0]):
            with torch.no_grad():
                fake = self._fake(up)
            advantage = self.critic(real).mean() - self.critic(fake).mean()
            loss = -advantage + gp_weight * _gradient_penalty(self.critic, real, fake, self.noise)
            self.d_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.d_opt.step()
        self.critic.requires_grad_(False)
        for _ in range(self.counts[1]):
            rec = self.gen(self.rec_in, self.rec_up)
            loss = -self.critic(self._fake(up)).mean() + rec_weight * (rec - self.real).square().mean()
            self.g_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.g_opt.step()
        self.critic.requires_grad_(True)
        return advantage.detach()



def critic_advantage(pyramid: Pyramid, real: Tensor, steps: int = 100, width: int = WIDTH, batch: int = 4,
                     seed: int = 0, device: str = "auto") -> float:
    """How well a fresh critic tells the real image(s) (K,3,H,W in [0, 1], at the pyramid's finest scale)
    from the pyramid's samples after `steps` WGAN-GP updates: its mean score of the real minus that of
    new samples. Lower: the samples are harder to tell from the image."""
    dev = resolve_device(device)
    pyramid = pyramid.to(dev)
    target = real.to(dev) * 2 - 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        critic = Critic(width).to(dev)
    opt = torch.optim.Adam(critic.parameters(), lr=LR, betas=BETAS)
    generator = torch.Generator(device=dev).manual_seed(seed)

    def samples() -> Tensor:
        with torch.no_grad():
            return pyramid(pyramid.noise(batch, generator=generator, device=dev))

    with _tuned_convs(dev):
        for _ in range(steps):
            fake = samples()
            picks = torch.randint(len(target), (batch,), generator=generator, device=dev)
            loss = critic(fake).mean() - critic(target).mean() + GP_WEIGHT * _gradient_penalty(
                critic, target[picks], fake, generator)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            return float(critic(target).mean() - critic(samples()).mean())


def _output_shape(pyramid: Pyramid, size: int | tuple[int, int] | None) -> tuple[int, int]:
    if size is None:
        return pyramid.shapes[-1]
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, int) and 8 <= s <= 4096 for s in pair):
        raise UserError(f"`size` must be (height, width), each 8..4096 px, got {size!r}")
    return int(pair[0]), int(pair[1])


def _pyramid(run: Pyramid | str | os.PathLike, device: torch.device) -> Pyramid:
    return (run if isinstance(run, Pyramid) else load_pyramid(run)).to(device)


def write_samples(result: Result, out: Path) -> dict[str, Path]:
    """Each sample as `out/sample_I.png` (`out` a folder)."""
    return {f"sample_{i}": save_image(img, out / f"sample_{i}.png") for i, img in enumerate(result.images)}


def gan_samples(run: Pyramid | str | os.PathLike, n: int = 8, size: int | tuple[int, int] | None = None,
                seed: int = 0, device: str = "auto") -> Result:
    """`n` random images from a trained run (its folder or `Pyramid`), of `size` (height, width; default
    the training image's): any aspect ratio, the same detail per pixel as the training image."""
    n = int_in("n", n, 1, 10_000)
    dev = resolve_device(device)
    pyramid = _pyramid(run, dev)
    h, w = _output_shape(pyramid, size)
    if n * h * w > MOST_PIXELS:
        raise UserError(f"{n} samples of {w}x{h} px are {n * h * w * 12 / 2**30:.1f} GiB of images, more "
                        f"than {MOST_PIXELS * 12 / 2**30:.0f} GiB: ask for fewer (`n`) or smaller (`size`)")
    start = time.perf_counter()
    generator = torch.Generator(device=dev).manual_seed(seed)
    with torch.no_grad():
        images = torch.cat([to_image(pyramid(pyramid.noise(min(16, n - i), h, w, generator, dev))).cpu()
                            for i in range(0, n, 16)])
    return Result(images, seconds=time.perf_counter() - start, param=pyramid, writer=write_samples)


def gan_animation(run: str | os.PathLike, out: str | os.PathLike, frames: int = 48, fps: float = 12.0,
                  smoothness: float = 0.95, size: int | tuple[int, int] | None = None, seed: int = 0,
                  device: str = "auto") -> Result:
    """A GIF or MP4 at `out` of a random walk in a trained run's noise inputs: each frame's noise is
    `smoothness` x the last one's plus fresh noise (keeping unit variance), starting at the coarsest
    scale from the noise that reconstructs the training image (finer scales start from fresh noise).
    `result.images` holds the first frame."""
    frames = int_in("frames", frames, 2, 100_000)
    a = real("smoothness", smoothness, 0.0, 0.999)
    dev = resolve_device(device)
    meta, pyramid = read_meta(run), _pyramid(run, dev)
    h, w = _output_shape(pyramid, size)
    generator = torch.Generator(device=dev).manual_seed(seed)
    noise = pyramid.noise(1, h, w, generator, dev)
    if (h, w) == tuple(pyramid.shapes[-1]):
        noise[0] = meta["z_rec"][:1].to(dev)
    start, first = time.perf_counter(), None
    with AnimationWriter(out, fps) as writer, torch.no_grad():
        for _ in range(frames):
            frame = to_image(pyramid(noise))[0].cpu()
            writer.add(frame)
            first = frame[None] if first is None else first
            noise = [a * z + math.sqrt(1 - a * a) * torch.randn(z.shape, generator=generator, device=dev)
                     for z in noise]
    assert first is not None
    return Result(first, seconds=time.perf_counter() - start, param=pyramid,
                  metrics={"frames": writer.count, "fps": writer.fps}, files={"video": writer.path})


def _start_scale(pyramid: Pyramid, start: int | None, default: int) -> int:
    if pyramid.scales < 2:
        raise UserError("injecting an image needs a run of 2 or more scales")
    return int_in("start_scale", default if start is None else start, 1, pyramid.scales - 1)


def _at_training_scale(pyramid: Pyramid, img: Tensor) -> Tensor:
    """`img` resized so that its longer side is the training image's (the detail the pyramid knows)."""
    s = max(pyramid.shapes[-1]) / max(img.shape[-2:])
    shape = (max(8, round(img.shape[-2] * s)), max(8, round(img.shape[-1] * s)))
    return F.interpolate(img, size=shape, mode="bilinear", align_corners=False, antialias=True)


def _inject(pyramid: Pyramid, img: Tensor, start: int, seed: int, dev: torch.device) -> Tensor:
    """The pyramid run from scale `start` on `img` (1, 3, H, W) in [0, 1] at that scale: images in [0, 1]."""
    h, w = img.shape[-2:]
    noise = pyramid.noise(1, h, w, torch.Generator(device=dev).manual_seed(seed), dev)
    below = F.interpolate(img.to(dev) * 2 - 1, size=noise[start].shape[-2:], mode="bilinear",
                          align_corners=False, antialias=True)
    with torch.no_grad():
        return to_image(pyramid(noise, start=start, image=below)).cpu()


def _read(source: ImageSource, what: str) -> Tensor:
    if isinstance(source, Tensor):
        img = source[None] if source.dim() == 3 else source
        if img.dim() != 4 or img.shape[:2] != (1, 3):
            raise UserError(f"{what} must be a (3, H, W) or (1, 3, H, W) tensor, got {tuple(source.shape)}")
        return img.float().clamp(0, 1)
    return read_image(source)


def gan_paint(run: Pyramid | str | os.PathLike, sketch: ImageSource, start_scale: int | None = None,
              seed: int = 0, device: str = "auto") -> Result:
    """Paint-to-image: a rough colour sketch, fed to the pyramid at `start_scale` (default a quarter of
    the way up), comes out with the training image's detail and look, at the training image's scale."""
    dev = resolve_device(device)
    pyramid = _pyramid(run, dev)
    start = _start_scale(pyramid, start_scale, max(1, pyramid.scales // 4))
    img = _at_training_scale(pyramid, _read(sketch, "the sketch"))
    began = time.perf_counter()
    made = _inject(pyramid, img, start, seed, dev)
    return Result(made, seconds=time.perf_counter() - began, param=pyramid,
                  metrics={"start_scale": start})


def gan_harmonize(run: Pyramid | str | os.PathLike, image: ImageSource, mask: ImageSource | None = None,
                  start_scale: int | None = None, seed: int = 0, device: str = "auto") -> Result:
    """Harmonization (and editing): `image` fed to the pyramid at `start_scale` (default half way up) takes
    on the training image's look; with `mask` (white where the pasted object is) only there, blended."""
    dev = resolve_device(device)
    pyramid = _pyramid(run, dev)
    start = _start_scale(pyramid, start_scale, max(1, pyramid.scales // 2))
    img = _at_training_scale(pyramid, _read(image, "the image"))
    began = time.perf_counter()
    made = _inject(pyramid, img, start, seed, dev)
    if mask is not None:
        m = _read(mask, "the mask").mean(1, keepdim=True)
        m = F.interpolate(m, size=img.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
        made = m * made + (1 - m) * img
    return Result(made, seconds=time.perf_counter() - began, param=pyramid,
                  metrics={"start_scale": start})
