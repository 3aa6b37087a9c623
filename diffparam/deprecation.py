"""Old public names kept working for one release, each with a DeprecationWarning naming the new one."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any

RELEASE = "0.3"
"""The release in which the deprecated names go away."""


def warn(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn once per call site that `old` is deprecated in favour of `new`."""
    warnings.warn(f"{old} is deprecated and goes in diffparam {RELEASE}: use {new}", DeprecationWarning,
                  stacklevel=stacklevel)


def renamed(kwargs: dict[str, Any], old: str, new: str, value: Any, where: str) -> Any:
    """The value of keyword `new`: `value`, or (with a warning) what the caller passed as `old`, which
    is taken out of `kwargs` (the function's **kwargs)."""
    if old not in kwargs:
        return value
    warn(f"{where}({old}=...)", f"{new}=...", stacklevel=4)
    return kwargs.pop(old)


def no_more(kwargs: dict[str, Any], where: str) -> None:
    """Raise the usual TypeError when `kwargs` (what is left of a function's **kwargs) is not empty."""
    if kwargs:
        raise TypeError(f"{where}() got unexpected keyword arguments: {', '.join(kwargs)}")


def module_getattr(module: str, moved: dict[str, str]) -> Callable[[str], Any]:
    """A module-level `__getattr__` serving `moved` names ({old name: "package.module:new name"})."""

    def __getattr__(name: str) -> Any:
        target = moved.get(name)
        if target is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        where, _, attr = target.partition(":")
        warn(f"{module}.{name}", f"{where}.{attr}")
        return getattr(importlib.import_module(where), attr)

    return __getattr__
