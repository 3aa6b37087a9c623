"""Argument checks: every type, range, choice and shape check of the package, with one wording.

Each check returns the value in its plain Python form (int, float, tuple) or raises a `UserError`
that names the argument, says what was wrong and what would be right. Modules call these instead
of writing their own, so one mistake reads the same wherever it is made.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

from torch import Tensor

from diffparam.errors import UserError

IMAGE_SIZES = (16, 4096)
"""Smallest and largest side, in pixels, of an image that is optimised (render, recipes)."""
MAX_STEPS = 1_000_000
"""Most optimisation steps of one render (a million take hours even on a GPU)."""
MAX_SEED = 2**62
"""Largest seed: torch takes 64 bits, and an atlas adds its batch index to the seed."""


def _named(name: str) -> str:
    """An argument's name as errors show it: in backticks when it is one (the CLI shows its flag)."""
    return f"`{name}`" if name.isidentifier() else name


def _is_int(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Integral)


def _is_real(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Real)


def whole(name: str, value: object, low: int) -> int:
    """`value` as an int if it is a whole number >= `low`."""
    if not _is_int(value) or value < low:
        raise UserError(f"{_named(name)} must be a whole number >= {low}, got {value!r}")
    return int(value)


def positive_int(name: str, value: object) -> int:
    """`value` as an int if it is a whole number >= 1."""
    return whole(name, value, 1)


def non_negative_int(name: str, value: object) -> int:
    """`value` as an int if it is a whole number >= 0."""
    return whole(name, value, 0)


def int_in(name: str, value: object, low: int, high: int, unit: str = "") -> int:
    """`value` as an int if it is a whole number in low..high (`unit` names what it counts)."""
    if not _is_int(value) or not low <= value <= high:
        what = f" {unit}" if unit else ""
        raise UserError(f"{_named(name)} must be a whole number in {low}..{high}{what}, got {value!r}")
    return int(value)


def real(name: str, value: object, low: float = -math.inf, high: float = math.inf, *,
         low_open: bool = False, high_open: bool = False, hint: str = "") -> float:
    """`value` as a float if it is a finite number within the bounds (open bounds exclude the end).

    `hint` is added to the message, e.g. "(1.0 is usual)".
    """
    ok = (_is_real(value) and math.isfinite(value)
          and (value > low if low_open else value >= low)
          and (value < high if high_open else value <= high))
    if not ok:
        parts = []
        if low > -math.inf:
            parts.append(f"{'>' if low_open else '>='} {low:g}")
        if high < math.inf:
            parts.append(f"{'<' if high_open else '<='} {high:g}")
        bounds = (" " + " and ".join(parts)) if parts else ""
        extra = f" {hint}" if hint else ""
        raise UserError(f"{_named(name)} must be a finite number{bounds}{extra}, got {value!r}")
    return float(value)


def positive_float(name: str, value: object, hint: str = "") -> float:
    """`value` as a float if it is a finite number > 0."""
    return real(name, value, 0.0, low_open=True, hint=hint)


def non_negative_float(name: str, value: object, hint: str = "") -> float:
    """`value` as a float if it is a finite number >= 0."""
    return real(name, value, 0.0, hint=hint)


def choice(name: str, value: object, choices: Iterable[str]) -> str:
    """`value` if it is one of `choices`, else an error listing them."""
    options = list(choices)
    if not isinstance(value, str) or value not in options:
        raise UserError(f"unknown {_named(name)} {value!r}; choose one of: {', '.join(options)}")
    return value


def image_size(size: object, what: str = "size", sizes: tuple[int, int] = IMAGE_SIZES
               ) -> tuple[int, int]:
    """(height, width) from an int or a pair, each a whole number of pixels within `sizes`."""
    pair = (size, size) if _is_int(size) else size
    if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
        raise UserError(f"{_named(what)} must be a number of pixels or a (height, width) pair, got {size!r}")
    low, high = sizes
    for s in pair:
        if not _is_int(s) or not low <= s <= high:
            raise UserError(f"{_named(what)} {s!r} is outside {low}..{high} pixels")
    return int(pair[0]), int(pair[1])


def range_pair(name: str, value: object, low: float, high: float) -> tuple[float, float]:
    """A (min, max) pair of finite numbers with low <= min <= max <= high."""
    try:
        a, b = (float(x) for x in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        a = b = math.nan
    if not (math.isfinite(a) and math.isfinite(b) and low <= a <= b <= high):
        raise UserError(f"{name} range must be (min, max) with {low:g} <= min <= max <= {high:g}, "
                        f"got {value!r}")
    return a, b


def shape(name: str, tensor: object, pattern: str, **sizes: int | Sequence[int]) -> Tensor:
    """`tensor` if its shape fits `pattern`, e.g. "B,C,H,W" or "3,H,W" or "V,3".

    A digit in the pattern must match exactly; a letter matches any size unless `sizes` gives it
    (an int, or the sizes it may take). Returns the tensor unchanged.
    """
    dims = [d.strip() for d in pattern.split(",")]
    shown = ",".join(_shown(d, sizes.get(d)) for d in dims)
    if not isinstance(tensor, Tensor):
        raise UserError(f"{name} must be a ({shown}) tensor, got {type(tensor).__name__}")
    ok = tensor.dim() == len(dims)
    for dim, n in zip(dims, tensor.shape, strict=False):
        if not ok:
            break
        allowed = int(dim) if dim.isdigit() else sizes.get(dim)
        if allowed is not None:
            ok = n == allowed if isinstance(allowed, int) else n in allowed
    if not ok:
        raise UserError(f"{name} must be ({shown}), got {tuple(tensor.shape)}")
    return tensor


def _shown(dim: str, allowed: int | Sequence[int] | None) -> str:
    if allowed is None:
        return dim
    return str(allowed) if isinstance(allowed, int) else "|".join(str(n) for n in allowed)
