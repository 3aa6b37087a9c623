"""Command line: one subcommand per user task, each a thin layer over the Python API.

Every module in this package except `common` defines `register(sub)`, which adds its subcommand(s)
to the `diffparam` parser; `build_parser` finds them, so a new command is a new file here.
Library errors name arguments in backticks (`lr`); `main` shows those that are options of the
command being run as their flags (--lr).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
import warnings
from collections.abc import Sequence

from diffparam import __version__
from diffparam.checks import positive_int
from diffparam.cli.common import Parser
from diffparam.errors import NonFiniteLossError, UserError


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


def _as_flags(message: str, args: argparse.Namespace | None) -> str:
    """`name` → --name where `name` is an option of the command that ran."""
    known = set(vars(args)) if args is not None else set()

    def flag(m: re.Match) -> str:
        name = m[1]
        return f"--{name.replace('_', '-')}" if name in known else m[0]

    return re.sub(r"`([a-z_]+)`", flag, message)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"diffparam: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors print one line to stderr and return status 2."""
    args = None
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = _one_line_warning
        try:
            args = build_parser().parse_args(argv)
            if hasattr(args, "steps"):  # before any model, mesh or image is loaded
                positive_int("steps", args.steps)
            return args.func(args)
        except UserError as exc:
            print(f"diffparam: error: {_as_flags(str(exc), args)}", file=sys.stderr)
            return 2
        except NonFiniteLossError as exc:
            print(f"diffparam: error: {_as_flags(str(exc), args)}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("diffparam: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
