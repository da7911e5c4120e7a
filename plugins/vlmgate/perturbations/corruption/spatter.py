"""Spatter (ImageNet-C extra): water drops (severities 1-3) or mud splashes (4-5).

A liquid layer is smoothed Gaussian noise kept where it exceeds a threshold. Water mode
shades the drops with a relief map (distance to the drop outlines, histogram-equalised,
embossed) and adds pale turquoise; mud mode darkens the image to brown where the
smoothed drop mask is above 0.8. Parameters per severity are the published (noise mean,
noise sd, smoothing sigma, threshold, intensity, mode); ``intensity`` is the relief gain
in water mode and the mask-smoothing sigma in mud mode. The published code finds drop
outlines with OpenCV's Canny; on this two-level layer (0 or above the threshold) Canny
finds the mask boundary, so the boundary is taken directly, and the distance transform
is exact (scipy) rather than OpenCV's 5x5 approximation. The layer is built on the 224-px
reference grid and resized to the image. The mode switches from water to mud at
severity 3.5; below severity 1 the water relief fades in from intensity 0.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

from vlmgate.perturbations.corruption.family import CorruptionFamily
from vlmgate.perturbations.corruption.filtering import gaussian_smooth
from vlmgate.perturbations.corruption.pixels import reference_shape, resize_layer
from vlmgate.perturbations.corruption.table import SeverityTable

WATER = 0
MUD = 1
#: Pale turquoise (175, 238, 238) and mud brown (63, 42, 20), RGB in [0, 1].
WATER_COLOUR = np.array([175, 238, 238], dtype=np.float32) / 255
MUD_COLOUR = np.array([63, 42, 20], dtype=np.float32) / 255
#: OpenCV-style emboss kernel of the published relief step.
EMBOSS = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float64)


class SpatterParams(NamedTuple):
    noise_mean: float
    noise_sd: float
    smoothing: float  #: sigma of the noise smoothing, reference pixels
    threshold: float
    intensity: float  #: water: relief gain; mud: mask-smoothing sigma
    mode: int  #: 0 water, 1 mud


def equalize_histogram(values: np.ndarray) -> np.ndarray:
    """OpenCV's ``equalizeHist`` on a uint8 array (lowest present value maps to 0)."""
    hist = np.bincount(values.ravel(), minlength=256)
    lowest = int(np.flatnonzero(hist)[0])
    if hist[lowest] == values.size:
        return values.copy()
    cdf = np.cumsum(hist)
    lut = np.rint((cdf - cdf[lowest]) * (255.0 / (values.size - hist[lowest])))
    lut[:lowest] = 0
    return np.clip(lut, 0, 255).astype(np.uint8)[values]


def water_relief(liquid: np.ndarray) -> np.ndarray:
    """The published shading of water drops: embossed, equalised distance to the outlines."""
    drops = liquid > 0
    outline = drops & ~ndimage.binary_erosion(drops, border_value=1)
    if not outline.any():
        return np.zeros_like(liquid)
    distance = np.minimum(ndimage.distance_transform_edt(~outline), 20.0)
    distance = ndimage.uniform_filter(distance, size=3, mode="mirror").astype(np.uint8)
    distance = equalize_histogram(distance)
    embossed = ndimage.correlate(distance.astype(np.float64), EMBOSS, mode="mirror")
    embossed = np.clip(np.rint(embossed), 0, 255)
    return ndimage.uniform_filter(embossed, size=3, mode="mirror").astype(np.float32)


class Spatter(CorruptionFamily):
    name = "spatter"
    description = "ImageNet-C spatter: water drops (severity 1-3) or mud (4-5)"
    table = SeverityTable(
        identity=SpatterParams(0.65, 0.3, 4, 0.69, 0.0, WATER),
        rows=(SpatterParams(0.65, 0.3, 4, 0.69, 0.6, WATER),
              SpatterParams(0.65, 0.3, 3, 0.68, 0.6, WATER),
              SpatterParams(0.65, 0.3, 2, 0.68, 0.5, WATER),
              SpatterParams(0.65, 0.3, 1, 0.65, 1.5, MUD),
              SpatterParams(0.67, 0.4, 1, 0.65, 1.5, MUD)),
        integer_fields=("mode",),
    )

    def corrupt(self, pixels: np.ndarray, params: SpatterParams, rng: np.random.Generator) -> np.ndarray:
        noise = rng.normal(params.noise_mean, params.noise_sd, size=reference_shape(pixels.shape))
        liquid = gaussian_smooth(noise, params.smoothing).astype(np.float32)
        liquid[liquid < params.threshold] = 0.0
        if params.mode == MUD:
            mask = gaussian_smooth((liquid > params.threshold).astype(np.float32), params.intensity)
            mask[mask < 0.8] = 0.0
            mask = resize_layer(mask, pixels.shape)[..., np.newaxis]
            return pixels * (1.0 - mask) + MUD_COLOUR * mask
        shade = liquid * water_relief(liquid)
        peak = float(shade.max())
        if peak <= 0:
            return pixels
        shade *= np.float32(params.intensity / peak)
        return pixels + resize_layer(shade, pixels.shape)[..., np.newaxis] * WATER_COLOUR
