"""TIFF reading and writing: every flavour, dtype and compression; channels; damage; atomic writes."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile

from iscl_cli.errors import IsclError
from iscl_cli.io import tiff
from iscl_cli.io.tiff import TiffVolume

ROWS, COLS = 37, 53  # odd sizes on purpose
NOTE = "denoised by iscl 0.1.0, model test/model.pt"
RNG = np.random.default_rng(0)


def random_data(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return RNG.normal(100.0, 30.0, shape).astype(dtype)
    info = np.iinfo(dtype)
    return RNG.integers(max(info.min, -30000), min(info.max, 4_000_000_000), shape, endpoint=True).astype(dtype)


def writer(shape: tuple[int, ...], dtype: str, **options: object) -> Callable[[Path], np.ndarray]:
    """A function that writes a random stack with tifffile ``options`` and returns the data."""

    def write(path: Path) -> np.ndarray:
        data = random_data(shape, dtype)
        tifffile.imwrite(path, data, **options)
        return data

    return write


def separate_pages(path: Path) -> np.ndarray:
    """Pages written one by one with no metadata at all: tifffile's generic 'IYX' series."""
    data = random_data((3, ROWS, COLS), "uint16")
    with tifffile.TiffWriter(path) as tif:
        for page in data:
            tif.write(page, metadata=None, photometric="minisblack", contiguous=False)
    return data


