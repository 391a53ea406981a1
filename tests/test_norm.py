"""BatchInstanceNorm2d: the mix of batch and instance statistics, and its eval-mode behaviour."""

from __future__ import annotations

import pytest
import torch

from models.norm import BatchInstanceNorm2d, block_size, clamp_rho_, local_statistics


def _norm(channels: int = 3, rho: float = 0.5, window: int | None = None) -> BatchInstanceNorm2d:
    norm = BatchInstanceNorm2d(channels, instance_window=window)
    with torch.no_grad():
        norm.rho.fill_(rho)
        norm.weight.copy_(torch.linspace(0.5, 2.0, channels))
        norm.bias.copy_(torch.linspace(-1.0, 1.0, channels))
    return norm


def _standardise(x: torch.Tensor, dims: tuple[int, ...], eps: float = 1e-5) -> torch.Tensor:
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps)


def test_training_output_mixes_batch_and_instance_normalisation() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 7) * 3 + 2
    norm = _norm(rho=0.3)
    expected_unit = 0.3 * _standardise(x, (0, 2, 3)) + 0.7 * _standardise(x, (2, 3))
    expected = expected_unit * norm.weight.view(1, 3, 1, 1) + norm.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(norm(x), expected, rtol=1e-5, atol=1e-5)


def test_rho_one_is_batch_norm_and_zero_is_instance_norm() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 2, 6, 6)
    batch_mix, instance_mix = BatchInstanceNorm2d(2), BatchInstanceNorm2d(2)
    with torch.no_grad():
        instance_mix.rho.zero_()
    torch.testing.assert_close(batch_mix(x), torch.nn.BatchNorm2d(2)(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(instance_mix(x), torch.nn.InstanceNorm2d(2)(x), rtol=1e-5, atol=1e-5)


def test_running_statistics_follow_torch_batch_norm() -> None:
    torch.manual_seed(0)
    norm, reference = BatchInstanceNorm2d(3), torch.nn.BatchNorm2d(3)
    for _ in range(3):
        x = torch.randn(4, 3, 5, 5) * 2 + 1
        norm(x)
        reference(x)
    torch.testing.assert_close(norm.running_mean, reference.running_mean)
    torch.testing.assert_close(norm.running_var, reference.running_var)


def test_eval_mode_uses_running_statistics_and_is_batch_independent() -> None:
    torch.manual_seed(0)
    norm = _norm(rho=0.6, window=8)
    for _ in range(5):
        norm(torch.randn(4, 3, 12, 12) * 2 + 1)
    norm.eval()
    batch = torch.randn(3, 3, 12, 12)
    alone = norm(batch[:1])
    with_others = norm(batch)[:1]
    torch.testing.assert_close(alone, with_others)
    running_mean_before = norm.running_mean.clone()
    norm(batch * 10)
    assert torch.equal(norm.running_mean, running_mean_before), "eval mode must not update running statistics"


def test_without_running_statistics_eval_keeps_using_the_batch() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 2, 6, 6)
    norm = BatchInstanceNorm2d(2, track_running_stats=False)
    training_output = norm(x)
    norm.eval()
    torch.testing.assert_close(norm(x), training_output)
    assert not hasattr(norm, "running_mean")


@pytest.mark.parametrize("shape", [(1, 1), (5, 1), (9, 13), (30, 17)])
@pytest.mark.parametrize("window", [1, 3, 8, 13, 40])
def test_local_statistics_match_brute_force_over_blocks_cut_at_borders(shape: tuple[int, int], window: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, *shape, dtype=torch.float64)
    block = block_size(window)
    reach = (window // block) // 2  # blocks on each side
    mean, var = local_statistics(x, window, torch.zeros(1, 3, 1, 1, dtype=torch.float64))
    rows, cols = -(-shape[0] // block), -(-shape[1] // block)
    assert mean.shape == var.shape == (2, 3, rows, cols)
    for i in range(rows):
        for j in range(cols):
            region = x[..., max(0, (i - reach) * block):(i + reach + 1) * block,
                       max(0, (j - reach) * block):(j + reach + 1) * block]
            torch.testing.assert_close(mean[..., i, j], region.mean(dim=(-2, -1)))
            torch.testing.assert_close(var[..., i, j], region.var(dim=(-2, -1), unbiased=False))


def test_local_variance_is_precise_for_offset_data() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 2, 300, 300) * 0.01 + 50.0
    reference = torch.full((1, 2, 1, 1), 50.0)
    mean, var = local_statistics(x, 64, reference)
    exact_mean, exact_var = local_statistics(x.double(), 64, reference.double())
    torch.testing.assert_close(mean, exact_mean.float(), rtol=0, atol=1e-5)
    torch.testing.assert_close(var, exact_var.float(), rtol=1e-3, atol=1e-9)


@pytest.mark.parametrize("window", [2, 12])
def test_windowed_eval_is_translation_equivariant_away_from_crop_borders(window: int) -> None:
    torch.manual_seed(0)
    norm = _norm(rho=0.4, window=window)
    norm(torch.randn(4, 3, 32, 32))
    norm.eval()
    whole = torch.randn(1, 3, 100, 110)
    block = block_size(window)
    top, left, height, width = 2 * block, 3 * block, 72, 80  # the crop starts on the block grid
    crop = whole[..., top:top + height, left:left + width]
    margin = 2 * window
    inner = (..., slice(margin, height - margin), slice(margin, width - margin))
    whole_inner = norm(whole)[..., top:top + height, left:left + width][inner]
    torch.testing.assert_close(norm(crop)[inner], whole_inner, rtol=1e-5, atol=1e-5)


def test_whole_tile_instance_statistics_depend_on_the_crop() -> None:
    torch.manual_seed(0)
    norm = _norm(rho=0.4, window=None)
    norm(torch.randn(4, 3, 32, 32))
    norm.eval()
    whole = torch.randn(1, 3, 40, 48)
    crop = whole[..., 8:28, 8:32]
    difference = (norm(crop)[..., 8:12, 8:12] - norm(whole)[..., 16:20, 16:20]).abs().max()
    assert difference > 1e-3


def test_a_window_covering_the_tile_equals_whole_tile_statistics() -> None:
    torch.manual_seed(0)
    windowed, whole_tile = _norm(rho=0.4, window=64), _norm(rho=0.4, window=None)
    x = torch.randn(2, 3, 20, 24)  # 2 x 2 blocks of 16, each reaching 2 blocks around
    windowed(x)
    whole_tile(x)
    windowed.eval()
    whole_tile.eval()
    torch.testing.assert_close(windowed(x), whole_tile(x), rtol=1e-5, atol=1e-5)


def test_bfloat16_input_keeps_its_dtype_and_channels_last_works() -> None:
    torch.manual_seed(0)
    norm = _norm(rho=0.5, window=5)
    x = torch.randn(2, 3, 8, 8)
    out = norm(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), _norm(rho=0.5, window=5)(x), rtol=0.05, atol=0.05)
    norm.eval()
    torch.testing.assert_close(norm(x.contiguous(memory_format=torch.channels_last)), norm(x))


def test_clamp_rho_keeps_the_mix_in_unit_interval() -> None:
    model = torch.nn.Sequential(BatchInstanceNorm2d(3), BatchInstanceNorm2d(2))
    with torch.no_grad():
        model[0].rho.copy_(torch.tensor([-0.5, 0.5, 1.5]))
        model[1].rho.fill_(2.0)
    clamp_rho_(model)
    assert model[0].rho.tolist() == [0.0, 0.5, 1.0]
    assert model[1].rho.tolist() == [1.0, 1.0]
