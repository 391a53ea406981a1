"""Mapping between physical units (HU, counts, grey values) and the networks' [-1, 1].

The mapping is fitted once on the training data and stored in the model file, so that
`iscl denoise` maps exactly as `iscl train` did and maps results back to physical units.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from numbers import Real
from typing import Any

import numpy as np

from iscl_cli.errors import IsclError
from iscl_cli.noise_variance import NoiseVarianceFit, anscombe, fit_noise_variance, inverse_anscombe
from iscl_cli.volume import Volume

LOG = logging.getLogger("iscl")

DEFAULT_PERCENTILES = (0.01, 99.99)
FOCUS_SHARE = 0.6
"""With ``--focus LO,HI`` this share of the networks' range [-1, 1] goes to [LO, HI]; the
fitted range outside it keeps the rest, compressed (see ``IntensityMapping``)."""
STABILIZE_CHOICES = ("auto", "on", "off")
VARIANCE_FIT_SLICES = 16  # noisy slices the noise variance model is fitted on
DISTINCT_SPAN_RATIO = 4.0
"""Domains whose fitted spans differ more than this many times, or overlap by less than
half the smaller span, get a note suggesting ``--per-domain``."""


@dataclass(frozen=True)
class IntensityMapping:
    """Maps ``[low, high] -> [-1, 1]`` for the noisy and the clean domain.

    With a shared mapping (the default) both ranges are equal. A per-domain mapping lets
    domains of different contrast (e.g. SEM noisy vs TEM clean) each fill [-1, 1]; then the
    denoised output is mapped back with the clean range.

    The maps are linear unless a focus range ``[focus_low, focus_high]`` inside a shared
    range is set: then they are piecewise linear, ``FOCUS_SHARE`` of [-1, 1] spent on the
    focus and the rest on the two outer parts in proportion to their widths. Noise that is
    a few per cent of a wide range (CT in HU, from air to bone) is then several times larger
    where the tissue of interest lies, while air and bone are still represented.

    With a noise variance model ``variance_slope * I + variance_intercept`` (shot noise, see
    ``iscl_cli.noise_variance``) the maps pass through its variance-stabilising transform:
    ``[low, high]`` stay in physical units, and the transformed range
    ``[anscombe(low), anscombe(high)]`` is what goes to [-1, 1].
    """

    noisy_low: float
    noisy_high: float
    clean_low: float
    clean_high: float
    source: str  # how it was fitted: "percentiles 0.1-99.9, shared", "window -160,240", ...
    focus_low: float | None = None
    focus_high: float | None = None
    variance_slope: float | None = None
    variance_intercept: float | None = None

    def __post_init__(self) -> None:
        for domain in ("noisy", "clean"):
            low, high = self._range(domain)
            numbers = all(isinstance(value, Real) and not isinstance(value, bool) for value in (low, high))
            if not (numbers and math.isfinite(low) and math.isfinite(high) and high > low):
                raise ValueError(f"the {domain} intensity range [{low}, {high}] is not two finite numbers, low < high")
        if (self.focus_low is None) != (self.focus_high is None):
            raise ValueError("a focus range needs both focus_low and focus_high")
        if self.focus_low is not None:
            if not self.shared:
                raise ValueError("a focus range needs a shared intensity range (not --per-domain)")
            if not self.noisy_low <= self.focus_low < self.focus_high <= self.noisy_high:
                raise ValueError(f"the focus range [{self.focus_low:g}, {self.focus_high:g}] must lie inside the "
                                 f"intensity range [{self.noisy_low:g}, {self.noisy_high:g}]")
        if (self.variance_slope is None) != (self.variance_intercept is None):
            raise ValueError("a noise variance model needs both variance_slope and variance_intercept")
        if self.variance_slope is not None:
            if self.focus_low is not None:
                raise ValueError("a focus range and variance stabilisation do not combine")
            if not (math.isfinite(self.variance_slope) and self.variance_slope > 0
                    and math.isfinite(self.variance_intercept)):
                raise ValueError(f"the noise variance model needs a finite slope > 0 (got {self.variance_slope})")
            for domain in ("noisy", "clean"):
                low, high = self._stabilized_range(domain)
                if not high > low:
                    raise ValueError(f"the {domain} intensity range [{self._range(domain)[0]:g}, "
                                     f"{self._range(domain)[1]:g}] lies below the noise model's zero")

    @property
    def shared(self) -> bool:
        return (self.noisy_low, self.noisy_high) == (self.clean_low, self.clean_high)

    def to_model(self, image: np.ndarray, domain: str = "noisy") -> np.ndarray:
        """Physical units -> [-1, 1] (values outside the fitted range saturate)."""
        if self.focus_low is not None:
            physical, model = self.focus_knots()
            return np.interp(image, physical, model).astype(np.float32)
        low, high = self._stabilized_range(domain)
        scaled = (self._stabilized(image) - low) * np.float32(2.0 / (high - low)) - 1.0
        return np.clip(scaled, -1.0, 1.0, out=scaled)

    def to_physical(self, image: np.ndarray, domain: str = "clean") -> np.ndarray:
        """[-1, 1] -> physical units."""
        if self.focus_low is not None:
            physical, model = self.focus_knots()
            return np.interp(image, model, physical).astype(np.float32)
        low, high = self._stabilized_range(domain)
        linear = ((image.astype(np.float32) + 1.0) * np.float32((high - low) / 2.0) + low).astype(np.float32)
        if self.variance_slope is None:
            return linear
        return inverse_anscombe(linear, self.variance_slope, self.variance_intercept)

    def focus_knots(self) -> tuple[list[float], list[float]]:
        """The piecewise-linear map's corners: physical values and the model values they go to."""
        low, high, focus_low, focus_high = self.noisy_low, self.noisy_high, self.focus_low, self.focus_high
        outer = (focus_low - low) + (high - focus_high)
        below = 2.0 * (1.0 - FOCUS_SHARE) * (focus_low - low) / outer if outer > 0 else 0.0
        share = 2.0 * FOCUS_SHARE if outer > 0 else 2.0
        return [low, focus_low, focus_high, high], [-1.0, -1.0 + below, -1.0 + below + share, 1.0]

    def _stabilized(self, image: np.ndarray) -> np.ndarray:
        if self.variance_slope is None:
            return image.astype(np.float32)
        return anscombe(image, self.variance_slope, self.variance_intercept)

    def _stabilized_range(self, domain: str) -> tuple[float, float]:
        low, high = self._range(domain)
        if self.variance_slope is None:
            return low, high
        return tuple(float(v) for v in self._stabilized(np.array([low, high])))

    def _range(self, domain: str) -> tuple[float, float]:
        if domain == "noisy":
            return self.noisy_low, self.noisy_high
        if domain == "clean":
            return self.clean_low, self.clean_high
        raise ValueError(f"unknown domain {domain!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> IntensityMapping:
        return cls(**values)


def parse_window(text: str, option: str = "--window") -> tuple[float, float]:
    """``"-1000,2000"`` -> ``(-1000.0, 2000.0)``; raises IsclError naming ``option`` on anything else."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise IsclError(f"{option} must be two numbers LO,HI (got {text!r})") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise IsclError(f"{option} must be two finite numbers (got {text!r})")
    if not high > low:
        raise IsclError(f"{option} needs LO < HI (got {text!r})")
    return low, high


def random_slices(volumes: Sequence[Volume], rng: np.random.Generator, max_slices: int) -> Iterator[np.ndarray]:
    """Up to ``max_slices`` random slices of ``volumes`` (their finite pixels), in file order."""
    slots = [(v, i) for v in volumes for i in range(len(v))]
    picks = rng.choice(len(slots), size=min(max_slices, len(slots)), replace=False)
    for pick in sorted(picks):
        volume, index = slots[pick]
        yield volume.read_finite_slice(index)


def sample_pixels(volumes: Sequence[Volume], rng: np.random.Generator, max_slices: int = 64,
                  pixels_per_slice: int = 65536) -> np.ndarray:
    """A random subset of pixels from up to ``max_slices`` random slices of ``volumes``.

    Enough for robust percentiles without reading a whole (possibly huge) data set.
    """
    samples = []
    for image in random_slices(volumes, rng, max_slices):
        values = image.ravel()
        if values.size > pixels_per_slice:
            values = values[rng.choice(values.size, size=pixels_per_slice, replace=False)]
        samples.append(values)
    return np.concatenate(samples)


def robust_range(pixels: np.ndarray, percentiles: tuple[float, float], what: str) -> tuple[float, float]:
    """Percentile range of ``pixels``; refuses data with no usable contrast."""
    low, high = (float(v) for v in np.percentile(pixels, percentiles))
    if not high > low:
        raise IsclError(f"has no contrast: the {percentiles[0]}-{percentiles[1]} percentile range is "
                        f"a single value ({low:g}); is the image constant?", what)
    return low, high


def check_stabilize(stabilize: str) -> None:
    """Refuse a ``--stabilize`` value that is not one of ``STABILIZE_CHOICES``."""
    if stabilize not in STABILIZE_CHOICES:
        raise IsclError(f"--stabilize must be one of {', '.join(STABILIZE_CHOICES)} (got {stabilize!r})")


def fit_intensity(noisy: Sequence[Volume], clean: Sequence[Volume], seed: int = 0,
                  window: tuple[float, float] | None = None, per_domain: bool = False,
                  percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
                  focus: tuple[float, float] | None = None, stabilize: str = "off",
                  noise_fit: NoiseVarianceFit | None = None) -> IntensityMapping:
    """Fit the mapping on the training volumes.

    ``window`` fixes the range (e.g. CT in HU) for both domains. Otherwise robust
    percentiles: over both domains pooled (shared, the default, because the ensemble term
    ``x - H(x)`` is in the noisy domain's scale while ``F(x)`` is in the clean one's) or per
    domain. ``focus`` (shared ranges only) spends ``FOCUS_SHARE`` of the networks' range on
    that part of the range; it is cut to the fitted range. ``stabilize`` (one of
    ``STABILIZE_CHOICES``) passes the data through the variance-stabilising transform of
    the noise's fitted variance model: ``"on"`` always, ``"auto"`` where the noisy data look
    like pixel-independent shot noise and neither a window nor a focus is given.
    ``noise_fit`` is ``noise_variance_of(noisy, seed)`` where the caller already has it.
    """
    check_stabilize(stabilize)
    if stabilize == "on" and (window is not None or focus is not None):
        raise IsclError("--stabilize on does not combine with --window or --focus; leave one out")
    mapping = fitted_range(noisy, clean, seed, window, per_domain, percentiles)
    if focus is not None:
        return focused(mapping, focus, per_domain)
    if stabilize == "off" or (stabilize == "auto" and window is not None):
        return mapping
    return stabilized(mapping, noise_fit or noise_variance_of(noisy, seed), stabilize)


def noise_variance_of(noisy: Sequence[Volume], seed: int) -> NoiseVarianceFit:
    """The noise variance line fitted on ``VARIANCE_FIT_SLICES`` random slices of ``noisy``."""
    return fit_noise_variance(list(random_slices(noisy, np.random.default_rng(seed), VARIANCE_FIT_SLICES)))


def focused(mapping: IntensityMapping, focus: tuple[float, float], per_domain: bool) -> IntensityMapping:
    """``mapping`` with ``focus`` cut to its range (see ``fit_intensity``)."""
    if per_domain:
        raise IsclError("--focus needs one shared intensity range; leave out --per-domain")
    low, high = max(focus[0], mapping.noisy_low), min(focus[1], mapping.noisy_high)
    if not high > low:
        raise IsclError(f"--focus {focus[0]:g},{focus[1]:g} lies outside the data's intensity range "
                        f"[{mapping.noisy_low:g}, {mapping.noisy_high:g}]")
    return replace(mapping, focus_low=low, focus_high=high, source=f"{mapping.source}, focus {low:g},{high:g}")


def stabilized(mapping: IntensityMapping, fit: NoiseVarianceFit, stabilize: str) -> IntensityMapping:
    """``mapping`` through the variance-stabilising transform of ``fit`` where ``stabilize`` asks for it."""
    LOG.info("noisy training data: %s", fit.describe())
    if stabilize == "auto" and not fit.is_shot_noise():
        return mapping
    if not fit.slope > 0:
        raise IsclError(f"--stabilize on: the noise variance does not grow with the intensity ({fit.describe()}); "
                        "train with --stabilize off")
    # The line reaches zero variance above the darkest pixels (read noise has a floor); below
    # that the transform would flatten them all to one value, so its zero moves to the darkest.
    lowest = min(mapping.noisy_low, mapping.clean_low)
    intercept = max(fit.intercept, -fit.slope * lowest - 0.375 * fit.slope ** 2)
    try:
        return replace(mapping, variance_slope=fit.slope, variance_intercept=intercept,
                       source=f"{mapping.source}, variance-stabilised: {fit.describe()}")
    except ValueError as error:
        raise IsclError(f"--stabilize: {error}; train with --stabilize off") from None


def fitted_range(noisy: Sequence[Volume], clean: Sequence[Volume], seed: int, window: tuple[float, float] | None,
                 per_domain: bool, percentiles: tuple[float, float]) -> IntensityMapping:
    """The linear mapping: ``window`` if given, else percentiles (see ``fit_intensity``)."""
    if window is not None:
        low, high = window
        return IntensityMapping(low, high, low, high, f"window {low:g},{high:g}")
    rng = np.random.default_rng(seed)
    noisy_pixels = sample_pixels(noisy, rng)
    clean_pixels = sample_pixels(clean, rng)
    label = f"percentiles {percentiles[0]:g}-{percentiles[1]:g}"
    if per_domain:
        n_low, n_high = robust_range(noisy_pixels, percentiles, "noisy training data")
        c_low, c_high = robust_range(clean_pixels, percentiles, "clean training data")
        return IntensityMapping(n_low, n_high, c_low, c_high, f"{label}, per domain")
    low, high = robust_range(np.concatenate([noisy_pixels, clean_pixels]), percentiles, "training data")
    noisy_range, clean_range = (tuple(np.percentile(pixels, percentiles)) for pixels in (noisy_pixels, clean_pixels))
    if ranges_differ(noisy_range, clean_range):
        LOG.warning("the noisy data span [%g, %g] and the clean data [%g, %g]: one shared intensity range fits "
                    "neither (other bit depths, instruments or contrasts?); if the domains differ in scale, train "
                    "with --per-domain (docs/data.md)", *noisy_range, *clean_range)
    return IntensityMapping(low, high, low, high, f"{label}, shared")


def ranges_differ(first: tuple[float, float], second: tuple[float, float]) -> bool:
    """Whether two value ranges differ so much that one range cannot map both well."""
    spans = sorted((first[1] - first[0], second[1] - second[0]))
    overlap = min(first[1], second[1]) - max(first[0], second[0])
    return spans[1] > DISTINCT_SPAN_RATIO * spans[0] or overlap < 0.5 * spans[0]