ZYX = {"photometric": "minisblack", "metadata": {"axes": "ZYX"}}
VARIANTS: dict[str, Callable[[Path], np.ndarray]] = {
    "imagej uint8 with resolution": writer(
        (5, ROWS, COLS), "uint8", imagej=True, resolution=(4.0, 4.0),
        metadata={"axes": "ZYX", "spacing": 1.5, "unit": "um"},
    ),
    "imagej uint16 hyperstack T and Z": writer(
        (3, 4, ROWS, COLS), "uint16", imagej=True, resolution=(2.0, 2.0),
        metadata={"axes": "TZYX", "spacing": 0.5, "unit": "um", "finterval": 2.0, "Info": "scope 3"},
    ),
    "imagej float32": writer((2, ROWS, COLS), "float32", imagej=True, metadata={"axes": "ZYX"}),
    "ome uint16": writer(
        (4, ROWS, COLS), "uint16", ome=True, photometric="minisblack",
        metadata={"axes": "ZYX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.2, "PhysicalSizeZ": 1.0},
    ),
    "int16": writer((3, ROWS, COLS), "int16", **ZYX),
    "uint32": writer((3, ROWS, COLS), "uint32", **ZYX),
    "float32": writer((3, ROWS, COLS), "float32", **ZYX),
    "deflate with predictor": writer((3, ROWS, COLS), "uint16", compression="zlib", predictor=True, **ZYX),
    "lzw": writer((3, ROWS, COLS), "uint16", compression="lzw", **ZYX),
    "zstd": writer((3, ROWS, COLS), "int16", compression="zstd", **ZYX),
    "single image": writer(
        (ROWS, COLS), "uint16", photometric="minisblack", resolution=(300, 300), resolutionunit="inch"
    ),
    "separate pages, no metadata": separate_pages,
    "big-endian BigTIFF": writer((2, ROWS, COLS), "uint16", byteorder=">", bigtiff=True, **ZYX),
}


def tiff_facts(path: Path) -> dict[str, object]:
    """What a round trip must keep, as tifffile sees it."""
    with tifffile.TiffFile(path) as tif:
        series, page = tif.series[0], tif.pages[0]
        imagej = dict(tif.imagej_metadata or {})
        imagej.pop("Info", None)
        ome_pixels = None
        if tif.is_ome:
            root = ElementTree.fromstring(tif.ome_metadata)
            ome_pixels = next(e.attrib for e in root.iter() if e.tag.endswith("}Pixels"))
        return {
            "axes": series.axes,
            "shape": series.shape,
            "dtype": series.dtype,
            "byteorder": tif.byteorder,
            "bigtiff": tif.is_bigtiff,
            "imagej": tif.is_imagej,
            "ome": tif.is_ome,
            "compression": page.compression,
            "predictor": page.predictor,
            "resolution": (page.tags.valueof("XResolution"), page.tags.valueof("YResolution"), page.resolutionunit),
            "imagej_metadata": imagej,
            "ome_pixels": ome_pixels,
        }


def recorded_note(path: Path) -> str:
    """Where each flavour keeps the note: ImageJ Info, an OME CommentAnnotation, tifffile's shaped metadata."""
    with tifffile.TiffFile(path) as tif:
        if tif.is_imagej:
            return tif.imagej_metadata["Info"].splitlines()[-1]
        if tif.is_ome:
            root = ElementTree.fromstring(tif.ome_metadata)
            return next(e.text for e in root.iter() if e.tag.endswith("}Value"))
        return tif.shaped_metadata[0]["iscl"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_reads_every_slice_in_order_as_float32(tmp_path, variant):
    data = VARIANTS[variant](tmp_path / "in.tif")
    volume = TiffVolume(tmp_path / "in.tif")
    expected = data.reshape(-1, ROWS, COLS)
    assert len(volume) == len(expected) and volume.shape == (ROWS, COLS)
    for index, plane in enumerate(expected):
        image = volume.read_slice(index)
        assert image.dtype == np.float32
        np.testing.assert_array_equal(image, plane.astype(np.float32))
    assert volume.info()["dtype"] == np.dtype(data.dtype).name


@pytest.mark.parametrize("variant", VARIANTS)
def test_round_trip_keeps_pixels_and_metadata_and_records_the_note(tmp_path, variant):
    VARIANTS[variant](tmp_path / "in.tif")
    volume = TiffVolume(tmp_path / "in.tif")
    volume.write(tmp_path / "out" / "in.tif", volume.slices(), NOTE)
    written = TiffVolume(tmp_path / "out" / "in.tif")
    for index in range(len(volume)):
        np.testing.assert_array_equal(written.read_slice(index), volume.read_slice(index))
    assert tiff_facts(tmp_path / "out" / "in.tif") == tiff_facts(tmp_path / "in.tif")
    assert recorded_note(tmp_path / "out" / "in.tif") == NOTE
    before, after = volume.info(), written.info()
    for key in ("axes", "axes_shape", "n_slices", "shape", "dtype", "compression", "spacing", "unit"):
        assert after[key] == before[key], key


def test_imagej_info_keeps_the_original_text_before_the_note(tmp_path):
    VARIANTS["imagej uint16 hyperstack T and Z"](tmp_path / "in.tif")
    volume = TiffVolume(tmp_path / "in.tif")
    volume.write(tmp_path / "out.tif", volume.slices(), NOTE)
    assert tifffile.TiffFile(tmp_path / "out.tif").imagej_metadata["Info"] == f"scope 3\n{NOTE}"
    assert volume.info()["spacing"] == [0.5, 0.5, 0.5] and volume.info()["unit"] == "um"


def test_ome_spacing_and_unit_are_reported(tmp_path):
    VARIANTS["ome uint16"](tmp_path / "in.ome.tif")
    info = TiffVolume(tmp_path / "in.ome.tif").info()
    assert info["flavour"] == "ome" and info["spacing"] == [1.0, 0.2, 0.2] and info["unit"] == "µm"


def test_values_are_rounded_and_clipped_to_the_stored_type(tmp_path):
    tifffile.imwrite(tmp_path / "in.tif", np.zeros((1, 2, 3), np.uint8), **ZYX)
    volume = TiffVolume(tmp_path / "in.tif")
    results = np.array([[[-7.0, 0.4, 0.6], [254.5, 300.0, np.nan]]], np.float32)
    volume.write(tmp_path / "out.tif", iter(results), NOTE)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), [[[0, 0, 1], [254, 255, 0]]])


def test_float_output_keeps_fractions(tmp_path):
    tifffile.imwrite(tmp_path / "in.tif", np.zeros((1, 2, 2), np.float32), **ZYX)
    volume = TiffVolume(tmp_path / "in.tif")
    volume.write(tmp_path / "out.tif", iter([np.full((2, 2), -0.25, np.float32)]), NOTE)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), np.full((1, 2, 2), -0.25, np.float32))


# ---- channels ----------------------------------------------------------------------------


def test_rgb_without_a_channel_is_refused_naming_the_axes(tmp_path):
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((ROWS, COLS, 3), np.uint8), photometric="rgb")
    with pytest.raises(IsclError) as error:
        TiffVolume(tmp_path / "rgb.tif")
    message = str(error.value)
    assert "rgb.tif" in message and "3 channels" in message and "'YXS'" in message and "--channel" in message
    assert "\n" not in message


