"""Impulse (salt-and-pepper) noise: a fraction of pixel channels set to 0 or 1.

As in ImageNet-C (scikit-image's ``random_noise(mode='s&p')``), each channel value is
replaced independently with probability ``amount``, by white or black with equal odds.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vlmgate.perturbations.corruption.family import CorruptionFamily
from vlmgate.perturbations.corruption.table import SeverityTable


class ImpulseNoiseParams(NamedTuple):
    amount: float  #: probability that a channel value is replaced


class ImpulseNoise(CorruptionFamily):
    name = "impulse_noise"
    description = "ImageNet-C impulse (salt-and-pepper) noise, 3-27 % of values replaced"
    table = SeverityTable(
        identity=ImpulseNoiseParams(0.0),
        rows=(ImpulseNoiseParams(0.03), ImpulseNoiseParams(0.06), ImpulseNoiseParams(0.09),
              ImpulseNoiseParams(0.17), ImpulseNoiseParams(0.27)),
    )

    def corrupt(self, pixels: np.ndarray, params: ImpulseNoiseParams, rng: np.random.Generator) -> np.ndarray:
        replaced = rng.random(pixels.shape) < params.amount
        salt = rng.random(pixels.shape) < 0.5
        return np.where(replaced, salt.astype(np.float32), pixels)
