"""The ISCL objective, the ensemble, one training step, and the optimisers."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch import nn

from models.iscl import (BLIND_SPOT_CELL, BLIND_SPOT_REACH, ISCL, ISCLConfig, blind_spot_batch, blind_spot_loss,
                         build_optimizers, first_adaptive_step)
from models.norm import BatchInstanceNorm2d

NETS = ("F", "G", "H", "D_X", "D_Y")
TINY = ISCLConfig(gen_base=4, gen_blocks=1, ext_width=4, ext_depth=3, disc_base=4, disc_layers=2, instance_window=16)
PATCH = 16  # TINY's smallest discriminator input


def _row(*values: float) -> torch.Tensor:
    """A (len, 1, 1, 1) batch: one value per image."""
    return torch.tensor(values).view(-1, 1, 1, 1)


def _image(*values: float) -> torch.Tensor:
    """A (1, 1, 1, len) image."""
    return torch.tensor(values).view(1, 1, 1, -1)


def _batches(count: int = 1, batch: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [(torch.rand(batch, 1, PATCH, PATCH, generator=generator) * 2 - 1,
             torch.rand(batch, 1, PATCH, PATCH, generator=generator) * 2 - 1) for _ in range(count)]


def _tiny_model(seed: int = 0) -> ISCL:
    torch.manual_seed(seed)
    return ISCL(TINY)


# --- configuration -------------------------------------------------------------------

def test_config_round_trips_through_plain_python_values() -> None:
    config = ISCLConfig(gen_base=8, instance_window=None, lam=10.0)
    values = config.to_dict()
    assert json.loads(json.dumps(values)) == values
    assert ISCLConfig.from_dict(values) == config
    assert ISCLConfig.from_dict({"gen_base": 8}).ext_depth == 20  # missing keys take defaults


def test_config_refuses_unknown_fields_and_bad_values() -> None:
    with pytest.raises(ValueError, match="unknown ISCLConfig field"):
        ISCLConfig.from_dict({"gen_width": 8})
    for bad in ({"ext_depth": 1}, {"gamma": 1.5}, {"gen_base": 0}, {"instance_window": 0}, {"lam": -1.0},
                {"identity_start": 2}, {"blind_spot_weight": -1.0}):
        with pytest.raises(ValueError):
            ISCLConfig(**bad)


def test_defaults_are_the_papers_and_min_patch_follows_the_discriminator() -> None:
    config = ISCLConfig()
    assert (config.gen_base, config.gen_blocks, config.ext_width, config.ext_depth) == (32, 3, 32, 20)
    assert (config.lam, config.gamma) == (30.0, 0.5)
    assert config.min_patch_size == 64
    assert TINY.min_patch_size == PATCH


# --- losses, checked against hand computations ---------------------------------------

def test_discriminator_loss_is_hinge_plus_boosting() -> None:
    total, terms = ISCL.discriminator_loss(
        dx_real=_row(0.5, 2.0),     # relu(1 - s): 0.5, 0   -> 0.25
        dx_fake=_row(-2.0, 0.5),    # relu(1 + s): 0, 1.5   -> 0.75
        dx_boost=_row(0.0, -0.5),   # relu(1 + s): 1, 0.5   -> 0.75
        dy_real=_row(1.0, -1.0),    # 0, 2                  -> 1.0
        dy_fake=_row(-1.0, -3.0),   # 0, 0                  -> 0.0
        dy_boost=_row(0.25, 0.25),  # 1.25, 1.25            -> 1.25
    )
    assert terms["d_hinge_x"].item() == pytest.approx(1.0)
    assert terms["d_hinge_y"].item() == pytest.approx(1.0)
    assert terms["d_boost"].item() == pytest.approx(2.0)
    assert total.item() == pytest.approx(4.0)


def test_generator_loss_is_adversarial_plus_lambda_cycle_and_bypass() -> None:
    model = ISCL(ISCLConfig(**{**TINY.to_dict(), "lam": 30.0}))
    x, y = _image(0.5, -0.5), _image(0.2, 0.4)
    total, terms = model.generator_loss(
        x, y,
        fx=_image(0.1, 0.0),
        hx=_image(0.1, -0.1),      # x - H(x) = (0.4, -0.4); |F(x) - that| = (0.3, 0.4)
        g_fx=_image(0.3, -0.5),    # |x - G(F(x))| = (0.2, 0)
        f_gy=_image(0.2, 0.0),     # |y - F(G(y))| = (0, 0.4)
        f_y_hx=_image(0.0, 0.4),   # |y - F(y + H(x))| = (0.2, 0)
        dy_fx=_row(1.0, 3.0),
        dx_gy=_row(-1.0, 0.0),
    )
    assert terms["g_adv_x"].item() == pytest.approx(0.5)
    assert terms["g_adv_y"].item() == pytest.approx(-2.0)
    assert terms["g_cycle"].item() == pytest.approx(0.1 + 0.2)
    assert terms["g_bypass"].item() == pytest.approx(0.35 + 0.1)
    assert terms["g_mean"].item() == pytest.approx(0.05)  # |mean F(x) - mean x| = |0.05 - 0.0|
    assert total.item() == pytest.approx(0.5 - 2.0 + 30.0 * 0.75)


def test_the_brightness_term_enters_the_generator_loss_with_its_weight() -> None:
    images = dict(fx=_image(0.3, 0.5), hx=_image(0.0, 0.0), g_fx=_image(0.1, 0.1), f_gy=_image(0.0, 0.0),
                  f_y_hx=_image(0.0, 0.0), dy_fx=_row(0.0), dx_gy=_row(0.0))
    x, y = _image(0.1, 0.1), _image(0.0, 0.0)
    totals = [ISCL(ISCLConfig(**{**TINY.to_dict(), "lam": 1.0, "mean_weight": weight})).generator_loss(x, y, **images)
              for weight in (0.0, 10.0)]
    (plain, terms), (weighted, _) = totals
    assert terms["g_mean"].item() == pytest.approx(0.3)  # |0.4 - 0.1|
    assert weighted.item() - plain.item() == pytest.approx(10.0 * 0.3)


def test_blind_spot_batch_replaces_one_pixel_per_cell_by_a_near_neighbour() -> None:
    torch.manual_seed(3)
    x = torch.arange(2 * 3 * 37 * 29, dtype=torch.float32).view(2, 3, 37, 29)  # every value distinct
    masked, mask = blind_spot_batch(x)
    cells = math.ceil(37 / BLIND_SPOT_CELL) * math.ceil(29 / BLIND_SPOT_CELL)
    assert mask.shape == (2, 1, 37, 29)
    assert mask.sum().item() == 2 * cells
    changed = masked != x
    assert torch.equal(changed.any(dim=1, keepdim=True), mask.bool())  # exactly the masked pixels changed
    assert torch.equal(changed.all(dim=1, keepdim=True), mask.bool())  # in every channel
    for image, _, row, col in mask.nonzero().tolist():
        source = (x[image] == masked[image, 0, row, col]).nonzero()[0].tolist()
        _, source_row, source_col = source
        assert 0 < max(abs(source_row - row), abs(source_col - col)) <= BLIND_SPOT_REACH
        assert torch.equal(masked[image, :, row, col], x[image, :, source_row, source_col])


def test_blind_spot_batch_refuses_images_too_small_for_a_neighbour() -> None:
    with pytest.raises(ValueError, match="larger than"):
        blind_spot_batch(torch.zeros(1, 1, 2 * BLIND_SPOT_REACH, 16))


def test_blind_spot_loss_is_the_squared_error_on_masked_pixels_only() -> None:
    x = torch.zeros(1, 2, 1, 4)
    prediction = torch.tensor([[[[1.0, 5.0, 2.0, 7.0]], [[3.0, 5.0, 0.0, 7.0]]]])
    mask = torch.tensor([[[[1.0, 0.0, 1.0, 0.0]]]])
    assert blind_spot_loss(prediction, x, mask).item() == pytest.approx((1 + 4 + 9 + 0) / 4)


def test_the_blind_spot_term_enters_the_generator_loss_with_its_weight() -> None:
    images = dict(fx=_image(0.3, 0.5), hx=_image(0.0, 0.0), g_fx=_image(0.1, 0.1), f_gy=_image(0.0, 0.0),
                  f_y_hx=_image(0.0, 0.0), dy_fx=_row(0.0), dx_gy=_row(0.0))
    x, y = _image(0.1, 0.1), _image(0.0, 0.0)
    model = ISCL(ISCLConfig(**{**TINY.to_dict(), "blind_spot_weight": 20.0}))
    plain, plain_terms = model.generator_loss(x, y, **images)
    weighted, terms = model.generator_loss(x, y, **images, blind_spot=torch.tensor(0.25))
    assert "g_blind_spot" not in plain_terms
    assert terms["g_blind_spot"].item() == pytest.approx(0.25)
    assert weighted.item() - plain.item() == pytest.approx(20.0 * 0.25)


def test_extractor_loss_is_pseudo_noise_label_plus_noise_consistency() -> None:
    total, terms = ISCL.extractor_loss(
        x=_image(0.5, -0.5), y=_image(0.2, 0.4),
        hx=_image(0.1, -0.1),
        fx=_image(0.3, -0.3),      # x - F(x) = (0.2, -0.2): |H(x) - that| = (0.1, 0.1)
        gy=_image(0.5, 0.1),       # G(y) - y = (0.3, -0.3)
        h_gy=_image(0.2, -0.1),    # |H(G(y)) - that| = (0.1, 0.2)
    )
    assert terms["h_pseudo"].item() == pytest.approx(0.1)
    assert terms["h_consistency"].item() == pytest.approx(0.15)
    assert total.item() == pytest.approx(0.25)


# --- the ensemble ----------------------------------------------------------------------

class _Affine(nn.Module):
    """Stub network: scale * x + offset."""

    def __init__(self, scale: float, offset: float) -> None:
        super().__init__()
        self.scale, self.offset = scale, offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x + self.offset


@pytest.mark.parametrize(("gamma", "expected"), [(0.5, [-0.5, 0.7, 1.0]), (0.25, [-1.0, 0.55, 1.0])])
def test_denoise_is_the_clipped_ensemble_of_f_and_x_minus_h(gamma: float, expected: list[float]) -> None:
    model = ISCL(ISCLConfig(**{**TINY.to_dict(), "gamma": gamma}))
    model.F = _Affine(0.0, 1.0)    # F(x) = 1
    model.H = _Affine(-1.0, 0.0)   # x - H(x) = 2x
    # gamma * 1 + (1 - gamma) * 2x at x = -1, 0.2, 1, then clipped to [-1, 1].
    out = model.denoise(_image(-1.0, 0.2, 1.0))
    assert out.flatten().tolist() == pytest.approx(expected)


def test_an_identity_start_model_returns_its_input_before_training() -> None:
    model = ISCL(ISCLConfig(**{**TINY.to_dict(), "identity_start": 1})).eval()
    assert model.config.identity_start is True
    x = torch.rand(2, 1, 11, 13) * 2 - 1
    assert torch.equal(model.denoise(x), x)
    assert not ISCLConfig().identity_start  # the paper's generators end in tanh and start random


@pytest.mark.parametrize("size", [(1, 1), (3, 2), (7, 9), (37, 53)])
def test_denoise_keeps_the_shape_of_any_input(size: tuple[int, int]) -> None:
    model = _tiny_model().eval()
    out = model.denoise(torch.rand(2, 1, *size) * 2 - 1)
    assert out.shape == (2, 1, *size)
    assert out.abs().max() <= 1.0


def test_denoise_in_eval_mode_does_not_depend_on_the_rest_of_the_batch() -> None:
    model = _tiny_model()
    x, y = _batches()[0]
    model.train_step(x, y, *build_optimizers(model, lr=1e-3, total_steps=10).step_optimizers())
    model.eval()
    batch = torch.rand(3, 1, 24, 20) * 2 - 1
    torch.testing.assert_close(model.denoise(batch[2:]), model.denoise(batch)[2:])


def _mixed_eval_model(window: int | None) -> ISCL:
    """Tiny model with rho = 0.5 (both branches matter) and non-trivial running statistics, in eval mode."""
    model = ISCL(ISCLConfig(**{**TINY.to_dict(), "instance_window": window}))
    for module in model.modules():
        if isinstance(module, BatchInstanceNorm2d):
            with torch.no_grad():
                module.rho.fill_(0.5)
    with torch.no_grad():
        model.F(torch.rand(4, 1, PATCH, PATCH))
        model.H(torch.rand(4, 1, PATCH, PATCH))
    return model.eval()


def test_translation_step_follows_the_window() -> None:
    assert ISCL(ISCLConfig()).translation_step == 16
    assert ISCL(ISCLConfig(instance_window=32)).translation_step == 8
    assert ISCL(TINY).translation_step == 4
    assert ISCL(ISCLConfig(instance_window=None)).translation_step is None


def test_a_tile_on_the_translation_grid_reproduces_the_whole_image_away_from_its_borders() -> None:
    torch.manual_seed(0)
    model = _mixed_eval_model(TINY.instance_window)
    image = torch.rand(1, 1, 320, 320) * 2 - 1
    top, left = 10 * model.translation_step, 11 * model.translation_step
    tile = model.denoise(image[..., top:top + 256, left:left + 256])
    whole = model.denoise(image)[..., top:top + 256, left:left + 256]
    margin = 110  # beyond the tiny model's reach through convolutions and local statistics
    inner = (..., slice(margin, -margin), slice(margin, -margin))
    torch.testing.assert_close(tile[inner], whole[inner], rtol=0, atol=1e-6)


def test_whole_tile_statistics_make_a_tile_differ_from_the_whole_image() -> None:
    torch.manual_seed(0)
    model = _mixed_eval_model(None)
    image = torch.rand(1, 1, 320, 320) * 2 - 1
    tile = model.denoise(image[..., 40:296, 44:300])
    whole = model.denoise(image)[..., 40:296, 44:300]
    assert (tile - whole)[..., 110:-110, 110:-110].abs().max() > 1e-3


# --- one training step -----------------------------------------------------------------

class _Recording:
    """Wraps an optimiser; at each step records which nets hold gradients and which nets' weights moved."""

    def __init__(self, name: str, inner, model: ISCL, log: list) -> None:
        self.name, self.inner, self.model, self.log = name, inner, model, log

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    def _weights(self) -> dict[str, list[torch.Tensor]]:
        return {net: [p.detach().clone() for p in getattr(self.model, net).parameters()] for net in NETS}

    def step(self) -> None:
        with_gradients = {net for net in NETS if any(p.grad is not None for p in getattr(self.model, net).parameters())}
        before = self._weights()
        self.inner.step()
        after = self._weights()
        moved = {net for net in NETS if any(not torch.equal(a, b) for a, b in zip(before[net], after[net]))}
        self.log.append((self.name, with_gradients, moved))


