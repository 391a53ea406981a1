"""Image-quality measures used by validation, the demo and the quality benchmark."""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def psnr(reference: np.ndarray, image: np.ndarray, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB over ``data_range`` (the reference's intensity span)."""
    return float(peak_signal_noise_ratio(reference.astype(np.float64), image.astype(np.float64),
                                         data_range=data_range))


def ssim(reference: np.ndarray, image: np.ndarray, data_range: float) -> float:
    """Structural similarity (Wang et al. 2004, Gaussian-weighted 11x11 window) over ``data_range``."""
    return float(structural_similarity(reference.astype(np.float64), image.astype(np.float64),
                                       data_range=data_range, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))
