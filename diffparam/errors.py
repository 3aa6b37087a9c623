"""Exceptions: `UserError` is a mistake in what the user asked for, shown as one line."""

from __future__ import annotations

from typing import Any


class DiffparamError(Exception):
    """Base class of every error diffparam raises on purpose."""


class UserError(DiffparamError, ValueError):
    """Bad input (unknown layer, unreadable file, absurd size): the message says what would be right."""


class ModelError(DiffparamError, RuntimeError):
    """The user's network failed on the GPU in a way that leaves CUDA unusable in this process (a
    device-side assert): the message names the model and its input, and how to find the layer."""


STICKY_CUDA_ERRORS = ("device-side assert", "illegal memory access", "illegal instruction",
                      "misaligned address", "unspecified launch failure")
"""How CUDA reports a failed kernel: an error that leaves the process's CUDA context unusable, unlike
a failed graph capture ("operation not permitted when stream is capturing"), which eager steps avoid."""


def cuda_failure(exc: BaseException | None) -> bool:
    """Whether `exc`, or an error it was raised while handling, is one of `STICKY_CUDA_ERRORS`."""
    seen = 0
    while exc is not None and seen < 8:
        if any(marker in str(exc) for marker in STICKY_CUDA_ERRORS):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def first_line(error: BaseException) -> str:
    """An exception's first line of text (its class name when it has none): for one-line messages."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class DivergedError(DiffparamError):
    """The optimisation went wrong; `result` holds what it made (see the subclasses)."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class NonFiniteLossError(DivergedError):
    """The loss became NaN or infinite; `result` holds the images of the last step checked finite."""


class SaturatedError(DivergedError):
    """The images ended saturated (nearly every colour value 0 or 1): the step was far too large;
    `result` holds them."""