def test_a_channel_out_of_range_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((ROWS, COLS, 3), np.uint8), photometric="rgb")
    with pytest.raises(IsclError, match="--channel 3 is not in 0..2"):
        TiffVolume(tmp_path / "rgb.tif", channel=3)


@pytest.mark.parametrize(
    ("options", "shape", "channel_axis"),
    [
        ({"photometric": "rgb"}, (2, ROWS, COLS, 3), 3),
        ({"photometric": "rgb", "planarconfig": "separate"}, (2, 3, ROWS, COLS), 1),
        ({"imagej": True, "metadata": {"axes": "ZCYX"}}, (2, 3, ROWS, COLS), 1),
    ],
    ids=["rgb samples last", "rgb planes", "imagej channels"],
)
def test_one_channel_is_read_and_written_alone(tmp_path, options, shape, channel_axis):
    data = random_data(shape, "uint8")
    tifffile.imwrite(tmp_path / "in.tif", data, **options)
    volume = TiffVolume(tmp_path / "in.tif", channel=1)
    expected = np.take(data, 1, axis=channel_axis)
    assert len(volume) == 2
    for index in range(2):
        np.testing.assert_array_equal(volume.read_slice(index), expected[index])
    volume.write(tmp_path / "out.tif", volume.slices(), NOTE)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), expected)
    assert TiffVolume(tmp_path / "out.tif").info()["channels"] is None


def test_imagej_per_channel_metadata_is_narrowed_to_the_chosen_channel(tmp_path):
    data = random_data((2, 3, ROWS, COLS), "uint16")
    labels = [f"z{z}c{c}" for z in range(2) for c in range(3)]
    tifffile.imwrite(
        tmp_path / "in.tif", data, imagej=True,
        metadata={"axes": "ZCYX", "Ranges": (0, 10, 0, 20, 0, 30), "Labels": labels, "mode": "composite"},
    )
    volume = TiffVolume(tmp_path / "in.tif", channel=2)
    volume.write(tmp_path / "out.tif", volume.slices(), NOTE)
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert tif.series[0].axes == "ZYX"
        assert tuple(tif.imagej_metadata["Ranges"]) == (0, 30)
        assert list(tif.imagej_metadata["Labels"]) == ["z0c2", "z1c2"]
        np.testing.assert_array_equal(tif.asarray(), data[:, 2])


def test_ome_output_of_one_channel_describes_one_channel(tmp_path):
    data = random_data((2, 3, ROWS, COLS), "uint16")
    tifffile.imwrite(tmp_path / "in.ome.tif", data, ome=True, photometric="minisblack", metadata={"axes": "CZYX"})
    volume = TiffVolume(tmp_path / "in.ome.tif", channel=1)
    volume.write(tmp_path / "out.ome.tif", volume.slices(), NOTE)
    with tifffile.TiffFile(tmp_path / "out.ome.tif") as tif:
        assert tif.is_ome and tif.series[0].axes == "ZYX"
        np.testing.assert_array_equal(tif.asarray(), data[1])
        root = ElementTree.fromstring(tif.ome_metadata)
    pixels = next(e for e in root.iter() if e.tag.endswith("}Pixels"))
    assert pixels.get("SizeC") == "1"
    assert len([e for e in pixels if e.tag.endswith("}Channel")]) == 1
    assert recorded_note(tmp_path / "out.ome.tif") == NOTE


def test_grey_data_ignores_the_channel_option(tmp_path):
    VARIANTS["int16"](tmp_path / "in.tif")
    assert len(TiffVolume(tmp_path / "in.tif", channel=2)) == 3


