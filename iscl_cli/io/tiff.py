"""TIFF stacks (plain, ImageJ hyperstacks, OME-TIFF) read slice by slice and written back alike.

A TIFF series has named axes (tifffile's letters: ``Y``/``X`` for rows/columns, ``C``
channels, ``S`` samples such as RGB, ``Z``, ``T`` and others for the rest). Everything
from ``Y`` onwards is one *block* (``YX`` or ``YXS``); every axis before it except the
channel axis is flattened, in order, into the sequence of 2D slices. Writing restores
the same axes and shape, minus the channel axis when one channel was chosen.
"""

from __future__ import annotations

import logging
import os
import threading
import xml.etree.ElementTree as ElementTree
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from tifffile import COMPRESSION, PHOTOMETRIC, RESUNIT

from iscl_cli.errors import IsclError
from iscl_cli.io.atomic import atomic_path, ensure_not_input
from iscl_cli.io.values import integer_range, round_and_clip
from iscl_cli.memory import check_slice_fits
from iscl_cli.volume import Volume

LOG = logging.getLogger("iscl")

CHANNEL_AXES = "CS"
"""tifffile's axis letters for channels and samples (RGB): never flattened into slices."""

LOSSLESS_COMPRESSIONS = {
    COMPRESSION.NONE,
    COMPRESSION.LZW,
    COMPRESSION.ADOBE_DEFLATE,
    COMPRESSION.DEFLATE,
    COMPRESSION.ZSTD,
    COMPRESSION.PACKBITS,
    COMPRESSION.LZMA,
}
"""Compressions the output keeps; other (lossy or exotic) inputs are written with deflate."""

BIGTIFF_THRESHOLD = 2**32 - 2**25
"""Bytes of pixel data above which a classic TIFF's 32-bit offsets may overflow (tifffile's margin)."""

IMAGEJ_COUNTS = ("ImageJ", "images", "channels", "slices", "frames", "hyperstack")
"""ImageJ description entries that tifffile recomputes from the shape when writing."""

IMAGEJ_TAG_ENTRIES = ("Info", "Labels", "Ranges", "LUTs", "Plot", "ROI", "Overlays", "Properties")
"""ImageJ metadata that tifffile stores in the UTF-16 IJMetadata tag; the rest goes to the ASCII description."""


