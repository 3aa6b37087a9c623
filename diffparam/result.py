"""`Result`: what every render and recipe returns, with one way to save it.

Saving policy, the same everywhere: a call computes and returns a `Result`; `result.save(out)`
writes it (each file atomically) and lists what it wrote in `result.files`. The only files a
call writes by itself are streams it was given a path for (a video filmed during training, an
atlas folder written batch by batch so it can resume), because they cannot wait in memory; those
are listed in `result.files` too.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from torch import Tensor

from diffparam import deprecation
from diffparam.errors import UserError
from diffparam.io import save_image, save_images

Writer = Callable[..., dict[str, Path]]
"""How a result is saved: (result, out, **options) → the files written, by role."""


def write_images(result: Result, out: Path, separate: bool = False,
                 names: list[str] | None = None) -> dict[str, Path]:
    """The images as PNG: a batch as one grid at `out`; with `separate`, `STEM_i.png` each; with
    `names`, `out/NAME.png` each (`out` is then a folder)."""
    if names is not None:
        if len(names) != len(result.images):
            raise UserError(f"{len(names)} names for {len(result.images)} images: give one name each")
        return {name: save_image(img, out / f"{name}.png") for name, img in zip(names, result.images,
                                                                                 strict=True)}
    paths = save_images(result.images, out, separate=separate)
    return {"image" if len(paths) == 1 else f"image_{i}": p for i, p in enumerate(paths)}


_RENAMED: dict[str, tuple[str, Callable[[Result], Any]]] = {
    "image": ("Result.images", lambda r: r.images),
    "frames": ("Result.snapshots", lambda r: r.snapshots),
    "result": ("the Result itself", lambda r: r),
    "cppn": ("Result.param", lambda r: r.param),
    "video": ('Result.files["video"]', lambda r: r.files.get("video")),
    "path": ('Result.files["animation"]', lambda r: r.files.get("animation")),
}
"""Attributes of the per-recipe result types this class replaced."""


@dataclass
class Result:
    """The outcome of a render or a recipe.

    `images` (B,C,H,W) in [0,1] on the CPU are the pictures made (a texture for the 3D recipes;
    none where the pictures are files, as an atlas's); `history` the loss per step; `snapshots`
    the images at chosen steps; `objective` the objective's name; `param` the parameterization
    optimised (a `CPPN` can render itself at any size, a `TextureImage` holds its mesh);
    `seconds` the wall time of the work; `metrics` the numbers the recipe measured (style loss,
    adjacent-frame change, …); `extras` anything else it made (a mesh, an atlas manifest); `files`
    every file written so far, by role. Metrics and extras also read as attributes
    (`result.style_loss`).
    """

    images: Tensor
    history: list[float] = field(default_factory=list)
    snapshots: dict[int, Tensor] = field(default_factory=dict)
    objective: str = ""
    param: Any = None
    seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    writer: Writer = field(default=write_images, repr=False)

    def save(self, out: str | os.PathLike, **options: Any) -> list[Path]:
        """Write the result to `out` (a file or a folder, as the recipe's writer says); returns the
        paths written, which are also added to `files`. Options go to the writer (for images:
        `separate`, `names`)."""
        try:
            inspect.signature(self.writer).bind(self, out, **options)
        except TypeError:
            takes = [p for p in inspect.signature(self.writer).parameters][2:]
            raise UserError(f"this result's save() takes {', '.join(takes) or 'no options'}, got "
                            f"{', '.join(options)}") from None
        written = self.writer(self, Path(out), **options)
        self.files.update(written)
        return list(written.values())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in _FIELD_NAMES:
            raise AttributeError(name)
        for table in (self.__dict__.get("metrics", {}), self.__dict__.get("extras", {})):
            if name in table:
                return table[name]
        if name in _RENAMED:
            new, get = _RENAMED[name]
            deprecation.warn(f"Result.{name}", new)
            return get(self)
        raise AttributeError(f"this Result has no {name!r}: its metrics are {sorted(self.metrics)}, its "
                             f"extras {sorted(self.extras)}")

    def __getitem__(self, key: str) -> Any:
        """Deprecated: `atlas()` returned its manifest; read `result.manifest[key]`."""
        if "manifest" not in self.extras:
            raise TypeError("'Result' object is not subscriptable")
        deprecation.warn("atlas(...)[key]", "atlas(...).manifest[key]")
        return self.extras["manifest"][key]

    def get(self, key: str, default: Any = None) -> Any:
        """Deprecated: `atlas()` returned its manifest; read `result.manifest.get(key)`."""
        if "manifest" not in self.extras:
            raise AttributeError("this Result has no 'get'")
        deprecation.warn("atlas(...).get(key)", "atlas(...).manifest.get(key)")
        return self.extras["manifest"].get(key, default)


_FIELD_NAMES = frozenset(f.name for f in fields(Result))
