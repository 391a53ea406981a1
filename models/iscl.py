"""ISCL (Lee & Jeong, IEEE TMI 2021): five networks, three updates, one ensemble output.

X is the noisy domain, Y the clean one, images in [-1, 1]. F: X -> Y denoises, G: Y -> X
adds noise, H: X -> noise extracts it, D_X and D_Y tell real from fake. One iteration runs
three updates in order: the discriminators (hinge + boosting), the generators F and G
(adversarial + lambda * (cycle + bypass), optionally a Noise2Void blind-spot term), and the
extractor H (pseudo-noise label + noise consistency). The denoised output is
gamma * F(x) + (1 - gamma) * (x - H(x)).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer, RAdam
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from models.lookahead import Lookahead
from models.networks import Discriminator, NoiseExtractor, ResnetGenerator, UNet
from models.norm import clamp_rho_


# The paper's networks ("resnet" generators, a plain "cnn" extractor) or U-Nets (see docs/method.md).
GENERATORS = ("resnet", "unet")
EXTRACTORS = ("cnn", "unet")
# The poses (of the square's 8: k % 4 quarter turns, then mirrored left-right if k >= 4) that
# leave noise of each orientation as it was: all 8 for noise without a direction; for
# artefacts along rows (a raster scan) the identity and the top-bottom mirror (pose 6),
# which keep every row and its left-to-right order; for artefacts along columns pose 4.
NOISE_POSES = {"any": (0, 1, 2, 3, 4, 5, 6, 7), "rows": (0, 6), "columns": (0, 4)}


@dataclass
class ISCLConfig:
    """Architecture and objective weights; defaults are the paper's (authors' code) values.

    ``instance_window`` is the eval-mode window (input pixels) of the instance statistics,
    set it to the training patch size; None uses whole-tile statistics (see models/norm.py).
    Training patches must be at least ``min_patch_size`` (the discriminators' smallest input).
    ``identity_start`` (not in the paper) makes F and G residual generators that start as the
    identity and starts H at zero, so the untrained ensemble returns its input unchanged.
    ``residual`` (not in the paper) makes F and G output their input plus a learned
    correction, from random weights: the input's detail passes through exactly, which a
    generator that rebuilds the whole image from its features can only approximate.
    ``mean_weight`` (not in the paper; 0 = off) weights a generator term that keeps each
    patch's mean brightness, |mean(F(x)) - mean(x)|, for zero-mean noise whose skew lets
    unpaired training shift the brightness (e.g. Poisson shot noise at low counts).
    ``noise_orientation`` (not in the paper; ``NOISE_POSES``) says which poses of a noisy
    image the networks were trained on, and so which ones test-time averaging may use.
    ``blind_spot_weight`` (not in the paper; 0 = off) weights a Noise2Void term for F on the
    noisy batch, ``blind_spot_loss``: right only where the noise is pixel-independent.
    """

    channels: int = 1
    gen_base: int = 32
    gen_blocks: int = 3
    ext_width: int = 32
    ext_depth: int = 20
    disc_base: int = 32
    disc_layers: int = 4
    lam: float = 30.0
    gamma: float = 0.5
    instance_window: int | None = 64
    identity_start: bool = False
    residual: bool = False
    mean_weight: float = 0.0
    generator: str = "resnet"
    extractor: str = "cnn"
    unet_depth: int = 2
    noise_inputs: int = 0
    x_cycle_weight: float = 1.0
    noise_orientation: str = "any"
    blind_spot_weight: float = 0.0

    def __post_init__(self) -> None:
        for name in ("channels", "gen_base", "gen_blocks", "ext_width", "ext_depth", "disc_base", "disc_layers"):
            if not isinstance(getattr(self, name), int):
                raise ValueError(f"ISCLConfig.{name} must be a whole number, got {getattr(self, name)}")
        for name in ("channels", "gen_base", "ext_width", "disc_base", "disc_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"ISCLConfig.{name} must be at least 1, got {getattr(self, name)}")
        if self.gen_blocks < 0:
            raise ValueError(f"ISCLConfig.gen_blocks must be >= 0, got {self.gen_blocks}")
        if self.generator not in GENERATORS:
            raise ValueError(f"ISCLConfig.generator must be one of {', '.join(GENERATORS)}, got {self.generator!r}")
        if self.extractor not in EXTRACTORS:
            raise ValueError(f"ISCLConfig.extractor must be one of {', '.join(EXTRACTORS)}, got {self.extractor!r}")
        if self.noise_inputs and self.generator != "unet":
            raise ValueError("ISCLConfig.noise_inputs needs generator='unet'")
        if self.noise_orientation not in NOISE_POSES:
            raise ValueError(f"ISCLConfig.noise_orientation must be one of {', '.join(NOISE_POSES)}, "
                             f"got {self.noise_orientation!r}")
        if self.x_cycle_weight < 0:
            raise ValueError(f"ISCLConfig.x_cycle_weight must be >= 0, got {self.x_cycle_weight}")
        for name in ("unet_depth", "noise_inputs"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"ISCLConfig.{name} must be a whole number >= 0, got {getattr(self, name)}")
        if self.ext_depth < 2:
            raise ValueError(f"ISCLConfig.ext_depth must be at least 2, got {self.ext_depth}")
        if self.lam < 0:
            raise ValueError(f"ISCLConfig.lam must be >= 0, got {self.lam}")
        for name in ("mean_weight", "blind_spot_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"ISCLConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"ISCLConfig.gamma must be in [0, 1], got {self.gamma}")
        for name in ("identity_start", "residual"):
            if getattr(self, name) not in (True, False):
                raise ValueError(f"ISCLConfig.{name} must be true or false, got {getattr(self, name)}")
            setattr(self, name, bool(getattr(self, name)))
        if self.instance_window is not None and self.instance_window < 1:
            raise ValueError(f"ISCLConfig.instance_window must be positive or None, got {self.instance_window}")

    @property
    def min_patch_size(self) -> int:
        """The smallest training patch side the discriminators accept."""
        return 4 * 2**self.disc_layers

    @property
    def noise_poses(self) -> tuple[int, ...]:
        """The poses of a noisy image the networks were trained on (``NOISE_POSES``)."""
        return NOISE_POSES[self.noise_orientation]

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values only (safe for ``torch.load(weights_only=True)``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ISCLConfig:
        """The inverse of ``to_dict``; missing keys take their defaults, unknown keys are refused."""
        unknown = set(values) - {field.name for field in fields(cls)}
        if unknown:
            raise ValueError(f"unknown ISCLConfig field(s): {', '.join(sorted(unknown))}")
        return cls(**values)


@contextlib.contextmanager
def _frozen(*nets: nn.Module) -> Iterator[None]:
    """Gradients still flow through ``nets`` to their inputs, but none is computed for their weights."""
    params = [param for net in nets for param in net.parameters()]
    flags = [param.requires_grad for param in params]
    for param in params:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param, flag in zip(params, flags, strict=True):
            param.requires_grad_(flag)


def _update(optimizer: Optimizer | Lookahead, loss: Tensor, nets: tuple[nn.Module, ...]) -> None:
    """One optimiser step on ``loss``; gradients are cleared before and freed after."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    # Freeing the gradients now keeps them out of memory during the next update.
    optimizer.zero_grad(set_to_none=True)
    for net in nets:
        clamp_rho_(net)


def _l1(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).abs().mean()


# Noise2Void's masking: one pixel per BLIND_SPOT_CELL x BLIND_SPOT_CELL cell (1.6 % of the
# pixels, as in Krull et al. 2019) takes the value of another pixel at most
# BLIND_SPOT_REACH away, so a network cannot learn to copy the pixel it is asked for.
BLIND_SPOT_CELL = 8
BLIND_SPOT_REACH = 2


def blind_spot_batch(x: Tensor) -> tuple[Tensor, Tensor]:
    """``x`` (B, C, h, w) with one random pixel per cell replaced by a random neighbour's value,
    and the (B, 1, h, w) mask of the replaced pixels (1 there, else 0).

    Drawn from torch's CPU generator (a checkpoint holds its state), whatever ``x``'s device.
    """
    batch, _, height, width = x.shape
    if min(height, width) <= 2 * BLIND_SPOT_REACH:
        raise ValueError(f"blind-spot masking needs images larger than {2 * BLIND_SPOT_REACH} pixels, got {height}x{width}")
    cells = (batch, math.ceil(height / BLIND_SPOT_CELL), math.ceil(width / BLIND_SPOT_CELL))

    def positions(size: int, cell_axis: int) -> Tensor:
        starts = torch.arange(cells[cell_axis]) * BLIND_SPOT_CELL
        shape = [1, 1, 1]
        shape[cell_axis] = -1
        offsets = torch.randint(0, BLIND_SPOT_CELL, cells)
        return (starts.view(shape) + offsets).clamp(max=size - 1)

    rows, cols = positions(height, 1), positions(width, 2)
    side = 2 * BLIND_SPOT_REACH + 1
    shift = torch.randint(0, side * side - 1, cells)
    shift = shift + (shift >= side * side // 2).long()  # skip the centre: never the pixel itself
    d_row, d_col = shift // side - BLIND_SPOT_REACH, shift % side - BLIND_SPOT_REACH

    def source(position: Tensor, delta: Tensor, size: int) -> Tensor:
        moved = position + delta
        return torch.where((moved < 0) | (moved >= size), position - delta, moved)  # mirror at the border

    images = torch.arange(batch).view(-1, 1, 1)
    images, rows, cols, source_rows, source_cols = (
        t.to(x.device) for t in (images, rows, cols, source(rows, d_row, height), source(cols, d_col, width)))
    masked = x.clone()
    masked[images, :, rows, cols] = x[images, :, source_rows, source_cols]
    mask = torch.zeros_like(x[:, :1])
    mask[images, 0, rows, cols] = 1.0
    return masked, mask


def blind_spot_loss(f_masked: Tensor, x: Tensor, mask: Tensor) -> Tensor:
    """Noise2Void's loss: the mean squared error of ``f_masked`` = F(masked x) against the noisy
    ``x`` on the masked pixels only. Its minimum is the noise's conditional mean where the
    noise is pixel-independent; structured noise it learns to keep."""
    return ((f_masked - x) ** 2 * mask).sum() / (mask.sum() * x.shape[1])


class ISCL(nn.Module):
    """The five ISCL networks (attributes F, G, H, D_X, D_Y), their losses and one training step."""

    def __init__(self, config: ISCLConfig) -> None:
        super().__init__()
        self.config = config
        if config.generator == "unet":
            # Residual U-Nets (from the identity with identity_start), else plain ones from random weights.
            start = dict(residual=config.identity_start or config.residual, zero_start=config.identity_start)
            self.F = UNet(config.channels, config.gen_base, config.unet_depth, **start)
            self.G = UNet(config.channels, config.gen_base, config.unet_depth, random_inputs=config.noise_inputs, **start)
        else:
            generator_sizes = (config.channels, config.gen_base, config.gen_blocks, config.instance_window)
            start = dict(residual=config.identity_start or config.residual, zero_start=config.identity_start)
            self.F = ResnetGenerator(*generator_sizes, **start)
            self.G = ResnetGenerator(*generator_sizes, **start)
        if config.extractor == "unet":
            self.H = UNet(config.channels, config.ext_width, config.unet_depth, residual=False,
                          zero_start=config.identity_start)
        else:
            self.H = NoiseExtractor(config.channels, config.ext_width, config.ext_depth, config.instance_window,
                                    zero_start=config.identity_start)
        self.D_X = Discriminator(config.channels, config.disc_base, config.disc_layers)
        self.D_Y = Discriminator(config.channels, config.disc_base, config.disc_layers)

    @property
    def translation_step(self) -> int | None:
        """In eval mode, shifting the input by a multiple of this shifts ``denoise``'s output
        exactly, away from the borders; so a tile whose origin is a multiple of it gives the
        whole image's result there. None with whole-tile instance statistics (no such step)."""
        if self.F.translation_step is None or self.H.translation_step is None:
            return None
        return math.lcm(self.F.translation_step, self.H.translation_step)

    @torch.no_grad()
    def denoise(self, x: Tensor) -> Tensor:
        """``gamma * F(x) + (1 - gamma) * (x - H(x))`` clipped to [-1, 1]; x is (B, C, h, w) in [-1, 1], any h, w.

        In eval mode (``model.eval()``) a tile's result does not depend on the rest of the batch.
        """
        gamma = self.config.gamma
        return (gamma * self.F(x) + (1 - gamma) * (x - self.H(x))).clamp(-1.0, 1.0)

    @staticmethod
    def discriminator_loss(dx_real: Tensor, dx_fake: Tensor, dx_boost: Tensor,
                           dy_real: Tensor, dy_fake: Tensor, dy_boost: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Hinge loss of both discriminators plus the boosting term.

        Scores: ``dx_real`` = D_X(x), ``dx_fake`` = D_X(G(y)), ``dx_boost`` = D_X(y + H(x)),
        ``dy_real`` = D_Y(y), ``dy_fake`` = D_Y(F(x)), ``dy_boost`` = D_Y(x - H(x)).
        """
        terms = {
            "d_hinge_x": F.relu(1 - dx_real).mean() + F.relu(1 + dx_fake).mean(),
            "d_hinge_y": F.relu(1 - dy_real).mean() + F.relu(1 + dy_fake).mean(),
            "d_boost": F.relu(1 + dx_boost).mean() + F.relu(1 + dy_boost).mean(),
        }
        return sum(terms.values()), terms

    def generator_loss(self, x: Tensor, y: Tensor, fx: Tensor, hx: Tensor, g_fx: Tensor, f_gy: Tensor,
                       f_y_hx: Tensor, dy_fx: Tensor, dx_gy: Tensor,
                       blind_spot: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Adversarial + lambda * (cycle + bypass) + mean_weight * brightness for F and G,
        plus blind_spot_weight * ``blind_spot`` (``blind_spot_loss``) where it is given.

        ``fx`` = F(x), ``hx`` = H(x), ``g_fx`` = G(F(x)), ``f_gy`` = F(G(y)),
        ``f_y_hx`` = F(y + H(x)), ``dy_fx`` = D_Y(F(x)), ``dx_gy`` = D_X(G(y)).
        """
        terms = {
            "g_adv_x": -dx_gy.mean(),
            "g_adv_y": -dy_fx.mean(),
            "g_cycle": self.config.x_cycle_weight * _l1(x, g_fx) + _l1(y, f_gy),
            "g_bypass": _l1(fx, x - hx) + _l1(y, f_y_hx),
            # Logged even when its weight is 0: it shows a brightness drift of F.
            "g_mean": _l1(fx.mean(dim=(-2, -1)), x.mean(dim=(-2, -1))),
        }
        total = (terms["g_adv_x"] + terms["g_adv_y"] + self.config.lam * (terms["g_cycle"] + terms["g_bypass"])
                 + self.config.mean_weight * terms["g_mean"])
        if blind_spot is not None:
            terms["g_blind_spot"] = blind_spot
            total = total + self.config.blind_spot_weight * blind_spot
        return total, terms

    @staticmethod
    def extractor_loss(x: Tensor, y: Tensor, hx: Tensor, fx: Tensor, gy: Tensor,
                       h_gy: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Pseudo-noise label |H(x) - (x - F(x))| + noise consistency |H(G(y)) - (G(y) - y)|.

        ``hx`` = H(x), ``fx`` = F(x), ``gy`` = G(y), ``h_gy`` = H(G(y)).
        """
        terms = {
            "h_pseudo": _l1(hx, x - fx),
            "h_consistency": _l1(h_gy, gy - y),
        }
        return sum(terms.values()), terms

    def train_step(self, x: Tensor, y: Tensor, opt_d: Optimizer | Lookahead, opt_g: Optimizer | Lookahead,
                   opt_h: Optimizer | Lookahead, amp_dtype: torch.dtype | None = None) -> dict[str, float]:
        """One ISCL iteration on a noisy batch ``x`` and an unrelated clean batch ``y``.

        Runs the discriminator, generator and extractor updates in that order and returns
        every loss term and each update's total. ``amp_dtype`` (bfloat16 or None) runs the
        forward passes under autocast on ``x``'s device; losses are computed in float32.
        """
        if amp_dtype not in (None, torch.bfloat16):
            raise ValueError(f"amp_dtype must be torch.bfloat16 or None (float16 would need loss scaling), got {amp_dtype}")
        self.train()

        def run(net: nn.Module, batch: Tensor) -> Tensor:
            with torch.autocast(x.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                return net(batch).float()

        # Forward passes shared by the updates. F(x) and G(y) serve the discriminator update
        # (detached) and the generator update (with their graphs): F and G do not change in
        # between. H(x) serves all three updates: H changes only in the last one, so its
        # graph is kept for the extractor update.
        fx, gy, hx = run(self.F, x), run(self.G, y), run(self.H, x)

        def scores(discriminator: nn.Module, *batches: Tensor) -> tuple[Tensor, ...]:
            # One call on real and fake together: the discriminators' batch statistics, taken
            # per call, would otherwise normalise away every difference between the batches.
            return run(discriminator, torch.cat(batches)).split([len(batch) for batch in batches])

        # 1. Discriminators: real vs fake, and the boosting pseudo-samples as fakes. Detached
        # copies ("_const") keep this update's gradients out of F, G and H.
        fx_const, gy_const, hx_const = fx.detach(), gy.detach(), hx.detach()
        d_total, d_terms = self.discriminator_loss(*scores(self.D_X, x, gy_const, y + hx_const),
                                                   *scores(self.D_Y, y, fx_const, x - hx_const))
        _update(opt_d, d_total, (self.D_X, self.D_Y))

        # 2. Generators. The discriminators just changed, so their scores are recomputed, each
        # fake batch again scored together with a real one.
        with _frozen(self.D_X, self.D_Y):
            (_, dx_gy), (_, dy_fx) = scores(self.D_X, x, gy), scores(self.D_Y, y, fx)
            blind_spot = None
            if self.config.blind_spot_weight > 0:
                masked, mask = blind_spot_batch(x)
                blind_spot = blind_spot_loss(run(self.F, masked), x, mask)
            g_total, g_terms = self.generator_loss(
                x, y, fx, hx_const, g_fx=run(self.G, fx), f_gy=run(self.F, gy),
                f_y_hx=run(self.F, y + hx_const), dy_fx=dy_fx, dx_gy=dx_gy, blind_spot=blind_spot)
        _update(opt_g, g_total, (self.F, self.G))

        # 3. Extractor. F and G just changed, so the labels F(x) and G(y) are recomputed.
        with torch.no_grad():
            fx_new, gy_new = run(self.F, x), run(self.G, y)
        h_total, h_terms = self.extractor_loss(x, y, hx, fx_new, gy_new, h_gy=run(self.H, gy_new))
        _update(opt_h, h_total, (self.H,))

        named = {**d_terms, "d_total": d_total, **g_terms, "g_total": g_total, **h_terms, "h_total": h_total}
        values = torch.stack([value.detach() for value in named.values()]).tolist()  # one device sync
        return dict(zip(named, values, strict=True))


def first_adaptive_step(beta2: float) -> int:
    """The first step at which RAdam adapts its step size: its variance estimate's length
    rho_t first exceeds 5, the threshold torch.optim.RAdam (and tfa's RAdam) test."""
    rho_inf = 2 / (1 - beta2) - 1
    step = 1
    while rho_inf - 2 * step * beta2**step / (1 - beta2**step) <= 5:
        step += 1
    return step


def radam_schedule(optimizer: RAdam, final_lr: float, total_steps: int) -> LRScheduler:
    """Learning rate 0 until RAdam's first adaptive step, then the optimiser's ``lr`` decaying
    linearly (from the first step on) to ``final_lr`` at ``total_steps``; call ``step()`` once
    per iteration.

    Before that step RAdam moves by lr times the raw momentum (SGD), which with lambda = 30
    threw the generators' cycle loss from 0 to 6 in the demo; at rate 0 those steps only
    fill the moment estimates (Liu et al.'s ``degenerated_to_sgd=False``).
    """
    end_factor = min(1.0, final_lr / optimizer.defaults["lr"])
    held = first_adaptive_step(optimizer.defaults["betas"][1]) - 1

    def factor(steps_taken: int) -> float:
        if steps_taken < held:
            return 0.0
        return 1.0 + (end_factor - 1.0) * min(steps_taken, total_steps) / total_steps

    return LambdaLR(optimizer, factor)


class ISCLOptimizers:
    """The three optimisers and their learning-rate schedules, saved and restored together.

    D (both discriminators) and H: RAdam inside Lookahead; F and G: RAdam. Each follows
    ``radam_schedule``: no movement until RAdam adapts, then linear decay from its ``lr`` to
    ``final_lr`` over ``total_steps`` scheduler steps.
    """

    def __init__(self, d: Lookahead, g: RAdam, h: Lookahead, total_steps: int, final_lr: float) -> None:
        self.d, self.g, self.h = d, g, h
        self.schedulers = [radam_schedule(optimizer, final_lr, total_steps) for optimizer in (d.optimizer, g, h.optimizer)]

    def step_optimizers(self) -> tuple[Lookahead, RAdam, Lookahead]:
        """The optimisers ``ISCL.train_step`` takes, in its order: (D, F and G, H)."""
        return self.d, self.g, self.h

    def advance_schedules(self) -> None:
        """Move every learning rate one step along its decay (call once per iteration)."""
        for scheduler in self.schedulers:
            scheduler.step()

    def current_lr(self) -> float:
        """The generators' current learning rate (0 before RAdam's first adaptive step)."""
        return self.g.param_groups[0]["lr"]

    def state_dict(self) -> dict[str, Any]:
        return {
            "d": self.d.state_dict(),
            "g": self.g.state_dict(),
            "h": self.h.state_dict(),
            "schedulers": [scheduler.state_dict() for scheduler in self.schedulers],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.d.load_state_dict(state["d"])
        self.g.load_state_dict(state["g"])
        self.h.load_state_dict(state["h"])
        for scheduler, saved in zip(self.schedulers, state["schedulers"], strict=True):
            scheduler.load_state_dict(saved)
            # the stored rates follow the stored schedule; a resumed run may decay over more steps
            for group, base_lr, factor in zip(scheduler.optimizer.param_groups, scheduler.base_lrs,
                                              scheduler.lr_lambdas, strict=True):
                group["lr"] = base_lr * factor(scheduler.last_epoch)


def build_optimizers(model: ISCL, lr: float, total_steps: int, final_lr: float = 1e-7,
                     betas: tuple[float, float] = (0.9, 0.999), lookahead_k: int = 6,
                     lookahead_alpha: float = 0.5, d_lr: float | None = None) -> ISCLOptimizers:
    """The paper's optimisers for ``model`` (build after moving the model to its device).

    RAdam for all; Lookahead(k, alpha) around the discriminators' and H's; each learning rate
    follows ``radam_schedule`` (held at 0 for RAdam's first, unadapted steps, then a linear
    decay to ``final_lr`` over ``total_steps``). ``d_lr``: the discriminators' learning rate
    (default ``lr``; a larger one is the two-time-scale rule of Heusel et al. 2017).
    """
    d_lr = lr if d_lr is None else d_lr
    if lr <= 0 or d_lr <= 0 or total_steps < 1:
        raise ValueError(f"need lr > 0, d_lr > 0 and total_steps >= 1, got lr={lr}, d_lr={d_lr}, total_steps={total_steps}")

    def radam(rate: float, *nets: nn.Module) -> RAdam:
        return RAdam([param for net in nets for param in net.parameters()], lr=rate, betas=betas)

    return ISCLOptimizers(
        d=Lookahead(radam(d_lr, model.D_X, model.D_Y), k=lookahead_k, alpha=lookahead_alpha),
        g=radam(lr, model.F, model.G),
        h=Lookahead(radam(lr, model.H), k=lookahead_k, alpha=lookahead_alpha),
        total_steps=total_steps, final_lr=final_lr,
    )
