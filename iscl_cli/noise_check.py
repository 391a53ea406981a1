"""Quality control without clean references: does the removed noise still carry image structure?

A denoiser that removes noise leaves a residual (input - output) that does not follow
the image: near an edge of the output, the residual is as likely to be bright as dark.
One that smooths anatomy away leaves a residual that does: the part of a membrane or an
edge it removed lies where the output still shows a fainter copy, with the same sign.

The structure score is the local correlation between the removed noise and the denoised
slice smoothed by a Gaussian of ``SMOOTHING`` pixels (smoothing keeps the image's
structure and drops most of the noise the output may still hold, which would otherwise
correlate with the residual's share of the same noise), in ``WINDOW`` x ``WINDOW``
neighbourhoods, averaged over the slice with each neighbourhood weighted by how much the
smoothed output varies there (flat regions hold no structure to lose). It is signed:

* about 0: the residual does not follow the image (what noise removal leaves);
* positive: the residual repeats the image's structure, i.e. structure was removed
  (smoothed edges, faded membranes); the warning threshold is ``STRUCTURE_WARNING``;
* negative: the residual is the image's structure inverted: the output added structure
  the input lacks, or the noise itself is locked to the structure (charging trails).

docs/quality-control.md has the values real denoisers and deliberately destructive
filters give on every noise model, and why the threshold is where it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, uniform_filter

WINDOW = 7
SMOOTHING = 2.0
STRUCTURE_WARNING = 0.10
EPSILON = 1e-12


def local_correlation(a: np.ndarray, b: np.ndarray, window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of ``a`` and ``b`` in the ``window`` x ``window`` box around each
    pixel, and the local standard deviation of ``a`` there."""
    mean_a, mean_b = uniform_filter(a, window), uniform_filter(b, window)
    var_a = np.clip(uniform_filter(a * a, window) - mean_a**2, 0.0, None)
    var_b = np.clip(uniform_filter(b * b, window) - mean_b**2, 0.0, None)
    covariance = uniform_filter(a * b, window) - mean_a * mean_b
    return covariance / np.sqrt(var_a * var_b + EPSILON), np.sqrt(var_a)


def structure_score(noisy: np.ndarray, denoised: np.ndarray) -> float:
    """How much the removed noise ``noisy - denoised`` follows the denoised slice (-1 to 1; 0 = not at all).

    Both are 2D arrays in the same (physical) units; non-finite pixels are left out.
    """
    noisy, denoised = noisy.astype(np.float64), denoised.astype(np.float64)
    finite = np.isfinite(noisy) & np.isfinite(denoised)
    fill = float(np.median(denoised[finite])) if finite.any() else 0.0
    noisy, denoised = np.where(finite, noisy, fill), np.where(finite, denoised, fill)
    structure = gaussian_filter(denoised, SMOOTHING)
    correlation, weight = local_correlation(structure, noisy - denoised)
    weight = weight * finite
    total = weight.sum()
    return float((correlation * weight).sum() / total) if total > 0 else 0.0


@dataclass
class NoiseCheck:
    """Structure scores of one volume's slices; ``overall`` is their mean."""

    per_slice: list[float]

    @property
    def overall(self) -> float:
        return float(np.mean(self.per_slice)) if self.per_slice else 0.0

    @property
    def warns(self) -> bool:
        return self.overall > STRUCTURE_WARNING

    def summary(self) -> dict[str, object]:
        """What ``--json`` reports."""
        return {"structure": round(self.overall, 4), "per_slice": [round(v, 4) for v in self.per_slice],
                "threshold": STRUCTURE_WARNING, "warning": self.warns}

    def warning(self, what: str) -> str | None:
        """A one-line warning when the removed noise follows the image, else None."""
        if not self.warns:
            return None
        return (f"{what}: the removed noise follows the image's structure (score {self.overall:.2f} > "
                f"{STRUCTURE_WARNING:.2f}): the model may be removing anatomy, not only noise; "
                "look at the --write-noise output (docs/quality-control.md)")
