"""DICOM series read frame by frame in modality units, written back as a derived series.

At open only headers are read (pixel data stays on disk); a frame is decoded when its
slice is asked for. Every frame of every instance is one slice; slices are ordered by
their position along the slice normal. The output is a new series (new UIDs, DERIVED
image type) in the same study and frame of reference, one file per input file,
uncompressed explicit VR little endian, pixel data written frame by frame.
"""

from __future__ import annotations

import copy
import logging
import math
import struct
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pydicom.uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import as_pixel_options, get_decoder

from iscl_cli import __version__
from iscl_cli.errors import IsclError
from iscl_cli.io.atomic import atomic_path, ensure_not_input
from iscl_cli.io.values import round_and_clip
from iscl_cli.memory import check_slice_fits, format_bytes
from iscl_cli.volume import Volume

LOG = logging.getLogger("iscl")

DEFER_SIZE = 4096
"""Header values longer than this (pixel data, large private blobs) stay on disk until used."""

SERIES_DESCRIPTION_SUFFIX = " (iscl denoised)"
SERIES_NUMBER_OFFSET = 1000
"""The derived series is numbered input SeriesNumber + 1000 (1000 when the input has none)."""

LONG_STRING_LIMIT = 64  # LO, the VR of SeriesDescription
SHORT_TEXT_LIMIT = 1024  # ST, the VR of DerivationDescription
PIXEL_DATA_TAG = 0x7FE00010
UNDEFINED_LENGTH = 0xFFFFFFFF
LARGEST_VALUE_BYTES = 0xFFFFFFFE  # a defined value length is 32 bits, even, and not UNDEFINED_LENGTH

LOSSY_TRANSFER_SYNTAXES = {
    pydicom.uid.JPEGBaseline8Bit,
    pydicom.uid.JPEGExtended12Bit,
    pydicom.uid.JPEGLSNearLossless,
    pydicom.uid.JPEG2000,
    pydicom.uid.HTJ2K,
}
"""Transfer syntaxes that may have lost information: the output then says LossyImageCompression 01."""

REPLACED_PIXEL_STATISTICS = (
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "SmallestPixelValueInSeries",
    "LargestPixelValueInSeries",
)
"""Attributes that describe the old pixel values; the output drops them rather than lie."""

COLOUR_ATTRIBUTES = ("PlanarConfiguration",)
IMAGE_ATTRIBUTES = ("Rows", "Columns", "BitsAllocated")
"""What a reader needs to make sense of pixel data."""


@dataclass(frozen=True)
class PixelDataLocation:
    """Where a file's Pixel Data value starts, so that one frame can be decoded on its own."""

    offset: int  # of the value, in bytes from the file start (in the inflated stream for deflated files)
    length: int | None  # declared length; None when undefined (encapsulated, compressed frames)
    value_representation: str | None  # None for implicit VR files


@dataclass
class DicomFile:
    """One DICOM file: its header without the pixel data, and where the pixel data lies."""

    path: Path
    header: Dataset
    pixels: PixelDataLocation | None

    @classmethod
    def read(cls, path: str | Path) -> DicomFile | None:
        """Read the header of ``path``; None when the file is not DICOM.

        A file with the 'DICM' marker is DICOM: a header that cannot be parsed is an
        IsclError. A file without it (old no-preamble files) counts as DICOM only when
        pydicom parses it and finds an SOP class or an image size.
        """
        path = Path(path)
        with path.open("rb") as stream:
            has_marker = stream.read(132)[128:132] == b"DICM"
        try:
            with _quiet_pydicom():
                header = pydicom.dcmread(path, defer_size=DEFER_SIZE, force=not has_marker)
        except Exception as error:  # pydicom raises many types on damaged input; all mean "cannot read"
            if has_marker:
                raise IsclError(f"damaged or truncated DICOM: {error}", path) from error
            return None
        if not has_marker and "SOPClassUID" not in header and not ("Rows" in header and "Columns" in header):
            return None
        return cls(path, header, _take_pixel_data(header))

    def skip_reason(self) -> str | None:
        """Why this file holds no image to denoise (a plan, report, segmentation), or None."""
        header = self.header
        kind = header.get("Modality") or _sop_class_name(header)
        if self.pixels is None:
            return f"DICOM {kind} without pixel data"
        if header.get("BitsAllocated") == 1:
            return f"DICOM {kind} with 1-bit pixel data (a segmentation or mask)"
        return None

    @property
    def series_uid(self) -> str:
        """The SeriesInstanceUID (the file path when missing, so the file forms its own series)."""
        return str(self.header.get("SeriesInstanceUID") or self.path)

    @property
    def frames(self) -> int:
        return int(self.header.get("NumberOfFrames") or 1)

    @property
    def transfer_syntax(self) -> pydicom.uid.UID:
        meta = getattr(self.header, "file_meta", None)
        syntax = meta.get("TransferSyntaxUID") if meta is not None else None
        if syntax is not None:
            return syntax
        implicit, little_endian = self.header.original_encoding
        if implicit:
            return pydicom.uid.ImplicitVRLittleEndian
        return pydicom.uid.ExplicitVRLittleEndian if little_endian else pydicom.uid.ExplicitVRBigEndian


