"""Synthetic clean images of the kind iscl's users acquire.

Each generator takes a ``(rows, cols)`` shape and a ``numpy.random.Generator`` and
returns a float32 image; the same generator state gives the same image. Sizes of
structures scale with the image, so a 64x64 test image and a 512x512 demo image show
the same anatomy, only sampled more finely.

- ``em_phantom``: electron micrograph of tissue, values in [0, 1]: light cytoplasm,
  thin dark curvy cell membranes, vesicles and mitochondria, mild texture.
- ``fluorescence_phantom``: fluorescence micrograph, values in [0, 1]: bright thin
  filaments and spots blurred by the point-spread function on a dark background.
- ``ct_phantom``: axial CT slice through a thorax in Hounsfield units: air outside,
  fat and muscle, lungs with vessels, heart, spine and ribs.

``gaussian_random_field`` (smooth random noise with a given correlation length) is
shared with the noise models in ``iscl_cli.simulate``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import fft, ndimage
from scipy.spatial import cKDTree

Shape = tuple[int, int]


def gaussian_random_field(shape: Shape, rng: np.random.Generator, correlation_length: float) -> np.ndarray:
    """Stationary Gaussian noise with zero mean, unit variance and a Gaussian autocorrelation.

    Args:
        shape: ``(rows, cols)`` of the field.
        rng: source of randomness.
        correlation_length: in pixels; the correlation between two pixels ``d`` pixels
            apart is ``exp(-d**2 / (2 * correlation_length**2))``. 0 gives white noise.

    Returns:
        float64 field of ``shape``.
    """
    # White noise filtered by a Gaussian of std L/sqrt(2) has a Gaussian autocorrelation of std L.
    filter_sigma = correlation_length / np.sqrt(2.0)
    margin = int(np.ceil(4.0 * filter_sigma))
    # The FFT filter is periodic; a margin as wide as the kernel keeps opposite edges independent.
    padded = tuple(fft.next_fast_len(size + margin, real=True) for size in shape)
    white = rng.standard_normal(padded)
    squared_frequency = fft.fftfreq(padded[0])[:, None] ** 2 + fft.fftfreq(padded[1])[None, :] ** 2
    transfer = np.exp(-2.0 * np.pi**2 * filter_sigma**2 * squared_frequency)
    # rfft2 keeps the first half of the last axis; the filter is even, so its half is the same.
    half_transfer = transfer[:, : padded[1] // 2 + 1]
    filtered = fft.irfft2(fft.rfft2(white) * half_transfer, s=padded)
    # Parseval: the filtered variance is the mean squared transfer over the full spectrum.
    filtered /= np.sqrt(np.mean(transfer**2))
    return filtered[: shape[0], : shape[1]]


Window = tuple[slice, slice]


def _grid(window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Row and column image coordinates of every pixel in ``window``, as two float64 arrays."""
    rows, cols = np.meshgrid(
        np.arange(window[0].start, window[0].stop, dtype=float),
        np.arange(window[1].start, window[1].stop, dtype=float),
        indexing="ij",
    )
    return rows, cols


def _whole(shape: Shape) -> Window:
    """The window that covers a whole image of ``shape``."""
    return (slice(0, shape[0]), slice(0, shape[1]))


def _local_window(shape: Shape, centre: tuple[float, float], reach: float) -> Window:
    """The part of an image within ``reach`` pixels of ``centre`` (clipped to the image)."""
    return tuple(
        slice(max(0, int(np.floor(c - reach))), min(size, int(np.ceil(c + reach)) + 1))
        for c, size in zip(centre, shape, strict=True)
    )


def _ellipse_radius(
    rows: np.ndarray,
    cols: np.ndarray,
    centre: tuple[float, float],
    semi_axes: tuple[float, float],
    angle: float,
) -> np.ndarray:
    """Normalised elliptical radius: < 1 inside the ellipse, 1 on its outline.

    ``semi_axes`` is (along the rotated row axis, along the rotated column axis), ``angle`` in radians.
    """
    d_rows, d_cols = rows - centre[0], cols - centre[1]
    cos, sin = np.cos(angle), np.sin(angle)
    along_rows = cos * d_rows + sin * d_cols
    along_cols = -sin * d_rows + cos * d_cols
    return np.sqrt((along_rows / semi_axes[0]) ** 2 + (along_cols / semi_axes[1]) ** 2)


