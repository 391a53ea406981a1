"""From files, folders and glob patterns to volumes: detection, grouping, naming, errors."""

from __future__ import annotations

import logging
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from pydicom.dataset import FileMetaDataset

from iscl_cli.errors import IsclError
from iscl_cli.inspect import describe_volume
from iscl_cli.io import open_volumes
from tests.io_samples import ct_series, ct_slice_hu, pydicom_file


@pytest.fixture
def notes(caplog, monkeypatch):
    """The 'iscl' log notes (the CLI stops them propagating; tests need them to)."""
    monkeypatch.setattr(logging.getLogger("iscl"), "propagate", True)
    caplog.set_level(logging.WARNING, logger="iscl")
    return caplog


def stack(path: Path, slices: int = 2, value: int = 0, **options: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.full((slices, 24, 20), value, np.uint16)
    tifffile.imwrite(path, data, photometric="minisblack", metadata={"axes": "ZYX"}, **options)
    return path


def summary(volumes) -> list[tuple[str, str, int]]:
    return [(volume.format, volume.name, len(volume)) for volume in volumes]


def test_a_folder_yields_every_stack_and_each_dicom_series(tmp_path, notes):
    stack(tmp_path / "data" / "a.tif", 3)
    stack(tmp_path / "data" / "sub" / "b.tif", 2)
    ct_series(tmp_path / "data" / "ct", 4)
    shutil.copy(pydicom_file("rtplan.dcm"), tmp_path / "data" / "ct" / "plan.dcm")
    (tmp_path / "data" / "notes.txt").write_text("scan notes")
    (tmp_path / "data" / ".hidden.tif").write_text("editor clutter")
    volumes = open_volumes([tmp_path / "data"])
    assert summary(volumes) == [("tiff", "a.tif", 3), ("tiff", "sub/b.tif", 2), ("dicom", "ct", 4)]
    np.testing.assert_array_equal(volumes[2].read_slice(3), ct_slice_hu(3))
    assert "plan.dcm: skipped, DICOM RTPLAN without pixel data" in notes.text
    assert "not TIFF or DICOM: notes.txt" in notes.text
    assert ".hidden.tif" not in notes.text


def test_a_named_pipe_in_a_folder_is_passed_over_not_opened(tmp_path):
    stack(tmp_path / "data" / "a.tif")
    os.mkfifo(tmp_path / "data" / "pipe.tif")  # opening it would wait for a writer forever

    def hung(signum, frame):
        raise TimeoutError("open_volumes opened the named pipe")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        assert [volume.name for volume in open_volumes([tmp_path / "data"])] == ["a.tif"]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_several_series_in_one_folder_get_distinct_names(tmp_path):
    ct_series(tmp_path / "mixed", 2, SeriesNumber=3)
    shutil.copy(pydicom_file("MR_small.dcm"), tmp_path / "mixed" / "mr.dcm")
    shutil.copy(pydicom_file("rtdose.dcm"), tmp_path / "mixed" / "dose.dcm")
    assert sorted(summary(open_volumes([tmp_path / "mixed"]))) == [
        ("dicom", "dose", 15), ("dicom", "mixed", 2), ("dicom", "mr", 1),
    ]


def test_glob_patterns_with_double_star(tmp_path):
    stack(tmp_path / "raw" / "day1" / "x.tif")
    stack(tmp_path / "raw" / "day2" / "y.tif")
    stack(tmp_path / "raw" / "day2" / "z.TIF")
    volumes = open_volumes([str(tmp_path / "raw" / "**" / "*.tif")])
    assert [volume.name for volume in volumes] == ["day1/x.tif", "day2/y.tif"]


def test_files_named_twice_open_once_and_a_series_split_over_inputs_is_one_series(tmp_path, monkeypatch):
    paths = ct_series(tmp_path / "ct", 3)
    monkeypatch.chdir(tmp_path)
    relative_first = Path("ct") / paths[0].name
    volumes = open_volumes([relative_first, tmp_path / "ct", paths[1], "ct"])
    assert summary(volumes) == [("dicom", "ct", 3)]


def test_files_are_recognised_by_content_not_by_name(tmp_path):
    stack(tmp_path / "in" / "stack.dat")
    shutil.copy(pydicom_file("CT_small.dcm"), tmp_path / "in" / "IM0001")  # its preamble starts like a TIFF
    dataset = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    dataset.preamble, dataset.file_meta = None, FileMetaDataset()
    dataset.save_as(tmp_path / "in" / "old_file", enforce_file_format=False, implicit_vr=True, little_endian=True)
    assert sorted(summary(open_volumes([tmp_path / "in"]))) == [
        ("dicom", "IM0001", 1), ("dicom", "old_file", 1), ("tiff", "stack.dat", 2),
    ]


def test_clashing_output_names_are_numbered(tmp_path, notes):
    stack(tmp_path / "a" / "scan.tif")
    stack(tmp_path / "b" / "scan.tif")
    assert [volume.name for volume in open_volumes([tmp_path / "a", tmp_path / "b"])] == ["scan.tif", "scan_2.tif"]
    assert "scan_2.tif" in notes.text


def test_the_channel_option_reaches_the_readers(tmp_path):
    rgb = np.arange(24 * 20 * 3, dtype=np.uint16).reshape(24, 20, 3)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    (volume,) = open_volumes([tmp_path / "rgb.tif"], channel=2)
    assert volume.read_slice(0)[0, 0] == 2


def test_describe_volume_adds_the_value_range(tmp_path):
    stack(tmp_path / "s.tif", value=7)
    (volume,) = open_volumes([tmp_path / "s.tif"])
    description = describe_volume(volume)
    assert description["value_range"] == [7.0, 7.0] and description["format"] == "tiff"
    assert description["n_slices"] == 2 and description["shape"] == [24, 20]


def make_bad_input(tmp_path: Path, case: str) -> Path:
    """Build the input for one of the refused cases; returns what the user would type."""
    if case == "missing":
        return tmp_path / "nothing_here"
    if case == "pattern without match":
        return tmp_path / "*.tif"
    if case == "empty folder":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty"
    if case == "folder without images":
        (tmp_path / "docs").mkdir()
        (tmp_path / "docs" / "readme.txt").write_text("hello")
        return tmp_path / "docs"
    if case == "named file that is neither":
        (tmp_path / "notes.tif").write_text("plain text")
        return tmp_path / "notes.tif"
    if case == "named non-image DICOM":
        return pydicom_file("rtplan.dcm")
    if case == "truncated TIFF in a folder":
        whole = stack(tmp_path / "whole.tif", 6)
        (tmp_path / "scans").mkdir()
        (tmp_path / "scans" / "cut.tif").write_bytes(whole.read_bytes()[:2000])
        return tmp_path / "scans"
    if case == "truncated DICOM":
        return pydicom_file("MR_truncated.dcm")
    if case == "inconsistent slice sizes":
        paths = ct_series(tmp_path / "ct", 2)
        odd = pydicom.dcmread(paths[1])
        odd.Rows, odd.Columns, odd.PixelData = 8, 8, bytes(128)
        odd.save_as(paths[1])
        return tmp_path / "ct"
    if case == "named pipe":
        os.mkfifo(tmp_path / "pipe.tif")  # opening it would wait for a writer forever
        return tmp_path / "pipe.tif"
    if case == "link to itself":
        (tmp_path / "loop.tif").symlink_to("loop.tif")
        return tmp_path / "loop.tif"
    if case == "RGB TIFF":
        tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((24, 20, 3), np.uint8), photometric="rgb")
        return tmp_path / "rgb.tif"
    raise AssertionError(case)


