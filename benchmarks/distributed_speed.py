"""Speed on one and several processes: training it/s, denoising MP/s, a CT series end to end.

Measures, on whatever device it finds (``--device``, default cuda when available):

* training iterations/s of ``iscl train`` (``Run.train_step``: patch sampling from TIFF
  stacks, the three ISCL updates, on one process and on ``--processes`` under torchrun,
  DistributedDataParallel); the paper preset's networks, batch 64 and patch 64 unless
  ``--batch``/``--patch`` scale them down;
* denoising throughput in megapixels/s of one slice (``denoise_image``, the paper-sized
  networks, default tiles, 8 and 1 symmetries);
* the end-to-end time of ``iscl denoise`` on an int16 DICOM series (512x512x300 by
  default; ``--series-size``/``--series-slices`` scale it down): the command as a user
  runs it, process start, reading, denoising and writing included.

Networks have random weights (speed does not depend on them); data are synthetic.

    python benchmarks/distributed_speed.py                                   # a GPU machine
    python benchmarks/distributed_speed.py --device cpu --batch 2 --steps 3 \\
        --slice 256 --series-size 128 --series-slices 10 --symmetries 1      # a small CPU run

Prints a table and writes benchmarks/results/distributed_speed-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import tifffile
import torch
from pydicom.uid import generate_uid

from iscl_cli.checkpoint import save_model
from iscl_cli.distributed import process_group, torchrun_world
from iscl_cli.inference import TileOptions, denoise_image
from iscl_cli.intensity import IntensityMapping
from iscl_cli.train import PRESETS, Run, make_train_config, training_device
from models import ISCL, ISCLConfig

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CT_SAMPLE = Path(pydicom.data.__file__).parent / "test_files" / "CT_small.dcm"
HU_WINDOW = (-1000.0, 1000.0)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--processes", type=int, default=max(torch.cuda.device_count(), 2),
                        help="processes of the torchrun training run (default: the GPUs, at least 2)")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="paper", help="training networks (default paper)")
    parser.add_argument("--batch", type=int, default=64, help="patches per domain per step and process (default 64)")
    parser.add_argument("--patch", type=int, default=64, help="training patch side (default 64)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps first (default 3)")
    parser.add_argument("--slice", type=int, default=512, help="side of the slice denoised for MP/s (default 512)")
    parser.add_argument("--symmetries", type=int, nargs="+", default=[8, 1], help="symmetries to time (default 8 1)")
    parser.add_argument("--series-size", type=int, default=512, help="rows and columns of the DICOM series (default 512)")
    parser.add_argument("--series-slices", type=int, default=300, help="slices of the DICOM series (default 300)")
    parser.add_argument("--train-worker", type=Path, help=argparse.SUPPRESS)  # one torchrun rank: data folder
    return parser.parse_args()


def write_training_data(folder: Path, patch: int) -> None:
    """One noisy and one clean TIFF stack of 8 random slices, large enough for the patches."""
    rng = np.random.default_rng(0)
    side = max(4 * patch, 256)
    for domain in ("noisy", "clean"):
        (folder / domain).mkdir(parents=True)
        tifffile.imwrite(folder / domain / "stack.tif", rng.integers(0, 4000, (8, side, side)).astype(np.uint16),
                         photometric="minisblack")


def train_worker(args: argparse.Namespace) -> None:
    """One rank (or the one process): time ``Run.train_step``; rank 0 prints a JSON line."""
    world = torchrun_world()
    config = make_train_config([str(args.train_worker / "noisy")], [str(args.train_worker / "clean")], args.preset,
                               steps=args.warmup + args.steps, batch_size=args.batch, patch_size=args.patch,
                               device=args.device)
    with process_group(world, training_device(config, world)):
        run = Run(config, world=world)
        for _ in range(args.warmup):
            run.train_step()
        synchronize(run.device)
        started = time.perf_counter()
        for _ in range(args.steps):
            run.train_step()
        synchronize(run.device)
        seconds = time.perf_counter() - started
    if world.is_main:
        print(json.dumps({"processes": world.size, "it_per_s": args.steps / seconds,
                          "patches_per_s": args.steps * args.batch * world.size / seconds}))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_speed(args: argparse.Namespace, folder: Path, processes: int) -> dict[str, Any]:
    """``train_worker`` on ``processes`` processes (torchrun for more than one)."""
    launcher = [sys.executable] if processes == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    options = ["--device", args.device, "--preset", args.preset, "--batch", args.batch, "--patch", args.patch,
               "--steps", args.steps, "--warmup", args.warmup, "--train-worker", folder]
    result = subprocess.run([*launcher, __file__, *map(str, options)], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"training on {processes} process(es) failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def paper_model() -> ISCL:
    torch.manual_seed(0)
    return ISCL(ISCLConfig(instance_window=64)).eval()


def denoising_speed(args: argparse.Namespace, device: torch.device, symmetries: int) -> dict[str, Any]:
    """Megapixels/s of ``denoise_image`` on one slice (the median of 3 after a warm-up)."""
    model = paper_model().to(device)
    mapping = IntensityMapping(*HU_WINDOW, *HU_WINDOW, "window -1000,1000")
    image = np.random.default_rng(1).uniform(*HU_WINDOW, (args.slice, args.slice)).astype(np.float32)
    tiles = TileOptions(symmetries=symmetries)
    times = []
    with torch.inference_mode():
        for _ in range(4):
            started = time.perf_counter()
            denoise_image(image, model, mapping, tiles)
            times.append(time.perf_counter() - started)
    seconds = float(np.median(times[1:]))
    return {"slice": args.slice, "symmetries": symmetries, "seconds": seconds, "mp_per_s": image.size / 1e6 / seconds}


def write_series(folder: Path, size: int, slices: int) -> None:
    """An int16 CT series of ``slices`` random ``size`` x ``size`` slices, from pydicom's CT sample."""
    folder.mkdir(parents=True)
    dataset = pydicom.dcmread(CT_SAMPLE)
    dataset.Rows = dataset.Columns = size
    dataset.RescaleIntercept, dataset.RescaleSlope = 0, 1  # stored values are HU, all inside the model's window
    dataset.SeriesInstanceUID = generate_uid()
    rng = np.random.default_rng(2)
    for index in range(slices):
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        dataset.InstanceNumber = index + 1
        dataset.ImagePositionPatient = [0.0, 0.0, float(index)]
        dataset.PixelData = rng.integers(-1000, 1000, (size, size)).astype(np.int16).tobytes()
        dataset.save_as(folder / f"slice{index:04d}.dcm")


