"""Denoising one slice: physical units in, tiled (and symmetry-averaged) ISCL inference, physical units out.

What ``iscl denoise``, validation during training and the benchmarks share; reading and
writing files is ``iscl_cli.denoise``'s business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from iscl_cli.devices import autocast_dtype
from iscl_cli.errors import IsclError
from iscl_cli.intensity import IntensityMapping
from iscl_cli.tiling import BLEND_MODES, overlap_pixels, sliding_window_inference
from models.iscl import ISCL
from models.networks import ResnetGenerator

Network = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TileOptions:
    """How slices are cut into tiles (see ``sliding_window_inference``), and ``symmetries``:
    how many of the square's 8 flips and rotations each tile is denoised in and averaged
    over (test-time augmentation; 1 = the tile as it is)."""

    tile_size: int = 512
    overlap: float | int = 64
    blend: str = "gaussian"
    batch_size: int = 4
    symmetries: int = 8

    def validated(self, alignment: int = 1) -> TileOptions:
        """Refuse options the tiler cannot use (one clear line each); ``alignment`` is ``tile_alignment(model)``."""
        if self.tile_size < 16:
            raise IsclError(f"--tile-size must be at least 16 (got {self.tile_size})")
        try:
            overlap_pixels(self.overlap, self.tile_size, alignment)
        except ValueError:
            raise IsclError(f"--overlap must be 0 to {max(self.tile_size - 2 * alignment, 0)} pixels for "
                            f"{self.tile_size}-pixel tiles with this model (tiles advance in steps of {alignment}), "
                            f"got {self.overlap}") from None
        if self.blend not in BLEND_MODES:
            raise IsclError(f"--blend must be one of {', '.join(BLEND_MODES)} (got {self.blend!r})")
        if self.batch_size < 1:
            raise IsclError(f"--batch-size must be at least 1 (got {self.batch_size})")
        if self.symmetries not in (1, 2, 4, 8):
            raise IsclError(f"--symmetries must be 1, 2, 4 or 8 (got {self.symmetries})")
        return self


def tile_alignment(model: ISCL) -> int:
    """The shift tiles must start at multiples of for ``model`` to give its whole-slice result."""
    return model.translation_step or ResnetGenerator.downsampling


def denoise_image(image: np.ndarray, model: ISCL, mapping: IntensityMapping, tiles: TileOptions) -> np.ndarray:
    """Denoise one 2D slice given in physical units; the result is in physical units too."""
    device = next(model.parameters()).device
    return tiled_in_physical_units(image, model.denoise, tile_alignment(model), device, mapping, tiles)


def tiled_in_physical_units(image: np.ndarray, network: Network, alignment: int,
                            device: torch.device, mapping: IntensityMapping, tiles: TileOptions) -> np.ndarray:
    """``network`` (noisy model units -> clean model units) over one 2D slice in physical
    units, tile by tile with origins on multiples of ``alignment``; the result in physical units."""
    x = torch.from_numpy(mapping.to_model(image, "noisy"))[None].to(device)
    network = symmetry_average(network, tiles.symmetries)
    out = sliding_window_inference(x, network, tile_size=tiles.tile_size, overlap=tiles.overlap,
                                   blend=tiles.blend, batch_size=tiles.batch_size,
                                   amp_dtype=autocast_dtype(device), alignment=alignment)
    return mapping.to_physical(out[0].cpu().numpy(), "clean")




def symmetry_average(network: Network, symmetries: int = 8) -> Network:
    """``network`` averaged over the first ``symmetries`` of the square's 8 symmetries:
    each batch is turned (quarter turns ``k % 4``) and mirrored (``k >= 4``), denoised, turned
    back, and the results averaged. A network trained on 8-fold augmented patches gives a
    slightly different estimate in each pose; their mean has less of each one's error."""
    if symmetries == 1:
        return network

    def averaged(batch: torch.Tensor) -> torch.Tensor:
        total = None
        for k in range(symmetries):
            posed = torch.rot90(batch, k % 4, dims=(-2, -1))
            posed = posed.flip(-1) if k >= 4 else posed
            out = network(posed)
            out = out.flip(-1) if k >= 4 else out
            out = torch.rot90(out, -(k % 4), dims=(-2, -1)).float()
            total = out if total is None else total + out
        return total / symmetries

    return averaged
