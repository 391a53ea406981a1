"""Streaming memory: `iscl denoise` on a 2 GiB uint16 TIFF stack stays far below its size.

Writes a uint16 stack of ``--slices`` slices of ``--side`` x ``--side`` pixels (default 1024
slices of 1024 x 1024 = 2 GiB) page by page, and a model file with small networks (memory,
not speed, is measured here). Then it runs the real command line,

    python -m iscl_cli.cli denoise STACK -o OUT --model MODEL --device cpu --quiet

in a child process and reads the child's peak resident memory (``ru_maxrss`` of
``RUSAGE_CHILDREN``, which is what ``/usr/bin/time -v`` reports). Finally it checks that the
streamed output equals, pixel for pixel, ``denoise_image`` run on each input slice on its
own in this process (every ``--check-every``-th slice; default every slice).

    python benchmarks/denoise_memory.py                     # 2 GiB, about an hour on 2 cores
    python benchmarks/denoise_memory.py --slices 64         # a quick look (128 MiB)

Prints the result and writes benchmarks/results/denoise_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from iscl_cli.checkpoint import load_model, save_model
from iscl_cli.inference import TileOptions, denoise_image
from iscl_cli.intensity import IntensityMapping
from iscl_cli.io.values import integer_range, round_and_clip
from models import ISCL, ISCLConfig

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SMALL_NETWORK = dict(gen_base=4, gen_blocks=1, ext_width=4, ext_depth=3, disc_base=4, disc_layers=2)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=1024, help="slices in the stack (default 1024)")
    parser.add_argument("--side", type=int, default=1024, help="slice side in pixels (default 1024)")
    parser.add_argument("--check-every", type=int, default=1,
                        help="compare every N-th output slice with a per-slice run (default 1: all)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the stack goes (default: a temp folder)")
    return parser.parse_args()


def write_stack(path: Path, slices: int, side: int) -> None:
    """A uint16 stack written page by page: a textured base slice, shifted and offset per slice."""
    rng = np.random.default_rng(0)
    base = rng.normal(2000, 300, (side, side)).clip(0, 65535).astype(np.uint16)

    def pages():
        for index in range(slices):
            yield np.roll(base, index, axis=1) + np.uint16(index % 500)

    tifffile.imwrite(path, pages(), shape=(slices, side, side), dtype=np.uint16, photometric="minisblack")


def run_cli_peak_rss(args: list[str]) -> tuple[float, int]:
    """Run the iscl command line in a child process; (seconds, peak resident bytes of the child)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "iscl_cli.cli", *args], check=True)
    seconds = time.perf_counter() - started
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux reports KiB


def compare_with_per_slice(stack: Path, output: Path, model_path: Path, every: int) -> dict[str, int]:
    """Count output slices that differ from denoising that input slice on its own."""
    loaded = load_model(model_path)
    tiles = TileOptions().validated()
    differing, checked = 0, 0
    with tifffile.TiffFile(stack) as inputs, tifffile.TiffFile(output) as outputs:
        for index in range(0, len(inputs.pages), every):
            expected = denoise_image(inputs.pages[index].asarray().astype(np.float32), loaded.model,
                                     loaded.mapping, tiles)
            expected = round_and_clip(expected, np.uint16, *integer_range(np.uint16))
            differing += int(not np.array_equal(outputs.pages[index].asarray(), expected))
            checked += 1
    return {"checked_slices": checked, "differing_slices": differing}


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        work = Path(folder)
        stack, model_path, out_dir = work / "stack.tif", work / "model.pt", work / "out"
        started = time.perf_counter()
        write_stack(stack, args.slices, args.side)
        print(f"wrote {stack.stat().st_size / 2**30:.2f} GiB in {time.perf_counter() - started:.0f} s", flush=True)
        torch.manual_seed(0)
        model = ISCL(ISCLConfig(**SMALL_NETWORK, instance_window=32)).eval()
        save_model(model_path, model, IntensityMapping(0.0, 4000.0, 0.0, 4000.0, "window 0,4000"), {"steps": 0})

        seconds, peak = run_cli_peak_rss(["denoise", str(stack), "-o", str(out_dir), "--model", str(model_path),
                                          "--device", "cpu", "--quiet"])
        print(f"denoised {args.slices} slices in {seconds:.0f} s; peak resident memory {peak / 2**20:.0f} MiB",
              flush=True)
        comparison = compare_with_per_slice(stack, out_dir / "stack.tif", model_path, args.check_every)
        result = {
            "stack_bytes": stack.stat().st_size,
            "slices": args.slices,
            "side": args.side,
            "network": SMALL_NETWORK,
            "denoise_seconds": round(seconds, 1),
            "peak_rss_bytes": peak,
            **comparison,
            "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                        "platform": platform.platform(), "torch": torch.__version__},
        }
    print(json.dumps(result, indent=2))
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "denoise_memory.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
