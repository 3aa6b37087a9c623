"""What every subcommand shares: the one-line-error parser and the common options."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from diffparam.deprecation import RELEASE
from diffparam.errors import UserError
from diffparam.io import atomic_path, check_writable, photo_files
from diffparam.models.base import Model
from diffparam.models.registry import DEFAULT_MODEL, load_model
from diffparam.param.kinds import KINDS, KindChoices, help_text
from diffparam.pipeline import PRECISIONS


class _Help(argparse.HelpFormatter):
    """Help that shows each option's default, where it has one and its text does not say it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (default is not None and default is not False and default is not argparse.SUPPRESS
                and action.option_strings and "default" not in text):
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line and exit status 2, and shows defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see `{self.prog} --help`)")


class Renamed(argparse.Action):
    """An old flag that still works for one release: it warns and sets the new flag's value."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str, **kwargs: Any) -> None:
        self.new = new
        kwargs.setdefault("default", argparse.SUPPRESS)
        super().__init__(option_strings, dest=new.lstrip("-").replace("-", "_"), help=argparse.SUPPRESS,
                         **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"diffparam: warning: {option_string} is deprecated and goes in diffparam {RELEASE}: use "
              f"{self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


UNITS_HELP = ("LAYER:CHANNEL@X,Y (a position), LAYER:CHANNEL@cls or @token=K (a transformer token), "
              "LAYER:direction=FILE[ROW] (a .npy/.pt vector or matrix row), LAYER:head=H/HEADS (an "
              "attention head) or logit:CLASS; docs/architectures.md")
"""The objective grammar past LAYER and LAYER:CHANNEL, as every command's help gives it."""


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--model and --weights, as every command that loads a network takes them."""
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"{DEFAULT_MODEL} (embedded), torchvision:NAME or timm:NAME")
    p.add_argument("--weights", default=None,
                   help="state-dict file to load into the model, or \"random\" (a torchvision or timm "
                        "network untrained: a sanity-check baseline)")


def add_render_options(p: argparse.ArgumentParser, size: int = 224, steps: int = 512,
                       lr: str | None = None) -> None:
    """The options every rendering subcommand shares, with the same meaning everywhere. `lr` says
    what the default learning rate is (default: the parameterizations' own)."""
    add_model_options(p)
    p.add_argument("--size", type=int, default=size, help="image size in pixels, 16..4096")
    p.add_argument("--steps", type=int, default=steps, help="optimisation steps")
    lrs = lr or "the parameterization's own: " + ", ".join(
        f"{kind.default_lr:g} for {name}" for name, kind in KINDS.items())
    p.add_argument("--lr", type=float, default=None, help=f"learning rate (Adam); default {lrs}")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_param_option(p: argparse.ArgumentParser, among: list[str] | None = None,
                     what: str = "image parameterization") -> None:
    """--param: a kind from the registry (`diffparam.param.KINDS`), `among` those that fit here (where
    every kind does, `gan:RUN_DIR` and the other sourced kinds too); with "maco" among them,
    --spectrum-from too."""
    choices = among if among is not None else KindChoices(KINDS)
    p.add_argument("--param", default=choices[0], choices=choices,
                   metavar=choices.metavar if isinstance(choices, KindChoices) else None,
                   help=f"{what} ({help_text(among)})")
    if "maco" in choices:
        p.add_argument("--spectrum-from", default=None, metavar="DIR",
                       help="with --param maco: measure the natural spectrum on the photos in DIR "
                       "(default: scikit-image's photos)")


def param_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of --param's kind that options gave (`make_param`'s keyword arguments),
    checked before any work."""
    folder = getattr(args, "spectrum_from", None)
    if folder is None:
        return {}
    if args.param != "maco":
        raise UserError(f"--spectrum-from applies to --param maco, not {args.param}")
    photo_files(folder)
    return {"spectrum_from": folder}


def add_report_options(p: argparse.ArgumentParser) -> None:
    """--report, --photos and --no-trust: how much to trust the images, judged against natural
    photos (printed unless --quiet)."""
    p.add_argument("--report", default=None, metavar="FILE.json",
                   help="write per image: the objective's value, that value against the best natural "
                   "photo crop, the plausibility distance and the sanity score (docs/trust.md)")
    add_photos_option(p)
    add_no_trust_option(p)


def add_no_trust_option(p: argparse.ArgumentParser) -> None:
    """--no-trust: skip the trust numbers (their photo features cost about 25 s on a 2-core CPU)."""
    p.add_argument("--no-trust", action="store_true",
                   help="do not measure the sanity score and plausibility distance (saves the photo "
                   "features' pass, about 25 s on a 2-core CPU)")


def add_photos_option(p: argparse.ArgumentParser) -> None:
    """--photos: the natural reference of the trust numbers."""
    p.add_argument("--photos", default=None, metavar="DIR",
                   help="a folder of your own photos as the natural reference for the trust numbers "
                   "(default: the photos scikit-image ships)")


def check_report_options(args: argparse.Namespace) -> Path | None:
    """The --report path (of commands that have one) and the --photos folder, checked before any
    work; the path or None."""
    report = getattr(args, "report", None)
    if args.no_trust and (report is not None or args.photos is not None):
        raise UserError(f"--{'report' if report is not None else 'photos'} needs the trust numbers: "
                        "drop --no-trust")
    if args.photos is not None:
        photo_files(args.photos)
    if report is None:
        return None
    out = Path(report)
    if out.suffix.lower() != ".json":
        raise UserError(f"--report must be a .json file, got {out}")
    return check_writable(out)


def write_report(path: Path, rows: list[dict], **about: Any) -> Path:
    """The report as JSON (atomically): `about` (model, command, …) and one row per image."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({**about, "images": rows}, indent=1, allow_nan=False) + "\n",
                       encoding="utf-8")
    return path


