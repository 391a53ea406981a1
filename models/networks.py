"""The ISCL networks: ResNet generators (F, G), the noise extractor (H), the discriminators.

Shapes follow the authors' TensorFlow code (github.com/leekanggeun/ISCL, models/network.py);
differences are listed in docs/method.md. Every normalisation is BatchInstanceNorm2d, every
activation a leaky ReLU with slope 0.2.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.norm import BatchInstanceNorm2d, block_size

LEAKY_SLOPE = 0.2


def _pad_last_dim(x: Tensor, dim: int, before: int, after: int) -> Tensor:
    """Mirror-pad one of the last two dims, mirroring again while the pad exceeds the size."""
    while before > 0 or after > 0:
        size = x.shape[dim]
        if size == 1:
            # Nothing to mirror: repeat the single row/column.
            pads = (before, after, 0, 0) if dim == -1 else (0, 0, before, after)
            return F.pad(x, pads, mode="replicate")
        step_before, step_after = min(before, size - 1), min(after, size - 1)
        pads = (step_before, step_after, 0, 0) if dim == -1 else (0, 0, step_before, step_after)
        x = F.pad(x, pads, mode="reflect")
        before, after = before - step_before, after - step_after
    return x


def reflect_pad(x: Tensor, left: int, right: int, top: int, bottom: int) -> Tensor:
    """Reflect-pad an (N, C, H, W) tensor; works for any size, down to 1 x 1.

    Reflection needs a pad smaller than the size; larger pads reflect repeatedly, and a
    dimension of size 1 is replicated.
    """
    return _pad_last_dim(_pad_last_dim(x, -1, left, right), -2, top, bottom)


def zero_output_layer(conv: nn.Conv2d) -> None:
    """Start a network's last convolution at zero: its output is then exactly zero."""
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class ReflectConv2d(nn.Conv2d):
    """A convolution whose input is first reflect-padded by ``pad`` pixels on every side."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, pad: int = 0) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride)
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(reflect_pad(x, self.pad, self.pad, self.pad, self.pad))


def _window_at(instance_window: int | None, downsampling: int) -> int | None:
    """The instance-statistics window in pixels of a layer ``downsampling`` times coarser than the input."""
    return None if instance_window is None else max(1, instance_window // downsampling)


def _norm_act(channels: int, instance_window: int | None, track_running_stats: bool = True) -> list[nn.Module]:
    return [BatchInstanceNorm2d(channels, track_running_stats=track_running_stats, instance_window=instance_window),
            nn.LeakyReLU(LEAKY_SLOPE)]


class ResidualBlock(nn.Module):
    """x + norm(conv(act(norm(conv(x))))), with 3 x 3 reflect-padded convolutions."""

    def __init__(self, channels: int, instance_window: int | None) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ReflectConv2d(channels, channels, 3, pad=1),
            *_norm_act(channels, instance_window),
            ReflectConv2d(channels, channels, 3, pad=1),
            BatchInstanceNorm2d(channels, instance_window=instance_window),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Image-to-image generator (F: noisy -> clean, G: clean -> noisy).

    7x7 conv, two stride-2 convs, ``blocks`` residual blocks at 1/4 resolution, two stride-2
    transposed convs, 7x7 conv, tanh. Widths ``base``, 2 ``base``, 4 ``base``. Any input size
    works: the input is reflect-padded to a multiple of 4 and the output cropped back.

    With ``residual`` the output is instead ``x + last_conv(...)`` (no tanh): the input passes
    through exactly and the network learns only the change. With ``zero_start`` too, the last
    convolution starts at zero, so the untrained generator is the identity: a short run starts
    from "change nothing" rather than from a random image (see docs/method.md).

    Args:
        channels: image channels in and out.
        base: width of the full-resolution layers.
        blocks: number of residual blocks.
        instance_window: eval-mode instance-statistics window in input pixels (the training
            patch size), or None for whole-input statistics; see models/norm.py.
        residual: output ``x`` plus a learned correction.
        zero_start: with ``residual``, start the correction at zero (the identity).
    """

    downsampling = 4

    def __init__(self, channels: int = 1, base: int = 32, blocks: int = 3, instance_window: int | None = 64,
                 residual: bool = False, zero_start: bool = True) -> None:
        super().__init__()
        self.residual = residual
        window_1, window_2, window_4 = (_window_at(instance_window, s) for s in (1, 2, 4))
        # Shifts by multiples of this move the eval-mode output along exactly (see docs/method.md).
        self.translation_step = None if instance_window is None else math.lcm(
            self.downsampling, *(s * block_size(w) for s, w in ((1, window_1), (2, window_2), (4, window_4))))
        self.encoder = nn.Sequential(
            ReflectConv2d(channels, base, 7, pad=3), *_norm_act(base, window_1),
            ReflectConv2d(base, 2 * base, 4, stride=2, pad=1), *_norm_act(2 * base, window_2),
            ReflectConv2d(2 * base, 4 * base, 4, stride=2, pad=1), *_norm_act(4 * base, window_4),
        )
        self.blocks = nn.Sequential(*(ResidualBlock(4 * base, window_4) for _ in range(blocks)))
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(4 * base, 2 * base, 3, stride=2, padding=1, output_padding=1),
            *_norm_act(2 * base, window_2),
            nn.ConvTranspose2d(2 * base, base, 3, stride=2, padding=1, output_padding=1),
            *_norm_act(base, window_1),
            ReflectConv2d(base, channels, 7, pad=3),
            *([] if residual else [nn.Tanh()]),
        )
        if residual and zero_start:
            zero_output_layer(self.decoder[-1])

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        padded = reflect_pad(x, 0, -width % self.downsampling, 0, -height % self.downsampling)
        out = self.decoder(self.blocks(self.encoder(padded)))[..., :height, :width]
        return x + out if self.residual else out


