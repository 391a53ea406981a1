"""Render docs/images/noise_models.png: each phantom clean and under each noise model.

Rows: EM and fluorescence phantoms (clean, then the four intensity-domain models at
their default parameters) and the CT phantom (clean, then ``lowdose_ct`` at four doses,
shown in a soft-tissue window). Run from anywhere:

    python benchmarks/make_noise_figure.py [--out PATH] [--size PIXELS] [--seed N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from iscl_cli.phantoms import PHANTOMS
from iscl_cli.simulate import NOISE_MODELS

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "noise_models.png"
INTENSITY_MODELS = ("poisson_gaussian", "correlated", "scanline", "stain")
CT_DOSES = (1e6, 1e5, 5e4, 1e4)  # incident photons per ray
CT_DISPLAY_WINDOW_HU = (-160.0, 240.0)  # soft-tissue window: level 40, width 400
LABEL_HEIGHT = 14
GAP = 4


def to_grey(image: np.ndarray, low: float, high: float) -> Image.Image:
    """An 8-bit greyscale picture of ``image`` with ``low`` as black and ``high`` as white."""
    scaled = np.clip((image - low) / (high - low), 0.0, 1.0)
    return Image.fromarray(np.rint(255 * scaled).astype(np.uint8))


def figure_rows(size: int, seed: int) -> list[list[tuple[str, Image.Image]]]:
    """The figure's tiles, row by row, as (label, picture)."""
    shape = (size, size)
    rows = []
    for phantom in ("em", "fluorescence"):
        clean = PHANTOMS[phantom](shape, np.random.default_rng(seed))
        row = [(f"{phantom} clean", to_grey(clean, 0.0, 1.0))]
        for index, name in enumerate(INTENSITY_MODELS):
            noisy = NOISE_MODELS[name](clean, np.random.default_rng([seed, index]))
            row.append((name, to_grey(noisy, 0.0, 1.0)))
        rows.append(row)
    clean_ct = PHANTOMS["ct"](shape, np.random.default_rng(seed))
    row = [("ct clean (HU)", to_grey(clean_ct, *CT_DISPLAY_WINDOW_HU))]
    for index, photons in enumerate(CT_DOSES):
        noisy = NOISE_MODELS["lowdose_ct"](clean_ct, np.random.default_rng([seed, index]), photons=photons)
        row.append((f"lowdose_ct I0={photons:.0e}", to_grey(noisy, *CT_DISPLAY_WINDOW_HU)))
    rows.append(row)
    return rows


def compose(rows: list[list[tuple[str, Image.Image]]], size: int) -> Image.Image:
    """Lay the tiles out in a grid, each with its label above it."""
    n_cols = max(len(row) for row in rows)
    cell_height = LABEL_HEIGHT + size + GAP
    sheet = Image.new("L", (n_cols * (size + GAP), len(rows) * cell_height), 255)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for row_index, row in enumerate(rows):
        for col_index, (label, tile) in enumerate(row):
            left, top = col_index * (size + GAP), row_index * cell_height
            draw.text((left + 2, top + 1), label, fill=0, font=font)
            sheet.paste(tile, (left, top + LABEL_HEIGHT))
    return sheet


def main() -> None:
    """Parse the options, render the figure, save it and print its size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUTPUT, help="PNG to write")
    parser.add_argument("--size", type=int, default=176, help="side of each tile in pixels")
    parser.add_argument("--seed", type=int, default=3, help="seed of phantoms and noise")
    options = parser.parse_args()
    sheet = compose(figure_rows(options.size, options.seed), options.size)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(options.out, optimize=True)
    print(f"wrote {options.out} ({sheet.width}x{sheet.height}, {options.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