@dataclass(frozen=True)
class FrameRef:
    """Where one slice lives and how its stored values map to modality units."""

    instance: int  # index into the series' files
    frame: int  # frame number inside that file
    position: float | None  # along the slice normal, in mm
    instance_number: int
    slope: float
    intercept: float


class DicomSeries(Volume):
    """All image frames of one DICOM series, in spatial order."""

    format = "dicom"

    def __init__(self, files: Sequence[DicomFile], source: Path, name: str, channel: int | None = None) -> None:
        """Check the files form one readable series and order their frames (no pixels read).

        ``source`` is the file or folder the series was found in; ``name`` is the output
        folder name. Raises IsclError for truncated files, inconsistent slice sizes, colour
        data without ``channel``, and pixel formats that cannot be written back.
        """
        if not files:
            raise ValueError("a DICOM series needs at least one file")
        self.source = Path(source)
        self.name = name
        self._files = list(files)
        for file in self._files:
            _check_image_attributes(file)
        first = self._files[0].header
        self.shape = (int(first.Rows), int(first.Columns))
        self._unused_bits_noted = False
        with _quiet_pydicom():
            self._channel = _check_channel(self._files[0], channel)
            for file in self._files:
                self._check_file(file)
            self._frames = _ordered_frames(self._files)
        if any("ModalityLUTSequence" in file.header for file in self._files):
            LOG.warning("%s: its Modality LUT Sequence is not applied; values are stored values", self.source)

    def __len__(self) -> int:
        return len(self._frames)

    def read_slice(self, index: int) -> np.ndarray:
        frame = self._frames[index]
        file = self._files[frame.instance]
        stored = self._without_unused_bits(_decode_frame(file, frame.frame), file)
        if stored.ndim == 3:
            stored = stored[..., self._channel]
        return (stored.astype(np.float64) * frame.slope + frame.intercept).astype(np.float32)

    def info(self) -> dict[str, Any]:
        with _quiet_pydicom():
            return self._describe()

    def _describe(self) -> dict[str, Any]:
        header = self._files[0].header
        slopes = {(frame.slope, frame.intercept) for frame in self._frames}
        slope, intercept = self._frames[0].slope, self._frames[0].intercept
        return {
            "format": "dicom",
            "path": str(self.source),
            "name": self.name,
            "series_uid": str(header.get("SeriesInstanceUID", "")),
            "series_description": str(header.get("SeriesDescription", "")),
            "series_number": _optional_int(header.get("SeriesNumber")),
            "modality": str(header.get("Modality", "")),
            "sop_class": _sop_class_name(header),
            "transfer_syntax": self._files[0].transfer_syntax.name,
            "n_files": len(self._files),
            "n_slices": len(self),
            "shape": list(self.shape),
            "dtype": _stored_dtype(header).name,
            "bits_stored": int(header.get("BitsStored", header.BitsAllocated)),
            "channels": int(header.get("SamplesPerPixel", 1)),
            "channel": self._channel,
            "spacing": self._spacing(),
            "unit": "mm",
            "rescale": {
                "slope": slope if len(slopes) == 1 else "varies per slice",
                "intercept": intercept if len(slopes) == 1 else "varies per slice",
                "type": str(header.get("RescaleType") or ("HU" if header.get("Modality") == "CT" else "")),
            },
        }

    def write(self, out_path: Path, slices: Iterable[np.ndarray], note: str, overwrite: bool = False) -> None:
        """Write a derived series: a folder ``out_path`` with one file per input file (same names)."""
        out_path = Path(out_path)
        ensure_not_input(out_path, self.source)
        series_uid = pydicom.uid.generate_uid()
        names = _output_names([file.path for file in self._files])
        with atomic_path(out_path, replace=overwrite) as folder:
            folder.mkdir()
            with _quiet_pydicom():
                outputs = [
                    OutputFile.start(folder / name, derived_header(file, series_uid, note, self._channel is not None))
                    for file, name in zip(self._files, names)
                ]
            count = 0
            for count, image in enumerate(slices, start=1):
                if count > len(self) or image.shape != self.shape:
                    raise ValueError(f"{self.source}: slice {count - 1} has shape {image.shape}, expected {self.shape}")
                frame = self._frames[count - 1]
                stored = (np.asarray(image, dtype=np.float64) - frame.intercept) / frame.slope
                outputs[frame.instance].write_frame(frame.frame, stored)
            if count != len(self):
                raise ValueError(f"{self.source}: got {count} slices to write, expected {len(self)}")

    def _without_unused_bits(self, stored: np.ndarray, file: DicomFile) -> np.ndarray:
        """``stored`` with the bits above BitsStored cleared, as the standard says to read
        them; a note (once per series) when that changed values."""
        header = file.header
        unused = int(header.BitsAllocated) - int(header.get("BitsStored") or header.BitsAllocated)
        if unused <= 0:
            return stored
        # Shifting up and back down (arithmetic for signed types) drops the unused bits and sign-extends.
        kept = np.right_shift(np.left_shift(stored, unused), unused)
        changed = int(np.count_nonzero(kept != stored))
        if changed and not self._unused_bits_noted:
            self._unused_bits_noted = True
            LOG.warning("%s: %d of %d pixel values of a frame use bits above BitsStored %d (e.g. %d read as %d); "
                        "as the DICOM standard says, those bits are ignored", file.path, changed, stored.size,
                        int(header.BitsStored), *_first_difference(stored, kept))
        return kept

    def _check_file(self, file: DicomFile) -> None:
        """Refuse what cannot be read or written back faithfully, naming the file."""
        header, path = file.header, file.path
        size = (int(header.Rows), int(header.Columns))
        if size != self.shape:
            raise IsclError(
                f"slice size {size[0]}x{size[1]} differs from {self.shape[0]}x{self.shape[1]} "
                f"of {self._files[0].path.name} in the same series",
                path,
            )
        if str(header.get("PhotometricInterpretation", "")) == "PALETTE COLOR":
            raise IsclError("palette-colour DICOM (pixel values are colour-table indices); not supported", path)
        if header.get("BitsAllocated") not in (8, 16, 32):
            raise IsclError(f"unsupported BitsAllocated {header.get('BitsAllocated')}", path)
        if file.frames < 1:
            raise IsclError(f"NumberOfFrames {file.frames}: no image to read", path)
        _check_channel(file, self._channel)
        _check_pixel_data_size(file)
        _check_pixel_data_complete(file)

    def _spacing(self) -> list[float | None]:
        """``[z, y, x]`` in mm: z from the slice positions (else SliceThickness), y/x from PixelSpacing."""
        header = self._files[0].header
        positions = [frame.position for frame in self._frames]
        steps = np.diff(positions) if None not in positions and len(positions) > 1 else np.array([])
        z = float(np.median(steps)) if steps.size else _optional_float(header.get("SliceThickness"))
        pixel_spacing = header.get("PixelSpacing")
        pixel_spacing = pixel_spacing or _functional_value(header, 0, "PixelMeasuresSequence", "PixelSpacing")
        y, x = (float(value) for value in pixel_spacing) if pixel_spacing else (None, None)
        return [z, y, x]


