"""Tiled sliding-window inference over 2D slices, with smooth blending of the overlaps.

A slice is cut into a grid of equal, overlapping tiles that all lie inside it; the model
runs on batches of tiles, and each output pixel is the weighted mean of the tiles that
cover it. Given several slices of one size (N, C, H, W), the tiles of all of them fill the
batches in turn, as in MONAI, so that small slices still make full model calls. Three choices keep this cheap and faithful to one untiled pass:

* Tiles are balanced: per axis, the fewest tiles of at most ``tile_size`` that overlap by
  at least ``overlap``, shrunk to the smallest size that still does, spaced evenly so the
  last one ends on the border. Nothing is padded: the model sees the slice's own borders
  exactly as an untiled pass does, and no compute is spent outside the slice.
* Tile offsets are multiples of ``alignment``, the shift the model is exactly equivariant
  to (ISCL: its stride-2 convolutions and its blocks of local statistics), so every tile
  sees the same sampling grid as the whole slice.
* The blending window of a tile is separable and the tile grid is a product of two axis
  layouts, so the sum of the windows at a pixel is a product of two 1D sums. Each axis's
  windows are divided by their sum once, up front: the 2D weights of the tiles covering a
  pixel then add up to one, and no weight map is accumulated or divided by at the end.

docs/tiling.md has the measured accuracy and cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch

BlendMode = Literal["gaussian", "cosine", "constant"]
BLEND_MODES: tuple[str, ...] = ("gaussian", "cosine", "constant")

# The weight a tile keeps where the model saw too little context: small enough to vanish
# next to a neighbour's weight, and positive, so that a slice-border pixel covered by one
# tile's edge alone gets normalised weight 1 (the normalisation is done in float64).
EDGE_WEIGHT = 1e-8
# The gaussian crossfade's standard deviation, as a fraction of the crossfade's width.
GAUSSIAN_SIGMA = 0.25


def sliding_window_inference(
    image: torch.Tensor,
    model: Callable[[torch.Tensor], torch.Tensor],
    tile_size: int | tuple[int, int] = 512,
    overlap: float | int = 64,
    blend: BlendMode = "gaussian",
    batch_size: int = 4,
    device: torch.device | str | None = None,
    amp_dtype: torch.dtype | None = None,
    alignment: int = 1,
) -> torch.Tensor:
    """Run ``model`` over ``image`` tile by tile and blend the tiles into output slices.

    Along each axis the slice is covered by the fewest tiles of at most ``tile_size``
    pixels that overlap by at least ``overlap``; the tiles are then shrunk to the smallest
    common size that still gives that overlap and spaced evenly from the first pixel to the
    last, at offsets that are multiples of ``alignment``. An axis no longer than
    ``tile_size`` is one tile of the axis's length. Tiles never reach outside the slice, so
    nothing is padded here; ``model`` must accept any tile size (the ISCL networks do).

    Each tile's output is weighted by a window that is 1 in the middle and falls towards the
    tile's edges, where the model saw the least context: (almost) zero over the outer quarter
    of the overlap and a crossfade over its central half. The weights of the tiles covering
    a pixel sum to one. Consequences, tested in tests/test_tiling.py:

    * a model acting pixel by pixel gives its untiled result to float rounding;
    * a model whose output pixel depends only on inputs within ``r`` pixels (a convolution
      stack without normalisation) gives its untiled result to float rounding everywhere,
      slice borders included, when ``overlap >= 4 r`` and offsets respect its strides;
    * other models (the ISCL networks' local statistics reach further) differ by an amount
      that shrinks as the overlap grows; docs/tiling.md gives the measured numbers.

    Given a stack of slices, each slice is tiled as it would be alone and its tiles are
    blended in the same order; only the batches differ: they take ``batch_size`` tiles of
    the stack in turn (slice by slice, row by row), so one call can hold tiles of several
    slices. The results are those of tiling each slice alone, to the model's own batch
    invariance (tests/test_tiling.py; docs/tiling.md).

    Args:
        image: (C, H, W) float tensor, or (N, C, H, W) for N slices of one size; on any device.
        model: maps a (B, C, h, w) batch of tiles to (B, C', h, w); called under
            ``torch.inference_mode`` and, with ``amp_dtype``, autocast. Putting it in eval
            mode is the caller's business.
        tile_size: the largest tile side in pixels, or (height, width). Larger tiles cost
            less overlap and fewer seams but more memory per batch.
        overlap: the least overlap of neighbouring tiles: an int is pixels, a float in
            [0, 1) a fraction of the tile size; at most the tile size minus twice
            ``alignment``. The default, 64 pixels, is the ISCL networks' default window of
            local statistics (``ISCLConfig.instance_window``).
        blend: the shape of the crossfade: ``"gaussian"`` (a half Gaussian, sigma a quarter
            of the crossfade; it keeps the least weight near tile edges), ``"cosine"`` (a
            raised cosine; two neighbours' weights sum to one before normalisation) or
            ``"constant"`` (no window: a plain mean of the overlapping tiles, for comparison).
        batch_size: tiles per model call, from one slice or several.
        device: where the model runs; None means ``image.device``. Tiles and the output
            accumulator live there; the result is moved back to ``image.device``.
        amp_dtype: with a dtype (``torch.bfloat16``, ``torch.float16``), the model runs
            under autocast to it; blending is float32 either way.
        alignment: tile offsets are multiples of this. Pass the shift the model is
            equivariant to, ``ISCL.translation_step`` (or at least its generator's
            downsampling, 4): a stride-2 network shifted by an odd number of pixels samples
            a different grid and gives a different result; ``iscl_cli.inference.tile_alignment``
            gives it for an ISCL model. The default, 1, suits a model without strides.

    Returns:
        (C', H, W) float32 tensor, or (N, C', H, W) for a stack, on ``image.device``.

    Raises:
        ValueError: a wrongly shaped image, an invalid parameter, or a model output that
            does not keep the tile's batch and size.
    """
    if image.dim() not in (3, 4):
        raise ValueError(f"image must be (C, H, W) or (N, C, H, W), got shape {tuple(image.shape)}")
    if blend not in BLEND_MODES:
        raise ValueError(f"blend must be one of {', '.join(BLEND_MODES)}, got {blend!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if alignment < 1:
        raise ValueError(f"alignment must be at least 1, got {alignment}")
    tile_height, tile_width = _pair(tile_size)
    overlap_height = overlap_pixels(overlap, tile_height, alignment)
    overlap_width = overlap_pixels(overlap, tile_width, alignment)
    compute_device = image.device if device is None else torch.device(device)
    slices = image if image.dim() == 4 else image[None]
    count, _, height, width = slices.shape

    rows = _AxisLayout(height, tile_height, overlap_height, alignment, blend, compute_device)
    columns = _AxisLayout(width, tile_width, overlap_width, alignment, blend, compute_device)
    grid = [(index, row, column) for index in range(count)
            for row in range(len(rows.starts)) for column in range(len(columns.starts))]
    source = slices.to(compute_device, torch.float32)

    output: torch.Tensor | None = None
    for first in range(0, len(grid), batch_size):
        batch = grid[first:first + batch_size]
        tiles = torch.stack([source[index, :, rows.span(row), columns.span(column)] for index, row, column in batch])
        if compute_device.type == "cuda":
            # cuDNN's fastest convolutions (and those under autocast) take NHWC.
            tiles = tiles.contiguous(memory_format=torch.channels_last)
        predictions = _run_model(model, tiles, amp_dtype)
        if predictions.dim() != 4 or predictions.shape[0] != len(batch) or predictions.shape[2:] != tiles.shape[2:]:
            raise ValueError(f"model must map (B, C, h, w) to (B, C', h, w); it mapped {tuple(tiles.shape)} "
                             f"to {tuple(predictions.shape)}")
        if output is None:
            output = torch.zeros((count, predictions.shape[1], height, width), dtype=torch.float32,
                                 device=compute_device)
        row_weights = rows.weights[[row for _, row, _ in batch]]
        column_weights = columns.weights[[column for _, _, column in batch]]
        weighted = predictions.float() * row_weights[:, None, :, None] * column_weights[:, None, None, :]
        for (index, row, column), tile in zip(batch, weighted, strict=True):
            output[index, :, rows.span(row), columns.span(column)] += tile
    output = output.to(image.device)
    return output if image.dim() == 4 else output[0]


def tile_count(height: int, width: int, tile_size: int | tuple[int, int] = 512, overlap: float | int = 64,
               alignment: int = 1) -> int:
    """How many tiles ``sliding_window_inference`` cuts one height x width slice into."""
    tile_height, tile_width = _pair(tile_size)
    row_starts = _tile_starts(height, tile_height, overlap_pixels(overlap, tile_height, alignment), alignment)[1]
    column_starts = _tile_starts(width, tile_width, overlap_pixels(overlap, tile_width, alignment), alignment)[1]
    return len(row_starts) * len(column_starts)


def tile_weights(tile_size: tuple[int, int], blend: BlendMode, overlap: tuple[int, int]) -> torch.Tensor:
    """The (height, width) blending window of one tile, before normalisation (float32).

    The outer product of two 1D windows, one per axis with that axis's overlap in pixels:
    1 in the middle; towards each end a crossfade over the central half of the overlap,
    then ``EDGE_WEIGHT`` over its outer quarter. Every value is positive and at most 1;
    ``"constant"`` or a zero overlap give all ones.
    """
    return torch.outer(_window(tile_size[0], overlap[0], blend), _window(tile_size[1], overlap[1], blend)).float()


def _run_model(model: Callable[[torch.Tensor], torch.Tensor], tiles: torch.Tensor,
               amp_dtype: torch.dtype | None) -> torch.Tensor:
    """``model(tiles)`` without autograd bookkeeping, under autocast when ``amp_dtype`` is given."""
    with torch.inference_mode(), torch.autocast(tiles.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        return model(tiles)


def _pair(tile_size: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) from one side or a pair; every side at least 1."""
    sides = (tile_size, tile_size) if isinstance(tile_size, int) else tuple(tile_size)
    if len(sides) != 2 or not all(isinstance(side, int) and side >= 1 for side in sides):
        raise ValueError(f"tile_size must be a positive int or a pair of them, got {tile_size!r}")
    return sides[0], sides[1]


def overlap_pixels(overlap: float | int, tile: int, alignment: int) -> int:
    """The overlap in pixels for one tile side; it leaves room for tiles to advance by ``alignment``."""
    pixels = int(overlap * tile) if isinstance(overlap, float) else overlap
    if isinstance(overlap, float) and not 0.0 <= overlap < 1.0:
        raise ValueError(f"a fractional overlap must be in [0, 1), got {overlap}")
    if not 0 <= pixels <= tile - 2 * alignment:
        raise ValueError(f"overlap must be 0 to {tile - 2 * alignment} pixels for a {tile}-pixel tile "
                         f"with alignment {alignment}, got {overlap}")
    return pixels


def _tile_starts(length: int, max_tile: int, overlap: int, alignment: int) -> tuple[int, list[int]]:
    """The common tile length along one axis and the first pixel of each tile.

    The fewest tiles, then the smallest length, such that tiles overlap by >= ``overlap``,
    start at multiples of ``alignment``, and the first starts at 0 and the last ends at
    ``length``. Requires ``overlap <= max_tile - 2 * alignment``, which guarantees a solution.
    """
    if length <= max_tile:
        return length, [0]
    count = math.ceil((length - overlap) / (max_tile - overlap))
    while True:
        size = math.ceil((length + (count - 1) * overlap) / count)
        # The same remainder as the axis, so the last tile's start, length - size, is aligned.
        size += (length - size) % alignment
        while size <= max_tile:
            steps = (length - size) // alignment
            starts = [alignment * (index * steps // (count - 1)) for index in range(count)]
            if all(size - (after - before) >= overlap for before, after in zip(starts, starts[1:])):
                return size, starts
            size += alignment
        count += 1


def _window(length: int, overlap: int, blend: BlendMode) -> torch.Tensor:
    """1D window over ``length`` pixels (float64); see ``tile_weights``."""
    if blend == "constant" or overlap == 0:
        return torch.ones(length, dtype=torch.float64)
    index = torch.arange(length, dtype=torch.float64)
    distance_to_edge = torch.minimum(index, length - 1 - index) + 0.5
    # 0 over the outer quarter of the overlap, rising to 1 across its central half.
    position = ((distance_to_edge - overlap / 4) / (overlap / 2)).clamp(0.0, 1.0)
    if blend == "cosine":
        crossfade = torch.sin(0.5 * math.pi * position) ** 2
    else:
        # A Gaussian flank shifted and scaled to run from exactly 0 to exactly 1.
        floor = math.exp(-0.5 / GAUSSIAN_SIGMA**2)
        crossfade = (torch.exp(-0.5 * ((1.0 - position) / GAUSSIAN_SIGMA) ** 2) - floor) / (1.0 - floor)
    return crossfade.clamp(min=EDGE_WEIGHT)


class _AxisLayout:
    """Where the tiles lie along one axis, and each tile's normalised 1D weights.

    Attributes:
        size: the tile length along this axis (the same for every tile).
        starts: first pixel of each tile; the first is 0 and the last ends on the border.
        weights: (tiles, size) float32; at every pixel the weights of the tiles covering it sum to one.
    """

    def __init__(self, length: int, max_tile: int, overlap: int, alignment: int, blend: BlendMode,
                 device: torch.device) -> None:
        self.size, self.starts = _tile_starts(length, max_tile, overlap, alignment)
        window = _window(self.size, overlap, blend)
        coverage = torch.zeros(length, dtype=torch.float64)
        for start in self.starts:
            coverage[start:start + self.size] += window
        normalised = [window / coverage[start:start + self.size] for start in self.starts]
        self.weights = torch.stack(normalised).to(device, torch.float32)

    def span(self, tile: int) -> slice:
        """The pixels of tile number ``tile`` along this axis."""
        return slice(self.starts[tile], self.starts[tile] + self.size)
