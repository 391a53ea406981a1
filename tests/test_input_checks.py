import numpy as np
import pytest

from iscl_cli.errors import IsclError
from iscl_cli.input_checks import InputTally, fill_non_finite
from iscl_cli.intensity import IntensityMapping

MAPPING = IntensityMapping(0.0, 100.0, 0.0, 100.0, "window 0,100")


def test_non_finite_pixels_take_their_nearest_finite_neighbour():
    image = np.array([[1.0, np.nan, -np.inf, 7.0, 7.0, 7.0]], np.float32)
    filled, odd = fill_non_finite(image)
    assert filled.tolist() == [[1.0, 1.0, 7.0, 7.0, 7.0, 7.0]]
    assert odd.tolist() == [[False, True, True, False, False, False]]
    assert fill_non_finite(np.ones((2, 2), np.float32))[1] is None
    assert fill_non_finite(np.full((2, 2), np.nan, np.float32))[0].tolist() == [[0, 0], [0, 0]]


def test_clipping_is_counted_over_finite_pixels_and_refused_past_half():
    tally = InputTally("scan.tif", MAPPING)
    image = np.array([[50.0, 150.0, np.inf, np.nan]], np.float32)
    tally.add(0, image, ~np.isfinite(image))
    assert (tally.pixels, tally.clipped, tally.non_finite) == (4, 1, 2)
    with pytest.raises(IsclError, match="scan.tif: slice 1: 66.7% of its pixels"):
        tally.add(1, np.array([[50.0, 150.0, -5.0]], np.float32), None)
    InputTally("scan.tif", MAPPING, allow_clipping=True).add(1, np.array([[150.0]], np.float32), None)
