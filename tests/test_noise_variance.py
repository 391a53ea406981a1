import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from iscl_cli.noise_variance import anscombe, fit_noise_variance, inverse_anscombe, second_differences

OFFSET, GAIN, PHOTONS, READ_SIGMA = 1000.0, 2000.0, 20.0, 0.02  # stored = OFFSET + GAIN * intensity


def smooth_scene(rng: np.random.Generator, side: int = 256) -> np.ndarray:
    """Intensities in [0.05, 1]: blurred blobs on a dim background, like a fluorescence field."""
    field = gaussian_filter(rng.uniform(size=(side, side)), 6)
    field = (field - field.min()) / np.ptp(field)
    return 0.05 + 0.95 * field ** 2


def shot_noisy(rng: np.random.Generator, clean: np.ndarray) -> np.ndarray:
    counts = rng.poisson(PHOTONS * clean)
    return OFFSET + GAIN * (counts / PHOTONS + READ_SIGMA * rng.standard_normal(clean.shape))


def test_second_differences_cancel_a_linear_gradient():
    ramp = np.add.outer(np.arange(16.0), 3.0 * np.arange(16.0))
    differences, means = second_differences(ramp, 1)
    assert np.allclose(differences, 0.0)
    assert means.min() > 0 and means.size == differences.size


def test_the_fit_finds_the_gain_of_poisson_gaussian_noise_and_calls_it_shot_noise():
    rng = np.random.default_rng(0)
    slices = [shot_noisy(rng, smooth_scene(rng)) for _ in range(6)]
    fit = fit_noise_variance(slices)
    true_slope = GAIN / PHOTONS  # var = GAIN**2 * (I_unit / PHOTONS + READ_SIGMA**2), I = OFFSET + GAIN * I_unit
    assert fit.slope == pytest.approx(true_slope, rel=0.2)
    assert fit.r2 > 0.9 and fit.lag_ratio < 1.1
    assert fit.is_shot_noise()


def test_correlated_or_signal_independent_noise_is_not_shot_noise():
    rng = np.random.default_rng(1)
    scenes = [OFFSET + GAIN * smooth_scene(rng) for _ in range(4)]
    white = [scene + 40.0 * rng.standard_normal(scene.shape) for scene in scenes]
    coloured = [scene + gaussian_filter(rng.standard_normal(scene.shape), 1.5) * 400.0 for scene in scenes]
    correlated_shot = [OFFSET + gaussian_filter(shot_noisy(rng, smooth_scene(rng)) - OFFSET, 1.0) for _ in range(4)]
    for slices in (white, coloured, correlated_shot):
        assert not fit_noise_variance(slices).is_shot_noise()
    assert fit_noise_variance(coloured).lag_ratio > 1.5


def test_the_transform_evens_out_the_noise_and_inverts_exactly():
    rng = np.random.default_rng(2)
    slope, intercept = GAIN / PHOTONS, GAIN ** 2 * READ_SIGMA ** 2 - GAIN / PHOTONS * OFFSET
    spreads = []
    for level in (0.1, 0.5, 1.0):
        noisy = shot_noisy(rng, np.full((200, 200), level))
        spreads.append(float(anscombe(noisy, slope, intercept).std()))
    assert spreads == pytest.approx([1.0, 1.0, 1.0], abs=0.08)
    values = np.linspace(OFFSET, OFFSET + GAIN, 50)
    np.testing.assert_allclose(inverse_anscombe(anscombe(values, slope, intercept), slope, intercept), values,
                               rtol=1e-5)