@dataclass
class OutputFile:
    """An output DICOM file: header written, pixel data area reserved, frames filled in as they come."""

    path: Path
    pixel_offset: int
    frame_bytes: int
    dtype: np.dtype
    low: float
    high: float

    @classmethod
    def start(cls, path: Path, header: Dataset) -> OutputFile:
        """Write ``header`` and a zero-filled explicit VR little endian Pixel Data element after it."""
        dtype = _stored_dtype(header).newbyteorder("<")
        frame_bytes = int(header.Rows) * int(header.Columns) * dtype.itemsize
        length = frame_bytes * int(header.get("NumberOfFrames") or 1)
        padded = length + length % 2  # DICOM values have even length
        value_representation = b"OB" if dtype.itemsize == 1 else b"OW"
        with path.open("wb") as stream:
            pydicom.dcmwrite(stream, header, enforce_file_format=True)
            element_header = struct.pack("<HH2s2xI", 0x7FE0, 0x0010, value_representation, padded)
            stream.write(element_header)
            pixel_offset = stream.tell()
            stream.truncate(pixel_offset + padded)
        low, high = _stored_range(header)
        return cls(path, pixel_offset, frame_bytes, dtype, low, high)

    def write_frame(self, frame: int, stored_values: np.ndarray) -> None:
        """Store one frame (values already in stored units, rounded and clipped here)."""
        data = round_and_clip(stored_values, self.dtype, self.low, self.high)
        with self.path.open("r+b") as stream:
            stream.seek(self.pixel_offset + frame * self.frame_bytes)
            stream.write(data.tobytes())


