"""Splitting work over processes: ``--shard K/N`` for job arrays.

A shard is every N-th item of a fixed order, starting at the K-th, so the N shards of a
job array cover the order exactly once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

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
