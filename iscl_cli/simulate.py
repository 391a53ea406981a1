"""Noise models practitioners meet, and synthetic unpaired data sets built from them.

Every noise model is a function ``(clean, rng, **params) -> noisy`` that takes a 2D
image and a ``numpy.random.Generator`` and returns a float32 image of the same shape;
the same generator state gives the same noise. Parameters are plain numbers with
defaults; intensity-like parameters are in the image's own units, and the defaults
suit images scaled to [0, 1] (``iscl_cli.phantoms`` makes such images), except
``lowdose_ct``, which works in Hounsfield units.

- ``poisson_gaussian``: photon shot noise plus camera read noise (fluorescence).
- ``correlated_noise``: spatially correlated (coloured) Gaussian noise (EM after
  drift correction or interpolation, detectors with cross-talk).
- ``scanline_noise``: per-line offset and gain jitter and bright charging streaks (SEM).
- ``stain_noise``: smooth multiplicative staining/illumination field plus grain.
- ``film_noise``: transmission EM on film: staining, electron shot noise and film grain.
- ``charging_noise``: SEM specimen charging: bright trails after every falling edge, line offsets.
- ``lowdose_ct``: CT quantum noise made in the projection domain (forward projection,
  Poisson counts at a chosen dose, filtered back-projection).

``simulate_stack`` applies a model to a TIFF stack (what ``iscl simulate`` runs);
``make_unpaired_set`` writes a complete unpaired training set with a paired test stack
(what ``iscl demo``, the end-to-end tests and the quality benchmark use).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import tifffile
from scipy.signal import lfilter
from skimage.transform import iradon, radon

from iscl_cli.ct_series import write_ct_series
from iscl_cli.errors import IsclError
from iscl_cli.io.atomic import atomic_path
from iscl_cli.io.values import integer_range, round_and_clip
from iscl_cli.phantoms import AIR_HU, PHANTOMS, gaussian_random_field

NoiseModel = Callable[..., np.ndarray]


def _require(condition: bool, message: str) -> None:
    """Raise a user-facing error about a parameter value unless ``condition`` holds."""
    if not condition:
        raise IsclError(message)


def poisson_gaussian(
    clean: np.ndarray, rng: np.random.Generator, photons: float = 30.0, read_sigma: float = 0.02
) -> np.ndarray:
    """Shot noise and read noise of a photon-counting camera (fluorescence microscopy).

    Each pixel records ``Poisson(photons * clean) / photons`` plus Gaussian read noise,
    so on a flat region of intensity ``m`` the variance is ``m / photons + read_sigma**2``.
    Negative intensities count as zero photons.

    Args:
        clean: the clean image, intensities >= 0.
        rng: source of randomness.
        photons: expected photon count for an intensity of 1 (lower = noisier; 30 is a
            dim live-cell image, 1000 a bright fixed sample).
        read_sigma: standard deviation of the read noise, in image units.
    """
    _require(photons > 0, f"photons must be > 0, got {photons}")
    _require(read_sigma >= 0, f"read_sigma must be >= 0, got {read_sigma}")
    counts = rng.poisson(photons * np.clip(clean, 0.0, None))
    noisy = counts / photons + read_sigma * rng.standard_normal(clean.shape)
    return noisy.astype(np.float32)


def correlated_noise(
    clean: np.ndarray, rng: np.random.Generator, sigma: float = 0.1, correlation_length: float = 1.5
) -> np.ndarray:
    """Additive Gaussian noise that is correlated between neighbouring pixels.

    White noise is low-pass filtered by a Gaussian and renormalised to ``sigma``; the
    correlation between pixels ``d`` apart is ``exp(-d**2 / (2 * correlation_length**2))``
    (for the default 1.5 px: 0.80 between neighbours, 0.41 two pixels apart).

    Args:
        clean: the clean image.
        rng: source of randomness.
        sigma: standard deviation of the noise, in image units.
        correlation_length: in pixels; 0 gives white noise.
    """
    _require(sigma >= 0, f"sigma must be >= 0, got {sigma}")
    _require(correlation_length >= 0, f"correlation_length must be >= 0, got {correlation_length}")
    noise = sigma * gaussian_random_field(clean.shape, rng, correlation_length)
    return (clean + noise).astype(np.float32)


def scanline_noise(
    clean: np.ndarray,
    rng: np.random.Generator,
    row_offset_sigma: float = 0.04,
    row_gain_sigma: float = 0.05,
    pixel_sigma: float = 0.03,
    streaks_per_row: float = 0.05,
    streak_amplitude: float = 0.3,
    streak_length: float = 30.0,
    edge_streak_fraction: float = 0.7,
) -> np.ndarray:
    """Scanning-electron-microscope artefacts: line jitter and charging streaks.

    The beam scans row by row, left to right. Every row gets its own offset and gain
    (detector and beam-current jitter between lines); some rows get a bright streak
    that starts at a point and fades exponentially to the right (charging: the
    specimen holds charge and the detector keeps seeing signal after the beam moved
    on). Streaks start mostly where the scan leaves a bright structure (a falling edge
    along the row), the rest at random positions. Independent Gaussian pixel noise on top.

    Args:
        clean: the clean image.
        rng: source of randomness.
        row_offset_sigma: standard deviation of the per-row additive offset, image units.
        row_gain_sigma: standard deviation of the per-row relative gain (0.05 = 5 %).
        pixel_sigma: standard deviation of the per-pixel white noise, image units.
        streaks_per_row: expected number of streaks starting in each row.
        streak_amplitude: mean brightness at a streak's start, image units
            (each streak draws between 0.5x and 1.5x of it).
        streak_length: pixels over which a streak fades to 1/e.
        edge_streak_fraction: share of streaks that start at falling edges (0 to 1).
    """
    for name, value in (
        ("row_offset_sigma", row_offset_sigma),
        ("row_gain_sigma", row_gain_sigma),
        ("pixel_sigma", pixel_sigma),
        ("streaks_per_row", streaks_per_row),
    ):
        _require(value >= 0, f"{name} must be >= 0, got {value}")
    _require(streak_length > 0, f"streak_length must be > 0, got {streak_length}")
    _require(
        0 <= edge_streak_fraction <= 1, f"edge_streak_fraction must be in [0, 1], got {edge_streak_fraction}"
    )
    n_rows, n_cols = clean.shape
    gains = 1.0 + row_gain_sigma * rng.standard_normal((n_rows, 1))
    offsets = row_offset_sigma * rng.standard_normal((n_rows, 1))
    noisy = clean * gains + offsets + pixel_sigma * rng.standard_normal(clean.shape)

    n_streaks = rng.poisson(streaks_per_row * n_rows)
    starts_rows, starts_cols = _streak_starts(clean, rng, n_streaks, edge_streak_fraction)
    amplitudes = streak_amplitude * rng.uniform(0.5, 1.5, n_streaks)
    for row, col, amplitude in zip(starts_rows, starts_cols, amplitudes, strict=True):
        distance = np.arange(n_cols - col, dtype=float)
        noisy[row, col:] += amplitude * np.exp(-distance / streak_length)
    return noisy.astype(np.float32)


def _streak_starts(
    clean: np.ndarray, rng: np.random.Generator, n_streaks: int, edge_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels where charging streaks start: falling edges along rows (weighted by their drop) or anywhere."""
    drop_along_row = np.clip(clean[:, :-1] - clean[:, 1:], 0.0, None)
    total_drop = drop_along_row.sum()
    # A flat image has no falling edges: then every streak starts at a random position.
    n_at_edges = rng.binomial(n_streaks, edge_fraction) if total_drop > 0 else 0
    edge_pixels = np.zeros(0, dtype=int)
    if n_at_edges:
        edge_pixels = rng.choice(
            drop_along_row.size, size=n_at_edges, p=(drop_along_row / total_drop).ravel()
        )
    edge_rows, edge_cols = np.unravel_index(edge_pixels, drop_along_row.shape)
    n_random = n_streaks - n_at_edges
    random_rows = rng.integers(0, clean.shape[0], n_random)
    random_cols = rng.integers(0, clean.shape[1], n_random)
    # A falling edge between columns c and c+1 starts its streak at c+1, just after the bright side.
    return np.concatenate([edge_rows, random_rows]), np.concatenate([edge_cols + 1, random_cols])


