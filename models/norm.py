"""Batch-instance normalisation (Nam & Kim, NeurIPS 2018), as ISCL uses it everywhere.

Each channel is normalised twice, once with batch statistics and once with instance
statistics, and the two results are mixed by a learned per-channel weight ``rho`` in
[0, 1] (1 = pure batch norm), followed by the usual affine ``gamma * . + beta``.

Inference (eval mode) must give a tile the same output whatever else is in the batch and,
as far as possible, whatever the tile's extent:

* the batch branch uses running statistics collected in training (as batch norm does);
* the instance branch, with ``instance_window`` set, uses statistics over a local window of
  about that many pixels around each pixel instead of over the whole tile. Set the window
  to the training patch's extent at this layer's resolution: a pixel then sees statistics
  over the same extent as in training, and gets the same statistics in a tile as in the
  whole image once the tile holds its window. The statistics are gathered per block of
  window/4 pixels and interpolated bilinearly between block centres, which costs about one
  pass over the input; the result is exactly translation-equivariant for shifts by whole
  blocks. With ``instance_window=None`` the instance branch uses the whole input (the
  paper's choice, which makes the output depend on the tile's size and position).

In training mode both branches use the input's own statistics, as in the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def block_size(window: int) -> int:
    """Side of the blocks that local statistics over ``window`` pixels are gathered in."""
    return max(1, window // 4)


def local_statistics(values: Tensor, window: int, reference: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and (biased) variance around each block of ``block_size(window)`` pixels.

    The input (N, C, H, W) is cut into blocks from its top-left corner (the last ones may be
    partial); each block gets the statistics of the pixels in the ``span`` x ``span`` blocks
    centred on it (``span`` = window // block, made odd, so about ``window`` pixels; cut at
    the input's borders). Returns (N, C, ceil(H / block), ceil(W / block)) maps. Gathering by
    blocks keeps the cost near one pass over the input, and the result is exactly
    translation-equivariant for shifts by whole blocks.

    ``reference`` (per-channel values near the data's mean) is subtracted before squaring so
    that E[v^2] - E[v]^2 does not lose precision to a large mean.
    """
    block = block_size(window)
    span = (window // block) | 1
    centred = values - reference
    ones = torch.ones_like(values[:1, :1])
    sums, squares, counts = (
        F.avg_pool2d(F.avg_pool2d(v, block, ceil_mode=True, divisor_override=1), span, stride=1,
                     padding=span // 2, divisor_override=1)
        for v in (centred, centred * centred, ones)
    )
    mean = sums / counts
    variance = (squares / counts - mean * mean).clamp(min=0)
    return mean + reference, variance


def upsample_blocks(coarse: Tensor, block: int, height: int, width: int) -> Tensor:
    """Bilinear interpolation of per-block values (known at block centres) to every pixel."""
    if block == 1:
        return coarse
    fine = F.interpolate(coarse, scale_factor=block, mode="bilinear", align_corners=False)
    return fine[..., :height, :width]


class BatchInstanceNorm2d(nn.Module):
    """Per-channel mix of batch and instance normalisation: ``rho * BN(x) + (1 - rho) * IN(x)``, then affine.

    Args:
        channels: number of channels C of the (N, C, H, W) input.
        eps: added to variances before the inverse square root.
        momentum: weight of the newest batch in the running statistics.
        track_running_stats: keep running batch statistics for eval mode; without them the
            batch branch always uses the current batch (fine for networks never run in eval).
        instance_window: in eval mode, the side (pixels at this layer's resolution) of the
            local window for the instance statistics; None uses the whole input.
    """

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1,
                 track_running_stats: bool = True, instance_window: int | None = None) -> None:
        super().__init__()
        if instance_window is not None and instance_window < 1:
            raise ValueError(f"instance_window must be positive or None, got {instance_window}")
        self.channels = channels
        self.eps = eps
        self.momentum = momentum
        self.track_running_stats = track_running_stats
        self.instance_window = instance_window
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        # rho starts at 1 (pure batch norm), as in the authors' code.
        self.rho = nn.Parameter(torch.ones(channels))
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(channels))
            self.register_buffer("running_var", torch.ones(channels))

    def extra_repr(self) -> str:
        return (f"{self.channels}, eps={self.eps}, momentum={self.momentum}, "
                f"track_running_stats={self.track_running_stats}, instance_window={self.instance_window}")

    @torch.no_grad()
    def clamp_rho_(self) -> None:
        """Keep the mixing weight in [0, 1] (call after each optimiser step)."""
        self.rho.clamp_(0.0, 1.0)

    def _per_channel(self, values: Tensor) -> Tensor:
        return values.view(1, self.channels, 1, 1)

    def _batch_statistics(self, values: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance per channel: the batch's own in training, the running ones in eval."""
        if self.track_running_stats and not self.training:
            return self._per_channel(self.running_mean), self._per_channel(self.running_var)
        variance, mean = torch.var_mean(values, dim=(0, 2, 3), correction=0, keepdim=True)
        if self.track_running_stats:
            self._update_running_statistics(mean, variance, values.numel() // self.channels)
        return mean, variance

    @torch.no_grad()
    def _update_running_statistics(self, mean: Tensor, variance: Tensor, count: int) -> None:
        unbiased = variance * (count / max(count - 1, 1))
        self.running_mean.lerp_(mean.flatten().to(self.running_mean.dtype), self.momentum)
        self.running_var.lerp_(unbiased.flatten().to(self.running_var.dtype), self.momentum)

    @property
    def uses_local_statistics(self) -> bool:
        """True when the instance statistics come from local windows (eval mode with a window)."""
        return not self.training and self.instance_window is not None

    def _instance_statistics(self, values: Tensor, batch_mean: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance per sample and channel, or per block around a local window."""
        if self.uses_local_statistics:
            return local_statistics(values, self.instance_window, batch_mean)
        variance, mean = torch.var_mean(values, dim=(2, 3), correction=0, keepdim=True)
        return mean, variance

    def forward(self, x: Tensor) -> Tensor:
        # Statistics in float32 even under autocast: bf16 means and variances are too coarse.
        values = x.float()
        batch_mean, batch_var = self._batch_statistics(values)
        instance_mean, instance_var = self._instance_statistics(values, batch_mean)
        rho = self._per_channel(self.rho)
        gamma = self._per_channel(self.weight)
        batch_scale = rho * torch.rsqrt(batch_var + self.eps)
        instance_scale = (1 - rho) * torch.rsqrt(instance_var + self.eps)
        # rho*(x - mb)*sb + (1 - rho)*(x - mi)*si, then affine, folded into one scale and shift
        # (per sample and channel, or per block in the windowed eval mode).
        scale = gamma * (batch_scale + instance_scale)
        shift = self._per_channel(self.bias) - gamma * (batch_mean * batch_scale + instance_mean * instance_scale)
        if self.uses_local_statistics:
            block = block_size(self.instance_window)
            scale, shift = (upsample_blocks(m, block, *x.shape[-2:]) for m in (scale, shift))
        return (values * scale + shift).to(x.dtype)


def clamp_rho_(module: nn.Module) -> None:
    """Clamp ``rho`` of every BatchInstanceNorm2d inside ``module`` to [0, 1]."""
    for child in module.modules():
        if isinstance(child, BatchInstanceNorm2d):
            child.clamp_rho_()
