"""Shared test fixtures: running the CLI in-process."""

from __future__ import annotations

import logging

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
