"""Inference speed: our tiled inference vs one untiled pass vs MONAI's sliding window.

The model is the paper-sized ISCL denoiser (``ISCL(ISCLConfig()).denoise``: F and H, eval
mode, random weights; speed does not depend on them) on a random slice in [-1, 1]. Per
slice size and precision, one repetition times three ways to get the denoised slice:

* ``untiled``: one model call on the whole slice, the compute floor (it needs the most memory);
* ``ours``: ``iscl_cli.tiling.sliding_window_inference`` with its defaults (or the options);
* ``monai``: ``monai.inferers.sliding_window_inference`` with the same tile size, overlap
  (as a fraction of the tile), batch size and ``mode="gaussian"``.

The three alternate within each repetition, so a change in machine load hits all of them;
the table reports medians. Besides seconds it reports the pixels the model was run on
(a load-independent measure of the work) and the model's FLOPs per megapixel, counted by
torch's FlopCounterMode (convolutions only). MONAI is a benchmark-only dependency
(``pip install -e '.[bench]'``).

With ``--stack N``, it also times four ways through a stack of N slices smaller than a
batch of tiles (256x256 by default), alternating within each repetition as above:

* ``one per call``: ``denoise_image`` slice by slice, one slice's tiles per model call;
* ``packed``: ``denoise_image`` on groups of as many slices as fill a batch of tiles
  (``TileOptions.slices_per_call`` on a GPU), whose tiles share model calls;
* ``volume inline`` and ``volume thread``: ``denoise_volume`` on the stack as a float32
  TIFF file (reading, denoising as ``iscl denoise`` does on the device, noise check,
  writing), its writing in the computing thread or in a writer thread of its own.

    python benchmarks/inference_speed.py --reps 3
    python benchmarks/inference_speed.py --sizes 512 --tile-size 256 --overlap 32 --reps 3   # same layout, 1/4 the work
    python benchmarks/inference_speed.py --device cuda --sizes 1024 2048 --precisions fp32 bf16 --series 300
    python benchmarks/inference_speed.py --sizes --stack 8 --reps 3                          # packing only

Prints a table and writes benchmarks/results/inference_speed-<device>.json.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch
from torch.utils.flop_counter import FlopCounterMode

from iscl_cli.checkpoint import LoadedModel
from iscl_cli.denoise import denoise_volume
from iscl_cli.inference import TileOptions, denoise_image, tile_alignment
from iscl_cli.intensity import IntensityMapping
from iscl_cli.io import open_volumes
from iscl_cli.tiling import sliding_window_inference
from models import ISCL, ISCLConfig

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
FLOP_COUNT_SIDE = 128
Model = Callable[[torch.Tensor], torch.Tensor]


def parse_args() -> argparse.Namespace:
    defaults = {name: value.default for name, value in inspect.signature(sliding_window_inference).parameters.items()}
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model runs (default cpu)")
    parser.add_argument("--sizes", type=int, nargs="*", default=[1024],
                        help="slice sides to compare (default 1024; none to skip the comparison)")
    parser.add_argument("--precisions", choices=tuple(PRECISIONS), nargs="+", default=["fp32"],
                        help="fp32 and/or autocast to bf16/fp16 (default fp32)")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions; the median is reported (default 3)")
    parser.add_argument("--series", type=int, default=0,
                        help="also time ours on this many slices in a row, as a series (default 0: skip)")
    parser.add_argument("--series-side", type=int, default=512, help="side of the series' slices (default 512)")
    parser.add_argument("--stack", type=int, default=0,
                        help="also compare one slice per model call with packed slices on this many (default 0: skip)")
    parser.add_argument("--stack-side", type=int, default=256, help="side of the stack's slices (default 256)")
    parser.add_argument("--symmetries", type=int, default=1, help="symmetries for --stack (default 1)")
    parser.add_argument("--tile-size", type=int, default=defaults["tile_size"], help="default: the tiler's")
    parser.add_argument("--overlap", type=int, default=defaults["overlap"], help="pixels (default: the tiler's)")
    parser.add_argument("--batch-size", type=int, default=defaults["batch_size"], help="default: the tiler's")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default benchmarks/results/inference_speed-<device>.json)")
    return parser.parse_args()


class CountingModel:
    """Wraps a model and adds up the pixels of every batch it is called on."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.pixels = 0

    def __call__(self, tiles: torch.Tensor) -> torch.Tensor:
        self.pixels += tiles.shape[0] * tiles.shape[-2] * tiles.shape[-1]
        return self.model(tiles)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads"


