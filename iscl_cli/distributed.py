"""Splitting work over processes: ``--shard K/N`` for job arrays, and the ranks ``torchrun`` starts.

A shard is every N-th item of a fixed order, starting at the K-th, so the N shards of a
job array cover the order exactly once. The ranks of a torchrun job split items the
same way (rank r of W takes shard r/W), and both compose: ``--shard K/N`` under torchrun
gives rank r the items ``[K::N][r::W]``. Ranks talk through ``torch.distributed``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from iscl_cli.errors import IsclError

Item = TypeVar("Item")
SHARD_PATTERN = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    """Items ``index``, ``index + count``, ``index + 2 * count``, ... of an order (``index`` from 0)."""

    index: int = 0
    count: int = 1

    def pick(self, items: Sequence[Item]) -> list[Item]:
        """This shard's items, in their order."""
        return list(items[self.index::self.count])


def parse_shard(text: str) -> Shard:
    """``"1/4"`` -> ``Shard(1, 4)``; anything else is one line naming what is wrong."""
    match = SHARD_PATTERN.fullmatch(text)
    if match is None:
        raise IsclError(f"--shard takes K/N, the shard K (from 0) of N, e.g. --shard 0/4 (got {text!r})")
    index, count = int(match[1]), int(match[2])
    if count < 1 or index >= count:
        raise IsclError(f"--shard {text}: K must be 0 to N-1 and N at least 1 (e.g. 0/{max(count, 2)} to "
                        f"{max(count, 2) - 1}/{max(count, 2)})")
    return Shard(index, count)


@dataclass(frozen=True)
class World:
    """This process's place among the processes torchrun started (one process without torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0  # the rank among the processes on this machine: which GPU is its own

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints summaries and writes shared files."""
        return self.rank == 0

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.size)


def torchrun_world() -> World:
    """The rank, world size and local rank torchrun puts in the environment."""
    try:
        return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                     int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise IsclError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (torchrun sets them)") from None


@contextmanager
def process_group(world: World, backend: str = "gloo") -> Iterator[None]:
    """Join the other ranks for the duration (nothing to join for one process); ``backend``
    is gloo for CPU tensors and Python objects, nccl for CUDA tensors."""
    if world.size == 1:
        yield
        return
    dist.init_process_group(backend, rank=world.rank, world_size=world.size)  # MASTER_ADDR/PORT from torchrun
    try:
        yield
    finally:
        dist.destroy_process_group()


def rank_device(device: torch.device, world: World) -> torch.device:
    """A rank's own GPU, ``cuda:LOCAL_RANK``, when ``device`` is CUDA without an index; else ``device``."""
    if device.type != "cuda" or device.index is not None or world.size == 1:
        return device
    if world.local_rank >= torch.cuda.device_count():
        raise IsclError(f"torchrun started local rank {world.local_rank}, but torch sees only "
                        f"{torch.cuda.device_count()} GPU(s) here; start at most that many processes per machine "
                        "(--nproc-per-node)")
    return torch.device("cuda", world.local_rank)


def gathered_in_order(world: World, items: list[Any]) -> list[Any]:
    """Every rank's ``items`` (its shard ``world.shard`` of an order), put back into that
    order; every rank gets the whole list. Items travel pickled (gloo)."""
    if world.size == 1:
        return list(items)
    parts: list[list[Any]] = [[] for _ in range(world.size)]
    dist.all_gather_object(parts, items)
    merged: list[Any] = [None] * sum(map(len, parts))
    for rank, part in enumerate(parts):
        merged[rank::world.size] = part
    return merged
