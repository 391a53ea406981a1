"""Side-by-side PNG previews (noisy | denoised | removed noise ...) for people to look at."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from iscl_cli.io.atomic import atomic_path

GAP = 4
LABEL_HEIGHT = 14


def to_grey8(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Scale ``[low, high]`` to 0..255 (clipped) for display."""
    scaled = (image.astype(np.float32) - low) / max(high - low, 1e-12)
    return (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_panels(path: Path, rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str],
                ranges: Sequence[tuple[float, float]]) -> None:
    """Write a grid of greyscale panels as one PNG.

    ``rows[r][c]`` is a 2D array; column ``c`` is displayed with the range ``ranges[c]`` and
    labelled ``titles[c]`` (so e.g. noisy, denoised and reference share one grey scale and the
    removed noise gets its own symmetric one).
    """
    height = max(panel.shape[0] for row in rows for panel in row)
    widths = [max(row[c].shape[1] for row in rows) for c in range(len(titles))]
    canvas = Image.new("L", (sum(widths) + GAP * (len(widths) - 1),
                             LABEL_HEIGHT + len(rows) * height + GAP * (len(rows) - 1)), color=255)
    draw = ImageDraw.Draw(canvas)
    left = 0
    for column, (title, width, (low, high)) in enumerate(zip(titles, widths, ranges)):
        draw.text((left + 2, 1), title, fill=0)
        for r, row in enumerate(rows):
            canvas.paste(Image.fromarray(to_grey8(row[column], low, high)),
                         (left, LABEL_HEIGHT + r * (height + GAP)))
        left += width + GAP
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        canvas.save(temporary, format="PNG")
