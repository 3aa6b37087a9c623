"""`Constant`: a fixed tensor with one cached copy per device and dtype.

Per-step host-to-device copies are slow, and CUDA graph capture forbids them; a constant that
was used once (in an eager step) is served from this cache afterwards.
"""

from __future__ import annotations

import torch
from torch import Tensor


class Constant:
    """Holds `value` on the CPU; `on(device, dtype)` returns a cached copy there."""

    def __init__(self, value: Tensor) -> None:
        self.value = value
        self._copies: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def on(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Tensor:
        """The value on `device` in `dtype` (default: its own dtype), copied at most once."""
        key = (torch.device(device), dtype or self.value.dtype)
        if key not in self._copies:
            self._copies[key] = self.value.to(*key)
        return self._copies[key]
