"""The noise models, the stack simulator and the synthetic unpaired data set."""

import inspect

import numpy as np
import pytest
import tifffile

from iscl_cli.errors import IsclError
from iscl_cli.phantoms import AIR_HU, PHANTOMS
from iscl_cli.io import open_volumes
from iscl_cli.simulate import (
    NOISE_MODELS,
    charging_noise,
    correlated_noise,
    describe_noise_models,
    film_noise,
    lowdose_ct,
    make_unpaired_set,
    noise_model,
    poisson_gaussian,
    scanline_noise,
    simulate_stack,
    stain_noise,
)
from tests.test_phantoms import neighbour_correlation

FAST_CT = {"n_angles": 45}  # few views keep the projector quick on test-sized images


def clean_for(model_name: str, shape=(48, 64)) -> np.ndarray:
    """A clean image in the units the model expects: HU for lowdose_ct, [0, 1] otherwise."""
    phantom = "ct" if model_name == "lowdose_ct" else "em"
    return PHANTOMS[phantom](shape, np.random.default_rng(0))


def params_for(model_name: str) -> dict:
    return FAST_CT if model_name == "lowdose_ct" else {}


def water_disc(side: int = 64, radius: float = 24.0) -> np.ndarray:
    """0 HU disc in -1000 HU air."""
    rows, cols = np.mgrid[:side, :side]
    return np.where(np.hypot(rows - side / 2, cols - side / 2) < radius, 0.0, AIR_HU)


@pytest.mark.parametrize("name", sorted(NOISE_MODELS))
def test_models_are_deterministic_keep_shape_and_change_the_image(name):
    model, clean = NOISE_MODELS[name], clean_for(name)
    first = model(clean, np.random.default_rng(5), **params_for(name))
    again = model(clean, np.random.default_rng(5), **params_for(name))
    other = model(clean, np.random.default_rng(6), **params_for(name))
    assert first.shape == clean.shape and first.dtype == np.float32
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)
    assert not np.allclose(first, clean)


def test_poisson_gaussian_variance_is_mean_over_photons_plus_read_variance():
    flat = np.full((128, 128), 0.5)
    noisy = poisson_gaussian(flat, np.random.default_rng(1), photons=20.0, read_sigma=0.05)
    assert noisy.mean() == pytest.approx(0.5, abs=0.005)
    assert noisy.var() == pytest.approx(0.5 / 20.0 + 0.05**2, rel=0.05)


def test_poisson_gaussian_noise_grows_with_signal():
    dim = poisson_gaussian(np.full((64, 64), 0.1), np.random.default_rng(1), read_sigma=0.0)
    bright = poisson_gaussian(np.full((64, 64), 0.9), np.random.default_rng(1), read_sigma=0.0)
    assert bright.std() > 2.0 * dim.std()


def test_correlated_noise_has_the_set_sigma_and_neighbour_correlation():
    noise = correlated_noise(
        np.zeros((192, 192)), np.random.default_rng(2), sigma=0.2, correlation_length=2.0
    )
    assert noise.std() == pytest.approx(0.2, rel=0.12)
    assert neighbour_correlation(noise) == pytest.approx(np.exp(-1 / 8), abs=0.04)


def test_correlated_noise_with_zero_length_is_white():
    noise = correlated_noise(
        np.zeros((128, 128)), np.random.default_rng(2), sigma=0.2, correlation_length=0.0
    )
    assert noise.std() == pytest.approx(0.2, rel=0.05)
    assert abs(neighbour_correlation(noise)) < 0.03


def test_scanline_noise_varies_from_row_to_row_not_column_to_column():
    noisy = scanline_noise(np.full((128, 128), 0.5), np.random.default_rng(3))
    assert noisy.mean(axis=1).var() > 20 * noisy.mean(axis=0).var()


def test_scanline_streaks_start_after_falling_edges_and_trail_right():
    clean = np.zeros((64, 64))
    clean[:, 20:30] = 1.0  # a bright bar: the scan leaves it at column 30
    quiet = {"row_offset_sigma": 0.0, "row_gain_sigma": 0.0, "pixel_sigma": 0.0}
    noisy = scanline_noise(
        clean,
        np.random.default_rng(4),
        streaks_per_row=0.5,
        edge_streak_fraction=1.0,
        streak_length=10.0,
        **quiet,
    )
    streak = noisy - clean
    streak_rows = np.flatnonzero(streak.max(axis=1) > 0)
    assert len(streak_rows) > 10
    assert np.all(streak[:, :30] == 0)
    assert np.all(streak[streak_rows, 30] > 0)
    assert np.all(streak[streak_rows, 31] < streak[streak_rows, 30])