def stain_noise(
    clean: np.ndarray,
    rng: np.random.Generator,
    stain_strength: float = 0.3,
    stain_scale: float = 40.0,
    grain_sigma: float = 0.03,
    grain_size: float = 0.8,
) -> np.ndarray:
    """Uneven staining or illumination (a smooth multiplicative field) plus film grain.

    ``noisy = clean * exp(stain_strength * g - stain_strength**2 / 2) + grain`` where
    ``g`` is a smooth unit-variance Gaussian field with correlation length
    ``stain_scale``, so the stain multiplies the image by 1 on average and by about
    ``exp(+-stain_strength)`` at its extremes; the grain is additive Gaussian noise
    correlated over ``grain_size`` pixels.

    Args:
        clean: the clean image.
        rng: source of randomness.
        stain_strength: standard deviation of the log of the stain field (0.3 = about +-30 %).
        stain_scale: correlation length of the stain field, in pixels.
        grain_sigma: standard deviation of the grain, image units.
        grain_size: correlation length of the grain, in pixels.
    """
    _require(stain_strength >= 0, f"stain_strength must be >= 0, got {stain_strength}")
    _require(stain_scale > 0, f"stain_scale must be > 0, got {stain_scale}")
    _require(grain_sigma >= 0, f"grain_sigma must be >= 0, got {grain_sigma}")
    _require(grain_size >= 0, f"grain_size must be >= 0, got {grain_size}")
    stained = clean * _stain_field(clean.shape, rng, stain_strength, stain_scale)
    grain = grain_sigma * gaussian_random_field(clean.shape, rng, grain_size)
    return (stained + grain).astype(np.float32)


