"""The ensemble weight gamma chosen on noise-transplant pairs (iscl_cli/ensemble_weight.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from iscl_cli.ensemble_weight import GAMMA_GRID, choose_ensemble_weight, transplant_pair_psnr
from iscl_cli.volume import centre_crop
from iscl_cli.intensity import IntensityMapping
from tests.tiny import tiny_model

# physical 0..2 -> model -1..1, so a clean slice of ones is 0 in model units
MAPPING = IntensityMapping(0.0, 2.0, 0.0, 2.0, "window 0,2")


class Scaled(nn.Module):
    """A stand-in network that returns its input times ``factor`` (0: zeros)."""

    translation_step = None

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.factor * x


def slices(count: int = 2, shape: tuple[int, int] = (40, 44)) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    noisy = [rng.uniform(0.2, 1.8, shape).astype(np.float32) for _ in range(count)]
    clean = [np.ones(shape, np.float32) for _ in range(count)]  # 0 in model units
    return noisy, clean


def test_centre_crop_takes_the_middle() -> None:
    image = np.arange(6 * 8).reshape(6, 8)
    assert (centre_crop(image, 2, 4) == image[2:4, 2:6]).all()


def test_a_perfect_x_minus_h_half_gets_gamma_0() -> None:
    # H = 0: the transplant input is y itself and x - H(x) returns it exactly; F = 0.5 x halves it
    model = tiny_model()
    model.H, model.F = Scaled(0.0), Scaled(0.5)
    noisy, _ = slices()
    clean = [image.copy() for image in noisy[::-1]]  # not 0 in model units, so F's halving is an error
    choice = choose_ensemble_weight(model, noisy, clean, MAPPING, symmetries=1)
    assert choice.gamma == 0.0
    assert choice.psnr_by_gamma[0.0] > choice.psnr_by_gamma[0.5] > choice.psnr_by_gamma[1.0]


def test_a_perfect_f_half_gets_gamma_1() -> None:
    # y = 0 in model units and F returns 0: F is exact; H = 0.5 x leaves half the transplanted noise
    model = tiny_model()
    model.H, model.F = Scaled(0.5), Scaled(0.0)
    noisy, clean = slices()
    choice = choose_ensemble_weight(model, noisy, clean, MAPPING, symmetries=1)
    assert choice.gamma == 1.0
    assert list(choice.psnr_by_gamma) == list(GAMMA_GRID)
    assert choice.summary()["pairs"] == 2 and choice.summary()["gamma"] == 1.0


def test_pairs_of_different_sizes_are_cropped_to_their_common_middle() -> None:
    model = tiny_model()
    noisy = [np.full((50, 37), 1.5, np.float32)]
    clean = [np.ones((41, 60), np.float32)]
    scores = transplant_pair_psnr(model, noisy, clean, MAPPING, gammas=(0.0, 1.0), symmetries=2)
    assert set(scores) == {0.0, 1.0} and all(np.isfinite(list(scores.values())))


def test_one_clean_slice_per_noisy_slice_is_needed() -> None:
    noisy, clean = slices(count=2)
    with pytest.raises(ValueError):
        transplant_pair_psnr(tiny_model(), noisy, clean[:1], MAPPING)
