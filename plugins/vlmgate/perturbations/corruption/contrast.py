"""Contrast: pull every channel toward its image mean, ``(x - mean)·factor + mean`` (ImageNet-C)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vlmgate.perturbations.corruption.family import CorruptionFamily
from vlmgate.perturbations.corruption.table import SeverityTable


class ContrastParams(NamedTuple):
    factor: float  #: 1 is the identity, 0 a flat image of the channel means


class Contrast(CorruptionFamily):
    name = "contrast"
    description = "ImageNet-C contrast: deviations from the channel means scaled by 0.4 down to 0.05"
    table = SeverityTable(
        identity=ContrastParams(1.0),
        rows=(ContrastParams(0.4), ContrastParams(0.3), ContrastParams(0.2),
              ContrastParams(0.1), ContrastParams(0.05)),
    )

    def corrupt(self, pixels: np.ndarray, params: ContrastParams, rng: np.random.Generator) -> np.ndarray:
        means = pixels.mean(axis=(0, 1), keepdims=True)
        return (pixels - means) * np.float32(params.factor) + means