def _stain_field(shape: tuple[int, int], rng: np.random.Generator, strength: float, scale: float) -> np.ndarray:
    """A smooth log-normal field of mean about 1: ``exp(strength * g - strength**2 / 2)``."""
    return np.exp(strength * gaussian_random_field(shape, rng, scale) - strength**2 / 2.0)


def film_noise(
    clean: np.ndarray,
    rng: np.random.Generator,
    stain_strength: float = 0.2,
    stain_scale: float = 40.0,
    photons: float = 40.0,
    grain_sigma: float = 0.04,
    grain_size: float = 0.8,
) -> np.ndarray:
    """Transmission EM on film: uneven staining, electron shot noise and film grain.

    The stain (a smooth multiplicative field, as in ``stain_noise``) modulates the
    intensity that reaches the film; electrons arrive as Poisson counts, ``photons`` per
    unit intensity; the developed film adds grain correlated over ``grain_size`` pixels:
    ``noisy = Poisson(photons * clean * stain) / photons + grain``. The shot noise grows
    with the brightness, the stain is low-frequency, the grain spatially correlated: no
    single-scale white-noise model fits all three.

    Args:
        clean: the clean image, intensities >= 0.
        rng: source of randomness.
        stain_strength: standard deviation of the log of the stain field (0.2 = about +-20 %).
        stain_scale: correlation length of the stain field, in pixels.
        photons: expected electron count per pixel at intensity 1 (lower = noisier).
        grain_sigma: standard deviation of the grain, image units.
        grain_size: correlation length of the grain, in pixels.
    """
    _require(stain_strength >= 0, f"stain_strength must be >= 0, got {stain_strength}")
    _require(stain_scale > 0, f"stain_scale must be > 0, got {stain_scale}")
    _require(photons > 0, f"photons must be > 0, got {photons}")
    _require(grain_sigma >= 0, f"grain_sigma must be >= 0, got {grain_sigma}")
    _require(grain_size >= 0, f"grain_size must be >= 0, got {grain_size}")
    exposure = np.clip(clean, 0.0, None) * _stain_field(clean.shape, rng, stain_strength, stain_scale)
    counts = rng.poisson(photons * exposure)
    grain = grain_sigma * gaussian_random_field(clean.shape, rng, grain_size)
    return (counts / photons + grain).astype(np.float32)


