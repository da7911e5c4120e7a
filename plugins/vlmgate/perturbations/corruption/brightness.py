"""Brightness: add ``delta`` to the HSV value channel (ImageNet-C).

For a fixed hue and saturation, RGB is proportional to the value V = max(R, G, B), so
``hsv2rgb(h, s, clip(v + delta))`` is the pixel scaled by ``clip(V + delta, 0, 1) / V``;
a black pixel (V = 0, saturation 0 by convention) becomes grey ``delta``. This closed
form equals the published HSV round trip without converting the whole image.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vlmgate.perturbations.corruption.family import CorruptionFamily
from vlmgate.perturbations.corruption.table import SeverityTable


class BrightnessParams(NamedTuple):
    delta: float  #: added to the HSV value, [0, 1] scale


class Brightness(CorruptionFamily):
    name = "brightness"
    description = "ImageNet-C brightness: HSV value + 0.1 to + 0.5"
    table = SeverityTable(
        identity=BrightnessParams(0.0),
        rows=(BrightnessParams(0.1), BrightnessParams(0.2), BrightnessParams(0.3),
              BrightnessParams(0.4), BrightnessParams(0.5)),
    )

    def corrupt(self, pixels: np.ndarray, params: BrightnessParams, rng: np.random.Generator) -> np.ndarray:
        value = pixels.max(axis=2, keepdims=True)
        brighter = np.clip(value + np.float32(params.delta), 0.0, 1.0)
        ratio = np.divide(brighter, value, out=np.zeros_like(value), where=value > 0)
        return np.where(value > 0, pixels * ratio, brighter)
