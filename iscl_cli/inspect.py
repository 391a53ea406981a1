"""What ``iscl inspect`` reports about one input volume."""

from __future__ import annotations

from typing import Any

from iscl_cli.volume import Volume


def describe_volume(volume: Volume) -> dict[str, Any]:
    """``volume.info()`` plus ``value_range``: the minimum and maximum over all slices in
    physical units (reads every slice once, one at a time)."""
    low, high = volume.value_range()
    return {**volume.info(), "value_range": [low, high]}
