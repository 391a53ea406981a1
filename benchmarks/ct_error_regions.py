"""Where a CT model's error lies: RMSE in HU over air, body, edges and flat soft tissue.

Scores a trained model's parts (F, ``x - H(x)`` and the ensemble at several weights gamma
of F, all with 8-fold symmetry averaging) on a data set's held-out pairs, per region of
the clean image: air (below -900 HU), body (the rest), edges (the body's top 20 % of
gradient magnitude, Gaussian 1.5 px) and flat soft tissue (body, not edge, -250 to 250 HU).
docs/levers.md quotes its lines.

    python benchmarks/ct_error_regions.py levers-work/runs/lowdose_ct-standard/model.pt \\
        levers-work/data/lowdose_ct-s100-n24-256
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_gradient_magnitude

from iscl_cli.checkpoint import load_model
from iscl_cli.demo import read_stack
from iscl_cli.inference import TileOptions, tiled_in_physical_units

AIR_HU, SOFT_TISSUE_HU, EDGE_PERCENTILE = -900.0, 250.0, 80.0


def regions(clean: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks of the clean stack's regions."""
    air = clean < AIR_HU
    body = ~air
    gradient = np.stack([gaussian_gradient_magnitude(image, 1.5) for image in clean])
    edge = body & (gradient > np.percentile(gradient[body], EDGE_PERCENTILE))
    flat_soft = body & ~edge & (np.abs(clean) < SOFT_TISSUE_HU)
    return {"air": air, "body": body, "edge": edge, "flat soft tissue": flat_soft}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path, help="a folder with test_noisy.tif and test_clean.tif")
    parser.add_argument("--gammas", type=float, nargs="+", default=[0.25, 0.5])
    args = parser.parse_args()
    loaded = load_model(args.model)
    model, mapping = loaded.model, loaded.mapping
    noisy = read_stack(args.data / "test_noisy.tif")
    clean = np.stack(read_stack(args.data / "test_clean.tif")).astype(np.float64)

    def denoised(network) -> np.ndarray:
        with torch.inference_mode():
            return np.stack([tiled_in_physical_units(image, network, model.translation_step or 4, torch.device("cpu"),
                                                     mapping, TileOptions(symmetries=8), model.config.noise_poses)
                             for image in noisy])

    f_out, h_out = denoised(model.F), denoised(lambda x: x - model.H(x))
    outputs = {"noisy": np.stack(noisy), "F": f_out, "x - H(x)": h_out}
    # gamma only weighs the two parts; combining their outputs equals the ensemble up to its clipping
    outputs |= {f"gamma {gamma:g}": gamma * f_out + (1 - gamma) * h_out for gamma in args.gammas}
    masks = regions(clean)
    print(f"{mapping.source}; RMSE in HU per region")
    print("| output | " + " | ".join(masks) + " |")
    print("|---|" + "---|" * len(masks))
    for name, output in outputs.items():
        error = output.astype(np.float64) - clean
        print(f"| {name} | " + " | ".join(f"{np.sqrt(np.mean(error[mask] ** 2)):.1f}" for mask in masks.values()) + " |")


if __name__ == "__main__":
    main()
