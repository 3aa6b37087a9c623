"""Old public names kept working for one release, each with a DeprecationWarning naming the new one."""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

RELEASE = "0.3"
"""The release in which the deprecated names go away."""

F = TypeVar("F", bound=Callable[..., Any])


def warn(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn once per call site that `old` is deprecated in favour of `new`."""
    warnings.warn(f"{old} is deprecated and goes in diffparam {RELEASE}: use {new}", DeprecationWarning,
                  stacklevel=stacklevel)


def renames(**old_to_new: str) -> Callable[[F], F]:
    """Decorate a function (or `__init__`) whose keywords were renamed: an old keyword warns and is
    passed as the new one; both at once is a TypeError."""

    def wrap(fn: F) -> F:
        where = fn.__qualname__.removesuffix(".__init__")

        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{where}() got both {old}= and its new name {new}=")
                    warn(f"{where}({old}=...)", f"{new}=...")
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap


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
