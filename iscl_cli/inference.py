"""Denoising slices: physical units in, tiled (and symmetry-averaged) ISCL inference, physical units out.

What ``iscl denoise``, validation during training and the benchmarks share; reading and
writing files is ``iscl_cli.denoise``'s business.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from iscl_cli.devices import autocast_dtype
from iscl_cli.errors import IsclError
from iscl_cli.intensity import IntensityMapping
from iscl_cli.tiling import BLEND_MODES, overlap_pixels, sliding_window_inference, tile_count
from models.iscl import ISCL, NOISE_POSES
from models.networks import ResnetGenerator

Network = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TileOptions:
    """How slices are cut into tiles (see ``sliding_window_inference``), and ``symmetries``:
    how many of the square's 8 flips and rotations each tile is denoised in and averaged
    over (test-time augmentation; 1 = the tile as it is; at most the poses the model was
    trained on, ``ISCLConfig.noise_poses``); ``precision``: what the networks
    compute in, ``fp32``, ``bf16`` or ``fp16`` (None: ``autocast_dtype``'s choice for the device)."""

    tile_size: int = 512
    overlap: float | int = 64
    blend: str = "gaussian"
    batch_size: int = 4
    symmetries: int = 8
    precision: str | None = None

    def validated(self, alignment: int = 1, device: torch.device = torch.device("cpu")) -> TileOptions:
        """Refuse options the tiler cannot use (one clear line each); ``alignment`` is
        ``tile_alignment(model)``, ``device`` where the model runs."""
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
        autocast_dtype(device, self.precision)
        return self

    def slices_per_call(self, shape: tuple[int, int], alignment: int, device: torch.device) -> int:
        """How many slices of ``shape`` to denoise together on ``device`` so that their tiles
        fill a batch of ``batch_size``: 1 for slices of a batch of tiles or more, and 1 on a
        CPU, where one call on several slices' tiles ran slower than a call per slice
        (1.7 times, measured: docs/benchmarks.md)."""
        if device.type == "cpu":
            return 1
        return max(1, self.batch_size // tile_count(*shape, self.tile_size, self.overlap, alignment))


def tile_alignment(model: ISCL) -> int:
    """The shift tiles must start at multiples of for ``model`` to give its whole-slice result."""
    return model.translation_step or ResnetGenerator.downsampling


def denoise_image(image: np.ndarray, model: ISCL, mapping: IntensityMapping, tiles: TileOptions) -> np.ndarray:
    """Denoise one 2D slice, or a stack (N, H, W) of slices whose tiles share model calls,
    given in physical units; the result is in physical units too."""
    device = next(model.parameters()).device
    return tiled_in_physical_units(image, model.denoise, tile_alignment(model), device, mapping, tiles,
                                   model.config.noise_poses)


def tiled_in_physical_units(image: np.ndarray, network: Network, alignment: int, device: torch.device,
                            mapping: IntensityMapping, tiles: TileOptions,
                            poses: Sequence[int] = NOISE_POSES["any"]) -> np.ndarray:
    """``network`` (noisy model units -> clean model units) over one 2D slice or a stack
    (N, H, W) in physical units, tile by tile with origins on multiples of ``alignment``,
    averaged over the first ``tiles.symmetries`` of ``poses`` (the poses the network was
    trained on: ``ISCLConfig.noise_poses``); the result in physical units, of the same shape."""
    slices = to_device(mapping.to_model(image, "noisy").reshape(-1, 1, *image.shape[-2:]), device)
    network = symmetry_average(network, tuple(poses)[:tiles.symmetries])
    out = sliding_window_inference(slices, network, tile_size=tiles.tile_size, overlap=tiles.overlap,
                                   blend=tiles.blend, batch_size=tiles.batch_size,
                                   amp_dtype=autocast_dtype(device, tiles.precision), alignment=alignment)
    return mapping.to_physical(to_host(out).reshape(image.shape), "clean")


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """``array`` on ``device``; to a GPU through page-locked memory, so the copy runs
    asynchronously and the tiler queues its work without waiting for it."""
    tensor = torch.from_numpy(array)
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def to_host(tensor: torch.Tensor) -> np.ndarray:
    """``tensor`` as a numpy array in host memory; from a GPU through page-locked memory
    (a direct DMA copy, no bounce through a pageable buffer)."""
    if tensor.device.type != "cuda":
        return tensor.numpy()
    host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
    host.copy_(tensor, non_blocking=True)
    torch.cuda.current_stream(tensor.device).synchronize()  # the copy has landed before numpy reads it
    return host.numpy()



def symmetry_average(network: Network, poses: Sequence[int]) -> Network:
    """``network`` averaged over ``poses`` of the square's 8 symmetries: for each pose ``k``
    the batch is turned (quarter turns ``k % 4``) and mirrored (``k >= 4``), denoised, turned
    back, and the results averaged. A network trained on patches in these poses gives a
    slightly different estimate in each; their mean has less of each one's error."""
    if tuple(poses) == (0,):
        return network

    def averaged(batch: torch.Tensor) -> torch.Tensor:
        total = None
        for k in poses:
            posed = torch.rot90(batch, k % 4, dims=(-2, -1))
            posed = posed.flip(-1) if k >= 4 else posed
            out = network(posed)
            out = out.flip(-1) if k >= 4 else out
            out = torch.rot90(out, -(k % 4), dims=(-2, -1)).float()
            total = out if total is None else total + out
        return total / len(poses)

    return averaged
