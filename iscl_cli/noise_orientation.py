"""Whether the noise has a direction: artefacts that run along the rows (or columns) of a scan.

A scanning microscope writes its image row by row, left to right: line jitter gives every
row its own offset, and charging leaves trails after each edge along the row. Turned a
quarter turn, such noise runs along the columns, which the instrument never produces; so
training augments noisy patches only with the poses that keep it as it was
(``models.iscl.NOISE_POSES``), and test-time averaging uses the same ones. The clean
domain keeps all 8 poses: image structure has no preferred direction.

The test: row-wise artefacts make neighbouring rows differ more than neighbouring pixels
of a row. The ratio of the squared mean absolute difference between rows to that along
rows is about 1 for noise without a direction, whatever the image (measured by
``benchmarks/noise_orientation_test.py``), and far from 1 for scan artefacts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iscl_cli.errors import IsclError
from iscl_cli.intensity import random_slices
from iscl_cli.volume import Volume

ORIENTATION_CHOICES = ("auto", "any", "rows", "columns")
# A row/column difference ratio beyond this (or below its inverse) is directional noise; on the
# simulated noise models the medians were 1.00 without a direction, 2.2 to 2.4 with one.
DIRECTIONAL_RATIO = 1.5
ORIENTATION_TEST_SLICES = 16


def check_noise_orientation(value: str) -> None:
    """Refuse a ``--noise-orientation`` value that is not one of ``ORIENTATION_CHOICES``."""
    if value not in ORIENTATION_CHOICES:
        raise IsclError(f"--noise-orientation must be one of {', '.join(ORIENTATION_CHOICES)} (got {value!r})")


def row_difference_ratio(image: np.ndarray) -> float:
    """``(mean |difference between rows| / mean |difference along rows|) ** 2`` of one slice
    (nan for a slice without variation along its rows)."""
    pixels = image.astype(np.float64)
    along_rows = np.abs(np.diff(pixels, axis=1)).mean()
    between_rows = np.abs(np.diff(pixels, axis=0)).mean()
    return float((between_rows / along_rows) ** 2) if along_rows > 0 else float("nan")


def orientation_of_ratio(ratio: float) -> str:
    """``rows``, ``columns`` or ``any`` for a row/column difference ratio."""
    if ratio > DIRECTIONAL_RATIO:
        return "rows"
    if ratio < 1 / DIRECTIONAL_RATIO:
        return "columns"
    return "any"


def measure_noise_orientation(noisy: Sequence[Volume], seed: int) -> tuple[str, float]:
    """The orientation of the noise in ``noisy`` and the median row/column difference ratio
    of ``ORIENTATION_TEST_SLICES`` random slices it was decided on."""
    ratios = [row_difference_ratio(image) for image in
              random_slices(noisy, np.random.default_rng(seed), ORIENTATION_TEST_SLICES)]
    finite = [ratio for ratio in ratios if np.isfinite(ratio)]
    if not finite:
        return "any", float("nan")
    ratio = float(np.median(finite))
    return orientation_of_ratio(ratio), ratio