@dataclass(frozen=True)
class SliceLayout:
    """How the 2D slices sit inside a TIFF series of shape ``shape`` with axes ``axes``.

    ``block`` is everything from the ``Y`` axis on; ``leading`` is everything before it.
    A slice is one block (one channel of it when the channel axis is inside the block).
    """

    axes: str
    shape: tuple[int, ...]
    channel_axis: int | None
    channel: int | None

    @classmethod
    def of_series(cls, axes: str, shape: tuple[int, ...], channel: int | None, path: Path) -> SliceLayout:
        """Check that ``axes`` can be cut into 2D slices and pick the channel axis."""
        y_axis = axes.find("Y")
        if y_axis < 0 or axes[y_axis : y_axis + 2] != "YX" or any(a not in CHANNEL_AXES for a in axes[y_axis + 2 :]):
            raise IsclError(f"unsupported TIFF axis order '{axes}' (need YX, optionally followed by samples)", path)
        channel_axes = [i for i, letter in enumerate(axes) if letter in CHANNEL_AXES and shape[i] > 1]
        if len(channel_axes) > 1:
            raise IsclError(f"has channels on two axes (axes '{axes}', shape {shape}); not supported", path)
        if not channel_axes:
            return cls(axes, tuple(shape), None, None)
        channel_axis = channel_axes[0]
        count = shape[channel_axis]
        if channel is None:
            raise IsclError(f"has {count} channels (axes '{axes}'); choose one with --channel", path)
        if not 0 <= channel < count:
            raise IsclError(f"has {count} channels (axes '{axes}'); --channel {channel} is not in 0..{count - 1}", path)
        return cls(axes, tuple(shape), channel_axis, channel)

    @property
    def block_start(self) -> int:
        return self.axes.index("Y")

    @property
    def block_shape(self) -> tuple[int, ...]:
        return self.shape[self.block_start :]

    @property
    def slice_shape(self) -> tuple[int, int]:
        y = self.block_start
        return self.shape[y], self.shape[y + 1]

    @property
    def leading_shape(self) -> tuple[int, ...]:
        return self.shape[: self.block_start]

    @property
    def output_axes(self) -> str:
        """Axes of the written file: the channel axis is dropped when one channel was chosen."""
        if self.channel_axis is None:
            return self.axes
        return self.axes[: self.channel_axis] + self.axes[self.channel_axis + 1 :]

    @property
    def output_shape(self) -> tuple[int, ...]:
        if self.channel_axis is None:
            return self.shape
        return self.shape[: self.channel_axis] + self.shape[self.channel_axis + 1 :]

    @property
    def stack_shape(self) -> tuple[int, ...]:
        """Shape of the axes flattened into the slice sequence (leading axes minus the channel)."""
        leading = self.leading_shape
        if self.channel_axis is None or self.channel_axis >= self.block_start:
            return leading
        return leading[: self.channel_axis] + leading[self.channel_axis + 1 :]

    def __len__(self) -> int:
        return int(np.prod(self.stack_shape))

    def block_number(self, index: int) -> int:
        """Which block (counted in file order) holds slice ``index``."""
        stack_index = list(np.unravel_index(index, self.stack_shape)) if self.stack_shape else []
        if self.channel_axis is not None and self.channel_axis < self.block_start:
            stack_index.insert(self.channel_axis, self.channel)
        if not self.leading_shape:
            return 0
        return int(np.ravel_multi_index(tuple(stack_index), self.leading_shape))

    def plane(self, block: np.ndarray) -> np.ndarray:
        """The 2D slice inside one block (the chosen channel when the block holds samples)."""
        block = block.reshape(self.block_shape)
        if self.channel_axis is not None and self.channel_axis >= self.block_start:
            return np.take(block, self.channel, axis=self.channel_axis - self.block_start)
        return block.reshape(self.slice_shape)

    def kept_blocks(self) -> np.ndarray:
        """File-order numbers of the blocks the output keeps (all but other channels' blocks)."""
        numbers = np.arange(int(np.prod(self.leading_shape))).reshape(self.leading_shape)
        if self.channel_axis is not None and self.channel_axis < self.block_start:
            numbers = np.take(numbers, self.channel, axis=self.channel_axis)
        return numbers.ravel()


@dataclass(frozen=True)
class TiffMetadata:
    """What the writer needs to reproduce the input's flavour (read once at open)."""

    kind: str  # "imagej", "ome", "shaped" or "plain"
    description: str
    imagej: dict[str, Any]
    shaped: dict[str, Any]
    ome_xml: str
    resolution: tuple[Any, Any] | None
    resolution_unit: int
    compression: int
    predictor: int
    photometric: int
    bigtiff: bool
    byteorder: str
    series_count: int


