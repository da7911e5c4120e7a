"""Speckle noise: multiplicative Gaussian noise, ``x + x·N(0, sigma²)`` (ImageNet-C extra)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vlmgate.perturbations.corruption.family import CorruptionFamily
from vlmgate.perturbations.corruption.table import SeverityTable


class SpeckleNoiseParams(NamedTuple):
    sigma: float  #: standard deviation of the multiplicative factor


class SpeckleNoise(CorruptionFamily):
    name = "speckle_noise"
    description = "ImageNet-C speckle (multiplicative Gaussian) noise, sigma 0.15-0.6"
    table = SeverityTable(
        identity=SpeckleNoiseParams(0.0),
        rows=(SpeckleNoiseParams(0.15), SpeckleNoiseParams(0.20), SpeckleNoiseParams(0.35),
              SpeckleNoiseParams(0.45), SpeckleNoiseParams(0.60)),
    )

    def corrupt(self, pixels: np.ndarray, params: SpeckleNoiseParams, rng: np.random.Generator) -> np.ndarray:
        noise = rng.standard_normal(pixels.shape, dtype=np.float32)
        return pixels + pixels * np.float32(params.sigma) * noise
