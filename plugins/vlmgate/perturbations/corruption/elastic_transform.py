"""Elastic transform: a random affine warp plus a smooth random displacement field (ImageNet-C).

Published rows, in 224-px pixels: (alpha, sigma, affine) = displacement gain, smoothing
of the displacement noise, and the largest shift of the three affine control points.
The ImageNet-C code writes them as multiples of 244 (a typo for 224 its authors kept, as
"nothing is incorrect"); the table keeps the published numbers. Severity 1-2 are large
smooth warps, 3-5 small local wobbles, so the mean pixel change is not monotonic in
severity. The displacement field ``gaussian(U(-1, 1), sigma)·alpha`` is drawn on the
224-px reference grid and resized (displacements multiplied by the pixel scale); the
affine shifts scale with the image. Warp and displacement are composed into one sampling
map and interpolated once (bilinear, mirrored borders), where the published code
interpolates twice.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

from vlmgate.perturbations.corruption.family import CorruptionFamily
from vlmgate.perturbations.corruption.filtering import gaussian_smooth
from vlmgate.perturbations.corruption.pixels import pixel_scale, reference_shape, resize_layer
from vlmgate.perturbations.corruption.table import SeverityTable


class ElasticParams(NamedTuple):
    alpha: float  #: displacement gain, 224-px pixels
    sigma: float  #: smoothing of the displacement noise, 224-px pixels
    affine: float  #: largest control-point shift, 224-px pixels


def affine_through(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2 x 3 affine map sending three (x, y) points ``source`` to ``target``."""
    homogeneous = np.hstack([source, np.ones((3, 1))])
    return np.linalg.solve(homogeneous, target).T


def displacement_field(shape: tuple[int, ...], params: ElasticParams, rng: np.random.Generator) -> np.ndarray:
    """Smooth random (dy, dx) displacements in this image's pixels, shape 2 x H x W."""
    reference = reference_shape(shape)
    scale = pixel_scale(shape)
    fields = []
    for _ in range(2):
        noise = rng.uniform(-1.0, 1.0, size=reference)
        smooth = gaussian_smooth(noise, params.sigma, mode="reflect", truncate=3.0) * params.alpha
        fields.append(resize_layer(smooth.astype(np.float32), shape) * np.float32(scale))
    return np.stack(fields)


class ElasticTransform(CorruptionFamily):
    name = "elastic_transform"
    description = "ImageNet-C elastic transform: random affine warp plus smooth displacement"
    table = SeverityTable(
        identity=ElasticParams(0.0, 244 * 0.7, 0.0),
        rows=(ElasticParams(244 * 2, 244 * 0.7, 244 * 0.1),
              ElasticParams(244 * 2, 244 * 0.08, 244 * 0.2),
              ElasticParams(244 * 0.05, 244 * 0.01, 244 * 0.02),
              ElasticParams(244 * 0.07, 244 * 0.01, 244 * 0.02),
              ElasticParams(244 * 0.12, 244 * 0.01, 244 * 0.02)),
    )

    def corrupt(self, pixels: np.ndarray, params: ElasticParams, rng: np.random.Generator) -> np.ndarray:
        height, width = pixels.shape[:2]
        scale = pixel_scale(pixels.shape)
        centre = np.array([width // 2, height // 2], dtype=np.float64)
        side = min(height, width) // 3
        control = np.array([centre + side, [centre[0] + side, centre[1] - side], centre - side])
        moved = control + rng.uniform(-params.affine * scale, params.affine * scale, size=(3, 2))
        inverse = affine_through(moved, control)  # output position -> source position
        dy, dx = displacement_field(pixels.shape, params, rng)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        sample_x, sample_y = xs + dx, ys + dy
        source_x = inverse[0, 0] * sample_x + inverse[0, 1] * sample_y + inverse[0, 2]
        source_y = inverse[1, 0] * sample_x + inverse[1, 1] * sample_y + inverse[1, 2]
        coords = np.stack([source_y, source_x])
        return np.stack([ndimage.map_coordinates(pixels[..., c], coords, order=1, mode="mirror")
                         for c in range(3)], axis=-1)
