"""Naming: words for a visualization (colour, line orientation) that a person can check, groups named
only by the words most members share, and how alike a grouping's members look against chance."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

HUES = ((15, "red"), (45, "orange"), (70, "yellow"), (160, "green"), (200, "cyan"), (260, "blue"),
        (290, "purple"), (340, "pink"), (360, "red"))
"""Upper bound of each hue name, in degrees."""
COLOURFUL = 15 / 255
"""Colourfulness below which an image is black & white: Hasler & Süsstrunk's "not colourful"."""
ORIENTED = 0.25
"""Structure-tensor coherence above which an image has one dominant line orientation."""


def describe_image(image: Tensor) -> dict[str, Any]:
    """Colour and orientation statistics of one image (3,H,W) in [0,1], with words for them.

    `colourfulness` (Hasler & Süsstrunk), the main hue names weighted by saturation, the mean
    CIELAB (a*, b*) colour, and the structure tensor's `coherence` and line `angle` (degrees,
    0 = horizontal, counter-clockwise).
    """
    from skimage.color import rgb2hsv, rgb2lab

    img = image[:3].double().clamp(0, 1)
    r, g, b = img[0], img[1], img[2]
    rg, yb = r - g, 0.5 * (r + g) - b
    colourful = float(torch.sqrt(rg.var(unbiased=False) + yb.var(unbiased=False))
                      + 0.3 * torch.sqrt(rg.mean() ** 2 + yb.mean() ** 2))
    arr = img.permute(1, 2, 0).numpy()
    hsv = rgb2hsv(arr).reshape(-1, 3)
    names = list(dict.fromkeys(name for _, name in HUES))
    bins = np.searchsorted([bound for bound, _ in HUES], hsv[:, 0] * 360, side="right")
    which = np.array([names.index(name) for _, name in HUES])[bins.clip(max=len(HUES) - 1)]
    hist = np.bincount(which, weights=hsv[:, 1] * hsv[:, 2], minlength=len(names))
    ranked = [names[i] for i in np.argsort(-hist, kind="stable") if hist[i] > 0]
    colours = ranked[:1] + [n for n in ranked[1:2] if hist[names.index(n)] >= 0.5 * hist.max()]
    lab = rgb2lab(arr).reshape(-1, 3).mean(0)
    gray = (0.299 * r + 0.587 * g + 0.114 * b)[None, None]
    sobel = torch.tensor([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=torch.float64)[None, None] / 8
    gx = F.conv2d(gray, sobel)[0, 0]
    gy = F.conv2d(gray, sobel.transpose(-1, -2))[0, 0]
    jxx, jyy, jxy = float((gx * gx).mean()), float((gy * gy).mean()), float((gx * gy).mean())
    energy = jxx + jyy
    flat = energy < 1e-8  # no visible structure (numerical noise only)
    coherence = 0.0 if flat else math.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2) / energy
    # The gradients' dominant direction turned 90 degrees is the lines' direction (image y points down).
    angle = (math.degrees(0.5 * math.atan2(-2 * jxy, jxx - jyy)) + 90) % 180
    lines = ("horizontal", "diagonal /", "vertical", "diagonal \\")[round(angle / 45) % 4]
    words = ["black & white" if colourful < COLOURFUL else "–".join(colours)]
    if coherence > ORIENTED:
        words.append(f"{lines} lines")
    return {"colourfulness": colourful, "colours": colours, "ab": (float(lab[1]), float(lab[2])),
            "coherence": coherence, "angle": angle, "words": words}


def judge_groups(labels: np.ndarray, descriptions: Sequence[dict[str, Any]], rounds: int = 1000,
                 seed: int = 0) -> dict[str, float]:
    """How alike a grouping's members look, by statistics a person sees, against random groupings.

    `colour_within`/`colour_random`: mean CIELAB a*b* distance between two channels of one group /
    of different groups; `angle_within`/`angle_random`: the same for line orientation (degrees,
    only pairs where both images have clear lines). `colour_p`/`angle_p`: share of `rounds`
    random relabelings (same group sizes) whose within-group mean is at least as small.
    """
    n = len(labels)
    ab = np.array([d["ab"] for d in descriptions])
    colour = np.linalg.norm(ab[:, None] - ab[None, :], axis=2)
    angles = np.array([d["angle"] for d in descriptions])
    angle = np.abs((angles[:, None] - angles[None, :] + 90) % 180 - 90)
    lined = np.array([d["coherence"] > ORIENTED for d in descriptions])
    both = lined[:, None] & lined[None, :]
    off = ~np.eye(n, dtype=bool)

    def means(lab: np.ndarray) -> tuple[float, float, float, float]:
        same = (lab[:, None] == lab[None, :]) & off
        other = lab[:, None] != lab[None, :]
        def pick(m: np.ndarray, x: np.ndarray) -> float:
            return float(x[m].mean()) if m.any() else float("nan")

        return (pick(same, colour), pick(other, colour), pick(same & both, angle), pick(other & both, angle))

    def mean(x: np.ndarray) -> float:
        x = x[~np.isnan(x)]
        return float(x.mean()) if x.size else float("nan")

    found = means(labels)
    rng = np.random.default_rng(seed)
    null = np.array([means(rng.permutation(labels)) for _ in range(rounds)])
    return {"colour_within": found[0], "colour_random": mean(null[:, 0]),
            "colour_p": float(np.mean(null[:, 0] <= found[0])),
            "angle_within": found[2], "angle_random": mean(null[:, 2]),
            "angle_p": float(np.mean(null[:, 2] <= found[2])) if not math.isnan(found[2]) else float("nan")}


def name_group(descriptions: Sequence[dict[str, Any]], share: float = 0.6) -> tuple[str, float]:
    """A name made of the words (colour, line orientation) that at least `share` of the members
    carry, and the share of members that carry all of them; ("", 0) when no word is shared."""
    n = len(descriptions)
    if n == 0:
        return "", 0.0
    counts: dict[str, int] = {}
    for d in descriptions:
        for w in set(d["words"]):
            counts[w] = counts.get(w, 0) + 1
    shared = sorted((w for w, c in counts.items() if c / n >= share), key=lambda w: -counts[w])
    colour = [w for w in shared if not w.endswith("lines")][:1]
    lines = [w for w in shared if w.endswith("lines")][:1]
    words = colour + lines
    if not words:
        return "", 0.0
    carry = sum(all(w in d["words"] for w in words) for d in descriptions) / n
    return ", ".join(words), carry
