"""DICOM reading and writing on pydicom's real sample files and series built from them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_rescale
from pydicom.uid import ExplicitVRLittleEndian

from iscl_cli.errors import IsclError
from iscl_cli.io.dicom import DicomFile, DicomSeries
from tests.io_samples import CT_SPACING, ct_series, ct_slice_hu, enhanced_ct, pydicom_file

NOTE = "denoised by iscl 0.1.0, model test/model.pt"

MR_VARIANTS = [
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "MR_small_expb.dcm",
    "MR_small_padded.dcm",
]
OTHER_IMAGES = [
    "CT_small.dcm",  # CT, rescale to HU
    "693_J2KI.dcm",  # CT, JPEG 2000 (lossy)
    "JPGExtended.dcm",  # NM, JPEG extended 12-bit
    "JPEGLSNearLossless_16.dcm",  # JPEG-LS near-lossless
    "image_dfl.dcm",  # deflated explicit VR little endian
    "rtdose.dcm",  # RT dose: 15 frames, 32-bit, DoseGridScaling
    "rtdose_rle.dcm",
    "rtdose_expb.dcm",
]

# What a derived instance changes on purpose; every other top-level attribute must survive.
CHANGED = {
    "SOPInstanceUID", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "ImageType",
    "DerivationDescription", "SourceImageSequence", "LossyImageCompression", "PixelData",
    "SmallestImagePixelValue", "LargestImagePixelValue",  # described the old pixels
}


def open_series(*paths: Path, channel: int | None = None) -> DicomSeries:
    files = [DicomFile.read(path) for path in paths]
    return DicomSeries(files, source=paths[0].parent, name="series", channel=channel)


def read_all(volume: DicomSeries) -> np.ndarray:
    return np.stack(list(volume.slices()))


def pydicom_reference(path: Path) -> np.ndarray:
    """pydicom's own full decode in modality units, as (frames, rows, cols)."""
    dataset = pydicom.dcmread(path)
    values = apply_rescale(dataset.pixel_array, dataset).astype(np.float32)
    return values.reshape(-1, dataset.Rows, dataset.Columns)


def top_level(dataset: pydicom.Dataset) -> dict[str, object]:
    return {element.keyword or str(element.tag): element.value for element in dataset if element.tag != 0x7FE00010}


def written_files(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(path) for path in sorted(folder.iterdir())]


# ---- reading -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", MR_VARIANTS)
def test_every_encoding_of_one_mr_image_reads_the_same(name):
    volume = open_series(pydicom_file(name))
    np.testing.assert_array_equal(read_all(volume), pydicom_reference(pydicom_file("MR_small.dcm")))


@pytest.mark.parametrize("name", OTHER_IMAGES)
def test_values_match_pydicom_in_modality_units(name):
    volume = open_series(pydicom_file(name))
    expected = pydicom_reference(pydicom_file(name))
    if name.startswith("rtdose"):
        expected = expected * float(pydicom.dcmread(pydicom_file(name)).DoseGridScaling)
        expected = expected[np.argsort(_rtdose_positions(name))]
    np.testing.assert_allclose(read_all(volume), expected, rtol=1e-6)


def _rtdose_positions(name: str) -> list[float]:
    dataset = pydicom.dcmread(pydicom_file(name), stop_before_pixels=True)
    return [float(dataset.ImagePositionPatient[2]) + float(offset) for offset in dataset.GridFrameOffsetVector]


def test_ct_is_reported_in_hounsfield_units_with_its_geometry():
    info = open_series(pydicom_file("CT_small.dcm")).info()
    assert info["modality"] == "CT" and info["rescale"] == {"slope": 1.0, "intercept": -1024.0, "type": "HU"}
    assert info["n_slices"] == 1 and info["shape"] == [128, 128] and info["dtype"] == "int16"
    assert info["spacing"] == pytest.approx([5.0, 0.661468, 0.661468]) and info["unit"] == "mm"


