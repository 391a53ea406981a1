import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from iscl_cli.errors import IsclError
from iscl_cli.intensity import FOCUS_SHARE, IntensityMapping, fit_intensity, parse_window, stabilized
from iscl_cli.noise_variance import NoiseVarianceFit
from tests.array_volume import ArrayVolume


def test_round_trip_inside_the_range():
    mapping = IntensityMapping(-1000.0, 1000.0, -1000.0, 1000.0, "window")
    image = np.array([[-1000.0, 0.0, 500.0, 1000.0]], dtype=np.float32)
    model_units = mapping.to_model(image, "noisy")
    np.testing.assert_allclose(model_units, [[-1.0, 0.0, 0.5, 1.0]], atol=1e-6)
    np.testing.assert_allclose(mapping.to_physical(model_units, "clean"), image, atol=1e-3)


def test_values_outside_the_range_saturate():
    mapping = IntensityMapping(0.0, 10.0, 0.0, 10.0, "window")
    assert mapping.to_model(np.array([-5.0, 20.0]), "noisy").tolist() == [-1.0, 1.0]


def test_shared_fit_pools_both_domains():
    rng = np.random.default_rng(0)
    noisy = ArrayVolume(rng.uniform(0, 100, size=(3, 64, 64)))
    clean = ArrayVolume(rng.uniform(100, 200, size=(3, 64, 64)))
    mapping = fit_intensity([noisy], [clean], percentiles=(0.0, 100.0))
    assert mapping.shared
    assert mapping.noisy_low == pytest.approx(0.0, abs=0.1) and mapping.noisy_high == pytest.approx(200.0, abs=0.1)


def test_per_domain_fit_keeps_ranges_apart():
    rng = np.random.default_rng(0)
    noisy = ArrayVolume(rng.uniform(0, 100, size=(2, 32, 32)))
    clean = ArrayVolume(rng.uniform(100, 200, size=(2, 32, 32)))
    mapping = fit_intensity([noisy], [clean], per_domain=True, percentiles=(0.0, 100.0))
    assert not mapping.shared
    assert mapping.noisy_high == pytest.approx(100.0, abs=0.1)
    assert mapping.clean_low == pytest.approx(100.0, abs=0.1)


def test_window_overrides_the_data():
    volume = ArrayVolume(np.zeros((1, 8, 8)))
    mapping = fit_intensity([volume], [volume], window=(-160.0, 240.0))
    assert (mapping.noisy_low, mapping.clean_high) == (-160.0, 240.0)


def test_constant_data_is_refused():
    volume = ArrayVolume(np.full((2, 16, 16), 7.0))
    with pytest.raises(IsclError, match="no contrast"):
        fit_intensity([volume], [volume])


def test_nan_data_is_refused_naming_the_file_and_slice():
    data = np.random.default_rng(0).normal(size=(2, 16, 16))
    data[1, 3, 3] = np.nan
    clean = ArrayVolume(np.random.default_rng(1).normal(size=(1, 16, 16)), name="ref/b.tif")
    with pytest.raises(IsclError, match="raw/a.tif: slice 1 contains NaN or infinite pixel values"):
        fit_intensity([ArrayVolume(data, name="raw/a.tif")], [clean])


def test_domains_of_very_different_ranges_get_a_note_suggesting_per_domain(notes):
    rng = np.random.default_rng(2)
    noisy = ArrayVolume(rng.uniform(259, 1758, size=(2, 32, 32)))  # uint16 counts
    clean = ArrayVolume(rng.uniform(0, 255, size=(2, 32, 32)))  # uint8 grey values
    fit_intensity([noisy], [clean])
    assert "one shared intensity range fits neither" in notes.text and "--per-domain" in notes.text
    notes.clear()
    fit_intensity([noisy], [ArrayVolume(rng.uniform(300, 1700, size=(2, 32, 32)))])
    fit_intensity([noisy], [clean], per_domain=True)
    assert notes.text == ""


@pytest.mark.parametrize("values", [dict(noisy_low=float("nan")), dict(clean_high=float("inf")),
                                    dict(noisy_high=-5.0), dict(clean_low="0")])
def test_a_mapping_must_be_finite_and_increasing(values):
    with pytest.raises(ValueError, match="is not two finite numbers, low < high"):
        IntensityMapping(**{**IntensityMapping(0.0, 1.0, 0.0, 1.0, "window").to_dict(), **values})


@pytest.mark.parametrize("text", ["5", "a,b", "10,0", "1,2,3", "-inf,inf", "nan,1"])
def test_bad_windows_are_refused(text):
    with pytest.raises(IsclError, match="--window"):
        parse_window(text)


def test_mapping_survives_dict_round_trip():
    mapping = IntensityMapping(1.0, 2.0, 3.0, 4.0, "per domain")
    assert IntensityMapping.from_dict(mapping.to_dict()) == mapping