class NoiseExtractor(nn.Module):
    """H: predicts the noise map of a noisy image (the clean estimate is x - H(x)).

    A plain CNN of ``depth`` 3x3 convolutions at full resolution: conv + leaky ReLU, then
    ``depth - 2`` x (conv + norm + leaky ReLU), then a linear conv to ``channels``. No skip
    connection inside: the residual is taken outside, by subtracting H(x) from x.

    Args:
        channels: image channels in and out.
        width: channels of the hidden layers.
        depth: number of convolutions (at least 2).
        instance_window: eval-mode instance-statistics window in pixels, or None; see models/norm.py.
        zero_start: start the last convolution at zero, so the untrained H(x) is 0 (no noise found).
    """

    def __init__(self, channels: int = 1, width: int = 32, depth: int = 20, instance_window: int | None = 64,
                 zero_start: bool = False) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"the noise extractor needs at least 2 layers, got depth={depth}")
        self.translation_step = None if instance_window is None else block_size(instance_window)
        hidden: list[nn.Module] = []
        for _ in range(depth - 2):
            hidden += [ReflectConv2d(width, width, 3, pad=1), *_norm_act(width, instance_window)]
        self.layers = nn.Sequential(
            ReflectConv2d(channels, width, 3, pad=1), nn.LeakyReLU(LEAKY_SLOPE),
            *hidden,
            ReflectConv2d(width, channels, 3, pad=1),
        )
        if zero_start:
            zero_output_layer(self.layers[-1])

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class UNet(nn.Module):
    """An image-to-image U-Net: the efficient alternative to the ResNet generator and the plain extractor.

    ``depth`` levels of (two 3x3 convs + leaky ReLU, then 2x2 average pooling), a bottleneck
    of two convs, and the mirror path up (nearest-neighbour upsampling, a 3x3 conv, the
    skip connection concatenated, two convs); widths ``base``, 2 ``base``, ... No
    normalisation: the output of a pixel depends only on the pixels around it, never on the
    rest of the tile or batch, so tiled inference needs no special statistics. With
    ``residual`` the output is ``x + last_conv(...)`` (F, G), otherwise ``last_conv(...)``
    (H's noise map); with ``zero_start`` the last 1x1 conv starts at zero, so the untrained
    network is the identity (or finds no noise).
    Any input size works: it is reflect-padded to a multiple of ``2**depth`` and cropped back.

    Args:
        channels: image channels out (and in, plus ``extra_inputs``).
        base: width of the full-resolution convolutions.
        depth: number of pooling steps (receptive field about ``10 * 2**depth`` pixels).
        residual: output the input plus the network's correction.
        random_inputs: channels of fresh standard normal noise drawn at every call and fed in
            beside the image, so that the output can vary like noise does (G, the synthesiser).
        zero_start: start the last conv at zero (else at PyTorch's random initialisation).
    """

    def __init__(self, channels: int = 1, base: int = 32, depth: int = 2, residual: bool = True,
                 random_inputs: int = 0, zero_start: bool = True) -> None:
        super().__init__()
        if depth < 0:
            raise ValueError(f"the U-Net needs depth >= 0, got {depth}")
        self.residual = residual
        self.random_inputs = random_inputs
        self.downsampling = 2**depth
        self.translation_step = self.downsampling
        widths = [base * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList()
        incoming = channels + random_inputs
        for width in widths[:-1]:
            self.down.append(_double_conv(incoming, width))
            incoming = width
        self.bottom = _double_conv(incoming, widths[-1])
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for width, coarser in zip(reversed(widths[:-1]), reversed(widths[1:])):
            self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                         nn.Conv2d(coarser, width, 3, padding=1), nn.LeakyReLU(LEAKY_SLOPE)))
            self.merge.append(_double_conv(2 * width, width))
        self.out = nn.Conv2d(widths[0], channels, 1)
        if zero_start:
            zero_output_layer(self.out)

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        inputs = x
        if self.random_inputs:
            noise = torch.randn(x.shape[0], self.random_inputs, height, width, device=x.device, dtype=x.dtype)
            inputs = torch.cat([x, noise], dim=1)
        features = reflect_pad(inputs, 0, -width % self.downsampling, 0, -height % self.downsampling)
        skips = []
        for block in self.down:
            features = block(features)
            skips.append(features)
            features = F.avg_pool2d(features, 2)
        features = self.bottom(features)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips)):
            features = merge(torch.cat([up(features), skip], dim=1))
        correction = self.out(features)[..., :height, :width]
        return x + correction if self.residual else correction


