"""The no-reference check of the removed noise: near 0 for noise, positive for lost structure."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from iscl_cli.noise_check import STRUCTURE_WARNING, NoiseCheck, local_correlation, structure_score
from iscl_cli.phantoms import em_phantom


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(0)
    clean = em_phantom((128, 128), rng)
    return clean, clean + 0.1 * rng.standard_normal(clean.shape)


def test_removing_exactly_the_noise_scores_near_zero(scene):
    clean, noisy = scene
    assert abs(structure_score(noisy, clean)) < 0.03


def test_removing_half_the_noise_still_scores_near_zero(scene):
    clean, noisy = scene
    assert abs(structure_score(noisy, 0.5 * (noisy + clean))) < 0.05


def test_smoothing_structure_away_scores_above_the_warning(scene):
    clean, noisy = scene
    assert structure_score(noisy, gaussian_filter(clean, 2.0)) > STRUCTURE_WARNING
    assert structure_score(noisy, gaussian_filter(noisy, 2.0)) > STRUCTURE_WARNING


def test_adding_structure_that_is_not_in_the_input_scores_negative(scene):
    clean, noisy = scene
    invented = clean.copy()
    invented[40:70, 40:70] -= 0.3  # a dark blob the input does not have
    assert structure_score(noisy, invented) < structure_score(noisy, clean) - 0.02


def test_local_correlation_of_an_image_with_itself_is_one_where_it_varies():
    image = np.random.default_rng(1).standard_normal((32, 32))
    correlation, deviation = local_correlation(image, image)
    assert np.allclose(correlation, 1.0, atol=1e-6) and (deviation > 0).all()


def test_non_finite_pixels_are_left_out(scene):
    clean, noisy = scene
    noisy = noisy.copy()
    noisy[5, 5] = np.nan
    assert np.isfinite(structure_score(noisy, clean))


def test_a_volume_warns_on_its_mean_score_and_reports_each_slice():
    check = NoiseCheck([0.02, 0.3, 0.25])
    assert check.overall == pytest.approx(0.19) and check.warns
    assert check.summary()["per_slice"] == [0.02, 0.3, 0.25]
    assert "may be removing anatomy" in check.warning("scan.tif")
    assert NoiseCheck([0.01, -0.02]).warning("scan.tif") is None
