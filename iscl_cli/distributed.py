"""Splitting work over processes: ``--shard K/N`` for job arrays, and the ranks ``torchrun`` starts.

A shard is every N-th item of a fixed order, starting at the K-th, so the N shards of a
job array cover the order exactly once. The ranks of a torchrun job split items the
same way (rank r of W takes shard r/W), and both compose: ``--shard K/N`` under torchrun
gives rank r the items ``[K::N][r::W]``. Ranks talk through ``torch.distributed``; in
training, DistributedDataParallel averages the gradients (``data_parallel``).
"""

from __future__ import annotations

import copy
import inspect
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from iscl_cli.errors import IsclError
from models.iscl import ISCL

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
def process_group(world: World, device: torch.device | None = None) -> Iterator[None]:
    """Join the other ranks for the duration (nothing to join for one process): over nccl
    when the ranks' tensors live on ``device``, a CUDA GPU, else over gloo (CPU tensors and
    Python objects)."""
    if world.size == 1:
        yield
        return
    backend = "gloo"
    if device is not None and device.type == "cuda":
        torch.cuda.set_device(device)  # nccl's object collectives use the current device
        backend = "nccl"
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


def from_every_rank(world: World, value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank (pickled on the way)."""
    if world.size == 1:
        return [value]
    values: list[Any] = [None] * world.size
    dist.all_gather_object(values, value)
    return values


def gathered_in_order(world: World, items: list[Any]) -> list[Any]:
    """Every rank's ``items`` (its shard ``world.shard`` of an order), put back into that
    order; every rank gets the whole list."""
    parts = from_every_rank(world, items)
    merged: list[Any] = [None] * sum(map(len, parts))
    for rank, part in enumerate(parts):
        merged[rank::world.size] = part
    return merged


def shared_from_main(world: World, value: Any) -> Any:
    """Rank 0's ``value``, on every rank."""
    if world.size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def rank_seed(seed: int, rank: int) -> int | list[int]:
    """The seed of a rank's own random stream: ``seed`` itself on rank 0 (so that one
    process draws what a plain run draws), the pair (seed, rank) on the others."""
    return seed if rank == 0 else [seed, rank]


def rank_torch_seed(seed: int, rank: int) -> int:
    """``rank_seed`` as the single integer ``torch.manual_seed`` takes."""
    return seed if rank == 0 else int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


# Keep buffers out of every forward pass (they still go from rank 0 to all at wrapping);
# torch 2.13 renamed DDP's broadcast_buffers and warns about the old name.
NO_BUFFER_SYNC_IN_FORWARD = ({"forward_sync_buffers": False}
                             if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                             else {"broadcast_buffers": False})


def data_parallel(model: ISCL, device: torch.device, world: World) -> ISCL:
    """What ``ISCL.train_step`` runs on to average gradients over the ranks: ``model`` itself
    for one process, else a shallow copy whose five networks are DistributedDataParallel
    wrappers of ``model``'s own (so ``model`` keeps its parameters and state-dict names).

    Each network is wrapped on its own because one ISCL step is three updates, each the
    backward pass of a different loss into different networks: DDP averages a network's
    gradients in the backward pass that reaches its weights. Wrapping broadcasts rank 0's
    weights and buffers. Buffers (the running batch statistics) are not synchronised by DDP
    in forward passes; ``average_buffers`` averages them after each step instead.
    """
    if world.size == 1:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    view = copy.copy(model)
    view._modules = {name: DistributedDataParallel(net, device_ids=device_ids, **NO_BUFFER_SYNC_IN_FORWARD)
                     for name, net in model.named_children()}
    return view


def average_buffers(model: torch.nn.Module, world: World) -> None:
    """Replace every floating-point buffer of ``model`` (running means and variances) by its mean over the ranks."""
    if world.size == 1:
        return
    buffers = [buffer for buffer in model.buffers() if buffer.is_floating_point()]
    flat = torch.cat([buffer.flatten() for buffer in buffers])
    dist.all_reduce(flat)
    flat /= world.size
    for buffer, averaged in zip(buffers, flat.split([buffer.numel() for buffer in buffers]), strict=True):
        buffer.copy_(averaged.view_as(buffer))


def averaged_numbers(numbers: dict[str, float], world: World, device: torch.device) -> dict[str, float]:
    """``numbers`` (the same keys on every rank) averaged over the ranks."""
    if world.size == 1:
        return numbers
    values = torch.tensor(list(numbers.values()), dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return dict(zip(numbers, (values / world.size).tolist(), strict=True))
