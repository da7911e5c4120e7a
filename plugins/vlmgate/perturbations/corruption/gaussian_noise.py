"""Gaussian noise: additive, independent per pixel and channel (ImageNet-C)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vlmgate.perturbations.corruption.family import CorruptionFamily
from vlmgate.perturbations.corruption.table import SeverityTable


class GaussianNoiseParams(NamedTuple):
    sigma: float  #: standard deviation on the [0, 1] pixel scale


class GaussianNoise(CorruptionFamily):
    name = "gaussian_noise"
    description = "ImageNet-C Gaussian noise, sigma 0.08-0.38 of the pixel range"
    table = SeverityTable(
        identity=GaussianNoiseParams(0.0),
        rows=(GaussianNoiseParams(0.08), GaussianNoiseParams(0.12), GaussianNoiseParams(0.18),
              GaussianNoiseParams(0.26), GaussianNoiseParams(0.38)),
    )

    def corrupt(self, pixels: np.ndarray, params: GaussianNoiseParams, rng: np.random.Generator) -> np.ndarray:
        noise = rng.standard_normal(pixels.shape, dtype=np.float32)
        return pixels + np.float32(params.sigma) * noise
