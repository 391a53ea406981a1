"""What ``--noise-orientation auto`` decides on each noise model, and the ratio it decides on.

For every noise model of the quality benchmark and each data seed (100 is the exploration
set of ``benchmarks/levers.py``, 1 and 2 the quality benchmark's seeds; CT is written as a
TIFF here, in the same HU), on ``make_unpaired_set``'s 24 noisy and 24 clean 256x256 images, it prints the median row/column difference ratio
of the 16 random noisy slices ``iscl train`` tests (``iscl_cli.noise_orientation``), the
range of the ratio over all noisy slices, the clean images' median (what image structure
alone gives) and the decision.

    python benchmarks/noise_orientation_test.py [--workdir levers-work] [--data-seeds 100 1 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from iscl_cli.io import open_volumes
from iscl_cli.noise_orientation import measure_noise_orientation, row_difference_ratio
from levers import exploration_sets
from quality import NOISE_MODELS

TRAINING_SEED = 0  # iscl train's default seed, which picks the tested slices


def slice_ratios(folder: Path) -> list[float]:
    """The row/column difference ratio of every slice in ``folder``."""
    return [row_difference_ratio(volume.read_finite_slice(index))
            for volume in open_volumes([str(folder)]) for index in range(len(volume))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("levers-work"), help="data folder root (default ./levers-work)")
    parser.add_argument("--data-seeds", type=int, nargs="+", default=[100, 1, 2])
    args = parser.parse_args()
    print("| noise model | data seed | noisy: median of 16 (decided on) | noisy: all slices | clean: median | decision |")
    print("|---|---|---|---|---|---|")
    for noise, data_seed, data in exploration_sets(args.workdir, NOISE_MODELS, args.data_seeds):
        orientation, ratio = measure_noise_orientation(open_volumes([str(data["noisy"])]), TRAINING_SEED)
        noisy, clean = slice_ratios(data["noisy"]), slice_ratios(data["clean"])
        print(f"| {noise} | {data_seed} | {ratio:.2f} | {np.nanmin(noisy):.2f} to {np.nanmax(noisy):.2f} | "
              f"{np.nanmedian(clean):.2f} | {orientation} |")

if __name__ == "__main__":
    main()
