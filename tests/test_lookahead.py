"""Lookahead: the slow/fast weight rule, and saving/restoring its state exactly."""

from __future__ import annotations

import copy

import pytest
import torch

from models.lookahead import Lookahead


def _sgd_steps(lookahead: Lookahead, param: torch.Tensor, slope: torch.Tensor, count: int) -> None:
    """``count`` steps on the loss sum(slope * param), whose gradient is ``slope``."""
    for _ in range(count):
        lookahead.zero_grad()
        (slope * param).sum().backward()
        lookahead.step()


def test_every_k_steps_slow_moves_alpha_towards_fast_and_fast_restarts_there() -> None:
    start = torch.tensor([1.0, -2.0])
    slope = torch.tensor([0.5, 1.0])
    lr = 0.1
    param = torch.nn.Parameter(start.clone())
    lookahead = Lookahead(torch.optim.SGD([param], lr=lr), k=3, alpha=0.5)

    _sgd_steps(lookahead, param, slope, 2)
    torch.testing.assert_close(param.detach(), start - 2 * lr * slope)  # plain fast steps
    torch.testing.assert_close(lookahead.slow_weights[0], start)

    _sgd_steps(lookahead, param, slope, 1)
    first_sync = start + 0.5 * ((start - 3 * lr * slope) - start)
    torch.testing.assert_close(lookahead.slow_weights[0], first_sync)
    torch.testing.assert_close(param.detach(), first_sync)

    _sgd_steps(lookahead, param, slope, 3)
    second_sync = first_sync + 0.5 * ((first_sync - 3 * lr * slope) - first_sync)
    torch.testing.assert_close(param.detach(), second_sync)


def _quadratic_run(lookahead: Lookahead, param: torch.Tensor, steps: int) -> None:
    target = torch.linspace(-1.0, 1.0, param.numel()).view_as(param)
    for _ in range(steps):
        lookahead.zero_grad()
        ((param - target) ** 2).sum().backward()
        lookahead.step()


def test_state_dict_round_trip_continues_bit_for_bit() -> None:
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(3, 4))
    lookahead = Lookahead(torch.optim.RAdam([param], lr=0.05), k=3, alpha=0.5)
    _quadratic_run(lookahead, param, 4)
    saved_param, saved_state = param.detach().clone(), copy.deepcopy(lookahead.state_dict())  # as torch.save would

    _quadratic_run(lookahead, param, 5)

    restored = torch.nn.Parameter(saved_param.clone())
    restored_lookahead = Lookahead(torch.optim.RAdam([restored], lr=0.05), k=3, alpha=0.5)
    restored_lookahead.load_state_dict(saved_state)
    assert restored_lookahead.fast_steps == 4
    _quadratic_run(restored_lookahead, restored, 5)
    assert torch.equal(restored.detach(), param.detach())


def test_learning_rate_schedulers_attach_to_the_wrapped_optimiser() -> None:
    param = torch.nn.Parameter(torch.ones(2))
    lookahead = Lookahead(torch.optim.SGD([param], lr=1.0))
    scheduler = torch.optim.lr_scheduler.LinearLR(lookahead.optimizer, start_factor=1.0, end_factor=0.5, total_iters=2)
    _sgd_steps(lookahead, param, torch.ones(2), 1)
    scheduler.step()
    assert lookahead.param_groups[0]["lr"] == pytest.approx(0.75)


def test_loading_a_state_of_another_shape_is_refused() -> None:
    one = Lookahead(torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1))
    two = Lookahead(torch.optim.SGD([torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(1))], lr=0.1))
    with pytest.raises(ValueError, match="slow weights"):
        one.load_state_dict(two.state_dict())


@pytest.mark.parametrize(("k", "alpha"), [(0, 0.5), (6, -0.1), (6, 1.5)])
def test_invalid_settings_are_refused(k: int, alpha: float) -> None:
    with pytest.raises(ValueError):
        Lookahead(torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1), k=k, alpha=alpha)