def test_slices_are_sorted_by_position_not_by_file_name(tmp_path):
    paths = ct_series(tmp_path, 5)
    volume = open_series(*sorted(paths))
    for k in range(5):
        np.testing.assert_array_equal(volume.read_slice(k), ct_slice_hu(k))
    assert volume.info()["spacing"][0] == pytest.approx(CT_SPACING)


def test_without_positions_slices_follow_instance_number(tmp_path):
    paths = ct_series(tmp_path, 3, with_positions=False)
    volume = open_series(*sorted(paths))
    for k in range(3):
        np.testing.assert_array_equal(volume.read_slice(k), ct_slice_hu(k))


def test_oblique_slices_are_sorted_along_their_normal(tmp_path):
    sagittal = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]  # normal points along -x
    paths = ct_series(tmp_path, 3, ImageOrientationPatient=sagittal)
    for k, path in enumerate(paths):
        dataset = pydicom.dcmread(path)
        dataset.ImagePositionPatient = [-10.0 * k, 0.0, 0.0]
        dataset.save_as(path)
    volume = open_series(*sorted(paths))
    for k in range(3):
        np.testing.assert_array_equal(volume.read_slice(k), ct_slice_hu(k))


def test_enhanced_multi_frame_uses_per_frame_positions_and_rescale(tmp_path):
    expected = enhanced_ct(tmp_path / "enhanced.dcm", frames=4)
    volume = open_series(tmp_path / "enhanced.dcm")
    np.testing.assert_array_equal(read_all(volume), expected)


def test_only_headers_are_read_at_open():
    file = DicomFile.read(pydicom_file("CT_small.dcm"))
    assert "PixelData" not in file.header and file.pixels.offset > 0


# pydicom's JPEG baseline samples are all colour; SC_rgb_jpeg_dcmtk.dcm is YBR_FULL, which
# pydicom converts to RGB as it decodes.
@pytest.mark.parametrize("name", ["SC_rgb_rle.dcm", "SC_rgb_jpeg_dcmtk.dcm"])
def test_colour_needs_a_channel_and_then_reads_that_sample(name):
    with pytest.raises(IsclError) as error:
        open_series(pydicom_file(name))
    assert name in str(error.value) and "3 channels" in str(error.value) and "--channel" in str(error.value)
    volume = open_series(pydicom_file(name), channel=1)
    expected = pydicom.dcmread(pydicom_file(name)).pixel_array[..., 1]
    np.testing.assert_array_equal(volume.read_slice(0), expected)


@pytest.mark.parametrize(
    ("name", "reason"),
    [("rtplan.dcm", "RTPLAN without pixel data"), ("rtstruct.dcm", "RTSTRUCT without pixel data"),
     ("test-SR.dcm", "SR without pixel data"), ("liver_1frame.dcm", "1-bit")],
)
def test_non_images_say_why_they_are_skipped(name, reason):
    assert reason in DicomFile.read(pydicom_file(name)).skip_reason()


def test_a_truncated_file_is_refused_at_open():
    with pytest.raises(IsclError) as error:
        open_series(pydicom_file("MR_truncated.dcm"))
    assert "MR_truncated.dcm" in str(error.value) and "truncated" in str(error.value)


def test_rows_and_columns_smaller_than_the_pixel_data_are_refused(tmp_path):
    (path,) = ct_series(tmp_path, 1)
    dataset = pydicom.dcmread(path)
    dataset.Rows, dataset.Columns = 64, 64  # 128x128 pixels stored
    dataset.save_as(path)
    with pytest.raises(IsclError, match=r"image_00.dcm: pixel data holds 32768 bytes, but 1 frame\(s\) of 64x64 "
                                        r"pixels need 8192: Rows, Columns or NumberOfFrames do not describe the data"):
        open_series(path)


def test_a_compressed_frame_claiming_a_huge_size_is_refused_before_decoding(tmp_path):
    dataset = pydicom.dcmread(pydicom_file("MR_small_RLE.dcm"))
    dataset.Rows = dataset.Columns = 65535
    dataset.save_as(tmp_path / "bomb.dcm")
    with pytest.raises(IsclError, match=r"bomb.dcm: slices of 65535x65535 pixels \(4295 Mpixel\) would need about"):
        open_series(tmp_path / "bomb.dcm")


