"""The CLI in shell pipelines and in a person's hands (issue 15): what goes to stdout and
stderr, how arguments are taken, what help and errors say."""

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile

from iscl_cli.train import DEFAULT_PRESET, PRESETS, TrainConfig
from tests.tiny import TINY_NETWORK, tiny_model_file

TINY_NET_OPTIONS = [f"--net={name}={value}" for name, value in TINY_NETWORK.items()]
TINY_TRAINING = ["--batch-size", "2", "--patch-size", "16", "--device", "cpu", *TINY_NET_OPTIONS]


def write_stack(path: Path, slices: int = 2, seed: int = 0, shape: tuple[int, int] = (40, 40)) -> Path:
    """A small uint16 ZYX stack of random values inside the tiny models' intensity range (0..1000)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.random.default_rng(seed).integers(100, 1000, size=(slices, *shape)).astype(np.uint16)
    tifffile.imwrite(path, values, imagej=True, metadata={"axes": "ZYX"})
    return path


@pytest.fixture
def unpaired(tmp_path):
    """``raw/`` with two noisy stacks and ``ref/`` with two clean ones."""
    for index in range(2):
        write_stack(tmp_path / "raw" / f"n{index}.tif", seed=index)
        write_stack(tmp_path / "ref" / f"c{index}.tif", seed=10 + index)
    return tmp_path


def test_train_prints_only_the_model_path_on_stdout(run_cli, unpaired):
    result = run_cli("train", "--noisy", unpaired / "raw", "--clean", unpaired / "ref", "--steps", "3",
                     "--out", unpaired / "run", *TINY_TRAINING)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(unpaired / "run" / "model.pt")]
    assert "step 3/3" in result.stderr


def test_denoise_prints_outputs_on_stdout_and_progress_on_stderr(run_cli, tmp_path):
    model = tiny_model_file(tmp_path / "model.pt")
    stack = write_stack(tmp_path / "in" / "a.tif")
    result = run_cli("denoise", stack, "-o", tmp_path / "out", "--model", model)
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"{stack} -> {tmp_path / 'out' / 'a.tif'}")
    quiet = run_cli("denoise", stack, "-o", tmp_path / "out2", "--model", model, "--quiet", "--json")
    assert json.loads(quiet.stdout)["jobs"][0]["status"] == "ok"


OME_WITH_MICRONS = (
    '<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
    '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" SizeX="40" SizeY="40" '
    'SizeC="1" SizeZ="2" SizeT="1" PhysicalSizeX="0.5" PhysicalSizeXUnit="µm" PhysicalSizeY="0.5" '
    'PhysicalSizeYUnit="µm"><Channel ID="Channel:0:0" SamplesPerPixel="1"/><TiffData/></Pixels></Image></OME>'
)


def test_utf8_metadata_is_written_back_and_does_not_stop_the_batch(run_cli, tmp_path):
    model = tiny_model_file(tmp_path / "model.pt")
    stack = np.full((2, 40, 40), 500, np.uint16)
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "ome.ome.tif", stack, description=OME_WITH_MICRONS.encode(), metadata=None)
    tifffile.imwrite(tmp_path / "in" / "plain.tif", stack, description="Probe 5 µm, Zürich".encode(), metadata=None)
    imagej = "ImageJ=1.54f\nimages=2\nslices=2\nunit=µm\n"
    tifffile.imwrite(tmp_path / "in" / "imagej.tif", stack, description=imagej.encode(), metadata=None)
    result = run_cli("denoise", tmp_path / "in", "-o", tmp_path / "out", "--model", model)
    assert result.exit_code == 0, result.output
    with tifffile.TiffFile(tmp_path / "out" / "ome.ome.tif") as tif:
        assert 'PhysicalSizeXUnit="µm"' in tif.ome_metadata
    with tifffile.TiffFile(tmp_path / "out" / "plain.tif") as tif:
        assert tif.pages[0].description == "Probe 5 µm, Zürich"
    with tifffile.TiffFile(tmp_path / "out" / "imagej.tif") as tif:
        assert tif.imagej_metadata["unit"] == "\\u00B5m"  # how ImageJ itself writes µm


def test_an_unexpected_error_fails_one_input_in_one_line(run_cli, tmp_path, monkeypatch):
    import iscl_cli.denoise

    model = tiny_model_file(tmp_path / "model.pt")
    for name in ("a.tif", "b.tif"):
        write_stack(tmp_path / "in" / name)
    real = iscl_cli.denoise.denoise_volume

    def broken_for_a(volume, *args, **kwargs):
        if volume.name == "a.tif":
            raise ValueError("something iscl did not expect")
        return real(volume, *args, **kwargs)

    monkeypatch.setattr(iscl_cli.denoise, "denoise_volume", broken_for_a)
    result = run_cli("denoise", tmp_path / "in", "-o", tmp_path / "out", "--model", model)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"error: {tmp_path / 'in' / 'a.tif'}: unexpected ValueError: something iscl did not expect" in result.stderr
    assert (tmp_path / "out" / "b.tif").is_file()
    debug = run_cli("--debug", "denoise", tmp_path / "in", "-o", tmp_path / "out2", "--model", model)
    assert "Traceback" in debug.stderr and "broken_for_a" in debug.stderr


def test_dicom_files_named_one_by_one_form_one_derived_series(run_cli, tmp_path):
    from tests.io_samples import ct_series

    model = tiny_model_file(tmp_path / "model.pt")
    files = ct_series(tmp_path / "ct", 4)
    described = json.loads(run_cli("inspect", *files, "--json").stdout)
    assert [entry["n_slices"] for entry in described] == [4]
    result = run_cli("denoise", *files, "-o", tmp_path / "out", "--model", model, "--json")
    assert result.exit_code == 0, result.output
    (job,) = json.loads(result.stdout)["jobs"]
    assert job["slices"] == 4 and job["output"] == str(tmp_path / "out" / "ct")
    outputs = sorted((tmp_path / "out" / "ct").iterdir())
    assert len(outputs) == 4
    assert len({pydicom.dcmread(path).SeriesInstanceUID for path in outputs}) == 1


def test_inspect_reports_every_file_then_fails(run_cli, tmp_path):
    write_stack(tmp_path / "bad" / "good.tif")
    (tmp_path / "bad" / "broken.tif").write_bytes(b"II*\x00garbage")
    (tmp_path / "bad" / "cut.tif").write_bytes((tmp_path / "bad" / "good.tif").read_bytes()[:600])
    result = run_cli("inspect", tmp_path / "bad", tmp_path / "missing")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert str(tmp_path / "bad" / "good.tif") in result.stdout
    errors = result.stderr.splitlines()
    assert len(errors) == 3 and all(line.startswith("error: ") for line in errors)
    for name in ("broken.tif", "cut.tif", "missing"):
        assert any(name in line for line in errors)
    entries = json.loads(run_cli("inspect", tmp_path / "bad", "--json").stdout)
    assert sorted(Path(entry["path"]).name for entry in entries if "error" in entry) == ["broken.tif", "cut.tif"]


def test_model_and_info_take_run_folders_and_several_models(run_cli, tmp_path):
    for name in ("run-1", "run-2"):
        (tmp_path / "iscl-runs" / name).mkdir(parents=True)
        tiny_model_file(tmp_path / "iscl-runs" / name / "model.pt")
    stack = write_stack(tmp_path / "a.tif")
    result = run_cli("denoise", stack, "-o", tmp_path / "out", "--model", tmp_path / "iscl-runs" / "run-1")
    assert result.exit_code == 0, result.output
    runs = sorted((tmp_path / "iscl-runs").glob("run-*/model.pt"))
    cards = json.loads(run_cli("info", *runs, "--json").stdout)
    assert [card["path"] for card in cards] == [str(path) for path in runs]
    assert run_cli("info", tmp_path / "iscl-runs" / "run-2").stdout.startswith("model ")
    (tmp_path / "unfinished").mkdir()
    result = run_cli("info", runs[0], tmp_path / "unfinished")
    assert result.exit_code == 1 and "run-1" in result.stdout
    assert "unfinished: this run folder holds no model.pt" in result.stderr


def test_train_takes_the_files_a_shell_glob_expands_into(run_cli, unpaired):
    noisy = sorted((unpaired / "raw").glob("*.tif"))
    clean = sorted((unpaired / "ref").glob("*.tif"))
    result = run_cli("train", "--noisy", *noisy, "--clean", *clean, "--steps", "1", "--out", unpaired / "run",
                     *TINY_TRAINING)
    assert result.exit_code == 0, result.output
    config = json.loads((unpaired / "run" / "config.json").read_text())
    assert config["noisy"] == [str(path) for path in noisy] and config["clean"] == [str(path) for path in clean]


def test_spreading_list_options_leaves_other_options_alone():
    from iscl_cli.cli import spread_option_values

    args = ["--noisy", "a", "b", "--window", "-1000,1000", "--clean=c", "d", "--quiet", "--steps", "3", "--", "-x"]
    assert spread_option_values(args, ["--noisy", "--clean"]) == [
        "--noisy", "a", "--noisy", "b", "--window", "-1000,1000", "--clean=c", "--clean", "d", "--quiet",
        "--steps", "3", "--", "-x"]


def test_the_default_overlap_follows_the_tile_size(run_cli, tmp_path):
    model = tiny_model_file(tmp_path / "model.pt")
    stack = write_stack(tmp_path / "a.tif", shape=(150, 150))
    result = run_cli("denoise", stack, "-o", tmp_path / "out", "--model", model, "--tile-size", "64")
    assert result.exit_code == 0, result.output


def test_skip_existing_does_only_what_is_missing(run_cli, tmp_path):
    model = tiny_model_file(tmp_path / "model.pt")
    for name in ("a.tif", "b.tif"):
        write_stack(tmp_path / "in" / name)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.tif").write_bytes(b"an earlier result")
    result = run_cli("denoise", tmp_path / "in", "-o", tmp_path / "out", "--model", model, "--skip-existing",
                     "--json")
    assert result.exit_code == 0, result.output
    statuses = {Path(job["input"]).name: job["status"] for job in json.loads(result.stdout)["jobs"]}
    assert statuses == {"a.tif": "skipped", "b.tif": "ok"}
    assert (tmp_path / "out" / "a.tif").read_bytes() == b"an earlier result"
    assert "a.tif: skipped" in result.stderr
    refused = run_cli("denoise", tmp_path / "in", "-o", tmp_path / "out", "--model", model, "--skip-existing",
                      "--overwrite")
    assert refused.exit_code == 1 and "choose one" in refused.stderr


def test_threads_sets_torchs_thread_count(run_cli, tmp_path):
    import torch

    model = tiny_model_file(tmp_path / "model.pt")
    before = torch.get_num_threads()
    try:
        result = run_cli("denoise", write_stack(tmp_path / "a.tif"), "-o", tmp_path / "out", "--model", model,
                         "--threads", "1")
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    refused = run_cli("denoise", tmp_path / "a.tif", "-o", tmp_path / "out", "--model", model, "--threads", "0")
    assert refused.exit_code == 1 and "--threads must be at least 1" in refused.stderr


def train_args(unpaired: Path, out: str, *more: object) -> list[object]:
    return ["train", "--noisy", unpaired / "raw", "--clean", unpaired / "ref", "--out", unpaired / out,
            *TINY_TRAINING, *more]


def test_resume_extends_a_finished_run_and_says_what_it_ignores(run_cli, unpaired):
    assert run_cli(*train_args(unpaired, "run", "--steps", "2")).exit_code == 0
    result = run_cli("train", "--resume", unpaired / "run", "--steps", "4", "--seed", "7", "--device", "cpu",
                     "--export", "--preset", "quick", "--val-every", "3", "--channel", "0")
    assert result.exit_code == 0, result.output
    steps = [json.loads(line)["step"] for line in (unpaired / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert json.loads((unpaired / "run" / "config.json").read_text())["steps"] == 4
    assert json.loads(run_cli("info", unpaired / "run", "--json").stdout)["provenance"]["steps"] == 4
    (warning,) = [line for line in result.stderr.splitlines() if "ignoring" in line]
    for flag in ("--seed", "--export", "--preset", "--channel"):
        assert flag in warning
    for flag in ("--steps", "--device", "--val-every"):
        assert flag not in warning
    fewer = run_cli("train", "--resume", unpaired / "run", "--steps", "3")
    assert fewer.exit_code == 1 and "fewer than the 4 steps" in fewer.stderr


def test_fine_tuning_starts_from_a_model(run_cli, unpaired):
    assert run_cli(*train_args(unpaired, "first", "--steps", "2")).exit_code == 0
    result = run_cli(*train_args(unpaired, "tuned", "--steps", "1", "--init-from", unpaired / "first"))
    assert result.exit_code == 0, result.output
    first = json.loads(run_cli("info", unpaired / "first", "--json").stdout)
    tuned = json.loads(run_cli("info", unpaired / "tuned", "--json").stdout)
    without_gamma = [{k: v for k, v in card["config"].items() if k != "gamma"} for card in (tuned, first)]
    assert without_gamma[0] == without_gamma[1] and tuned["intensity"] == first["intensity"]
    # the start model's chosen weight is not inherited: the tuned run chooses its own
    assert tuned["config"]["gamma"] == tuned["provenance"]["ensemble_weight"]["gamma"]
    assert tuned["provenance"]["train_config"]["init_from"] == str(unpaired / "first")
    exported = run_cli(*train_args(unpaired, "exported", "--steps", "1", "--export"))
    assert exported.exit_code == 0
    refused = run_cli(*train_args(unpaired, "again", "--steps", "1", "--init-from", unpaired / "exported"))
    assert refused.exit_code == 1 and "fine-tuning needs the full model.pt" in refused.stderr


@pytest.mark.parametrize("option", ["--checkpoint-every", "--preview-every", "--val-every"])
def test_every_zero_is_one_line(run_cli, unpaired, option):
    result = run_cli(*train_args(unpaired, "run", "--steps", "1", option, "0"))
    assert result.exit_code == 1 and f"error: {option} must be at least 1 (got 0)" in result.stderr
    assert "Traceback" not in result.output


def test_training_a_person_can_follow(run_cli, unpaired):
    write_stack(unpaired / "val" / "noisy.tif", seed=20)
    write_stack(unpaired / "val" / "clean.tif", seed=21)
    result = run_cli(*train_args(unpaired, "run", "--steps", "4", "--val-noisy", unpaired / "val" / "noisy.tif",
                                 "--val-clean", unpaired / "val" / "clean.tif", "--val-every", "2",
                                 "--preview-every", "2"))
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith("note: noise orientation: ")  # decided on the noisy data before training
    assert lines[1].startswith("note: noise structure: ")  # and so the learning rates
    assert lines[2] == f"note: training in {unpaired / 'run'} (standard preset, 0 of 4 steps done, on cpu)"
    assert any(line.startswith("step 2/4") and "val PSNR" in line for line in lines)
    with open(unpaired / "run" / "curves.png", "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"


def test_ctrl_c_names_the_resume_command(run_cli, unpaired, monkeypatch):
    import iscl_cli.train

    real_step = iscl_cli.train.Run.train_step

    def interrupted_at_step_3(run):
        if run.step == 2:
            raise KeyboardInterrupt
        return real_step(run)

    monkeypatch.setattr(iscl_cli.train.Run, "train_step", interrupted_at_step_3)
    result = run_cli(*train_args(unpaired, "run", "--steps", "4", "--checkpoint-every", "2"))
    assert result.exit_code == 130
    assert result.stderr.splitlines()[-1] == (f"interrupted: at step 2; nothing half-written was left behind; "
                                              f"continue from step 2 with: iscl train --resume {unpaired / 'run'}")


def current_umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_simulate_writes_readable_files_and_keeps_existing_ones(run_cli, tmp_path):
    clean = write_stack(tmp_path / "clean.tif")
    noisy = tmp_path / "noisy.tif"
    assert run_cli("simulate", "poisson_gaussian", clean, noisy).exit_code == 0
    assert noisy.stat().st_mode & 0o777 == 0o666 & ~current_umask()
    before = noisy.read_bytes()
    refused = run_cli("simulate", "poisson_gaussian", clean, noisy, "--seed", "1")
    assert refused.exit_code == 1 and "exists; pass --overwrite" in refused.stderr
    assert noisy.read_bytes() == before
    assert run_cli("simulate", "poisson_gaussian", clean, noisy, "--seed", "1", "--overwrite").exit_code == 0
    assert noisy.read_bytes() != before


def test_an_interrupted_demo_says_how_to_start_again(run_cli, tmp_path, monkeypatch):
    import iscl_cli.demo

    def interrupted(out_dir, **settings):
        (out_dir / "run").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(iscl_cli.demo, "generate_train_denoise_score", interrupted)
    result = run_cli("demo", "--out", tmp_path / "demo")
    again = f"iscl demo --out {tmp_path / 'demo'} --overwrite"
    assert result.exit_code == 130 and f"`{again}` starts it again" in result.stderr
    refused = run_cli("demo", "--out", tmp_path / "demo")
    assert refused.exit_code == 1 and f"start it again with `{again}`" in refused.stderr
    monkeypatch.setattr(iscl_cli.demo, "generate_train_denoise_score", lambda out_dir, **_: {"preview": "p.png"})
    assert run_cli("demo", "--out", tmp_path / "demo", "--overwrite").exit_code == 0
    assert not (tmp_path / "demo" / "run").exists()


@pytest.mark.parametrize("command", ["train", "denoise", "inspect", "info", "simulate", "demo"])
def test_help_shows_defaults_plain_flags_and_exit_codes(run_cli, command):
    text = run_cli(command, "--help").stdout
    assert "<bool>" not in text
    assert "Exit status: 0 done; 1 " in " ".join(text.split())
    if command == "train":
        flat = " ".join(text.split())
        for option in ("--steps", "--batch-size", "--patch-size", "--lr", "--d-lr", "--beta2"):
            assert f"{option} " in flat
        steps = ", ".join(f"{name} {preset['steps']}" for name, preset in PRESETS.items())
        assert f"[default: (the preset's: {steps})]" in flat
        for option in ("--val-every", "--checkpoint-every", "--preview-every"):
            default = getattr(TrainConfig.from_preset(DEFAULT_PRESET, noisy=[], clean=[]), option[2:].replace("-", "_"))
            assert flat.split(option, 1)[1].split("[default: ", 1)[1].startswith(f"{default}]")


def test_shell_completion_is_offered(run_cli):
    text = run_cli("--help").stdout
    assert "--install-completion" in text and "--show-completion" in text


def test_a_flag_given_a_value_gets_a_hint(run_cli, tmp_path):
    model = tiny_model_file(tmp_path / "model.pt")
    result = run_cli("denoise", write_stack(tmp_path / "a.tif"), "-o", tmp_path / "out", "--model", model,
                     "--json", "true")
    assert result.exit_code == 1
    assert "true: no such file or folder (flags such as --json take no value" in result.stderr
