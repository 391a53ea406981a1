import errno
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from iscl_cli import run_folder
from iscl_cli.errors import IsclError
from iscl_cli.run_folder import RunFolder

REPOSITORY = Path(__file__).resolve().parents[1]


def test_an_out_folder_holding_a_run_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "k8"
    with RunFolder.claim_new(out, tmp_path) as folder:
        folder.write_config({"seed": 0})
        (out / "model.pt").write_bytes(b"first run's model")
    with pytest.raises(IsclError, match=r"k8: already holds a training run \(config.json, model.pt\); "
                                        r"continue it with --resume"):
        RunFolder.claim_new(out, tmp_path)
    assert (out / "model.pt").read_bytes() == b"first run's model"
    with RunFolder.claim_new(out, tmp_path, overwrite=True):
        assert list(out.iterdir()) == []


def test_an_empty_existing_out_folder_is_used(tmp_path):
    (tmp_path / "run").mkdir()
    with RunFolder.claim_new(tmp_path / "run", tmp_path) as folder:
        assert folder.path == tmp_path / "run" and not folder.created


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path, monkeypatch):
    class SameSecond(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 12, 1, 12, 0, 0)

    monkeypatch.setattr(run_folder, "datetime", SameSecond)
    with RunFolder.claim_new(None, tmp_path) as first, RunFolder.claim_new(None, tmp_path) as second:
        assert first.path.name == "run-20261201-120000"
        assert second.path.name == "run-20261201-120000-2"


CLAIM = "from iscl_cli.run_folder import RunFolder; import sys; RunFolder.claim_existing(__import__('pathlib').Path(sys.argv[1]))"


def test_a_folder_in_use_by_another_process_is_refused(tmp_path):
    with RunFolder.claim_new(tmp_path / "run", tmp_path):
        other = subprocess.run([sys.executable, "-c", CLAIM, str(tmp_path / "run")], cwd=REPOSITORY,
                               capture_output=True, text=True)
        assert other.returncode == 1 and "run: is in use by another iscl train process" in other.stderr
    free = subprocess.run([sys.executable, "-c", CLAIM, str(tmp_path / "run")], cwd=REPOSITORY)
    assert free.returncode == 0


def test_a_run_that_never_starts_leaves_no_folder(tmp_path):
    with RunFolder.claim_new(tmp_path / "new", tmp_path) as folder:
        with pytest.raises(IsclError), folder.discarded_on_failure():
            raise IsclError("no contrast")
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()
    with RunFolder.claim_new(tmp_path / "mine", tmp_path) as folder:
        with pytest.raises(IsclError), folder.discarded_on_failure():
            raise IsclError("no contrast")
    assert (tmp_path / "mine").is_dir()


def test_a_config_that_cannot_be_written_leaves_nothing(tmp_path, monkeypatch):
    def full_disk(self, text):
        self.write_bytes(b"")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with RunFolder.claim_new(tmp_path / "run", tmp_path) as folder:
        with pytest.raises(IsclError, match="config.json: no space left on device"), folder.discarded_on_failure():
            folder.write_config({"seed": 0})
    assert list(tmp_path.iterdir()) == []


def test_torn_metric_lines_are_dropped_on_resume(tmp_path, notes):
    with RunFolder.claim_new(tmp_path / "run", tmp_path) as folder:
        lines = [json.dumps({"step": step, "d_total": 1.0}) for step in (1, 2, 3)]
        (folder.path / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 4, "d_to')
        folder.keep_metrics_until(2)
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == "\n".join(lines[:2]) + "\n"
    assert "dropped 1 unreadable line(s)" in notes.text


def test_a_full_disk_while_logging_metrics_is_one_line(tmp_path, monkeypatch):
    with RunFolder.claim_new(tmp_path / "run", tmp_path) as folder, folder.metrics() as metrics:
        monkeypatch.setattr(metrics, "_stream", FullStream())
        with pytest.raises(IsclError, match=r"metrics.jsonl: cannot write \(no space left on device\); "
                                            r"continue with --resume"):
            metrics.append({"step": 1})


class FullStream:
    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")