def test_stain_is_multiplicative_and_smooth():
    clean = PHANTOMS["em"]((96, 96), np.random.default_rng(0)) + 0.1
    without_grain = {"grain_sigma": 0.0, "stain_scale": 8.0}
    stained = stain_noise(clean, np.random.default_rng(5), **without_grain)
    doubled = stain_noise(2 * clean, np.random.default_rng(5), **without_grain)
    assert np.allclose(doubled, 2 * stained, rtol=1e-5)
    assert np.all(stain_noise(np.zeros((96, 96)), np.random.default_rng(5), **without_grain) == 0)
    stain = stained / clean
    assert neighbour_correlation(stain) > 0.95
    assert stain.mean() == pytest.approx(1.0, abs=0.1)
    assert stain.std() > 0.1


def test_film_noise_is_shot_noise_under_a_stain_plus_grain():
    flat = np.full((128, 128), 0.5)
    shot_only = film_noise(flat, np.random.default_rng(2), stain_strength=0.0, grain_sigma=0.0, photons=50.0)
    assert shot_only.mean() == pytest.approx(0.5, abs=0.01)
    assert shot_only.var() == pytest.approx(0.5 / 50.0, rel=0.1)  # Poisson: variance = mean / photons
    brighter = film_noise(2 * flat, np.random.default_rng(2), stain_strength=0.0, grain_sigma=0.0, photons=50.0)
    assert brighter.var() > 1.5 * shot_only.var()  # shot noise grows with the signal
    stained = film_noise(flat, np.random.default_rng(2), stain_strength=0.3, stain_scale=8.0, grain_sigma=0.0,
                         photons=1e6)
    assert neighbour_correlation(stained) > 0.95 and stained.std() > 0.05  # a smooth, strong stain
    assert np.all(film_noise(np.zeros((32, 32)), np.random.default_rng(2), grain_sigma=0.0) == 0)


def test_charging_trails_follow_falling_edges_to_the_right_and_fade():
    clean = np.zeros((64, 96))
    clean[:, 20:30] = 1.0  # a bright band: the signal falls at column 30
    quiet = {"row_offset_sigma": 0.0, "pixel_sigma": 0.0, "strength_spread": 0.0}
    noisy = charging_noise(clean, np.random.default_rng(3), charge_strength=0.5, charge_length=10.0, **quiet)
    trail = (noisy - clean).mean(axis=0)
    assert np.allclose(trail[:30], 0.0)  # nothing before the edge
    assert trail[30] == pytest.approx(0.5, rel=1e-6)  # strength x drop where the signal falls
    assert trail[40] == pytest.approx(0.5 * np.exp(-1.0), rel=1e-6)  # 1/e after charge_length
    rows = charging_noise(clean, np.random.default_rng(3), **{**quiet, "row_offset_sigma": 0.05})
    offsets = (rows - charging_noise(clean, np.random.default_rng(3), **quiet))[:, :20]
    assert np.allclose(offsets.std(axis=1), 0.0, atol=1e-6) and offsets[:, 0].std() > 0.02  # one offset per row


def test_lowdose_ct_noise_falls_as_dose_rises():
    clean = water_disc()
    centre = (slice(24, 40), slice(24, 40))
    noise_std = {
        photons: (lowdose_ct(clean, np.random.default_rng(6), photons=photons, **FAST_CT) - clean)[
            centre
        ].std()
        for photons in (1e3, 1e5)
    }
    # Quantum noise std scales as 1/sqrt(dose): 100x the photons, about 1/10 the noise.
    assert noise_std[1e5] < noise_std[1e3] / 5
    assert noise_std[1e5] > 0


def test_lowdose_ct_at_huge_dose_returns_the_clean_slice_and_keeps_the_outside():
    clean = water_disc()
    noisy = lowdose_ct(clean, np.random.default_rng(6), photons=1e15, **FAST_CT)
    assert np.abs(noisy - clean).max() < 1.0
    low_dose = lowdose_ct(clean, np.random.default_rng(6), photons=1e3, **FAST_CT)
    assert low_dose[0, 0] == clean[0, 0]  # corners lie outside the scanner's circle


