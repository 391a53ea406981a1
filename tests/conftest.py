"""Shared test fixtures: running the CLI in-process."""

from __future__ import annotations

import errno
import logging
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from iscl_cli.cli import app


@pytest.fixture
def run_cli():
    """``run_cli("inspect", path)`` -> click Result with ``exit_code``, ``stdout`` and ``stderr``."""
    runner = CliRunner()

    def invoke(*args: object):
        result = runner.invoke(app, [str(a) for a in args])
        logging.getLogger("iscl").handlers.clear()
        return result

    return invoke


@pytest.fixture
def notes(caplog, monkeypatch):
    """``caplog`` holding the ``note:`` lines of the "iscl" logger (the CLI turns their propagation off)."""
    monkeypatch.setattr(logging.getLogger("iscl"), "propagate", True)
    caplog.set_level(logging.INFO, logger="iscl")
    return caplog


class SmallDisk:
    """A 1 MiB file system at ``path`` that a test can fill up."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fill(self) -> None:
        """Write zeros into ``filler`` until the file system is full."""
        with (self.path / "filler").open("wb", buffering=0) as stream:
            try:
                while True:
                    stream.write(bytes(4096))
            except OSError as error:
                assert error.errno == errno.ENOSPC

    def files(self) -> list[str]:
        """Everything on it but the filler, hidden names included."""
        return sorted(str(p.relative_to(self.path)) for p in self.path.rglob("*") if p.name != "filler")


@pytest.fixture
def small_disk(tmp_path):
    """An empty 1 MiB tmpfs, for full-disk tests (mounting needs root; skipped otherwise)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield SmallDisk(folder)
    subprocess.run(["umount", "--lazy", str(folder)], check=True)
