"""Saturate (ImageNet-C extra): HSV saturation mapped to ``clip(s·scale + shift, 0, 1)``.

For a fixed hue and value each channel is ``V·(1 - S·w)`` with ``w`` set by the hue, so
the new channel is ``V - S'·(V - c)/(V - min)·V``, i.e. the pixel's chroma rescaled; a
grey pixel has hue 0 (red) by the HSV convention the published code inherits, so a
positive ``shift`` tints greys red exactly as scikit-image's round trip does.
The published rows first desaturate (severity 1-2: x0.3, x0.1) then oversaturate
(3-5: x2, x5 + 0.1, x20 + 0.2); interpolating the parameters therefore passes through
the identity (scale 1) near severity 2.47, and the change is not monotonic in severity.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vlmgate.perturbations.corruption.family import CorruptionFamily
from vlmgate.perturbations.corruption.table import SeverityTable

#: Per-channel weight ``w`` of a hue-0 (red) colour: R = V, G = B = V·(1 - S).
RED_HUE_WEIGHTS = np.array([0.0, 1.0, 1.0], dtype=np.float32)


class SaturateParams(NamedTuple):
    scale: float
    shift: float


class Saturate(CorruptionFamily):
    name = "saturate"
    description = "ImageNet-C saturate: HSV saturation x0.3, x0.1, x2, x5+0.1, x20+0.2"
    table = SeverityTable(
        identity=SaturateParams(1.0, 0.0),
        rows=(SaturateParams(0.3, 0.0), SaturateParams(0.1, 0.0), SaturateParams(2.0, 0.0),
              SaturateParams(5.0, 0.1), SaturateParams(20.0, 0.2)),
    )

    def corrupt(self, pixels: np.ndarray, params: SaturateParams, rng: np.random.Generator) -> np.ndarray:
        value = pixels.max(axis=2, keepdims=True)
        chroma = value - pixels.min(axis=2, keepdims=True)
        saturation = np.divide(chroma, value, out=np.zeros_like(value), where=value > 0)
        new_saturation = np.clip(saturation * np.float32(params.scale) + np.float32(params.shift), 0.0, 1.0)
        hue_weights = np.divide(value - pixels, chroma, out=np.broadcast_to(RED_HUE_WEIGHTS, pixels.shape).copy(),
                                where=chroma > 0)
        return value * (1.0 - new_saturation * hue_weights)