def _soft_inside(radius: np.ndarray, smallest_semi_axis: float) -> np.ndarray:
    """Anti-aliased inside mask (1 inside, 0 outside, a one-pixel ramp at the outline)."""
    return np.clip(0.5 - (radius - 1.0) * smallest_semi_axis, 0.0, 1.0)


def _paint_ellipse(
    image: np.ndarray,
    centre: tuple[float, float],
    semi_axes: tuple[float, float],
    angle: float,
    value: float | np.ndarray,
) -> None:
    """Fill an ellipse in ``image`` (in place) with ``value``, anti-aliased at its outline.

    ``value`` is a number or an array of ``image.shape`` (a textured fill).
    """
    window = _local_window(image.shape, centre, max(semi_axes) + 2.0)
    rows, cols = _grid(window)
    inside = _soft_inside(_ellipse_radius(rows, cols, centre, semi_axes, angle), min(semi_axes))
    local_value = value[window] if isinstance(value, np.ndarray) else value
    image[window] += inside * (local_value - image[window])


def _paint_organelle(
    image: np.ndarray,
    centre: tuple[float, float],
    semi_axes: tuple[float, float],
    angle: float,
    fill: float,
    rim: float,
    rim_width: float,
    cristae_period: float | None = None,
) -> None:
    """Draw one membrane-bound organelle (in place): a filled ellipse with a dark rim.

    ``cristae_period`` (pixels) adds dark stripes across the short axis, as in mitochondria.
    """
    window = _local_window(image.shape, centre, max(semi_axes) + 3.0 * rim_width + 2.0)
    rows, cols = _grid(window)
    radius = _ellipse_radius(rows, cols, centre, semi_axes, angle)
    patch = image[window]
    fill_value = np.full(patch.shape, fill)
    if cristae_period is not None:
        along_long_axis = np.cos(angle) * (rows - centre[0]) + np.sin(angle) * (cols - centre[1])
        stripes = 0.5 + 0.5 * np.cos(2.0 * np.pi * along_long_axis / cristae_period)
        fill_value -= 0.15 * stripes**4
    patch += _soft_inside(radius, min(semi_axes)) * (fill_value - patch)
    distance_to_outline = (radius - 1.0) * min(semi_axes)
    patch += np.exp(-((distance_to_outline / rim_width) ** 2)) * (rim - patch)