def derived_header(file: DicomFile, series_uid: str, note: str, one_channel: bool) -> Dataset:
    """The header of the derived instance made from ``file`` (everything but pixel data).

    New Series/SOP Instance UIDs, DERIVED\\SECONDARY image type, the note as
    DerivationDescription, a SourceImageSequence item pointing at the input instance;
    study, patient, frame of reference and geometry are kept.
    """
    source = file.header
    if "SOPClassUID" not in source or "SOPInstanceUID" not in source:
        raise IsclError("has no SOPClassUID/SOPInstanceUID; cannot derive a valid series from it", file.path)
    header = copy.deepcopy(source)
    for tag in [tag for tag in header.keys() if tag >= 0x7FE00000 or tag.element == 0]:
        del header[tag]  # pixel data and what follows it (padding, signatures); stale retired group lengths
    for keyword in REPLACED_PIXEL_STATISTICS:
        header.pop(keyword, None)
    header.SOPInstanceUID = pydicom.uid.generate_uid()
    header.SeriesInstanceUID = series_uid
    header.SeriesNumber = (_optional_int(source.get("SeriesNumber")) or 0) + SERIES_NUMBER_OFFSET
    header.SeriesDescription = _with_suffix(str(source.get("SeriesDescription", "")))
    header.ImageType = ["DERIVED", "SECONDARY", *list(_as_list(source.get("ImageType")))[2:]]
    _mark_frames_derived(header)
    header.DerivationDescription = note[:SHORT_TEXT_LIMIT]
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    header.SourceImageSequence = [reference]
    if file.transfer_syntax in LOSSY_TRANSFER_SYNTAXES or source.get("LossyImageCompression") == "01":
        header.LossyImageCompression = "01"  # once lossy, always marked lossy
    if one_channel:
        header.SamplesPerPixel = 1
        header.PhotometricInterpretation = "MONOCHROME2"
        for keyword in COLOUR_ATTRIBUTES:
            header.pop(keyword, None)
    header.file_meta = _file_meta(header, getattr(source, "file_meta", None))
    return header


