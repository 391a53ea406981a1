"""Training speed of ISCL: seconds per iteration and achieved GFLOP/s.

One iteration is one ``ISCL.train_step`` (the three updates). Its FLOPs are counted on a real
step with torch's FlopCounterMode, which counts the convolutions and transposed convolutions
of every forward pass the step runs and of their backward passes (normalisation and
activations are not counted). Timing: the median over ``--steps`` iterations after
``--warmup`` untimed ones, on random patches in [-1, 1], with the networks, batch and patch
size of a training preset (``--preset``, default paper; ``--batch``/``--patch`` override).

    python benchmarks/train_speed.py --device cpu --steps 3
    python benchmarks/train_speed.py --device cpu --preset quick --steps 20
    python benchmarks/train_speed.py --device cuda --steps 20 --amp

Prints a table and writes benchmarks/results/train_speed-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from iscl_cli.train import PRESETS
from models import ISCL, ISCLConfig, build_optimizers

RESULTS_DIR = Path(__file__).resolve().parent / "results"
NETWORK_CLASSES = ("ResnetGenerator", "NoiseExtractor", "Discriminator")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu",
                        help="where to train (default: cuda if available)")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="paper",
                        help="networks, batch and patch of this `iscl train` preset (default paper)")
    parser.add_argument("--batch", type=int, default=None, help="patches per domain per iteration (default: the preset's)")
    parser.add_argument("--patch", type=int, default=None, help="patch side in pixels (default: the preset's)")
    parser.add_argument("--steps", type=int, default=5, help="timed iterations (default 5)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed iterations after the FLOP-counting one, which warms up too (default 1)")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/train_speed-<preset>-<device>.json)")
    args = parser.parse_args()
    args.batch = args.batch or PRESETS[args.preset]["batch_size"]
    args.patch = args.patch or PRESETS[args.preset]["patch_size"]
    return args


def make_batch(batch: int, patch: int, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = torch.rand(batch, 1, patch, patch, device=device) * 2 - 1
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(step: Callable[[], Any]) -> tuple[int, dict[str, int]]:
    """FLOPs of one call of ``step``: the total (forward + backward), and the forward
    convolutions per network class (FlopCounterMode names modules by class; its attribution
    of backward passes to modules is not reliable, so only forward passes are split)."""
    with FlopCounterMode(display=False) as counter:
        step()
    forward_by_class = {
        name: counts.get(torch.ops.aten.convolution, 0)
        for name, counts in counter.get_flop_counts().items()
        if name in NETWORK_CLASSES
    }
    return counter.get_total_flops(), forward_by_class


def time_steps(step: Callable[[], Any], device: torch.device, warmup: int, steps: int) -> list[float]:
    """Seconds of each of ``steps`` calls of ``step`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        step()
    synchronize(device)
    seconds = []
    for index in range(steps):
        started = time.perf_counter()
        step()
        synchronize(device)
        seconds.append(time.perf_counter() - started)
        print(f"  iteration {index + 1}/{steps}: {seconds[-1]:.3f} s", flush=True)
    return seconds


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads"


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    channels_last = device.type == "cuda"
    amp_dtype = torch.bfloat16 if args.amp else None
    torch.manual_seed(0)
    config = ISCLConfig(**PRESETS[args.preset]["network"], instance_window=args.patch)
    model = ISCL(config).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizers = build_optimizers(model, lr=1e-4, total_steps=args.warmup + args.steps + 1)
    x = make_batch(args.batch, args.patch, device, channels_last)
    y = make_batch(args.batch, args.patch, device, channels_last)

    def step() -> dict[str, float]:
        losses = model.train_step(x, y, *optimizers.step_optimizers(), amp_dtype=amp_dtype)
        optimizers.advance_schedules()
        return losses

    print(f"counting FLOPs on one iteration ({args.device}, batch {args.batch}, patch {args.patch})", flush=True)
    flops, forward_by_class = count_flops(step)
    print(f"  {flops / 1e9:.1f} GFLOP per iteration; timing", flush=True)
    seconds = time_steps(step, device, args.warmup, args.steps)
    median = statistics.median(seconds)
    result = {
        "device": args.device,
        "device_name": device_name(device),
        "preset": args.preset,
        "torch": torch.__version__,
        "batch": args.batch,
        "patch": args.patch,
        "amp": "bfloat16" if args.amp else None,
        "channels_last": channels_last,
        "config": config.to_dict(),
        "warmup": args.warmup,
        "seconds_per_iteration": seconds,
        "median_seconds_per_iteration": median,
        "gflop_per_iteration": flops / 1e9,
        "gflop_per_sample": flops / 1e9 / args.batch,
        "forward_gflop_per_iteration_by_network_class": {name: count / 1e9 for name, count in forward_by_class.items()},
        "achieved_gflop_per_second": flops / 1e9 / median,
    }
    print(f"ISCL training speed on {result['device_name']} (torch {torch.__version__})")
    rows = [
        ("preset networks", args.preset),
        ("batch x patch", f"{args.batch} x {args.patch}x{args.patch}"),
        ("autocast", result["amp"] or "off"),
        ("timed iterations", f"{args.steps} (after {args.warmup} warm-up)"),
        ("median s / iteration", f"{median:.3f}"),
        ("iterations / s", f"{1 / median:.3f}"),
        ("GFLOP / iteration", f"{result['gflop_per_iteration']:.1f} ({result['gflop_per_sample']:.2f} per sample)"),
        ("achieved GFLOP/s", f"{result['achieved_gflop_per_second']:.1f}"),
        *((f"  forward GFLOP, {name}", f"{count / 1e9:.1f}") for name, count in forward_by_class.items()),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    out = args.out or RESULTS_DIR / f"train_speed-{args.preset}-{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_suffix(".tmp")
    temporary.write_text(json.dumps(result, indent=2) + "\n")
    temporary.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
