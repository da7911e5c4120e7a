"""Gaussian blur (ImageNet-C extra).

ImageNet-C blurs with scikit-image's ``filters.gaussian``: ``scipy.ndimage.gaussian_filter``
over the two spatial axes only, border mode ``'nearest'``, kernel truncated at 4 sigma
(``filtering.gaussian_smooth``). Sigma is in pixels of a 224-px image and is scaled with
the image (see ``pixels``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vlmgate.perturbations.corruption.family import CorruptionFamily
from vlmgate.perturbations.corruption.filtering import gaussian_smooth
from vlmgate.perturbations.corruption.pixels import pixel_scale
from vlmgate.perturbations.corruption.table import SeverityTable


class GaussianBlurParams(NamedTuple):
    sigma: float  #: pixels at 224 px


class GaussianBlur(CorruptionFamily):
    name = "gaussian_blur"
    description = "ImageNet-C Gaussian blur, sigma 1-6 px at 224 px (scaled with the image)"
    table = SeverityTable(
        identity=GaussianBlurParams(0.0),
        rows=(GaussianBlurParams(1.0), GaussianBlurParams(2.0), GaussianBlurParams(3.0),
              GaussianBlurParams(4.0), GaussianBlurParams(6.0)),
    )

    def corrupt(self, pixels: np.ndarray, params: GaussianBlurParams, rng: np.random.Generator) -> np.ndarray:
        return gaussian_smooth(pixels, params.sigma * pixel_scale(pixels.shape))
