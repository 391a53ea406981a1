"""What ``--stabilize auto`` decides on each noise model: the fitted noise variance line and its test.

For every noise model of the quality benchmark, on the exploration data of
``benchmarks/levers.py`` (``make_unpaired_set`` with seed 100, 24 noisy 256x256 images), it
fits the variance model on the same 16 random noisy slices ``iscl train`` would
(``iscl_cli.noise_variance.fit_noise_variance``) and prints whether the noise counts as
shot noise, with the three numbers the decision rests on.

    python benchmarks/noise_variance_fit.py [--workdir levers-work]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from iscl_cli.intensity import noise_variance_of
from iscl_cli.io import open_volumes
from iscl_cli.simulate import make_unpaired_set
from levers import EXPLORATION_SEED, PHANTOM_FOR_NOISE
from quality import NOISE_MODELS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("levers-work"), help="data folder root (default ./levers-work)")
    parser.add_argument("--train-images", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0, help="the training seed that picks the slices (default 0)")
    args = parser.parse_args()
    print("| noise model | shot noise | r2 | variance 95th / 5th percentile | lag-2 / lag-1 |")
    print("|---|---|---|---|---|")
    for noise in NOISE_MODELS:
        root = args.workdir / "data" / f"{noise}-s{EXPLORATION_SEED}-n{args.train_images}-256"
        if not (root / "noisy").exists():
            make_unpaired_set(root, PHANTOM_FOR_NOISE.get(noise, "em"), noise, args.train_images, 8,
                              seed=EXPLORATION_SEED)
        fit = noise_variance_of(open_volumes([str(root / "noisy")]), args.seed)
        print(f"| {noise} | {'yes' if fit.is_shot_noise() else 'no'} | {fit.r2:.2f} | {fit.variance_ratio:.3g} | "
              f"{fit.lag_ratio:.2f} |")


if __name__ == "__main__":
    main()