def _file_meta(header: Dataset, source_meta: FileMetaDataset | None) -> FileMetaDataset:
    meta = copy.deepcopy(source_meta) if source_meta is not None else FileMetaDataset()
    meta.MediaStorageSOPClassUID = header.SOPClassUID
    meta.MediaStorageSOPInstanceUID = header.SOPInstanceUID
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"ISCL_{__version__}"[:16]
    meta.pop("SourceApplicationEntityTitle", None)
    return meta


def _mark_frames_derived(header: Dataset) -> None:
    """Enhanced multi-frame files repeat the image type per frame (FrameType): derive those too."""
    groups = [*header.get("SharedFunctionalGroupsSequence", []), *header.get("PerFrameFunctionalGroupsSequence", [])]
    for group in groups:
        for element in group:
            if element.VR == "SQ" and element.keyword.endswith("FrameTypeSequence"):
                for item in element.value:
                    if "FrameType" in item:
                        item.FrameType = ["DERIVED", *list(_as_list(item.FrameType))[1:]]


def _with_suffix(description: str) -> str:
    """SeriesDescription plus the iscl suffix, cut to fit LO's 64 characters."""
    if not description:
        return SERIES_DESCRIPTION_SUFFIX.strip(" ()")
    return description[: LONG_STRING_LIMIT - len(SERIES_DESCRIPTION_SUFFIX)] + SERIES_DESCRIPTION_SUFFIX


def _output_names(paths: Sequence[Path]) -> list[str]:
    """The input file names, made unique (files from different folders may share a name)."""
    names: list[str] = []
    for path in paths:
        name, number = path.name, 1
        while name in names:
            number += 1
            name = f"{path.stem}_{number}{path.suffix}"
        names.append(name)
    return names


def _ordered_frames(files: Sequence[DicomFile]) -> list[FrameRef]:
    """Every frame of every file, sorted along the slice normal (by InstanceNumber when any
    frame lacks a position)."""
    frames = []
    for instance, file in enumerate(files):
        try:
            frames += _frames_of(instance, file)
        except (TypeError, ValueError) as error:  # a number field holding text, a malformed sequence
            raise IsclError(f"unreadable header value ({error})", file.path) from None
    if all(frame.position is not None for frame in frames):
        return sorted(frames, key=lambda f: (f.position, f.instance_number, f.instance, f.frame))
    return sorted(frames, key=lambda f: (f.instance_number, f.instance, f.frame))


def _frames_of(instance: int, file: DicomFile) -> list[FrameRef]:
    """The frames of the series' file number ``instance``; refuses a rescale that cannot be inverted."""
    instance_number = _optional_int(file.header.get("InstanceNumber")) or 0
    frames = []
    for frame in range(file.frames):
        slope, intercept = _rescale(file.header, frame)
        if not (math.isfinite(slope) and slope != 0 and math.isfinite(intercept)):
            raise IsclError(f"RescaleSlope {slope:g} and RescaleIntercept {intercept:g} do not map stored values to "
                            "modality units (the slope must be finite and not zero)", file.path)
        position = _position_along_normal(file.header, frame)
        frames.append(FrameRef(instance, frame, position, instance_number, slope, intercept))
    return frames


def _position_along_normal(header: Dataset, frame: int) -> float | None:
    """Where a frame lies along its slice normal (mm), or None when the header does not say."""
    orientation = header.get("ImageOrientationPatient") or _functional_value(
        header, frame, "PlaneOrientationSequence", "ImageOrientationPatient"
    )
    position = _functional_value(header, frame, "PlanePositionSequence", "ImagePositionPatient")
    position = position or header.get("ImagePositionPatient")
    if not orientation or not position or len(orientation) != 6 or len(position) != 3:
        return None
    normal = np.cross(np.array(orientation[:3], float), np.array(orientation[3:], float))
    along = float(np.dot(normal, np.array(position, float)))
    offsets = header.get("GridFrameOffsetVector")  # RT dose: frames stacked along the normal
    if offsets is not None and len(_as_list(offsets)) == int(header.get("NumberOfFrames") or 1):
        along += float(_as_list(offsets)[frame])
    return along


