"""What ``iscl inspect`` reports about one input volume."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from iscl_cli.errors import IsclError
from iscl_cli.io import open_volumes
from iscl_cli.volume import Volume


def describe_volume(volume: Volume) -> dict[str, Any]:
    """``volume.info()`` plus ``value_range``: the minimum and maximum over all slices in
    physical units (reads every slice once, one at a time)."""
    low, high = volume.value_range()
    return {**volume.info(), "value_range": [low, high]}


def describe_inputs(specs: Sequence[str], channel: int | None = None) -> tuple[list[dict[str, Any]], list[IsclError]]:
    """``describe_volume`` of every volume the inputs hold, and every problem met on the
    way (one per file, path or series); a bad file never hides the others."""
    problems: list[IsclError] = []
    descriptions = []
    for volume in open_volumes(specs, channel=channel, on_error=problems.append):
        try:
            descriptions.append(describe_volume(volume))
        except IsclError as error:  # a slice that cannot be read or decoded
            problems.append(error)
    return descriptions, problems
