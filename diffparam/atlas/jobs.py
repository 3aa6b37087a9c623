"""The atlas's job list: which layers `all` means, the (layer, channel) units and their batches.

A unit is one channel of one layer. Units come in model order (layer by layer, channel by
channel); circuit units (channels of a previous layer that feed a requested unit, for the page's
circuit view) are added when that previous layer was not asked for. Batches are cut from the
whole job list, so they, and each batch's seed, are the same on every resume and for any number
of GPUs or workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from diffparam import deprecation
from diffparam.atlas.circuits import circuit, previous_layer
from diffparam.checks import positive_int
from diffparam.errors import UserError
from diffparam.models.base import Model
from diffparam.models.blocks import block_layers


@dataclass(frozen=True)
class Unit:
    """One channel of one layer, and why it is in the atlas.

    `role` is "unit" (asked for) or "circuit" (a previous layer's channel that feeds an asked-for
    unit, rendered so the page can show the circuit).
    """

    layer: str
    channel: int
    role: str = "unit"

    @property
    def key(self) -> str:
        """`LAYER:C`, the unit's key in the manifest."""
        return f"{self.layer}:{self.channel}"

    @property
    def image(self) -> str:
        """The PNG's path relative to the atlas folder, e.g. `blocks.2/3.png`."""
        return f"{self.layer}/{self.channel}.png"


@dataclass(frozen=True)
class Batch:
    """Units rendered together in one `render` call; `index` (in the whole job list) picks its seed."""

    index: int
    units: tuple[Unit, ...]

    def seed(self, base: int) -> int:
        """The seed of this batch's render: the atlas seed plus the batch's index."""
        return base + self.index


def resolve_layers(model: Model, layers: str | Sequence[str]) -> list[str]:
    """`"all"`, `"L1,L2"` or a list of names → checked layer names in model order, duplicates dropped."""
    names = [s.strip() for s in layers.split(",")] if isinstance(layers, str) else list(layers)
    names = [n for n in names if n]
    if not names:
        raise UserError("no layers given: use `layers` L1,L2,... or `layers` all")
    if names == ["all"]:
        return block_layers(model)
    for name in names:
        model.channels(name)  # checks the name; raises if the layer has no image or vector output
    return sorted(set(names), key=model.layer_order().__getitem__)


def _layer_order(model: Model) -> dict[str, int]:
    """What `layer_order` was (deprecated): `model.layer_order()`."""
    return model.layer_order()


__getattr__ = deprecation.module_getattr(__name__, {"layer_order": "diffparam.atlas.jobs:_layer_order"})


def job_list(model: Model, layers: Sequence[str], circuits: bool = True) -> list[Unit]:
    """Every channel of `layers`, plus (with `circuits`) the inputs of each unit's circuit.

    A circuit input is a channel of the previous layer among the strongest exciting and inhibiting
    weights onto a unit (`circuits.circuit`); it is added, with role `circuit`, only when that
    previous layer is not itself in `layers`.
    """
    units = [Unit(name, c) for name in layers for c in range(model.channels(name))]
    if circuits:
        wanted = set(layers)
        extra: set[tuple[str, int]] = set()
        for name in layers:
            before = previous_layer(model, name)
            if before is None or before in wanted:
                continue
            for c in range(model.channels(name)):
                links = circuit(model, name, c)
                extra.update((link["layer"], int(link["channel"]))
                             for link in [*links["excite"], *links["inhibit"]])
        units += [Unit(name, c, "circuit") for name, c in extra]
    order = model.layer_order()
    return sorted(units, key=lambda u: (order[u.layer], u.channel))


def batches(units: Sequence[Unit], size: int) -> list[Batch]:
    """Cut the job list into batches of `size` units (units of neighbouring layers may share one)."""
    size = positive_int("batch", size)
    return [Batch(i, tuple(units[s:s + size])) for i, s in enumerate(range(0, len(units), size))]