def _rescale(header: Dataset, frame: int) -> tuple[float, float]:
    """Slope and intercept from stored values to modality units (HU for CT, Gy for RT dose)."""
    if "RescaleSlope" in header or "RescaleIntercept" in header:
        return float(header.get("RescaleSlope", 1.0)), float(header.get("RescaleIntercept", 0.0))
    slope = _functional_value(header, frame, "PixelValueTransformationSequence", "RescaleSlope")
    intercept = _functional_value(header, frame, "PixelValueTransformationSequence", "RescaleIntercept")
    if slope is not None or intercept is not None:
        return float(1.0 if slope is None else slope), float(intercept or 0.0)
    if "DoseGridScaling" in header:
        return float(header.DoseGridScaling), 0.0
    return 1.0, 0.0


def _functional_value(header: Dataset, frame: int, sequence: str, keyword: str) -> Any:
    """``keyword`` from the frame's own functional group ``sequence``, else from the shared one."""
    per_frame = header.get("PerFrameFunctionalGroupsSequence")
    groups = [per_frame[frame]] if per_frame is not None and frame < len(per_frame) else []
    groups += list(header.get("SharedFunctionalGroupsSequence", []))
    for group in groups:
        items = group.get(sequence)
        if items and keyword in items[0]:
            return items[0].get(keyword)
    return None


def _check_channel(file: DicomFile, channel: int | None) -> int | None:
    """The channel to read from colour data (None for grey data); refuses colour without one."""
    samples = int(file.header.get("SamplesPerPixel", 1))
    if samples == 1:
        return None
    found = f"has {samples} channels (samples per pixel, {file.header.get('PhotometricInterpretation', '')})"
    if channel is None:
        raise IsclError(f"{found}; choose one with --channel", file.path)
    if not 0 <= channel < samples:
        raise IsclError(f"{found}; --channel {channel} is not in 0..{samples - 1}", file.path)
    return channel


def _take_pixel_data(header: Dataset) -> PixelDataLocation | None:
    """Remove Pixel Data from ``header`` (compressed data is read whole while parsing, and a
    series' headers stay in memory) and say where it lies in the file."""
    element = header.get_item(PIXEL_DATA_TAG, keep_deferred=True)
    if element is None:
        return None
    del header[PIXEL_DATA_TAG]
    undefined = element.length == UNDEFINED_LENGTH
    return PixelDataLocation(element.value_tell, None if undefined else element.length, element.VR)


def _check_image_attributes(file: DicomFile) -> None:
    """Refuse pixel data without the attributes that say how to read it."""
    missing = [keyword for keyword in IMAGE_ATTRIBUTES if file.header.get(keyword) in (None, "")]
    if missing:
        raise IsclError(f"damaged DICOM: pixel data without {', '.join(missing)}", file.path)


def _check_pixel_data_size(file: DicomFile) -> None:
    """Refuse images whose frames would not fit the memory budget when decoded, or whose
    output would not fit one DICOM value (checked before anything is decoded)."""
    header = file.header
    rows, cols, samples = int(header.Rows), int(header.Columns), int(header.get("SamplesPerPixel", 1))
    frame_bytes = rows * cols * samples * int(header.BitsAllocated) // 8
    deflated = file.transfer_syntax == pydicom.uid.DeflatedExplicitVRLittleEndian  # decoded whole
    check_slice_fits(rows, cols, frame_bytes * (file.frames if deflated else 1), file.path)
    output_bytes = rows * cols * int(header.BitsAllocated) // 8 * file.frames
    if output_bytes > LARGEST_VALUE_BYTES:
        raise IsclError(f"{file.frames} frame(s) of {rows}x{cols} pixels make {format_bytes(output_bytes)} of pixel "
                        "data, more than one DICOM file can hold (4 GiB); split the frames into several files",
                        file.path)


