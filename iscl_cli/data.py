"""Unpaired random patch sampling for training.

Each domain has its own sampler; noisy and clean patches are drawn independently (the
data are unpaired). Patches come from slices read on demand, so a stack far larger than
memory trains without being loaded. All randomness comes from one numpy Generator whose
state is saved in checkpoints, so a resumed run draws exactly the same patches.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from iscl_cli.errors import IsclError
from iscl_cli.intensity import IntensityMapping
from iscl_cli.volume import Volume
from models.iscl import NOISE_POSES

# A patch whose standard deviation in model units ([-1, 1]) is below this is "near-empty"
# (flat background, air outside a CT body): it teaches nothing, so it is redrawn.
EMPTY_PATCH_STD = 0.02
REDRAWS = 10


def augment_8fold(patch: np.ndarray, choice: int) -> np.ndarray:
    """One of the 8 symmetries of the square: ``choice % 4`` quarter turns, flipped if ``choice >= 4``."""
    turned = np.rot90(patch, choice % 4)
    return np.ascontiguousarray(turned[:, ::-1] if choice >= 4 else turned)


class PatchSampler:
    """Random square patches from one domain's volumes, in model units.

    Args:
        volumes: the domain's volumes (TIFF stacks, DICOM series; mixed freely).
        mapping: physical units -> [-1, 1].
        domain: ``"noisy"`` or ``"clean"`` (which range of ``mapping`` applies).
        patch_size: side of the square patches.
        rng: the generator every random choice comes from.
        slices_per_batch: distinct slices a batch is drawn from (bounds reads per step).
        cache_bytes: memory for slices kept between batches (a pure cache: results do not depend on it).
        poses: the symmetries of the square (``augment_8fold``'s choices) a patch is drawn in.
    """

    def __init__(self, volumes: Sequence[Volume], mapping: IntensityMapping, domain: str, patch_size: int,
                 rng: np.random.Generator, slices_per_batch: int = 4, cache_bytes: int = 256 * 2**20,
                 poses: Sequence[int] = NOISE_POSES["any"]) -> None:
        self.mapping = mapping
        self.poses = tuple(poses)
        self.domain = domain
        self.patch_size = patch_size
        self.rng = rng
        self.slices_per_batch = slices_per_batch
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self.slots = [(v, i) for v, volume in enumerate(volumes) for i in range(len(volume))]
        self.volumes = list(volumes)
        for volume in self.volumes:
            rows, cols = volume.shape
            if min(rows, cols) < patch_size:
                raise IsclError(f"slices are {rows}x{cols}, smaller than the {patch_size}x{patch_size} "
                                "training patch; use a smaller --patch-size", volume.source)
        if not self.slots:
            raise IsclError(f"no slices to train on in the {domain} data")

    def sample(self, batch_size: int) -> torch.Tensor:
        """A ``(batch_size, 1, patch, patch)`` float32 tensor of augmented patches."""
        n_slices = min(self.slices_per_batch, batch_size)
        picks = self.rng.integers(len(self.slots), size=n_slices)
        patches = [self._patch(self._slice(picks[k % n_slices])) for k in range(batch_size)]
        return torch.from_numpy(np.stack(patches)[:, None])

    def _patch(self, image: np.ndarray) -> np.ndarray:
        rows, cols = image.shape
        size = self.patch_size
        for _ in range(REDRAWS):
            top = self.rng.integers(rows - size + 1)
            left = self.rng.integers(cols - size + 1)
            patch = image[top:top + size, left:left + size]
            if patch.std() >= EMPTY_PATCH_STD:
                break
        return augment_8fold(patch, self.poses[int(self.rng.integers(len(self.poses)))])

    def _slice(self, slot: int) -> np.ndarray:
        volume_index, slice_index = self.slots[slot]
        key = (volume_index, slice_index)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        volume = self.volumes[volume_index]
        image = self.mapping.to_model(volume.read_finite_slice(slice_index), self.domain)
        self._cache[key] = image
        while len(self._cache) > 1 and sum(a.nbytes for a in self._cache.values()) > self.cache_bytes:
            self._cache.popitem(last=False)
        return image

    def summary(self) -> dict[str, Any]:
        """What the model card records about this domain's data."""
        return {
            "volumes": [str(v.source) for v in self.volumes],
            "slices": len(self.slots),
            "pixels": int(sum(v.shape[0] * v.shape[1] * len(v) for v in self.volumes)),
        }
