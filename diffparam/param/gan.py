"""A trained GAN as a parameterization (the "GAN prior" of Nguyen et al. 2016, with a generator the
user trained by `diffparam gan train`): the parameters are the pyramid's noise inputs, so whatever an
objective asks for is drawn in the training image's patch statistics. `--param gan:RUN_DIR`."""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from diffparam.errors import UserError
from diffparam.param.base import Parameterization, generator_device
from diffparam.train.singan import Pyramid, load_pyramid, to_image


class GANImage(Parameterization):
    """`batch` images of height x width drawn by a trained `Pyramid` (frozen) from trainable noise.

    Each noise map is rescaled to unit root-mean-square per image before it enters the pyramid, so the
    optimiser moves the noise's pattern, never its strength: the images keep the statistics the GAN
    was trained to make."""

    default_lr = 0.05

    def __init__(self, height: int, width: int | None = None, batch: int = 1, channels: int = 3,
                 generator: torch.Generator | None = None, *, run: str | os.PathLike | Pyramid) -> None:
        super().__init__(height, width, batch, channels)
        if channels != 3:
            raise UserError(f"a gan param makes RGB images, not {channels} channels: use another param")
        self.pyramid = run if isinstance(run, Pyramid) else load_pyramid(run)
        self.pyramid.requires_grad_(False)
        self.noise = nn.ParameterList(self.pyramid.noise(self.batch, self.height, self.width, generator,
                                                         generator_device(generator)))

    def forward(self) -> Tensor:
        """The images the pyramid draws from the noise maps, each rescaled to unit RMS (the statistics
        the GAN was trained on)."""
        unit = [z * z.square().mean((1, 2, 3), keepdim=True).add(1e-8).rsqrt() for z in self.noise]
        return to_image(self.pyramid(unit))

    def work_elements(self) -> int:
        """The pyramid's activations and their gradients: five layers as wide as its widest, per scale."""
        pixels = sum(z[0, 0].numel() for z in self.noise)
        return 2 * self.batch * pixels * max(g.width for g in self.pyramid.generators) * 5
