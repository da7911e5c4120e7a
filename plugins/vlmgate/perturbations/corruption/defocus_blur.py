"""Defocus blur: convolution with an anti-aliased disk (ImageNet-C).

The disk of radius ``radius`` px is normalised and softened by a small Gaussian of sigma
``alias_blur`` (3 taps, or 5 when the radius exceeds 8 px) as the published ``disk()``
does, on an array with room for the softened rim (the published 17 x 17 array clips the
rim of an 8-px disk; here the kernel keeps summing to 1), then convolved with each
channel; image borders reflect without repeating the edge pixel (OpenCV's default).
The radius is pixels at 224 px and scales with the image; the anti-aliasing sigma acts
on the kernel's own pixel grid and does not.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from vlmgate.perturbations.corruption.family import CorruptionFamily
from vlmgate.perturbations.corruption.filtering import correlate_fft
from vlmgate.perturbations.corruption.pixels import pixel_scale
from vlmgate.perturbations.corruption.table import SeverityTable


class DefocusBlurParams(NamedTuple):
    radius: float  #: disk radius, pixels at 224 px
    alias_blur: float  #: sigma of the anti-aliasing Gaussian, kernel pixels


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The normalised, anti-aliased disk of ``radius`` pixels (a square odd-sized array)."""
    taps = 3 if radius <= 8 else 5
    half = math.ceil(radius) + taps // 2
    offsets = np.arange(-half, half + 1)
    disk = (offsets[:, np.newaxis] ** 2 + offsets[np.newaxis, :] ** 2 <= radius ** 2).astype(np.float64)
    disk /= disk.sum()
    if alias_blur > 0:
        x = np.arange(taps) - taps // 2
        gauss = np.exp(-(x ** 2) / (2.0 * alias_blur ** 2))
        gauss /= gauss.sum()
        disk = ndimage.correlate1d(disk, gauss, axis=0, mode="constant")
        disk = ndimage.correlate1d(disk, gauss, axis=1, mode="constant")
    return disk


class DefocusBlur(CorruptionFamily):
    name = "defocus_blur"
    description = "ImageNet-C defocus blur: anti-aliased disk of radius 3-10 px at 224 px"
    table = SeverityTable(
        identity=DefocusBlurParams(0.0, 0.1),
        rows=(DefocusBlurParams(3, 0.1), DefocusBlurParams(4, 0.5), DefocusBlurParams(6, 0.5),
              DefocusBlurParams(8, 0.5), DefocusBlurParams(10, 0.5)),
    )

    def corrupt(self, pixels: np.ndarray, params: DefocusBlurParams, rng: np.random.Generator) -> np.ndarray:
        kernel = disk_kernel(params.radius * pixel_scale(pixels.shape), params.alias_blur)
        return correlate_fft(pixels, kernel, pad_mode="reflect")
