import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
import torch

from iscl_cli.checkpoint import load_model, load_trusted_dict
from iscl_cli.distributed import Shard, parse_shard
from iscl_cli.errors import IsclError
from iscl_cli.train import train
from tests.io_samples import ct_series
from tests.tiny import TINY_NETWORK, tiny_model_file


def test_shards_take_every_nth_item():
    items = list(range(7))
    assert Shard(0, 3).pick(items) == [0, 3, 6]
    assert Shard(2, 3).pick(items) == [2, 5]
    assert sorted(sum((Shard(k, 3).pick(items) for k in range(3)), [])) == items


@pytest.mark.parametrize("text, shard", [("0/2", Shard(0, 2)), ("3/4", Shard(3, 4)), (" 0 / 1 ", Shard(0, 1))])
def test_parse_shard(text, shard):
    assert parse_shard(text) == shard


@pytest.mark.parametrize("text", ["2/2", "1", "a/b", "-1/2", "0/0", "1/2/3"])
def test_a_bad_shard_is_one_line(text):
    with pytest.raises(IsclError, match="--shard") as error:
        parse_shard(text)
    assert "\n" not in str(error.value)


def backlog(folder: Path) -> list[Path]:
    """Four TIFF stacks and one three-slice DICOM series."""
    rng = np.random.default_rng(0)
    for index in range(4):
        tifffile.imwrite(folder / f"stack{index}.tif", rng.integers(0, 1000, (2, 24, 30)).astype(np.uint16),
                         photometric="minisblack")
    ct_series(folder / "series", count=3)
    return [folder / f"stack{index}.tif" for index in range(4)] + [folder / "series"]


def denoised_files(out: Path) -> dict[str, Path]:
    return {str(path.relative_to(out)): path for path in sorted(out.rglob("*")) if path.is_file()}


def test_two_shards_cover_every_input_once_as_one_run_does(run_cli, tmp_path):
    model = tiny_model_file(tmp_path / "model.pt")
    inputs = backlog(tmp_path)
    common = ["--model", model, "--allow-clipping", "--symmetries", "1"]
    assert run_cli("denoise", *inputs, "-o", tmp_path / "whole", *common).exit_code == 0
    shards = [run_cli("denoise", *inputs, "-o", tmp_path / f"shard{k}", "--shard", f"{k}/2", *common)
              for k in range(2)]
    assert [result.exit_code for result in shards] == [0, 0], [result.output for result in shards]

    whole = denoised_files(tmp_path / "whole")
    parts = [denoised_files(tmp_path / f"shard{k}") for k in range(2)]
    assert sorted([*parts[0], *parts[1]]) == sorted(whole)  # each output once, none twice
    assert {Path(name).parent.name for part in parts for name in part if name.endswith(".dcm")} == {"series"}
    assert len([name for name in parts[0] if name.endswith(".dcm")]) in (0, 3)  # the series whole in one shard
    for part in parts:
        for name, path in part.items():
            if name.endswith(".tif"):
                assert path.read_bytes() == whole[name].read_bytes()
            else:  # a derived series gets new UIDs on every run; its pixels are the same
                np.testing.assert_array_equal(pydicom.dcmread(path).pixel_array, pydicom.dcmread(whole[name]).pixel_array)


def test_a_bad_shard_on_the_command_line_is_one_line(run_cli, tmp_path):
    result = run_cli("denoise", tmp_path, "-o", tmp_path / "out", "--shard", "2/2")
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and "--shard 2/2" in result.stderr


def torchrun(*args: object, processes: int = 2) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node=N -m iscl_cli ARGS`` (torch.distributed.run is torchrun)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "-m", "iscl_cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.slow
def test_two_ranks_denoise_every_input_once_as_one_process_does(run_cli, tmp_path):
    model = tiny_model_file(tmp_path / "model.pt")
    inputs = backlog(tmp_path)
    common = ["--model", model, "--allow-clipping", "--symmetries", "1", "--device", "cpu"]
    assert run_cli("denoise", *inputs, "-o", tmp_path / "whole", *common).exit_code == 0
    result = torchrun("denoise", *inputs, "-o", tmp_path / "ranks", *common, "--json")
    assert result.returncode == 0, result.stderr

    summary = json.loads(result.stdout)  # one summary, from rank 0 only
    assert summary["processes"] == 2 and summary["failed"] == 0
    assert [job["input"] for job in summary["jobs"]] == [str(path) for path in inputs]
    whole, ranks = denoised_files(tmp_path / "whole"), denoised_files(tmp_path / "ranks")
    assert sorted(ranks) == sorted(whole)
    for name, path in ranks.items():
        if name.endswith(".tif"):
            assert path.read_bytes() == whole[name].read_bytes()


