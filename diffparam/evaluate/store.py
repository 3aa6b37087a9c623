"""The photo pool's features kept on disk between runs, so that a command line that prints trust
numbers pays for the photos' pass once per model, not once per command.

A file per model, input size and photo source, named by a fingerprint of everything the features
depend on: the model's name, input size, normalisation and every weight and buffer, and the photos
(scikit-image's version, or each file's name, size and modification time). Anything changed gives a
new name; nothing is ever read that was computed otherwise. Reading or writing may fail (a read-only
home, a damaged file): the features are then computed as if there were no store.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import Tensor

from diffparam.io import REFERENCE_PHOTOS, atomic_path, photo_files
from diffparam.models.base import Model

VERSION = 1
"""Bumped whenever what the pool computes changes (crops, pooling, statistics)."""


def folder() -> Path | None:
    """Where the features are kept: $DIFFPARAM_CACHE, else $XDG_CACHE_HOME/diffparam, else
    ~/.cache/diffparam; None when DIFFPARAM_CACHE is "off"."""
    chosen = os.environ.get("DIFFPARAM_CACHE")
    if chosen == "off":
        return None
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "diffparam"


def _photos_id(photos: str | os.PathLike | None) -> str:
    if photos is None:
        import skimage

        return f"scikit-image {skimage.__version__} {' '.join(REFERENCE_PHOTOS)}"
    files = photo_files(photos)
    return " ".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)


def path_for(model: Model, photos: str | os.PathLike | None) -> Path | None:
    """The file that holds `model`'s photo features for `photos` (None: no store)."""
    where = folder()
    if where is None:
        return None
    digest = hashlib.sha256()
    digest.update(f"{VERSION} {model.name} {model.input_size} {_photos_id(photos)}".encode())
    for t in (model.mean.value, model.std.value, *model.module.state_dict().values()):
        digest.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in model.name)
    return where / "photo-features" / f"{name}-{model.input_size}-{digest.hexdigest()[:24]}.pt"


def load(path: Path | None) -> dict[str, object]:
    """What was stored at `path` (empty when nothing usable is there)."""
    if path is None or not path.is_file():
        return {}
    try:
        found = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a damaged or foreign file is as good as none
        return {}
    return found if isinstance(found, dict) else {}


def save(path: Path | None, features: dict[str, dict[str, Tensor] | Tensor | None]) -> None:
    """Store `features` at `path`, atomically; a failure leaves the store as it was."""
    if path is None:
        return
    try:
        with atomic_path(path) as tmp:
            torch.save(features, tmp)
    except Exception:  # noqa: BLE001 - the store only saves time; the work is done either way
        return