def test_lowdose_ct_keeps_non_square_shapes():
    clean = PHANTOMS["ct"]((40, 56), np.random.default_rng(1))
    assert lowdose_ct(clean, np.random.default_rng(1), **FAST_CT).shape == (40, 56)


def test_unknown_model_parameter_or_bad_value_is_a_user_error():
    with pytest.raises(IsclError, match="choose one of"):
        noise_model("gaussian", {})
    with pytest.raises(IsclError, match="no parameter sigmaa"):
        noise_model("correlated", {"sigmaa": 1.0})
    with pytest.raises(IsclError, match="sigma must be >= 0"):
        correlated_noise(np.zeros((8, 8)), np.random.default_rng(0), sigma=-1.0)


def test_model_list_documents_every_parameter_with_its_default():
    listed: dict[str, dict[str, str]] = {}
    for line in describe_noise_models().splitlines():
        if not line.startswith(" "):
            current = listed.setdefault(line.split(":")[0], {})
        else:
            setting, description = line.strip().split("  ", 1)
            current[setting] = description
    assert list(listed) == list(NOISE_MODELS)
    for name, model in NOISE_MODELS.items():
        parameters = list(inspect.signature(model).parameters.values())[2:]
        assert sorted(listed[name]) == sorted(f"{p.name}={p.default:g}" for p in parameters)
        assert all(len(description) > 10 for description in listed[name].values())


def write_stack(path, data, photometric="minisblack"):
    tifffile.imwrite(path, data, photometric=photometric)
    return path


def test_simulate_stack_round_trip_keeps_shape_and_integer_dtype(tmp_path):
    clean = (
        1000 + 20000 * np.stack([PHANTOMS["em"]((32, 40), np.random.default_rng(i)) for i in range(3)])
    ).astype(np.uint16)
    source = write_stack(tmp_path / "clean.tif", clean)
    simulate_stack(source, tmp_path / "a.tif", "correlated", seed=1, sigma=2000.0)
    simulate_stack(source, tmp_path / "b.tif", "correlated", seed=1, sigma=2000.0)
    noisy = tifffile.imread(tmp_path / "a.tif")
    assert noisy.shape == clean.shape and noisy.dtype == np.uint16
    assert np.array_equal(noisy, tifffile.imread(tmp_path / "b.tif"))
    for plane in range(3):
        assert 1000 < np.abs(noisy[plane].astype(float) - clean[plane]).mean() < 3000
    assert not np.array_equal(noisy[0] - clean[0].astype(float), noisy[1] - clean[1].astype(float))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.tif",
        "b.tif",
        "clean.tif",
    ]  # no temporary files left


def test_simulate_stack_clips_integers_and_keeps_floats_as_float32(tmp_path):
    source = write_stack(tmp_path / "u8.tif", np.full((2, 16, 16), 128, np.uint8))
    simulate_stack(
        source, tmp_path / "u8_noisy.tif", "correlated", seed=0, sigma=500.0, correlation_length=0.0
    )
    noisy = tifffile.imread(tmp_path / "u8_noisy.tif")
    assert noisy.dtype == np.uint8 and noisy.min() == 0 and noisy.max() == 255

    source = write_stack(tmp_path / "f64.tif", np.full((16, 16), 0.5))
    simulate_stack(source, tmp_path / "f_noisy.tif", "poisson_gaussian", seed=0)
    noisy = tifffile.imread(tmp_path / "f_noisy.tif")
    assert noisy.dtype == np.float32 and noisy.shape == (16, 16)


def test_simulate_stack_user_errors(tmp_path):
    source = write_stack(tmp_path / "clean.tif", np.zeros((16, 16), np.uint16))
    with pytest.raises(IsclError, match="overwrite the input"):
        simulate_stack(source, source, "correlated", seed=0)
    with pytest.raises(IsclError, match="no such file"):
        simulate_stack(tmp_path / "missing.tif", tmp_path / "out.tif", "correlated", seed=0)
    not_tiff = tmp_path / "notes.tif"
    not_tiff.write_text("not an image")
    with pytest.raises(IsclError, match="not a readable TIFF"):
        simulate_stack(not_tiff, tmp_path / "out.tif", "correlated", seed=0)
    rgb = write_stack(tmp_path / "rgb.tif", np.zeros((16, 16, 3), np.uint8), photometric="rgb")
    with pytest.raises(IsclError, match="RGB"):
        simulate_stack(rgb, tmp_path / "out.tif", "correlated", seed=0)
    assert not (tmp_path / "out.tif").exists()


