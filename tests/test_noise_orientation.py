import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from iscl_cli.errors import IsclError
from iscl_cli.noise_orientation import (DIRECTIONAL_RATIO, check_noise_orientation, measure_noise_orientation,
                                        orientation_of_ratio, row_difference_ratio)
from iscl_cli.simulate import charging_noise, scanline_noise
from tests.array_volume import ArrayVolume


def scene(rng: np.random.Generator, side: int = 128) -> np.ndarray:
    """Blurred blobs in [0, 1]: structure without a preferred direction."""
    field = gaussian_filter(rng.uniform(size=(side, side)), 3)
    return (field - field.min()) / np.ptp(field)


def test_white_noise_has_no_direction_and_row_offsets_have_one():
    rng = np.random.default_rng(0)
    clean = scene(rng)
    white = clean + 0.1 * rng.standard_normal(clean.shape)
    assert row_difference_ratio(white) == pytest.approx(1.0, abs=0.1)
    offsets = white + 0.2 * rng.standard_normal((clean.shape[0], 1))
    assert row_difference_ratio(offsets) > DIRECTIONAL_RATIO
    assert row_difference_ratio(offsets.T) < 1 / DIRECTIONAL_RATIO


def test_the_ratio_decides_the_orientation():
    assert orientation_of_ratio(1.0) == "any"
    assert orientation_of_ratio(1.2) == "any" and orientation_of_ratio(1 / 1.2) == "any"
    assert orientation_of_ratio(2.5) == "rows"
    assert orientation_of_ratio(0.4) == "columns"


@pytest.mark.parametrize("noise", [charging_noise, scanline_noise])
def test_simulated_scan_artefacts_run_along_rows(noise):
    rng = np.random.default_rng(1)
    stack = np.stack([noise(scene(rng), rng) for _ in range(4)])
    orientation, ratio = measure_noise_orientation([ArrayVolume(stack)], seed=0)
    assert orientation == "rows" and ratio > DIRECTIONAL_RATIO
    turned, _ = measure_noise_orientation([ArrayVolume(np.swapaxes(stack, 1, 2))], seed=0)
    assert turned == "columns"


def test_flat_slices_give_no_direction():
    assert measure_noise_orientation([ArrayVolume(np.ones((3, 32, 32)))], seed=0)[0] == "any"


def test_an_unknown_orientation_is_refused():
    check_noise_orientation("auto")
    with pytest.raises(IsclError, match="--noise-orientation must be one of auto, any, rows, columns"):
        check_noise_orientation("diagonal")