def gflop_per_megapixel(model: Model, device: torch.device) -> float:
    """Convolution GFLOPs of one model call, per megapixel of input."""
    x = torch.rand(1, 1, FLOP_COUNT_SIDE, FLOP_COUNT_SIDE, device=device) * 2 - 1
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return counter.get_total_flops() / 1e9 / (FLOP_COUNT_SIDE**2 / 1e6)


def slice_methods(args: argparse.Namespace, device: torch.device, amp_dtype: torch.dtype | None, alignment: int
                  ) -> dict[str, Callable[[torch.Tensor, Model], torch.Tensor]]:
    """The three ways to denoise a (1, H, W) slice with a model, by name (ours with tile
    origins on multiples of ``alignment``, the model's translation step)."""
    from monai.inferers import sliding_window_inference as monai_sliding_window_inference

    def autocast() -> torch.autocast:
        return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)

    def untiled(image: torch.Tensor, model: Model) -> torch.Tensor:
        with torch.inference_mode(), autocast():
            return model(image[None])[0].float()

    def ours(image: torch.Tensor, model: Model) -> torch.Tensor:
        return sliding_window_inference(image, model, tile_size=args.tile_size, overlap=args.overlap,
                                        batch_size=args.batch_size, amp_dtype=amp_dtype, alignment=alignment)

    def monai(image: torch.Tensor, model: Model) -> torch.Tensor:
        with torch.inference_mode(), autocast():
            return monai_sliding_window_inference(image[None], (args.tile_size, args.tile_size), args.batch_size,
                                                  model, overlap=args.overlap / args.tile_size, mode="gaussian")[0]

    return {"untiled": untiled, "ours": ours, "monai": monai}


def compare_on_slice(side: int, methods: dict[str, Callable[[torch.Tensor, Model], torch.Tensor]],
                     model: Model, device: torch.device, reps: int) -> dict[str, Any]:
    """Seconds per repetition of each method on one side x side slice, and the pixels each ran the model on."""
    image = torch.rand(1, side, side, device=device) * 2 - 1
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    model_pixels, outputs = {}, {}
    for _ in range(reps):
        for name, method in methods.items():
            counting = CountingModel(model)
            synchronize(device)
            started = time.perf_counter()
            outputs[name] = method(image, counting)
            synchronize(device)
            seconds[name].append(time.perf_counter() - started)
            model_pixels[name] = counting.pixels
            print(f"  {side}x{side} {name}: {seconds[name][-1]:.1f} s", flush=True)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    return {
        "side": side,
        "seconds": seconds,
        "median_seconds": median,
        "megapixels_per_second": {name: side * side / 1e6 / value for name, value in median.items()},
        "model_megapixels": {name: pixels / 1e6 for name, pixels in model_pixels.items()},
        "ours_over_untiled": median["ours"] / median["untiled"],
        "ours_over_monai": median["ours"] / median["monai"],
        "psnr_db_vs_untiled": {name: psnr_db(outputs[name], outputs["untiled"]) for name in ("ours", "monai")},
    }


def psnr_db(result: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR of ``result`` against ``reference`` over the model's [-1, 1] range (peak-to-peak 2)."""
    mse = torch.mean((result.float() - reference.float()) ** 2).item()
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)


