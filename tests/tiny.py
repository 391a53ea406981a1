"""Tiny networks and model files, so tests that need a model run in a blink."""

from __future__ import annotations

from pathlib import Path

import torch

from iscl_cli.checkpoint import save_model
from iscl_cli.intensity import IntensityMapping
from models.iscl import ISCL, ISCLConfig

TINY_NETWORK = dict(gen_base=4, gen_blocks=1, ext_width=4, ext_depth=3, disc_base=4, disc_layers=2)


def tiny_model(seed: int = 0) -> ISCL:
    torch.manual_seed(seed)
    return ISCL(ISCLConfig(**TINY_NETWORK, instance_window=16)).eval()


def tiny_model_file(path: Path, mapping: IntensityMapping | None = None, export: bool = False) -> Path:
    mapping = mapping or IntensityMapping(0.0, 1000.0, 0.0, 1000.0, "window 0,1000")
    save_model(path, tiny_model(), mapping, {"steps": 0, "iscl_version": "test"}, export=export)
    return path