def _two(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _three(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def print_report(rows: list[dict], input_size: int) -> None:
    """One line per image: how it compares with natural photos, seen at the model's input size as
    the photos are (docs/trust.md says how to read it)."""
    for row in rows:
        against = "" if row["vs_photos"] is None else f" = {row['vs_photos']:.2f}x the best photo crop"
        made = row.get("value_as_made")
        value = f"{_three(row['value'])} at {input_size} px{against}"
        if made is not None and made != row["value"]:  # a render of another size
            value = f"{_three(made)} as made, {value}"
        sanity = (f"sanity {_two(row['sanity_score'])} (held-out photos that drive it: "
                  f"{_two(row['sanity_of_photos'])})")
        print(f"image {row['image']} {row['objective']}: {value}; plausibility distance "
              f"{_two(row['plausibility_distance'])} (photos ~1); {sanity}")


def add_precision_option(p: argparse.ArgumentParser) -> None:
    """--precision, as the commands that render on a GPU take it."""
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                   help="bf16 autocasts the model (GPU speed)")


def model_from_args(args: argparse.Namespace) -> Model:
    """The network named by --model/--weights."""
    return load_model(args.model, args.weights)


def style_layer_weights(text: str) -> dict[str, float]:
    """--style-layers `L1,L2=0.5,...` → {layer: weight}; a layer without `=W` weighs 1."""
    weights = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        try:
            weights[name.strip()] = float(value) if sep else 1.0
        except ValueError:
            raise UserError(f"cannot read the weight in --style-layers item {item!r}: use LAYER=NUMBER") \
                from None
    if not weights:
        raise UserError(f"--style-layers needs layer names separated by commas, got {text!r}")
    return weights


def check_distinct(**paths: str | Path | None) -> None:
    """Refuse two options that name the same output file (one would overwrite the other)."""
    seen: dict[Path, str] = {}
    for option, path in paths.items():
        if path is None:
            continue
        where = Path(path).resolve()
        flag = "--" + option.replace("_", "-")
        if where in seen:
            raise UserError(f"{seen[where]} and {flag} name the same file {path}: give two different names")
        seen[where] = flag


def print_paths(paths: Sequence[Path]) -> None:
    """The files a command wrote, one per line on stdout."""
    for path in paths:
        print(path)
