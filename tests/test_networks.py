"""The networks: shapes for any input size, padding, layer counts, eval-mode batch independence."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.networks import Discriminator, NoiseExtractor, ResnetGenerator, UNet, reflect_pad
from models.norm import BatchInstanceNorm2d

ODD_SIZES = [(1, 1), (2, 3), (3, 2), (7, 9), (37, 53), (64, 64)]


def _warmed_up(net: nn.Module, channels: int = 1, size: int = 16) -> nn.Module:
    """A few training-mode passes (so running statistics are not trivial), rho mixed, then eval."""
    torch.manual_seed(0)
    for module in net.modules():
        if isinstance(module, BatchInstanceNorm2d):
            with torch.no_grad():
                module.rho.fill_(0.5)
    with torch.no_grad():
        for _ in range(2):
            net(torch.rand(4, channels, size, size) * 2 - 1)
    return net.eval()


@pytest.mark.parametrize("size", ODD_SIZES)
def test_generator_output_has_the_input_shape_and_range(size: tuple[int, int]) -> None:
    generator = _warmed_up(ResnetGenerator(channels=1, base=4, blocks=1, instance_window=16))
    with torch.no_grad():
        out = generator(torch.rand(2, 1, *size) * 2 - 1)
    assert out.shape == (2, 1, *size)
    assert out.abs().max() <= 1.0


@pytest.mark.parametrize("size", ODD_SIZES)
def test_extractor_output_has_the_input_shape(size: tuple[int, int]) -> None:
    extractor = _warmed_up(NoiseExtractor(channels=1, width=4, depth=3, instance_window=16))
    with torch.no_grad():
        assert extractor(torch.rand(2, 1, *size)).shape == (2, 1, *size)


def test_three_channel_images_keep_their_channels() -> None:
    generator = ResnetGenerator(channels=3, base=4, blocks=1)
    extractor = NoiseExtractor(channels=3, width=4, depth=3)
    x = torch.rand(2, 3, 9, 10)
    assert generator(x).shape == x.shape
    assert extractor(x).shape == x.shape


@pytest.mark.parametrize("size", ODD_SIZES)
def test_an_untrained_residual_generator_is_the_identity(size: tuple[int, int]) -> None:
    generator = ResnetGenerator(channels=1, base=4, blocks=1, instance_window=16, residual=True)
    x = torch.rand(2, 1, *size) * 2 - 1
    assert torch.equal(generator(x), x)
    assert torch.equal(_warmed_up(generator)(x), x)


def test_a_residual_generator_learns_away_from_the_identity() -> None:
    torch.manual_seed(0)
    generator = ResnetGenerator(channels=1, base=4, blocks=1, instance_window=16, residual=True)
    optimizer = torch.optim.SGD(generator.parameters(), lr=0.1)
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    for _ in range(3):  # the first step moves only the zeroed last layer; then gradients reach the rest
        optimizer.zero_grad()
        (generator(x) - 0.5 * x).abs().mean().backward()
        optimizer.step()
    assert not torch.equal(generator(x), x)
    assert generator.encoder[0].weight.grad.abs().sum() > 0


def test_a_zero_start_extractor_finds_no_noise_before_training() -> None:
    extractor = NoiseExtractor(channels=1, width=4, depth=3, instance_window=16, zero_start=True)
    assert torch.equal(extractor(torch.rand(2, 1, 9, 7)), torch.zeros(2, 1, 9, 7))


def test_generator_crop_is_the_output_on_the_padded_input() -> None:
    generator = _warmed_up(ResnetGenerator(channels=1, base=4, blocks=1, instance_window=16))
    x = torch.rand(1, 1, 10, 7) * 2 - 1
    padded = reflect_pad(x, 0, 1, 0, 2)
    with torch.no_grad():
        torch.testing.assert_close(generator(x), generator(padded)[..., :10, :7])


def test_reflect_pad_mirrors_and_falls_back_for_tiny_inputs() -> None:
    row = torch.tensor([[[[1.0, 2.0, 3.0]]]])
    assert reflect_pad(row, 2, 1, 0, 0).flatten().tolist() == [3.0, 2.0, 1.0, 2.0, 3.0, 2.0]
    # A pad larger than the size mirrors again: ... 2 1 2 3 2 1 2 ...
    assert reflect_pad(row, 0, 4, 0, 0).flatten().tolist() == [1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0]
    single = torch.tensor([[[[5.0]]]])
    padded = reflect_pad(single, 3, 3, 2, 1)
    assert padded.shape == (1, 1, 4, 7)
    assert torch.all(padded == 5.0)
    # One row, several columns: columns are mirrored, rows replicated.
    assert reflect_pad(row, 1, 0, 1, 1)[0, 0].tolist() == [[2.0, 1.0, 2.0, 3.0]] * 3


def _count(net: nn.Module, kind: type) -> int:
    return sum(isinstance(module, kind) for module in net.modules())


def test_layer_counts_and_widths_follow_the_paper_defaults() -> None:
    generator, extractor, discriminator = ResnetGenerator(), NoiseExtractor(), Discriminator()
    # 7x7, two stride-2, 3 blocks x 2, 7x7 convolutions; two transposed convolutions.
    assert _count(generator, nn.Conv2d) == 10
    assert _count(generator, nn.ConvTranspose2d) == 2
    assert max(m.out_channels for m in generator.modules() if isinstance(m, nn.Conv2d)) == 128
    assert _count(extractor, nn.Conv2d) == 20
    assert _count(extractor, BatchInstanceNorm2d) == 18
    assert {m.out_channels for m in extractor.modules() if isinstance(m, nn.Conv2d)} == {32, 1}
    assert [m.out_channels for m in discriminator.modules() if isinstance(m, nn.Conv2d)] == [32, 64, 128, 256, 512, 1]


def test_extractor_output_is_linear_and_generator_output_is_tanh() -> None:
    extractor = NoiseExtractor(channels=1, width=4, depth=3)
    with torch.no_grad():
        extractor.layers[-1].bias.fill_(5.0)
        assert extractor(torch.rand(1, 1, 8, 8)).min() > 1.0  # no squashing of the noise map
    assert isinstance(ResnetGenerator().decoder[-1], nn.Tanh)


def test_discriminator_scores_one_value_per_image_at_its_smallest_input() -> None:
    discriminator = Discriminator(channels=1, base=4, layers=2)
    assert discriminator.min_input_size == 16
    assert discriminator(torch.rand(3, 1, 16, 16)).shape == (3, 1, 1, 1)
    assert discriminator(torch.rand(3, 1, 32, 24)).shape == (3, 1, 5, 3)
    with pytest.raises(ValueError, match="at least 16"):
        discriminator(torch.rand(1, 1, 15, 32))


def test_discriminator_normalisation_keeps_no_running_statistics() -> None:
    discriminator = Discriminator(channels=1, base=4, layers=2)
    assert not any(name.endswith("running_mean") for name, _ in discriminator.named_buffers())


@pytest.mark.parametrize("make", [
    lambda: ResnetGenerator(channels=1, base=4, blocks=1, instance_window=16),
    lambda: NoiseExtractor(channels=1, width=4, depth=3, instance_window=16),
    lambda: NoiseExtractor(channels=1, width=4, depth=3, instance_window=None),
])
def test_eval_output_of_an_image_does_not_depend_on_the_rest_of_the_batch(make) -> None:
    net = _warmed_up(make())
    batch = torch.rand(3, 1, 20, 24) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(net(batch[1:2]), net(batch)[1:2])


def test_channels_last_input_gives_the_same_output() -> None:
    generator = _warmed_up(ResnetGenerator(channels=3, base=4, blocks=1, instance_window=16), channels=3)
    x = torch.rand(2, 3, 12, 20) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(generator(x.contiguous(memory_format=torch.channels_last)), generator(x))


@pytest.mark.parametrize("size", ODD_SIZES)
def test_unet_keeps_any_input_size_and_starts_as_the_identity(size):
    net = UNet(channels=1, base=4, depth=2)
    x = torch.rand(2, 1, *size) * 2 - 1
    assert torch.equal(net(x), x)
    assert UNet(channels=1, base=4, depth=2, residual=False)(x).abs().max() == 0  # an extractor finds no noise


def test_unet_from_random_weights_is_not_the_identity_and_depends_only_on_its_tile():
    torch.manual_seed(0)
    net = UNet(channels=1, base=4, depth=2, residual=False, zero_start=False).eval()
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        alone = net(x[:1])
        together = net(x)[:1]
    assert alone.abs().max() > 0
    assert torch.allclose(alone, together, atol=1e-6)  # no normalisation: the batch does not matter


def test_unet_with_random_inputs_varies_from_call_to_call_like_noise():
    torch.manual_seed(0)
    net = UNet(channels=1, base=4, depth=1, random_inputs=2, zero_start=False)
    y = torch.zeros(1, 1, 16, 16)
    with torch.no_grad():
        first, second = net(y), net(y)
    assert not torch.allclose(first, second)
    assert net.down[0][0].in_channels == 3


def test_a_residual_generator_from_random_weights_adds_a_correction_without_tanh():
    torch.manual_seed(0)
    generator = ResnetGenerator(channels=1, base=4, blocks=1, instance_window=16, residual=True, zero_start=False)
    x = torch.full((2, 1, 16, 16), 0.95)
    out = generator(x)
    assert not torch.equal(out, x)
    assert out.abs().max() > 1.0  # no tanh: the input's range passes through, plus the correction
