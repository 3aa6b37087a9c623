"""Shared fixtures: a tiny CNN (fast), the embedded model (loaded once per session), and headless Chromium
with a local HTTP server for the browser tests."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning made torch 50x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# The photo features' store of this session: shared by its tests (and their subprocesses), then removed.
os.environ["DIFFPARAM_CACHE"] = tempfile.mkdtemp(prefix="diffparam-test-cache-")
atexit.register(shutil.rmtree, os.environ["DIFFPARAM_CACHE"], True)

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from diffparam.models.base import Model  # noqa: E402


class TinyNet(nn.Module):
    """Three conv stages and a classifier: enough structure to test hooks and objectives."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU6())
        self.conv3 = nn.Sequential(nn.Conv2d(16, 12, 3, stride=2, padding=1), nn.ReLU())
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.conv3(self.conv2(self.conv1(x)))))


@pytest.fixture
def one_thread():
    """One intra-op thread: on a busy 2-core machine two spinning OpenMP threads run 50x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny() -> Model:
    torch.manual_seed(0)
    return Model(TinyNet(), input_size=32, name="tiny",
                 class_names=["apple", "banana", "cherry", "date", "elderberry"])


@pytest.fixture(scope="session")
def lite0() -> Model:
    from diffparam.models.registry import efficientnet_lite0

    return efficientnet_lite0()


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium through playwright; the test skips where either is missing."""
    if not CHROMIUM.is_file():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (`make test` installs it with apt-get)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """`folder` served over HTTP on 127.0.0.1 (a free port) while the block runs; yields its URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
