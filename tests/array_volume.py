"""An in-memory Volume for testing modules that only need slices (not file formats)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from iscl_cli.volume import Volume


class ArrayVolume(Volume):
    """A (slices, rows, cols) array posing as a volume; ``write`` keeps the slices in ``written``."""

    format = "array"

    def __init__(self, data: np.ndarray, name: str = "array.tif") -> None:
        self.data = np.asarray(data, dtype=np.float32)
        self.source = Path(name)
        self.name = name
        self.shape = self.data.shape[1:]
        self.written: dict[Path, np.ndarray] = {}
        self.reads = 0

    def __len__(self) -> int:
        return self.data.shape[0]

    def read_slice(self, index: int) -> np.ndarray:
        self.reads += 1
        return self.data[index].copy()

    def info(self) -> dict[str, Any]:
        return {"format": self.format, "path": str(self.source), "slices": len(self), "shape": self.shape}

    def write(self, out_path: Path, slices: Iterable[np.ndarray], note: str, overwrite: bool = False) -> None:
        self.written[out_path] = np.stack(list(slices))
