"""Quality control without clean references: does the removed noise still carry image structure?

A denoiser that removes noise leaves a residual (input - output) that looks like noise:
near any pixel it does not follow the output image. One that removes anatomy (smooths
membranes away, flattens edges) or invents it (a blob that is not in the input) leaves a
residual that does: where the output has an edge, the residual has a matching one.

The measure is the local correlation between the denoised slice and the removed noise,
in ``window`` x ``window`` neighbourhoods, averaged in absolute value over the slice and
weighted by how much the output varies there (flat regions carry no structure to
remove). Pure noise gives a small positive value from chance alone, so the same measure
with the residual shifted by a few windows (which breaks any alignment with the image
but keeps every statistic of the residual) is subtracted: ``structure = measured -
chance``. About 0 means no structure in the residual; the threshold for a warning and
the values real denoisers give are in docs/quality-control.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter

WINDOW = 7
# A residual whose structure score exceeds this gets a warning (see docs/quality-control.md).
STRUCTURE_WARNING = 0.10
EPSILON = 1e-12


def local_correlation(a: np.ndarray, b: np.ndarray, window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of ``a`` and ``b`` in the ``window`` x ``window`` box around each
    pixel, and the local standard deviation of ``a`` (the weight of that pixel)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    mean_a, mean_b = uniform_filter(a, window), uniform_filter(b, window)
    var_a = np.clip(uniform_filter(a * a, window) - mean_a**2, 0.0, None)
    var_b = np.clip(uniform_filter(b * b, window) - mean_b**2, 0.0, None)
    covariance = uniform_filter(a * b, window) - mean_a * mean_b
    return covariance / np.sqrt(var_a * var_b + EPSILON), np.sqrt(var_a)


def _weighted_mean_abs(correlation: np.ndarray, weight: np.ndarray) -> float:
    total = weight.sum()
    return float((np.abs(correlation) * weight).sum() / total) if total > 0 else 0.0


def structure_score(noisy: np.ndarray, denoised: np.ndarray, window: int = WINDOW) -> float:
    """How much the removed noise ``noisy - denoised`` follows the denoised image, above chance.

    Both are 2D arrays in the same units. Returns about 0 for a residual that is pure
    noise, up to about 1 for a residual that is a copy of the image's local structure.
    """
    residual = noisy.astype(np.float64) - denoised
    correlation, weight = local_correlation(denoised, residual, window)
    measured = _weighted_mean_abs(correlation, weight)
    shift = tuple(min(3 * window, max(size // 2, 1)) for size in residual.shape)
    chance_correlation, _ = local_correlation(denoised, np.roll(residual, shift, axis=(0, 1)), window)
    chance = _weighted_mean_abs(chance_correlation, weight)
    return measured - chance


@dataclass
class NoiseCheck:
    """Structure scores of one volume: per slice, overall (the mean), and whether it warns."""

    per_slice: list[float]

    @property
    def overall(self) -> float:
        return float(np.mean(self.per_slice)) if self.per_slice else 0.0

    @property
    def warns(self) -> bool:
        return self.overall > STRUCTURE_WARNING

    def summary(self) -> dict[str, object]:
        return {"structure": round(self.overall, 4), "per_slice": [round(v, 4) for v in self.per_slice],
                "threshold": STRUCTURE_WARNING, "warning": self.warns}