def time_series(args: argparse.Namespace, model: Model, device: torch.device,
                amp_dtype: torch.dtype | None, alignment: int) -> dict[str, Any]:
    """Ours on ``--series`` slices of ``--series-side`` pixels, one call after another as
    ``iscl denoise`` runs them (on a GPU, slices smaller than a batch of tiles several per call)."""
    count, side = args.series, args.series_side
    slices = torch.rand(count, 1, side, side, device=device) * 2 - 1
    per_call = TileOptions(tile_size=args.tile_size, overlap=args.overlap, batch_size=args.batch_size,
                           ).slices_per_call((side, side), alignment, device)
    synchronize(device)
    started = time.perf_counter()
    for first in range(0, count, per_call):
        sliding_window_inference(slices[first:first + per_call], model, tile_size=args.tile_size,
                                 overlap=args.overlap, batch_size=args.batch_size, amp_dtype=amp_dtype,
                                 alignment=alignment)
    synchronize(device)
    seconds = time.perf_counter() - started
    return {"slices": count, "side": side, "seconds": seconds, "megapixels_per_second": count * side**2 / 1e6 / seconds}


def compare_packing(args: argparse.Namespace, model: ISCL, precision: str) -> dict[str, Any]:
    """Seconds per repetition of the four ways through a stack (module docstring), and how
    far the packed result is from the one-per-call one."""
    count, side = args.stack, args.stack_side
    mapping = IntensityMapping(-1.0, 1.0, -1.0, 1.0, "model units")
    tiles = TileOptions(tile_size=args.tile_size, overlap=args.overlap, batch_size=args.batch_size,
                        symmetries=args.symmetries, precision=precision)
    # How a GPU packs them; on a CPU iscl denoise takes one slice per call (as "one per call").
    per_call = tiles.slices_per_call((side, side), tile_alignment(model), torch.device("cuda"))
    stack = np.random.default_rng(0).uniform(-1, 1, (count, side, side)).astype(np.float32)
    seconds: dict[str, list[float]] = {name: [] for name in ("one per call", "packed", "volume inline", "volume thread")}
    with tempfile.TemporaryDirectory() as scratch:
        source, target = Path(scratch) / "stack.tif", Path(scratch) / "out" / "stack.tif"
        tifffile.imwrite(source, stack, photometric="minisblack")
        target.parent.mkdir()
        (volume,) = open_volumes([str(source)])
        loaded = LoadedModel(source, model, mapping, {})
        methods = {
            "one per call": lambda: np.stack([denoise_image(image, model, mapping, tiles) for image in stack]),
            "packed": lambda: np.concatenate([denoise_image(stack[first:first + per_call], model, mapping, tiles)
                                              for first in range(0, count, per_call)]),
            "volume inline": lambda: denoise_volume(volume, loaded, target, tiles, overwrite=True,
                                                    background_writing=False),
            "volume thread": lambda: denoise_volume(volume, loaded, target, tiles, overwrite=True),
        }
        outputs = {}
        for _ in range(args.reps):
            for name, method in methods.items():
                started = time.perf_counter()
                outputs[name] = method()
                seconds[name].append(time.perf_counter() - started)
                print(f"  {count} x {side}x{side} {name}: {seconds[name][-1]:.1f} s", flush=True)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    return {
        "precision": precision, "slices": count, "side": side, "symmetries": args.symmetries,
        "slices_per_call": per_call, "seconds": seconds, "median_seconds": median,
        "packed_over_one_per_call": median["packed"] / median["one per call"],
        "thread_over_inline": median["volume thread"] / median["volume inline"],
        "per_repetition_packed_over_one_per_call": [packed / alone for packed, alone in
                                                    zip(seconds["packed"], seconds["one per call"], strict=True)],
        "max_abs_difference_packed_vs_one_per_call": float(np.abs(outputs["packed"] - outputs["one per call"]).max()),
    }


