"""The memory iscl lets itself take, so that a huge or hostile input is refused before it is allocated.

A compressed image can decode to far more than its file size (a 2.4 MB deflate TIFF to
5 GB), and a header can claim any size; sizes are checked against this budget before
any pixel is decoded.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

from iscl_cli.errors import IsclError

SLICE_FLOAT_COPIES = 8
"""float32 copies of a slice that denoising holds at once: the slice read, in model units, the
blended output and its weights, the result in physical units, the next slice being read,
and room for the tiles."""


def memory_budget() -> int:
    """Half the machine's memory, or half the process's address-space limit when that is lower."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    return min(physical, limit if limit != resource.RLIM_INFINITY else physical) // 2


def slice_bytes(rows: int, cols: int, decoded_bytes: int) -> int:
    """The memory one slice of ``rows`` x ``cols`` takes through iscl when its reader decodes
    ``decoded_bytes`` at a time (a TIFF page, a DICOM frame)."""
    return decoded_bytes + rows * cols * 4 * SLICE_FLOAT_COPIES


def check_slice_fits(rows: int, cols: int, decoded_bytes: int, path: str | Path) -> None:
    """Refuse slices that would not fit the memory budget, before anything is decoded."""
    needed, budget = slice_bytes(rows, cols, decoded_bytes), memory_budget()
    if needed > budget:
        raise IsclError(f"slices of {rows}x{cols} pixels ({rows * cols / 1e6:.0f} Mpixel) would need about "
                        f"{format_bytes(needed)} of memory each, more than the {format_bytes(budget)} iscl allows "
                        "itself here (half of the memory it may use); crop or split the image", path)


def format_bytes(count: int) -> str:
    """``1.5 GiB``, ``12 MiB``."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"
