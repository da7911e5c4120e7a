"""JPEG compression: a Pillow JPEG round trip at quality 25 down to 7 (ImageNet-C).

Quality is an integer, so interpolated severities round it; below severity 1 it rises
toward quality 100 (still lossy: only severity 0 itself is the identity).
"""

from __future__ import annotations

import io
from typing import NamedTuple

import numpy as np
from PIL import Image

from vlmgate.perturbations.corruption.family import CorruptionFamily
from vlmgate.perturbations.corruption.pixels import to_float, to_image
from vlmgate.perturbations.corruption.table import SeverityTable


class JpegParams(NamedTuple):
    quality: int  #: Pillow JPEG quality, 1-100


def jpeg_round_trip(image: Image.Image, quality: int) -> Image.Image:
    """``image`` encoded as JPEG at ``quality`` and decoded again (RGB)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


class JpegCompression(CorruptionFamily):
    name = "jpeg_compression"
    description = "ImageNet-C JPEG compression, quality 25 down to 7"
    table = SeverityTable(
        identity=JpegParams(100),
        rows=(JpegParams(25), JpegParams(18), JpegParams(15), JpegParams(10), JpegParams(7)),
        integer_fields=("quality",),
    )

    def corrupt(self, pixels: np.ndarray, params: JpegParams, rng: np.random.Generator) -> np.ndarray:
        return to_float(jpeg_round_trip(to_image(pixels), params.quality))