def em_phantom(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """Electron micrograph of tissue, in [0, 1] (dark = electron-dense, as in TEM/SEM of stained tissue).

    Cells tile the plane like a Voronoi tessellation whose boundaries are bent by a
    smooth random warp; each boundary is a thin dark membrane (1-2.5 px) whose width
    varies along it. Cytoplasm is light grey, a little different in every cell, with a
    faint texture. Vesicles (small round organelles with a dark rim) and mitochondria
    (dark elongated organelles with cristae stripes) sit inside the cells.
    Cells are about 1/6 of the image side across (at least 12 px).
    """
    rows, cols = _grid(_whole(shape))
    side = float(min(shape))
    cell_diameter = max(12.0, side / 6.0)
    n_cells = max(4, int(round(shape[0] * shape[1] / cell_diameter**2)))
    seeds = rng.uniform((0.0, 0.0), shape, size=(n_cells, 2))

    # Bend the straight Voronoi edges into curvy membranes by warping the coordinates.
    warp_amplitude = 0.12 * cell_diameter
    warp_length = 0.4 * cell_diameter
    warped = np.stack(
        [
            rows + warp_amplitude * gaussian_random_field(shape, rng, warp_length),
            cols + warp_amplitude * gaussian_random_field(shape, rng, warp_length),
        ],
        axis=-1,
    )
    distances, nearest = cKDTree(seeds).query(warped.reshape(-1, 2), k=2)
    cell_index = nearest[:, 0].reshape(shape)
    # d2 - d1 is zero on a boundary; dividing by its gradient turns it into a distance in
    # pixels, so membranes stay thin where the warp squeezes or stretches the plane.
    boundary_level = (distances[:, 1] - distances[:, 0]).reshape(shape)
    gradient = np.hypot(*np.gradient(boundary_level))
    distance_to_boundary = boundary_level / np.maximum(gradient, 0.2)

    cytoplasm_levels = rng.uniform(0.62, 0.82, size=n_cells)
    image = cytoplasm_levels[cell_index] + 0.03 * gaussian_random_field(shape, rng, 2.0)

    membrane_half_width = 0.8 + 0.5 * (1.0 + np.tanh(gaussian_random_field(shape, rng, cell_diameter / 2.0)))
    membrane = np.exp(-((distance_to_boundary / membrane_half_width) ** 2))
    membrane_level = 0.18
    image += membrane * (membrane_level - image)

    _add_organelles(image, distance_to_boundary, cell_diameter, rng)
    # The microscope's point-spread function softens every edge a little.
    image = ndimage.gaussian_filter(image, 0.6)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def _add_organelles(
    image: np.ndarray, distance_to_boundary: np.ndarray, cell_diameter: float, rng: np.random.Generator
) -> None:
    """Scatter vesicles and mitochondria over ``image`` (in place), keeping them off the membranes."""
    area = image.shape[0] * image.shape[1]
    n_vesicles = rng.poisson(area / (0.6 * cell_diameter) ** 2)
    n_mitochondria = rng.poisson(area / cell_diameter**2)
    scale = cell_diameter / 40.0
    for index in range(n_vesicles + n_mitochondria):
        is_vesicle = index < n_vesicles
        if is_vesicle:
            radius = rng.uniform(2.5, 5.0) * scale
            semi_axes = (radius, radius * rng.uniform(0.85, 1.0))
        else:
            semi_axes = (rng.uniform(6.0, 11.0) * scale, rng.uniform(3.0, 4.5) * scale)
        centre = tuple(rng.uniform((0.0, 0.0), image.shape))
        clearance = distance_to_boundary[int(centre[0]), int(centre[1])]
        if clearance < max(semi_axes) + 1.5:
            continue
        angle = rng.uniform(0.0, np.pi)
        if is_vesicle:
            _paint_organelle(
                image, centre, semi_axes, angle, fill=rng.uniform(0.75, 0.9), rim=0.25, rim_width=0.9
            )
        else:
            _paint_organelle(
                image,
                centre,
                semi_axes,
                angle,
                fill=rng.uniform(0.38, 0.5),
                rim=0.2,
                rim_width=1.0,
                cristae_period=max(2.5, 3.5 * scale),
            )


FLUORESCENCE_PSF_SIGMA = 1.2  # pixels: a diffraction-limited spot sampled at Nyquist


def fluorescence_phantom(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """Fluorescence micrograph, in [0, 1]: sparse bright structures on a dark background.

    Filaments (cytoskeleton-like smooth random curves of varying brightness), spots of
    several sizes (vesicles, puncta) and a few dim diffuse cell bodies, all blurred by a
    Gaussian point-spread function of ``FLUORESCENCE_PSF_SIGMA`` px standard deviation. Background about 0.02.
    """
    psf_sigma = FLUORESCENCE_PSF_SIGMA
    side = float(min(shape))
    line_density = np.zeros(shape)
    n_filaments = max(2, rng.poisson(8.0 * shape[0] * shape[1] / side**2))
    for _ in range(n_filaments):
        _draw_filament(
            line_density, rng, length=rng.uniform(0.3, 1.2) * side, brightness=rng.uniform(0.25, 0.9)
        )
    image = ndimage.gaussian_filter(line_density, psf_sigma)
    # Spots of three sizes: diffraction-limited puncta and larger vesicles.
    for spot_sigma in (psf_sigma, np.hypot(psf_sigma, 1.5), np.hypot(psf_sigma, 3.0)):
        n_spots = rng.poisson(shape[0] * shape[1] / 4000.0)
        spot_density = np.zeros(shape)
        # A Gaussian spot of peak b holds b * 2 pi sigma^2 in total.
        spot_weights = rng.uniform(0.2, 1.0, n_spots) * 2.0 * np.pi * spot_sigma**2
        _deposit(
            spot_density,
            rng.uniform(0.0, shape[0], n_spots),
            rng.uniform(0.0, shape[1], n_spots),
            spot_weights,
        )
        image += ndimage.gaussian_filter(spot_density, spot_sigma)

    rows, cols = _grid(_whole(shape))
    for _ in range(rng.integers(1, 4)):
        centre = (rng.uniform(0.0, shape[0]), rng.uniform(0.0, shape[1]))
        semi_axes = (rng.uniform(0.12, 0.3) * side, rng.uniform(0.12, 0.3) * side)
        radius = _ellipse_radius(rows, cols, centre, semi_axes, rng.uniform(0.0, np.pi))
        image += rng.uniform(0.04, 0.1) * np.exp(-(radius**4))
    image += 0.02
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def _deposit(density: np.ndarray, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray) -> None:
    """Add point weights at sub-pixel positions into ``density`` (in place), bilinearly."""
    top, left = np.floor(rows).astype(int), np.floor(cols).astype(int)
    fraction_rows, fraction_cols = rows - top, cols - left
    for d_row, d_col, share in (
        (0, 0, (1 - fraction_rows) * (1 - fraction_cols)),
        (0, 1, (1 - fraction_rows) * fraction_cols),
        (1, 0, fraction_rows * (1 - fraction_cols)),
        (1, 1, fraction_rows * fraction_cols),
    ):
        target_rows, target_cols = top + d_row, left + d_col
        valid = (
            (target_rows >= 0)
            & (target_rows < density.shape[0])
            & (target_cols >= 0)
            & (target_cols < density.shape[1])
        )
        np.add.at(density, (target_rows[valid], target_cols[valid]), (weights * share)[valid])


def _draw_filament(density: np.ndarray, rng: np.random.Generator, length: float, brightness: float) -> None:
    """Add one smooth random curve to a line-density image (in place).

    The curve is a persistent random walk (its heading drifts slowly), sampled every
    half pixel. After blurring with a PSF of std s the line peaks at about
    ``brightness``, so each sample deposits ``brightness * step * sqrt(2 pi) * s``
    (s = ``FLUORESCENCE_PSF_SIGMA``).
    """
    step = 0.5
    n_steps = int(length / step)
    heading = rng.uniform(0.0, 2.0 * np.pi) + np.cumsum(rng.normal(0.0, 0.04, n_steps))
    start = rng.uniform((0.0, 0.0), density.shape)
    rows = start[0] + step * np.cumsum(np.sin(heading))
    cols = start[1] + step * np.cumsum(np.cos(heading))
    weights = np.full(n_steps, brightness * step * np.sqrt(2.0 * np.pi) * FLUORESCENCE_PSF_SIGMA)
    _deposit(density, rows, cols, weights)


AIR_HU = -1000.0
LUNG_HU_RANGE = (-950.0, -700.0)


def ct_phantom(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """Axial CT slice through a thorax, in Hounsfield units (float32).

    Air (-1000 HU) outside the body; the body is an ellipse inside the scanner's
    circular field of view (the inscribed circle of the image) with a fat layer
    (about -100 HU) around muscle and soft tissue (40-60 HU, faint organ texture);
    two lungs (about -850 HU) with vessels (0-40 HU); the heart (about 40 HU) with the
    aorta; a vertebra (cortical bone 900-1200 HU around cancellous bone about 300 HU)
    and ribs (700-1200 HU) near the body outline. Slightly blurred like a reconstructed
    slice (partial-volume edges).
    """
    radius = min(shape) / 2.0
    centre = (
        shape[0] / 2.0 + rng.normal(0.0, 0.02) * radius,
        shape[1] / 2.0 + rng.normal(0.0, 0.02) * radius,
    )
    body_axes = (radius * rng.uniform(0.6, 0.7), radius * rng.uniform(0.8, 0.88))
    body_angle = rng.normal(0.0, 0.03)

    def at(offset_rows: float, offset_cols: float) -> tuple[float, float]:
        """A point given as fractions of the body's semi-axes from its centre."""
        return (centre[0] + offset_rows * body_axes[0], centre[1] + offset_cols * body_axes[1])

    def scaled(fraction_rows: float, fraction_cols: float) -> tuple[float, float]:
        """Semi-axes given as fractions of the body's semi-axes, jittered by +-8 %."""
        jitter = rng.uniform(0.92, 1.08, 2)
        return (fraction_rows * body_axes[0] * jitter[0], fraction_cols * body_axes[1] * jitter[1])

    image = np.full(shape, AIR_HU)
    organ_texture = 8.0 * gaussian_random_field(shape, rng, 0.02 * radius + 1.0)
    _paint_ellipse(image, centre, body_axes, body_angle, rng.uniform(-110.0, -90.0))
    fat_thickness = rng.uniform(0.07, 0.12)
    muscle_axes = (body_axes[0] * (1.0 - fat_thickness), body_axes[1] * (1.0 - fat_thickness))
    _paint_ellipse(image, centre, muscle_axes, body_angle, rng.uniform(45.0, 60.0) + organ_texture)

    lung_tissue = rng.uniform(-870.0, -830.0) + 15.0 * gaussian_random_field(shape, rng, 0.03 * radius + 1.0)
    for side in (-1.0, 1.0):
        _paint_ellipse(
            image, at(-0.12, side * 0.42), scaled(0.62, 0.34), side * rng.uniform(0.0, 0.2), lung_tissue
        )
    _add_lung_vessels(image, rng, radius)

    heart_centre = at(0.05, rng.uniform(-0.05, 0.1))
    _paint_ellipse(
        image,
        heart_centre,
        scaled(0.38, 0.25),
        rng.uniform(-0.5, 0.5),
        rng.uniform(35.0, 45.0) + organ_texture,
    )
    aorta_centre = at(-0.25, -0.12)
    _paint_ellipse(image, aorta_centre, scaled(0.1, 0.08), 0.0, rng.uniform(35.0, 50.0))

    _paint_vertebra(image, at(0.6, 0.0), body_axes, rng)
    for side in (-1.0, 1.0):
        for angle in rng.uniform(0.3, 2.7, rng.integers(3, 6)):
            rib_centre = at(-0.84 * np.cos(angle), side * 0.84 * np.sin(angle))
            _paint_ellipse(image, rib_centre, scaled(0.035, 0.02), angle * side, rng.uniform(700.0, 1200.0))
    image = ndimage.gaussian_filter(image, 0.6)
    return image.astype(np.float32)


def _add_lung_vessels(image: np.ndarray, rng: np.random.Generator, radius: float) -> None:
    """Draw small round vessels (0-40 HU) inside lung tissue (in place)."""
    n_vessels = rng.poisson(40)
    for _ in range(n_vessels):
        centre = (rng.uniform(0.0, image.shape[0]), rng.uniform(0.0, image.shape[1]))
        if not LUNG_HU_RANGE[0] < image[int(centre[0]), int(centre[1])] < LUNG_HU_RANGE[1]:
            continue
        vessel_radius = rng.uniform(0.008, 0.03) * radius + 0.5
        _paint_ellipse(image, centre, (vessel_radius, vessel_radius), 0.0, rng.uniform(0.0, 40.0))


def _paint_vertebra(
    image: np.ndarray, centre: tuple[float, float], body_axes: tuple[float, float], rng: np.random.Generator
) -> None:
    """A vertebral body: a cortical-bone shell around cancellous bone, and the spinous process behind it."""
    outer = (0.17 * body_axes[0], 0.13 * body_axes[1])
    shell = rng.uniform(0.2, 0.3)
    _paint_ellipse(image, centre, outer, 0.0, rng.uniform(900.0, 1200.0))
    _paint_ellipse(
        image, centre, (outer[0] * (1 - shell), outer[1] * (1 - shell)), 0.0, rng.uniform(250.0, 350.0)
    )
    process_centre = (centre[0] + 1.35 * outer[0], centre[1])
    _paint_ellipse(image, process_centre, (0.4 * outer[0], 0.2 * outer[1]), 0.0, rng.uniform(700.0, 1000.0))


PHANTOMS: dict[str, Callable[[Shape, np.random.Generator], np.ndarray]] = {
    "em": em_phantom,
    "fluorescence": fluorescence_phantom,
    "ct": ct_phantom,
}
