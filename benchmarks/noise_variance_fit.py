"""What the noise variance fit decides on each noise model: ``--stabilize auto``, and the rates of ``standard``.

For every noise model of the quality benchmark and each data seed (100 is the exploration
set of ``benchmarks/levers.py``, 1 and 2 the quality benchmark's seeds; CT is written as a
TIFF here, in the same HU), on ``make_unpaired_set``'s 24 noisy 256x256 images, it fits
the variance model on the same 16 random noisy slices ``iscl train`` would
(``iscl_cli.noise_variance.fit_noise_variance``) and prints whether the noise counts as
shot noise, with the three numbers that decision rests on, and whether it counts as
pixel-independent (lag-2 / lag-1 at most ``WHITE_LAG_RATIO``), which keeps ``standard``'s
rates, or structured, which takes its rates for structured noise.

    python benchmarks/noise_variance_fit.py [--workdir levers-work] [--data-seeds 100 1 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from iscl_cli.intensity import noise_variance_of
from iscl_cli.io import open_volumes
from iscl_cli.noise_variance import WHITE_LAG_RATIO
from levers import EXPLORATION_SEED, exploration_sets
from quality import NOISE_MODELS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("levers-work"), help="data folder root (default ./levers-work)")
    parser.add_argument("--data-seeds", type=int, nargs="+", default=[EXPLORATION_SEED, 1, 2])
    parser.add_argument("--train-images", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0, help="the training seed that picks the slices (default 0)")
    args = parser.parse_args()
    print("| noise model | data seed | shot noise | r2 | variance 95th / 5th percentile | lag-2 / lag-1 | noise |")
    print("|---|---|---|---|---|---|---|")
    for noise, data_seed, data in exploration_sets(args.workdir, NOISE_MODELS, args.data_seeds, args.train_images):
        fit = noise_variance_of(open_volumes([str(data["noisy"])]), args.seed)
        structure = "pixel-independent" if fit.lag_ratio <= WHITE_LAG_RATIO else "structured"
        print(f"| {noise} | {data_seed} | {'yes' if fit.is_shot_noise() else 'no'} | {fit.r2:.2f} | "
              f"{fit.variance_ratio:.3g} | {fit.lag_ratio:.2f} | {structure} |")


if __name__ == "__main__":
    main()