def _past_the_held_steps(model: ISCL, optimizers) -> None:
    """Train through the steps at learning rate 0 that precede RAdam's first adaptive step."""
    for x, y in _batches(count=first_adaptive_step(0.999) - 1):
        model.train_step(x, y, *optimizers.step_optimizers())
        optimizers.advance_schedules()


def test_each_update_changes_only_its_own_networks() -> None:
    model = _tiny_model()
    optimizers = build_optimizers(model, lr=1e-3, total_steps=10)
    _past_the_held_steps(model, optimizers)
    log: list = []
    d, g, h = optimizers.step_optimizers()
    x, y = _batches()[0]
    model.train_step(x, y, _Recording("d", d, model, log), _Recording("g", g, model, log),
                     _Recording("h", h, model, log))
    assert log == [
        ("d", {"D_X", "D_Y"}, {"D_X", "D_Y"}),
        ("g", {"F", "G"}, {"F", "G"}),
        ("h", {"H"}, {"H"}),
    ]
    assert all(p.grad is None for p in model.parameters()), "gradients are freed after each update"


def test_steps_before_radams_first_adaptive_step_move_no_weights() -> None:
    model = _tiny_model()
    start = copy.deepcopy(model.state_dict())
    optimizers = build_optimizers(model, lr=1e-3, total_steps=10)
    _past_the_held_steps(model, optimizers)
    moved = [name for name, value in model.state_dict().items()
             if value.is_floating_point() and "running" not in name and not torch.equal(value, start[name])]
    assert moved == []
    assert optimizers.g.state[next(model.F.parameters())]["exp_avg"].abs().sum() > 0, "the moments are filled"