def test_unpaired_set_layout_dtypes_and_disjoint_sources(tmp_path):
    paths = make_unpaired_set(tmp_path, "em", "correlated", n_train=3, n_test=2, shape=(48, 48), seed=1)
    noisy = [tifffile.imread(p) for p in sorted(paths["noisy"].glob("*.tif"))]
    clean = [tifffile.imread(p) for p in sorted(paths["clean"].glob("*.tif"))]
    test_noisy, test_clean = tifffile.imread(paths["test_noisy"]), tifffile.imread(paths["test_clean"])
    assert len(noisy) == len(clean) == 3
    assert all(image.shape == (48, 48) and image.dtype == np.uint16 for image in noisy + clean)
    assert test_noisy.shape == test_clean.shape == (2, 48, 48) and test_noisy.dtype == np.uint16

    def correlation(a, b):
        return np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1]

    # Test pairs are the same scene; training noisy and clean images never are.
    assert all(correlation(test_noisy[i], test_clean[i]) > 0.6 for i in range(2))
    assert max(correlation(n, c) for n in noisy for c in clean) < 0.3


def test_unpaired_set_is_reproducible_and_replaces_earlier_files(tmp_path):
    make_unpaired_set(
        tmp_path / "a", "fluorescence", "poisson_gaussian", n_train=3, n_test=1, shape=(32, 32), seed=2
    )
    paths = make_unpaired_set(
        tmp_path / "a", "fluorescence", "poisson_gaussian", n_train=1, n_test=1, shape=(32, 32), seed=2
    )
    again = make_unpaired_set(
        tmp_path / "b", "fluorescence", "poisson_gaussian", n_train=1, n_test=1, shape=(32, 32), seed=2
    )
    assert [p.name for p in paths["noisy"].iterdir()] == ["noisy_000.tif"]
    assert [p.name for p in paths["clean"].iterdir()] == ["clean_000.tif"]
    assert np.array_equal(tifffile.imread(paths["test_noisy"]), tifffile.imread(again["test_noisy"]))


def test_unpaired_ct_set_is_int16_hu_and_lowdose_needs_ct(tmp_path):
    paths = make_unpaired_set(
        tmp_path, "ct", "lowdose_ct", n_train=1, n_test=1, shape=(48, 48), seed=3, **FAST_CT
    )
    noisy = tifffile.imread(paths["test_noisy"])
    assert noisy.dtype == np.int16 and noisy[0, 0, 0] == -1000
    assert np.any(noisy[0] > 500)  # bone survives storage
    with pytest.raises(IsclError, match="needs the 'ct' phantom"):
        make_unpaired_set(tmp_path / "em", "em", "lowdose_ct", n_train=1, n_test=1, shape=(32, 32))


def test_unpaired_ct_set_as_dicom_series_reads_back_in_hu(tmp_path):
    tiff = make_unpaired_set(tmp_path / "tiff", "ct", "lowdose_ct", n_train=2, n_test=2, shape=(40, 48), seed=4,
                             **FAST_CT)
    dicom = make_unpaired_set(tmp_path / "dicom", "ct", "lowdose_ct", n_train=2, n_test=2, shape=(40, 48), seed=4,
                              file_format="dicom", **FAST_CT)
    for kind in ("noisy", "clean", "test_noisy", "test_clean"):
        (series,) = open_volumes([dicom[kind]])
        assert series.format == "dicom" and len(series) == 2 and series.shape == (40, 48)
        expected = [v.read_slice(i) for v in open_volumes([tiff[kind]]) for i in range(len(v))]
        # The same images: 12-bit storage keeps HU from -1024 up, int16 TIFF from -1024 too.
        assert all(np.array_equal(series.read_slice(i), expected[i]) for i in range(2))
    with pytest.raises(IsclError, match="for the 'ct' phantom only"):
        make_unpaired_set(tmp_path / "em", "em", "film", n_train=1, n_test=1, shape=(32, 32), file_format="dicom")