def series_end_to_end(args: argparse.Namespace, folder: Path, symmetries: int) -> dict[str, Any]:
    """Seconds of ``python -m iscl_cli denoise SERIES -o OUT`` with a paper-sized model."""
    model_path = folder / "model.pt"
    if not model_path.exists():
        save_model(model_path, paper_model(), IntensityMapping(*HU_WINDOW, *HU_WINDOW, "window -1000,1000"),
                   {"steps": 0, "iscl_version": "benchmark"})
        write_series(folder / "series", args.series_size, args.series_slices)
    command = [sys.executable, "-m", "iscl_cli", "denoise", folder / "series", "-o", folder / f"out-{symmetries}",
               "--model", model_path, "--device", args.device, "--symmetries", symmetries, "--quiet", "--overwrite"]
    started = time.perf_counter()
    subprocess.run(list(map(str, command)), check=True, capture_output=True)
    seconds = time.perf_counter() - started
    return {"series": f"{args.series_size}x{args.series_size}x{args.series_slices}", "symmetries": symmetries,
            "seconds": seconds}


def device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine()


def main() -> None:
    args = parse_args()
    if args.train_worker is not None:
        train_worker(args)
        return
    results: dict[str, Any] = {"device": args.device, "device_name": device_name(args.device),
                               "cpus": os.cpu_count(), "torch": torch.__version__, "preset": args.preset,
                               "batch": args.batch, "patch": args.patch}
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "train"
        write_training_data(data, args.patch)
        results["training"] = [training_speed(args, data, processes) for processes in sorted({1, args.processes})]
        results["denoising"] = [denoising_speed(args, torch.device(args.device), k) for k in args.symmetries]
        results["series"] = [series_end_to_end(args, Path(scratch), k) for k in args.symmetries]
    for row in results["training"]:
        print(f"training, {args.preset} networks, batch {args.batch} x patch {args.patch}, {row['processes']} "
              f"process(es): {row['it_per_s']:.2f} it/s ({row['patches_per_s']:.1f} patches/s per domain)")
    for row in results["denoising"]:
        print(f"denoising a {row['slice']}x{row['slice']} slice, {row['symmetries']} symmetries: "
              f"{row['mp_per_s']:.3f} MP/s")
    for row in results["series"]:
        print(f"iscl denoise of a {row['series']} int16 DICOM series, {row['symmetries']} symmetries: "
              f"{row['seconds']:.1f} s end to end")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"distributed_speed-{args.device}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