def test_more_pixel_data_than_one_dicom_file_holds_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("iscl_cli.io.dicom.check_slice_fits", lambda *arguments: None)  # a machine with memory to spare
    dataset = pydicom.dcmread(pydicom_file("MR_small_RLE.dcm"))
    dataset.Rows = dataset.Columns = 50000
    dataset.save_as(tmp_path / "large.dcm")
    with pytest.raises(IsclError, match=r"large.dcm: 1 frame\(s\) of 50000x50000 pixels make 4.7 GiB of pixel data, "
                                        r"more than one DICOM file can hold"):
        open_series(tmp_path / "large.dcm")


def test_values_above_bits_stored_are_ignored_with_a_note(tmp_path, notes):
    (path,) = ct_series(tmp_path, 1, BitsStored=8, HighBit=7)  # CT_small's values reach 2191
    image = open_series(path).read_slice(0)
    stored = pydicom.dcmread(path, force=True).pixel_array  # pydicom ignores the bits too, silently
    np.testing.assert_array_equal(image, stored.astype(np.float32) - 1024)
    assert re.search(r"image_00.dcm: \d+ of 16384 pixel values of a frame use bits above BitsStored 8 "
                     r"\(e.g. \d+ read as -?\d+\); as the DICOM standard says, those bits are ignored", notes.text)


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")  # pydicom, when the test writes 'NaN'
@pytest.mark.parametrize("slope", [0, "NaN"])
def test_a_rescale_that_cannot_be_inverted_is_refused(tmp_path, slope):
    (path,) = ct_series(tmp_path, 1, RescaleSlope=slope)
    with pytest.raises(IsclError, match=r"image_00.dcm: RescaleSlope (0|nan) and RescaleIntercept -1024 do not map"):
        open_series(path)


def test_text_in_a_number_field_is_refused_naming_the_file(tmp_path):
    (path,) = ct_series(tmp_path, 1, RescaleIntercept="77777")
    path.write_bytes(path.read_bytes().replace(b"77777", b"abcde", 1))  # pydicom will not write it itself
    with pytest.raises(IsclError, match=r"image_00.dcm: unreadable header value \(could not convert"):
        open_series(path)


def test_pixel_data_without_an_image_size_is_refused(tmp_path):
    (path,) = ct_series(tmp_path, 1)
    dataset = pydicom.dcmread(path)
    del dataset.Rows
    dataset.save_as(path)
    with pytest.raises(IsclError, match="image_00.dcm: damaged DICOM: pixel data without Rows"):
        open_series(path)


def test_no_frames_is_refused(tmp_path):
    (path,) = ct_series(tmp_path, 1, NumberOfFrames=-1)
    with pytest.raises(IsclError, match="image_00.dcm: NumberOfFrames -1: no image to read"):
        open_series(path)


def test_inconsistent_slice_sizes_are_refused_naming_the_file(tmp_path):
    paths = ct_series(tmp_path, 3)
    odd = pydicom.dcmread(paths[1])
    odd.Rows, odd.Columns = 64, 64
    odd.PixelData = np.zeros((64, 64), np.int16).tobytes()
    odd.save_as(paths[1])
    with pytest.raises(IsclError) as error:
        open_series(*paths)
    assert paths[1].name in str(error.value) and "slice size 64x64" in str(error.value)


def test_a_palette_image_is_refused():
    with pytest.raises(IsclError, match="palette"):
        open_series(pydicom_file("examples_palette.dcm"))


# ---- writing -----------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # the rtdose samples carry an over-long UID
@pytest.mark.parametrize("name", MR_VARIANTS + OTHER_IMAGES)
def test_round_trip_keeps_values_and_every_attribute_not_meant_to_change(tmp_path, name):
    volume = open_series(pydicom_file(name))
    volume.write(tmp_path / "out", volume.slices(), NOTE)
    (output,) = written_files(tmp_path / "out")
    written = open_series(*sorted((tmp_path / "out").iterdir()))
    np.testing.assert_allclose(read_all(written), read_all(volume), rtol=1e-6)
    source = pydicom.dcmread(pydicom_file(name), stop_before_pixels=True)
    before, after = top_level(source), top_level(output)
    differing = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    assert {key for key in differing if not key.endswith("0000)")} <= CHANGED  # group lengths are dropped
    assert output.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