def charging_noise(
    clean: np.ndarray,
    rng: np.random.Generator,
    charge_strength: float = 0.3,
    charge_length: float = 12.0,
    strength_spread: float = 0.5,
    row_offset_sigma: float = 0.05,
    pixel_sigma: float = 0.05,
) -> np.ndarray:
    """Specimen charging in a scanning electron microscope: bright trails after every edge.

    The beam scans each row left to right. Where the signal falls (the beam leaves a
    bright structure) the specimen keeps charge, and the detector goes on seeing a bright
    trail that fades exponentially along the row: the trail at a pixel is
    ``strength_row * sum over earlier drops * exp(-distance / charge_length)``. How much a
    row charges varies from line to line (``strength_row`` is log-normal around
    ``charge_strength``), every row gets its own offset, and white pixel noise lies on
    top. Unlike ``scanline``'s sparse streaks, every falling edge trails, so the artefact
    follows the image's structure.

    Args:
        clean: the clean image.
        rng: source of randomness.
        charge_strength: median trail brightness per unit of signal drop.
        charge_length: pixels over which a trail fades to 1/e.
        strength_spread: standard deviation of the log of the per-row strength.
        row_offset_sigma: standard deviation of the per-row additive offset, image units.
        pixel_sigma: standard deviation of the per-pixel white noise, image units.
    """
    _require(charge_strength >= 0, f"charge_strength must be >= 0, got {charge_strength}")
    _require(charge_length > 0, f"charge_length must be > 0, got {charge_length}")
    _require(strength_spread >= 0, f"strength_spread must be >= 0, got {strength_spread}")
    _require(row_offset_sigma >= 0, f"row_offset_sigma must be >= 0, got {row_offset_sigma}")
    _require(pixel_sigma >= 0, f"pixel_sigma must be >= 0, got {pixel_sigma}")
    n_rows = clean.shape[0]
    drops = np.zeros(clean.shape)
    drops[:, 1:] = np.clip(clean[:, :-1] - clean[:, 1:], 0.0, None)
    decay = np.exp(-1.0 / charge_length)
    # A first-order recursive filter along each row sums the earlier drops, each fading by `decay` per pixel.
    trails = lfilter([1.0], [1.0, -decay], drops, axis=1)
    strengths = charge_strength * np.exp(strength_spread * rng.standard_normal((n_rows, 1)))
    offsets = row_offset_sigma * rng.standard_normal((n_rows, 1))
    noisy = clean + strengths * trails + offsets + pixel_sigma * rng.standard_normal(clean.shape)
    return noisy.astype(np.float32)


LOWDOSE_FIELD_OF_VIEW_MM = 400.0


