"""The synthetic clean images: deterministic, right shape and type, plausible values."""

import numpy as np
import pytest

from iscl_cli.phantoms import AIR_HU, PHANTOMS, gaussian_random_field

SHAPE = (48, 64)  # non-square on purpose


def neighbour_correlation(image: np.ndarray, lag: int = 1) -> float:
    """Correlation between pixels ``lag`` apart along rows and along columns, pooled."""
    pairs = [(image[:, :-lag], image[:, lag:]), (image[:-lag, :], image[lag:, :])]
    first = np.concatenate([a.ravel() for a, _ in pairs])
    second = np.concatenate([b.ravel() for _, b in pairs])
    return float(np.corrcoef(first, second)[0, 1])


@pytest.mark.parametrize("name", sorted(PHANTOMS))
def test_same_seed_same_image_other_seed_other_image(name):
    make = PHANTOMS[name]
    first = make(SHAPE, np.random.default_rng(7))
    again = make(SHAPE, np.random.default_rng(7))
    other = make(SHAPE, np.random.default_rng(8))
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)


@pytest.mark.parametrize("name", sorted(PHANTOMS))
def test_shape_dtype_and_finite(name):
    image = PHANTOMS[name](SHAPE, np.random.default_rng(0))
    assert image.shape == SHAPE and image.dtype == np.float32
    assert np.isfinite(image).all()


def test_em_light_cytoplasm_with_thin_dark_membranes():
    image = PHANTOMS["em"]((96, 96), np.random.default_rng(1))
    assert image.min() >= 0 and image.max() <= 1
    assert np.median(image) > 0.5
    dark_fraction = np.mean(image < 0.35)
    assert 0.02 < dark_fraction < 0.3  # membranes and organelles, not a dark image


def test_fluorescence_sparse_bright_structures_on_dark_background():
    image = PHANTOMS["fluorescence"]((96, 96), np.random.default_rng(1))
    assert image.min() >= 0 and image.max() <= 1
    assert np.median(image) < 0.12
    assert image.max() > 0.5
    assert np.mean(image > 0.3) < 0.1


def test_ct_has_air_lungs_soft_tissue_and_bone_in_hu():
    image = PHANTOMS["ct"]((128, 128), np.random.default_rng(2))
    assert image[0, 0] == AIR_HU and image[-1, -1] == AIR_HU
    inside_body = image > -950
    assert np.any(image[inside_body] < -700)  # lungs
    assert np.mean((image > 0) & (image < 80)) > 0.1  # soft tissue
    assert np.any(image > 700)  # bone
    assert image.min() >= -1000 and image.max() <= 1250


@pytest.mark.parametrize("length", [1.0, 2.5])
def test_random_field_has_unit_variance_and_the_gaussian_correlation(length):
    field = gaussian_random_field((256, 256), np.random.default_rng(3), length)
    assert field.shape == (256, 256)
    assert field.std() == pytest.approx(1.0, rel=0.1)
    for lag in (1, 2):
        expected = np.exp(-(lag**2) / (2 * length**2))
        assert neighbour_correlation(field, lag) == pytest.approx(expected, abs=0.04)


def test_random_field_with_zero_length_is_white():
    field = gaussian_random_field((128, 128), np.random.default_rng(4), 0.0)
    assert field.std() == pytest.approx(1.0, rel=0.05)
    assert abs(neighbour_correlation(field)) < 0.03