def test_first_adaptive_step_is_where_torch_radam_stops_taking_raw_gradient_steps() -> None:
    # With a constant gradient of 100, an unadapted RAdam step moves by lr * 100, an adapted one by at most lr.
    weight = torch.zeros(1, requires_grad=True)
    radam = torch.optim.RAdam([weight], lr=1e-3, betas=(0.9, 0.999))
    moves = []
    for _ in range(10):
        weight.grad = torch.full((1,), 100.0)
        before = weight.item()
        radam.step()
        moves.append(abs(weight.item() - before))
    first_small = next(step for step, move in enumerate(moves, start=1) if move < 1e-3 * 10)
    assert first_adaptive_step(0.999) == first_small == 6


def test_train_step_runs_each_network_only_as_often_as_needed() -> None:
    model = _tiny_model()
    calls = dict.fromkeys(NETS, 0)
    for net in NETS:
        getattr(model, net).register_forward_hook(lambda *_, net=net: calls.__setitem__(net, calls[net] + 1))
    x, y = _batches()[0]
    model.train_step(x, y, *build_optimizers(model, lr=1e-3, total_steps=10).step_optimizers())
    # F: F(x) shared by D and G updates, F(G(y)), F(y + H(x)), F(x) again after F changed.
    # G: G(y) shared, G(F(x)), G(y) again after G changed. H: H(x) shared by all three, H(G(y)).
    # D_X, D_Y: one joint call (real, fake, boost) in the D update, one (real, fake) with the
    # new weights in the G update.
    assert calls == {"F": 4, "G": 3, "H": 2, "D_X": 2, "D_Y": 2}