def train_on_two_ranks(folders: tuple[str, str], run: Path, weights: Path, *options: object,
                       stop_at_step: int = 0) -> subprocess.CompletedProcess:
    weights.mkdir(exist_ok=True)
    noisy, clean = folders
    network = [f"--net={name}={value}" for name, value in TINY_NETWORK.items()]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               str(Path(__file__).with_name("rank_recorder.py")), "train", "--noisy", noisy, "--clean", clean,
               "--out", run, "--preset", "quick", *network, "--steps", 8, "--batch-size", 2, "--patch-size", 16,
               "--checkpoint-every", 6, "--preview-every", 4, "--device", "cpu", *options]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "RANK_WEIGHTS": str(weights),
                   "STOP_AT_STEP": str(stop_at_step), "PYTHONPATH": str(Path(__file__).parents[1])}
    return subprocess.run(list(map(str, command)), capture_output=True, text=True, timeout=300, env=environment)


def rank_weights(folder: Path) -> list[dict[str, torch.Tensor]]:
    return [torch.load(folder / f"rank-{rank}.pt") for rank in range(2)]


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(0)
    for domain in ("raw", "ref"):
        (tmp_path / domain).mkdir()
        tifffile.imwrite(tmp_path / domain / "a.tif", rng.uniform(200, 3000, (3, 40, 48)).astype(np.uint16),
                         photometric="minisblack")
    return str(tmp_path / "raw"), str(tmp_path / "ref")


@pytest.mark.slow
def test_two_ranks_train_one_model_and_resume_bit_for_bit(folders, tmp_path):
    whole = train_on_two_ranks(folders, tmp_path / "whole", tmp_path / "whole-weights")
    assert whole.returncode == 0, whole.stderr
    assert whole.stdout.strip() == str(tmp_path / "whole" / "model.pt")  # printed once, by rank 0
    ranks = rank_weights(tmp_path / "whole-weights")
    for name in ranks[0]:  # parameters and running batch statistics alike
        assert torch.equal(ranks[0][name], ranks[1][name]), name
    written = sorted(str(path.relative_to(tmp_path / "whole")) for path in (tmp_path / "whole").rglob("*"))
    assert written == ["checkpoint.pt", "config.json", "curves.png", "metrics.jsonl", "model.pt", "previews",
                       "previews/step-000004.png", "previews/step-000008.png"]
    assert len((tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()) == 8
    checkpoint = load_trusted_dict(tmp_path / "whole" / "checkpoint.pt", "checkpoint")
    assert checkpoint["world_size"] == 2
    streams = [state["numpy"]["state"]["state"] for state in checkpoint["random_states"]]
    assert streams[0] != streams[1]  # each rank drew its own patches
    assert load_model(tmp_path / "whole" / "model.pt").card["provenance"]["processes"] == 2

    # Stopped after step 7 (checkpoint at 6), then resumed on two ranks: the same weights on each.
    stopped = train_on_two_ranks(folders, tmp_path / "split", tmp_path / "stopped-weights", stop_at_step=7)
    assert stopped.returncode != 0 and not (tmp_path / "split" / "model.pt").exists()
    resumed = train_on_two_ranks(folders, tmp_path / "split", tmp_path / "split-weights", "--resume", tmp_path / "split")
    assert resumed.returncode == 0, resumed.stderr
    for whole_rank, split_rank in zip(ranks, rank_weights(tmp_path / "split-weights")):
        for name in whole_rank:
            assert torch.equal(whole_rank[name], split_rank[name]), name

    with pytest.raises(IsclError, match=r"trained on 2 process\(es\), not 1.*with 2 processes"):
        train(None, resume=tmp_path / "split")