def test_a_focus_range_gets_the_focus_share_and_the_map_inverts():
    mapping = IntensityMapping(-1000.0, 1000.0, -1000.0, 1000.0, "window", focus_low=-100.0, focus_high=100.0)
    physical, model = mapping.focus_knots()
    assert physical == [-1000.0, -100.0, 100.0, 1000.0]
    assert model[2] - model[1] == pytest.approx(2 * FOCUS_SHARE)
    assert model[1] + 1.0 == pytest.approx(1.0 - model[2])  # equal outer parts get equal shares
    image = np.array([[-1000.0, -400.0, -100.0, 0.0, 60.0, 100.0, 900.0]], dtype=np.float32)
    np.testing.assert_allclose(mapping.to_physical(mapping.to_model(image, "noisy"), "clean"), image, atol=1e-2)
    # inside the focus the slope is FOCUS_SHARE of the range over the focus width
    step = float(np.diff(mapping.to_model(np.array([0.0, 1.0]), "noisy"))[0])
    assert step == pytest.approx(2 * FOCUS_SHARE / 200.0, rel=1e-4)
    assert mapping.to_model(np.array([-5000.0, 5000.0]), "noisy").tolist() == [-1.0, 1.0]


def test_a_focus_is_cut_to_the_fitted_range_and_stored_in_the_source():
    rng = np.random.default_rng(3)
    volume = ArrayVolume(rng.uniform(-1000, 1000, size=(2, 32, 32)))
    mapping = fit_intensity([volume], [volume], percentiles=(0.0, 100.0), focus=(-5000.0, 200.0))
    assert mapping.focus_low == mapping.noisy_low and mapping.focus_high == 200.0
    assert "focus" in mapping.source
    assert IntensityMapping.from_dict(mapping.to_dict()) == mapping


def test_a_focus_outside_the_data_or_with_per_domain_ranges_is_refused():
    volume = ArrayVolume(np.random.default_rng(4).uniform(0, 100, size=(1, 16, 16)))
    with pytest.raises(IsclError, match="lies outside the data's intensity range"):
        fit_intensity([volume], [volume], focus=(500.0, 600.0))
    with pytest.raises(IsclError, match="shared intensity range"):
        fit_intensity([volume], [volume], per_domain=True, focus=(10.0, 20.0))
    with pytest.raises(ValueError, match="must lie inside"):
        IntensityMapping(0.0, 1.0, 0.0, 1.0, "window", focus_low=-1.0, focus_high=0.5)


def shot_noise_volume(seed: int, slices: int = 4) -> ArrayVolume:
    """Poisson-Gaussian noise on smooth scenes, stored as 1000 + 2000 * intensity."""
    rng = np.random.default_rng(seed)
    scenes = [gaussian_filter(rng.uniform(size=(128, 128)), 5) for _ in range(slices)]
    scenes = [0.05 + 0.95 * ((s - s.min()) / np.ptp(s)) ** 2 for s in scenes]
    return ArrayVolume(np.stack([1000.0 + 2000.0 * (rng.poisson(20.0 * s) / 20.0 + 0.02 * rng.standard_normal(s.shape))
                                 for s in scenes]))


def test_auto_stabilises_shot_noise_only_and_the_stabilised_map_inverts():
    shot = shot_noise_volume(5)
    mapping = fit_intensity([shot], [shot], stabilize="auto")
    assert mapping.variance_slope == pytest.approx(100.0, rel=0.25) and "variance-stabilised" in mapping.source
    assert IntensityMapping.from_dict(mapping.to_dict()) == mapping
    image = np.linspace(mapping.noisy_low, mapping.noisy_high, 40, dtype=np.float32)[None]
    model_units = mapping.to_model(image, "noisy")
    assert model_units.min() == -1.0 and model_units.max() == 1.0 and (np.diff(model_units) > 0).all()
    np.testing.assert_allclose(mapping.to_physical(model_units, "clean"), image, rtol=1e-4)
    # the transform spends more of [-1, 1] on the dim, less noisy part than a linear map would
    assert mapping.to_model(np.array([mapping.noisy_low + 0.1 * (mapping.noisy_high - mapping.noisy_low)]))[0] > -0.8
    white = ArrayVolume(np.random.default_rng(6).normal(1000.0, 30.0, size=(3, 64, 64)))
    assert fit_intensity([white], [white], stabilize="auto").variance_slope is None
    assert fit_intensity([shot], [shot], stabilize="off").variance_slope is None
    assert fit_intensity([shot], [shot], window=(0.0, 5000.0), stabilize="auto").variance_slope is None


def test_stabilising_on_demand_needs_noise_that_grows_with_intensity_and_no_window():
    white = ArrayVolume(np.random.default_rng(7).normal(1000.0, 30.0, size=(3, 64, 64)))
    mapping = fit_intensity([white], [white])
    falling = NoiseVarianceFit(slope=-2.0, intercept=5000.0, r2=0.95, lag_ratio=1.0, variance_ratio=0.5)
    with pytest.raises(IsclError, match="does not grow with the intensity"):
        stabilized(mapping, falling, "on")
    assert stabilized(mapping, falling, "auto") == mapping
    with pytest.raises(IsclError, match="--stabilize on does not combine"):
        fit_intensity([white], [white], window=(0.0, 2000.0), stabilize="on")
    with pytest.raises(IsclError, match="--stabilize must be one of"):
        fit_intensity([white], [white], stabilize="maybe")
    with pytest.raises(ValueError, match="slope > 0"):
        IntensityMapping(0.0, 1.0, 0.0, 1.0, "window", variance_slope=-1.0, variance_intercept=0.0)
    with pytest.raises(ValueError, match="both variance_slope and variance_intercept"):
        IntensityMapping(0.0, 1.0, 0.0, 1.0, "window", variance_slope=1.0)
