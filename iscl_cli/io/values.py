"""Turning float results back into the number type a file stores."""

from __future__ import annotations

import numpy as np


def round_and_clip(values: np.ndarray, dtype: np.dtype, low: float, high: float) -> np.ndarray:
    """``values`` stored as ``dtype``.

    Integer types: rounded to the nearest integer and clipped to ``[low, high]`` (the range
    the file can hold); NaN becomes ``low``. Float types: converted as they are.
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.asarray(values).astype(dtype)
    values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=low, posinf=high, neginf=low)
    return np.clip(np.rint(values), low, high).astype(dtype)


def integer_range(dtype: np.dtype) -> tuple[float, float]:
    """The smallest and largest value an integer ``dtype`` holds (``-inf, inf`` for floats)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return -np.inf, np.inf
    info = np.iinfo(dtype)
    return float(info.min), float(info.max)
