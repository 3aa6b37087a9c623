"""Shared fixtures: a tiny CNN (fast) and the embedded model (loaded once per session)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

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
