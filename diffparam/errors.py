"""Exceptions: `UserError` is a mistake in what the user asked for, shown as one line."""

from __future__ import annotations

from typing import Any


class DiffparamError(Exception):
    """Base class of every error diffparam raises on purpose."""


class UserError(DiffparamError, ValueError):
    """Bad input (unknown layer, unreadable file, absurd size): the message says what would be right."""


class NonFiniteLossError(DiffparamError):
    """The loss became NaN or infinite; `result` holds the last finite images."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result
