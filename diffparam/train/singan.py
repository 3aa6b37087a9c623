"""SinGAN's networks (Shaham et al. 2019), written for this project: per scale, a small fully
convolutional generator that adds detail to the upsampled image of the scale below and a patch critic;
the `Pyramid` of trained generators draws images of any size from noise, or from an image injected at
a scale. A training run is a folder (`RunFiles`) that `load_pyramid` reads.

Images inside the pyramid are in [-1, 1]; `to_image` maps them to the project's [0, 1].
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffparam.errors import UserError, first_line
from diffparam.train.trainer import load_checkpoint

LAYERS = 5
"""3x3 convolutions per network: an 11 px receptive field at each scale, a patch of the image."""
LEAK = 0.2
MAX_WIDTH = 128
KIND = "gan"
"""What `RunFiles.meta` says it is, so that another trainer's file is refused by name."""


def width_at(scale: int, base: int) -> int:
    """Channels of the networks at `scale` (0: coarsest): `base`, doubled every 4 scales, at most 128."""
    return min(base * 2 ** (scale // 4), MAX_WIDTH)


def _convs(channels: int, width: int, out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(LAYERS - 1):
        layers += [nn.Conv2d(channels if i == 0 else width, width, 3, padding=1), nn.LeakyReLU(LEAK)]
    layers.append(nn.Conv2d(width, out, 3, padding=1))
    return nn.Sequential(*layers)


class ScaleGenerator(nn.Module):
    """One scale's generator: up + tanh(convs(up + amplitude x noise)), detail added to `up`."""

    def __init__(self, width: int, channels: int = 3) -> None:
        super().__init__()
        self.width = width
        self.net = _convs(channels, width, channels)

    def forward(self, noisy: Tensor, up: Tensor) -> Tensor:
        """The scale's image: `up` (the scale below, upsampled) plus detail made from `noisy`."""
        return up + torch.tanh(self.net(noisy))


class Critic(nn.Module):
    """One scale's critic (WGAN): a score per patch, (B, 1, H, W); higher means more like the image."""

    def __init__(self, width: int, channels: int = 3) -> None:
        super().__init__()
        self.net = _convs(channels, width, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Patch scores (B, 1, H, W) of images `x` in [-1, 1]."""
        return self.net(x)


def upsample(x: Tensor, shape: Sequence[int]) -> Tensor:
    """`x` resized (bilinear) to `shape` (height, width)."""
    return F.interpolate(x, size=tuple(shape), mode="bilinear", align_corners=False)


def to_image(x: Tensor) -> Tensor:
    """Pyramid output in [-1, 1] → an image batch in [0, 1]."""
    return ((x + 1) / 2).clamp(0, 1)


class Pyramid(nn.Module):
    """Trained generators, coarse to fine, with their noise amplitudes and training shapes."""

    def __init__(self, generators: Sequence[ScaleGenerator], amplitudes: Sequence[float],
                 shapes: Sequence[tuple[int, int]], grey: bool = False) -> None:
        super().__init__()
        self.generators = nn.ModuleList(generators)
        self.amplitudes = [float(a) for a in amplitudes]
        self.shapes = [tuple(s) for s in shapes]
        self.grey = grey
        """Trained on a grey image: outputs are made grey too (the mean of their channels)."""

    @property
    def scales(self) -> int:
        """How many scales the pyramid has."""
        return len(self.generators)

    def shapes_for(self, height: int | None = None, width: int | None = None) -> list[tuple[int, int]]:
        """Each scale's (height, width) for an output of height x width (default: the training size)."""
        top_h, top_w = self.shapes[-1]
        sy, sx = (height or top_h) / top_h, (width or top_w) / top_w
        return [(max(1, round(h * sy)), max(1, round(w * sx))) for h, w in self.shapes]

    def noise(self, batch: int, height: int | None = None, width: int | None = None,
              generator: torch.Generator | None = None, device: torch.device | str | None = None
              ) -> list[Tensor]:
        """Standard normal noise for every scale, for `batch` outputs of height x width."""
        return [torch.randn(batch, 3, h, w, generator=generator, device=device)
                for h, w in self.shapes_for(height, width)]

    def forward(self, noise: Sequence[Tensor], start: int = 0, image: Tensor | None = None) -> Tensor:
        """Outputs in [-1, 1] (B, 3, H, W) from `noise` (one map per scale, `noise(...)`'s shapes).
        From scale `start` up; `image` in [-1, 1], resized to that scale, stands for the scale below."""
        x = image
        for n in range(start, self.scales):
            z = noise[n]
            shape = z.shape[-2:]
            up = torch.zeros_like(z) if x is None else upsample(x, shape)
            x = self.generators[n](up + self.amplitudes[n] * z, up)
        assert x is not None, "a pyramid draws from at least one scale"
        return x.mean(1, keepdim=True).expand_as(x) if self.grey else x


@dataclass(frozen=True)
class RunFiles:
    """Where a training run keeps its files: `meta` (settings, the images at every scale, the
    reconstruction noise) and one `fit` checkpoint per scale."""

    folder: Path

    @property
    def meta(self) -> Path:
        """The run's settings and images."""
        return self.folder / "run.pt"

    def scale(self, n: int) -> Path:
        """Scale `n`'s training checkpoint."""
        return self.folder / f"scale_{n}.pt"


def read_meta(run: str | os.PathLike) -> dict[str, Any]:
    """A run folder's `run.pt`, checked to be a GAN run."""
    files = RunFiles(Path(run))
    if not files.folder.is_dir():
        state = "is a file" if files.folder.exists() else "not found"
        raise UserError(f"GAN run folder {files.folder} {state}: give the --out folder of "
                        "`diffparam gan train`")
    if not files.meta.is_file():
        raise UserError(f"{files.folder} holds no GAN run (no run.pt): give the --out folder of "
                        "`diffparam gan train`")
    try:
        meta = torch.load(files.meta, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise UserError(f"cannot read {files.meta}: {first_line(exc)}") from exc
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise UserError(f"{files.meta} is not a GAN run written by `diffparam gan train`")
    return meta


def load_pyramid(run: str | os.PathLike) -> Pyramid:
    """The trained `Pyramid` of a finished run folder, frozen, in eval mode, on the CPU."""
    meta = read_meta(run)
    files = RunFiles(Path(run))
    steps, generators, amplitudes = meta["settings"]["steps"], [], []
    for n in range(meta["settings"]["scales"]):
        state = load_checkpoint(files.scale(n)) if files.scale(n).exists() else {"step": 0}
        if state["step"] < steps:
            raise UserError(f"{files.folder} is not fully trained (scale {n + 1} of {len(meta['shapes'])} at "
                            f"{state['step']}/{steps} steps): run `diffparam gan train` again to finish it")
        g = ScaleGenerator(state["width"])
        g.load_state_dict(state["modules"]["generator"], assign=True)  # real weights, on a meta device too
        generators.append(g)
        amplitudes.append(state["amplitude"])
    pyramid = Pyramid(generators, amplitudes, meta["shapes"], grey=meta["grey"])
    return pyramid.eval().requires_grad_(False)
