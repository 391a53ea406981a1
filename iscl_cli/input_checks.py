"""What denoising makes of odd input pixels, said out loud.

NaN and infinite pixels cannot go through the network (one would spread over its whole
receptive field): each is replaced by its nearest finite neighbour for the network and
comes out as it went in. Values outside the model's fitted intensity range are clipped
to it (``IntensityMapping.to_model``): the output is flat there. A volume with a few of
either gets a note; a slice mostly outside the range is refused, because the model was
evidently trained on other data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from iscl_cli.errors import IsclError
from iscl_cli.intensity import IntensityMapping

LOG = logging.getLogger("iscl")

CLIPPED_NOTE_FRACTION = 0.01
"""A volume with at least this fraction of its pixels outside the model's range gets a note."""

CLIPPED_REFUSAL_FRACTION = 0.5
"""A slice with more than this fraction outside the model's range is refused (unless allowed)."""


def fill_non_finite(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``image`` with every NaN or infinite pixel replaced by its nearest finite neighbour
    (zero when there is none), and the mask of those pixels (None when there are none)."""
    odd = ~np.isfinite(image)
    if not odd.any():
        return image, None
    if odd.all():
        return np.zeros_like(image), odd
    nearest = ndimage.distance_transform_edt(odd, return_distances=False, return_indices=True)
    return image[tuple(nearest)], odd


@dataclass
class InputTally:
    """Counts, over one volume, the pixels denoising kept as they were or clipped."""

    source: Path
    mapping: IntensityMapping
    allow_clipping: bool = False
    pixels: int = 0
    non_finite: int = 0
    non_finite_slices: int = 0
    clipped: int = 0

    def add(self, index: int, image: np.ndarray, odd: np.ndarray | None) -> None:
        """Count slice ``index`` (``odd``: its non-finite pixels); refuse it when mostly outside the range."""
        finite = image if odd is None else image[~odd]
        low, high = self.mapping.noisy_low, self.mapping.noisy_high
        clipped = int(np.count_nonzero((finite < low) | (finite > high)))
        if finite.size and clipped > CLIPPED_REFUSAL_FRACTION * finite.size and not self.allow_clipping:
            raise IsclError(f"slice {index}: {clipped / finite.size:.1%} of its pixels (values {finite.min():g} to "
                            f"{finite.max():g}) lie outside the model's input range [{low:g}, {high:g}] and would be "
                            "clipped: the model was trained on other data; pass --allow-clipping to denoise it anyway",
                            self.source)
        self.pixels += image.size
        self.clipped += clipped
        if odd is not None:
            self.non_finite += int(np.count_nonzero(odd))
            self.non_finite_slices += 1

    def report(self) -> None:
        """The notes about the volume just denoised."""
        if self.non_finite:
            LOG.warning("%s: %d NaN or infinite pixel(s) in %d slice(s) are kept as they were in the output; "
                        "the rest was denoised", self.source, self.non_finite, self.non_finite_slices)
        if self.pixels and self.clipped >= CLIPPED_NOTE_FRACTION * self.pixels:
            LOG.warning("%s: %.1f %% of the pixels lie outside the model's input range [%g, %g] and were clipped "
                        "(flat at its limits in the output); denoise with a model trained on data like this "
                        "(docs/troubleshooting.md)", self.source, 100 * self.clipped / self.pixels,
                        self.mapping.noisy_low, self.mapping.noisy_high)
