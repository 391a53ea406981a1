"""Per-slice inference: tile options, physical units in and out, symmetry averaging."""

import numpy as np
import pytest
import torch

from iscl_cli.devices import autocast_dtype
from iscl_cli.errors import IsclError
from iscl_cli.inference import TileOptions, symmetry_average, tiled_in_physical_units
from iscl_cli.intensity import IntensityMapping
from models.iscl import NOISE_POSES

MAPPING = IntensityMapping(0.0, 100.0, 0.0, 100.0, "test")


def test_symmetry_average_of_a_pixelwise_network_is_the_network():
    square = lambda batch: batch**2  # noqa: E731 - pointwise, so every pose gives the same answer
    batch = torch.rand(2, 1, 12, 9)
    assert torch.allclose(symmetry_average(square, NOISE_POSES["any"])(batch), square(batch), atol=1e-6)
    assert symmetry_average(square, (0,)) is square


def test_symmetry_average_is_the_mean_over_the_poses_and_keeps_the_shape():
    def shift_right(batch):  # not symmetric: each pose moves the image a different way
        return torch.roll(batch, 1, dims=-1)

    batch = torch.rand(1, 1, 6, 10)
    averaged = symmetry_average(shift_right, (0, 1, 2, 3))(batch)
    # Quarter turns k = 0..3 turn a shift to the right into right, down, left and up shifts.
    expected = sum(torch.roll(batch, shift, dims=dim) for shift, dim in ((1, -1), (-1, -2), (-1, -1), (1, -2))) / 4
    assert averaged.shape == batch.shape
    assert torch.allclose(averaged, expected, atol=1e-6)


def test_symmetry_average_of_eight_poses_is_invariant_to_flipping_the_input():
    torch.manual_seed(0)
    network = torch.nn.Conv2d(1, 1, 3, padding=1)
    batch = torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        averaged = symmetry_average(network, NOISE_POSES["any"])
        assert torch.allclose(averaged(batch.flip(-1)), averaged(batch).flip(-1), atol=1e-5)


def test_symmetry_average_over_the_row_noise_poses_keeps_rows_and_their_direction():
    def shift_right(batch):  # a trail to the right: what row-scan noise looks like
        return torch.roll(batch, 1, dims=-1)

    batch = torch.rand(1, 1, 6, 10)
    averaged = symmetry_average(shift_right, NOISE_POSES["rows"])(batch)
    # The top-bottom mirror keeps a shift along the rows as it is: no pose turns it.
    assert torch.allclose(averaged, shift_right(batch), atol=1e-6)
    sideways = symmetry_average(shift_right, NOISE_POSES["columns"])(batch)
    assert not torch.allclose(sideways, shift_right(batch), atol=1e-3)


def test_tiled_inference_works_in_physical_units_with_symmetries():
    image = np.linspace(0, 100, 40 * 56, dtype=np.float32).reshape(40, 56)
    out = tiled_in_physical_units(image, lambda x: x, 1, torch.device("cpu"), MAPPING,
                                  TileOptions(tile_size=32, overlap=8, symmetries=8))
    assert out.shape == image.shape
    assert np.allclose(out, image, atol=1e-3)


@pytest.mark.parametrize("symmetries", [0, 3, 16])
def test_other_symmetry_counts_are_refused_in_one_line(symmetries):
    with pytest.raises(IsclError, match="--symmetries must be 1, 2, 4 or 8"):
        TileOptions(symmetries=symmetries).validated()


def test_precision_is_fp32_on_a_cpu_unless_asked_and_unknown_names_are_refused():
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu) is None and autocast_dtype(cpu, "fp32") is None
    assert autocast_dtype(cpu, "bf16") is torch.bfloat16 and autocast_dtype(cpu, "fp16") is torch.float16
    with pytest.raises(IsclError, match="--precision must be one of fp32, bf16, fp16"):
        TileOptions(precision="fp8").validated()


def test_a_stack_of_slices_comes_back_in_its_shape_and_order():
    stack = np.linspace(0, 100, 3 * 20 * 30, dtype=np.float32).reshape(3, 20, 30)
    out = tiled_in_physical_units(stack, lambda x: x.flip(-1), 1, torch.device("cpu"), MAPPING,
                                  TileOptions(tile_size=32, overlap=8, batch_size=4, symmetries=1))
    assert out.shape == stack.shape
    np.testing.assert_allclose(out, stack[..., ::-1], atol=1e-3)
