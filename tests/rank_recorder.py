"""What torchrun starts in the distributed training tests: ``iscl`` (as ``python -m iscl_cli``
would run it) with each rank's final weights and buffers saved to ``$RANK_WEIGHTS/rank-N.pt``,
and with ``$STOP_AT_STEP`` a Ctrl-C on every rank after that step."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

import iscl_cli.train as training
from iscl_cli.cli import app

trained = training.train_run


def recorded(run: training.Run, folder: object, progress: training.ProgressCallback | None = None) -> Path:
    def stopping(report: training.StepReport) -> None:
        if progress is not None:
            progress(report)
        if report.step == int(os.environ.get("STOP_AT_STEP", 0)):
            raise KeyboardInterrupt

    model_path = trained(run, folder, stopping)
    torch.save(run.model.state_dict(), Path(os.environ["RANK_WEIGHTS"]) / f"rank-{run.world.rank}.pt")
    return model_path


training.train_run = recorded
app(sys.argv[1:], prog_name="iscl")