def _check_pixel_data_complete(file: DicomFile) -> None:
    """Refuse a file whose native pixel data is shorter or longer than its image size (a
    truncated file, or Rows, Columns or NumberOfFrames that do not describe the data) or
    runs past the file end."""
    syntax, pixels = file.transfer_syntax, file.pixels
    if pixels.length is None or syntax == pydicom.uid.DeflatedExplicitVRLittleEndian:
        return  # encapsulated or deflated: sizes are not known without decoding; decoding errors say it
    header = file.header
    bits = int(header.BitsAllocated) * int(header.Rows) * int(header.Columns) * int(header.get("SamplesPerPixel", 1))
    needed = bits * file.frames // 8
    file_size, data_end = file.path.stat().st_size, pixels.offset + pixels.length
    if data_end > file_size:
        raise IsclError(f"truncated DICOM: pixel data needs {data_end} bytes, file has {file_size}", file.path)
    if pixels.length < needed:
        raise IsclError(f"truncated DICOM: pixel data holds {pixels.length} bytes, the image needs {needed}", file.path)
    if _holds_more_than_padding(file, needed, frame_bytes=bits // 8):
        raise IsclError(f"pixel data holds {pixels.length} bytes, but {file.frames} frame(s) of "
                        f"{header.Rows}x{header.Columns} pixels need {needed}: Rows, Columns or NumberOfFrames "
                        "do not describe the data", file.path)


def _holds_more_than_padding(file: DicomFile, needed: int, frame_bytes: int) -> bool:
    """Whether native pixel data longer than the image's ``needed`` bytes holds more than
    padding: zero bytes, less than a frame (some writers pad to a block size)."""
    excess = file.pixels.length - needed
    if excess <= 1:
        return False  # values have even length
    if excess >= frame_bytes:
        return True
    with file.path.open("rb") as stream:
        stream.seek(file.pixels.offset + needed)
        return any(stream.read(excess))


def _decode_frame(file: DicomFile, frame: int) -> np.ndarray:
    """Stored values of one frame, decoded on its own from the file (colour as RGB, last axis)."""
    syntax = file.transfer_syntax
    try:
        with _quiet_pydicom():
            if syntax == pydicom.uid.DeflatedExplicitVRLittleEndian:
                dataset = pydicom.dcmread(file.path)  # the deflated stream cannot be entered midway
                dataset.pixel_array_options(correct_unused_bits=False)  # DicomSeries clears them, with a note
                pixels = dataset.pixel_array
                return pixels[frame] if file.frames > 1 else pixels
            options = as_pixel_options(file.header, transfer_syntax_uid=syntax, pixel_keyword="PixelData")
            options["correct_unused_bits"] = False
            if file.pixels.value_representation is not None:
                options["pixel_vr"] = file.pixels.value_representation
            with file.path.open("rb") as stream:
                stream.seek(file.pixels.offset)
                return get_decoder(syntax).as_array(stream, index=frame, **options)[0]
    except Exception as error:  # decoder plugins raise many types; all mean "cannot decode"
        raise IsclError(f"cannot decode frame {frame}: {error}", file.path) from error


def _first_difference(before: np.ndarray, after: np.ndarray) -> tuple[int, int]:
    """The first value that differs between two arrays of one shape, before and after."""
    where = np.flatnonzero(before.ravel() != after.ravel())[0]
    return int(before.ravel()[where]), int(after.ravel()[where])


def _stored_dtype(header: Dataset) -> np.dtype:
    signed = int(header.get("PixelRepresentation", 0)) == 1
    return np.dtype(f"{'i' if signed else 'u'}{int(header.BitsAllocated) // 8}")


def _stored_range(header: Dataset) -> tuple[float, float]:
    """The values BitsStored and PixelRepresentation allow."""
    bits = int(header.get("BitsStored") or header.BitsAllocated)
    if int(header.get("PixelRepresentation", 0)) == 1:
        return float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    return 0.0, float(2**bits - 1)


def _sop_class_name(header: Dataset) -> str:
    uid = header.get("SOPClassUID")
    return uid.name if uid is not None else "unknown SOP class"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]


def _optional_int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def _optional_float(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


@contextmanager
def _quiet_pydicom() -> Iterator[None]:
    """pydicom warns about every odd value in real-world headers; those are not the user's concern."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
