"""The memory estimate that refuses a render which cannot fit, before anything is allocated."""

from __future__ import annotations

import pytest
import torch

from diffparam import memory
from diffparam.cli import main
from diffparam.cli import render as cli_render
from diffparam.errors import UserError
from diffparam.models.base import Model
from diffparam.param import CPPN, FourierImage


def test_activations_per_pixel_counts_each_layer_output_once(tiny: Model) -> None:
    # TinyNet at 64 px: conv1 8ch at 64² and its ReLU (a new tensor each), conv2 16ch at 32² and its
    # ReLU6, conv3 12ch at 16² and its ReLU, the pooled 12 (pool and flatten share storage), 5 logits.
    per_pixel = memory.activations_per_pixel(tiny)
    expected = (8 * 64 * 64 * 2 + 16 * 32 * 32 * 2 + 12 * 16 * 16 * 2 + 12 * 2 + 5) / (64 * 64)
    assert per_pixel == pytest.approx(expected, rel=0.05)
    assert tiny.cache["activations_per_pixel"] == per_pixel


def test_estimates_grow_with_batch_and_size(tiny: Model) -> None:
    small = memory.render_bytes(tiny, FourierImage(32), 44 * 44)
    batch = memory.render_bytes(tiny, FourierImage(32, batch=8), 44 * 44)
    assert small is not None and batch is not None and 7 * small < batch < 9 * small
    with torch.device("meta"):
        wide = CPPN(32, hidden=4096, depth=8)  # nothing allocated
    assert memory.render_bytes(tiny, wide, 44 * 44) > 2**30  # its weights and activations: > 1 GiB


def test_check_fits_refuses_what_cannot_fit(tiny: Model, monkeypatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(memory, "available", lambda device: 64 * 2**20)  # 64 MiB free
    memory.check_fits(tiny, lambda: FourierImage(32), cpu)
    with pytest.raises(UserError, match=r"needs about .* GiB of memory \(4096 image\(s\) of 256x256 px.*"
                                        r"0\.1 GiB is free on cpu: lower `batch` or `size`"):
        memory.check_fits(tiny, lambda: FourierImage(256, batch=4096), cpu)
    monkeypatch.setenv("DIFFPARAM_NO_MEMORY_CHECK", "1")
    memory.check_fits(tiny, lambda: FourierImage(256, batch=4096), cpu)
    monkeypatch.setattr(memory, "available", lambda device: None)  # unknown: no refusal
    monkeypatch.delenv("DIFFPARAM_NO_MEMORY_CHECK")
    memory.check_fits(tiny, lambda: FourierImage(256, batch=4096), cpu)


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nSee the documentation"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: 9 GB"),
])
def test_running_out_of_memory_is_one_line_and_writes_nothing(error, tmp_path, monkeypatch, capsys) -> None:
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(cli_render, "render", fail)
    (tmp_path / "o.png").write_bytes(b"kept")
    status = main(["render", "blocks.2:3", "--size", "32", "--steps", "2", "--device", "cpu", "--quiet",
                   "--out", str(tmp_path / "o.png")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1
    assert lines[0].startswith("diffparam: error: out of memory (")
    assert lines[0].endswith("lower --batch or --size")
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"] and (tmp_path / "o.png").read_bytes() == b"kept"
