"""The atlas page in a real browser: Debian's Chromium, headless, driven by Playwright.

Served by a local HTTP server on 127.0.0.1 (and opened once from file://): every image loads, the
groups show, a click opens the detail view, circuit links lead on, the order toggle works. Skips,
saying why, where Chromium or Playwright is missing (`make test` installs Chromium with apt-get).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import serve_folder

from diffparam.atlas.page import build_page
from diffparam.models.base import Model

ALL_IMAGES_LOADED = "Array.from(document.images).every(i => i.complete)"
BROKEN_IMAGES = ("Array.from(document.images).filter(i => !(i.naturalWidth > 0))"
                 ".map(i => i.getAttribute('src'))")


@pytest.fixture(scope="module")
def atlas_dir(tmp_path_factory) -> Path:
    from conftest import TinyNet
    from test_atlas_page import fake_atlas

    torch.manual_seed(0)
    model = Model(TinyNet(), input_size=32, name="tiny")
    folder = tmp_path_factory.mktemp("atlas_browser")
    build_page(folder, model, fake_atlas(model, folder), progress=False, crops=16)
    return folder


@pytest.fixture(scope="module")
def server(atlas_dir: Path) -> Iterator[str]:
    with serve_folder(atlas_dir) as url:
        yield url


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.on("requestfailed", lambda req: problems.append(f"failed: {req.url}"))
    page.on("response",
            lambda res: problems.append(f"{res.status}: {res.url}") if res.status >= 400 else None)
    page.goto(url)
    page.wait_for_function(ALL_IMAGES_LOADED)
    return page, problems, requests


def _wait_title(page, prefix: str) -> None:
    """Wait (up to 10 s) until the detail view shows a unit whose name starts with `prefix`."""
    page.wait_for_function("p => (document.getElementById('detail-title')?.innerText || '').startsWith(p)",
                           arg=prefix, timeout=10_000)


def test_page_in_chromium(browser, server: str, tmp_path: Path) -> None:
    page, problems, requests = _open(browser, f"{server}/index.html")
    assert page.evaluate(BROKEN_IMAGES) == []
    tiles = page.locator("button.tile")
    assert tiles.count() == 8
    groups = page.locator("section.group")
    assert groups.count() >= 2
    assert page.locator("section.group h3").first.inner_text().startswith("Group 1")

    assert page.locator("#detail").is_hidden()
    page.locator('button.tile[data-unit="conv2:3"]').click()  # the page routes on hashchange: wait
    page.locator("#detail").wait_for(state="visible", timeout=10_000)
    _wait_title(page, "conv2:3")
    assert page.locator("#detail-title").inner_text() == "conv2:3"
    page.wait_for_function(ALL_IMAGES_LOADED)
    assert page.evaluate(BROKEN_IMAGES) == []
    assert page.locator("#detail .patches img").count() == 4
    circuit = page.evaluate("DATA.units['conv2:3'].circuit")
    assert circuit["excite"] and circuit["inhibit"]
    assert page.locator("#detail figure[data-link]").count() == len(circuit["excite"] + circuit["inhibit"])
    assert page.locator("#detail figure[data-link] .textlink").count() >= 1  # an input with no image
    page.screenshot(path=str(tmp_path / "atlas_detail.png"))

    page.locator("#detail a[href] figure").first.click()  # follow a rendered circuit input
    _wait_title(page, "conv1:")
    page.wait_for_function(ALL_IMAGES_LOADED)
    assert page.evaluate(BROKEN_IMAGES) == []
    page.keyboard.press("Escape")
    page.locator("#detail").wait_for(state="hidden", timeout=10_000)

    page.locator("#by-channel").click()
    assert page.locator("section.group").count() == 0
    order = page.locator("button.tile").evaluate_all("els => els.map(e => e.dataset.unit)")
    assert order == [f"conv2:{c}" for c in range(8)]
    page.locator("#by-group").click()
    assert page.locator("section.group").count() == groups.count()
    page.screenshot(path=str(tmp_path / "atlas.png"), full_page=True)
    assert (tmp_path / "atlas.png").stat().st_size > 1000
    assert problems == []
    assert requests and all(url.startswith(server) for url in requests)
    page.close()


def test_page_works_from_a_file(browser, atlas_dir: Path) -> None:
    page, problems, requests = _open(browser, (atlas_dir / "index.html").as_uri())
    assert page.evaluate(BROKEN_IMAGES) == []
    page.goto((atlas_dir / "index.html").as_uri() + "#conv2:5")
    _wait_title(page, "conv2:5")
    page.wait_for_function(ALL_IMAGES_LOADED)
    assert page.locator("#detail-title").inner_text() == "conv2:5"
    assert page.evaluate(BROKEN_IMAGES) == []
    assert problems == [] and all(url.startswith("file://") for url in requests)
    page.close()