def lowdose_ct(
    clean: np.ndarray,
    rng: np.random.Generator,
    photons: float = 5.0e4,
    n_angles: int = 180,
    field_of_view_mm: float = LOWDOSE_FIELD_OF_VIEW_MM,
    mu_water_per_mm: float = 0.0192,
) -> np.ndarray:
    """Low-dose CT quantum noise, simulated in the projection domain. Input and output in HU.

    Hounsfield units become linear attenuation ``mu = mu_water * (1 + HU / 1000)``; the
    slice is forward-projected (``skimage.transform.radon``, parallel beam, ``n_angles``
    views over 180 degrees, one detector bin per pixel) into line integrals ``p``; each
    ray counts ``Poisson(photons * exp(-p))`` photons (0 counts are read as 1); the
    noise of ``-log(counts / photons)`` is reconstructed by filtered back-projection
    (``iradon``, Shepp-Logan filter) and added to the clean slice. Back-projecting only
    the noise keeps the projector's own discretisation error out of the result: the
    output differs from the input by dose-dependent noise alone, with CT's streaky
    texture (more noise behind dense bone and along long paths through the body).

    The scanner's field of view is the image's inscribed circle; pixels outside it
    are not projected and stay unchanged. A non-square slice is padded with air to a
    square first. Noise standard deviation falls as ``1 / sqrt(photons * n_angles)``.
    Cost grows linearly with ``n_angles``: 180 views on a 256 x 256 slice take about
    1 s of CPU.

    Args:
        clean: the clean slice in Hounsfield units.
        rng: source of randomness.
        photons: incident photons per ray (detector bin and view). With the other
            defaults, 5e4 leaves about 47 HU of noise in the heart of a 256 x 256
            ``ct_phantom`` (a low-dose look), 1e5 about 35 HU, 1e4 about 100 HU.
        n_angles: number of views over 180 degrees.
        field_of_view_mm: width of the image in millimetres (sets the pixel size, and
            so how long each ray's path through the body is).
        mu_water_per_mm: linear attenuation of water, 1/mm (0.0192 at about 70 keV).
    """
    _require(photons > 0, f"photons must be > 0, got {photons}")
    _require(int(n_angles) >= 1, f"n_angles must be >= 1, got {n_angles}")
    _require(field_of_view_mm > 0, f"field_of_view_mm must be > 0, got {field_of_view_mm}")
    _require(mu_water_per_mm > 0, f"mu_water_per_mm must be > 0, got {mu_water_per_mm}")
    square, crop = _pad_to_square(clean, fill=AIR_HU)
    side = square.shape[0]
    pixel_mm = field_of_view_mm / side
    inside_circle = _inscribed_circle(side)
    attenuation = np.where(inside_circle, np.clip(mu_water_per_mm * (1.0 + square / 1000.0), 0.0, None), 0.0)
    angles = np.linspace(0.0, 180.0, int(n_angles), endpoint=False)
    line_integrals = radon(attenuation, theta=angles, circle=True) * pixel_mm
    counts = np.maximum(rng.poisson(photons * np.exp(-line_integrals)), 1)
    projection_noise = -np.log(counts / photons) - line_integrals
    attenuation_noise = iradon(
        projection_noise / pixel_mm, theta=angles, output_size=side, filter_name="shepp-logan", circle=True
    )
    noise_hu = 1000.0 * attenuation_noise / mu_water_per_mm
    return (clean + noise_hu[crop]).astype(np.float32)