def _double_conv(incoming: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(incoming, width, 3, padding=1), nn.LeakyReLU(LEAKY_SLOPE),
                         nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(LEAKY_SLOPE))


class Discriminator(nn.Module):
    """Scores images as real (high) or fake (low); used only in training.

    ``layers`` stride-2 4x4 convs (widths base, 2 base, ...), a 4x4 valid conv and a 1x1 conv
    to one channel. At the smallest input (``min_input_size`` = 4 * 2**layers, 64 for the
    defaults) the output is one score per image; larger inputs give a map of scores. Its
    normalisations always use the current batch's statistics (no running statistics).
    """

    def __init__(self, channels: int = 1, base: int = 32, layers: int = 4) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"the discriminator needs at least 1 stride-2 layer, got layers={layers}")
        self.min_input_size = 4 * 2**layers
        stack: list[nn.Module] = [nn.Conv2d(channels, base, 4, stride=2, padding=1), nn.LeakyReLU(LEAKY_SLOPE)]
        width = base
        for _ in range(layers - 1):
            stack += [nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
                      *_norm_act(2 * width, None, track_running_stats=False)]
            width *= 2
        stack += [nn.Conv2d(width, 2 * width, 4), *_norm_act(2 * width, None, track_running_stats=False),
                  nn.Conv2d(2 * width, 1, 1)]
        self.layers = nn.Sequential(*stack)

    def forward(self, x: Tensor) -> Tensor:
        if min(x.shape[-2:]) < self.min_input_size:
            raise ValueError(f"the discriminator needs inputs of at least {self.min_input_size} x "
                             f"{self.min_input_size} pixels, got {tuple(x.shape[-2:])}")
        return self.layers(x)