def test_a_derived_series_has_new_identity_and_points_at_its_sources(tmp_path):
    paths = ct_series(tmp_path / "in", 3, SeriesDescription="A" * 64, SeriesNumber=7)
    volume = open_series(*paths)
    volume.write(tmp_path / "out", volume.slices(), NOTE)
    outputs = written_files(tmp_path / "out")
    sources = {path.name: pydicom.dcmread(path) for path in paths}
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == sorted(sources)
    assert len({output.SeriesInstanceUID for output in outputs}) == 1
    for output, path in zip(outputs, sorted((tmp_path / "out").iterdir())):
        source = sources[path.name]
        assert output.SeriesInstanceUID != source.SeriesInstanceUID
        assert output.SOPInstanceUID != source.SOPInstanceUID
        assert output.file_meta.MediaStorageSOPInstanceUID == output.SOPInstanceUID
        assert output.StudyInstanceUID == source.StudyInstanceUID
        assert output.FrameOfReferenceUID == source.FrameOfReferenceUID
        assert output.ImagePositionPatient == source.ImagePositionPatient
        assert list(output.ImageType) == ["DERIVED", "SECONDARY", *list(source.ImageType)[2:]]
        assert output.DerivationDescription == NOTE
        (reference,) = output.SourceImageSequence
        assert reference.ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert reference.ReferencedSOPClassUID == source.SOPClassUID
        assert output.SeriesNumber == 1007
        assert len(output.SeriesDescription) == 64 and output.SeriesDescription.endswith(" (iscl denoised)")


def test_stored_values_go_back_through_the_rescale_and_are_clipped_to_bits_stored(tmp_path):
    paths = ct_series(tmp_path / "in", 1, BitsStored=12, HighBit=11, RescaleSlope=0.5, RescaleIntercept=-1000)
    volume = open_series(*paths)
    wanted = np.full(volume.shape, -990.2, np.float32)
    wanted[0, :3] = [5000.0, -5000.0, -990.0]
    volume.write(tmp_path / "out", iter([wanted]), NOTE)
    (output,) = written_files(tmp_path / "out")
    stored = output.pixel_array
    assert stored[0, 0] == 2047 and stored[0, 1] == -2048  # the 12-bit signed range
    assert stored[0, 2] == 20 and stored[1, 0] == 20  # round((-990.2 + 1000) / 0.5) = round(19.6)


def test_enhanced_multi_frame_round_trip_keeps_frame_order_and_marks_frames_derived(tmp_path):
    expected = enhanced_ct(tmp_path / "in" / "enhanced.dcm", frames=4)
    volume = open_series(tmp_path / "in" / "enhanced.dcm")
    volume.write(tmp_path / "out", volume.slices(), NOTE)
    (output,) = written_files(tmp_path / "out")
    source = pydicom.dcmread(tmp_path / "in" / "enhanced.dcm")
    np.testing.assert_array_equal(output.pixel_array, source.pixel_array)  # frames keep their stored order
    np.testing.assert_array_equal(read_all(open_series(tmp_path / "out" / "enhanced.dcm")), expected)
    frame_types = [group.CTImageFrameTypeSequence[0].FrameType[0] for group in output.PerFrameFunctionalGroupsSequence]
    assert frame_types == ["DERIVED"] * 4


def test_one_channel_of_colour_data_is_written_as_monochrome(tmp_path):
    volume = open_series(pydicom_file("SC_rgb_rle.dcm"), channel=2)
    volume.write(tmp_path / "out", volume.slices(), NOTE)
    (output,) = written_files(tmp_path / "out")
    assert output.SamplesPerPixel == 1 and output.PhotometricInterpretation == "MONOCHROME2"
    assert "PlanarConfiguration" not in output
    source = pydicom.dcmread(pydicom_file("SC_rgb_rle.dcm"))
    np.testing.assert_array_equal(output.pixel_array, source.pixel_array[..., 2])