def _pad_to_square(image: np.ndarray, fill: float) -> tuple[np.ndarray, tuple[slice, slice]]:
    """``image`` centred in a square of ``fill``, and the slices that cut it back out."""
    side = max(image.shape)
    before = [(side - size) // 2 for size in image.shape]
    square = np.full((side, side), fill, dtype=float)
    crop = tuple(slice(start, start + size) for start, size in zip(before, image.shape, strict=True))
    square[crop] = image
    return square, crop


def _inscribed_circle(side: int) -> np.ndarray:
    """Mask of the disc that ``radon(circle=True)`` projects in a ``side`` x ``side`` image."""
    centre = side // 2
    rows, cols = np.ogrid[:side, :side]
    return (rows - centre) ** 2 + (cols - centre) ** 2 <= (side // 2) ** 2


NOISE_MODELS: dict[str, NoiseModel] = {
    "poisson_gaussian": poisson_gaussian,
    "correlated": correlated_noise,
    "scanline": scanline_noise,
    "stain": stain_noise,
    "film": film_noise,
    "charging": charging_noise,
    "lowdose_ct": lowdose_ct,
}


def _model_parameters(model: NoiseModel) -> list[inspect.Parameter]:
    """A model's tunable parameters: everything after ``clean`` and ``rng``."""
    return [p for p in inspect.signature(model).parameters.values() if p.name not in ("clean", "rng")]


def noise_model(name: str, params: dict[str, float]) -> NoiseModel:
    """The model called ``name``, after checking that it accepts every key of ``params``.

    Raises:
        IsclError: unknown model or parameter (the message lists what exists).
    """
    if name not in NOISE_MODELS:
        raise IsclError(f"unknown noise model {name!r}; choose one of {', '.join(NOISE_MODELS)}")
    model = NOISE_MODELS[name]
    accepted = [p.name for p in _model_parameters(model)]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise IsclError(
            f"noise model {name!r} has no parameter {', '.join(unknown)}; it takes {', '.join(accepted)}"
        )
    return model


def _parameter_help(model: NoiseModel) -> dict[str, str]:
    """Each parameter's description from the ``Args:`` section of the model's docstring, on one line."""
    args_section = (inspect.getdoc(model) or "").partition("Args:")[2]
    # An argument starts on a line indented by 4 as "name: text"; deeper lines continue it.
    entries = re.findall(r"^    (\w+): (.*(?:\n {8}.*)*)", args_section, flags=re.MULTILINE)
    return {name: " ".join(text.split()) for name, text in entries}


def describe_noise_models() -> str:
    """What ``iscl simulate --list`` prints: each model, its purpose, and its parameters with defaults."""
    lines = []
    for name, model in NOISE_MODELS.items():
        lines.append(f"{name}: {inspect.getdoc(model).splitlines()[0]}")
        descriptions = _parameter_help(model)
        for parameter in _model_parameters(model):
            lines.append(
                f"    {parameter.name}={parameter.default:g}  {descriptions.get(parameter.name, '')}".rstrip()
            )
    return "\n".join(lines)


def _write_tiff_atomically(
    path: Path, slices: Iterable[np.ndarray], shape: tuple[int, ...], dtype: np.dtype, axes: str,
    replace: bool = True,
) -> None:
    """Write 2D ``slices`` (already of ``dtype``) as one TIFF series of ``shape``, atomically
    (``iscl_cli.io.atomic``: an existing ``path`` is replaced only when ``replace``)."""
    with atomic_path(path, replace=replace) as temporary:
        # Classic TIFF addresses at most 4 GiB; leave room for the page headers.
        needs_bigtiff = int(np.prod(shape)) * np.dtype(dtype).itemsize > 2**32 - 2**25
        tifffile.imwrite(temporary, data=iter(slices), shape=shape, dtype=dtype, bigtiff=needs_bigtiff,
                         photometric="minisblack", metadata={"axes": axes})


def _to_dtype(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``image`` in ``dtype``: integers rounded and clipped to the dtype's range, floats as they are."""
    return round_and_clip(image, dtype, *integer_range(dtype))


def simulate_stack(input_path: Path, output_path: Path, noise: str, seed: int, overwrite: bool = False,
                   **params: float) -> None:
    """Write a noisy copy of a clean TIFF stack, slice by slice (what ``iscl simulate`` runs).

    Every 2D plane of the first series gets the noise model ``noise`` with ``params``;
    plane ``i`` draws its noise from ``numpy.random.default_rng([seed, i])``, so a
    given seed always gives the same output. Parameters are in the stored values' units
    (grey values or counts; HU for ``lowdose_ct``): for a 16-bit stack, give sigmas in
    counts. The output keeps the input's dtype and shape: integer data are rounded and
    clipped to the dtype's range (so 16-bit stays 16-bit and counts stay realistic);
    float data are written as float32. Resolution and ImageJ/OME metadata are not
    copied. The output is written atomically, and replaces an existing file only with
    ``overwrite``.

    Raises:
        IsclError: unknown model or parameter, unreadable or RGB input, output equal to input,
            output exists without ``overwrite``.
    """
    model = noise_model(noise, params)
    input_path, output_path = Path(input_path), Path(output_path)
    if output_path.resolve() == input_path.resolve():
        raise IsclError("output would overwrite the input; choose another output path", output_path)
    if output_path.exists() and not overwrite:
        raise IsclError("exists; pass --overwrite to replace it", output_path)
    try:
        with tifffile.TiffFile(input_path) as tiff:
            series = tiff.series[0]
            if series.axes.endswith("S"):
                raise IsclError(f"colour (RGB) images are not supported (axes {series.axes})", input_path)
            n_planes = int(np.prod(series.shape[:-2], dtype=int))
            dtype = np.dtype(np.float32) if np.issubdtype(series.dtype, np.floating) else series.dtype
            noisy_planes = (
                _to_dtype(
                    model(
                        tiff.asarray(key=i, series=0).astype(np.float32),
                        np.random.default_rng([seed, i]),
                        **params,
                    ),
                    dtype,
                )
                for i in range(n_planes)
            )
            _write_tiff_atomically(output_path, noisy_planes, series.shape, dtype, series.axes, replace=overwrite)
    except FileNotFoundError:
        raise IsclError("no such file", input_path) from None
    except tifffile.TiffFileError as error:
        raise IsclError(f"not a readable TIFF file ({error})", input_path) from None


# Stored form of the phantoms in make_unpaired_set: EM and fluorescence as 16-bit
# detector counts (an offset keeps noise below the baseline from clipping at 0),
# CT as 16-bit signed HU clipped to the usual 12-bit scanner range.
COUNTS_OFFSET = 4000.0
COUNTS_PER_UNIT = 20000.0
CT_STORED_RANGE_HU = (-1024.0, 3071.0)
# Intensity-domain noise models expect [0, 1] images; on CT they act on this HU window mapped to [0, 1].
CT_UNIT_WINDOW_HU = (-1000.0, 1000.0)


def store_phantom(image: np.ndarray, phantom: str) -> np.ndarray:
    """A phantom-unit image in its stored dtype: uint16 counts, or int16 HU for CT."""
    if phantom == "ct":
        return np.clip(np.rint(image), *CT_STORED_RANGE_HU).astype(np.int16)
    return _to_dtype(COUNTS_OFFSET + COUNTS_PER_UNIT * image, np.dtype(np.uint16))


def unstore_phantom(stored: np.ndarray, phantom: str) -> np.ndarray:
    """The inverse of ``store_phantom`` (up to its rounding): phantom units, float32."""
    if phantom == "ct":
        return stored.astype(np.float32)
    return ((stored.astype(np.float32) - COUNTS_OFFSET) / COUNTS_PER_UNIT).astype(np.float32)


def add_phantom_noise(
    clean: np.ndarray, phantom: str, noise: str, rng: np.random.Generator, params: dict[str, float]
) -> np.ndarray:
    """Apply a noise model to a phantom in the units that model expects; result in phantom units."""
    model = noise_model(noise, params)
    if noise == "lowdose_ct":
        if phantom != "ct":
            raise IsclError(f"noise model 'lowdose_ct' needs the 'ct' phantom (in HU), not {phantom!r}")
        return model(clean, rng, **params)
    if phantom != "ct":
        return model(clean, rng, **params)
    low, high = CT_UNIT_WINDOW_HU
    return low + (high - low) * model((clean - low) / (high - low), rng, **params)


# Independent random streams of make_unpaired_set, one per role and image.
_NOISY_SOURCE, _NOISY_NOISE, _CLEAN_SOURCE, _TEST_SOURCE, _TEST_NOISE = range(5)


def make_unpaired_set(
    root: Path,
    phantom: str,
    noise: str,
    n_train: int,
    n_test: int,
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
    file_format: str = "tiff",
    **noise_params: float,
) -> dict[str, Path]:
    """Write a synthetic unpaired training set and a paired test stack under ``root``.

    - ``root/noisy``: ``n_train`` phantoms with noise;
    - ``root/clean``: ``n_train`` other phantoms (drawn from separate random streams, so no
      clean image is the source of any noisy one), clean;
    - ``root/test_noisy`` and ``root/test_clean``: ``n_test`` further phantoms, clean and
      with noise (pixel-aligned pairs, for PSNR/SSIM).

    With ``file_format="tiff"`` the training folders hold one 2D TIFF per image
    (``noisy_000.tif`` ...) and the test sets are stacks ``test_noisy.tif``/``test_clean.tif``,
    stored as realistic 16-bit data: EM and fluorescence as uint16 counts
    (``COUNTS_OFFSET + COUNTS_PER_UNIT * intensity``), CT as int16 HU. With
    ``file_format="dicom"`` (CT only) each of the four is a CT series folder of 12-bit
    files in HU (``iscl_cli.ct_series``). Noise is added before storing, in [0, 1]
    intensity units (on CT: the ``CT_UNIT_WINDOW_HU`` window mapped to [0, 1]) or in HU
    for ``lowdose_ct``, so ``noise_params`` take the documented defaults' units. Earlier
    images in those folders are removed first, so a smaller rerun leaves no stale images.

    Returns:
        ``{"noisy": folder, "clean": folder, "test_noisy": path, "test_clean": path}``.

    Raises:
        IsclError: unknown phantom, model, parameter or format; ``lowdose_ct`` with a
            non-CT phantom; DICOM for a phantom that is not CT.
    """
    if phantom not in PHANTOMS:
        raise IsclError(f"unknown phantom {phantom!r}; choose one of {', '.join(PHANTOMS)}")
    if file_format not in ("tiff", "dicom"):
        raise IsclError(f"unknown file format {file_format!r}; choose tiff or dicom")
    if file_format == "dicom" and phantom != "ct":
        raise IsclError(f"DICOM series are written for the 'ct' phantom only, not {phantom!r}")
    noise_model(noise, noise_params)
    make_phantom = PHANTOMS[phantom]

    def stream(role: int, index: int) -> np.random.Generator:
        """The random stream of one image in one role."""
        return np.random.default_rng([seed, role, index])

    noisy_sources = [make_phantom(shape, stream(_NOISY_SOURCE, index)) for index in range(n_train)]
    test_clean = [make_phantom(shape, stream(_TEST_SOURCE, index)) for index in range(n_test)]
    images = {
        "noisy": [add_phantom_noise(image, phantom, noise, stream(_NOISY_NOISE, index), noise_params)
                  for index, image in enumerate(noisy_sources)],
        "clean": [make_phantom(shape, stream(_CLEAN_SOURCE, index)) for index in range(n_train)],
        "test_noisy": [add_phantom_noise(image, phantom, noise, stream(_TEST_NOISE, index), noise_params)
                       for index, image in enumerate(test_clean)],
        "test_clean": test_clean,
    }
    root = Path(root)
    if file_format == "dicom":
        pixel_mm = LOWDOSE_FIELD_OF_VIEW_MM / max(shape)
        paths = {kind: root / kind for kind in images}
        for kind, slices in images.items():
            for stale in paths[kind].glob("slice_*.dcm"):
                stale.unlink()
            write_ct_series(paths[kind], slices, pixel_mm, description=f"phantom {kind.replace('_', ' ')}")
        return paths
    paths = {"noisy": root / "noisy", "clean": root / "clean",
             "test_noisy": root / "test_noisy.tif", "test_clean": root / "test_clean.tif"}
    dtype = np.dtype(np.int16 if phantom == "ct" else np.uint16)
    for kind in ("noisy", "clean"):
        for stale in paths[kind].glob(f"{kind}_*.tif"):
            stale.unlink()
        for index, image in enumerate(images[kind]):
            _write_tiff_atomically(paths[kind] / f"{kind}_{index:03d}.tif", [store_phantom(image, phantom)],
                                   shape, dtype, "YX")
    for kind in ("test_noisy", "test_clean"):
        _write_tiff_atomically(paths[kind], [store_phantom(image, phantom) for image in images[kind]],
                               (n_test, *shape), dtype, "ZYX")
    return paths
