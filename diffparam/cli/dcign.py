"""`diffparam dcign data|train|vary|inspect`: inverse graphics with a DC-IGN (Kulkarni et al. 2015)."""

from __future__ import annotations

import argparse

from diffparam.checks import positive_int
from diffparam.errors import UserError
from diffparam.io import check_animation, load_image


def degrees_range(text: str) -> tuple[float, float]:
    """--azimuth LOW,HIGH (degrees) → (low, high); argparse names this function on a bad value."""
    low, _, high = text.partition(",")
    return float(low), float(high)


def _cmd_data(args: argparse.Namespace) -> int:
    from diffparam.recipes.dcign_data import make_data

    textures = tuple(t for t in args.textures.split(",") if t)
    result = make_data(args.out, meshes=args.mesh or None, size=args.size, batches=args.batches,
                       batch=args.batch, grey=args.grey, seed=args.seed, textures=textures,
                       azimuth=args.azimuth, elevation=args.elevation, light=args.light, blobs=args.blobs)
    print(result.files["data"])
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from diffparam.recipes.dcign import check_run_folder, train_dcign
    from diffparam.recipes.dcign_data import FACTORS

    positive_int("every", args.every)
    check_run_folder(args.out)
    result = train_dcign(args.data, args.out, steps=args.steps, plain=args.plain,
                         groups=args.groups, lr=args.lr, free=args.free, width=args.width, beta=args.beta,
                         seed=args.seed, device=args.device, progress=not args.quiet, every=args.every,
                         decoder=args.decoder, meshes=args.mesh or (), blur=args.blur,
                         blur_steps=args.blur_steps)
    print(result.files["run"])
    table = result.metrics["r2"]
    if not args.quiet and table:
        own = ", ".join(f"{f} {table[f][i]:.2f}" for i, f in enumerate(FACTORS))
        print(f"trained in {result.seconds:.1f} s; R² of each factor from its own unit: {own}")
    return 0


