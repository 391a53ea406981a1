"""Paired validation during training: PSNR/SSIM of the current model on held-out slices."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from iscl_cli.inference import TileOptions, denoise_image
from iscl_cli.errors import IsclError
from iscl_cli.intensity import IntensityMapping
from iscl_cli.io import open_volumes
from iscl_cli.quality import psnr, ssim
from models.iscl import ISCL


class Validator:
    """Holds up to ``max_slices`` paired (noisy, clean) slices and scores a model on them.

    The scores are in physical units over the clean domain's fitted range, so they do not
    move when the model changes; ``noisy_psnr``/``noisy_ssim`` score the input for reference.
    """

    def __init__(self, noisy_specs: Sequence[str], clean_specs: Sequence[str], mapping: IntensityMapping,
                 max_slices: int = 8, tiles: TileOptions | None = None, channel: int | None = None) -> None:
        self.mapping = mapping
        # One pose per tile: validation tracks progress, and 8 poses would cost 8 times as much.
        self.tiles = tiles or TileOptions(symmetries=1)
        self.data_range = mapping.clean_high - mapping.clean_low
        noisy = [image for volume in open_volumes(noisy_specs, channel) for image in volume.slices()][:max_slices]
        clean = [image for volume in open_volumes(clean_specs, channel) for image in volume.slices()][:max_slices]
        if len(noisy) != len(clean) or any(a.shape != b.shape for a, b in zip(noisy, clean)):
            raise IsclError("--val-noisy and --val-clean must hold the same number of slices of the same sizes, "
                            "in the same order (they are pairs)")
        self.pairs = list(zip(noisy, clean))
        self.baseline = self._scores([n for n, _ in self.pairs], "noisy")

    def _scores(self, images: list[np.ndarray], prefix: str) -> dict[str, float]:
        psnrs = [psnr(c, i, self.data_range) for i, (_, c) in zip(images, self.pairs)]
        ssims = [ssim(c, i, self.data_range) for i, (_, c) in zip(images, self.pairs)]
        return {f"{prefix}_psnr": float(np.mean(psnrs)), f"{prefix}_ssim": float(np.mean(ssims))}

    def evaluate(self, model: ISCL) -> dict[str, float]:
        """Mean PSNR/SSIM of the model's output (and of the noisy input) over the pairs."""
        was_training = model.training
        model.eval()
        with torch.inference_mode():
            outputs = [denoise_image(noisy, model, self.mapping, self.tiles) for noisy, _ in self.pairs]
        model.train(was_training)
        return {**self._scores(outputs, "val"), **self.baseline}