BAD_INPUTS = {
    "missing": ("nothing_here", "no such file or folder"),
    "pattern without match": ("*.tif", "no file matches"),
    "empty folder": ("empty", "folder is empty"),
    "folder without images": ("docs", "no TIFF or DICOM images found here (skipped: readme.txt)"),
    "named file that is neither": ("notes.tif", "not a TIFF or DICOM file"),
    "named non-image DICOM": ("rtplan.dcm", "RTPLAN without pixel data"),
    "truncated TIFF in a folder": ("cut.tif", "truncated"),
    "truncated DICOM": ("MR_truncated.dcm", "truncated"),
    "inconsistent slice sizes": (".dcm", "slice size 8x8"),
    "RGB TIFF": ("rgb.tif", "has 3 channels (axes 'YXS'); choose one with --channel"),
    "named pipe": ("pipe.tif", "not a file or folder but a named pipe"),
    "link to itself": ("loop.tif", "a link to nothing"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_naming_the_path_and_the_problem(tmp_path, case):
    spec = make_bad_input(tmp_path, case)
    with pytest.raises(IsclError) as error:
        open_volumes([spec])
    path_part, problem = BAD_INPUTS[case]
    message = str(error.value)
    assert "\n" not in message
    assert path_part in error.value.path and problem in message
