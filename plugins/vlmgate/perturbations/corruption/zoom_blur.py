"""Zoom blur: the mean of the image and centre zooms of it (ImageNet-C).

The published zoom factors are ``numpy.arange(1, stop, step)`` per severity, which (float
rounding included) gives 12 factors 1.00-1.11, 16 factors 1.00-1.15, 11 factors 1.00-1.20,
13 factors 1.00-1.24 and 11 factors 1.00-1.30; the table stores them as (last factor,
count) and the factors are ``linspace(1, last, count)``. Zoom factors are relative and
need no scaling with image size. ``clipped_zoom`` crops the centre 1/z of the layer and
resizes it back bilinearly (Pillow's float resampling with a sub-pixel box).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image

from vlmgate.perturbations.corruption.family import CorruptionFamily
from vlmgate.perturbations.corruption.table import SeverityTable


class ZoomBlurParams(NamedTuple):
    last_zoom: float  #: largest zoom factor
    count: int  # type: ignore[assignment]  #: number of zoom factors, 1.0 included (shadows tuple.count)


def clipped_zoom(layer: np.ndarray, zoom: float) -> np.ndarray:
    """Zoom an H x W (x C) float layer into its centre by ``zoom`` >= 1, keeping its size."""
    if layer.ndim == 3:
        return np.stack([clipped_zoom(layer[..., c], zoom) for c in range(layer.shape[2])], axis=-1)
    height, width = layer.shape
    half_w, half_h = width / (2.0 * zoom), height / (2.0 * zoom)
    box = (width / 2.0 - half_w, height / 2.0 - half_h, width / 2.0 + half_w, height / 2.0 + half_h)
    zoomed = Image.fromarray(np.ascontiguousarray(layer, dtype=np.float32)).resize(
        (width, height), Image.Resampling.BILINEAR, box=box)
    return np.array(zoomed, dtype=np.float32)


class ZoomBlur(CorruptionFamily):
    name = "zoom_blur"
    description = "ImageNet-C zoom blur: mean of centre zooms up to 1.11-1.30"
    table = SeverityTable(
        identity=ZoomBlurParams(1.0, 1),
        rows=(ZoomBlurParams(1.11, 12), ZoomBlurParams(1.15, 16), ZoomBlurParams(1.20, 11),
              ZoomBlurParams(1.24, 13), ZoomBlurParams(1.30, 11)),
        integer_fields=("count",),
    )

    def corrupt(self, pixels: np.ndarray, params: ZoomBlurParams, rng: np.random.Generator) -> np.ndarray:
        total = pixels.copy()
        for zoom in np.linspace(1.0, params.last_zoom, params.count):
            total += clipped_zoom(pixels, float(zoom))
        return total / np.float32(params.count + 1)