def print_packing(run: dict[str, Any]) -> None:
    median = run["median_seconds"]
    print(f"stack of {run['slices']} x {run['side']}x{run['side']}, {run['precision']}, {run['symmetries']} "
          f"symmetries, {run['slices_per_call']} slices per call: median s " +
          ", ".join(f"{name} {value:.2f}" for name, value in median.items()) +
          f"; packed / one per call {run['packed_over_one_per_call']:.3f}, thread / inline "
          f"{run['thread_over_inline']:.3f}; packed differs by at most "
          f"{run['max_abs_difference_packed_vs_one_per_call']:.2g}")


def warm_up(methods: dict[str, Callable[[torch.Tensor, Model], torch.Tensor]], model: Model,
            device: torch.device, tile_size: int) -> None:
    """One untimed call of each method on a slice just over one tile (CUDA kernels, allocator)."""
    image = torch.rand(1, tile_size + 8, tile_size + 8, device=device) * 2 - 1
    for method in methods.values():
        method(image, model)
    synchronize(device)


def print_table(runs: list[dict[str, Any]]) -> None:
    print(f"{'slice':>10} {'precision':>9} | {'untiled s':>9} {'ours s':>8} {'monai s':>8} | "
          f"{'ours/untiled':>12} {'ours/monai':>10} | {'ours Mpx/s':>10} | model Mpx untiled/ours/monai | "
          "PSNR vs untiled ours/monai")
    for run in runs:
        median, pixels = run["median_seconds"], run["model_megapixels"]
        print(f"{run['side']:>5}x{run['side']:<4} {run['precision']:>9} | {median['untiled']:>9.2f} "
              f"{median['ours']:>8.2f} {median['monai']:>8.2f} | {run['ours_over_untiled']:>12.3f} "
              f"{run['ours_over_monai']:>10.3f} | {run['megapixels_per_second']['ours']:>10.3g} | "
              f"{pixels['untiled']:.2f}/{pixels['ours']:.2f}/{pixels['monai']:.2f} | "
              f"{run['psnr_db_vs_untiled']['ours']:.1f}/{run['psnr_db_vs_untiled']['monai']:.1f} dB")


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    config = ISCLConfig()
    model = ISCL(config).to(device).eval()
    flops = gflop_per_megapixel(model.denoise, device)
    print(f"model: ISCL {config.to_dict()}; {flops:.0f} GFLOP per megapixel (convolutions)")

    runs, series, packing = [], {}, []
    for precision in args.precisions:
        amp_dtype = PRECISIONS[precision]
        methods = slice_methods(args, device, amp_dtype, model.translation_step)
        if device.type == "cuda":
            warm_up(methods, model.denoise, device, args.tile_size)
        for side in args.sizes:
            run = {"precision": precision, **compare_on_slice(side, methods, model.denoise, device, args.reps)}
            runs.append(run)
            print_table([run])
        if args.series:
            series[precision] = time_series(args, model.denoise, device, amp_dtype, model.translation_step)
            print(f"series of {args.series} slices of {args.series_side}^2, {precision}: "
                  f"{series[precision]['megapixels_per_second']:.3g} Mpx/s ({series[precision]['seconds']:.1f} s)")
        if args.stack:
            packing.append(compare_packing(args, model, precision))
            print_packing(packing[-1])

    print()
    print_table(runs)
    result = {
        "device": args.device,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "model": {"config": config.to_dict(), "gflop_per_megapixel": flops},
        "tiling": {"tile_size": args.tile_size, "overlap": args.overlap, "batch_size": args.batch_size,
                   "blend": "gaussian", "monai_overlap_fraction": args.overlap / args.tile_size},
        "reps": args.reps,
        "runs": runs,
        "series": series,
        "packing": packing,
        "command": "python benchmarks/inference_speed.py " + " ".join(sys.argv[1:]),
    }
    out = args.out or RESULTS_DIR / f"inference_speed-{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(out.name + ".tmp")
    temporary.write_text(json.dumps(result, indent=2) + "\n")
    temporary.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
