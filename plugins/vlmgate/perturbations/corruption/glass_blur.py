"""Glass blur: Gaussian blur, a local pixel shuffle repeated, then Gaussian blur again.

Parameters are ImageNet-C's (sigma, max_delta, iterations). The published shuffle swaps
each pixel with a random neighbour in a sequential Python loop over every pixel, which is
far too slow for a gate; here each iteration moves every pixel by an independent random
offset in [-max_delta, max_delta]² (a vectorised gather, offsets clipped at the border),
which is the same local scrambling without the scan-order dependence. The published code
also quantises to uint8 between steps; that artefact is skipped. Sigma and max_delta are
pixels at 224 px and scale with the image; a shuffle distance that rounds to 0 px (tiny
images at low severity) leaves only the blur, as downsampling the 224-px result would.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vlmgate.perturbations.corruption.family import CorruptionFamily
from vlmgate.perturbations.corruption.filtering import gaussian_smooth
from vlmgate.perturbations.corruption.pixels import pixel_scale
from vlmgate.perturbations.corruption.table import SeverityTable


class GlassBlurParams(NamedTuple):
    sigma: float  #: Gaussian blur before and after, pixels at 224 px
    max_delta: float  #: largest shuffle offset, pixels at 224 px
    iterations: int  #: shuffle passes


def shuffle_locally(pixels: np.ndarray, max_delta: int, rng: np.random.Generator) -> np.ndarray:
    """Give each pixel the value of a random neighbour at most ``max_delta`` away per axis."""
    height, width = pixels.shape[:2]
    rows = np.arange(height)[:, np.newaxis] + rng.integers(-max_delta, max_delta + 1, size=(height, width))
    cols = np.arange(width)[np.newaxis, :] + rng.integers(-max_delta, max_delta + 1, size=(height, width))
    return pixels[np.clip(rows, 0, height - 1), np.clip(cols, 0, width - 1)]


class GlassBlur(CorruptionFamily):
    name = "glass_blur"
    description = "ImageNet-C glass blur: blur, local pixel shuffle, blur"
    table = SeverityTable(
        identity=GlassBlurParams(0.0, 0.0, 0),
        rows=(GlassBlurParams(0.7, 1, 2), GlassBlurParams(0.9, 2, 1), GlassBlurParams(1.0, 2, 3),
              GlassBlurParams(1.1, 3, 2), GlassBlurParams(1.5, 4, 2)),
        integer_fields=("iterations",),
    )

    def corrupt(self, pixels: np.ndarray, params: GlassBlurParams, rng: np.random.Generator) -> np.ndarray:
        scale = pixel_scale(pixels.shape)
        sigma = params.sigma * scale
        max_delta = int(np.floor(params.max_delta * scale + 0.5))
        out = gaussian_smooth(pixels, sigma)
        if max_delta > 0:
            for _ in range(params.iterations):
                out = shuffle_locally(out, max_delta, rng)
        return gaussian_smooth(out, sigma)
