"""Exceptions: `UserError` is a mistake in what the user asked for, shown as one line."""

from __future__ import annotations

from typing import Any


class DiffparamError(Exception):
    """Base class of every error diffparam raises on purpose."""


class UserError(DiffparamError, ValueError):
    """Bad input (unknown layer, unreadable file, absurd size): the message says what would be right."""


def first_line(error: BaseException) -> str:
    """An exception's first line of text (its class name when it has none): for one-line messages."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class NonFiniteLossError(DiffparamError):
    """The loss became NaN or infinite; `result` holds the last finite images."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result
