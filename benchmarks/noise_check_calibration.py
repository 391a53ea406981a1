"""What the removed-noise structure score (iscl_cli.noise_check) says about real and destructive denoisers.

For every data set that ``benchmarks/quality.py --workdir DIR`` left in DIR, it scores the
removed noise of each method's saved outputs (``outputs/METHOD.npy``), of the ideal
denoiser (the clean test images), of a denoiser that removes only half the noise, and of
filters that remove structure on purpose (Gaussian blurs of the noisy input, the clean
image blurred). A useful threshold sits above what noise removal gives and below what
structure removal gives; docs/quality-control.md quotes the table.

    python benchmarks/noise_check_calibration.py --workdir /path/to/quality-workdir [more workdirs]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from iscl_cli.demo import read_stack
from iscl_cli.noise_check import STRUCTURE_WARNING, structure_score

METHODS = ("iscl", "bm3d", "n2v", "supervised")


def destructive(noisy: np.ndarray, clean: np.ndarray) -> dict[str, np.ndarray]:
    """Outputs whose removed noise is known: ideal, half the noise left, structure smoothed away."""
    return {
        "ideal (clean)": clean,
        "half the noise removed": 0.5 * (noisy + clean),
        "noisy blurred, sigma 1": gaussian_filter(noisy, 1.0),
        "noisy blurred, sigma 2": gaussian_filter(noisy, 2.0),
        "clean blurred, sigma 1.5": gaussian_filter(clean, 1.5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, nargs="+", required=True,
                        help="the --workdir of one or more quality.py runs")
    args = parser.parse_args()
    rows: dict[str, dict[str, list[float]]] = {}
    cases = sorted((path for workdir in args.workdir for path in workdir.iterdir() if (path / "outputs").is_dir()),
                   key=lambda path: path.name)
    for case in cases:
        noise = case.name.rsplit("-seed", 1)[0]
        data = case / "data"
        test_noisy = data / "test_noisy.tif" if (data / "test_noisy.tif").exists() else data / "test_noisy"
        test_clean = data / "test_clean.tif" if (data / "test_clean.tif").exists() else data / "test_clean"
        noisy, clean = read_stack(test_noisy), read_stack(test_clean)
        outputs = {method: list(np.load(case / "outputs" / f"{method}.npy"))
                   for method in METHODS if (case / "outputs" / f"{method}.npy").exists()}
        for n, c, index in zip(noisy, clean, range(len(noisy))):
            for name, output in {**{m: o[index] for m, o in outputs.items()}, **destructive(n, c)}.items():
                rows.setdefault(noise, {}).setdefault(name, []).append(structure_score(n, output))
    names = list(METHODS) + list(destructive(np.zeros((8, 8)), np.zeros((8, 8))))
    print(f"structure score of the removed noise (mean over test slices; warning above {STRUCTURE_WARNING:.2f})")
    print("| noise model | " + " | ".join(names) + " |")
    print("|" + "---|" * (len(names) + 1))
    for noise, values in rows.items():
        cells = [f"{np.mean(values[name]):+.3f}" if name in values else "-" for name in names]
        print(f"| {noise} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
