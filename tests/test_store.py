"""The photo features' store: a second run with the same model and photos reads them from disk;
other weights, other photos or "off" do not; a damaged or unwritable store changes nothing."""

from __future__ import annotations

import copy

import pytest
import torch

from diffparam.evaluate import photos as P
from diffparam.evaluate import store
from diffparam.evaluate.photos import photo_pool
from diffparam.io import save_images


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A store of its own and a folder of 10 photos."""
    monkeypatch.setenv("DIFFPARAM_CACHE", str(tmp_path / "store"))
    photos = tmp_path / "photos"
    g = torch.Generator().manual_seed(0)
    for i in range(10):
        save_images(torch.rand(1, 3, 40, 48, generator=g), photos / f"p{i}.png")
    return photos


def _fail(*_args, **_kwargs):
    raise AssertionError("computed again")


def test_a_second_run_reads_the_features(tiny, folder, monkeypatch) -> None:
    first = photo_pool(tiny, folder)
    made = first.features(tiny, ["conv2"])["conv2"], first.statistics(tiny), first.embedding(tiny)
    assert first.store_path is not None and first.store_path.is_file()
    again = copy.deepcopy(tiny)  # another process: a new Model with the same weights
    again.cache.clear()
    monkeypatch.setattr(P, "layer_features", _fail)
    monkeypatch.setattr(P, "feature_statistics", _fail)
    monkeypatch.setattr(P, "embedding", _fail)
    pool = photo_pool(again, folder)
    assert torch.equal(pool.features(again, ["conv2"])["conv2"], made[0])
    assert all(torch.equal(pool.statistics(again)[k], v) for k, v in made[1].items())
    assert torch.equal(pool.embedding(again), made[2]) and pool._crops is None  # no crops were cut


def test_other_weights_or_photos_get_another_file(tiny, folder) -> None:
    path = store.path_for(tiny, folder)
    other = copy.deepcopy(tiny)
    with torch.no_grad():
        other.module.conv1[0].bias[0] += 1e-3
    assert store.path_for(other, folder) != path
    assert store.path_for(tiny, None) != path
    save_images(torch.rand(1, 3, 40, 48), folder / "p0.png")  # a photo changed
    assert store.path_for(tiny, folder) != path


def test_off_damaged_and_unwritable(tiny, folder, monkeypatch, tmp_path) -> None:
    path = store.path_for(tiny, folder)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a torch file")
    assert photo_pool(tiny, folder).features(tiny, ["conv1"])["conv1"].shape[1] == 8
    monkeypatch.setenv("DIFFPARAM_CACHE", "off")
    assert store.folder() is None and store.path_for(tiny, folder) is None
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("DIFFPARAM_CACHE", str(blocker / "below"))  # cannot be made
    tiny.cache.clear()
    assert photo_pool(tiny, folder).embedding(tiny).shape == (len(photo_pool(tiny, folder).crops), 12)
