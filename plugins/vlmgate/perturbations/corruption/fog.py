"""Fog: a plasma-fractal haze added and the result renormalised (ImageNet-C).

``x' = (x + amount·plasma) · max(x) / (max(x) + amount)``, where ``plasma`` is a
diamond-square fractal in [0, 1] whose roughness falls by ``wibble_decay`` per octave
(lower decay = patchier fog). The fractal is drawn on a power-of-two map covering the
224-px reference grid, cropped to it and resized to the image, so the fog has the
published grain at any image size. ``reference_plasma`` is shared with ``frost``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vlmgate.perturbations.corruption.family import CorruptionFamily
from vlmgate.perturbations.corruption.pixels import reference_shape, resize_layer
from vlmgate.perturbations.corruption.table import SeverityTable


class FogParams(NamedTuple):
    amount: float  #: weight of the haze
    wibble_decay: float  #: roughness decay per octave of the fractal


def plasma_fractal(map_size: int, wibble_decay: float, rng: np.random.Generator) -> np.ndarray:
    """A ``map_size``² diamond-square fractal normalised to [0, 1] (``map_size`` a power of 2).

    As in the published generator, the random displacement at each octave is
    ``wibble · U(-wibble, wibble)`` with ``wibble`` starting at 100 and divided by
    ``wibble_decay`` per octave, and the map wraps around (tileable).
    """
    if map_size < 2 or map_size & (map_size - 1):
        raise ValueError(f"map_size must be a power of two >= 2, got {map_size}")
    grid = np.zeros((map_size, map_size), dtype=np.float64)
    step = map_size
    wibble = 100.0

    def displaced_mean(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = grid[0::step, 0::step]
        # Squares: the centre of each square is the mean of its four corners.
        square_sum = corners + np.roll(corners, -1, axis=0)
        square_sum = square_sum + np.roll(square_sum, -1, axis=1)
        grid[half::step, half::step] = displaced_mean(square_sum)
        # Diamonds: edge midpoints from the two corners and the two neighbouring centres.
        centres = grid[half::step, half::step]
        top_edges = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        grid[0::step, half::step] = displaced_mean(top_edges)
        left_edges = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        grid[half::step, 0::step] = displaced_mean(left_edges)
        step = half
        wibble /= wibble_decay
    grid -= grid.min()
    return grid / grid.max()


def reference_plasma(shape: tuple[int, ...], wibble_decay: float, rng: np.random.Generator) -> np.ndarray:
    """A float32 fractal on the 224-px reference grid of ``shape`` (not yet resized to it)."""
    ref_h, ref_w = reference_shape(shape)
    map_size = 1 << max(1, (max(ref_h, ref_w) - 1).bit_length())
    return plasma_fractal(map_size, wibble_decay, rng)[:ref_h, :ref_w].astype(np.float32)


class Fog(CorruptionFamily):
    name = "fog"
    description = "ImageNet-C fog: plasma-fractal haze, weight 1.5-3"
    table = SeverityTable(
        identity=FogParams(0.0, 2.0),
        rows=(FogParams(1.5, 2.0), FogParams(2.0, 2.0), FogParams(2.5, 1.7), FogParams(2.5, 1.5), FogParams(3.0, 1.4)),
    )

    def corrupt(self, pixels: np.ndarray, params: FogParams, rng: np.random.Generator) -> np.ndarray:
        peak = float(pixels.max())
        haze = resize_layer(reference_plasma(pixels.shape, params.wibble_decay, rng), pixels.shape)
        haze = haze[..., np.newaxis]
        return (pixels + np.float32(params.amount) * haze) * np.float32(peak / (peak + params.amount))