def test_train_step_with_the_blind_spot_term_runs_F_once_more_and_reports_it() -> None:
    torch.manual_seed(0)
    model = ISCL(ISCLConfig(**{**TINY.to_dict(), "blind_spot_weight": 10.0}))
    calls = {"F": 0}
    model.F.register_forward_hook(lambda *_: calls.__setitem__("F", calls["F"] + 1))
    x, y = _batches()[0]
    losses = model.train_step(x, y, *build_optimizers(model, lr=1e-3, total_steps=10).step_optimizers())
    assert calls["F"] == 5  # F on the masked noisy batch, besides the four passes above
    assert losses["g_blind_spot"] > 0
    assert losses["g_total"] == pytest.approx(losses["g_adv_x"] + losses["g_adv_y"]
                                              + TINY.lam * (losses["g_cycle"] + losses["g_bypass"])
                                              + 10.0 * losses["g_blind_spot"], rel=1e-5)


def test_train_step_feeds_each_loss_the_right_forward_passes() -> None:
    """With a zero learning rate nothing changes between updates, so every term can be
    recomputed from the formulas on a copy of the model."""
    model = _tiny_model()
    reference = copy.deepcopy(model)
    frozen = [torch.optim.SGD([p for net in nets for p in getattr(model, net).parameters()], lr=0.0)
              for nets in (("D_X", "D_Y"), ("F", "G"), ("H",))]
    x, y = _batches()[0]
    losses = model.train_step(x, y, *frozen)

    with torch.no_grad():
        F, G, H, D_X, D_Y = (getattr(reference, net) for net in NETS)
        fx, gy, hx = F(x), G(y), H(x)

        def scores(D: nn.Module, *batches: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return D(torch.cat(batches)).split(len(x))

        _, d_terms = ISCL.discriminator_loss(*scores(D_X, x, gy, y + hx), *scores(D_Y, y, fx, x - hx))
        g_total, g_terms = reference.generator_loss(x, y, fx, hx, G(fx), F(gy), F(y + hx),
                                                    scores(D_Y, y, fx)[1], scores(D_X, x, gy)[1])
        h_total, h_terms = ISCL.extractor_loss(x, y, hx, fx, gy, H(gy))
    expected = {**d_terms, **g_terms, "g_total": g_total, **h_terms, "h_total": h_total}
    for name, value in expected.items():
        assert losses[name] == pytest.approx(value.item(), rel=1e-5, abs=1e-6), name


def test_the_discriminators_learn_to_tell_noisy_from_clean_batches() -> None:
    """Scored one batch per call, the batch statistics would cancel the difference between a
    noisy and a flat batch and the hinge loss would stay at 2 per discriminator."""
    model = _tiny_model()
    d = torch.optim.Adam([*model.D_X.parameters(), *model.D_Y.parameters()], lr=1e-3)
    frozen = [torch.optim.SGD([p for net in nets for p in getattr(model, net).parameters()], lr=0.0)
              for nets in (("F", "G"), ("H",))]
    generator = torch.Generator().manual_seed(2)
    hinge = []
    for _ in range(30):
        x = torch.rand(4, 1, PATCH, PATCH, generator=generator) * 2 - 1  # noise
        y = torch.full((4, 1, PATCH, PATCH), 0.2) + 0.01 * torch.randn(4, 1, PATCH, PATCH, generator=generator)
        hinge.append(model.train_step(x, y, d, *frozen)["d_hinge_y"])
    assert hinge[0] > 1.5
    assert sum(hinge[-5:]) / 5 < 1.0


def test_train_step_reports_every_term_and_consistent_totals() -> None:
    model = _tiny_model()
    x, y = _batches()[0]
    losses = model.train_step(x, y, *build_optimizers(model, lr=1e-3, total_steps=10).step_optimizers())
    assert set(losses) == {"d_hinge_x", "d_hinge_y", "d_boost", "d_total", "g_adv_x", "g_adv_y", "g_cycle",
                           "g_bypass", "g_mean", "g_total", "h_pseudo", "h_consistency", "h_total"}
    assert all(math.isfinite(value) for value in losses.values())
    assert losses["d_total"] == pytest.approx(losses["d_hinge_x"] + losses["d_hinge_y"] + losses["d_boost"], rel=1e-5)
    assert losses["g_total"] == pytest.approx(losses["g_adv_x"] + losses["g_adv_y"]
                                              + TINY.lam * (losses["g_cycle"] + losses["g_bypass"])
                                              + TINY.mean_weight * losses["g_mean"], rel=1e-5)
    assert losses["h_total"] == pytest.approx(losses["h_pseudo"] + losses["h_consistency"], rel=1e-5)


def test_bfloat16_autocast_step_runs_on_cpu() -> None:
    model = _tiny_model()
    optimizers = build_optimizers(model, lr=1e-3, total_steps=10)
    _past_the_held_steps(model, optimizers)
    dtypes: set[torch.dtype] = set()
    model.H.layers[0].register_forward_hook(lambda _m, _i, out: dtypes.add(out.dtype))
    before = [p.detach().clone() for p in model.parameters()]
    x, y = _batches()[0]
    losses = model.train_step(x, y, *optimizers.step_optimizers(), amp_dtype=torch.bfloat16)
    assert dtypes == {torch.bfloat16}
    assert all(math.isfinite(value) for value in losses.values())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_float16_autocast_is_refused() -> None:
    model = _tiny_model()
    x, y = _batches()[0]
    with pytest.raises(ValueError, match="bfloat16"):
        model.train_step(x, y, *build_optimizers(model, lr=1e-3, total_steps=10).step_optimizers(),
                         amp_dtype=torch.float16)


def test_channels_last_training_matches_contiguous_training() -> None:
    model = _tiny_model()
    channels_last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    x, y = _batches()[0]
    plain = model.train_step(x, y, *build_optimizers(model, lr=1e-3, total_steps=10).step_optimizers())
    last = channels_last.train_step(x.contiguous(memory_format=torch.channels_last),
                                    y.contiguous(memory_format=torch.channels_last),
                                    *build_optimizers(channels_last, lr=1e-3, total_steps=10).step_optimizers())
    assert last == pytest.approx(plain, rel=1e-4, abs=1e-5)


# --- optimisers ------------------------------------------------------------------------

def test_optimisers_cover_each_network_once_with_lookahead_on_d_and_h() -> None:
    model = _tiny_model()
    optimizers = build_optimizers(model, lr=1e-4, total_steps=10)
    d, g, h = optimizers.step_optimizers()

    def ids(optimizer) -> set[int]:
        return {id(p) for group in optimizer.param_groups for p in group["params"]}

    assert ids(d) == {id(p) for p in [*model.D_X.parameters(), *model.D_Y.parameters()]}
    assert ids(g) == {id(p) for p in [*model.F.parameters(), *model.G.parameters()]}
    assert ids(h) == {id(p) for p in model.H.parameters()}
    assert (d.k, d.alpha, h.k, h.alpha) == (6, 0.5, 6, 0.5)
    assert isinstance(d.optimizer, torch.optim.RAdam) and isinstance(g, torch.optim.RAdam)


def test_learning_rate_is_held_at_zero_then_decays_linearly_to_the_final_rate() -> None:
    model = _tiny_model()
    optimizers = build_optimizers(model, lr=1e-4, final_lr=1e-7, total_steps=10)
    seen = [optimizers.current_lr()]
    for _ in range(11):
        for optimizer in optimizers.step_optimizers():
            optimizer.step()  # no gradients: a no-op that keeps the schedulers' order check quiet
        optimizers.advance_schedules()
        seen.append(optimizers.current_lr())
    held = first_adaptive_step(0.999) - 1
    expected = [0.0 if i < held else 1e-4 + (1e-7 - 1e-4) * min(i, 10) / 10 for i in range(12)]
    assert seen == pytest.approx(expected, rel=1e-9)
    assert all(group["lr"] == pytest.approx(1e-7) for opt in optimizers.step_optimizers() for group in opt.param_groups)


def test_the_discriminators_can_have_their_own_learning_rate() -> None:
    model = _tiny_model()
    optimizers = build_optimizers(model, lr=1e-4, d_lr=1e-3, total_steps=10)
    _past_the_held_steps(model, optimizers)
    d_lr, g_lr, h_lr = (opt.param_groups[0]["lr"] for opt in optimizers.step_optimizers())
    progress = (first_adaptive_step(0.999) - 1) / 10  # each rate is this far along its own decay to 1e-7
    assert d_lr == pytest.approx(1e-3 + (1e-7 - 1e-3) * progress)
    assert g_lr == h_lr == pytest.approx(1e-4 + (1e-7 - 1e-4) * progress)


def test_training_resumes_bit_for_bit_from_saved_states() -> None:
    batches = _batches(count=8)  # saved and resumed past RAdam's held steps

    def run(model: ISCL, optimizers, steps) -> list[dict[str, float]]:
        losses = []
        for x, y in steps:
            losses.append(model.train_step(x, y, *optimizers.step_optimizers()))
            optimizers.advance_schedules()
        return losses

    model = _tiny_model(seed=0)
    optimizers = build_optimizers(model, lr=1e-3, total_steps=8)
    run(model, optimizers, batches[:6])
    saved = copy.deepcopy({"model": model.state_dict(), "optimizers": optimizers.state_dict()})
    uninterrupted = run(model, optimizers, batches[6:])

    resumed_model = _tiny_model(seed=1)
    resumed_optimizers = build_optimizers(resumed_model, lr=1e-3, total_steps=8)
    resumed_model.load_state_dict(saved["model"])
    resumed_optimizers.load_state_dict(saved["optimizers"])
    resumed = run(resumed_model, resumed_optimizers, batches[6:])

    assert resumed == uninterrupted
    for name, value in model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[name]), name
    assert resumed_optimizers.current_lr() == optimizers.current_lr()


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # schedules only, no steps
def test_restored_optimisers_take_the_new_schedule_when_a_run_is_extended() -> None:
    model = _tiny_model()
    short = build_optimizers(model, lr=1e-3, total_steps=100, final_lr=0.0)
    for _ in range(50):
        short.advance_schedules()
    assert short.current_lr() == pytest.approx(0.5e-3)  # half-way along a decay over 100 steps
    longer = build_optimizers(model, lr=1e-3, total_steps=200, final_lr=0.0)
    longer.load_state_dict(short.state_dict())
    assert longer.current_lr() == pytest.approx(0.75e-3)  # step 50 of 200, from the first step on
    assert [group["lr"] for group in longer.d.optimizer.param_groups] == [pytest.approx(0.75e-3)]
