"""The one result type: its default writer, its options, and what it holds."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from diffparam.errors import UserError
from diffparam.result import Result


def test_save_writes_a_grid_separate_files_or_named_files(tmp_path) -> None:
    result = Result(torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0)))
    assert result.save(tmp_path / "grid.png") == [tmp_path / "grid.png"]
    assert Image.open(tmp_path / "grid.png").size == (2 * 10 + 2, 2 * 10 + 2)  # 2x2 grid, 2 px gaps
    assert result.save(tmp_path / "s.png", separate=True) == [tmp_path / f"s_{i}.png" for i in range(3)]
    named = result.save(tmp_path / "units", names=["a", "b", "c"])
    assert named == [tmp_path / "units" / f"{n}.png" for n in "abc"]
    assert set(result.files.values()) == {tmp_path / "grid.png", *named,
                                          *(tmp_path / f"s_{i}.png" for i in range(3))}


def test_save_says_what_it_takes(tmp_path) -> None:
    result = Result(torch.rand(2, 3, 8, 8))
    with pytest.raises(UserError, match="3 names for 2 images: give one name each"):
        result.save(tmp_path, names=["a", "b", "c"])
    with pytest.raises(UserError, match=r"this result's save\(\) takes separate, names, got frames"):
        result.save(tmp_path / "x.png", frames=3)
    assert not any(tmp_path.iterdir())


def test_metrics_and_extras_read_as_attributes() -> None:
    result = Result(torch.zeros(1, 3, 4, 4), metrics={"style_loss": 0.5}, extras={"mesh": "m"})
    assert result.style_loss == 0.5 and result.mesh == "m"
    with pytest.raises(AttributeError, match=r"no 'colour': its metrics are \['style_loss'\], its extras"):
        result.colour  # noqa: B018
    with pytest.raises(TypeError, match="not subscriptable"):
        result["units"]
