"""Snow: a thresholded, zoomed, motion-blurred noise layer over a greyed image (ImageNet-C).

Published parameters per severity: noise mean and sd, zoom factor (flake size), threshold
(flake density), motion-blur radius and sigma of the falling streaks, and ``blend``, how
much of the image stays as is against the brightened grey ``max(x, 1.5·luma + 0.5)``.
The layer is drawn on the 224-px reference grid (so flake size and density are the
published ones) and resized to the image; it is added twice, once rotated 180°. The
published code has no way to fade the layer in below severity 1, so the table carries a
``layer_gain`` (1 at every published row, 0 at the identity row).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vlmgate.perturbations.corruption.family import CorruptionFamily
from vlmgate.perturbations.corruption.motion_blur import motion_blur_layer
from vlmgate.perturbations.corruption.pixels import luminance, reference_shape, resize_layer
from vlmgate.perturbations.corruption.table import SeverityTable
from vlmgate.perturbations.corruption.zoom_blur import clipped_zoom


class SnowParams(NamedTuple):
    noise_mean: float
    noise_sd: float
    zoom: float  #: flake magnification on the reference grid
    threshold: float  #: noise below this is no snow
    streak_radius: float  #: motion-blur radius, reference pixels
    streak_sigma: float  #: motion-blur sigma, reference pixels
    blend: float  #: weight of the original image against the brightened grey
    layer_gain: float  #: 1 at every published row; 0 fades the flakes out


class Snow(CorruptionFamily):
    name = "snow"
    description = "ImageNet-C snow: motion-blurred flakes over a brightened, greyed image"
    table = SeverityTable(
        identity=SnowParams(0.1, 0.3, 3.0, 0.5, 10, 4, 1.0, 0.0),
        rows=(SnowParams(0.1, 0.3, 3.0, 0.5, 10, 4, 0.8, 1.0),
              SnowParams(0.2, 0.3, 2.0, 0.5, 12, 4, 0.7, 1.0),
              SnowParams(0.55, 0.3, 4.0, 0.9, 12, 8, 0.7, 1.0),
              SnowParams(0.55, 0.3, 4.5, 0.85, 12, 8, 0.65, 1.0),
              SnowParams(0.55, 0.3, 2.5, 0.85, 12, 12, 0.55, 1.0)),
    )

    def corrupt(self, pixels: np.ndarray, params: SnowParams, rng: np.random.Generator) -> np.ndarray:
        flakes = rng.normal(params.noise_mean, params.noise_sd, size=reference_shape(pixels.shape))
        flakes = clipped_zoom(flakes.astype(np.float32), params.zoom)
        flakes[flakes < params.threshold] = 0.0
        flakes = np.clip(flakes, 0.0, 1.0)
        angle = rng.uniform(-135.0, -45.0)
        flakes = motion_blur_layer(flakes, params.streak_radius, params.streak_sigma, angle)
        layer = resize_layer(flakes, pixels.shape)[..., np.newaxis] * np.float32(params.layer_gain)
        grey = np.maximum(pixels, luminance(pixels) * np.float32(1.5) + np.float32(0.5))
        base = np.float32(params.blend) * pixels + np.float32(1.0 - params.blend) * grey
        return base + layer + np.rot90(layer, k=2)
