"""Synthetic CT series as a scanner writes them: one DICOM file per slice, stored values + rescale to HU.

The quality benchmark and the end-to-end tests feed low-dose CT to ``iscl train`` and
``iscl denoise`` as DICOM series, the way CT users have it, not as TIFF.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom.uid
from pydicom.dataset import Dataset, FileMetaDataset

from iscl_cli.io.atomic import atomic_path

RESCALE_INTERCEPT_HU = -1024.0  # stored value 0 is -1024 HU, as on most scanners
STORED_BITS = 12
SOFT_TISSUE_WINDOW = (40.0, 400.0)
STUDY_DATE = "20260101"  # fixed, so that the same phantom gives the same files  # centre, width in HU: the VOI window a reader opens the series with


def write_ct_series(folder: Path, slices_hu: Sequence[np.ndarray], pixel_mm: float, slice_mm: float = 2.5,
                    description: str = "synthetic CT") -> list[Path]:
    """Write ``slices_hu`` (2D float arrays in HU) as one CT series of unsigned 12-bit files.

    Slice ``k`` is ``folder/slice_KKK.dcm`` at ``k * slice_mm`` along the normal; values are
    rounded and clipped to the 12-bit stored range (-1024 to 3071 HU). Each file is written
    atomically. Returns the paths in slice order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame_of_reference = (pydicom.uid.generate_uid() for _ in range(3))
    paths = []
    for index, image in enumerate(slices_hu):
        dataset = _ct_slice(np.asarray(image), index, pixel_mm, slice_mm, description)
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID = study, series
        dataset.FrameOfReferenceUID = frame_of_reference
        path = folder / f"slice_{index:03d}.dcm"
        with atomic_path(path) as temporary:
            dataset.save_as(temporary, enforce_file_format=True)
        paths.append(path)
    return paths


def _ct_slice(image: np.ndarray, index: int, pixel_mm: float, slice_mm: float, description: str) -> Dataset:
    """The header and pixel data of one CT Image Storage instance (UIDs of the series set by the caller)."""
    stored = np.clip(np.rint(image.astype(np.float64)) - RESCALE_INTERCEPT_HU, 0, 2**STORED_BITS - 1).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = pydicom.uid.CTImageStorage
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "CT"
    dataset.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    dataset.PatientName = "Phantom^Synthetic"
    dataset.PatientID = "ISCL-PHANTOM"
    # Type 2 attributes: present, empty where a phantom has no value.
    dataset.PatientBirthDate, dataset.PatientSex = "", "O"
    dataset.StudyDate, dataset.StudyTime, dataset.StudyID = STUDY_DATE, "120000", "1"
    dataset.ReferringPhysicianName, dataset.AccessionNumber = "", ""
    dataset.Manufacturer, dataset.PatientPosition = "iscl phantom", "HFS"
    dataset.PositionReferenceIndicator, dataset.BodyPartExamined = "", "CHEST"
    dataset.AcquisitionNumber = 1
    dataset.SeriesDescription = description
    dataset.SeriesNumber = 1
    dataset.InstanceNumber = index + 1
    dataset.ImagePositionPatient = [0.0, 0.0, index * slice_mm]
    dataset.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    dataset.PixelSpacing = [pixel_mm, pixel_mm]
    dataset.SliceThickness = slice_mm
    dataset.KVP = 120
    dataset.Rows, dataset.Columns = stored.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, STORED_BITS, STORED_BITS - 1
    dataset.PixelRepresentation = 0
    dataset.RescaleIntercept, dataset.RescaleSlope, dataset.RescaleType = RESCALE_INTERCEPT_HU, 1.0, "HU"
    dataset.WindowCenter, dataset.WindowWidth = SOFT_TISSUE_WINDOW
    dataset.PixelData = stored.tobytes()
    return dataset
