"""``curves.png`` in a run folder: the losses and the validation PSNR against the step.

Drawn from ``metrics.jsonl`` (so a resumed run's picture covers the whole run) with
matplotlib's Agg canvas, which needs no display and touches no global pyplot state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from iscl_cli.io.atomic import atomic_path

CURVES_FILE = "curves.png"
LOSSES = {"d_total": "discriminators", "g_total": "generators F, G", "h_total": "extractor H"}
# Losses jump from step to step; a running mean over this many steps shows the trend.
SMOOTHING_STEPS = 25


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl``; lines that are not JSON objects (torn by a crash) are left out."""
    records = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "step" in record:
            records.append(record)
    return records


def running_mean(values: np.ndarray, width: int) -> np.ndarray:
    """The mean of each value and up to ``width - 1`` before it."""
    sums = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), width)
    return (sums[1:] - sums[np.arange(len(values)) + 1 - counts]) / counts


def plot_training_curves(metrics_path: Path, png_path: Path) -> None:
    """Write ``png_path``: the three update losses (raw and smoothed) and, when the run
    validates, the validation PSNR next to the noisy input's."""
    records = read_metrics(metrics_path)
    validated = [record for record in records if "val_psnr" in record]
    figure = Figure(figsize=(8, 6.5 if validated else 3.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(2 if validated else 1, 1, squeeze=False)[:, 0]
    steps = np.array([record["step"] for record in records])
    for key, label in LOSSES.items():
        values = np.array([record.get(key, np.nan) for record in records], dtype=float)
        line, = axes[0].plot(steps, values, linewidth=0.5, alpha=0.3)
        axes[0].plot(steps, running_mean(values, SMOOTHING_STEPS), color=line.get_color(), label=label)
    axes[0].set(xlabel="step", ylabel="loss", title="training losses")
    axes[0].legend(loc="upper right", fontsize="small")
    if validated:
        val_steps = [record["step"] for record in validated]
        axes[1].plot(val_steps, [record["val_psnr"] for record in validated], marker="o", label="denoised")
        axes[1].axhline(validated[-1]["noisy_psnr"], color="grey", linestyle="--", label="noisy input")
        axes[1].set(xlabel="step", ylabel="PSNR (dB)", title="validation")
        axes[1].legend(loc="lower right", fontsize="small")
    with atomic_path(png_path) as temporary:
        figure.savefig(temporary, format="png")
