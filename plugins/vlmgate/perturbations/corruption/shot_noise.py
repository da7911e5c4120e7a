"""Shot (Poisson) noise: photon counting at ``photons`` counts per unit intensity.

The published table gives the photon count per severity (60, 25, 12, 5, 3); fewer photons
is more noise and infinitely many is the clean image, so the table interpolates the
*inverse* count (the noise variance per unit intensity), which is 0 at the identity and
reproduces the published counts exactly at integer severities.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vlmgate.perturbations.corruption.family import CorruptionFamily
from vlmgate.perturbations.corruption.table import SeverityTable


class ShotNoiseParams(NamedTuple):
    inverse_photons: float  #: 1 / photon count; 0 is noise-free


class ShotNoise(CorruptionFamily):
    name = "shot_noise"
    description = "ImageNet-C shot (Poisson) noise, 60 down to 3 photons per unit intensity"
    table = SeverityTable(
        identity=ShotNoiseParams(0.0),
        rows=(ShotNoiseParams(1 / 60), ShotNoiseParams(1 / 25), ShotNoiseParams(1 / 12),
              ShotNoiseParams(1 / 5), ShotNoiseParams(1 / 3)),
    )

    def corrupt(self, pixels: np.ndarray, params: ShotNoiseParams, rng: np.random.Generator) -> np.ndarray:
        photons = 1.0 / params.inverse_photons
        counts = rng.poisson(pixels.astype(np.float64) * photons)
        return (counts / photons).astype(np.float32)
