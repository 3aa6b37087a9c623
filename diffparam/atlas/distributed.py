"""Sharding an atlas over processes: torchrun ranks (one per GPU) or `workers` CPU processes.

Ranks talk through a gloo process group, whatever the device: they only exchange the plan,
per-rank timings and a final barrier, never tensors, so gloo on the CPU is all they need (and
NCCL, with its NVLink multicast, is never touched). torchrun sets RANK/WORLD_SIZE/LOCAL_RANK;
`spawn` starts K processes that join a group through a file in a temporary folder.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from diffparam.errors import UserError

TIMEOUT = timedelta(days=7)
"""How long a rank waits for the others (a rank that finishes early waits for the slowest)."""


@dataclass
class Ranks:
    """This process's place among the atlas's processes; a no-op group when `world` is 1."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    group: Any = field(default=None, repr=False)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj`, on every rank."""
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's `obj`, in rank order, on rank 0 (None elsewhere)."""
        if self.world == 1:
            return [obj]
        out: list[Any] | None = [None] * self.world if self.rank == 0 else None
        dist.gather_object(obj, out, dst=0, group=self.group)
        return out

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.world > 1:
            dist.barrier(group=self.group)


PR_SET_PDEATHSIG = 1
"""prctl's option: the signal a process gets when its parent dies (Linux)."""


def launched_ranks() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) outside torchrun."""
    env = os.environ
    return int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))


def join(rank: int, world: int, local_rank: int, init_method: str = "env://") -> Ranks:
    """Join (or create) the gloo group of `world` processes; a plain `Ranks()` for one process."""
    if world == 1:
        return Ranks()
    if dist.is_initialized():  # the caller's own group (maybe NCCL): add a gloo one beside it
        group = dist.new_group(backend="gloo", timeout=TIMEOUT)
        return Ranks(dist.get_rank(), dist.get_world_size(), local_rank, group)
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world,
                            timeout=TIMEOUT)
    return Ranks(rank, world, local_rank, dist.group.WORLD)


def leave(ranks: Ranks) -> None:
    """Tear down a group that `join` created."""
    if ranks.world > 1 and ranks.group is dist.group.WORLD and dist.is_initialized():
        dist.destroy_process_group()


def device_for(device: str, ranks: Ranks) -> str:
    """The device of this rank: under several ranks, `auto`/`cuda` become cuda:LOCAL_RANK."""
    if ranks.world == 1 or device not in ("auto", "cuda"):
        return device
    if not torch.cuda.is_available():
        if device == "cuda":
            raise UserError("device cuda was asked for but no CUDA GPU is available: use `device` cpu")
        return "cpu"
    index = ranks.local_rank % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return f"cuda:{index}"


def cpu_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_threads(workers: int) -> int:
    """Threads per worker so that `workers` processes share this machine's cores."""
    return max(1, cpu_cores() // workers)


def _die_with_parent(parent: int) -> None:
    """Linux: have the kernel send this worker SIGTERM when its parent dies (even by kill -9), so no
    worker renders on for a run that is gone. Elsewhere nothing happens."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(143)


def _worker(index: int, workers: int, store: str, threads: int, parent: int, fn: Callable[..., Any],
            args: tuple) -> None:
    _die_with_parent(parent)
    torch.set_num_threads(threads)
    ranks = join(index, workers, index, init_method=f"file://{store}")
    try:
        fn(ranks, *args)
    finally:
        leave(ranks)


def spawn(fn: Callable[..., Any], workers: int, args: tuple) -> None:
    """Run `fn(ranks, *args)` in `workers` new processes that form a gloo group; wait for them all.

    Each process gets an equal share of the CPU cores (`torch.set_num_threads`).
    """
    folder = tempfile.mkdtemp(prefix="diffparam-atlas-")
    context = mp.start_processes(_worker, args=(workers, os.path.join(folder, "store"),
                                                cpu_threads(workers), os.getpid(), fn, args),
                                 nprocs=workers, join=False, start_method="spawn")
    try:
        while not context.join():
            pass
    except BaseException:  # Ctrl-C, SIGTERM or a worker's error: no worker renders on
        for process in context.processes:
            process.terminate()
        for process in context.processes:
            process.join(10)
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)
