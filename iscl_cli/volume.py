"""The image-volume type that every reader returns and every writer takes.

A volume is an ordered sequence of 2D float32 slices in physical units (HU for CT,
counts or grey values otherwise) plus whatever is needed to write the same format
back. Slices are read one at a time so that large stacks never sit wholly in memory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from iscl_cli.errors import IsclError


class Volume(ABC):
    """One TIFF stack or one DICOM series, read slice by slice.

    Attributes:
        format: ``"tiff"`` or ``"dicom"``.
        source: the file (TIFF, single DICOM file) or folder (DICOM series) it came from.
        name: the name its output gets inside an output folder: ``scan.tif`` for a TIFF,
            a folder name for a DICOM series.
        shape: ``(rows, cols)`` of every slice.
    """

    format: str
    source: Path
    name: str
    shape: tuple[int, int]

    @abstractmethod
    def __len__(self) -> int:
        """Number of 2D slices."""

    @abstractmethod
    def read_slice(self, index: int) -> np.ndarray:
        """Slice ``index`` as a float32 ``(rows, cols)`` array in physical units."""

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """What ``iscl inspect`` prints, except the value range (see ``value_range``)."""

    @abstractmethod
    def write(self, out_path: Path, slices: Iterable[np.ndarray], note: str, overwrite: bool = False) -> None:
        """Write ``slices`` (float32, physical units, one per input slice, in order) in this
        volume's format, dtype, geometry and metadata to ``out_path``.

        Consumes ``slices`` lazily (one slice in memory at a time). Atomic: everything goes
        to a temporary name next to ``out_path`` and is renamed at the end; on any error the
        temporary output is removed and nothing appears under ``out_path``. What is at
        ``out_path`` when the rename comes (it may have appeared meanwhile) is replaced only
        with ``overwrite``; otherwise it is kept and an IsclError raised. ``note`` (e.g.
        ``"denoised by iscl 0.1.0, model run-20261128-1200/model.pt"``) is recorded in the
        output (TIFF description, DICOM DerivationDescription).
        """

    def read_finite_slice(self, index: int) -> np.ndarray:
        """``read_slice``, refusing a slice with NaN or infinite values (what training reads)."""
        image = self.read_slice(index)
        if not np.isfinite(image).all():
            raise IsclError(f"slice {index} contains NaN or infinite pixel values", self.source)
        return image

    def slices(self) -> Iterator[np.ndarray]:
        """All slices in order, one at a time."""
        for index in range(len(self)):
            yield self.read_slice(index)

    def value_range(self) -> tuple[float, float]:
        """Minimum and maximum over all slices, in physical units (reads every slice)."""
        low, high = np.inf, -np.inf
        for image in self.slices():
            low, high = min(low, float(image.min())), max(high, float(image.max()))
        return low, high


def centre_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The ``height`` x ``width`` middle of a 2D ``image``."""
    top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
    return image[top:top + height, left:left + width]
