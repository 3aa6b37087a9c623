"""The README's atlas screenshots: a small real atlas of the embedded model, photographed in Chromium.

Renders blocks.2 and blocks.3 (and the blocks.1 channels their circuits need) with
`diffparam.atlas.atlas`, opens the page in Debian's headless Chromium (Playwright, no browser
download) and saves the grouped overview and one unit's detail view as small palette PNGs.

Example: python bench/atlas_screenshot.py --device cpu --out atlas_readme
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from diffparam.atlas import atlas
from diffparam.models.registry import efficientnet_lite0

CHROMIUM = "/usr/bin/chromium"


def shrink(path: Path, colours: int = 128) -> int:
    """Rewrite a screenshot as a palette PNG (much smaller, no visible loss for a page); its size."""
    with Image.open(path) as im:
        im.convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path.stat().st_size


def photograph(page: Path, overview: Path, detail: Path, unit: str, width: int = 1280,
               height: int = 820) -> None:
    """Screenshot the page's overview and the detail view of `unit` (a `LAYER:C` key)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        tab = browser.new_page(viewport={"width": width, "height": height})
        tab.goto(page.resolve().as_uri())
        tab.wait_for_function("Array.from(document.images).every(i => i.complete)")
        tab.screenshot(path=str(overview))
        tab.locator(f'button.tile[data-unit="{unit}"]').click()
        tab.wait_for_function("Array.from(document.images).every(i => i.complete)")
        tab.screenshot(path=str(detail))
        browser.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", default="blocks.2,blocks.3")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=128)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="atlas_readme", help="atlas folder")
    p.add_argument("--unit", default="blocks.3:0", help="the unit whose detail view is shown")
    p.add_argument("--images", default="docs/images", help="where the PNGs go")
    args = p.parse_args()
    atlas(efficientnet_lite0(), args.layers, args.out, size=args.size, steps=args.steps, batch=64,
          device=args.device)
    images = Path(args.images)
    images.mkdir(parents=True, exist_ok=True)
    overview, detail = images / "atlas_page.png", images / "atlas_detail.png"
    photograph(Path(args.out) / "index.html", overview, detail, args.unit)
    for path in (overview, detail):
        print(path, shrink(path), "bytes")


if __name__ == "__main__":
    main()
