"""Frost: the image dimmed and a frost texture added, ``clip(a·x + b·frost)`` (ImageNet-C).

ImageNet-C crops one of six photographs of frost on glass; vlmgate ships no photographs,
so the texture is generated, seeded by the variant's generator: a plasma-fractal haze
(``fog.reference_plasma``) for the frozen film plus branching ice needles (a main stroke
with side branches at ±60°) drawn on the 224-px reference grid, lightly blurred, tinted
pale blue and resized to the image. Its mean (~0.45) is close to the published photos',
so the (image weight, frost weight) rows keep their published meaning.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

from vlmgate.perturbations.corruption.family import CorruptionFamily
from vlmgate.perturbations.corruption.fog import reference_plasma
from vlmgate.perturbations.corruption.filtering import gaussian_smooth
from vlmgate.perturbations.corruption.pixels import resize_layer
from vlmgate.perturbations.corruption.table import SeverityTable

#: Ice colour (RGB, [0, 1]): white with a blue cast.
ICE_TINT = np.array([0.86, 0.93, 1.0], dtype=np.float32)
#: Needle clusters per 224² reference pixels.
CLUSTERS_PER_REFERENCE_IMAGE = 60


class FrostParams(NamedTuple):
    image_weight: float
    frost_weight: float


def ice_needles(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Branching needle strokes in [0, 1] on an H x W grid (reference pixels)."""
    height, width = shape
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    clusters = max(1, round(CLUSTERS_PER_REFERENCE_IMAGE * height * width / 224 ** 2))
    starts = rng.uniform((0, 0), (width, height), size=(clusters, 2))
    angles = rng.uniform(0, 2 * math.pi, size=clusters)
    lengths = rng.uniform(15, 60, size=clusters)
    for (x0, y0), angle, length in zip(starts, angles, lengths):
        shade = int(rng.integers(140, 256))
        x1, y1 = x0 + length * math.cos(angle), y0 + length * math.sin(angle)
        draw.line([(x0, y0), (x1, y1)], fill=shade, width=1)
        for t, side in zip(rng.uniform(0.15, 0.9, size=6), rng.choice((-1, 1), size=6)):
            bx, by = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
            branch_angle = angle + side * math.pi / 3
            branch_length = rng.uniform(0.15, 0.4) * length
            draw.line([(bx, by), (bx + branch_length * math.cos(branch_angle),
                                  by + branch_length * math.sin(branch_angle))], fill=shade, width=1)
    return np.asarray(canvas, dtype=np.float32) / np.float32(255.0)


def frost_texture(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """An H x W x 3 frost texture in [0, 1] for an image of ``shape``."""
    film = reference_plasma(shape, 1.6, rng)
    needles = gaussian_smooth(ice_needles(film.shape, rng), 0.6)
    intensity = np.clip(0.2 + 0.45 * film + 0.9 * needles, 0.0, 1.0)
    return resize_layer(intensity, shape)[..., np.newaxis] * ICE_TINT


class Frost(CorruptionFamily):
    name = "frost"
    description = "ImageNet-C frost: generated ice texture over the dimmed image"
    table = SeverityTable(
        identity=FrostParams(1.0, 0.0),
        rows=(FrostParams(1.0, 0.4), FrostParams(0.8, 0.6), FrostParams(0.7, 0.7),
              FrostParams(0.65, 0.7), FrostParams(0.6, 0.75)),
    )

    def corrupt(self, pixels: np.ndarray, params: FrostParams, rng: np.random.Generator) -> np.ndarray:
        frost = frost_texture(pixels.shape, rng)
        return np.float32(params.image_weight) * pixels + np.float32(params.frost_weight) * frost
