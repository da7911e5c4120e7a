"""Pixelate: box-downsample by ``factor`` and box-upsample back (ImageNet-C).

The factor is relative to the image side, so it needs no scaling with image size; the
small side is ``int(side·factor)`` as published, at least 1 pixel.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image

from vlmgate.perturbations.corruption.family import CorruptionFamily
from vlmgate.perturbations.corruption.pixels import to_float, to_image
from vlmgate.perturbations.corruption.table import SeverityTable


class PixelateParams(NamedTuple):
    factor: float  #: side of the coarse image over the original side


class Pixelate(CorruptionFamily):
    name = "pixelate"
    description = "ImageNet-C pixelate: box resample to 0.6 down to 0.25 of the size and back"
    table = SeverityTable(
        identity=PixelateParams(1.0),
        rows=(PixelateParams(0.6), PixelateParams(0.5), PixelateParams(0.4),
              PixelateParams(0.3), PixelateParams(0.25)),
    )

    def corrupt(self, pixels: np.ndarray, params: PixelateParams, rng: np.random.Generator) -> np.ndarray:
        image = to_image(pixels)
        width, height = image.size
        small = (max(1, int(width * params.factor)), max(1, int(height * params.factor)))
        coarse = image.resize(small, Image.Resampling.BOX)
        return to_float(coarse.resize((width, height), Image.Resampling.BOX))
