"""`CPPN`: a compositional pattern-producing network, an MLP from pixel coordinates to colour.

Coordinates are pixel centres; the longer image side spans [-sqrt(3), sqrt(3)] (unit variance) and
the shorter side proportionally less, so the pattern is never stretched and rendering at another
resolution of the same aspect samples the same continuous image more or less finely.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from diffparam import deprecation
from diffparam.checks import choice, int_in, positive_int, real
from diffparam.errors import UserError, first_line
from diffparam.io import atomic_path
from diffparam.param.base import Parameterization, generator_device

ACTIVATIONS = ("composite", "tanh", "relu", "sin")
"""The accepted `activation` names of `CPPN`."""

MAX_HIDDEN, MAX_DEPTH = 4096, 256
"""The widest and deepest CPPN (the article's use 24 units in 8 layers)."""

_COMPOSITE_SCALES = (1 / 0.67, 1 / 0.6)
"""Scales of the composite activation's parts, atan(h) and atan(h)^2 (each near unit variance)."""

_FORMAT = "diffparam.cppn/1"
_CONFIG_KEYS = (
    "height",
    "width",
    "batch",
    "channels",
    "hidden",
    "depth",
    "activation",
    "use_radius",
)


def _coordinates(
    height: int,
    width: int,
    row_start: int,
    row_stop: int,
    use_radius: bool,
    device: torch.device,
    dtype: torch.dtype,
) -> Tensor:
    """Features x, y[, r] (rows*width, 2 or 3) of pixel centres in rows [row_start, row_stop)."""
    extent = math.sqrt(3.0) / max(height, width)
    ys = (torch.arange(row_start, row_stop, device=device, dtype=dtype) * 2 + 1 - height) * extent
    xs = (torch.arange(width, device=device, dtype=dtype) * 2 + 1 - width) * extent
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    features = [x, y, torch.sqrt(x * x + y * y)] if use_radius else [x, y]
    return torch.stack(features, dim=-1).reshape(-1, len(features))


class CPPN(Parameterization):
    """A batch of independent CPPNs (one per image) evaluated together with batched matmuls.

    Weights ~ N(0, 1/fan_in), biases 0, output sigmoid. Parameters are created on the generator's
    device (the default device without one); `load` returns the network on the CPU.
    """

    default_lr = 0.005
    """Measured: lr 0.05 diverges on EfficientNet-Lite0 (activation 0.9x photos), 0.005 gives 7.4x."""

    @deprecation.renames(layers="depth")
    def __init__(
        self,
        height: int,
        width: int | None = None,
        batch: int = 1,
        channels: int = 3,
        hidden: int = 24,
        depth: int = 8,
        activation: str = "composite",
        use_radius: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(height, width, batch, channels)
        self.hidden = int_in("hidden", hidden, 1, MAX_HIDDEN)
        self.depth = int_in("depth", depth, 1, MAX_DEPTH)
        self.activation = choice("CPPN activation", activation, ACTIVATIONS)
        self.use_radius = bool(use_radius)
        device = generator_device(generator)
        act_width = self.hidden * (2 if activation == "composite" else 1)
        fan_ins = [3 if self.use_radius else 2] + [act_width] * self.depth
        fan_outs = [self.hidden] * self.depth + [self.channels]
        self.weights = nn.ParameterList(
            nn.Parameter(
                torch.randn((self.batch, n_in, n_out), generator=generator, device=device)
                * math.sqrt(1.0 / n_in)
            )
            for n_in, n_out in zip(fan_ins, fan_outs, strict=True)
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.zeros((self.batch, 1, n_out), device=device)) for n_out in fan_outs
        )

    @property
    def layers(self) -> int:
        """Deprecated name of `depth`."""
        deprecation.warn("CPPN.layers", "CPPN.depth")
        return self.depth

    def work_elements(self) -> int:
        """Every hidden layer's activations (two parts for the composite activation), kept for
        backward and matched by their gradients."""
        parts = 3 if self.activation == "composite" else 2
        return 2 * self.batch * self.height * self.width * (self.hidden * self.depth * parts + self.channels)

    def config(self) -> dict[str, object]:
        """The constructor arguments (except the generator) that rebuild this network's shape."""
        return {key: getattr(self, key) for key in _CONFIG_KEYS}

    def _activate(self, h: Tensor) -> list[Tensor]:
        """The activation of `h` as parts whose concatenation (last dim) feeds the next layer.

        Composite is [atan(h) / 0.67, atan(h)^2 / 0.6]; its two parts stay separate and their
        scales are folded into the next layer's weights (`_COMPOSITE_SCALES`): no concatenation
        and two fewer passes over memory, which makes large renders about 1.6x faster.
        """
        if self.activation == "composite":
            a = torch.atan(h)
            return [a, a * a]
        if self.activation == "tanh":
            return [torch.tanh(h)]
        if self.activation == "relu":
            return [torch.relu(h)]
        return [torch.sin(h)]

    def _evaluate_rows(self, height: int, width: int, row_start: int, row_stop: int) -> Tensor:
        """Colours (B, C, rows, width) of rows [row_start, row_stop) of a height x width render."""
        first = self.weights[0]
        coords = _coordinates(
            height, width, row_start, row_stop, self.use_radius, first.device, first.dtype
        )
        parts = [coords.expand(self.batch, *coords.shape)]
        scales: tuple[float, ...] = (1.0,)
        hidden_scales = _COMPOSITE_SCALES if self.activation == "composite" else (1.0,)
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            h, offset = bias, 0
            for part, scale in zip(parts, scales, strict=True):
                rows = weight[:, offset : offset + part.shape[-1]]
                h = torch.baddbmm(h, part, rows if scale == 1.0 else rows * scale)
                offset += part.shape[-1]
            if i == last:
                h = torch.sigmoid(h)
            else:
                parts, scales = self._activate(h), hidden_scales
        rows = row_stop - row_start
        return h.transpose(1, 2).reshape(self.batch, self.channels, rows, width)

    def forward(self) -> Tensor:
        """The image batch (B, C, H, W) in [0, 1] at the configured size, with gradients."""
        return self._evaluate_rows(self.height, self.width, 0, self.height)

    @torch.no_grad()
    def render(self, height: int, width: int | None = None, chunk_pixels: int | None = None) -> Tensor:
        """Evaluate at any resolution without gradients, `chunk_pixels` pixels (all images) at once.

        Memory beyond the (B, C, height, width) result stays bounded by the chunk size (see
        `render_rows` for the default).
        """
        width = height if width is None else width
        first = self.weights[0]
        out = torch.empty(
            (self.batch, self.channels, positive_int("height", height), positive_int("width", width)),
            device=first.device,
            dtype=first.dtype,
        )
        for start, colours in self.render_rows(height, width, chunk_pixels):
            out[:, :, start : start + colours.shape[2]] = colours
        return out

    def render_rows(
        self, height: int, width: int | None = None, chunk_pixels: int | None = None
    ) -> Iterator[tuple[int, Tensor]]:
        """Yield (first row, colours (B, C, rows, width)) of a height x width render, top to bottom.

        No gradients; each chunk holds about `chunk_pixels` pixels of all images, so a caller that
        consumes chunks as they come (e.g. into a uint8 array) never holds the float image.
        Default: 2^15 on the CPU (measured at 1024 px: as fast as 2^17, with 41 MB of scratch
        memory instead of 98; much smaller chunks stall when other processes share the cores),
        2^20 on a GPU (fewer kernel launches).
        """
        height = positive_int("height", height)
        width = height if width is None else positive_int("width", width)
        if chunk_pixels is None:
            chunk_pixels = 1 << 15 if self.weights[0].device.type == "cpu" else 1 << 20
        chunk_pixels = positive_int("chunk_pixels", chunk_pixels)
        rows = max(1, chunk_pixels // (width * self.batch))
        for start in range(0, height, rows):
            with torch.no_grad():
                colours = self._evaluate_rows(height, width, start, min(height, start + rows))
            yield start, colours

    def check_same_architecture(self, other: object) -> None:
        """Raise a UserError unless `other` is a CPPN that differs from this one at most in size."""
        if not isinstance(other, CPPN):
            raise UserError(f"can only interpolate between two CPPNs, got {type(other).__name__}")
        mine, theirs = self.config(), other.config()
        differ = [k for k in _CONFIG_KEYS if k not in ("height", "width") and mine[k] != theirs[k]]
        if differ:
            detail = ", ".join(f"{k} {mine[k]} vs {theirs[k]}" for k in differ)
            raise UserError(f"cannot morph CPPNs of different architectures: {detail}")

    def interpolate(self, other: CPPN, t: float) -> CPPN:
        """A new CPPN whose weights are (1 - t) * self + t * other: the basis of a morph.

        Both networks must share their architecture (batch, channels, hidden, depth, activation,
        use_radius); the result takes this network's size and device and has no gradient history.
        """
        self.check_same_architecture(other)
        mine = self.config()
        t = real("interpolation position", t)
        # A private generator: the (overwritten) initial draw leaves the global RNG alone.
        first = self.weights[0]
        mixed = CPPN(**mine, generator=torch.Generator(first.device)).to(first.dtype)
        with torch.no_grad():
            for target, a, b in zip(mixed.parameters(), self.parameters(), other.parameters(), strict=True):
                target.copy_(torch.lerp(a, b.to(a.device, a.dtype), t))
        return mixed

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write config and weights to `path` atomically (temp file in its folder, then rename)."""
        payload = {
            "format": _FORMAT,
            "config": self.config(),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
        }
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CPPN:
        """Rebuild a CPPN (on the CPU) from a file written by `save`; bad files raise UserError."""
        path = os.fspath(path)
        if os.path.isdir(path):
            raise UserError(f"cannot read CPPN file {path}: it is a folder")
        if not os.path.isfile(path):
            raise UserError(f"CPPN file not found: {path}")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except PermissionError as error:
            raise UserError(f"cannot read CPPN file {path}: permission denied") from error
        except OSError as error:
            raise UserError(f"cannot read CPPN file {path}: {type(error).__name__}: {first_line(error)}") \
                from error
        except Exception as error:  # unpickling errors of every kind: not a file torch.save wrote
            raise UserError(f"{path} is not a CPPN file written by CPPN.save") from error
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise UserError(f"{path} is not a CPPN file written by CPPN.save")
        config, state = payload.get("config"), payload.get("state_dict")
        if not isinstance(config, dict) or not isinstance(state, dict):
            raise UserError(f"{path} is a damaged CPPN file: config or weights missing")
        if "layers" in config and "depth" not in config:  # written before 'depth' was the name
            config = {**config, "depth": config["layers"]}
        missing = [key for key in _CONFIG_KEYS if key not in config]
        if missing:
            raise UserError(f"{path} is a damaged CPPN file: config lacks {', '.join(missing)}")
        bad = [k for k, v in state.items()
               if not isinstance(v, torch.Tensor) or not bool(torch.isfinite(v).all())]
        if bad:
            raise UserError(f"{path} is a damaged CPPN file: {bad[0]} holds NaN or infinite weights")
        try:
            model = cls(**{key: config[key] for key in _CONFIG_KEYS})
        except (UserError, TypeError) as error:
            raise UserError(f"{path} is a damaged CPPN file: {first_line(error)}") from error
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise UserError(
                f"{path} is a damaged CPPN file: weights do not fit its config "
                f"({type(error).__name__}: {first_line(error)})"
            ) from error
        return model
