"""Test data for the image I/O tests: pydicom's real sample files and series built from them."""

from __future__ import annotations

import copy
import functools
import random
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import EnhancedCTImageStorage, generate_uid

PYDICOM_FILES = Path(pydicom.data.__file__).parent / "test_files"
CT_SPACING = 5.0  # mm between the slices of the series built below
CT_STEP = 10  # stored-value offset between neighbouring slices, so their order is visible in the pixels


def pydicom_file(name: str) -> Path:
    """A sample file shipped inside pydicom (never downloaded)."""
    path = PYDICOM_FILES / name
    assert path.exists(), f"pydicom sample {name} is not installed"
    return path


@functools.lru_cache(maxsize=1)
def ct_small() -> pydicom.Dataset:
    """CT_small.dcm, read once (callers copy it before changing anything)."""
    return pydicom.dcmread(pydicom_file("CT_small.dcm"))


def ct_series(folder: Path, count: int = 4, *, with_positions: bool = True, **changes: object) -> list[Path]:
    """Write ``count`` copies of CT_small.dcm as one series under scrambled file names.

    Slice ``k`` (in space) lies ``k * CT_SPACING`` mm along the normal and holds the
    original stored values plus ``k * CT_STEP``; InstanceNumber is ``k + 1``. The file
    names do not follow the slice order, so reading in name order would be wrong.
    ``changes`` are set on every copy (e.g. ``BitsStored=12``). Returns the paths in slice order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    source = ct_small()
    series_uid = generate_uid()
    file_numbers = list(range(count))
    random.Random(7).shuffle(file_numbers)
    paths = []
    for k, file_number in enumerate(file_numbers):
        dataset = copy.deepcopy(source)
        dataset.SeriesInstanceUID = series_uid
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.InstanceNumber = k + 1
        x, y, z = (float(v) for v in source.ImagePositionPatient)
        dataset.ImagePositionPatient = [x, y, z + k * CT_SPACING]
        if not with_positions:
            del dataset.ImagePositionPatient
        dataset.PixelData = (source.pixel_array + k * CT_STEP).astype(np.int16).tobytes()
        for keyword, value in changes.items():
            setattr(dataset, keyword, value)
        path = folder / f"image_{file_number:02d}.dcm"
        dataset.save_as(path)
        paths.append(path)
    return paths


def ct_slice_hu(k: int) -> np.ndarray:
    """Slice ``k`` of ``ct_series`` in Hounsfield units."""
    source = ct_small()
    return (source.pixel_array + k * CT_STEP).astype(np.float32) + float(source.RescaleIntercept)


def enhanced_ct(path: Path, frames: int = 4) -> np.ndarray:
    """Write an enhanced (multi-frame) CT built from CT_small: frames stored from the highest
    position down, each with its own RescaleIntercept (``-1024 - k``), in functional groups.

    Returns the expected slices in HU, in spatial order (lowest position first).
    """
    source = ct_small()
    dataset = copy.deepcopy(source)
    dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID = EnhancedCTImageStorage
    dataset.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "RescaleSlope", "RescaleIntercept"):
        delattr(dataset, keyword)
    dataset.NumberOfFrames = frames
    shared = Dataset()
    shared.PlaneOrientationSequence = [Dataset()]
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    stored, per_frame = [], []
    for frame in range(frames):
        k = frames - 1 - frame  # spatial rank: frame 0 lies highest
        group = Dataset()
        group.PlanePositionSequence = [Dataset()]
        group.PlanePositionSequence[0].ImagePositionPatient = [0.0, 0.0, k * CT_SPACING]
        group.PixelValueTransformationSequence = [Dataset()]
        transform = group.PixelValueTransformationSequence[0]
        transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 1, -1024 - k, "HU"
        group.CTImageFrameTypeSequence = [Dataset()]
        group.CTImageFrameTypeSequence[0].FrameType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
        per_frame.append(group)
        stored.append(source.pixel_array + k * CT_STEP)
    dataset.SharedFunctionalGroupsSequence = [shared]
    dataset.PerFrameFunctionalGroupsSequence = per_frame
    dataset.PixelData = np.stack(stored).astype(np.int16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path)
    return np.stack([source.pixel_array + k * CT_STEP - (1024.0 + k) for k in range(frames)]).astype(np.float32)