# ---- damaged input, laziness, atomic writes -----------------------------------------------


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_truncated_files_are_refused_without_tifffile_noise(tmp_path, compression, caplog):
    tifffile.imwrite(tmp_path / "whole.tif", random_data((6, ROWS, COLS), "uint16"), compression=compression, **ZYX)
    data = (tmp_path / "whole.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) * 2 // 3])
    with caplog.at_level(logging.DEBUG), pytest.raises(IsclError) as error:
        TiffVolume(tmp_path / "cut.tif")
    assert "cut.tif" in str(error.value) and "truncated" in str(error.value)
    assert not [record for record in caplog.records if record.name == "tifffile"]


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path):
    tifffile.imwrite(tmp_path / "bomb.tif", np.zeros((16, 16), np.uint8), compression="zlib", metadata=None)
    with tifffile.TiffFile(tmp_path / "bomb.tif", mode="r+b") as tif:
        for tag in ("ImageWidth", "ImageLength", "RowsPerStrip"):
            tif.pages[0].tags[tag].overwrite(50000)  # a 50000x50000 image claimed by a tiny deflate stream
    with pytest.raises(IsclError, match=r"bomb.tif: slices of 50000x50000 pixels \(2500 Mpixel\) would need about "
                                        r"\d+\.\d GiB of memory each"):
        TiffVolume(tmp_path / "bomb.tif")


def test_a_file_that_is_not_tiff_is_refused(tmp_path):
    (tmp_path / "fake.tif").write_bytes(b"II*\0" + b"\xff" * 20)
    with pytest.raises(IsclError, match="fake.tif"):
        TiffVolume(tmp_path / "fake.tif")


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_slices_are_read_one_at_a_time(tmp_path, monkeypatch, compression):
    data = random_data((40, ROWS, COLS), "uint16")
    tifffile.imwrite(tmp_path / "big.tif", data, compression=compression, **ZYX)
    volume = TiffVolume(tmp_path / "big.tif")

    def whole_series_read(*args, **kwargs):
        raise AssertionError("the whole series was read")

    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", whole_series_read)
    monkeypatch.setattr(tifffile.TiffFile, "asarray", whole_series_read)
    for index in (0, 17, 39):
        np.testing.assert_array_equal(volume.read_slice(index), data[index])


def failing_after(count: int, image: np.ndarray):
    for _ in range(count):
        yield image
    raise RuntimeError("inference failed")


def test_a_failed_write_leaves_the_old_output_and_no_temporary_files(tmp_path):
    VARIANTS["int16"](tmp_path / "in.tif")
    volume = TiffVolume(tmp_path / "in.tif")
    out = tmp_path / "out" / "in.tif"
    volume.write(out, volume.slices(), NOTE)
    before = out.read_bytes()
    with pytest.raises(RuntimeError, match="inference failed"):
        volume.write(out, failing_after(2, np.zeros((ROWS, COLS), np.float32)), NOTE)
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["in.tif"]


def test_a_wrong_number_of_slices_writes_nothing(tmp_path):
    VARIANTS["int16"](tmp_path / "in.tif")
    volume = TiffVolume(tmp_path / "in.tif")
    with pytest.raises(ValueError, match="got 2 slices"):
        volume.write(tmp_path / "out.tif", iter([np.zeros((ROWS, COLS), np.float32)] * 2), NOTE)
    assert list(tmp_path.iterdir()) == [tmp_path / "in.tif"]


def test_writing_over_the_input_is_refused(tmp_path):
    VARIANTS["int16"](tmp_path / "in.tif")
    volume = TiffVolume(tmp_path / "in.tif")
    with pytest.raises(IsclError, match="replace the input"):
        volume.write(tmp_path / "in.tif", volume.slices(), NOTE)


def test_large_outputs_become_bigtiff(tmp_path, monkeypatch):
    VARIANTS["int16"](tmp_path / "in.tif")
    volume = TiffVolume(tmp_path / "in.tif")
    monkeypatch.setattr(tiff, "BIGTIFF_THRESHOLD", 1000)  # stands in for ~4 GB
    volume.write(tmp_path / "out.tif", volume.slices(), NOTE)
    assert tifffile.TiffFile(tmp_path / "out.tif").is_bigtiff


def test_lossy_compression_is_replaced_by_deflate_with_a_note(tmp_path, caplog, monkeypatch):
    tifffile.imwrite(tmp_path / "in.tif", random_data((2, 32, 48), "uint8"), compression="jpeg", **ZYX)
    volume = TiffVolume(tmp_path / "in.tif")
    monkeypatch.setattr(logging.getLogger("iscl"), "propagate", True)  # the CLI turns propagation off
    with caplog.at_level(logging.WARNING, logger="iscl"):
        volume.write(tmp_path / "out.tif", volume.slices(), NOTE)
    assert tifffile.TiffFile(tmp_path / "out.tif").pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    assert "JPEG compression is not kept" in caplog.text