def test_lossy_sources_stay_marked_lossy(tmp_path):
    volume = open_series(pydicom_file("693_J2KI.dcm"))
    volume.write(tmp_path / "out", volume.slices(), NOTE)
    assert written_files(tmp_path / "out")[0].LossyImageCompression == "01"


def test_writing_twice_gives_two_distinct_series_and_leaves_the_input_alone(tmp_path):
    paths = ct_series(tmp_path / "in", 2)
    before = [path.read_bytes() for path in paths]
    volume = open_series(*paths)
    volume.write(tmp_path / "a", volume.slices(), NOTE)
    volume.write(tmp_path / "b", volume.slices(), NOTE)
    assert written_files(tmp_path / "a")[0].SeriesInstanceUID != written_files(tmp_path / "b")[0].SeriesInstanceUID
    assert [path.read_bytes() for path in paths] == before


def test_writing_again_replaces_the_previous_output_folder_only_with_overwrite(tmp_path):
    paths = ct_series(tmp_path / "in", 2)
    volume = open_series(*paths)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale.dcm").write_text("from an earlier run")
    with pytest.raises(IsclError, match="pass --overwrite"):
        volume.write(tmp_path / "out", volume.slices(), NOTE)
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["stale.dcm"]
    volume.write(tmp_path / "out", volume.slices(), NOTE, overwrite=True)
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == sorted(path.name for path in paths)
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


def test_a_failed_write_leaves_no_folder_behind(tmp_path):
    paths = ct_series(tmp_path / "in", 3)
    volume = open_series(*paths)

    def two_then_failure():
        yield from list(volume.slices())[:2]
        raise RuntimeError("inference failed")

    with pytest.raises(RuntimeError):
        volume.write(tmp_path / "out" / "series", two_then_failure(), NOTE)
    assert list((tmp_path / "out").iterdir()) == []


def test_writing_into_the_input_folder_itself_is_refused(tmp_path):
    paths = ct_series(tmp_path / "in", 2)
    volume = open_series(*paths)
    with pytest.raises(IsclError, match="replace the input"):
        volume.write(tmp_path / "in", volume.slices(), NOTE)


# ---- validation with dicom3tools --------------------------------------------------------

needs_dicom3tools = pytest.mark.skipif(
    shutil.which("dciodvfy") is None or shutil.which("dcentvfy") is None,
    reason="dicom3tools (dciodvfy, dcentvfy) not installed: apt-get install dicom3tools",
)


def dciodvfy_complaints(path: Path) -> set[str]:
    """dciodvfy's error and warning lines, values and numbers blanked so that input and output compare."""
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    lines = (result.stdout + result.stderr).splitlines()
    return {re.sub(r'"[^"]*"|\d+', "#", line) for line in lines if line.startswith(("Error", "Warning"))}


@needs_dicom3tools
def test_dciodvfy_complaints_catch_a_broken_file(tmp_path):
    dataset = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    del dataset.StudyInstanceUID
    dataset.save_as(tmp_path / "broken.dcm")
    assert any("StudyInstanceUID" in line for line in dciodvfy_complaints(tmp_path / "broken.dcm"))


@needs_dicom3tools
@pytest.mark.parametrize("series", ["ct", "mr"])
def test_output_adds_no_dciodvfy_complaints_and_dcentvfy_finds_it_consistent(tmp_path, series):
    paths = ct_series(tmp_path / "in", 3) if series == "ct" else [pydicom_file("MR_small.dcm")]
    volume = open_series(*paths)
    volume.write(tmp_path / "out", volume.slices(), NOTE)
    outputs = sorted((tmp_path / "out").iterdir())
    input_complaints = set().union(*(dciodvfy_complaints(path) for path in paths))
    for output in outputs:
        assert dciodvfy_complaints(output) <= input_complaints
    consistency = subprocess.run(["dcentvfy", *map(str, outputs)], capture_output=True, text=True, check=False)
    assert consistency.returncode == 0 and "Error" not in consistency.stdout + consistency.stderr
