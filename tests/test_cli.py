import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile

from iscl_cli import __version__
from iscl_cli.cli import parse_assignments
from iscl_cli.errors import IsclError
from tests.tiny import TINY_NETWORK, tiny_model_file

PYDICOM_FILES = Path(pydicom.data.__file__).parent / "test_files"


def test_help_lists_every_command(run_cli):
    result = run_cli("--help")
    assert result.exit_code == 0
    for command in ("inspect", "train", "denoise", "info", "simulate", "demo"):
        assert command in result.stdout


def test_version(run_cli):
    result = run_cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"iscl {__version__}"


def test_inspect_reports_a_stack(run_cli, tmp_path):
    tifffile.imwrite(tmp_path / "s.tif", np.arange(2 * 30 * 40, dtype=np.uint16).reshape(2, 30, 40), imagej=True, metadata={"axes": "ZYX"})
    result = run_cli("inspect", tmp_path / "s.tif", "--json")
    assert result.exit_code == 0, result.stderr
    (description,) = json.loads(result.stdout)
    assert description["format"] == "tiff"
    assert json.dumps(description).count("2399") >= 1  # the maximum value is reported


def one_line_error(result, *names):
    assert result.exit_code == 1
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for name in names:
        assert name in lines[0]


def test_inspect_bad_inputs_give_one_line_each(run_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("hello")
    (tmp_path / "neither.tif").write_text("plain text")
    data = np.zeros((4, 32, 32), np.uint16)
    tifffile.imwrite(tmp_path / "whole.tif", data, photometric="minisblack")
    (tmp_path / "truncated.tif").write_bytes((tmp_path / "whole.tif").read_bytes()[:3000])
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((32, 32, 3), np.uint8), photometric="rgb")
    cases = [
        ("empty", "empty"), ("text", "text"), ("neither.tif", "neither.tif"), ("truncated.tif", "truncated.tif"),
        ("rgb.tif", "--channel"), ("missing.tif", "missing.tif"),
    ]
    for name, expected in cases:
        one_line_error(run_cli("inspect", tmp_path / name), expected)
    one_line_error(run_cli("inspect", PYDICOM_FILES / "MR_truncated.dcm"), "MR_truncated.dcm")