def _cmd_vary(args: argparse.Namespace) -> int:
    from diffparam.recipes.dcign import load_dcign, vary

    net, _ = load_dcign(args.run)
    check_animation(args.out, "--out")
    load_image(args.image, net.size, "the image")
    print(vary(args.run, args.image, args.factor, args.out, frames=args.frames, fps=args.fps,
               scale=args.scale, object=args.object).files["video"])
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from diffparam.recipes.dcign import disentanglement, encode_all, load_dcign, unit_table
    from diffparam.recipes.dcign_data import FACTORS, load_data

    net, units = load_dcign(args.run)
    data = load_data(args.data) if args.data else None
    scores = None
    if data is not None and data.factors is not None:
        codes, true = encode_all(net, data.images.flatten(0, 1)), data.factors.flatten(0, 1)
        table, scores = unit_table(codes, true), disentanglement(codes, true)
    elif data is None and "r2" in units:
        table = units["r2"]
    else:
        raise UserError("no true factors to measure against: give a DATA folder whose batches.json has them")
    names = [*FACTORS, *(f"free{i}" for i in range(net.free))]
    print("R² of a linear fit of each factor (rows) from each code unit alone (columns)")
    print(f"{'':>10} " + " ".join(f"{n:>9}" for n in names))
    for f in FACTORS:
        print(f"{f:>10} " + " ".join(f"{v:9.3f}" for v in table[f]))
    for f, s in (scores or {}).items():
        print(f"{f}: from its own unit {s['own']:.3f}, from all the other units {s['others']:.3f}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `dcign data`, `dcign train`, `dcign vary` and `dcign inspect`."""
    from diffparam.recipes.dcign import BETA, DECODERS, FREE, GROUPS, LR, STEPS, WIDTH
    from diffparam.recipes.dcign_data import DEFAULT_TEXTURES, FACTORS, RANGES, TEXTURES
    from diffparam.recipes.dcign_render import BLUR, BLUR_STEPS

    p = sub.add_parser("dcign", help="inverse graphics (DC-IGN): render data, train, turn and relight images",
                       description="A variational autoencoder whose code holds azimuth, elevation and light "
                       "in named units, learned from mini-batches in which one factor varies at a time.")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="{data,train,vary,inspect}")
    d = verbs.add_parser("data", help="render training mini-batches (one factor varies in each) into --out")
    d.add_argument("--out", required=True, help="a new folder: batches.json and one PNG strip per mini-batch")
    d.add_argument("--mesh", action="append", default=None, help="a mesh file (OBJ, PLY, GLB, ...) or "
                   "shape:sphere|torus|knot|blobN; repeat for several (default: the three sample shapes)")
    d.add_argument("--blobs", type=int, default=0, help="add N random shapes (blob0 .. blobN-1): more "
                   "variety, for encoders that must meet unseen shapes (default 0)")
    d.add_argument("--textures", default=",".join(DEFAULT_TEXTURES),
                   help=f"comma-separated, for meshes without their own: {', '.join(TEXTURES)}")
    d.add_argument("--size", type=int, default=32, help="image side, px (a multiple of 8)")
    d.add_argument("--batches", type=int, default=240, help="how many mini-batches")
    d.add_argument("--batch", type=int, default=8, help="images per mini-batch")
    d.add_argument("--grey", action="store_true", help="grey images instead of RGB")
    for f in FACTORS:
        d.add_argument(f"--{f}", type=degrees_range, default=RANGES[f], metavar="LOW,HIGH",
                       help=f"{f} range, degrees (default {RANGES[f][0]:g},{RANGES[f][1]:g}; a negative "
                       f"start needs the = form: --{f}=-60,60)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_cmd_data)
    t = verbs.add_parser("train", help="train on DATA into --out (resumes when run again)")
    t.add_argument("data", help="a folder written by `diffparam dcign data` (or renders in its layout)")
    t.add_argument("--out", required=True, help="the run folder (also what a second run resumes from)")
    t.add_argument("--plain", action="store_true", help="the baseline: a plain VAE, no clamping")
    t.add_argument("--decoder", choices=DECODERS, default="learned", help="render: the code is the "
                   "renderer's angles, decoded by rendering the image's known object")
    t.add_argument("--mesh", action="append", default=None, help="with --decoder render: a mesh file the "
                   "data's objects name (repeat; default: where the data says they came from)")
    t.add_argument("--blur", type=float, default=None, help="with --decoder render: the loss's starting "
                   f"blur, a fraction of the image side (coarse to fine; default {BLUR})")
    t.add_argument("--blur-steps", type=int, default=None, help="with --decoder render: steps over "
                   f"which the blur narrows to none (default {BLUR_STEPS})")
    t.add_argument("--steps", type=int, default=STEPS)
    t.add_argument("--groups", type=int, default=GROUPS, help="mini-batches per step")
    t.add_argument("--lr", type=float, default=LR, help="Adam's learning rate")
    t.add_argument("--free", type=int, default=None, help="code units besides the graphics units "
                   f"(learned decoder; default {FREE})")
    t.add_argument("--width", type=int, default=WIDTH, help="channels of the first convolution")
    t.add_argument("--beta", type=float, default=None, help="weight of the KL term (learned decoder; "
                   f"default {BETA})")
    t.add_argument("--every", type=int, default=100, help="steps between checkpoints")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help="auto, cpu or cuda")
    t.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    t.set_defaults(func=_cmd_train)
    v = verbs.add_parser("vary", help="encode IMAGE, sweep one graphics unit, decode: a GIF or MP4")
    v.add_argument("run", help="a run folder written by `diffparam dcign train`")
    v.add_argument("image", help="the image (centre-cropped to the network's size)")
    v.add_argument("--factor", required=True, choices=FACTORS)
    v.add_argument("--out", required=True, help="output .gif or .mp4")
    v.add_argument("--frames", type=int, default=24)
    v.add_argument("--fps", type=float, default=12.0)
    v.add_argument("--scale", type=int, default=4, help="frames enlarged this many times (nearest pixel)")
    v.add_argument("--object", default=None, help="a run with a rendering decoder: which of its objects "
                   "to render (needed when it has several)")
    v.set_defaults(func=_cmd_vary)
    i = verbs.add_parser("inspect", help="which code unit carries which factor (R² of linear fits)")
    i.add_argument("run", help="a run folder written by `diffparam dcign train`")
    i.add_argument("data", nargs="?", default=None, help="data to measure on (default: the training data's "
                   "table, kept in the run)")
    i.set_defaults(func=_cmd_inspect)
