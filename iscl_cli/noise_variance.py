"""Whether the noise is pixel-independent shot noise, and the transform that evens it out.

Photon-counting detectors (fluorescence cameras, direct electron counting) record Poisson
counts plus Gaussian read noise: the noise is independent from pixel to pixel and its
variance grows linearly with the signal, ``var = slope * intensity + intercept``. Bright
structures are then several times noisier than the background, and ISCL's bypass term
(the noise of one noisy patch added to an unrelated clean one) puts noise of the wrong
strength on every patch. The generalized Anscombe transform
``2 / slope * sqrt(slope * intensity + 3/8 * slope**2 + intercept)`` makes that noise
close to Gaussian with unit variance everywhere, so training on transformed data teaches
the networks one noise level (docs/training.md#variance-stabilisation).

The variance model is fitted on the noisy training data alone: second differences of
neighbouring pixels estimate the noise (smooth image structure cancels in them; edges are
outliers that a robust spread ignores), their local mean the intensity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from iscl_cli.volume import centre_crop

WHITE_LAG_RATIO = 1.1
"""Noise counts as pixel-independent when second differences of pixels 2 apart vary at most
this much more than those of neighbours (1.0 for white noise; 1.2 to 8 for the structured
noise models of ``iscl simulate``, 1.01 for their Poisson-Gaussian noise; docs/training.md)."""
SIGNAL_DEPENDENCE = 2.0
"""... and as signal-dependent when its fitted variance at the 95th intensity percentile is at
least this many times that at the 5th."""
LINEAR_FIT_R2 = 0.9
"""... and as shot noise when a line explains at least this share of how the variance varies."""
INTENSITY_BINS = 16
MIN_BIN_PIXELS = 500
CROP_SIDE = 512  # the middle of larger slices is enough and keeps the fit fast


@dataclass(frozen=True)
class NoiseVarianceFit:
    """The line ``var = slope * intensity + intercept`` fitted to the noise of some slices.

    ``r2`` is how well the line explains the variance measured in intensity bins,
    ``lag_ratio`` the variance of second differences of pixels 2 apart over that of
    neighbours' (median over the bins; 1.0 for pixel-independent noise), ``variance_ratio`` the fitted variance at the 95th intensity
    percentile over that at the 5th.
    """

    slope: float
    intercept: float
    r2: float
    lag_ratio: float
    variance_ratio: float

    def is_shot_noise(self) -> bool:
        """Whether the noise looks like pixel-independent Poisson-Gaussian noise."""
        return (self.slope > 0 and self.r2 >= LINEAR_FIT_R2 and self.lag_ratio <= WHITE_LAG_RATIO
                and self.variance_ratio >= SIGNAL_DEPENDENCE)

    def describe(self) -> str:
        """One line for the log and the model file."""
        return (f"noise variance {self.slope:.4g} * intensity {self.intercept:+.4g} (fit r2 {self.r2:.2f}), "
                f"{self.variance_ratio:.3g}x from the 5th to the 95th intensity percentile, "
                f"lag-2/lag-1 variance {self.lag_ratio:.2f}")


def second_differences(image: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """``(a - 2b + c) / sqrt(6)`` of three pixels ``lag`` apart along rows and along columns
    (white noise keeps its spread; linear gradients cancel), and the three pixels' mean."""
    rows, cols = image.shape
    triples = [(image[:, :cols - 2 * lag], image[:, lag:cols - lag], image[:, 2 * lag:]),
               (image[:rows - 2 * lag, :], image[lag:rows - lag, :], image[2 * lag:, :])]
    differences = np.concatenate([((a - 2.0 * b + c) / np.sqrt(6.0)).ravel() for a, b, c in triples])
    means = np.concatenate([((a + b + c) / 3.0).ravel() for a, b, c in triples])
    return differences, means


def robust_variance(values: np.ndarray) -> float:
    """The variance of the bulk of ``values`` (median absolute deviation; edges are outliers)."""
    return float((1.4826 * np.median(np.abs(values - np.median(values)))) ** 2)


def binned_variance(differences: np.ndarray, means: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per intensity bin (``edges``): the median intensity and the robust variance of the
    differences; NaN where a bin holds too few pixels."""
    index = np.clip(np.searchsorted(edges, means, side="right") - 1, 0, len(edges) - 2)
    centres, variances = np.full(len(edges) - 1, np.nan), np.full(len(edges) - 1, np.nan)
    for b in range(len(edges) - 1):
        inside = index == b
        if np.count_nonzero(inside) >= MIN_BIN_PIXELS:
            centres[b] = np.median(means[inside])
            variances[b] = robust_variance(differences[inside])
    return centres, variances


def pooled_differences(images: Sequence[np.ndarray], lag: int) -> tuple[np.ndarray, np.ndarray]:
    """``second_differences`` of every image, concatenated."""
    differences, means = zip(*(second_differences(image, lag) for image in images))
    return np.concatenate(differences), np.concatenate(means)


def fit_noise_variance(slices: Sequence[np.ndarray]) -> NoiseVarianceFit:
    """Fit ``var = slope * intensity + intercept`` to the noise of ``slices`` (noisy 2D images)."""
    images = [centre_crop(np.asarray(s, dtype=np.float64), min(CROP_SIDE, s.shape[0]), min(CROP_SIDE, s.shape[1]))
              for s in slices]
    near, near_means = pooled_differences(images, 1)
    edges = np.quantile(near_means, np.linspace(0.0, 1.0, INTENSITY_BINS + 1))
    centres, variances = binned_variance(near, near_means, edges)
    _, far_variances = binned_variance(*pooled_differences(images, 2), edges)
    usable = np.isfinite(variances) & (variances > 0)
    if np.count_nonzero(usable) < 3 or np.ptp(centres[usable]) == 0:
        return NoiseVarianceFit(0.0, float(np.nanmean(variances)) if usable.any() else 0.0, 0.0, np.inf, 1.0)
    slope, intercept = np.polyfit(centres[usable], variances[usable], 1)
    residual = variances[usable] - (slope * centres[usable] + intercept)
    spread = np.sum((variances[usable] - variances[usable].mean()) ** 2)
    r2 = 1.0 - np.sum(residual ** 2) / spread if spread > 0 else 0.0
    both = usable & np.isfinite(far_variances)
    lag_ratio = float(np.median(far_variances[both] / variances[both])) if both.any() else np.inf
    low, high = np.percentile(near_means, (5, 95))
    floor = 1e-12 * max(abs(intercept), 1.0)
    variance_ratio = (slope * high + intercept) / max(slope * low + intercept, floor)
    return NoiseVarianceFit(float(slope), float(intercept), float(r2), lag_ratio, float(variance_ratio))


def anscombe(image: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """The generalized Anscombe transform: noise of variance ``slope * I + intercept`` -> about 1."""
    inside = slope * image.astype(np.float64) + 0.375 * slope * slope + intercept
    return (2.0 / slope * np.sqrt(np.maximum(inside, 0.0))).astype(np.float32)


def inverse_anscombe(values: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """The algebraic inverse of ``anscombe`` (the networks' outputs are transformed clean images)."""
    root = slope * np.maximum(values.astype(np.float64), 0.0) / 2.0
    return ((root * root - 0.375 * slope * slope - intercept) / slope).astype(np.float32)
