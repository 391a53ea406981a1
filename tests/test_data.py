import numpy as np
import pytest
import torch

from iscl_cli.data import EMPTY_PATCH_STD, PatchSampler, augment_8fold
from iscl_cli.errors import IsclError
from iscl_cli.intensity import IntensityMapping
from models.iscl import NOISE_POSES
from tests.array_volume import ArrayVolume

MAPPING = IntensityMapping(0.0, 1.0, 0.0, 1.0, "window")


def sampler(volumes, patch=16, seed=0, **kwargs):
    return PatchSampler(volumes, MAPPING, "noisy", patch, np.random.default_rng(seed), **kwargs)


def test_the_eight_symmetries_are_distinct_and_exact():
    patch = np.arange(9.0).reshape(3, 3)
    variants = [augment_8fold(patch, k) for k in range(8)]
    assert len({v.tobytes() for v in variants}) == 8
    assert all(sorted(v.ravel()) == list(range(9)) for v in variants)


def test_row_noise_poses_keep_every_row_and_its_direction():
    # Each row holds one value plus a ramp to the right: turning a patch would show a column ramp.
    data = np.add.outer(np.arange(64.0), np.arange(64.0) / 64)[None] / 64
    batch = sampler([ArrayVolume(data)], poses=NOISE_POSES["rows"]).sample(16).numpy()[:, 0]
    rise = 2 / 64**2  # the ramp's step in model units ([0, 1] -> [-1, 1])
    assert np.allclose(np.diff(batch, axis=2), rise, atol=1e-5)  # every row still rises to the right
    every_pose = sampler([ArrayVolume(data)], poses=NOISE_POSES["any"]).sample(16).numpy()[:, 0]
    assert not np.allclose(np.diff(every_pose, axis=2), rise, atol=1e-5)


def test_batch_shape_and_model_units():
    volume = ArrayVolume(np.random.default_rng(1).uniform(0, 1, size=(5, 40, 50)))
    batch = sampler([volume]).sample(6)
    assert batch.shape == (6, 1, 16, 16) and batch.dtype == torch.float32
    assert batch.min() >= -1 and batch.max() <= 1


def test_same_seed_same_patches_and_cache_does_not_matter():
    volume = ArrayVolume(np.random.default_rng(2).uniform(0, 1, size=(20, 64, 64)))
    a = sampler([volume], cache_bytes=0).sample(8)
    b = sampler([volume], cache_bytes=2**30).sample(8)
    assert (a == b).all()


def test_near_empty_patches_are_redrawn():
    data = np.zeros((1, 64, 64))
    data[0, :, 48:] = np.random.default_rng(3).uniform(0, 1, size=(64, 16))  # texture only on the right
    patches = sampler([ArrayVolume(data)], seed=4).sample(32).numpy()
    textured = patches.reshape(32, -1).std(axis=1) >= EMPTY_PATCH_STD
    assert textured.mean() > 0.9


def test_slices_smaller_than_the_patch_are_refused():
    with pytest.raises(IsclError, match="smaller than the 32x32"):
        sampler([ArrayVolume(np.zeros((1, 20, 64)))], patch=32)


def test_nan_slices_are_refused_naming_the_volume():
    data = np.random.default_rng(5).uniform(size=(1, 32, 32))
    data[0, 0, 0] = np.inf
    with pytest.raises(IsclError, match="array.tif: slice 0 contains NaN"):
        sampler([ArrayVolume(data)]).sample(2)