def test_train_denoise_info_from_the_command_line(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    Path("raw").mkdir()
    Path("ref").mkdir()
    tifffile.imwrite("raw/n.tif", rng.integers(100, 4000, size=(3, 48, 40)).astype(np.uint16), imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite("ref/c.tif", rng.integers(100, 4000, size=(2, 40, 56)).astype(np.uint16), imagej=True, metadata={"axes": "ZYX"})
    net = [f"--net={k}={v}" for k, v in TINY_NETWORK.items()]
    result = run_cli("train", "--noisy", "raw", "--clean", "ref", "--steps", "3", "--batch-size", "2",
                     "--patch-size", "16", "--device", "cpu", *net)
    assert result.exit_code == 0, result.output
    model_path = Path(result.stdout.strip().splitlines()[-1])
    assert model_path.parent.parent.name == "iscl-runs" and model_path.is_file()

    result = run_cli("denoise", "raw/n.tif", "-o", "out", "--json", "--write-noise")
    assert result.exit_code == 0, result.output
    assert f"using model {model_path}" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["slices"] == 3 and summary["failed"] == 0
    denoised = tifffile.imread("out/n.tif")
    assert denoised.shape == (3, 48, 40) and denoised.dtype == np.uint16
    assert tifffile.imread("out/n.noise.tif").dtype == np.float32

    one_line_error(run_cli("denoise", "raw/n.tif", "-o", "out"), "exists; pass --overwrite")

    card = run_cli("info", model_path)
    assert card.exit_code == 0 and "3 steps" in card.stdout
    assert "noise-transplant pairs" in card.stdout  # the default preset chose its ensemble weight
    assert json.loads(run_cli("info", model_path, "--json").stdout)["provenance"]["steps"] == 3


def test_denoise_a_dicom_series_into_a_derived_series(run_cli, tmp_path):
    model = tiny_model_file(tmp_path / "model.pt")
    series = tmp_path / "series"
    series.mkdir()
    source = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    series_uid = pydicom.uid.generate_uid()
    for index in range(3):
        source.SeriesInstanceUID = series_uid
        source.SOPInstanceUID = source.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        source.InstanceNumber = index + 1
        source.ImagePositionPatient = [0, 0, float(index)]
        source.save_as(series / f"slice{index}.dcm")
    result = run_cli("denoise", series, "-o", tmp_path / "out", "--model", model)
    assert result.exit_code == 0, result.output
    outputs = sorted((tmp_path / "out").rglob("*.dcm"))
    assert len(outputs) == 3
    derived = pydicom.dcmread(outputs[0])
    assert derived.SeriesInstanceUID != series_uid
    assert derived.StudyInstanceUID == source.StudyInstanceUID
    assert list(derived.ImageType)[:2] == ["DERIVED", "SECONDARY"]


def test_denoise_reports_failures_and_goes_on(run_cli, tmp_path):
    model = tiny_model_file(tmp_path / "model.pt")
    tifffile.imwrite(tmp_path / "good.tif", np.ones((2, 20, 20), np.uint16), photometric="minisblack")
    (tmp_path / "bad.tif").write_text("nope")
    result = run_cli("denoise", tmp_path / "bad.tif", tmp_path / "good.tif", "-o", tmp_path / "out", "--model", model)
    assert result.exit_code == 1
    assert "bad.tif" in result.stderr and "1 of 2 input(s) failed" in result.stderr
    assert (tmp_path / "out" / "good.tif").is_file()


def test_denoise_without_any_model_is_one_line(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tifffile.imwrite("a.tif", np.ones((1, 20, 20), np.uint16), photometric="minisblack")
    one_line_error(run_cli("denoise", "a.tif", "-o", "out"), "no model given")


def test_train_refuses_steps_zero(run_cli, tmp_path):
    one_line_error(run_cli("train", "--noisy", tmp_path, "--clean", tmp_path, "--steps", "0"), "--steps")


def test_denoise_option_and_output_problems_are_one_line(run_cli, tmp_path):
    model = tiny_model_file(tmp_path / "model.pt")
    tifffile.imwrite(tmp_path / "a.tif", np.ones((1, 20, 20), np.uint16), photometric="minisblack")
    # Tiles advance in steps of at least 4 (the generators' downsampling): 60 of 64 pixels cannot overlap.
    one_line_error(run_cli("denoise", tmp_path / "a.tif", "-o", tmp_path / "out", "--model", model,
                           "--tile-size", "64", "--overlap", "60"), "--overlap", "pixels for 64-pixel tiles")
    (tmp_path / "file").write_text("in the way")
    one_line_error(run_cli("denoise", tmp_path / "a.tif", "-o", tmp_path / "file" / "out", "--model", model),
                   "cannot create the output folder")


def test_denoise_precision_is_fp32_bf16_or_fp16_on_any_device(run_cli, tmp_path):
    model = tiny_model_file(tmp_path / "model.pt")
    data = np.random.default_rng(0).integers(0, 1000, (2, 20, 20)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", data, photometric="minisblack")
    outputs = {}
    for precision in ("fp32", "bf16"):
        result = run_cli("denoise", tmp_path / "a.tif", "-o", tmp_path / precision, "--model", model,
                         "--device", "cpu", "--precision", precision, "--symmetries", "1")
        assert result.exit_code == 0, result.stderr
        outputs[precision] = tifffile.imread(tmp_path / precision / "a.tif").astype(float)
    # bf16 keeps 8 bits of mantissa: within a few grey levels of 1000.
    assert 0 < np.abs(outputs["bf16"] - outputs["fp32"]).max() < 20
    one_line_error(run_cli("denoise", tmp_path / "a.tif", "-o", tmp_path / "out", "--model", model,
                           "--precision", "fp64"), "--precision must be one of fp32, bf16, fp16")


def test_train_refuses_a_fractional_network_width(run_cli, tmp_path):
    one_line_error(run_cli("train", "--noisy", tmp_path, "--clean", tmp_path, "--net", "gen_base=1.5"),
                   "gen_base", "whole number")


def test_net_settings_parse_numbers_and_true_false() -> None:
    assert parse_assignments(["gen_base=16", "lam=2.5", "identity_start=False", "x = true"]) == \
        {"gen_base": 16, "lam": 2.5, "identity_start": False, "x": True}
    with pytest.raises(IsclError, match="not a number"):
        parse_assignments(["gen_base=wide"])


def test_train_takes_one_channel_of_rgb_data(run_cli, tmp_path):
    rng = np.random.default_rng(0)
    for name in ("noisy", "clean"):
        (tmp_path / name).mkdir()
        tifffile.imwrite(tmp_path / name / "rgb.tif", rng.integers(0, 255, (2, 40, 40, 3)).astype(np.uint8),
                         photometric="rgb")
    args = ["train", "--noisy", tmp_path / "noisy", "--clean", tmp_path / "clean", "--steps", "1",
            "--batch-size", "1", "--patch-size", "16", "--device", "cpu", "--out", tmp_path / "run", "--quiet",
            *[f"--net={k}={v}" for k, v in TINY_NETWORK.items()]]
    one_line_error(run_cli(*args), "--channel")
    result = run_cli(*args, "--channel", "1")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["channel"] == 1

    resumed = run_cli("train", "--resume", tmp_path / "run", "--steps", "2", "--channel", "0")
    assert resumed.exit_code == 0, resumed.output
    assert "ignoring --channel" in resumed.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["channel"] == 1


def test_train_with_a_focus_range_stores_it_and_its_model_denoises(run_cli, tmp_path):
    rng = np.random.default_rng(1)
    for name in ("noisy", "clean"):
        (tmp_path / name).mkdir()
        tifffile.imwrite(tmp_path / name / "ct.tif", rng.integers(-1000, 1500, (2, 40, 40)).astype(np.int16))
    args = ["train", "--noisy", tmp_path / "noisy", "--clean", tmp_path / "clean", "--steps", "1",
            "--batch-size", "1", "--patch-size", "16", "--device", "cpu", "--quiet",
            *[f"--net={k}={v}" for k, v in TINY_NETWORK.items()]]
    one_line_error(run_cli(*args, "--out", tmp_path / "bad", "--focus", "5000,6000"), "--focus 5000,6000",
                   "outside the data's intensity range")
    result = run_cli(*args, "--out", tmp_path / "run", "--focus=-300,300")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["focus"] == [-300.0, 300.0]
    assert "focus -300,300" in run_cli("info", tmp_path / "run" / "model.pt").output
    denoised = run_cli("denoise", tmp_path / "noisy" / "ct.tif", "-o", tmp_path / "out", "--model",
                       tmp_path / "run" / "model.pt", "--symmetries", "1", "--quiet")
    assert denoised.exit_code == 0, denoised.output
    output = tifffile.imread(tmp_path / "out" / "ct.tif")
    assert output.dtype == np.int16 and output.shape == (2, 40, 40)
