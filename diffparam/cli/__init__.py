"""Command line: one subcommand per user task, each a thin layer over the Python API.

Every module in this package except `common` defines `register(sub)`, which adds its subcommand(s)
to the `diffparam` parser; `build_parser` finds them, so a new command is a new file here.
Library errors name arguments in backticks (`lr`); `main` shows those that are options of the
command being run as their flags (--lr).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import pkgutil
import re
import signal
import sys
import warnings
from collections.abc import Sequence

import torch

from diffparam import __version__
from diffparam.checks import positive_int
from diffparam.cli.common import Parser
from diffparam.errors import DivergedError, ModelError, UserError, first_line


def build_parser() -> argparse.ArgumentParser:
    """The `diffparam` argument parser with all its subcommands."""
    parser = Parser(prog="diffparam", description="Images made by optimising differentiable "
                    "parameterizations through neural networks.")
    parser.add_argument("--version", action="version", version=f"diffparam {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name != "common":
            importlib.import_module(f"{__name__}.{info.name}").register(sub)
    return parser


def _options(parser: argparse.ArgumentParser, args: argparse.Namespace | None) -> set[str]:
    """The names (dests) of the options, not positional arguments, of the command that ran (of its
    verb, for a command with verbs such as `nerf fit`)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = getattr(args, action.dest, None)
            if chosen in action.choices:
                return _options(action.choices[chosen], args)
    return {a.dest for a in parser._actions if a.option_strings} if args is not None else set()


def _as_flags(message: str, known: set[str]) -> str:
    """`name` → --name where `name` is an option of the command that ran."""

    def flag(m: re.Match) -> str:
        name = m[1]
        return f"--{name.replace('_', '-')}" if name in known else m[0]

    return re.sub(r"`([a-z_]+)`", flag, message)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"diffparam: warning: {message}", file=sys.stderr)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it cleans up as it does for Ctrl-C."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def _out_of_memory(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, MemoryError | torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line: user errors print one line to stderr and return status 2; Ctrl-C and
    SIGTERM clean up, print one line and return 130 and 143."""
    args = None
    parser = build_parser()
    previous = signal.getsignal(signal.SIGTERM)
    with contextlib.suppress(ValueError):  # not the main thread: leave the signals alone
        signal.signal(signal.SIGTERM, _terminate)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _one_line_warning
            args = parser.parse_args(argv)
            if hasattr(args, "steps"):  # before any model, mesh or image is loaded
                positive_int("steps", args.steps)
            return args.func(args)
    except UserError as exc:
        print(f"diffparam: error: {_as_flags(str(exc), _options(parser, args))}", file=sys.stderr)
        return 2
    except DivergedError as exc:
        print(f"diffparam: error: {_as_flags(str(exc), _options(parser, args))}; nothing was written",
              file=sys.stderr)
        return 1
    except ModelError as exc:
        print(f"diffparam: error: {exc}", file=sys.stderr)
        return 1
    except Terminated:
        print("diffparam: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("diffparam: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if _out_of_memory(exc):
            print(f"diffparam: error: out of memory ({first_line(exc)}); lower --batch or --size",
                  file=sys.stderr)
            return 2
        if isinstance(exc, OSError):  # a full disk, a vanished folder: what happened, in one line
            where = f": {exc.filename}" if exc.filename else ""
            print(f"diffparam: error: {(exc.strerror or first_line(exc)).lower()}{where}", file=sys.stderr)
            return 1
        raise
    finally:
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
