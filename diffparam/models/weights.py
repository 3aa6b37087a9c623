"""Weight files: reading a state dict a user gives, and checking that it fits a network.

Every way a file can be wrong becomes one UserError that says which: missing, a folder, unreadable,
not a state dict of tensors, integers where the network has floating-point weights, NaN or
infinite values, keys or shapes that do not match.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from diffparam.errors import UserError, first_line


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict in `path` (a `torch.save` of tensors, or of a dict holding one as "state_dict")."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"cannot read weights from {p}: it is a folder")
    if not p.is_file():
        raise UserError(f"weights file not found: {p}")
    try:
        sd = torch.load(p, map_location="cpu", weights_only=True)
    except PermissionError as exc:
        raise UserError(f"cannot read weights from {p}: permission denied") from exc
    except Exception as exc:  # noqa: BLE001 - torch.load fails in many ways on a foreign file
        raise UserError(f"cannot read weights from {p}: not a PyTorch state dict (a torch.save of "
                        "tensors)") from exc
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserError(f"cannot read weights from {p}: not a PyTorch state dict of tensors")
    return sd


def check_state_dict(module: nn.Module, sd: dict[str, torch.Tensor], path: str | os.PathLike,
                     name: str) -> None:
    """Refuse weights that do not fit `module`: integers for floating-point weights, NaN or infinite
    values, missing or unexpected keys, other shapes."""
    own = module.state_dict()
    for key, value in sd.items():
        if key in own and own[key].is_floating_point() and not value.is_floating_point():
            raise UserError(f"weights in {path} do not fit {name}: {key} holds {value.dtype} numbers where "
                            "the model has floating-point weights")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise UserError(f"weights in {path} are damaged: {key} holds NaN or infinite values")
    missing, unexpected = sorted(set(own) - set(sd)), sorted(set(sd) - set(own))
    if missing or unexpected:
        detail = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
        raise UserError(f"weights in {path} do not fit {name} ({len(missing)} keys missing, "
                        f"{len(unexpected)} unexpected; {detail})")
    for key, tensor in own.items():
        if sd[key].shape != tensor.shape:
            raise UserError(f"weights in {path} do not fit {name}: {key} has shape {tuple(sd[key].shape)}, "
                            f"expected {tuple(tensor.shape)}")


def load_weights(module: nn.Module, path: str | os.PathLike, name: str) -> None:
    """Load the state dict in `path` into `module`, checked (see `check_state_dict`)."""
    sd = read_state_dict(path)
    check_state_dict(module, sd, path, name)
    try:
        module.load_state_dict(sd)
    except RuntimeError as exc:
        raise UserError(f"weights in {path} do not fit {name}: {first_line(exc)}") from exc
