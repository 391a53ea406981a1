"""Choosing the ensemble weight gamma without clean pairs: score it on noise-transplant pairs.

The model's output is ``gamma * F(x) + (1 - gamma) * (x - H(x))``, and which half is the
better denoiser depends on the data (docs/levers.md: on low-dose CT ``x - H(x)``, on EM
charging noise rather F). A test pair with a known answer can be built from the training
data alone: a clean training slice ``y`` plus the noise that H extracts from an unrelated
noisy training slice, ``t = y + H(x)`` (the input of ISCL's bypass term). Every gamma's
output on ``t`` is scored against ``y``, and the best-scoring weight is kept. On the
exploration sets it picked the weight that was best (or within 0.05 dB of the best) on
the real held-out test pairs for every noise model measured (docs/levers.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from iscl_cli.inference import symmetry_average
from iscl_cli.intensity import IntensityMapping
from iscl_cli.volume import centre_crop
from models.iscl import ISCL

# The weights tried: 0 (x - H(x) alone) to 1 (F alone) in steps of 0.05.
GAMMA_GRID = tuple(step / 20 for step in range(21))
# Transplant pairs scored, and the largest crop side of each (enough pixels for a stable choice, fast on a CPU).
TRANSPLANT_PAIRS = 6
CROP_SIDE = 256


@dataclass
class EnsembleWeightChoice:
    """The chosen gamma and each candidate's PSNR (dB over the [-1, 1] range) on the transplant pairs."""

    gamma: float
    psnr_by_gamma: dict[float, float]
    pairs: int

    def summary(self) -> dict[str, object]:
        """What the model file's provenance keeps."""
        return {"gamma": self.gamma, "pairs": self.pairs,
                "psnr_by_gamma": {f"{gamma:g}": round(psnr, 3) for gamma, psnr in self.psnr_by_gamma.items()}}


def transplant_pair_psnr(model: ISCL, noisy: list[np.ndarray], clean: list[np.ndarray],
                         mapping: IntensityMapping, gammas: tuple[float, ...] = GAMMA_GRID,
                         symmetries: int = 8) -> dict[float, float]:
    """PSNR of the output at each of ``gammas`` on the pairs (y + H(x), y) of ``clean[i]`` and
    ``noisy[i]`` (2D slices in physical units, unrelated images), in model units.

    Each pair uses the middle of both slices, at most ``CROP_SIDE`` on a side and a multiple
    of the model's translation step; the networks are averaged over the first ``symmetries``
    of the poses they were trained on, as ``iscl denoise`` runs them.
    """
    device = next(model.parameters()).device
    step = model.translation_step or 4
    poses = model.config.noise_poses[:symmetries]
    extract, denoise_f = symmetry_average(model.H, poses), symmetry_average(model.F, poses)
    squared_errors = {gamma: [] for gamma in gammas}
    model.eval()
    with torch.inference_mode():
        for x_image, y_image in zip(noisy, clean, strict=True):
            height, width = (min(CROP_SIDE, x_image.shape[axis], y_image.shape[axis]) // step * step for axis in (0, 1))
            x, y = (torch.from_numpy(mapping.to_model(centre_crop(image, height, width), domain))[None, None].to(device)
                    for image, domain in ((x_image, "noisy"), (y_image, "clean")))
            transplant = y + extract(x)
            f_out, h_out = denoise_f(transplant), transplant - extract(transplant)
            for gamma in gammas:
                squared_errors[gamma].append(mean_squared_error(gamma * f_out + (1 - gamma) * h_out, y))
    # 10 log10(range^2 / MSE) with the model units' range of 2
    return {gamma: float(10 * np.log10(4.0 / max(np.mean(errors), 1e-12))) for gamma, errors in squared_errors.items()}


def mean_squared_error(output: Tensor, target: Tensor) -> float:
    """MSE of ``output`` clipped to [-1, 1] (as ``ISCL.denoise`` clips) against ``target``."""
    return float(((output.clamp(-1.0, 1.0) - target) ** 2).mean())


def choose_ensemble_weight(model: ISCL, noisy: list[np.ndarray], clean: list[np.ndarray],
                           mapping: IntensityMapping, symmetries: int = 8) -> EnsembleWeightChoice:
    """The gamma of ``GAMMA_GRID`` whose output scores best on the transplant pairs of
    ``noisy`` and ``clean`` (see ``transplant_pair_psnr``); ties go to the smaller gamma."""
    scores = transplant_pair_psnr(model, noisy, clean, mapping, GAMMA_GRID, symmetries)
    best = max(scores, key=lambda gamma: (scores[gamma], -gamma))
    return EnsembleWeightChoice(gamma=best, psnr_by_gamma=scores, pairs=len(noisy))