class TiffVolume(Volume):
    """The first series of a TIFF file as a sequence of 2D slices."""

    format = "tiff"

    def __init__(self, path: str | Path, channel: int | None = None, name: str | None = None) -> None:
        """Open ``path`` and read its structure (no pixels).

        Raises IsclError for unreadable, truncated or multi-channel files (the latter unless
        ``channel`` picks one channel), and for palette-colour images.
        """
        self.source = Path(path)
        self.name = name or self.source.name
        with _opened(self.source) as tif:
            series = tif.series[0]
            page = series.keyframe
            self._layout = SliceLayout.of_series(series.axes, tuple(series.shape), channel, self.source)
            self._dtype = np.dtype(series.dtype).newbyteorder(tif.byteorder)
            self._meta = _metadata_of(tif, page)
            self._dataoffset = series.dataoffset
            self._blocks_per_page = _blocks_per_page(page.size, self._layout, self.source)
            self._check_complete(series)
            check_slice_fits(*self._layout.slice_shape, page.size * self._dtype.itemsize, self.source)
        if self._dtype.kind not in "uif":
            raise IsclError(f"unsupported TIFF pixel type {self._dtype.name}", self.source)
        if self._meta.photometric == PHOTOMETRIC.PALETTE:
            raise IsclError("palette-colour TIFF (pixel values are colour-table indices); not supported", self.source)
        if self._meta.series_count > 1:
            LOG.warning("%s: holds %d image series; reading only the first", self.source, self._meta.series_count)
        self.shape = self._layout.slice_shape

    def __len__(self) -> int:
        return len(self._layout)

    def read_slice(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(f"slice {index} out of range 0..{len(self) - 1}")
        block = self._read_block(self._layout.block_number(index))
        return self._layout.plane(block).astype(np.float32)

    def info(self) -> dict[str, Any]:
        spacing, unit = _spacing(self._meta)
        layout = self._layout
        return {
            "format": "tiff",
            "path": str(self.source),
            "name": self.name,
            "flavour": self._meta.kind,
            "axes": layout.axes,
            "axes_shape": list(layout.shape),
            "channels": None if layout.channel_axis is None else layout.shape[layout.channel_axis],
            "channel": layout.channel,
            "n_slices": len(self),
            "shape": list(self.shape),
            "dtype": self._dtype.name,
            "compression": _compression_name(self._meta.compression),
            "spacing": spacing,
            "unit": unit,
        }

    def write(self, out_path: Path, slices: Iterable[np.ndarray], note: str, overwrite: bool = False) -> None:
        out_path = Path(out_path)
        ensure_not_input(out_path, self.source)
        meta, layout = self._meta, self._layout
        pages = self._stored_pages(slices)
        with atomic_path(out_path, replace=overwrite) as temporary:
            with tifffile.TiffWriter(
                temporary,
                bigtiff=self._output_is_bigtiff(),
                byteorder=meta.byteorder,
                imagej=meta.kind == "imagej",
                ome=False,
            ) as writer:
                writer.write(
                    pages,
                    shape=layout.output_shape,
                    dtype=self._dtype,
                    photometric=_output_photometric(meta.photometric),
                    compression=_output_compression(meta.compression, self.source),
                    predictor=meta.predictor if meta.predictor > 1 else None,
                    resolution=meta.resolution,
                    resolutionunit=meta.resolution_unit,
                    **_flavour_arguments(meta, layout, note),
                )

    def _read_block(self, number: int) -> np.ndarray:
        """One block's values as stored, read on its own (never the whole series)."""
        count = int(np.prod(self._layout.block_shape))
        try:
            if self._dataoffset is not None:
                offset = self._dataoffset + number * count * self._dtype.itemsize
                return np.fromfile(self.source, dtype=self._dtype, count=count, offset=offset)
            page_number, within_page = divmod(number, self._blocks_per_page)
            page = OPEN_TIFFS.read_page(self.source, page_number)
            return page.reshape(self._blocks_per_page, count)[within_page]
        except (OSError, ValueError, RuntimeError) as error:
            raise IsclError(f"cannot read TIFF data: {error}", self.source) from error

    def _check_complete(self, series: tifffile.TiffPageSeries) -> None:
        """Refuse a file whose image data runs past its end (a truncated copy)."""
        if self._dataoffset is not None:
            data_end = self._dataoffset + int(np.prod(self._layout.shape)) * self._dtype.itemsize
        else:
            pages = [page for page in series.pages if page is not None and page.dataoffsets]
            expected = int(np.prod(self._layout.leading_shape)) // self._blocks_per_page
            if len(pages) < expected:
                raise IsclError(f"truncated or damaged TIFF: {len(pages)} of {expected} pages found", self.source)
            data_end = max(int(page.dataoffsets[-1] + page.databytecounts[-1]) for page in pages)
        file_size = self.source.stat().st_size
        if data_end > file_size:
            raise IsclError(f"truncated TIFF: image data needs {data_end} bytes, file has {file_size}", self.source)

    def _stored_pages(self, slices: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Each slice rounded and clipped to the stored type; checks count and shape."""
        low, high = integer_range(self._dtype)
        count = 0
        for count, image in enumerate(slices, start=1):
            if count > len(self) or image.shape != self.shape:
                raise ValueError(f"{self.source}: slice {count - 1} has shape {image.shape}, expected {self.shape}")
            yield round_and_clip(image, self._dtype, low, high)
        if count != len(self):
            raise ValueError(f"{self.source}: got {count} slices to write, expected {len(self)}")

    def _output_is_bigtiff(self) -> bool:
        if self._meta.kind == "imagej":
            return False  # ImageJ files have no BigTIFF form; tifffile writes > 4 GB ImageJ-style.
        data_bytes = int(np.prod(self._layout.output_shape)) * self._dtype.itemsize
        return self._meta.bigtiff or data_bytes > BIGTIFF_THRESHOLD


class OpenTiffs:
    """A few TIFF files kept open for page-by-page reading.

    Finding page ``n`` of a compressed stack means walking the file's page list, so the
    handle is reused between slices; the count is capped so that a training folder with
    thousands of stacks does not run out of file handles.
    """

    def __init__(self, limit: int = 8) -> None:
        self._limit = limit
        self._files: OrderedDict[Path, tifffile.TiffFile] = OrderedDict()
        self._lock = threading.Lock()

    def read_page(self, path: Path, page_number: int) -> np.ndarray:
        """Decoded page ``page_number`` of the first series of ``path``."""
        with self._lock:
            tif = self._files.pop(path, None) or tifffile.TiffFile(path)
            self._files[path] = tif
            while len(self._files) > self._limit:
                self._files.popitem(last=False)[1].close()
            return tif.series[0].pages[page_number].asarray()

    def forget(self) -> None:
        """Drop every handle (in a forked child: the parent's file positions must not be shared)."""
        for tif in self._files.values():
            tif.close()
        self._files.clear()
        self._lock = threading.Lock()


OPEN_TIFFS = OpenTiffs()
os.register_at_fork(after_in_child=OPEN_TIFFS.forget)


@contextmanager
def _opened(path: Path) -> Iterator[tifffile.TiffFile]:
    """``path`` opened and parsed by tifffile, closed afterwards."""
    tif = _parse(path)
    try:
        yield tif
    finally:
        tif.close()


def _parse(path: Path) -> tifffile.TiffFile:
    """Open ``path`` and parse its first series and page list.

    Any problem, including the ones tifffile only logs (a page list cut short by
    truncation), becomes an IsclError naming the file.
    """
    problems: list[str] = []
    handler = _ListHandler(problems)
    tifffile_log = logging.getLogger("tifffile")
    tifffile_log.addHandler(handler)
    propagate, tifffile_log.propagate = tifffile_log.propagate, False
    tif = None
    try:
        tif = tifffile.TiffFile(path)
        len(tif.series[0].pages)  # parsing the page list is where damaged files show up
    except Exception as error:  # tifffile raises many types on damaged files; all mean "cannot read"
        if tif is not None:
            tif.close()
        raise IsclError(f"cannot read TIFF: {error}", path) from error
    finally:
        tifffile_log.removeHandler(handler)
        tifffile_log.propagate = propagate
    if problems:
        tif.close()
        raise IsclError(f"truncated or damaged TIFF: {problems[0]}", path)
    return tif


class _ListHandler(logging.Handler):
    """Collects error messages tifffile logs while parsing."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__(level=logging.ERROR)
        self._messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        self._messages.append(record.getMessage().split(">", 1)[-1].strip())


def _metadata_of(tif: tifffile.TiffFile, page: tifffile.TiffPage) -> TiffMetadata:
    kind = tif.series[0].kind
    tags = page.tags
    resolution = None
    if "XResolution" in tags and "YResolution" in tags:
        resolution = (tags["XResolution"].value, tags["YResolution"].value)
    return TiffMetadata(
        kind=kind if kind in ("imagej", "ome", "shaped") else "plain",
        description=page.description,
        imagej=dict(tif.imagej_metadata or {}),
        shaped=dict(tif.shaped_metadata[0]) if tif.shaped_metadata else {},
        ome_xml=tif.ome_metadata or "",
        resolution=resolution,
        resolution_unit=int(page.resolutionunit),
        compression=int(page.compression),
        predictor=int(page.predictor),
        photometric=int(page.photometric),
        bigtiff=tif.is_bigtiff,
        byteorder=tif.byteorder,
        series_count=len(tif.series),
    )


def _blocks_per_page(page_size: int, layout: SliceLayout, path: Path) -> int:
    block_size = int(np.prod(layout.block_shape))
    if page_size % block_size:
        raise IsclError(f"unsupported TIFF layout: pages of {page_size} values, slices of {block_size}", path)
    return page_size // block_size


def _output_photometric(photometric: int) -> str:
    """Output pages are single-channel: keep MINISWHITE, everything else becomes MINISBLACK."""
    return "miniswhite" if photometric == PHOTOMETRIC.MINISWHITE else "minisblack"


def _output_compression(compression: int, path: Path) -> int | None:
    if compression in LOSSLESS_COMPRESSIONS:
        return None if compression == COMPRESSION.NONE else compression
    LOG.warning("%s: %s compression is not kept; writing deflate", path, _compression_name(compression))
    return COMPRESSION.ADOBE_DEFLATE


def _compression_name(code: int) -> str:
    try:
        return COMPRESSION(code).name
    except ValueError:  # a code tifffile has no name for
        return f"compression {code}"


def _flavour_arguments(meta: TiffMetadata, layout: SliceLayout, note: str) -> dict[str, Any]:
    """The ``TiffWriter.write`` arguments that carry the flavour's own metadata and the note."""
    if meta.kind == "imagej":
        return {"metadata": _imagej_for_output(meta.imagej, layout, note)}
    # tifffile writes a str description as 7-bit ASCII; bytes go in as they are, and
    # OME-XML (PhysicalSizeXUnit="µm") and most plain descriptions are UTF-8.
    if meta.kind == "ome":
        return {"metadata": None, "description": _ome_for_output(meta.ome_xml, layout, note).encode("utf-8")}
    shaped = {key: value for key, value in meta.shaped.items() if key != "shape"}
    shaped.update(axes=layout.output_axes, iscl=note)
    description = None if meta.kind == "shaped" or not meta.description else meta.description.encode("utf-8")
    return {"metadata": shaped, "description": description}


def _imagej_for_output(imagej: dict[str, Any], layout: SliceLayout, note: str) -> dict[str, Any]:
    """ImageJ metadata for the output: counts recomputed by tifffile, the note added to 'Info',
    per-channel entries narrowed to the chosen channel."""
    metadata = {key: _imagej_ascii(value) if key not in IMAGEJ_TAG_ENTRIES else value
                for key, value in imagej.items() if key not in IMAGEJ_COUNTS}
    metadata["axes"] = layout.output_axes
    metadata["Info"] = f"{metadata['Info']}\n{note}" if metadata.get("Info") else note
    if layout.channel_axis is None:
        return metadata
    count, channel = layout.shape[layout.channel_axis], layout.channel
    metadata.pop("mode", None)  # 'composite' or 'color' describe several channels
    ranges, luts, labels = (metadata.pop(key, None) for key in ("Ranges", "LUTs", "Labels"))
    if ranges is not None and len(ranges) == 2 * count:
        metadata["Ranges"] = tuple(ranges[2 * channel : 2 * channel + 2])
    if luts is not None and len(luts) == count:
        metadata["LUTs"] = [luts[channel]]
    if labels is not None and len(labels) == int(np.prod(layout.leading_shape)):
        metadata["Labels"] = [labels[number] for number in layout.kept_blocks()]
    return metadata


def _imagej_ascii(value: Any) -> Any:
    """A text entry of the ImageJ description with non-ASCII characters written as ImageJ
    does (``unit=\\u00B5m`` for µm); other values as they are."""
    if not isinstance(value, str):
        return value
    return "".join(character if ord(character) < 128 else f"\\u{ord(character):04X}" for character in value)


def _ome_for_output(ome_xml: str, layout: SliceLayout, note: str) -> str:
    """The input's OME-XML with the note as a CommentAnnotation, only the first image, and
    (when one channel was chosen) only that channel."""
    root = ElementTree.fromstring(ome_xml)
    namespace = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    if namespace:
        ElementTree.register_namespace("", namespace.strip("{}"))
    images = root.findall(f"{namespace}Image")
    for extra_image in images[1:]:
        root.remove(extra_image)
    if layout.channel_axis is not None:
        _keep_one_ome_channel(images[0].find(f"{namespace}Pixels"), namespace, layout)
    _add_ome_comment(root, namespace, note)
    return '<?xml version="1.0" encoding="UTF-8"?>' + ElementTree.tostring(root, encoding="unicode")


def _keep_one_ome_channel(pixels: ElementTree.Element, namespace: str, layout: SliceLayout) -> None:
    channel, count = layout.channel, layout.shape[layout.channel_axis]
    pixels.set("SizeC", str(int(pixels.get("SizeC", count)) // count))
    channels = pixels.findall(f"{namespace}Channel")
    for index, element in enumerate(channels):
        if len(channels) == count and index != channel:
            pixels.remove(element)
        element.set("SamplesPerPixel", "1")
    for plane in pixels.findall(f"{namespace}Plane"):
        if int(plane.get("TheC", 0)) == channel:
            plane.set("TheC", "0")
        else:
            pixels.remove(plane)
    tiff_data = pixels.findall(f"{namespace}TiffData")
    pages = int(np.prod(layout.output_shape[:-2]))
    for index, element in enumerate(tiff_data):
        if index == 0:
            element.attrib.clear()
            element.set("IFD", "0")
            element.set("PlaneCount", str(pages))
            element[:] = []
        else:
            pixels.remove(element)


def _add_ome_comment(root: ElementTree.Element, namespace: str, note: str) -> None:
    """Record ``note`` in StructuredAnnotations, which the schema places before ROI and BinaryOnly."""
    annotations = root.find(f"{namespace}StructuredAnnotations")
    if annotations is None:
        annotations = ElementTree.Element(f"{namespace}StructuredAnnotations")
        later = [i for i, child in enumerate(root) if child.tag in (f"{namespace}ROI", f"{namespace}BinaryOnly")]
        root.insert(later[0] if later else len(root), annotations)
    used_ids = {element.get("ID") for element in root.iter()}
    number = 0
    while f"Annotation:iscl:{number}" in used_ids:
        number += 1
    comment = ElementTree.SubElement(
        annotations, f"{namespace}CommentAnnotation", ID=f"Annotation:iscl:{number}", Namespace="iscl"
    )
    ElementTree.SubElement(comment, f"{namespace}Value").text = note


def _spacing(meta: TiffMetadata) -> tuple[list[float | None], str | None]:
    """Pixel spacing ``[z, y, x]`` and its unit, from OME, ImageJ or TIFF resolution tags."""
    if meta.kind == "ome":
        return _ome_spacing(meta.ome_xml)
    x_size, y_size = (None, None)
    if meta.resolution is not None:
        x_size, y_size = (_per_pixel(value) for value in meta.resolution)
    if meta.kind == "imagej":
        return [meta.imagej.get("spacing"), y_size, x_size], meta.imagej.get("unit")
    unit = {RESUNIT.INCH: "inch", RESUNIT.CENTIMETER: "cm", RESUNIT.MILLIMETER: "mm", RESUNIT.MICROMETER: "um"}
    return [None, y_size, x_size], unit.get(meta.resolution_unit)


def _per_pixel(resolution: tuple[int, int] | float) -> float | None:
    """Size of one pixel from a TIFF resolution (pixels per unit, often a rational)."""
    numerator, denominator = resolution if isinstance(resolution, tuple) else (resolution, 1)
    return denominator / numerator if numerator else None


def _ome_spacing(ome_xml: str) -> tuple[list[float | None], str | None]:
    root = ElementTree.fromstring(ome_xml)
    pixels = next((element for element in root.iter() if element.tag.endswith("}Pixels")), None)
    if pixels is None:
        return [None, None, None], None
    sizes = [pixels.get(f"PhysicalSize{axis}") for axis in "ZYX"]
    return [None if size is None else float(size) for size in sizes], pixels.get("PhysicalSizeXUnit", "µm")
