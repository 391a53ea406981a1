"""The science of iscl: the ISCL networks, objective and optimisers, in pure torch (no file I/O)."""

from models.iscl import ISCL, ISCLConfig, ISCLOptimizers, build_optimizers
from models.lookahead import Lookahead
from models.networks import Discriminator, NoiseExtractor, ResnetGenerator
from models.norm import BatchInstanceNorm2d

__all__ = [
    "BatchInstanceNorm2d",
    "Discriminator",
    "ISCL",
    "ISCLConfig",
    "ISCLOptimizers",
    "Lookahead",
    "NoiseExtractor",
    "ResnetGenerator",
    "build_optimizers",
]
