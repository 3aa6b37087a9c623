"""The `Parameterization` base class: a module whose forward() is an image batch in [0, 1]."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

from diffparam import deprecation
from diffparam.checks import positive_int
from diffparam.errors import UserError


def generator_device(generator: torch.Generator | None) -> torch.device | None:
    """Where initial values are drawn: the generator's device, or the default (None) without one."""
    return None if generator is None else generator.device


class Parameterization(nn.Module, ABC):
    """An image batch as a function of trainable parameters; the optimiser updates `parameters()`.

    Subclasses set up their parameters and implement `forward()` returning (B, C, H, W) in [0, 1].
    """

    default_lr: float = 0.05
    """The Adam learning rate that suits this parameterization (render's default)."""

    graph_safe: bool = True
    """Whether forward() may be captured in a CUDA graph: no host synchronisation, no copies from the
    host. `render` replays a captured step only when every piece of the pipeline says so."""

    copies: int = 1
    """With k copies, images i and i + B/k of the batch are one scene seen together (a view and its
    reference view; an image and the photo it must stay close to): `render` composites them over the
    same random background and its random transforms move them alike."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        """A subclass that still sets the deprecated class attribute `background_copies` gets
        `copies` from it, with a warning."""
        super().__init_subclass__(**kwargs)
        old = cls.__dict__.get("background_copies")
        if old is not None and not isinstance(old, property):
            deprecation.warn(f"{cls.__name__}.background_copies", f"{cls.__name__}.copies")
            cls.copies = old
            del cls.background_copies

    @property
    def background_copies(self) -> int:
        """Deprecated name of `copies`."""
        deprecation.warn("Parameterization.background_copies", "Parameterization.copies")
        return self.copies

    @background_copies.setter
    def background_copies(self, value: int) -> None:
        deprecation.warn("Parameterization.background_copies", "Parameterization.copies")
        self.copies = value

    def __init__(self, height: int, width: int | None, batch: int, channels: int) -> None:
        super().__init__()
        self.height = positive_int("height", height)
        self.width = self.height if width is None else positive_int("width", width)
        self.batch = positive_int("batch", batch)
        self.channels = positive_int("channels", channels)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """The (batch, channels, height, width) shape that forward() returns."""
        return (self.batch, self.channels, self.height, self.width)

    @abstractmethod
    def forward(self) -> Tensor:
        """Render the image batch, (B, C, H, W) with values in [0, 1], differentiably."""

    def work_elements(self) -> int:
        """About how many numbers forward() and its backward hold besides the parameters (for
        `diffparam.memory`): by default eight image batches' worth (spectra, colour mixing, sigmoid)."""
        return 8 * self.batch * self.channels * self.height * self.width

    def logits(self) -> Tensor:
        """The values before the final sigmoid (after colour decorrelation), so forward() is their
        sigmoid; parameterizations are composed by adding these (see `SharedImage`)."""
        raise UserError(
            f"{type(self).__name__} has no logits() (values before its final squash), so it cannot "
            "be composed with others; use FourierImage or PixelImage"
        )

    def extra_repr(self) -> str:
        return (
            f"batch={self.batch}, channels={self.channels}, "
            f"height={self.height}, width={self.width}"
        )


__getattr__ = deprecation.module_getattr(__name__, {
    "non_negative_float": "diffparam.checks:non_negative_float",
})
