"""The 3D photo's page in a real browser (Debian's Chromium, headless, driven by Playwright), opened
from file:// and from a local HTTP server: it loads nothing else, shows the photo with the pointer
at the centre, and moving the pointer moves near things and reveals the hidden layer. Skips, saying
why, where Chromium or Playwright is missing (`make test` installs Chromium with apt-get).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import serve_folder

from diffparam.recipes.photo3d_page import write_page
from diffparam.three_d import ldi, rgbd_scenes
from diffparam.three_d.pinhole import PinholeViews

H, W = 48, 64
CANVAS = """() => { const c = document.getElementById('photo');
  return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }"""

SHOWS_RED = """() => { const c = document.getElementById('photo');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  return d.some((v, i) => i % 4 == 0 && v > 250 && d[i + 1] < 10 && d[i + 2] < 10); }"""


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> tuple[Path, torch.Tensor]:
    """A page of the cards scene whose hidden layer is painted pure red, and the photo."""
    views = PinholeViews(torch.eye(4)[None], torch.tensor([60.0]))
    truth = rgbd_scenes.observe(rgbd_scenes.scene("cards", seed=1), views, H, W)
    layers = ldi.build_layers(truth.images[0], truth.depth[0])
    red = torch.tensor([1.0, 0.0, 0.0])[:, None, None].expand_as(layers.image)
    folder = tmp_path_factory.mktemp("photo3d_page")
    write_page(layers.with_color(red), folder / "index.html")
    return folder, layers.image


@pytest.fixture(scope="module")
def server(scene) -> Iterator[str]:
    with serve_folder(scene[0]) as url:
        yield url


def _canvas(page) -> torch.Tensor:
    return torch.tensor(page.evaluate(CANVAS), dtype=torch.float32).reshape(H, W, 4).permute(2, 0, 1) / 255


def _red(frame: torch.Tensor) -> int:
    return int(((frame[0] > 0.95) & (frame[1] < 0.05) & (frame[2] < 0.05)).sum())


@pytest.mark.parametrize("where", ["http", "file"])
def test_page_moves_with_the_mouse(browser, scene, server, where: str) -> None:
    folder, photo = scene
    url = f"{server}/index.html" if where == "http" else (folder / "index.html").as_uri()
    page = browser.new_page(viewport={"width": 800, "height": 700})
    problems: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda req: requests.append(req.url))
    page.goto(url)
    page.wait_for_function("() => window.photo3d !== undefined", timeout=10_000)
    assert page.locator("#status").inner_text().startswith("Move the mouse")
    still = _canvas(page)
    assert float((still[:3] - photo).abs().max()) < 1.5 / 255  # the photo itself, nothing hidden shows
    assert _red(still) == 0

    box = page.locator("#photo").bounding_box()
    page.mouse.move(box["x"] + box["width"] - 1, box["y"] + box["height"] / 2)  # the far right
    page.wait_for_function(SHOWS_RED, timeout=10_000)
    moved = _canvas(page)
    changed = (moved[:3] - photo).abs().max(0).values > 0.1
    assert 0 < _red(moved) < 0.2 * H * W  # the hidden layer shows at the cards' edges only
    assert 0.02 < float(changed.float().mean()) < 0.6
    # The wall (far) stays nearly still: the image's corners, all wall, keep their colour.
    assert float((moved[:3, :4, :4] - photo[:, :4, :4]).abs().max()) < 0.05
    assert [r for r in requests if not r.startswith("data:")] == [url]
    assert problems == []
    page.close()
