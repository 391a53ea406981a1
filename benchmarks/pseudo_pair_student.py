"""A supervised student on a trained model's pseudo pairs: would a second, larger network
trained on the pairs ISCL makes without clean references denoise better than F?

ISCL's generator G puts noise on clean images and its extractor H takes noise out of noisy
ones, so a trained model can make (noisy, clean) pairs from unpaired data: (G(y), y) and
(y + H(x), y), y a clean patch and x a noisy one. This script freezes a trained model,
draws those pairs from its training folders, trains the quality benchmark's supervised
U-Net on them (L1, Adam 1e-3 decaying linearly to 0, batches of 8 patches of 64) and scores
on the case's held-out test pairs: the student, iscl's own output, and the mean of the two.
The clean test images are used for scoring only.

It reads a case folder that ``quality.py --workdir W`` leaves (``W/NOISE-seedS``):

    python benchmarks/quality.py --noise film --seeds 1 --methods iscl --workdir W --out OUT
    python benchmarks/pseudo_pair_student.py W/film-seed1 --pairs both --steps 2000 --out STUDENT.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from iscl_cli.checkpoint import load_model
from iscl_cli.data import PatchSampler
from iscl_cli.demo import read_stack
from iscl_cli.inference import TileOptions, tiled_in_physical_units
from iscl_cli.io import open_volumes
from models.iscl import ISCL
from models.networks import UNet
from quality import scores

PAIR_KINDS = ("g", "transplant", "both")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", type=Path, help="a case folder of quality.py --workdir (data/, iscl/, outputs/)")
    parser.add_argument("--pairs", choices=PAIR_KINDS, default="both",
                        help="(G(y), y), (y + H(x), y) or half of each per batch (default both)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--base", type=int, default=32, help="width of the student U-Net (default 32)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True, help="the scores, as JSON")
    return parser.parse_args()


def pseudo_pairs(model: ISCL, clean: PatchSampler, noisy: PatchSampler, kind: str,
                 batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(pseudo-noisy, clean) patches in model units from the frozen generator and extractor."""
    y = clean.sample(batch)
    with torch.no_grad():
        if kind == "g":
            return model.G(y), y
        transplanted = y + model.H(noisy.sample(batch))
        if kind == "transplant":
            return transplanted, y
        half = batch // 2
        return torch.cat([model.G(y[:half]), transplanted[half:]]), y


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    loaded = load_model(args.case / "iscl" / "run" / "model.pt")
    model, mapping = loaded.model, loaded.mapping
    rng = np.random.default_rng(args.seed)
    data = args.case / "data"
    clean = PatchSampler(open_volumes([data / "clean"]), mapping, "clean", 64, rng)
    noisy = PatchSampler(open_volumes([data / "noisy"]), mapping, "noisy", 64, rng, poses=model.config.noise_poses)

    student = UNet(1, args.base, depth=2)
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / args.steps)
    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        x, y = pseudo_pairs(model, clean, noisy, args.pairs, 8)
        loss = (student(x) - y).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 250 == 0:
            print(f"step {step}: L1 {loss.item():.4f} ({time.perf_counter() - started:.0f} s)", flush=True)
    train_seconds = time.perf_counter() - started

    student.eval()
    test_noisy, test_clean = read_stack(data / "test_noisy.tif"), read_stack(data / "test_clean.tif")
    with torch.inference_mode():
        students = [tiled_in_physical_units(image, student, student.translation_step, torch.device("cpu"), mapping,
                                            TileOptions(), poses=model.config.noise_poses) for image in test_noisy]
    iscl = list(np.load(args.case / "outputs" / "iscl.npy"))
    result = {"case": str(args.case), "pairs": args.pairs, "steps": args.steps, "base": args.base,
              "train_seconds": train_seconds,
              "iscl": scores(iscl, test_noisy, test_clean),
              "student": scores(students, test_noisy, test_clean),
              "mean of iscl and student": scores([(a + b) / 2 for a, b in zip(iscl, students)], test_noisy, test_clean)}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for name in ("iscl", "student", "mean of iscl and student"):
        print(f"{name}: {result[name]['psnr']:.2f} dB / SSIM {result[name]['ssim']:.3f}")


if __name__ == "__main__":
    main()
